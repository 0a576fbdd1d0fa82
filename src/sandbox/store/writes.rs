//! The writing verbs: create (a name from `generateName`, the namespace must exist), update
//! (PUT, with the resourceVersion conflict check and the status subresource), delete (through
//! a Namespace's contents and what the object owns) and delete-collection.

use serde_json::Value;

use super::metadata::{carry_over, now_rfc3339, prepare, random_hex, uid};
use super::{ApiError, Key, Result, Selector, Store, key, resource_of};
use crate::sandbox::resources::{self, Resource};
use crate::sandbox::validation;

impl Store {
    pub fn create(
        &self,
        r: &'static Resource,
        ns: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value> {
        let mut inner = self.lock();
        let mut obj = prepare(r, ns, obj)?;
        validation::decodable(r, &obj)?;
        let ns = if r.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        if obj["metadata"]["name"].as_str().unwrap_or("").is_empty() {
            let base = obj["metadata"]["generateName"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if base.is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} is invalid: metadata.name: Required value: name or generateName is required",
                        r.kind
                    ),
                ));
            }
            let suffix: String = random_hex(3)[..5].to_string();
            obj["metadata"]["name"] = Value::from(format!("{base}{suffix}"));
        }
        validation::validate(r, &obj)?;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if r.namespaced {
            match inner.objects.get(&key(namespace_resource(), "", &ns)) {
                None => return Err(ApiError::not_found("namespaces", &ns)),
                // the NamespaceLifecycle admission: nothing new in a namespace being deleted
                Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                    let mut e = ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            r.plural
                        ),
                    );
                    e.name = name;
                    e.kind = r.plural.to_string();
                    e.causes = vec![(
                        "NamespaceTerminating",
                        format!("namespace {ns} is being terminated"),
                        "metadata.namespace",
                    )];
                    return Err(e);
                }
                Some(_) => {}
            }
        }
        if let Some(there) = inner.objects.get(&key(r, &ns, &name)) {
            let being_deleted = if there["metadata"]["deletionTimestamp"].is_null() {
                ""
            } else {
                "object is being deleted: "
            };
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{being_deleted}{} \"{name}\" already exists", r.plural),
            );
            e.name = name;
            e.kind = r.plural.to_string();
            return Err(e);
        }
        let meta = obj["metadata"].as_object_mut().expect("prepared");
        meta.insert("uid".into(), uid().into());
        meta.insert("creationTimestamp".into(), now_rfc3339().into());
        if r.has_generation() {
            meta.insert("generation".into(), 1.into());
        }
        if dry_run {
            return Ok(obj);
        }
        Ok(self.commit(&mut inner, r, &ns, obj, "ADDED"))
    }

    /// Replace an object (PUT). A `resourceVersion` in the body must match the stored one.
    pub fn update(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
    ) -> Result<Value> {
        let mut inner = self.lock();
        let ns = if r.namespaced { ns } else { "" };
        let old = inner
            .objects
            .get(&key(r, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(r.plural, name))?;
        let mut obj = prepare(r, ns, obj)?;
        validation::decodable(r, &obj)?;
        if obj["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj["metadata"]["name"].as_str().unwrap_or("")
            )));
        }
        if let Some(rv) = obj["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    r.plural
                ),
            );
            e.name = name.to_string();
            e.kind = r.plural.to_string();
            return Err(e);
        }
        if status_only {
            let mut merged = old.clone();
            merged["status"] = obj["status"].clone();
            obj = merged;
        }
        validation::validate(r, &obj)?;
        validation::validate_update(r, &old, &obj)?;
        let obj = carry_over(r, &old, obj);
        Ok(self.commit(&mut inner, r, ns, obj, "MODIFIED"))
    }

    /// Delete an object, what it owns, and for a Namespace everything in it. A Namespace then
    /// stays `Terminating` a while (see [`Store::finish_terminations`]), as a real one does
    /// while its controller empties and finalizes it.
    pub fn delete(&self, r: &'static Resource, ns: &str, name: &str) -> Result<Value> {
        let mut inner = self.lock();
        let ns = if r.namespaced { ns } else { "" };
        let k = key(r, ns, name);
        let obj = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(r.plural, name))?;
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if r.kind != "Namespace" {
            inner.objects.remove(&k);
            self.removed(&mut inner, r, ns, obj.clone());
            self.collect_garbage(&mut inner, &uid);
            return Ok(obj);
        }
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            // deleted again while terminating: the real server answers with it as it is
            return Ok(obj);
        }
        let inside: Vec<Key> = inner
            .objects
            .keys()
            .filter(|(_, _, n, _)| n == name)
            .cloned()
            .collect();
        for k in inside {
            if let Some(o) = inner.objects.remove(&k)
                && let Some(res) = resource_of(k.0, k.1)
            {
                self.removed(&mut inner, res, &k.2, o);
            }
        }
        self.collect_garbage(&mut inner, &uid);
        let linger = inner.faults.terminating();
        let mut obj = obj;
        obj["metadata"]["deletionTimestamp"] = Value::from(now_rfc3339());
        obj["metadata"]["deletionGracePeriodSeconds"] = Value::from(0);
        let obj = self.commit(&mut inner, r, "", obj, "MODIFIED");
        inner
            .terminating
            .insert(name.to_string(), std::time::Instant::now() + linger);
        if linger.is_zero() {
            drop(inner);
            self.finish_terminations();
        }
        // the real server answers with the namespace as it starts terminating
        Ok(obj)
    }

    /// The namespace controller: remove the deleted namespaces whose time is up. Answers
    /// whether any is still terminating.
    pub fn finish_terminations(&self) -> bool {
        let mut inner = self.lock();
        let now = std::time::Instant::now();
        let done: Vec<String> = inner
            .terminating
            .iter()
            .filter(|(_, at)| now >= **at)
            .map(|(n, _)| n.clone())
            .collect();
        let r = namespace_resource();
        for name in done {
            inner.terminating.remove(&name);
            if let Some(obj) = inner.objects.remove(&key(r, "", &name)) {
                self.removed(&mut inner, r, "", obj);
            }
        }
        !inner.terminating.is_empty()
    }

    /// Delete every object of a resource that matches the selectors.
    pub fn delete_collection(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        labels: &Selector,
        fields: &Selector,
    ) -> Vec<Value> {
        let (items, _) = self.list(r, ns, labels, fields);
        items
            .into_iter()
            .filter_map(|o| {
                let n = o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                self.delete(r, &n, &name).ok()
            })
            .collect()
    }
}

fn namespace_resource() -> &'static Resource {
    resources::find("", "v1", "namespaces").expect("namespaces are served")
}

#[cfg(test)]
mod tests {
    use super::super::res;
    use super::*;
    use serde_json::json;

    #[test]
    fn create_get_conflict_and_namespace_checks() {
        let s = Store::new();
        let cm = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        assert_eq!(
            s.create(res("configmaps"), "nope", cm.clone(), false)
                .unwrap_err()
                .code,
            404
        );
        let created = s
            .create(res("configmaps"), "default", cm.clone(), false)
            .unwrap();
        assert_eq!(created["kind"], "ConfigMap");
        assert_eq!(created["metadata"]["namespace"], "default");
        assert_eq!(
            s.create(res("configmaps"), "default", cm, false)
                .unwrap_err()
                .code,
            409
        );
        let mut stale = created.clone();
        stale["metadata"]["resourceVersion"] = Value::from("1");
        assert_eq!(
            s.update(res("configmaps"), "default", "a", stale, false)
                .unwrap_err()
                .code,
            409
        );
    }

    #[test]
    fn namespace_delete_cascades() {
        let s = Store::new();
        s.create(
            res("namespaces"),
            "",
            json!({"metadata": {"name": "t"}}),
            false,
        )
        .unwrap();
        s.create(
            res("secrets"),
            "t",
            json!({"metadata": {"name": "s"}}),
            false,
        )
        .unwrap();
        s.delete(res("namespaces"), "", "t").unwrap();
        assert_eq!(s.get(res("secrets"), "t", "s").unwrap_err().code, 404);
    }
}
