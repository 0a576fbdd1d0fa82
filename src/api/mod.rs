//! The built-ins, one Rhai plugin module per domain. Their `///` comments are the user
//! documentation (`clearml-script docs`, `:help` in the REPL, `.d.rhai` definitions).

pub mod airgap_api;
pub mod apps_builtins;
pub mod bounded;
pub mod checks;
pub mod clearml_api;
pub mod cluster;
pub mod ops_api;
pub mod options;
pub mod queues;
pub mod run;
pub mod secrets;
pub mod users;
pub mod values;

use rhai::{Dynamic, Engine, EvalAltResult, Map, exported_module};

use crate::failure::invalid;
use crate::value::Value;

/// Register every built-in module into the engine's global namespace.
pub fn register(engine: &mut Engine) {
    engine.register_global_module(exported_module!(values::values_api).into());
    engine.register_global_module(exported_module!(queues::queues_api).into());
    engine.register_global_module(exported_module!(users::users_api).into());
    engine.register_global_module(exported_module!(checks::checks_api).into());
    engine.register_global_module(exported_module!(secrets::secrets_api).into());
    engine.register_global_module(exported_module!(cluster::cluster_api).into());
    engine.register_global_module(exported_module!(apps_builtins::apps_builtins).into());
    engine.register_global_module(exported_module!(airgap_api::airgap_api).into());
    engine.register_global_module(exported_module!(clearml_api::clearml_api).into());
    engine.register_global_module(exported_module!(ops_api::ops_api).into());
    engine.register_global_module(exported_module!(run::run_api).into());
    engine.register_global_module(exported_module!(run::failure_api).into());
    bounded::register(engine);
}

/// A script value as data, or a validation error naming the built-in.
pub fn to_value(builtin: &str, d: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    Value::from_dynamic(d).map_err(|e| invalid(builtin, e))
}

/// The value at a dotted key path of nested maps.
pub fn map_at_path(root: &Map, path: &str) -> Option<Dynamic> {
    // walked by reference: only the value found is copied (the site can hold thousands of
    // queues, and `get(site, …)` is called everywhere)
    at_path(root, path, |d| d.cloned())
}

/// `f` with the value at a dotted key path, read by reference (`None` when a key on the way is
/// missing or a value on the way is no map).
pub fn at_path<R>(root: &Map, path: &str, f: impl FnOnce(Option<&Dynamic>) -> R) -> R {
    fn walk<'a, R>(
        cur: Option<&Dynamic>,
        mut parts: impl Iterator<Item = &'a str>,
        f: impl FnOnce(Option<&Dynamic>) -> R,
    ) -> R {
        match (cur, parts.next()) {
            (cur, None) => f(cur),
            (None, Some(_)) => f(None),
            (Some(d), Some(part)) => match d.read_lock::<Map>() {
                Some(m) => walk(m.get(part), parts, f),
                None => f(None),
            },
        }
    }
    let mut parts = path.split('.');
    match parts.next() {
        Some(first) => walk(root.get(first), parts, f),
        None => f(None),
    }
}

/// Deep merge of script values: maps merge, anything else in `b` replaces `a`.
pub fn merge_dynamic(a: Dynamic, b: Dynamic) -> Dynamic {
    // both are taken whole, not copied: a chart's values can hold thousands of entries
    if !(a.is_map() && b.is_map()) {
        return b;
    }
    let mut am = a.cast::<Map>();
    for (k, bv) in b.cast::<Map>() {
        let merged = match am.remove(&k) {
            Some(av) => merge_dynamic(av, bv),
            None => bv,
        };
        am.insert(k, merged);
    }
    Dynamic::from_map(am)
}

/// A script value as text, the way `print` shows it, with secrets masked. Rhai's own `Display`
/// of a value shows host types by their Rust type name, so messages built outside a script
/// call (logs, thrown errors) go through this.
pub fn display(d: &Dynamic) -> String {
    if d.is_string() {
        return d.to_string();
    }
    nested(d)
}

fn nested(d: &Dynamic) -> String {
    if let Some(s) = d.read_lock::<crate::secret::Secret>() {
        return s.to_string();
    }
    if let Some(f) = d.read_lock::<crate::failure::Failure>() {
        return f.to_string();
    }
    if d.is_string() {
        return format!("{:?}", d.to_string());
    }
    if let Some(arr) = d.read_lock::<rhai::Array>() {
        let items: Vec<String> = arr.iter().map(nested).collect();
        return format!("[{}]", items.join(", "));
    }
    if let Some(map) = d.read_lock::<Map>() {
        let items: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{:?}: {}", k.as_str(), nested(v)))
            .collect();
        return format!("#{{{}}}", items.join(", "));
    }
    d.to_string()
}

/// Compact JSON with `, ` between list items and `: `-less maps, the form the install guide
/// writes lists in (`["users", "admins", "queue_admins"]`).
pub fn spaced_json(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() + 8);
    let mut in_string = false;
    let mut escaped = false;
    for c in compact.chars() {
        out.push(c);
        if in_string {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => in_string = false,
                _ => escaped = false,
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            out.push(' ');
        }
    }
    out
}
