//! Label and field selectors: requirements joined by commas (`=`, `==`, `!=`, `in`, `notin`,
//! existence), parsed and matched against objects.

use serde_json::Value;

use super::{ApiError, Result};

/// Label or field selector: requirements joined by commas.
#[derive(Debug, Default, Clone)]
pub struct Selector(Vec<Req>);

#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector> {
        let mut reqs = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        let mut parts = Vec::new();
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&text[start..]);
        for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
            let req = if let Some((k, v)) = part.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set(rest).ok_or_else(bad)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Req::In(k.trim().into(), set(rest).ok_or_else(bad)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().into())
            } else if part
                .chars()
                .all(|c| c.is_alphanumeric() || "-_./".contains(c))
            {
                Req::Exists(part.into())
            } else {
                return Err(bad());
            };
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    /// A label selector: as `parse`, and every key and value must be a valid label key and
    /// value (the real server answers 400 otherwise).
    pub fn parse_labels(text: &str) -> Result<Selector> {
        let sel = Selector::parse(text)?;
        use crate::sandbox::validation::{is_label_key, is_label_value};
        for req in &sel.0 {
            let (key, values): (&String, Vec<&String>) = match req {
                Req::Eq(k, v) | Req::Ne(k, v) => (k, vec![v]),
                Req::In(k, vs) | Req::NotIn(k, vs) => (k, vs.iter().collect()),
                Req::Exists(k) | Req::NotExists(k) => (k, vec![]),
            };
            if !is_label_key(key) || !values.iter().all(|v| is_label_value(v)) {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: invalid label selector {text:?}"
                )));
            }
        }
        Ok(sel)
    }

    fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|req| match req {
            Req::Eq(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Req::Ne(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Req::In(k, vs) => lookup(k).is_some_and(|x| vs.contains(&x)),
            Req::NotIn(k, vs) => lookup(k).is_none_or(|x| !vs.contains(&x)),
            Req::Exists(k) => lookup(k).is_some(),
            Req::NotExists(k) => lookup(k).is_none(),
        })
    }

    pub fn matches_labels(&self, obj: &Value) -> bool {
        self.matches(|k| obj["metadata"]["labels"][k].as_str().map(str::to_string))
    }

    /// Field selectors: dotted paths into the object (`metadata.name`, `type`, `status.phase`).
    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.matches(|k| {
            let mut cur = obj;
            for part in k.split('.') {
                cur = cur.get(part)?;
            }
            match cur {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }
}

fn set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|s| s.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let sel = Selector::parse("owner=helm,name in (a, b),!gone,status!=x").unwrap();
        let obj =
            json!({"metadata": {"labels": {"owner": "helm", "name": "a", "status": "deployed"}}});
        assert!(sel.matches_labels(&obj));
        let obj2 = json!({"metadata": {"labels": {"owner": "helm", "name": "c"}}});
        assert!(!sel.matches_labels(&obj2));
        let f = Selector::parse("metadata.name=x,type=helm.sh/release.v1").unwrap();
        assert!(
            f.matches_fields(&json!({"metadata": {"name": "x"}, "type": "helm.sh/release.v1"}))
        );
        assert!(Selector::parse("a in b").is_err());
    }
}
