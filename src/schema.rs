//! `clearml-script schema`: a JSON Schema of the site values, for editors (the example sites
//! begin with `# yaml-language-server: $schema=…`).
//!
//! Built from what the tool itself checks: each stdlib module's `rules(site)` is run against
//! sites that switch every path and variant on (generation repo and oci, SSO by Auth0 and
//! Keycloak, the agent's Redis), so a key and its type come from the rules; a key the rules
//! always require when its path is enabled is required in the schema (the agent's, gateway's
//! and applications' keys when `enabled: true`). Defaults come from the stdlib's
//! `get(site, "key", default)` calls, descriptions from the comments above each key in the
//! example sites. Every value may also be given as `{env: NAME}` or `{file: PATH}`.
//! The keys the playbooks read ([`crate::site_keys::reads`]) are in it too, and every map of
//! known keys is closed (`additionalProperties: false`): the same schema is what
//! [`crate::site_keys`] checks a site's keys against when a run loads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::{Value as J, json};

use crate::engine::{self, Sources};
use crate::site::merge_into;
use crate::value::Value;

/// Where a site key may be set to one of a few values, the values (checked by the modules'
/// `problems` functions, which are code rather than rules). A rule that is itself an
/// enumeration (`service_type: "ClusterIP|NodePort|LoadBalancer?"`) gives its own values.
const ENUMS: &[(&str, &[&str])] = &[
    ("generation", &["repo", "oci"]),
    (
        "gateway.service_type",
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
    ),
];

/// Keys given as a pattern rather than a list: any provider id of lowercase letters, digits, `_`.
const PATTERNS: &[(&str, &str, &[&str])] = &[(
    "sso.provider",
    "^[a-z0-9_]+$",
    &["auth0", "keycloak", "okta", "google", "azure_ad"],
)];

/// The sections switched on by `SECTION.enabled: true`, whose required keys apply only then.
const SECTIONS: &[&str] = &["agent", "gateway", "apps"];

/// The probe sites' variations, layered over the example sites merged together.
const VARIANTS: &[&str] = &[
    "generation: repo",
    "generation: oci",
    "{generation: repo, sso: {provider: auth0}, agent: {redis: {enabled: true}}}",
    "{generation: oci, sso: {provider: keycloak}}",
];

const MODULES: &[(&str, &str)] = &[
    ("values", "chart_rules"),
    ("control_plane", "rules"),
    ("agent", "rules"),
    ("gateway", "rules"),
    ("apps", "rules"),
];

/// What the rules say about one key: its kind, and whether every probe required it.
struct Rule {
    kind: String,
    required_always: bool,
    /// The probes whose rules list the key.
    seen: BTreeSet<usize>,
}

/// Run every module's rules against every probe site.
fn collect_rules() -> Result<BTreeMap<String, Rule>, String> {
    let mut base = Value::Map(BTreeMap::new());
    for (path, text) in crate::embedded::files() {
        if path.starts_with("examples/") {
            let v = crate::site::parse_yaml(text)?;
            merge_into(&mut base, v);
        }
    }
    let mut script = String::new();
    for (m, _) in MODULES {
        script.push_str(&format!("import \"clearml/{m}\" as {m};\n"));
    }
    script.push_str("#{\n");
    for (m, f) in MODULES {
        script.push_str(&format!("  {m}: {m}::{f}(site),\n"));
    }
    script.push('}');
    let interrupted = Arc::new(AtomicBool::new(false));
    let eng = engine::build(Path::new("."), Sources::default(), interrupted);
    let mut rules: BTreeMap<String, Rule> = BTreeMap::new();
    for (n, variant) in VARIANTS.iter().enumerate() {
        let mut site = base.clone();
        merge_into(&mut site, crate::site::parse_yaml(variant)?);
        let mut scope = rhai::Scope::new();
        scope.push_constant_dynamic("site", site.to_dynamic());
        let out: rhai::Map = eng
            .eval_with_scope(&mut scope, &script)
            .map_err(|e| format!("the rules could not be run: {e}"))?;
        for (_, module_rules) in out {
            let map = module_rules.cast::<rhai::Map>();
            for (path, rule) in map {
                let rule = rule.to_string();
                let (kind, optional) = match rule.strip_suffix('?') {
                    Some(k) => (k.to_string(), true),
                    None => (rule.clone(), false),
                };
                let r = rules.entry(path.to_string()).or_insert(Rule {
                    kind,
                    required_always: true,
                    seen: BTreeSet::new(),
                });
                r.seen.insert(n);
                r.required_always &= !optional;
            }
        }
    }
    // a key not every probe knows (a generation's own keys) is required only there
    for r in rules.values_mut() {
        if r.seen.len() < VARIANTS.len() {
            r.required_always = false;
        }
    }
    Ok(rules)
}

/// The schema of one rule kind.
fn kind_schema(kind: &str) -> J {
    match kind {
        "domain" => json!({"type": "string", "format": "hostname"}),
        "email" => json!({"type": "string", "format": "email"}),
        "url" => json!({"type": "string", "format": "uri"}),
        "port" => json!({"type": "integer", "minimum": 1, "maximum": 65535}),
        "port_range" => json!({
            "type": "object",
            "properties": {
                "start": {"type": "integer", "minimum": 1, "maximum": 65535},
                "end": {"type": "integer", "minimum": 1, "maximum": 65535}
            },
            "required": ["start", "end"]
        }),
        "size" => {
            json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"})
        }
        "secret" => json!({"type": ["string", "integer"]}),
        "bool" => json!({"type": "boolean"}),
        "int" => json!({"type": "integer"}),
        "list" => json!({"type": "array"}),
        "map" => json!({"type": "object"}),
        e if crate::validate::is_enumeration(e) => {
            json!({"type": "string", "enum": e.split('|').collect::<Vec<_>>()})
        }
        _ => json!({"type": "string"}),
    }
}

/// Every default the stdlib gives with `get(site, "key", default)` (`get(this, …)` in a method
/// called on the site, and `get(gw, …)` for the gateway's section).
fn defaults() -> BTreeMap<String, J> {
    let re = regex::Regex::new(
        r#"get\((site|this|gw|sso|agent|apps), "([A-Za-z0-9_.]+)", ("[^"]*"|true|false|-?[0-9]+)\)"#,
    )
    .expect("regex");
    let mut out: BTreeMap<String, J> = BTreeMap::new();
    let mut differing = BTreeSet::new();
    for (path, text) in crate::embedded::files() {
        if !path.starts_with("stdlib/") {
            continue;
        }
        for c in re.captures_iter(text) {
            let prefix = match &c[1] {
                "site" | "this" => String::new(),
                "gw" => "gateway.".to_string(),
                other => format!("{other}."),
            };
            let Ok(v) = serde_json::from_str::<J>(&c[3]) else {
                continue;
            };
            let key = format!("{prefix}{}", &c[2]);
            // a default that depends on the generation (`release`) is no single default
            if v == json!("") || out.get(&key).is_some_and(|old| *old != v) {
                differing.insert(key);
            } else {
                out.insert(key, v);
            }
        }
    }
    out.retain(|k, _| !differing.contains(k));
    out
}

/// The comment block above each key of the example sites, by dotted key path. A commented-out
/// key (`# release: clearml`) takes the block above it too; commented YAML is not prose.
fn descriptions() -> BTreeMap<String, String> {
    // the base site first: its comments describe the shared keys
    let mut files: Vec<&(&str, &str)> = crate::embedded::files()
        .iter()
        .filter(|(p, _)| p.starts_with("examples/"))
        .collect();
    files.sort_by_key(|(p, _)| *p != "examples/site.yaml");
    descriptions_in(files.iter().map(|(_, text)| *text))
}

/// The comment blocks of these YAML texts, by dotted key path; the first text to describe a
/// key wins.
fn descriptions_in<'a>(texts: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let key_re = regex::Regex::new(r"^(\s*)(#\s?)?([A-Za-z_][A-Za-z0-9_]*):(\s|$)").expect("regex");
    let yamlish = regex::Regex::new(r"^\s*#\s*(-\s|[A-Za-z_][A-Za-z0-9_]*:(\s|$))").expect("regex");
    let mut out = BTreeMap::new();
    for text in texts {
        let mut block: Vec<String> = Vec::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        for line in text.lines() {
            if let Some(c) = key_re.captures(line) {
                let commented = c.get(2).is_some();
                let indent = c[1].len();
                let key = c[3].to_string();
                while stack.last().is_some_and(|(i, _)| *i >= indent) {
                    stack.pop();
                }
                let parent: String = stack.iter().map(|(_, k)| format!("{k}.")).collect();
                let full = format!("{parent}{key}");
                if !block.is_empty() {
                    out.entry(full).or_insert_with(|| block.join(" "));
                }
                if !commented {
                    stack.push((indent, key));
                }
                block.clear();
                continue;
            }
            if yamlish.is_match(line) {
                block.clear();
                continue;
            }
            let t = line.trim();
            if let Some(c) = t.strip_prefix('#') {
                let c = c.trim();
                if c.starts_with("yaml-language-server") || c.starts_with("clearml-script ") {
                    continue;
                }
                if !c.is_empty() {
                    block.push(c.to_string());
                }
            } else {
                block.clear();
            }
        }
    }
    out
}

/// The JSON Schema of a layer of site values (`site-gpu.yaml`, layered over `site.yaml`): as
/// [`build`], without the top level's required keys, which the base file gives.
pub fn build_layer() -> Result<J, String> {
    let mut schema = build()?;
    if let Some(o) = schema.as_object_mut() {
        o.remove("required");
        o.insert(
            "title".into(),
            json!("clearml-script site values: a layer over a base site file"),
        );
    }
    Ok(schema)
}

/// The JSON Schema of the site values.
pub fn build() -> Result<J, String> {
    let rules = collect_rules()?;
    let defaults = defaults();
    let descriptions = descriptions();
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "clearml-script site values",
        "description": "Site values for the clearml-script playbooks (clearml-script schema). Every value may be given as {env: NAME} or {file: PATH}.",
        "type": "object",
        "properties": {},
        "$defs": {
            "external": {
                "description": "A value read when the site loads: an environment variable or a file's text (a secret, whatever its key)",
                "oneOf": [
                    {"type": "object", "properties": {"env": {"type": "string"}}, "required": ["env"], "additionalProperties": false},
                    {"type": "object", "properties": {"file": {"type": "string"}}, "required": ["file"], "additionalProperties": false}
                ]
            }
        }
    });
    // every path: the rules' keys, then the keys that only have a default or a description
    let mut paths: BTreeSet<String> = rules.keys().cloned().collect();
    let reads = crate::site_keys::reads();
    for p in defaults.keys().chain(reads.iter()) {
        let parent = p
            .split('.')
            .rev()
            .skip(1)
            .any(|part| crate::site_keys::FREE_FORM.contains(&part.trim_end_matches("[]")));
        let children = paths
            .iter()
            .chain(reads.iter())
            .any(|q| q.starts_with(&format!("{p}.")) || q.starts_with(&format!("{p}[].")));
        // a rule of a shape (`port_range`) already says what is inside it
        let shaped = rules
            .iter()
            .any(|(q, r)| p.starts_with(&format!("{q}.")) && r.kind != "map" && r.kind != "list");
        if !(children || parent || shaped) {
            paths.insert(p.clone());
        }
    }
    for path in &paths {
        let mut leaf = match rules.get(path) {
            Some(r) => kind_schema(&r.kind),
            None => match defaults.get(path) {
                Some(J::Bool(_)) => json!({"type": "boolean"}),
                Some(J::Number(_)) => json!({"type": "integer"}),
                Some(_) => json!({"type": "string"}),
                // a key a playbook reads, of no rule and no default: any value
                None if crate::site_keys::FREE_FORM
                    .contains(&path.rsplit('.').next().unwrap_or(path)) =>
                {
                    json!({"type": "object"})
                }
                None => json!({}),
            },
        };
        if let Some((_, values)) = ENUMS.iter().find(|(p, _)| p == path) {
            leaf["enum"] = json!(values);
        }
        if let Some((_, pattern, examples)) = PATTERNS.iter().find(|(p, _, _)| p == path) {
            leaf["pattern"] = json!(pattern);
            leaf["examples"] = json!(examples);
        }
        let mut leaf = json!({"anyOf": [leaf, {"$ref": "#/$defs/external"}]});
        if let Some(d) = defaults.get(path) {
            leaf["default"] = d.clone();
        }
        if let Some(d) = descriptions.get(path) {
            leaf["description"] = json!(d);
        }
        insert(&mut root, path, leaf);
    }
    // the sections' own descriptions
    for (path, desc) in &descriptions {
        if let Some(p) = pointer_mut(&mut root, path)
            && p.get("description").is_none()
        {
            p["description"] = json!(desc);
        }
    }
    // required keys: the top level's, and each section's when it is enabled
    let top: Vec<&str> = rules
        .iter()
        .filter(|(p, r)| r.required_always && !p.contains('.'))
        .map(|(p, _)| p.as_str())
        .collect();
    root["required"] = json!(top);
    for section in SECTIONS {
        let prefix = format!("{section}.");
        let req: Vec<&str> = rules
            .iter()
            .filter(|(p, r)| {
                r.required_always
                    && p.strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.contains('.'))
            })
            .map(|(p, _)| &p[prefix.len()..])
            .collect();
        let enabled = json!({"type": "boolean", "default": false, "description": format!("Install the {section} path")});
        match pointer_mut(&mut root, &format!("{section}.enabled")) {
            Some(p) => *p = enabled,
            None => insert(&mut root, &format!("{section}.enabled"), enabled),
        }
        if !req.is_empty() {
            let s = &mut root["properties"][*section];
            s["if"] = json!({"properties": {"enabled": {"const": true}}, "required": ["enabled"]});
            s["then"] = json!({"required": req});
        }
    }
    close(&mut root);
    Ok(root)
}

/// `additionalProperties: false` on every map whose keys are all known (the site's own keys;
/// not a free-form map such as `extra_values`, whose schema has no `properties`).
fn close(node: &mut J) {
    if let Some(props) = node.get_mut("properties").and_then(J::as_object_mut) {
        for child in props.values_mut() {
            close(child);
        }
        node["additionalProperties"] = json!(false);
    }
    if let Some(items) = node.get_mut("items") {
        close(items);
    }
}

/// The schema of the key at the dotted `path`, if there is one.
fn pointer_mut<'a>(root: &'a mut J, path: &str) -> Option<&'a mut J> {
    let pointer: String = path
        .split('.')
        .map(|p| format!("/properties/{p}"))
        .collect();
    root.pointer_mut(&pointer)
}

/// Put `leaf` at the dotted `path`, creating the objects on the way.
fn insert(root: &mut J, path: &str, leaf: J) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if let Some(list) = part.strip_suffix("[]") {
            // the entries of a list whose entries' keys are known: `agent.queues[].name`
            let props = &mut cur["properties"];
            let fresh = props.get(list).is_none_or(|p| p.get("items").is_none());
            if fresh {
                let mut node =
                    json!({"type": "array", "items": {"type": "object", "properties": {}}});
                if let Some(d) = props.get(list).and_then(|p| p.get("description")) {
                    node["description"] = d.clone();
                }
                props[list] = node;
            }
            cur = &mut props[list]["items"];
            if i == parts.len() - 1 {
                return;
            }
            continue;
        }
        if cur.get("properties").is_none() {
            // a key whose schema is a leaf (`map?`) that also has known children
            let keep = cur.take();
            *cur = json!({"type": "object", "properties": {}});
            if let Some(d) = keep.get("description") {
                cur["description"] = d.clone();
            }
        }
        let props = &mut cur["properties"];
        if i == parts.len() - 1 {
            if props.get(*part).is_none() {
                props[*part] = leaf;
            }
            return;
        }
        if props.get(*part).is_none_or(|p| p.get("anyOf").is_some()) {
            props[*part] = json!({"type": "object", "properties": {}});
        }
        cur = &mut props[*part];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_description_is_the_prose_above_it_without_the_files_own_headers() {
        let first = "# yaml-language-server: $schema=site.schema.json\n\
                     # The domain of the servers.\n\
                     base_domain: a.example.com\n\
                     agent:\n  \
                       # clearml-script reads this one.\n  \
                       # The agent's namespace.\n  \
                       namespace: clearml\n\
                     \n\
                     # release: clearml\n\
                     plain: 1\n";
        let second = "# Another file's words for the same key.\nbase_domain: b.example.com\n\
                      # Only here.\nextra: 2\n";
        let got = descriptions_in([first, second].into_iter());
        let want: BTreeMap<String, String> = [
            ("base_domain", "The domain of the servers."),
            ("agent.namespace", "The agent's namespace."),
            ("extra", "Only here."),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
