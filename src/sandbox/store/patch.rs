//! PATCH: the patch formats by content type, and the verb that applies them — RFC 7386 merge
//! patches, strategic merge patches as the built-in types define them, RFC 6902 JSON patches,
//! and server-side apply (which may create the object).

use serde_json::{Map, Value};

use super::metadata::now_rfc3339;
use super::{ApiError, Result, Store};
use crate::sandbox::resources::Resource;
use crate::sandbox::{ownership, validation};

/// Which patch format a PATCH request carries, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Apply,
    Json,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            "application/json-patch+json" => Some(PatchKind::Json),
            _ => None,
        }
    }
}

impl Store {
    /// PATCH: merge, strategic merge or server-side apply by `manager`, forced or not (which
    /// creates a missing object). Answers with the object and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        (manager, force): (&str, bool),
        dry_run: bool,
    ) -> Result<(Value, bool)> {
        match (kind, &body) {
            (PatchKind::Json, Value::Array(_)) => {}
            (PatchKind::Json, _) => {
                return Err(ApiError::bad_request(
                    "a JSON patch must be an array of operations",
                ));
            }
            (_, Value::Object(_)) => {}
            _ => return Err(ApiError::bad_request("the patch must be a JSON object")),
        }
        let existing = self.get(r, ns, name).ok();
        let Some(old) = existing else {
            if kind == PatchKind::Apply {
                let mut body = body;
                if body["metadata"]["name"].is_null() {
                    body["metadata"]["name"] = Value::from(name);
                }
                let obj = ownership::apply(None, &body, manager, force, &now_rfc3339())?;
                return self.create(r, ns, obj, dry_run).map(|o| (o, true));
            }
            return Err(ApiError::not_found(r.plural, name));
        };
        let new = match kind {
            PatchKind::Merge => merge_patch(&old, &body),
            PatchKind::Strategic => strategic_merge(&old, &body),
            PatchKind::Apply => {
                ownership::apply(Some(&old), &body, manager, force, &now_rfc3339())?
            }
            PatchKind::Json => json_patch(&old, &body)?,
        };
        let mut new = new;
        // The stored resourceVersion stands unless the patch names one to check against.
        if body["metadata"]["resourceVersion"].is_null() {
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        if dry_run {
            validation::decodable(r, &new)?;
            validation::validate(r, &new)?;
            validation::validate_update(r, &old, &new)?;
            return Ok((new, false));
        }
        self.update(r, ns, name, new, false).map(|o| (o, false))
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &Value, patch: &Value) -> Value {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            let mut out = t.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(t.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, Value::Object(p)) => merge_patch(&Value::Object(Map::new()), &Value::Object(p.clone())),
        (_, p) => p.clone(),
    }
}

/// The merge key of a list field in a strategic merge patch, as the built-in types declare it
/// (`ports` is keyed by `containerPort` in containers and by `port` in Services).
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "ports" if sample.is_some_and(|s| s.get("containerPort").is_some()) => {
            Some("containerPort")
        }
        "ports" => Some("port"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// A strategic merge patch as the built-in types define it: maps merge, lists of objects with
/// a merge key merge by it (`$patch: delete` removes an item, `$setElementOrder` orders them),
/// other lists replace; other `$` directives are honoured where simple and dropped otherwise.
fn strategic_merge(target: &Value, patch: &Value) -> Value {
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return patch.clone();
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut out = p.clone();
        out.remove("$patch");
        return Value::Object(out);
    }
    let mut out = t.clone();
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let sample = v.as_array().and_then(|a| a.first());
        let merged = match (t.get(k), v, merge_key(k, sample)) {
            (Some(Value::Array(old)), Value::Array(new), Some(mk)) => {
                let order = p
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array);
                merge_list(old, new, mk, order)
            }
            (Some(old @ Value::Object(_)), Value::Object(_), _) => strategic_merge(old, v),
            (None, Value::Object(_), _) => strategic_merge(&Value::Object(Map::new()), v),
            (_, Value::Array(new), _) => Value::Array(
                new.iter()
                    .filter(|i| i.get("$patch").is_none())
                    .cloned()
                    .collect(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Value::Object(out)
}

fn merge_list(old: &[Value], new: &[Value], mk: &str, order: Option<&Vec<Value>>) -> Value {
    let mut items: Vec<Value> = old.to_vec();
    for item in new {
        let key = &item[mk];
        let pos = items.iter().position(|o| &o[mk] == key && !key.is_null());
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                items.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => items[i] = strategic_merge(&items[i], item),
            None => items.push(strategic_merge(&Value::Object(Map::new()), item)),
        }
    }
    if let Some(order) = order {
        let rank = |v: &Value| {
            order
                .iter()
                .position(|o| o[mk] == v[mk])
                .unwrap_or(usize::MAX)
        };
        items.sort_by_key(rank);
    }
    Value::Array(items)
}

/// RFC 6902 JSON patch: add, remove, replace and test.
fn json_patch(old: &Value, ops: &Value) -> Result<Value> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array of operations"))?;
    let mut doc = old.clone();
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("a JSON patch operation needs a path"))?;
        let kind = op["op"].as_str().unwrap_or("");
        let pointer_parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let last = path
            .rsplit('/')
            .next()
            .unwrap_or("")
            .replace("~1", "/")
            .replace("~0", "~");
        match kind {
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("test of {path} failed"),
                    ));
                }
            }
            "remove" | "add" | "replace" => {
                let parent = doc.pointer_mut(pointer_parent).ok_or_else(|| {
                    ApiError::new(422, "Invalid", format!("the path {path} does not exist"))
                })?;
                match (parent, kind) {
                    (Value::Object(m), "remove") => {
                        m.remove(&last);
                    }
                    (Value::Object(m), _) => {
                        m.insert(last, op["value"].clone());
                    }
                    (Value::Array(a), k) => {
                        let i = if last == "-" {
                            a.len()
                        } else {
                            last.parse::<usize>().map_err(|_| {
                                ApiError::new(422, "Invalid", format!("bad array index in {path}"))
                            })?
                        };
                        match k {
                            "remove" if i < a.len() => {
                                a.remove(i);
                            }
                            "add" if i <= a.len() => a.insert(i, op["value"].clone()),
                            "replace" if i < a.len() => a[i] = op["value"].clone(),
                            _ => {
                                return Err(ApiError::new(
                                    422,
                                    "Invalid",
                                    format!("index out of range in {path}"),
                                ));
                            }
                        }
                    }
                    _ => {
                        return Err(ApiError::new(
                            422,
                            "Invalid",
                            format!("cannot patch {path}"),
                        ));
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_by_key() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x2"}, {"name": "b", "$patch": "delete"}]}});
        let out = strategic_merge(&old, &patch);
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "x2"}]}})
        );
    }
}
