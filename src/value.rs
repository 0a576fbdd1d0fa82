//! The value tree that crosses the boundary between scripts and effects.
//!
//! Scripts build plain Rhai maps; an action stores them as a [`Value`], which keeps secrets as
//! [`Secret`]s. Serializing a `Value` (plans, JSON output) always redacts; [`Value::reveal`] gives
//! the real JSON, for the live executor only, at the helm boundary.

use std::collections::BTreeMap;

use rhai::{Array, Dynamic, Map};
use serde::ser::{SerializeMap, SerializeSeq};

use crate::secret::{REDACTED, Secret};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Secret(Secret),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Convert a script value. Functions, closures and other host types have no place in
    /// values sent to helm or an API: they are an error naming the key path.
    pub fn from_dynamic(d: &Dynamic) -> Result<Value, String> {
        from_dynamic_at(d, "")
    }

    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            Value::Null => Dynamic::UNIT,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => (*f).into(),
            Value::Str(s) => s.clone().into(),
            Value::Secret(s) => Dynamic::from(s.clone()),
            Value::List(l) => l.iter().map(Value::to_dynamic).collect::<Array>().into(),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.to_dynamic()))
                .collect::<Map>()
                .into(),
        }
    }

    /// The real JSON, secrets included. Only for the live executor's safe channels.
    pub fn reveal(&self) -> serde_json::Value {
        self.to_json(true)
    }

    /// JSON with every secret shown as `<redacted>`.
    pub fn redacted(&self) -> serde_json::Value {
        self.to_json(false)
    }

    fn to_json(&self, reveal: bool) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Secret(s) if reveal => J::String(s.expose().to_string()),
            Value::Secret(_) => J::String(REDACTED.to_string()),
            Value::List(l) => J::Array(l.iter().map(|v| v.to_json(reveal)).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.to_json(reveal)))
                    .collect(),
            ),
        }
    }

    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value at a dotted key path (`a.b.c`, a list entry as `a.b[0].c`), if every step is a
    /// map holding the next key or a list holding the entry.
    pub fn at_path(&self, path: &str) -> Option<&Value> {
        let mut cur = self;
        for part in path.split('.') {
            let Value::Map(m) = cur else {
                return None;
            };
            if let Some(v) = m.get(part) {
                cur = v;
                continue;
            }
            // `queues[1]`, `a[0][2]`: list entries, as validation messages name them
            let (key, mut rest) = part.split_once('[').map(|(k, r)| (k, format!("[{r}")))?;
            cur = m.get(key)?;
            while let Some(r) = rest.strip_prefix('[') {
                let (index, after) = r.split_once(']')?;
                match cur {
                    Value::List(l) => cur = l.get(index.parse::<usize>().ok()?)?,
                    _ => return None,
                }
                rest = after.to_string();
            }
            if !rest.is_empty() {
                return None;
            }
        }
        Some(cur)
    }

    /// Visit every leaf with its dotted key path (list items as `path[i]`).
    pub fn walk_leaves<'a>(&'a self, path: &str, f: &mut dyn FnMut(&str, &'a Value)) {
        match self {
            Value::Map(m) => {
                for (k, v) in m {
                    v.walk_leaves(&join_path(path, k), f);
                }
            }
            Value::List(l) => {
                for (i, v) in l.iter().enumerate() {
                    v.walk_leaves(&format!("{path}[{i}]"), f);
                }
            }
            leaf => f(path, leaf),
        }
    }

    /// Visit every map in the tree with its dotted key path.
    pub fn walk_maps<'a>(
        &'a self,
        path: &str,
        f: &mut dyn FnMut(&str, &'a BTreeMap<String, Value>),
    ) {
        match self {
            Value::Map(m) => {
                f(path, m);
                for (k, v) in m {
                    v.walk_maps(&join_path(path, k), f);
                }
            }
            Value::List(l) => {
                for (i, v) in l.iter().enumerate() {
                    v.walk_maps(&format!("{path}[{i}]"), f);
                }
            }
            _ => {}
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Secret(_) => "secret",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

pub fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn from_dynamic_at(d: &Dynamic, path: &str) -> Result<Value, String> {
    // each type is asked before anything is copied: `d.clone().try_cast::<bool>()` of a map
    // would copy the whole map (and each map below it, level by level) to find it no bool
    if d.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Value::Int(i));
    }
    if let Ok(f) = d.as_float() {
        return Ok(Value::Float(f));
    }
    if d.is_string() {
        return Ok(Value::Str(d.clone().into_string().unwrap_or_default()));
    }
    if d.is_char() {
        return Ok(Value::Str(d.as_char().unwrap_or_default().to_string()));
    }
    if d.is::<Secret>()
        && let Some(s) = d.clone().try_cast::<Secret>()
    {
        return Ok(Value::Secret(s));
    }
    if d.is_array() {
        let arr = d.read_lock::<Array>().expect("checked array");
        return arr
            .iter()
            .enumerate()
            .map(|(i, v)| from_dynamic_at(v, &format!("{path}[{i}]")))
            .collect::<Result<_, _>>()
            .map(Value::List);
    }
    if d.is_map() {
        let map = d.read_lock::<Map>().expect("checked map");
        let mut out = BTreeMap::new();
        for (k, v) in map.iter() {
            out.insert(k.to_string(), from_dynamic_at(v, &join_path(path, k))?);
        }
        return Ok(Value::Map(out));
    }
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    Err(format!(
        "a value of type {} cannot be used as data{at}: use strings, numbers, booleans, arrays and maps",
        d.type_name()
    ))
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Secret(secret) => secret.serialize(s),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// YAML text of a JSON value. serde-saphyr quotes strings such as `yes`, `on` and `0123` that a
/// YAML 1.1 reader (Helm's) would otherwise take for booleans or numbers.
pub fn json_to_yaml(j: &serde_json::Value) -> Result<String, String> {
    serde_saphyr::to_string(j).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shows_secrets_only_when_revealed_and_walks_see_every_path() {
        let v = Value::Map(BTreeMap::from([
            (
                "a".to_string(),
                Value::Secret(crate::secret::Secret::new("pw-value-0042")),
            ),
            (
                "l".to_string(),
                Value::List(vec![
                    Value::Map(BTreeMap::from([("x".to_string(), Value::Int(1))])),
                    Value::Null,
                ]),
            ),
        ]));
        assert_eq!(
            v.redacted(),
            serde_json::json!({"a": REDACTED, "l": [{"x": 1}, null]})
        );
        assert_eq!(v.reveal()["a"], "pw-value-0042");
        let mut leaves = Vec::new();
        v.walk_leaves("", &mut |p, leaf| {
            leaves.push(format!("{p}: {}", leaf.type_name()))
        });
        assert_eq!(leaves, ["a: secret", "l[0].x: int", "l[1]: null"]);
        let mut maps = Vec::new();
        v.walk_maps("top", &mut |p, m| maps.push(format!("{p} ({})", m.len())));
        assert_eq!(maps, ["top (2)", "top.l[0] (1)"]);
        assert_eq!(join_path("", "k"), "k");
        assert_eq!(join_path("a.b", "k"), "a.b.k");
        let names: Vec<_> = [
            Value::Bool(true),
            Value::Float(1.5),
            Value::Str("s".into()),
            Value::List(vec![]),
            Value::Map(BTreeMap::new()),
        ]
        .iter()
        .map(Value::type_name)
        .collect();
        assert_eq!(names, ["bool", "float", "string", "list", "map"]);
    }

    #[test]
    fn a_path_reaches_list_entries() {
        let v = Value::from_json(&serde_json::json!({
            "a": {"l": [{"x": 1}, [[2, 3]]]},
            "k[0]": "literal",
        }));
        assert_eq!(v.at_path("a.l[0].x"), Some(&Value::Int(1)));
        assert_eq!(v.at_path("a.l[1][0][1]"), Some(&Value::Int(3)));
        assert_eq!(v.at_path("k[0]"), Some(&Value::Str("literal".into())));
        assert_eq!(v.at_path("a.l[2]"), None);
        assert_eq!(v.at_path("a.l[0]x"), None);
        assert_eq!(v.at_path("a[0]"), None);
    }

    #[test]
    fn secrets_redact_in_serde_and_reveal_on_request() {
        let v = Value::Map(BTreeMap::from([
            ("a".to_string(), Value::Secret(Secret::new("s3cr3t-value"))),
            ("b".to_string(), Value::Str("yes".into())),
        ]));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":"<redacted>","b":"yes"}"#
        );
        assert_eq!(v.reveal()["a"], "s3cr3t-value");
        let yaml = json_to_yaml(&v.reveal()).unwrap();
        assert!(
            yaml.contains("b: \"yes\"") || yaml.contains("b: 'yes'"),
            "{yaml}"
        );
    }

    #[test]
    fn dynamic_roundtrip() {
        let mut m = Map::new();
        m.insert("n".into(), 3_i64.into());
        m.insert("l".into(), vec![Dynamic::from(true), Dynamic::UNIT].into());
        let v = Value::from_dynamic(&m.into()).unwrap();
        assert_eq!(v.at_path("n"), Some(&Value::Int(3)));
        let back = Value::from_dynamic(&v.to_dynamic()).unwrap();
        assert_eq!(v, back);
    }
}
