//! Validation built-ins: a playbook checks its values first, and every problem is reported
//! together (exit 2) before the first action.

use rhai::plugin::*;

#[export_module]
pub mod checks_api {
    use crate::api::to_value;
    use crate::failure::{Failure, invalid};
    use crate::runtime;
    use crate::validate::{self, KINDS};
    use crate::value::Value;
    use rhai::{Array, Dynamic, EvalAltResult, Map};

    /// Check values against rules and report every problem at once. `rules` maps a dotted key
    /// path to a rule: `domain`, `email`, `url`, `port`, `port_range` (a map with `start` and
    /// `end`), `size` (`32Gi`), `string`, `secret`, `bool`, `int`, `list` or `map`; a trailing
    /// `?` makes the key optional. Every string anywhere in `values` that still holds an
    /// angle-bracket placeholder such as `<BASE_DOMAIN>` is a problem too. Problems name the key
    /// path and, for site values, the file and line. Returns `values` when all is well; otherwise
    /// a validation error (exit 2), before anything is changed.
    ///
    /// # Example
    /// ```rhai
    /// validate(site, #{
    ///     base_domain: "domain",
    ///     "supervisor.email": "email",
    ///     "gateway.port_range": "port_range?",
    /// });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn validate(values: Dynamic, rules: Map) -> Result<Dynamic, Box<EvalAltResult>> {
        validate_with(values, rules, Array::new())
    }

    /// `validate(values, rules)` plus problems the playbook found itself (strings, or maps with
    /// `path` and `message`), all reported together.
    ///
    /// # Example
    /// ```rhai
    /// let problems = [];
    /// if site.users.len() == 0 { problems.push(#{ path: "users", message: "add at least one user" }); }
    /// validate(site, #{ base_domain: "domain" }, problems);
    /// ```
    #[rhai_fn(name = "validate", return_raw)]
    pub fn validate_with(
        values: Dynamic,
        rules: Map,
        problems: Array,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let v = to_value("validate", &values)?;
        let mut found: Vec<String> = Vec::new();
        let placeholders = validate::placeholders(&v);
        let describe = |path: &str, leaf: Option<&Value>| {
            runtime::with(|rt| match (leaf, rt.site.values.at_path(path)) {
                (Some(a), Some(b)) if a == b => rt.site.describe(path),
                _ => format!("`{path}`"),
            })
        };
        for (path, rule) in &rules {
            let rule = rule.to_string();
            let (kind, optional) = match rule.strip_suffix('?') {
                Some(k) => (k, true),
                None => (rule.as_str(), false),
            };
            if !KINDS.contains(&kind) && !validate::is_enumeration(kind) {
                return Err(invalid(
                    "validate",
                    format!(
                        "the rule for `{path}` is `{rule}`, which is not a rule; the rules are: {} (or alternatives such as `repo|oci`)",
                        KINDS.join(", ")
                    ),
                ));
            }
            let leaf = v.at_path(path);
            match leaf {
                None | Some(Value::Null) if optional => {}
                None => found.push(format!(
                    "`{path}` is missing ({kind}): {}",
                    if kind == "secret" {
                        validate::secret_hint(path)
                    } else {
                        validate::missing_hint(path)
                    }
                )),
                // given, as null (`~`, or an empty value), perhaps by a file layered over one
                // that has it: where it was emptied is the place to fix
                Some(Value::Null) => found.push(format!(
                    "{} is null ({kind}): {}",
                    describe(path, leaf),
                    if kind == "secret" {
                        validate::secret_hint(path)
                    } else {
                        "give it a value".to_string()
                    }
                )),
                Some(value) => {
                    let under_placeholder = placeholders
                        .iter()
                        .any(|(p, _)| p == path.as_str() || p.starts_with(&format!("{path}.")));
                    if !under_placeholder && let Err(e) = validate::check(kind, value) {
                        found.push(format!("{}: {e}", describe(path, leaf)));
                    } else if kind == "secret"
                        && let Some(problem) = validate::example_secret(value)
                    {
                        found.push(format!("{} {problem}", describe(path, leaf)));
                    }
                    if kind == "secret" {
                        // a value validated as a secret is one, whatever its key's name: it
                        // is masked in everything the tool writes from now on
                        if let Value::Str(plain) = value {
                            crate::secret::register(plain);
                        }
                    }
                }
            }
        }
        for (path, placeholder) in &placeholders {
            found.push(format!(
                "{} {}",
                describe(path, v.at_path(path)),
                validate::placeholder_message(placeholder)
            ));
        }
        for p in problems {
            if let Some(m) = p.clone().try_cast::<Map>() {
                let path = m.get("path").map(|d| d.to_string()).unwrap_or_default();
                let msg = m.get("message").map(|d| d.to_string()).unwrap_or_default();
                found.push(format!("{}: {msg}", describe(&path, v.at_path(&path))));
            } else {
                found.push(p.to_string());
            }
        }
        if found.is_empty() {
            return Ok(values);
        }
        // a problem two modules both report (the shared values' checks) is said once
        let mut seen = std::collections::HashSet::new();
        found.retain(|p| seen.insert(p.clone()));
        let n = found.len();
        Err(Failure::validation(
            "validate",
            format!(
                "{n} problem{} in the values; nothing was changed",
                if n == 1 { "" } else { "s" }
            ),
        )
        .with_problems(found)
        .into_rhai())
    }

    /// Every string in `values` that still holds an angle-bracket placeholder, as maps with
    /// `path` and `placeholder`.
    ///
    /// # Example
    /// ```rhai
    /// for p in placeholders(site) { print(`${p.path}: ${p.placeholder}`); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn placeholders(values: Dynamic) -> Result<Array, Box<EvalAltResult>> {
        let v = to_value("placeholders", &values)?;
        Ok(validate::placeholders(&v)
            .into_iter()
            .map(|(path, placeholder)| {
                let mut m = Map::new();
                m.insert("path".into(), path.into());
                m.insert("placeholder".into(), placeholder.into());
                Dynamic::from_map(m)
            })
            .collect())
    }

    /// Is `s` a domain name as Kubernetes ingress hosts need it (lowercase labels, at least two)?
    ///
    /// # Example
    /// ```rhai
    /// is_domain("clearml.example.com")   // true
    /// ```
    pub fn is_domain(s: &str) -> bool {
        validate::domain(s).is_ok()
    }

    /// Is `s` a plain email address (no quotes)?
    ///
    /// # Example
    /// ```rhai
    /// is_email("admin@example.com")   // true
    /// ```
    pub fn is_email(s: &str) -> bool {
        validate::email(s).is_ok()
    }

    /// Is `s` an http or https URL with a host?
    ///
    /// # Example
    /// ```rhai
    /// is_url("https://api.example.com")   // true
    /// ```
    pub fn is_url(s: &str) -> bool {
        validate::url(s).is_ok()
    }

    /// Is `n` a TCP port (1 to 65535)?
    ///
    /// # Example
    /// ```rhai
    /// is_port(8080)   // true
    /// ```
    pub fn is_port(n: i64) -> bool {
        validate::port(&Value::Int(n)).is_ok()
    }

    /// Is `range` a map `#{start, end}` of valid ports with start ≤ end?
    ///
    /// # Example
    /// ```rhai
    /// is_port_range(#{ start: 30000, end: 30100 })   // true
    /// ```
    pub fn is_port_range(range: Dynamic) -> bool {
        Value::from_dynamic(&range).is_ok_and(|v| validate::port_range(&v).is_ok())
    }

    /// Is `size` a Kubernetes quantity such as `32Gi` or `512Mi`, or a positive number?
    ///
    /// # Example
    /// ```rhai
    /// is_size("32Gi")   // true
    /// ```
    pub fn is_size(size: Dynamic) -> bool {
        Value::from_dynamic(&size).is_ok_and(|v| validate::size(&v).is_ok())
    }

    /// Stop with a validation error (exit 2): for a playbook's own checks, before any action.
    ///
    /// # Example
    /// ```rhai
    /// if site.agent.enabled && site.queues.len() == 0 { fail("agent.enabled needs at least one queue"); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn fail(message: &str) -> Result<(), Box<EvalAltResult>> {
        Err(invalid("fail", message))
    }

    /// Stop with a validation failure whose message holds a secret: shown masked.
    ///
    /// # Example
    /// ```rhai
    /// let token = secret("t0ken-value");
    /// if token.len() < 20 { fail(token + " is too short"); }
    /// ```
    #[rhai_fn(name = "fail", return_raw)]
    pub fn fail_secret(message: crate::secret::Secret) -> Result<(), Box<EvalAltResult>> {
        Err(invalid("fail", message.to_string()))
    }
}
