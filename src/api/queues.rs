//! Built-ins for a site's list of agent queues: its checks, its names and the agent chart's
//! entries for it, each one pass in Rust. A site can list thousands of queues, and a script loop
//! over them costs 5–10 µs an iteration (each `get`, `type_of` and map literal is a call), three
//! loops for one install; the site is read by reference, the list is not copied.

use rhai::plugin::*;
use rhai::{Array, Map};

/// The keys of a queue the built-ins below read (the site-key check accepts them under the list
/// a playbook hands them).
pub const QUEUE_KEYS: &[&str] = &[
    "name",
    "shm_size_gi",
    "vllm",
    "template_overrides",
    "queue_settings",
];

/// `f` with the items of the list at `path` (none when it is missing, `()` or not a list:
/// the rule `list?` reports that one).
pub(super) fn with_list<R>(site: &Map, path: &str, f: impl FnOnce(&[Dynamic]) -> R) -> R {
    crate::api::at_path(site, path, |d| {
        match d.and_then(|d| d.read_lock::<Array>()) {
            Some(list) => f(list.as_slice()),
            None => f(&[]),
        }
    })
}

/// The value of `key` in a map, as `get(m, key, ())` answers it: `None` for a missing key or
/// `()`.
pub(super) fn field<'a>(queue: &'a Map, key: &str) -> Option<&'a Dynamic> {
    queue.get(key).filter(|v| !v.is_unit())
}

/// A problem as `validate` takes it: the key path (it names the file and line) and what to do.
pub(super) fn problem(path: String, message: impl Into<String>) -> Dynamic {
    let mut m = Map::new();
    m.insert("path".into(), path.into());
    m.insert("message".into(), message.into().into());
    m.into()
}

/// A value as a script's interpolation `${v}` shows it (a secret masked).
pub(super) fn shown(ctx: &NativeCallContext, v: &Dynamic) -> String {
    if v.is_string() {
        return v.to_string();
    }
    ctx.call_native_fn::<String>("to_string", (v.clone(),))
        .unwrap_or_else(|_| crate::api::display(v))
}

/// A whole number of GiB, at least 1.
fn is_size_gi(v: &Dynamic) -> bool {
    v.as_int().is_ok_and(|n| n >= 1)
}

/// The `/dev/shm` volume (see `dshm_volume`), or the message of a size that is not one.
pub(crate) fn dshm(size_gi: &Dynamic, generation: &str, vllm: bool) -> Result<Map, String> {
    let Some(size) = size_gi.as_int().ok().filter(|n| *n >= 1) else {
        return Err(format!(
            "the size must be a whole number of GiB, at least 1, not {}",
            crate::api::display(size_gi)
        ));
    };
    let map = |pairs: &[(&str, Dynamic)]| -> Dynamic {
        Dynamic::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
        )
    };
    let volume = map(&[
        ("name", "dshm".into()),
        (
            "emptyDir",
            map(&[
                ("medium", "Memory".into()),
                ("sizeLimit", format!("{size}Gi").into()),
            ]),
        ),
    ]);
    let mount = map(&[("name", "dshm".into()), ("mountPath", "/dev/shm".into())]);
    let (mounts, volumes) = if generation == "oci" {
        ("extraVolumeMounts", "extraVolumes")
    } else {
        ("volumeMounts", "volumes")
    };
    let mut out = Map::new();
    out.insert(mounts.into(), Dynamic::from_array(vec![mount]));
    out.insert(volumes.into(), Dynamic::from_array(vec![volume]));
    if vllm {
        let env = map(&[
            ("name", "VLLM_SKIP_P2P_CHECK".into()),
            ("value", "1".into()),
        ]);
        out.insert("env".into(), Dynamic::from_array(vec![env]));
    }
    Ok(out)
}

#[export_module]
pub mod queues_api {
    use super::{dshm, field, is_size_gi, problem, shown, with_list};
    use crate::failure::invalid;
    use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};

    /// The problems of the queue list at `path` of the site, as `validate` takes them
    /// (`#{path, message}`, each naming the queue's key path, so the file and line): a queue
    /// that is no map, a name that is no text of at least 3 characters, a name listed twice
    /// (these first), a `shm_size_gi` that is no whole number of GiB of at least 1, a `vllm`
    /// that is no boolean, `template_overrides` or `queue_settings` that are no map. A missing
    /// list has none (the rule `list?` checks its type).
    ///
    /// # Example
    /// ```rhai
    /// let problems = queue_problems(site, "agent.queues");
    /// validate(site, #{ "agent.queues": "list?" }, problems);
    /// ```
    #[rhai_fn(pure)]
    pub fn queue_problems(ctx: NativeCallContext, site: &mut Map, path: &str) -> Array {
        with_list(site, path, |queues| {
            let mut twice = Vec::new();
            let mut each = Vec::new();
            let mut seen = std::collections::HashSet::with_capacity(queues.len());
            for (i, q) in queues.iter().enumerate() {
                let Some(q) = q.read_lock::<Map>() else {
                    each.push(problem(
                        format!("{path}[{i}]"),
                        "must be a map with at least a name",
                    ));
                    continue;
                };
                let name = field(&q, "name");
                match name.filter(|n| n.is_string()) {
                    Some(n) if n.to_string().chars().count() >= 3 => {
                        let n = n.to_string();
                        if !seen.insert(n.clone()) {
                            twice.push(problem(
                                format!("{path}[{i}].name"),
                                format!("the queue \"{n}\" is listed twice"),
                            ));
                        }
                    }
                    _ => {
                        let shown = name.map(|n| shown(&ctx, n)).unwrap_or_default();
                        each.push(problem(
                            format!("{path}[{i}].name"),
                            format!(
                                "the queue name \"{shown}\" is too short: a queue name has at least 3 characters"
                            ),
                        ));
                    }
                }
                if field(&q, "shm_size_gi").is_some_and(|s| !is_size_gi(s)) {
                    each.push(problem(
                        format!("{path}[{i}].shm_size_gi"),
                        "must be a whole number of GiB, at least 1",
                    ));
                }
                if field(&q, "vllm").is_some_and(|v| !v.is_bool()) {
                    each.push(problem(
                        format!("{path}[{i}].vllm"),
                        "must be true or false",
                    ));
                }
                for key in ["template_overrides", "queue_settings"] {
                    if field(&q, key).is_some_and(|v| !v.is_map()) {
                        each.push(problem(format!("{path}[{i}].{key}"), "must be a map"));
                    }
                }
            }
            twice.extend(each);
            twice
        })
    }

    /// The names of the queues of the list at `path` of the site, in order (`()` for a queue
    /// without one), as `create_queues` takes them.
    ///
    /// # Example
    /// ```rhai
    /// let names = queue_names(site, "agent.queues");
    /// ```
    #[rhai_fn(pure)]
    pub fn queue_names(site: &mut Map, path: &str) -> Array {
        with_list(site, path, |queues| {
            queues
                .iter()
                .map(|q| {
                    q.read_lock::<Map>()
                        .and_then(|q| q.get("name").cloned())
                        .unwrap_or(Dynamic::UNIT)
                })
                .collect()
        })
    }

    /// The agent chart's `agentk8sglue.queues` for the queue list at `path` of the site: by
    /// name, each queue's `templateOverrides` (its `template_overrides`, merged with the
    /// `/dev/shm` volume of its `shm_size_gi`, `dshm_volume`) and `queueSettings` (its
    /// `queue_settings`), each left out when empty. `generation`: `repo` or `oci`.
    ///
    /// # Example
    /// ```rhai
    /// let queues = queue_entries(site, "agent.queues", "repo");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn queue_entries(
        site: &mut Map,
        path: &str,
        generation: &str,
    ) -> Result<Map, Box<EvalAltResult>> {
        const B: &str = "queue_entries";
        with_list(site, path, |queues| {
            let mut out = Map::new();
            for (i, q) in queues.iter().enumerate() {
                let Some(q) = q.read_lock::<Map>() else {
                    return Err(invalid(B, format!("`{path}[{i}]` is no map")));
                };
                let map_at = |key: &str| match field(&q, key) {
                    None => Ok(Map::new()),
                    Some(v) => v
                        .read_lock::<Map>()
                        .map(|m| m.clone())
                        .ok_or_else(|| invalid(B, format!("`{path}[{i}].{key}` must be a map"))),
                };
                let mut overrides = map_at("template_overrides")?;
                if let Some(shm) = field(&q, "shm_size_gi") {
                    let vllm = match field(&q, "vllm") {
                        None => false,
                        Some(v) => v.as_bool().map_err(|_| {
                            invalid(B, format!("`{path}[{i}].vllm` must be true or false"))
                        })?,
                    };
                    let volume = dshm(shm, generation, vllm)
                        .map_err(|e| invalid(B, format!("`{path}[{i}].shm_size_gi`: {e}")))?;
                    overrides =
                        crate::api::merge_dynamic(overrides.into(), volume.into()).cast::<Map>();
                }
                let settings = map_at("queue_settings")?;
                let mut entry = Map::new();
                if !overrides.is_empty() {
                    entry.insert("templateOverrides".into(), overrides.into());
                }
                if !settings.is_empty() {
                    entry.insert("queueSettings".into(), settings.into());
                }
                let name = q.get("name").cloned().unwrap_or(Dynamic::UNIT);
                out.insert(crate::api::display(&name).into(), entry.into());
            }
            Ok(out)
        })
    }

    /// The `/dev/shm` of large-model deployments: a memory-backed `dshm` volume of `size_gi`
    /// GiB mounted at /dev/shm, with the keys the generation's chart takes
    /// (`volumes`/`volumeMounts` for repo, `extraVolumes`/`extraVolumeMounts` for oci), and
    /// with `vllm` the VLLM_SKIP_P2P_CHECK environment variable. For one queue's
    /// templateOverrides or for basePodTemplate.
    ///
    /// # Example
    /// ```rhai
    /// let shm = dshm_volume(16, "repo", true);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn dshm_volume(
        size_gi: Dynamic,
        generation: &str,
        vllm: bool,
    ) -> Result<Map, Box<EvalAltResult>> {
        dshm(&size_gi, generation, vllm).map_err(|e| invalid("dshm_volume", e))
    }
}
