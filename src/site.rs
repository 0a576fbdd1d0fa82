//! Site values: `--values` YAML files deep-merged left to right (each file's `{env: NAME}` and
//! `{file: PATH}` values read first), then the `--set…` flags (see [`crate::strvals`]), then the
//! secret rule applied by key name. Every key path remembers where it was set (`site.yaml:12:3`
//! or `--set a.b`), so validation errors can point at the line to fix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::secret::{Secret, is_secret_key};
use crate::strvals::{self, Mode};
use crate::value::{Value, join_path};

/// Where each key path of the site values was set.
pub type Locations = HashMap<String, String>;

#[derive(Debug, Clone)]
pub struct Site {
    pub values: Value,
    pub locations: Locations,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            values: Value::Map(BTreeMap::new()),
            locations: Locations::new(),
        }
    }
}

impl Site {
    /// Load the files (`-` is stdin), apply the `--set…` flags in helm's order (`--set-json`,
    /// `--set`, `--set-string`, `--set-file`), read `{env: NAME}` and `{file: PATH}` values, and
    /// mark secrets.
    pub fn load(files: &[impl AsRef<Path>], sets: &[(Mode, String)]) -> Result<Site, String> {
        // a signal while the files are read stops the tool at once: a read may never end
        let _reading = crate::process::ReadingValues::start();
        let mut site = Site::default();
        let mut stdin_read = false;
        for file in files {
            let file = file.as_ref();
            let (text, source, dir) = if file == Path::new("-") {
                if std::mem::replace(&mut stdin_read, true) {
                    return Err("--values - is given twice: stdin can be read once".into());
                }
                let text =
                    crate::fsutil::read_capped(std::io::stdin(), crate::fsutil::VALUES_LIMIT)
                        .map_err(|e| format!("cannot read values from stdin: {e}"))?;
                (text, "<stdin>".to_string(), PathBuf::from("."))
            } else {
                let text = crate::fsutil::read_file_capped(file, crate::fsutil::VALUES_LIMIT)
                    .map_err(|e| format!("cannot read values file {}: {e}", file.display()))?;
                let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                (text, file.display().to_string(), dir)
            };
            let (mut values, locations) = parse_located(&text, &source)?;
            match values {
                Value::Map(_) => {}
                Value::Null => continue,
                other => {
                    return Err(format!(
                        "{source}: the top level of a values file must be a map of keys, found a {}",
                        other.type_name()
                    ));
                }
            }
            let mut problems = Vec::new();
            resolve_refs(&mut values, "", &dir, &locations, &mut problems);
            if !problems.is_empty() {
                return Err(problems.join("\n"));
            }
            merge_into(&mut site.values, values);
            site.locations.extend(locations);
        }
        let order = [Mode::Json, Mode::Typed, Mode::Str, Mode::File];
        for mode in order {
            for (_, spec) in sets.iter().filter(|(m, _)| *m == mode) {
                let paths = strvals::apply(&mut site.values, spec, mode, &|path| {
                    read_secret_file(Path::new(path))
                })?;
                for (i, p) in paths.into_iter().enumerate() {
                    let flag = mode.flag();
                    // a pair after a comma may be the rest of a value whose comma was meant
                    let comma = if i > 0 {
                        " (after a comma: write `\\,` to keep a comma in a value)"
                    } else {
                        ""
                    };
                    site.locations
                        .insert(p.clone(), format!("{flag} {p}{comma}"));
                }
            }
        }
        mark_secrets(&mut site.values);
        for path in validated_secret_paths() {
            mark_secret_at(&mut site.values, &path);
        }
        Ok(site)
    }

    /// `path (where)` for messages, or just `path` when the place is unknown.
    pub fn describe(&self, path: &str) -> String {
        match self.locations.get(path) {
            Some(loc) => format!("`{path}` ({loc})"),
            None => format!("`{path}`"),
        }
    }
}

/// Deep merge: maps merge key by key, lists and scalars from `over` replace.
pub fn merge_into(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The text of a secret file (`{file: PATH}`, `--set-file`), as a secret. One trailing line
/// end is dropped: `echo TOKEN > file` must give `TOKEN`.
fn read_secret_file(path: &Path) -> Result<Value, String> {
    let text = crate::fsutil::read_file_capped(path, crate::fsutil::SECRET_FILE_LIMIT)
        .map_err(|e| format!("cannot read the file {}: {e}", path.display()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Value::Secret(Secret::new(text)))
}

/// A value given as `{env: NAME}` or `{file: PATH}`: the map's only key, naming a string.
fn value_ref(v: &Value) -> Option<(&'static str, &str)> {
    let Value::Map(m) = v else { return None };
    if m.len() != 1 {
        return None;
    }
    match m.iter().next() {
        Some((k, Value::Str(s))) if k == "env" => Some(("env", s)),
        Some((k, Value::Str(s))) if k == "file" => Some(("file", s)),
        _ => None,
    }
}

/// Replace every `{env: NAME}` and `{file: PATH}` with the variable's value or the file's
/// text, as a secret whatever its key. A relative path is relative to the values file's folder.
/// Each missing variable or file is a problem naming the key and where it was set.
fn resolve_refs(
    v: &mut Value,
    path: &str,
    dir: &Path,
    locs: &Locations,
    problems: &mut Vec<String>,
) {
    if let Some((kind, name)) = value_ref(v) {
        let at = match locs.get(path) {
            Some(loc) => format!("{loc}: `{path}`"),
            None => format!("`{path}`"),
        };
        let got = if kind == "env" {
            match std::env::var(name) {
                Ok(val) => Ok(Value::Secret(Secret::new(val))),
                Err(_) => Err(format!(
                    "{at}: the environment variable {name} is not set: export it before the run, \
                     or give the value as {{file: PATH}}"
                )),
            }
        } else {
            read_secret_file(&dir.join(name)).map_err(|e| format!("{at}: {e}"))
        };
        match got {
            Ok(val) => *v = val,
            Err(e) => problems.push(e),
        }
        return;
    }
    match v {
        Value::Map(m) => {
            for (k, child) in m.iter_mut() {
                resolve_refs(child, &join_path(path, k), dir, locs, problems);
            }
        }
        Value::List(l) => {
            for (i, child) in l.iter_mut().enumerate() {
                resolve_refs(child, &format!("{path}[{i}]"), dir, locs, problems);
            }
        }
        _ => {}
    }
}

/// The key paths the standard playbooks validate as `secret` (`"sso.client_id": "secret"`,
/// `r["apps.key"] = "secret"`, `r.github_token = "secret"`): a value validated as a secret is
/// one from the moment it is loaded, whatever its key's name, so it is masked in plans, the
/// REPL and errors even before the validation runs.
pub fn validated_secret_paths() -> Vec<String> {
    static PATHS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PATHS
        .get_or_init(|| {
            let rule = regex::Regex::new(
                r#"(?:"([A-Za-z0-9_.\-]+)"\]?|\b([A-Za-z_][A-Za-z0-9_]*))\s*[:=]\s*"secret\??""#,
            )
            .expect("valid pattern");
            let mut paths: Vec<String> = crate::embedded::files()
                .iter()
                .filter(|(p, _)| p.ends_with(".rhai"))
                .flat_map(|(_, text)| {
                    rule.captures_iter(text)
                        .filter_map(|c| c.get(1).or(c.get(2)).map(|m| m.as_str().to_string()))
                        .collect::<Vec<_>>()
                })
                .collect();
            paths.sort();
            paths.dedup();
            paths
        })
        .clone()
}

/// Make the plain value at `path` a secret.
fn mark_secret_at(v: &mut Value, path: &str) {
    let mut cur = v;
    for part in path.split('.') {
        match cur {
            Value::Map(m) => match m.get_mut(part) {
                Some(next) => cur = next,
                None => return,
            },
            _ => return,
        }
    }
    let plain = match cur {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return,
    };
    *cur = Value::Secret(Secret::new(plain));
}

/// Apply the secret rule of [`is_secret_key`] to every map in the tree, and to the `value` of an
/// environment entry (`{name: X_PASSWORD, value: …}`) by the variable's name.
pub fn mark_secrets(v: &mut Value) {
    match v {
        Value::Map(m) => {
            // only the `…secret` siblings matter to the key rule: collected once per map, so a
            // map of many keys is marked in linear time
            let names: Vec<String> = m
                .keys()
                .filter(|k| k.replace(['_', '-'], "").to_lowercase().ends_with("secret"))
                .cloned()
                .collect();
            let siblings: Vec<&str> = names.iter().map(String::as_str).collect();
            // an environment entry (`extra_env`, a chart's `extraEnvs`) whose variable's name
            // says it holds a credential: its `value` is a secret
            let env_secret = matches!(m.get("name"), Some(Value::Str(n)) if is_secret_key(n, &[]));
            for (k, child) in m.iter_mut() {
                if is_secret_key(k, &siblings) || (env_secret && k == "value") {
                    let plain = match child {
                        Value::Str(s) => Some(s.clone()),
                        Value::Int(i) => Some(i.to_string()),
                        Value::Float(f) => Some(f.to_string()),
                        _ => None,
                    };
                    if let Some(plain) = plain {
                        *child = Value::Secret(Secret::new(plain));
                        continue;
                    }
                }
                mark_secrets(child);
            }
        }
        Value::List(l) => l.iter_mut().for_each(mark_secrets),
        _ => {}
    }
}

/// Parse YAML text into a value and the location of every key path.
pub fn parse_located(text: &str, source: &str) -> Result<(Value, Locations), String> {
    // the parser's default bounds, but for the ratio of aliases to anchors: a site that merges
    // one anchor of defaults into each of its many queues is no bomb, and the bound on the
    // values' nodes, every use of an alias counted, already stops one
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { enforce_alias_anchor_ratio: false },
    };
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML");
        // the parser quotes an integer it cannot hold, which may be a token's digits
        static TOO_LARGE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let too_large = TOO_LARGE
            .get_or_init(|| regex::Regex::new(r"integer -?\d+ is too large").expect("regex"));
        let first = too_large.replace_all(
            first,
            "an integer too large for 64 bits (quote it if it is text, such as a token)",
        );
        // and a number too large for a float (`7e999`), which may be a token's text too
        static NON_FINITE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let non_finite = NON_FINITE
            .get_or_init(|| regex::Regex::new(r"non-finite float `([^`]*)`[^;,]*").expect("regex"));
        let first = non_finite.replace_all(&first, |c: &regex::Captures| {
            // `.inf`, `-.Inf`, `.nan`: YAML's own words for them, no token's digits
            if c[1].trim_start_matches(['+', '-']).starts_with('.') {
                format!(
                    "`{}` is not a finite number, which a value must be (quote it if it is text)",
                    &c[1]
                )
            } else {
                "a number too large for a float (quote it if it is text, such as a token)".into()
            }
        });
        // the parser's own advice names its API, not what the user is to do
        static DUPLICATE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let duplicate = DUPLICATE.get_or_init(|| {
            regex::Regex::new(
                r"duplicate mapping key: (.*?), set DuplicateKeyPolicy in Options if acceptable",
            )
            .expect("regex")
        });
        let first = duplicate.replace_all(
            &first,
            "duplicate key: `$1` is given twice in the same map: keep one",
        );
        // a bound of the parser (its `budget`), named as the parser's type: what it means
        let first = match first.split_once("budget breached: ").map(|(_, b)| b) {
            Some(b) if b.starts_with("Depth") => {
                "the values nest deeper than 64 levels, the parser's bound: flatten them".into()
            }
            Some(b) if b.starts_with("Nodes") => "the values hold more than 250000 keys, values \
                 and list entries (an alias counts those of its anchor again), the parser's \
                 bound: make the file smaller, or alias smaller anchors"
                .into(),
            Some(b) if b.starts_with("Aliases") => {
                "the values use more than 50000 aliases (`*name`), the parser's bound: use fewer"
                    .into()
            }
            Some(b) => format!(
                "the values are past a bound of the YAML parser ({}): make the file smaller",
                b.split(|c: char| !c.is_alphanumeric()).next().unwrap_or(b)
            )
            .into(),
            None => first,
        };
        let first = if first.contains("multiple YAML documents detected") {
            "a values file holds one YAML document: put each document after `---` in a file of \
             its own and give each with --values"
                .into()
        } else {
            first
        };
        match e.location() {
            Some(loc) => format!(
                "{source}:{}:{}: invalid YAML: {first}",
                loc.line(),
                loc.column()
            ),
            None => format!("{source}: invalid YAML: {first}"),
        }
    })?;
    let mut locations = Locations::new();
    let value = root.value.into_value("", source, &mut locations, text);
    Ok((value, locations))
}

/// Parse YAML text into a value, without locations.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    parse_located(text, "YAML").map(|(v, _)| v)
}

enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Spanned<Node>>),
    Map(Vec<(String, serde_saphyr::Location, Spanned<Node>)>),
}

impl Node {
    fn into_value(self, path: &str, source: &str, locs: &mut Locations, text: &str) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => Value::Int(i),
            Node::Float(f) => Value::Float(f),
            Node::Str(s) => Value::Str(s),
            Node::List(items) => Value::List(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let p = format!("{path}[{i}]");
                        let loc = n.referenced;
                        if loc.line() > 0 {
                            locs.insert(
                                p.clone(),
                                format!("{source}:{}:{}", loc.line(), loc.column()),
                            );
                        }
                        n.value.into_value(&p, source, locs, text)
                    })
                    .collect(),
            ),
            Node::Map(entries) => {
                let mut out = BTreeMap::new();
                let names: Vec<String> = entries.iter().map(|(k, _, _)| k.clone()).collect();
                let siblings: Vec<&str> = names.iter().map(String::as_str).collect();
                let env_secret = entries.iter().any(|(k, _, n)| {
                    k == "name" && matches!(&n.value, Node::Str(name) if is_secret_key(name, &[]))
                });
                for (k, key_loc, n) in entries {
                    let p = join_path(path, &k);
                    // a block map or list starts on the lines below its key: the key's line is
                    // the one to fix (a misspelt section), not its first entry's
                    let block = matches!(n.value, Node::Map(_) | Node::List(_))
                        && key_loc.line() > 0
                        && n.referenced.line() > key_loc.line();
                    let loc = if block { key_loc } else { n.referenced };
                    if loc.line() > 0 {
                        locs.insert(
                            p.clone(),
                            format!("{source}:{}:{}", loc.line(), loc.column()),
                        );
                    }
                    // a secret written unquoted that YAML reads as a number (`0x1A2B`,
                    // `1234e5`, `0123`): the text as written, not the number's own form; where
                    // it is defined, for one reached through an alias or a merge key (`*pw`)
                    let as_written = matches!(n.value, Node::Int(_) | Node::Float(_))
                        && (is_secret_key(&k, &siblings)
                            || (env_secret && k == "value")
                            || validated_secret_paths().contains(&p))
                        && n.defined.line() > 0;
                    let v = match as_written
                        .then(|| raw_scalar(text, n.defined.line(), n.defined.column()))
                        .flatten()
                    {
                        Some(raw) => Value::Str(raw),
                        None => n.value.into_value(&p, source, locs, text),
                    };
                    out.insert(k, v);
                }
                Value::Map(out)
            }
        }
    }
}

/// The plain scalar that starts at `line`:`column` (1-based) of `text`, as written.
fn raw_scalar(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let raw: String = l
        .chars()
        .skip(usize::try_from(column).ok()?.checked_sub(1)?)
        .take_while(|c| !c.is_whitespace() && !",]}#".contains(*c))
        .collect();
    // a tag stands before the number (`!!int 0x1A`): its own form, then
    (!raw.is_empty() && !raw.starts_with(['!', '&', '*'])).then_some(raw)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Node, E> {
        Ok(Node::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Node, E> {
        i64::try_from(u)
            .map(Node::Int)
            .map_err(|_| E::custom(format!("integer {u} is too large")))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Node, E> {
        Ok(Node::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, serde_saphyr::Location, Spanned<Node>)> = Vec::new();
        // a set, so that a map of many keys is read in linear time
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<Spanned<KeyString>>()? {
            let (key, key_loc) = (key.value, key.referenced);
            if !seen.insert(key.0.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{}`", key.0)));
            }
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key.0, key_loc, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A map key: any scalar, as its string form.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyString, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar map key")
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyString, E> {
                Ok(KeyString(s.to_string()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<KeyString, E> {
                Ok(KeyString(b.to_string()))
            }
            fn visit_i64<E>(self, i: i64) -> Result<KeyString, E> {
                Ok(KeyString(i.to_string()))
            }
            fn visit_u64<E>(self, u: u64) -> Result<KeyString, E> {
                Ok(KeyString(u.to_string()))
            }
            fn visit_f64<E>(self, f: f64) -> Result<KeyString, E> {
                Ok(KeyString(f.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_types() {
        let text = "base_domain: example.com\nsupervisor:\n  email: a@b.c\n  port: 8080\nlist:\n  - x\nflag: yes\n";
        let (v, locs) = parse_located(text, "site.yaml").unwrap();
        assert_eq!(locs["base_domain"], "site.yaml:1:14");
        assert_eq!(locs["supervisor.email"], "site.yaml:3:10");
        assert_eq!(v.at_path("supervisor.port"), Some(&Value::Int(8080)));
        // as Helm reads it: `yes` is a boolean
        assert_eq!(v.at_path("flag"), Some(&Value::Bool(true)));
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let err = parse_located("a: 1\nb: [1, 2\n", "bad.yaml").unwrap_err();
        assert!(err.starts_with("bad.yaml:"), "{err}");
        let err = parse_located("a: 1\na: 2\n", "dup.yaml").unwrap_err();
        assert!(err.contains("duplicate"), "{err}");
    }

    #[test]
    fn merge_and_set() {
        let mut a = parse_yaml("x: {a: 1, l: [1, 2]}\ny: 1").unwrap();
        merge_into(&mut a, parse_yaml("x: {b: 2, l: [3]}").unwrap());
        assert_eq!(a, parse_yaml("x: {a: 1, b: 2, l: [3]}\ny: 1").unwrap());
    }

    #[test]
    fn values_the_playbooks_validate_as_secrets_are_secrets() {
        let paths = validated_secret_paths();
        for p in [
            "sso.client_id",
            "apps.key",
            "github_token",
            "dockerhub_token",
            "agent.key",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} not in {paths:?}");
        }
        let mut v = parse_yaml("sso:\n  client_id: my-client-id-123\n").unwrap();
        mark_secret_at(&mut v, "sso.client_id");
        assert!(matches!(v.at_path("sso.client_id"), Some(Value::Secret(_))));
        // a number is a secret too, as its text (YAML reads an all-digit id as one)
        let mut v = parse_yaml("sso:\n  client_id: 123456789\n").unwrap();
        mark_secret_at(&mut v, "sso.client_id");
        assert_eq!(
            v.at_path("sso.client_id"),
            Some(&Value::Secret(Secret::new("123456789")))
        );
    }

    #[test]
    fn numbers_under_secret_keys_are_secrets_as_their_text() {
        let mut v =
            parse_yaml("github_token: 98765432101\nagent: {redis: {password: 1.5}}\n").unwrap();
        mark_secrets(&mut v);
        assert_eq!(
            v.at_path("github_token"),
            Some(&Value::Secret(Secret::new("98765432101")))
        );
        assert_eq!(
            v.at_path("agent.redis.password"),
            Some(&Value::Secret(Secret::new("1.5")))
        );
    }

    #[test]
    fn a_number_reused_through_an_alias_under_a_secret_key_is_its_text() {
        // the same password in two places, the second an alias of the first
        let text = "github_token: &pw 0123\nagent: {redis: {password: *pw}}\nextra_values:\n  base: &b {password: 0123}\n  chart:\n    <<: *b\n";
        let (mut v, _) = parse_located(text, "site.yaml").unwrap();
        mark_secrets(&mut v);
        for path in [
            "github_token",
            "agent.redis.password",
            "extra_values.chart.password",
        ] {
            assert_eq!(
                v.at_path(path),
                Some(&Value::Secret(Secret::new("0123"))),
                "{path}"
            );
        }
    }

    #[test]
    fn one_anchor_shared_by_many_entries_is_no_alias_bomb() {
        // the queues' defaults written once and merged into each of 150 queues
        let mut text = String::from("defaults: &q {shm_size_gi: 8}\nqueues:\n");
        for i in 0..150 {
            text.push_str(&format!("  - {{<<: *q, name: q{i}}}\n"));
        }
        let (v, _) = parse_located(&text, "site.yaml").unwrap();
        assert_eq!(v.at_path("queues[149].shm_size_gi"), Some(&Value::Int(8)));
    }

    #[test]
    fn the_parsers_bounds_say_what_they_are() {
        // an alias bomb: nine levels of ten aliases each, 10^9 entries expanded
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{p}"); 10].join(", ")
            ));
        }
        let mut aliases = String::from("a: &a x\n");
        for i in 0..50_001 {
            aliases.push_str(&format!("k{i}: *a\n"));
        }
        for (text, says) in [
            (bomb, "more than 250000 keys, values and list entries"),
            (aliases, "more than 50000 aliases"),
        ] {
            let e = parse_located(&text, "site.yaml").unwrap_err();
            assert!(e.starts_with("site.yaml:"), "{e}");
            assert!(e.contains(says), "{e}");
            assert!(!e.contains("budget breached"), "{e}");
        }
    }

    #[test]
    fn an_integer_too_large_is_not_quoted_back() {
        let e = parse_located("github_token: 12345678901234567890\n", "t.yaml").unwrap_err();
        assert!(e.starts_with("t.yaml:1:15: invalid YAML"), "{e}");
        assert!(e.contains("an integer too large for 64 bits"), "{e}");
        assert!(!e.contains("12345678901234567890"), "{e}");
    }

    #[test]
    fn infinity_and_nan_are_named_as_such() {
        for (text, says) in [
            ("start: .nan\n", "`.nan` is not a finite number"),
            ("end: -.Inf\n", "`-.Inf` is not a finite number"),
            ("github_token: 7e999\n", "a number too large for a float"),
        ] {
            let e = parse_located(text, "t.yaml").unwrap_err();
            assert!(e.starts_with("t.yaml:1:"), "{e}");
            assert!(e.contains(says), "{e}");
            assert!(!e.contains("7e999"), "{e}");
        }
    }

    #[test]
    fn a_map_key_must_be_a_scalar() {
        let e = parse_located("? [a, b]\n: 1\n", "keys.yaml").unwrap_err();
        assert!(e.starts_with("keys.yaml:"), "{e}");
        assert!(e.contains("a scalar map key"), "{e}");
    }

    #[test]
    fn a_malformed_set_never_echoes_its_value() {
        for bad in [
            "github_token:ghp_SECRET123",
            ".github_token=ghp_SECRET123",
            "a..b=ghp_SECRET123",
            "=ghp_SECRET123",
            "tok en=ghp_SECRET123",
        ] {
            let mut root = Value::Map(BTreeMap::new());
            let e = crate::strvals::apply(&mut root, bad, crate::strvals::Mode::Typed, &|_| {
                unreachable!("no file is read")
            })
            .unwrap_err();
            assert!(!e.contains("SECRET123"), "{e}");
        }
    }

    #[test]
    fn secrets_marked_by_key() {
        let mut v = parse_yaml("dockerhub_token: abcdef\nsupervisor: {user_key: k1, user_secret: s1, email: e}\nsso: {access_token_url: u}").unwrap();
        mark_secrets(&mut v);
        assert!(matches!(
            v.at_path("dockerhub_token"),
            Some(Value::Secret(_))
        ));
        assert!(matches!(
            v.at_path("supervisor.user_key"),
            Some(Value::Secret(_))
        ));
        assert!(matches!(
            v.at_path("supervisor.user_secret"),
            Some(Value::Secret(_))
        ));
        assert!(matches!(v.at_path("supervisor.email"), Some(Value::Str(_))));
        assert!(matches!(
            v.at_path("sso.access_token_url"),
            Some(Value::Str(_))
        ));
    }
}
