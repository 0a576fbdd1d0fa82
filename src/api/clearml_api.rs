//! ClearML API built-ins: a session from `clearml_connect`, and its calls. Writes are actions
//! (planned in a dry run); reads are queries.

use rhai::plugin::*;

/// A connection to a ClearML API: where, and as whom (the secret stays a secret).
#[derive(Clone, Debug)]
pub struct ClearmlSession(pub crate::action::ApiTarget);

type R<T> = Result<T, Box<rhai::EvalAltResult>>;

pub(crate) fn queue_name(builtin: &str, name: &str) -> R<()> {
    use crate::failure::invalid;
    if name.chars().count() < 3 {
        return Err(invalid(
            builtin,
            format!("the queue name `{name}` is too short: a queue name has at least 3 characters"),
        ));
    }
    Ok(())
}

pub(crate) fn queue(session: &ClearmlSession, name: &str, opts: rhai::Map) -> R<rhai::Dynamic> {
    use crate::action::Action;
    use crate::api::options::Opts;
    use crate::runtime;
    const B: &str = "create_queue";
    queue_name(B, name)?;
    let mut o = Opts::new(B, opts);
    let impersonate_as = o.string("impersonate_as")?;
    let tags = o.strings("tags")?;
    o.finish()?;
    runtime::with(|rt| {
        rt.perform(
            B,
            Action::ClearmlCreateQueue {
                name: name.to_string(),
                impersonate_as,
                tags,
                api: session.0.clone(),
            },
        )
    })
}

#[export_module]
pub mod clearml_api {
    use super::{ClearmlSession, queue, queue_name};
    use crate::action::{Action, ApiTarget, Query};
    use crate::api::options::Opts;
    use crate::failure::invalid;
    use crate::runtime;
    use crate::value::Value;
    use rhai::{Dynamic, EvalAltResult, Map};

    type R<T> = Result<T, Box<EvalAltResult>>;

    /// A session with a ClearML API server. Nothing is sent until a call is made.
    ///
    /// # Options
    /// - `api_url` (required): such as `https://api.clearml.example.com`
    /// - `key`, `secret` (required): API credentials (`secret` is kept a secret)
    /// - `ca_file`: a PEM file of the CA that signed the server's certificate
    /// - `insecure`: do not verify the server's certificate (default false)
    /// - `timeout`: seconds per request (default 30)
    /// - `retries`: attempts for a call that failed transiently (default 5)
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn clearml_connect(opts: Map) -> R<ClearmlSession> {
        const B: &str = "clearml_connect";
        let mut o = Opts::new(B, opts);
        let api_url = o
            .string("api_url")?
            .ok_or_else(|| invalid(B, "the option `api_url` is required"))?;
        crate::validate::url(&api_url).map_err(|e| invalid(B, format!("api_url: {e}")))?;
        let key = o
            .value("key")?
            .ok_or_else(|| invalid(B, "the option `key` is required"))?;
        let secret = o
            .secret("secret")?
            .ok_or_else(|| invalid(B, "the option `secret` is required"))?;
        let ca_file = o.string("ca_file")?;
        let insecure = o.bool("insecure")?.unwrap_or(false);
        let timeout = o.value("timeout")?;
        let retries = o.value("retries")?;
        o.finish()?;
        let num = |v: Option<Value>, name: &str, default: i64, max: i64| -> R<i64> {
            match v {
                None => Ok(default),
                Some(Value::Int(n)) if (1..=max).contains(&n) => Ok(n),
                Some(other) => Err(invalid(
                    B,
                    format!("`{name}` must be a whole number from 1 to {max}, not {other:?}"),
                )),
            }
        };
        let timeout_secs = num(timeout, "timeout", 30, 3600)? as u64;
        let attempts = num(retries, "retries", 5, 20)? as u32;
        if matches!(&key, Value::Str(s) if s.is_empty()) || secret.is_empty() {
            return Err(invalid(B, "`key` and `secret` must not be empty"));
        }
        Ok(ClearmlSession(ApiTarget {
            api_url,
            key,
            secret,
            ca_file,
            insecure,
            attempts,
            timeout_secs,
        }))
    }

    /// Is the API answering (`debug.ping`)? Errors name the endpoint and the server's code.
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// api.ping();
    /// ```
    #[rhai_fn(return_raw)]
    pub fn ping(session: &mut ClearmlSession) -> R<Dynamic> {
        runtime::with(|rt| rt.query("ping", Query::ClearmlPing(session.0.clone())))
    }

    /// The user the session's credentials belong to (`users.get_current_user`): checks them.
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// log("connected as " + api.whoami().name);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn whoami(session: &mut ClearmlSession) -> R<Dynamic> {
        runtime::with(|rt| rt.query("whoami", Query::ClearmlWhoami(session.0.clone())))
    }

    /// Create a queue unless it exists, and answer its id. The name is looked up exactly (the
    /// API takes a regular expression: it is anchored and escaped), a queue is created only
    /// when missing, and "already exists" (400/801) counts as there: a re-run creates nothing.
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// let id = api.create_queue("default");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn create_queue(session: &mut ClearmlSession, name: &str) -> R<Dynamic> {
        queue(session, name, Map::new())
    }

    /// Create a queue unless it exists, as another user (in their tenant) or with tags.
    ///
    /// # Options
    /// - `impersonate_as`: a user id (`X-Clearml-Impersonate-As`): the queue lands in their tenant
    /// - `tags`: a list of tags for a new queue
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// api.create_queue("GPUshm", #{ impersonate_as: site.agent.impersonate_as });
    /// ```
    #[rhai_fn(name = "create_queue", return_raw)]
    pub fn create_queue_with(session: &mut ClearmlSession, name: &str, opts: Map) -> R<Dynamic> {
        queue(session, name, opts)
    }

    /// Create each queue of `names` unless it exists; answers their ids by name. The queues
    /// this identity sees are listed once (paged), and the missing ones created a few at a
    /// time; each creation is a step of the plan, as with `create_queue`.
    ///
    /// # Options
    /// - `impersonate_as`: a user id (`X-Clearml-Impersonate-As`): the queues land in their tenant
    /// - `tags`: a list of tags for new queues
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// let ids = api.create_queues(["default", "GPUshm"], #{});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn create_queues(session: &mut ClearmlSession, names: rhai::Array, opts: Map) -> R<Map> {
        const B: &str = "create_queues";
        let mut o = Opts::new(B, opts);
        let impersonate_as = o.string("impersonate_as")?;
        let tags = o.strings("tags")?;
        o.finish()?;
        let mut actions = Vec::with_capacity(names.len());
        let mut keys = Vec::with_capacity(names.len());
        for n in names {
            let Some(name) = n.clone().try_cast::<String>() else {
                return Err(invalid(
                    B,
                    format!("a queue name must be a string, not {}", n.type_name()),
                ));
            };
            queue_name(B, &name)?;
            keys.push(name.clone());
            actions.push(Action::ClearmlCreateQueue {
                name,
                impersonate_as: impersonate_as.clone(),
                tags: tags.clone(),
                api: session.0.clone(),
            });
        }
        let ids = runtime::with(|rt| rt.perform_many(B, actions))?;
        Ok(keys.into_iter().map(Into::into).zip(ids).collect())
    }

    /// The queue of exactly this name, or `()`.
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// if api.get_queue("default") == () { log("no default queue"); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn get_queue(session: &mut ClearmlSession, name: &str) -> R<Dynamic> {
        runtime::with(|rt| {
            rt.query(
                "get_queue",
                Query::ClearmlGetQueue {
                    api: session.0.clone(),
                    name: name.to_string(),
                    impersonate_as: None,
                },
            )
        })
    }

    /// The queue of exactly this name as another user sees it (in their tenant), or `()`.
    ///
    /// # Options
    /// - `impersonate_as`: a user id (`X-Clearml-Impersonate-As`)
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// let q = api.get_queue("GPUshm", #{ impersonate_as: "user-id" });
    /// ```
    #[rhai_fn(name = "get_queue", return_raw)]
    pub fn get_queue_with(session: &mut ClearmlSession, name: &str, opts: Map) -> R<Dynamic> {
        let mut o = Opts::new("get_queue", opts);
        let impersonate_as = o.string("impersonate_as")?;
        o.finish()?;
        runtime::with(|rt| {
            rt.query(
                "get_queue",
                Query::ClearmlGetQueue {
                    api: session.0.clone(),
                    name: name.to_string(),
                    impersonate_as,
                },
            )
        })
    }

    /// Delete the queue of this name if there is one; answers whether there was.
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// api.delete_queue("old-queue");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn delete_queue(session: &mut ClearmlSession, name: &str) -> R<Dynamic> {
        delete_queue_with(session, name, Map::new())
    }

    /// Delete the queue of this name if there is one, as another user (in their tenant, where
    /// `create_queue` with the same `impersonate_as` made it); answers whether there was.
    ///
    /// # Options
    /// - `impersonate_as`: a user id (`X-Clearml-Impersonate-As`)
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// api.delete_queue("old-queue", #{ impersonate_as: "user-id" });
    /// ```
    #[rhai_fn(name = "delete_queue", return_raw)]
    pub fn delete_queue_with(session: &mut ClearmlSession, name: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "delete_queue";
        queue_name(B, name)?;
        let mut o = Opts::new(B, opts);
        let impersonate_as = o.string("impersonate_as")?;
        o.finish()?;
        runtime::with(|rt| {
            rt.perform(
                B,
                Action::ClearmlDeleteQueue {
                    name: name.to_string(),
                    impersonate_as,
                    api: session.0.clone(),
                },
            )
        })
    }

    /// A session shown as text: its API URL (the credentials stay hidden).
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// print(api);   // ClearML API https://api.example.com
    /// ```
    #[rhai_fn(name = "to_string", pure)]
    pub fn session_to_string(session: &mut ClearmlSession) -> String {
        format!("ClearML API {}", session.0.api_url)
    }
}
