//! Server-side apply's field ownership, as the real server keeps it in `metadata.managedFields`,
//! simplified where no client of this tool looks:
//! - only appliers own fields (operation `Apply`); a field set by POST, PUT or another kind of
//!   PATCH belongs to nobody, so an apply never conflicts with it;
//! - a list is owned whole (the real server owns the items of a list with a merge key one by
//!   one).
//!
//! What it keeps right, and what helm 4 and the tool rely on: an apply removes only the fields
//! its own manager applied before and no longer names, never another manager's; and a field
//! another applier owns with another value is a conflict (409) unless the apply forces, which
//! takes it over.

use serde_json::{Map, Value, json};

use super::store::ApiError;

/// One leaf of an applied configuration: the keys from the object's root.
type Path = Vec<String>;

/// The leaves an applied configuration names: maps are followed, a list or a scalar is a leaf.
/// Of `metadata`, only labels, annotations and ownerReferences are fields; `status` and the
/// type's `apiVersion` and `kind` are not.
fn leaves(applied: &Value) -> Vec<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut Vec<Path>) {
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            Value::Object(_) => {}
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    for (k, v) in applied.as_object().into_iter().flatten() {
        let mut path = vec![k.clone()];
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for field in ["labels", "annotations"] {
                    for (key, value) in v[field].as_object().into_iter().flatten() {
                        if !value.is_null() {
                            out.push(vec!["metadata".into(), field.into(), key.clone()]);
                        }
                    }
                }
                if !v["ownerReferences"].is_null() {
                    out.push(vec!["metadata".into(), "ownerReferences".into()]);
                }
            }
            _ => walk(v, &mut path, &mut out),
        }
    }
    out
}

/// The `fieldsV1` tree of a set of leaves: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for key in path {
            node = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("a fieldsV1 node is a map");
        }
    }
    Value::Object(root)
}

/// The leaves of a `fieldsV1` tree.
fn paths_of(fields: &Value) -> Vec<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut Vec<Path>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<_> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
        if children.is_empty() {
            if !path.is_empty() {
                out.push(path.clone());
            }
            return;
        }
        for (k, child) in children {
            path.push(k[2..].to_string());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(v: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn set(v: &mut Value, path: &Path, value: Value) {
    let mut node = v;
    for k in &path[..path.len() - 1] {
        if !node[k.as_str()].is_object() {
            node[k.as_str()] = json!({});
        }
        node = &mut node[k.as_str()];
    }
    node[path[path.len() - 1].as_str()] = value;
}

/// Remove a leaf, and the maps it leaves empty (a label map without labels goes too).
fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = &mut *v;
    for k in parents {
        match node.get_mut(k.as_str()) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(m) = node.as_object_mut() {
        m.remove(last);
    }
    if !parents.is_empty() && at(v, &parents.to_vec()).is_some_and(|p| p == &json!({})) {
        remove(v, parents);
    }
}

/// Two leaves overlap when one is the other or lies inside it.
fn overlaps(a: &Path, b: &Path) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Apply `applied` for `manager` to the stored object `old` (None: it does not exist yet).
/// Answers the new object with its `managedFields`, or a 409 Conflict naming the other
/// managers' fields when `force` is not given.
pub fn apply(
    old: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let empty = json!({});
    let old_obj = old.unwrap_or(&empty);
    let mine = leaves(applied);
    let entries: Vec<Value> = old_obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let owned = |e: &Value| paths_of(&e["fieldsV1"]);
    let previously: Vec<Path> = entries
        .iter()
        .filter(|e| e["manager"] == manager && e["operation"] == "Apply")
        .flat_map(owned)
        .collect();
    // the other appliers' fields, and the conflicts with them
    let mut others: Vec<(Value, Vec<Path>)> = Vec::new();
    let mut conflicts = Vec::new();
    for e in &entries {
        if e["manager"] == manager && e["operation"] == "Apply" {
            continue;
        }
        let mut fields = if e["operation"] == "Apply" {
            owned(e)
        } else {
            Vec::new()
        };
        fields.retain(|theirs| {
            // on the deeper of two overlapping leaves, the values differ
            let clash = mine.iter().any(|p| {
                let deeper = if p.len() >= theirs.len() { p } else { theirs };
                overlaps(p, theirs) && at(old_obj, deeper) != at(applied, deeper)
            });
            if clash {
                conflicts.push(format!(
                    "conflict with {}: .{}",
                    e["manager"],
                    theirs.join(".")
                ));
            }
            !(clash && force)
        });
        others.push((e.clone(), fields));
    }
    if !conflicts.is_empty() && !force {
        let n = conflicts.len();
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {n} conflict{}: {}",
                if n == 1 { "" } else { "s" },
                conflicts.join("\n")
            ),
        ));
    }
    let mut new = old.cloned().unwrap_or_else(|| {
        let mut base = json!({"apiVersion": applied["apiVersion"], "kind": applied["kind"],
                              "metadata": {}});
        for key in ["name", "namespace"] {
            if !applied["metadata"][key].is_null() {
                base["metadata"][key] = applied["metadata"][key].clone();
            }
        }
        base
    });
    // what this manager applied before and names no more, unless another applier owns it
    for p in &previously {
        let still = mine.iter().any(|m| overlaps(m, p))
            || others
                .iter()
                .any(|(_, fields)| fields.iter().any(|f| overlaps(f, p)));
        if !still {
            remove(&mut new, p);
        }
    }
    for p in &mine {
        if let Some(v) = at(applied, p) {
            set(&mut new, p, v.clone());
        }
    }
    let mut managed: Vec<Value> = others
        .into_iter()
        .filter(|(e, fields)| e["operation"] != "Apply" || !fields.is_empty())
        .map(|(mut e, fields)| {
            if e["operation"] == "Apply" {
                e["fieldsV1"] = fields_v1(&fields);
            }
            e
        })
        .collect();
    managed.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(&mine),
    }));
    new["metadata"]["managedFields"] = Value::Array(managed);
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "a", "labels": labels}})
    }

    #[test]
    fn an_apply_keeps_the_fields_another_applier_owns() {
        let helm = apply(None, &ns(json!({"name": "a"})), "helm", false, "t").unwrap();
        let tool = apply(
            Some(&helm),
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            "tool",
            true,
            "t",
        )
        .unwrap();
        assert_eq!(tool["metadata"]["labels"], json!({"name": "a"}));
        let managers: Vec<&str> = tool["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["helm", "tool"]);
    }

    #[test]
    fn an_apply_removes_what_its_manager_no_longer_names() {
        let first = apply(None, &ns(json!({"x": "1", "y": "2"})), "m", false, "t").unwrap();
        let second = apply(Some(&first), &ns(json!({"x": "1"})), "m", false, "t").unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"x": "1"}));
        let third = apply(
            Some(&second),
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            "m",
            false,
            "t",
        )
        .unwrap();
        assert!(third["metadata"].get("labels").is_none(), "{third}");
    }

    #[test]
    fn another_appliers_value_is_a_conflict_unless_forced() {
        let helm = apply(None, &ns(json!({"name": "a"})), "helm", false, "t").unwrap();
        let err = apply(Some(&helm), &ns(json!({"name": "b"})), "tool", false, "t").unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("conflict with \"helm\": .metadata.labels.name"),
            "{}",
            err.message
        );
        // the same value is shared, not a conflict
        apply(Some(&helm), &ns(json!({"name": "a"})), "tool", false, "t").unwrap();
        // forced: the tool takes the field over
        let forced = apply(Some(&helm), &ns(json!({"name": "b"})), "tool", true, "t").unwrap();
        assert_eq!(forced["metadata"]["labels"]["name"], "b");
        let entries = forced["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "helm owns nothing any more: {entries:?}");
    }

    #[test]
    fn fields_v1_round_trips() {
        let paths = vec![
            vec!["spec".to_string(), "replicas".to_string()],
            vec![
                "metadata".to_string(),
                "labels".to_string(),
                "a".to_string(),
            ],
        ];
        let mut back = paths_of(&fields_v1(&paths));
        back.sort();
        let mut want = paths;
        want.sort();
        assert_eq!(back, want);
    }
}
