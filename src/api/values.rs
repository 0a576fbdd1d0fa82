//! Values built-ins: YAML in and out, deep merge, key-path lookups, environment variables.

use rhai::plugin::*;

/// Append `value` (a string or a secret) to `out` as a quoted HOCON (and JSON) string: `"`,
/// `\` and newlines escaped, wrapped in double quotes. `Some(covered)` for a secret (whether
/// the redactor masks the quoted form already: the secret is a covered one and quoting left it
/// unchanged), `None` for a string.
pub(crate) fn hocon_quote_into(out: &mut String, value: &Dynamic) -> Result<Option<bool>, String> {
    let quote = |out: &mut String, s: &str| {
        let start = out.len();
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
        out.len() - start
    };
    if let Some(s) = value.read_lock::<crate::secret::Secret>() {
        let len = quote(out, s.expose());
        // unchanged inside the quotes: the leaf masks it already
        return Ok(Some(s.covered() && len == s.expose().len() + 2));
    }
    if value.is_string() {
        quote(out, &value.to_string());
        return Ok(None);
    }
    Err(format!(
        "expected a string or a secret, not {}",
        value.type_name()
    ))
}

#[export_module]
pub mod values_api {
    use crate::api::{map_at_path, to_value};
    use crate::failure::invalid;
    use crate::runtime;
    use crate::secret::{Secret, is_secret_key};
    use crate::site::{mark_secrets, parse_located};
    use crate::value::json_to_yaml;
    use rhai::{Dynamic, EvalAltResult, Map};

    /// Parse YAML text into a value (maps, arrays, strings, numbers, booleans, `()` for null).
    /// Scalars are read as Helm reads them: `yes`/`no` and `on`/`off` are booleans; quote them
    /// to keep strings.
    ///
    /// # Example
    /// ```rhai
    /// let v = parse_yaml("service:\n  type: ClusterIP\nports: [80, 443]");
    /// print(v.service.type);   // ClusterIP
    /// ```
    #[rhai_fn(return_raw)]
    pub fn parse_yaml(text: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        parse_located(text, "YAML text")
            .map(|(v, _)| v.to_dynamic())
            .map_err(|e| invalid("parse_yaml", e))
    }

    /// Write a value as YAML text, the way it is handed to helm. Secrets are written as
    /// `<redacted>`: the real value reaches helm only through the tool's own 0600 files.
    ///
    /// # Example
    /// ```rhai
    /// print(to_yaml(#{ ingress: #{ enabled: true, hostName: "app.example.com" } }));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn to_yaml(value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        let v = to_value("to_yaml", &value)?;
        json_to_yaml(&v.redacted()).map_err(|e| invalid("to_yaml", e))
    }

    /// Write a value as compact JSON (list items separated by `, `, as the ClearML server's
    /// HOCON settings take them in environment variables). Secrets are written as `<redacted>`.
    ///
    /// # Example
    /// ```rhai
    /// to_json(["users", "admins"])   // ["users", "admins"]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn to_json(value: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let v = to_value("to_json", &value)?;
        // a value holding a secret gives a secret: the JSON with the real values, which prints
        // as <redacted> and reaches helm or an API as itself
        let mut secret = false;
        v.walk_leaves("", &mut |_, leaf| {
            secret |= matches!(leaf, crate::value::Value::Secret(_))
        });
        let json = if secret { v.reveal() } else { v.redacted() };
        let compact =
            serde_json::to_string(&json).map_err(|e| invalid("to_json", e.to_string()))?;
        let text = crate::api::spaced_json(&compact);
        Ok(if secret {
            Dynamic::from(crate::secret::Secret::new(text))
        } else {
            text.into()
        })
    }

    /// A map as compact JSON: the same as for any value (Rhai's own `to_json` of a map would
    /// write a secret as its type name).
    ///
    /// # Example
    /// ```rhai
    /// to_json(#{ groups: ["users"] })   // {"groups": ["users"]}
    /// ```
    #[rhai_fn(name = "to_json", return_raw)]
    pub fn map_to_json(value: Map) -> Result<Dynamic, Box<EvalAltResult>> {
        to_json(value.into())
    }

    /// A string as a quoted HOCON (and JSON) string: `"` and `\` escaped, wrapped in double
    /// quotes. A secret stays a secret. The ClearML server reads `CLEARML__…` environment values
    /// as HOCON, where an unquoted `@` or `:` breaks the value.
    ///
    /// # Example
    /// ```rhai
    /// hocon_quote("admin@example.com")   // "\"admin@example.com\""
    /// ```
    #[rhai_fn(return_raw)]
    pub fn hocon_quote(value: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut out = String::new();
        match super::hocon_quote_into(&mut out, &value) {
            Ok(None) => Ok(out.into()),
            Ok(Some(covered)) => Ok(Dynamic::from(Secret::derived(out, covered))),
            Err(e) => Err(invalid("hocon_quote", e)),
        }
    }

    /// Read a YAML file. A relative path is taken from the playbook's directory. Keys that name
    /// credentials (password, secret, token, key/secret pairs) are marked secret, as for the site
    /// values.
    ///
    /// # Example
    /// ```rhai
    /// let extra = read_yaml("extra-values.yaml");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn read_yaml(path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let full = runtime::with(|rt| rt.base_dir.join(path));
        let text = crate::fsutil::read_file_capped(&full, crate::fsutil::VALUES_LIMIT)
            .map_err(|e| invalid("read_yaml", format!("cannot read {}: {e}", full.display())))?;
        let (mut v, _) = parse_located(&text, &full.display().to_string())
            .map_err(|e| invalid("read_yaml", e))?;
        mark_secrets(&mut v);
        Ok(v.to_dynamic())
    }

    /// Deep merge: maps merge key by key; lists and scalars in `b` replace those in `a`.
    /// Neither argument is changed.
    ///
    /// # Example
    /// ```rhai
    /// let v = merge(#{ a: 1, s: #{ x: 1 } }, #{ b: 2, s: #{ y: 2 } });
    /// // #{ a: 1, b: 2, s: #{ x: 1, y: 2 } }
    /// ```
    pub fn merge(a: Dynamic, b: Dynamic) -> Dynamic {
        crate::api::merge_dynamic(a, b)
    }

    /// The indexes of the items equal (as text) to an earlier item of the list (`()` items are
    /// left out): one pass, so
    /// a check of thousands of names stays linear (a script that fills a map of seen names
    /// pays for Rhai's size check of the whole map at each insertion).
    ///
    /// # Example
    /// ```rhai
    /// let twice = duplicates(["a", "b", "a"]);
    /// // [2]
    /// ```
    pub fn duplicates(list: rhai::Array) -> rhai::Array {
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        list.iter()
            .enumerate()
            .filter(|(_, v)| !v.is_unit() && !seen.insert(crate::api::display(v)))
            .map(|(i, _)| Dynamic::from(i as i64))
            .collect()
    }

    /// A map from a list of `[key, value]` pairs, built in one pass (later keys win).
    ///
    /// # Example
    /// ```rhai
    /// let m = to_map([["a", 1], ["b", 2]]);
    /// // #{ a: 1, b: 2 }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn to_map(pairs: rhai::Array) -> Result<Map, Box<rhai::EvalAltResult>> {
        let mut out = Map::new();
        for (i, pair) in pairs.into_iter().enumerate() {
            let Some(mut kv) = pair.try_cast::<rhai::Array>().filter(|kv| kv.len() == 2) else {
                return Err(crate::failure::invalid(
                    "to_map",
                    format!("item {i} is not a [key, value] pair"),
                ));
            };
            let value = kv.pop().expect("two");
            let key = crate::api::display(&kv.pop().expect("two"));
            out.insert(key.into(), value);
        }
        Ok(out)
    }

    /// The value at a dotted key path, or `default` when any key on the way is missing.
    ///
    /// # Example
    /// ```rhai
    /// let ns = get(site, "agent.namespace", "clearml-agents");
    /// ```
    #[rhai_fn(pure)]
    pub fn get(map: &mut Map, path: &str, default: Dynamic) -> Dynamic {
        match map_at_path(map, path) {
            Some(v) if !v.is_unit() => v,
            _ => default,
        }
    }

    /// The value at a dotted key path; a missing key is a validation error (exit 2) that names
    /// the key path and, for site values, how to provide it.
    ///
    /// # Example
    /// ```rhai
    /// let domain = require(site, "base_domain");
    /// ```
    #[rhai_fn(return_raw, pure)]
    pub fn require(map: &mut Map, path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        match map_at_path(map, path) {
            Some(v) if !v.is_unit() => Ok(v),
            _ => Err(invalid(
                "require",
                format!(
                    "the required key `{path}` is missing: {}",
                    crate::validate::missing_hint(path)
                ),
            )),
        }
    }

    /// The value of an environment variable; unset is a validation error naming it. A variable
    /// whose name says it holds a credential (`…_TOKEN`, `…_PASSWORD`, `…_SECRET`) is a secret.
    ///
    /// # Example
    /// ```rhai
    /// let token = env("CLEARML_GITHUB_TOKEN");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn env(name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        match std::env::var(name) {
            Ok(v) => Ok(env_value(name, v)),
            Err(_) => Err(invalid(
                "env",
                format!(
                    "the environment variable {name} is not set: export it, or use env(\"{name}\", default)"
                ),
            )),
        }
    }

    /// The value of an environment variable, or `default` when it is unset.
    ///
    /// # Example
    /// ```rhai
    /// let kube_context = env("KUBE_CONTEXT", "");
    /// ```
    #[rhai_fn(name = "env")]
    pub fn env_or(name: &str, default: Dynamic) -> Dynamic {
        match std::env::var(name) {
            Ok(v) => env_value(name, v),
            Err(_) => default,
        }
    }

    #[rhai_fn(skip)]
    pub fn env_value(name: &str, value: String) -> Dynamic {
        if is_secret_key(name, &[]) {
            Dynamic::from(Secret::new(value))
        } else {
            value.into()
        }
    }
}
