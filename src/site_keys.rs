//! The keys a site file may have, and the check that refuses the others (`wiat: true`,
//! `agent: {namspace: x}`) with a did-you-mean.
//!
//! One source of truth serves both the schema (`clearml-script schema`, whose closed maps say
//! `additionalProperties: false`) and this check: the schema is built from the stdlib's rules,
//! its `get(site, "key", default)` calls, and [`reads`]: every key path the standard playbooks
//! and the stdlib read (`site.a.b`, `get(site, "a.b")`, `require(site, "a")`, the same through
//! `this` in a stdlib method called on the site (`get(this, "a.b")`), and the same
//! through a variable bound to a part of the site, such as `let a = site.agent; get(a, "queues")`
//! or `for q in get(a, "queues", [])`, whose entries' keys are `agent.queues[].name`).
//! Free-form maps (`extra_values`, a rule's `map`) take any key.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::Value as J;

use crate::api::queues::QUEUE_KEYS;
use crate::api::users::USER_KEYS;
use crate::site::Site;
use crate::value::{Value, join_path};

/// Keys whose maps hold whatever a chart or a server takes: any key is accepted below them.
pub const FREE_FORM: &[&str] = &[
    "extra_values",
    "settings",
    "template_overrides",
    "queue_settings",
    "base_pod_template",
    "internal_credentials",
];

/// Every key path the standard playbooks and the stdlib read, list entries as `path[]`
/// (`agent.queues[].name`). A static scan, one function body at a time, that follows the
/// variables bound to a part of the site.
pub fn reads() -> BTreeSet<String> {
    let fn_start = regex::Regex::new(r"(?m)^\s*(?:private\s+)?fn\s").expect("regex");
    let read_call =
        // a literal ending in `.` is a prefix joined to a variable (`"extra_env." + server`)
        regex::Regex::new(r#"\b(?:get|require|has)\(\s*([A-Za-z_]\w*)\s*,\s*"([A-Za-z0-9_.]*\w)""#)
            .expect("regex");
    let read_dot =
        regex::Regex::new(r"\b([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)(\s*\()?").expect("regex");
    let bind = regex::Regex::new(
        r#"^\s*(?:let|const)\s+([A-Za-z_]\w*)\s*=\s*(.*)$|\bfor\s+(?:\(\s*([A-Za-z_]\w*)\s*,\s*\w+\s*\)|([A-Za-z_]\w*))\s+in\s+(.*)$"#,
    )
    .expect("regex");
    let expr_call =
        regex::Regex::new(r#"^(?:get|require)\(\s*([A-Za-z_]\w*)\s*,\s*"([A-Za-z0-9_.]*\w)""#)
            .expect("regex");
    let expr_dot =
        regex::Regex::new(r"^([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)\s*(?:[;{]|$)").expect("regex");
    // `for k in ["a", "b"] { get(x, k, ()) }`: a read of each literal
    let literal_loop =
        regex::Regex::new(r#"\bfor\s+([A-Za-z_]\w*)\s+in\s+\[([^\]]*)\]"#).expect("regex");
    let read_var = regex::Regex::new(r#"\bget\(\s*([A-Za-z_]\w*)\s*,\s*([A-Za-z_]\w*)\s*[,)]"#)
        .expect("regex");
    let literal = regex::Regex::new(r#""([A-Za-z0-9_]+)""#).expect("regex");
    // `queue_problems(this, "agent.queues")` and the other queue built-ins read each entry's keys
    let queue_call = regex::Regex::new(
        r#"\bqueue_(?:problems|names|entries)\(\s*([A-Za-z_]\w*)\s*,\s*"([A-Za-z0-9_.]*\w)""#,
    )
    .expect("regex");
    // `fixed_user_problems(this)` and the other fixed-user built-ins read each user's keys
    let users_call = regex::Regex::new(
        r#"\bfixed_user(?:_problems|s_hocon|_passwords_given)\(\s*([A-Za-z_]\w*)\s*[,)]"#,
    )
    .expect("regex");
    // `get(a, "queues", []).map(|q| …)`, `queues.map(|q| …)`: the closure's parameter is an entry
    let map_bind = regex::Regex::new(
        r#"((?:get|require)\(\s*[A-Za-z_]\w*\s*,\s*"[A-Za-z0-9_.]+"[^)]*\)|\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.map\(\|\s*([A-Za-z_]\w*)\s*\|"#,
    )
    .expect("regex");
    let mut out = BTreeSet::new();
    let sources = crate::embedded::files().iter().filter(|(p, _)| {
        (p.starts_with("scripts/") || p.starts_with("stdlib/")) && p.ends_with(".rhai")
    });
    for (_, text) in sources {
        let mut starts: Vec<usize> = fn_start.find_iter(text).map(|m| m.start()).collect();
        starts.insert(0, 0);
        starts.push(text.len());
        for w in starts.windows(2) {
            let mut aliases: HashMap<String, String> = HashMap::new();
            aliases.insert("site".into(), String::new());
            // a stdlib method called on the site (`site.values_hosts()`) reads it as `this`
            aliases.insert("this".into(), String::new());
            let mut literals: HashMap<String, Vec<String>> = HashMap::new();
            for line in text[w[0]..w[1]].lines() {
                let code = line.split("//").next().unwrap_or("");
                if let Some(c) = literal_loop.captures(code) {
                    let keys = literal.captures_iter(&c[2]).map(|l| l[1].to_string());
                    literals.insert(c[1].to_string(), keys.collect());
                }
                for c in read_var.captures_iter(code) {
                    if let (Some(p), Some(keys)) = (aliases.get(&c[1]), literals.get(&c[2])) {
                        out.extend(keys.iter().map(|k| join_path(p, k)));
                    }
                }
                let code = strip_strings_but_keys(code);
                let prefixed = |base: &str, rest: &str, aliases: &HashMap<String, String>| {
                    aliases.get(base).map(|p| {
                        let rest = rest.trim_start_matches('.');
                        match (p.is_empty(), rest.is_empty()) {
                            (_, true) => p.clone(),
                            (true, false) => rest.to_string(),
                            (false, false) => format!("{p}.{rest}"),
                        }
                    })
                };
                for c in read_call.captures_iter(&code) {
                    if let Some(p) = prefixed(&c[1], &c[2], &aliases)
                        && !p.is_empty()
                    {
                        out.insert(p);
                    }
                }
                let lists = queue_call
                    .captures_iter(&code)
                    .map(|c| (c.get(1), c.get(2).map_or("", |m| m.as_str()), QUEUE_KEYS))
                    .chain(
                        users_call
                            .captures_iter(&code)
                            .map(|c| (c.get(1), "fixed_users", USER_KEYS)),
                    );
                for (var, path, keys) in lists {
                    if let Some(p) = var.and_then(|v| prefixed(v.as_str(), path, &aliases)) {
                        out.extend(keys.iter().map(|k| format!("{p}[].{k}")));
                    }
                }
                for c in read_dot.captures_iter(&code) {
                    let mut chain = c[2].to_string();
                    if c.get(3).is_some() {
                        // `x.a.len()`: the last part is a method
                        chain.truncate(chain.rfind('.').unwrap_or(0));
                    }
                    if let Some(p) = prefixed(&c[1], &chain, &aliases)
                        && !p.is_empty()
                    {
                        out.insert(p);
                    }
                }
                for c in map_bind.captures_iter(&code) {
                    let expr = &c[1];
                    let target = if let Some(e) = expr_call.captures(expr) {
                        prefixed(&e[1], &e[2], &aliases)
                    } else if let Some(e) = expr_dot.captures(expr) {
                        prefixed(&e[1], &e[2], &aliases)
                    } else {
                        None
                    };
                    if let Some(p) = target {
                        aliases.insert(c[2].to_string(), format!("{p}[]"));
                    }
                }
                if let Some(c) = bind.captures(&code) {
                    let (name, expr, entries) = match (c.get(1), c.get(3).or(c.get(4))) {
                        (Some(n), _) => (n.as_str(), c.get(2).map_or("", |m| m.as_str()), false),
                        (None, Some(n)) => (n.as_str(), c.get(5).map_or("", |m| m.as_str()), true),
                        _ => continue,
                    };
                    let expr = expr.trim();
                    let target = if let Some(e) = expr_call.captures(expr) {
                        prefixed(&e[1], &e[2], &aliases)
                    } else if let Some(e) = expr_dot.captures(expr) {
                        prefixed(&e[1], &e[2], &aliases)
                    } else {
                        None
                    };
                    match target {
                        Some(p) if entries => {
                            aliases.insert(name.to_string(), format!("{p}[]"));
                        }
                        Some(p) => {
                            aliases.insert(name.to_string(), p);
                        }
                        None => {
                            aliases.remove(name);
                        }
                    }
                }
            }
        }
    }
    out
}

/// The line with its string literals blanked, except a literal that is a `get(x, "key")`
/// argument (so `"site.yaml"` in a message is no read of `site.yaml`).
fn strip_strings_but_keys(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_str: Option<char> = None;
    let mut lit = String::new();
    for ch in line.chars() {
        match in_str {
            None if ch == '"' || ch == '`' => {
                in_str = Some(ch);
                lit.clear();
            }
            None => out.push(ch),
            Some(q) if ch == q => {
                in_str = None;
                let keyish = lit
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                if keyish && out.trim_end().ends_with(',') {
                    out.push('"');
                    out.push_str(&lit);
                    out.push('"');
                } else {
                    out.push_str("\"\"");
                }
            }
            Some(_) => lit.push(ch),
        }
    }
    out
}

/// The site schema, built once per process, and once per build of the tool: it depends only
/// on the binary (its code and the stdlib it embeds), so it is kept in the tool's cache
/// ([`crate::tool_cache`]) under the binary's identity and read from there by the next runs.
fn schema() -> Result<&'static J, String> {
    static SCHEMA: OnceLock<Result<J, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            cached_schema(
                crate::tool_cache::dir().as_deref(),
                std::env::current_exe().ok().as_deref(),
            )
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The schema from the cache in `dir` when it holds the one built by the binary `exe`, else
/// built (and cached).
fn cached_schema(
    dir: Option<&std::path::Path>,
    exe: Option<&std::path::Path>,
) -> Result<J, String> {
    let identity = exe.and_then(crate::tool_cache::identity);
    let (Some(dir), Some(identity)) = (dir, identity) else {
        return crate::schema::build();
    };
    if let Some(schema) = crate::tool_cache::lookup(dir, "site-schema", &identity)
        && schema.get("properties").is_some_and(J::is_object)
    {
        return Ok(schema);
    }
    let schema = crate::schema::build()?;
    crate::tool_cache::store(dir, "site-schema", &identity, &schema);
    Ok(schema)
}

/// One unknown key: where it was set and what it may have meant.
#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    pub path: String,
    pub key: String,
    pub suggestion: Option<String>,
}

/// The keys of `values` that the schema does not know, in path order.
pub fn unknown_keys(values: &Value) -> Result<Vec<Unknown>, String> {
    let mut out = Vec::new();
    walk(values, schema()?, "", &mut out);
    Ok(out)
}

/// The child schemas of an object schema, looking through `anyOf` (a value or `{env: …}`).
fn object_schema(node: &J) -> Option<&J> {
    if node.get("properties").is_some() {
        return Some(node);
    }
    node.get("anyOf")?
        .as_array()?
        .iter()
        .find(|s| s.get("properties").is_some())
}

fn walk(v: &Value, node: &J, path: &str, out: &mut Vec<Unknown>) {
    match v {
        Value::Map(m) => {
            let Some(obj) = object_schema(node) else {
                return;
            };
            let props = obj["properties"].as_object();
            let closed = obj.get("additionalProperties") == Some(&J::Bool(false));
            for (k, child) in m {
                let p = join_path(path, k);
                match props.and_then(|ps| ps.get(k)) {
                    Some(s) => walk(child, s, &p, out),
                    None if closed => {
                        let known: Vec<String> = props
                            .map(|ps| ps.keys().cloned().collect())
                            .unwrap_or_default();
                        out.push(Unknown {
                            path: p,
                            key: k.clone(),
                            suggestion: crate::check::suggest(k, &known),
                        });
                    }
                    None => {}
                }
            }
        }
        Value::List(items) => {
            if let Some(item) = node.get("items") {
                for (i, child) in items.iter().enumerate() {
                    walk(child, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The message of each unknown key of the site (`file:line:col: unknown key …`), leaving out
/// the keys `own` says a script reads itself.
pub fn messages(site: &Site, own: &dyn Fn(&Unknown) -> bool) -> Result<Vec<String>, String> {
    Ok(unknown_keys(&site.values)?
        .into_iter()
        .filter(|u| !own(u))
        .map(|u| {
            // a key made by a deeper one (`--set agnet.namespace=x` makes `agnet`) has no
            // place of its own: the place of the first key below it
            let below = (format!("{}.", u.path), format!("{}[", u.path));
            let at = site
                .locations
                .get(&u.path)
                .or_else(|| {
                    site.locations
                        .iter()
                        .filter(|(k, _)| k.starts_with(&below.0) || k.starts_with(&below.1))
                        .min_by_key(|(k, _)| k.as_str())
                        .map(|(_, l)| l)
                })
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            let hint = match &u.suggestion {
                Some(s) => {
                    let parent = u.path.strip_suffix(&u.key).unwrap_or("");
                    format!("; did you mean `{parent}{s}`?")
                }
                None => "; no playbook reads it (free-form chart values go under `extra_values`)"
                    .to_string(),
            };
            format!("{at}unknown key `{}`{hint}", u.path)
        })
        .collect())
}

/// Report the site's unknown keys before anything runs. For a standard playbook (`script:
/// None`) an error, all of them together, answering exit 2. For a site's own script (its text)
/// or the REPL (`Some("")`) a warning, leaving out the keys the script's text names (a site's
/// playbook may read and validate keys of its own). `None`: go on.
pub fn refuse_unknown(site: &Site, script: Option<&str>) -> Option<i32> {
    let own = |u: &Unknown| {
        script.is_some_and(|text| {
            regex::Regex::new(&format!(r"\b{}\b", regex::escape(&u.key)))
                .is_ok_and(|re| re.is_match(text))
        })
    };
    let found = match messages(site, &own) {
        Ok(m) => m,
        Err(e) => {
            crate::ui::err(&format!(
                "error: the site's keys could not be checked: {e}\n"
            ));
            return Some(2);
        }
    };
    if found.is_empty() {
        return None;
    }
    if script.is_none() {
        crate::ui::err(&format!(
            "error: the site values have {} unknown key{}; nothing was changed:\n  {}\n",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            found.join("\n  ")
        ));
        Some(2)
    } else {
        for m in found {
            crate::ui::err(&format!(
                "warning: {m} (neither a standard playbook nor this script reads it)\n"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site holding `path` (`a.b`, `a[].b`: a list of one entry).
    fn site_with(path: &str) -> Value {
        let mut v = Value::Str("x".into());
        for part in path.rsplit('.') {
            let (key, list) = match part.strip_suffix("[]") {
                Some(k) => (k, true),
                None => (part, false),
            };
            if list {
                v = Value::List(vec![v]);
            }
            v = Value::Map([(key.to_string(), v)].into_iter().collect());
        }
        v
    }

    /// Every key a standard playbook or a stdlib module reads straight from `site` (or `this`,
    /// the site in a stdlib method; found here by a plain grep, independent of [`reads`]), and
    /// the ones read through a variable, are known to the check: a playbook never reads a key
    /// the check refuses.
    #[test]
    fn every_key_a_playbook_reads_is_known_to_the_check() {
        let grep = regex::Regex::new(
            r#"(?:get|require)\((?:site|this), "([A-Za-z0-9_.]*\w)"|\b(?:site|this)((?:\.[a-z_]+)+)(\s*\()?"#,
        )
        .unwrap();
        let mut read: BTreeSet<String> = BTreeSet::new();
        for (path, text) in crate::embedded::files() {
            if !(path.starts_with("scripts/") || path.starts_with("stdlib/")) {
                continue;
            }
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                for c in grep.captures_iter(code) {
                    let key = match (c.get(1), c.get(2)) {
                        (Some(k), _) => k.as_str().to_string(),
                        // `site.a.b`, or `site.a.f()` (a method: the key is `a`)
                        (None, Some(chain)) => {
                            let chain = &chain.as_str()[1..];
                            match (c.get(3), chain.rsplit_once('.')) {
                                (None, _) => chain.to_string(),
                                (Some(_), Some((key, _))) => key.to_string(),
                                (Some(_), None) => continue,
                            }
                        }
                        _ => continue,
                    };
                    if key != "yaml" {
                        read.insert(key);
                    }
                }
            }
        }
        assert!(read.len() > 40, "{read:?}");
        // read through a variable (`let a = site.agent; get(a, \"queues\")`, `for q in …`)
        for key in [
            "agent.queues[].name",
            "agent.queues[].shm_size_gi",
            "agent.namespace",
            "gateway.extra_values",
            "gateway.service_type",
            "apps.dir",
            "sso.settings",
            "sso.idp_logout",
            "sso.audience",
            "fixed_users[].username",
            "supervisor.sec_groups",
            "preflight.skip",
            "uninstall.purge",
            "support_bundle.out",
            "status.api_url",
            "rollback_on_failure",
            "extra_values",
        ] {
            read.insert(key.to_string());
        }
        for key in &read {
            let found = unknown_keys(&site_with(key)).unwrap();
            assert!(found.is_empty(), "{key} is read but refused: {found:?}");
        }
    }

    #[test]
    fn the_example_sites_have_no_unknown_keys_and_a_misspelling_is_found() {
        for (name, text) in crate::embedded::examples() {
            let v = crate::site::parse_yaml(text).unwrap();
            assert_eq!(unknown_keys(&v).unwrap(), vec![], "{name}");
        }
        let found = unknown_keys(&site_with("agent.namspace")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].suggestion.as_deref(), Some("namespace"));
        assert!(
            unknown_keys(&site_with("extra_values.any.thing"))
                .unwrap()
                .is_empty()
        );
        assert!(
            unknown_keys(&site_with("agent.queues[].template_overrides.x"))
                .unwrap()
                .is_empty()
        );
    }

    /// The schema read from the cache is the one built; an entry of another binary, or a
    /// corrupt one, is not used: the schema is built again and the entry rewritten.
    #[test]
    fn the_cached_schema_is_the_built_one_and_a_bad_entry_is_built_again() {
        let built = crate::schema::build().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let exe = cache.path().join("clearml-script");
        std::fs::write(&exe, "a build").unwrap();
        assert_eq!(
            cached_schema(Some(cache.path()), Some(&exe)).unwrap(),
            built
        );
        let entry = std::fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("an entry");
        assert_eq!(
            cached_schema(Some(cache.path()), Some(&exe)).unwrap(),
            built
        );
        // an entry whose schema was edited (no longer its digest): built again
        let text = std::fs::read_to_string(&entry).unwrap();
        let forged = text.replace("\"namespace\"", "\"namspace\"");
        assert_ne!(forged, text);
        std::fs::write(&entry, forged).unwrap();
        assert_eq!(
            cached_schema(Some(cache.path()), Some(&exe)).unwrap(),
            built
        );
        // cut short: built again, and the entry whole again
        std::fs::write(&entry, &text[..text.len() / 2]).unwrap();
        assert_eq!(
            cached_schema(Some(cache.path()), Some(&exe)).unwrap(),
            built
        );
        assert_eq!(std::fs::read_to_string(&entry).unwrap(), text);
        // a forged entry with a good digest that is no schema: built again
        let id = crate::tool_cache::identity(&exe).unwrap();
        crate::tool_cache::store(cache.path(), "site-schema", &id, &serde_json::json!([]));
        assert_eq!(
            cached_schema(Some(cache.path()), Some(&exe)).unwrap(),
            built
        );
        // another build (the binary changed in place): its entry replaces the old one
        std::fs::write(&exe, "another build").unwrap();
        assert_eq!(
            cached_schema(Some(cache.path()), Some(&exe)).unwrap(),
            built
        );
        let n = std::fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count();
        assert_eq!(n, 1);
        assert_eq!(
            crate::tool_cache::lookup(
                cache.path(),
                "site-schema",
                &crate::tool_cache::identity(&exe).unwrap()
            )
            .as_ref(),
            Some(&built)
        );
        // no cache directory, or no binary known: built
        assert_eq!(cached_schema(None, Some(&exe)).unwrap(), built);
        assert_eq!(cached_schema(Some(cache.path()), None).unwrap(), built);
    }

    #[test]
    fn reads_follow_variables_bound_to_the_site() {
        let r = reads();
        for key in [
            "agent.queues[].name",
            "gateway.extra_values",
            "base_domain",
            "support_bundle.out",
            "sso.audience",
            "fixed_users[].username",
        ] {
            assert!(r.contains(key), "{key} not found in {r:?}");
        }
        assert!(!r.iter().any(|k| k.contains("yaml")), "{r:?}");
        // `get(site, "extra_env." + server, [])` reads the rules' keys, not a key `extra_env.`
        assert!(!r.iter().any(|k| k.ends_with('.')), "{r:?}");
    }
}
