//! The simulator's storage: objects by resource, namespace and name, with resourceVersion and
//! generation, label and field selectors, merge, strategic-merge and apply patches, cascading
//! deletes, watch events, and simulated controllers that make workloads ready.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::resources::{self, Resource};

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub name: String,
    pub kind: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: String::new(),
            kind: String::new(),
        }
    }

    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{plural} \"{name}\" not found"),
            name: name.to_string(),
            kind: plural.to_string(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.name.is_empty() || !self.kind.is_empty() {
            s["details"] = json!({"name": self.name, "kind": self.kind});
        }
        s
    }
}

pub type Result<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub resource: &'static Resource,
    pub namespace: String,
    pub object: Value,
}

type Key = (&'static str, &'static str, String, String);

fn key(r: &'static Resource, ns: &str, name: &str) -> Key {
    (r.group, r.plural, ns.to_string(), name.to_string())
}

struct Inner {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    next_ip: u32,
    /// Workloads the controllers keep from becoming ready (`--fault workload:…`).
    faults: super::faults::Faults,
    /// The latest events, so a watch from a resourceVersion replays what it missed (as the
    /// real server's watch cache does); `history_floor` is the newest version no longer held.
    history: std::collections::VecDeque<Event>,
    history_floor: u64,
    /// The cluster's CA certificate (PEM), which every namespace's `kube-root-ca.crt` holds.
    cluster_ca: String,
    /// With a readiness delay (`ready-after:MS`): each workload's generation, when it becomes
    /// ready, and whether its ready state is stored yet.
    ready_due: BTreeMap<Key, Due>,
}

struct Due {
    generation: Value,
    at: std::time::Instant,
    shown: bool,
}

/// How many events a watch can resume across.
const HISTORY: usize = 4096;

pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
}

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

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty cluster with what a real one starts with: namespaces `default`, `kube-system`
    /// and `kube-public`, a node with addresses, a default StorageClass and IngressClass.
    pub fn new() -> Store {
        Store::with_faults(Default::default())
    }

    /// A new cluster whose controllers honour the workload faults of `faults`.
    pub fn with_faults(faults: super::faults::Faults) -> Store {
        let (events, _) = broadcast::channel(8192);
        let store = Store {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                rv: 1000,
                next_ip: 10,
                cluster_ca: String::new(),
                faults,
                history: Default::default(),
                history_floor: 0,
                ready_due: BTreeMap::new(),
            }),
            events,
        };
        let seed = |api_version: &str, kind: &str, ns: &str, obj: Value| {
            let r = resources::by_kind(api_version, kind).expect("seeded kinds exist");
            store
                .create(r, ns, obj, false)
                .expect("seed objects are valid");
        };
        for ns in ["default", "kube-system", "kube-public"] {
            seed("v1", "Namespace", "", json!({"metadata": {"name": ns}}));
        }
        seed(
            "v1",
            "Node",
            "",
            json!({
                "metadata": {"name": "sandbox-node-1", "labels": {"kubernetes.io/hostname": "sandbox-node-1"}},
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": "10.0.0.10"},
                        {"type": "ExternalIP", "address": "203.0.113.10"},
                        {"type": "Hostname", "address": "sandbox-node-1"},
                    ],
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                },
            }),
        );
        seed(
            "storage.k8s.io/v1",
            "StorageClass",
            "",
            json!({
                "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "sandbox.local/hostpath",
            }),
        );
        seed(
            "networking.k8s.io/v1",
            "IngressClass",
            "",
            json!({
                "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": "k8s.io/ingress-nginx"},
            }),
        );
        store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Subscribe, with the events after resourceVersion `since` that were already sent; `None`
    /// when they are no longer held (the real server's "too old resource version").
    pub fn watch_from(&self, since: u64) -> (broadcast::Receiver<Event>, Option<Vec<Event>>) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        if since < inner.history_floor {
            return (rx, None);
        }
        let rv = |e: &Event| {
            e.object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let past = inner
            .history
            .iter()
            .filter(|e| rv(e) > since)
            .cloned()
            .collect();
        (rx, Some(past))
    }

    /// Send an event to the watches, and keep it for those that resume later.
    fn announce(&self, inner: &mut Inner, ev: Event) {
        inner.history.push_back(ev.clone());
        if inner.history.len() > HISTORY
            && let Some(old) = inner.history.pop_front()
        {
            inner.history_floor = old.object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(inner.history_floor);
        }
        let _ = self.events.send(ev);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything stored, for `--sandbox-state`: objects with their resource, and the counters.
    pub fn snapshot(&self) -> Value {
        let inner = self.lock();
        let objects: Vec<Value> = inner
            .objects
            .iter()
            .map(|((g, p, _, _), o)| json!({"group": g, "plural": p, "object": o}))
            .collect();
        json!({"rv": inner.rv, "next_ip": inner.next_ip, "objects": objects})
    }

    /// Put back what [`Store::snapshot`] took (replacing what is stored now).
    pub fn restore(&self, snap: &Value) -> std::result::Result<(), String> {
        let mut inner = self.lock();
        let mut objects = BTreeMap::new();
        for entry in snap["objects"]
            .as_array()
            .ok_or("the sandbox state has no objects")?
        {
            let (g, p) = (
                entry["group"].as_str().unwrap_or(""),
                entry["plural"].as_str().unwrap_or(""),
            );
            let r = resources::RESOURCES
                .iter()
                .find(|r| r.group == g && r.plural == p)
                .ok_or_else(|| format!("the sandbox state holds an unknown resource {g}/{p}"))?;
            let obj = entry["object"].clone();
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            objects.insert(key(r, &ns, &name), obj);
        }
        inner.objects = objects;
        inner.rv = snap["rv"].as_u64().unwrap_or(inner.rv);
        inner.next_ip = snap["next_ip"].as_u64().map_or(inner.next_ip, |n| n as u32);
        Ok(())
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, r: &'static Resource, ns: &str, name: &str) -> Result<Value> {
        self.lock()
            .objects
            .get(&key(r, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(r.plural, name))
    }

    /// Objects of a resource, in one namespace or all, that match the selectors; and the
    /// resourceVersion of the list.
    pub fn list(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        labels: &Selector,
        fields: &Selector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == r.group && *p == r.plural && ns.is_none_or(|want| want == n)
            })
            .map(|(_, v)| v)
            .filter(|v| labels.matches_labels(v) && fields.matches_fields(v))
            .cloned()
            .collect();
        (items, inner.rv)
    }

    pub fn create(
        &self,
        r: &'static Resource,
        ns: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value> {
        let mut inner = self.lock();
        let mut obj = prepare(r, ns, obj)?;
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
        super::validation::validate(r, &obj)?;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if r.namespaced
            && !inner
                .objects
                .contains_key(&key(namespace_resource(), "", &ns))
        {
            return Err(ApiError::not_found("namespaces", &ns));
        }
        if inner.objects.contains_key(&key(r, &ns, &name)) {
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", r.plural),
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
        super::validation::validate(r, &obj)?;
        let obj = carry_over(r, &old, obj);
        Ok(self.commit(&mut inner, r, ns, obj, "MODIFIED"))
    }

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
                let obj = super::ownership::apply(None, &body, manager, force, &now_rfc3339())?;
                return self.create(r, ns, obj, dry_run).map(|o| (o, true));
            }
            return Err(ApiError::not_found(r.plural, name));
        };
        let new = match kind {
            PatchKind::Merge => merge_patch(&old, &body),
            PatchKind::Strategic => strategic_merge(&old, &body),
            PatchKind::Apply => {
                super::ownership::apply(Some(&old), &body, manager, force, &now_rfc3339())?
            }
            PatchKind::Json => json_patch(&old, &body)?,
        };
        let mut new = new;
        // The stored resourceVersion stands unless the patch names one to check against.
        if body["metadata"]["resourceVersion"].is_null() {
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        if dry_run {
            super::validation::validate(r, &new)?;
            return Ok((new, false));
        }
        self.update(r, ns, name, new, false).map(|o| (o, false))
    }

    /// Delete an object, what it owns, and for a Namespace everything in it.
    pub fn delete(&self, r: &'static Resource, ns: &str, name: &str) -> Result<Value> {
        let mut inner = self.lock();
        let ns = if r.namespaced { ns } else { "" };
        let obj = inner
            .objects
            .remove(&key(r, ns, name))
            .ok_or_else(|| ApiError::not_found(r.plural, name))?;
        self.removed(&mut inner, r, ns, obj.clone());
        if r.kind == "Namespace" {
            let inside: Vec<Key> = inner
                .objects
                .keys()
                .filter(|(_, _, n, _)| n == name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(o) = inner.objects.remove(&k)
                    && let Some(res) = resources::RESOURCES
                        .iter()
                        .find(|x| x.group == k.0 && x.plural == k.1)
                {
                    self.removed(&mut inner, res, &k.2, o);
                }
            }
        }
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.collect_garbage(&mut inner, &uid);
        let mut obj = obj;
        if r.kind == "Namespace" {
            // the real server answers with the namespace as it starts terminating
            obj["metadata"]["deletionTimestamp"] = Value::from(now_rfc3339());
            obj["status"]["phase"] = Value::from("Terminating");
        }
        Ok(obj)
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

    fn collect_garbage(&self, inner: &mut Inner, owner_uid: &str) {
        if owner_uid.is_empty() {
            return;
        }
        let owned: Vec<Key> = inner
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            if let Some(o) = inner.objects.remove(&k) {
                let uid = o["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Some(res) = resources::RESOURCES
                    .iter()
                    .find(|x| x.group == k.0 && x.plural == k.1)
                {
                    self.removed(inner, res, &k.2, o);
                }
                self.collect_garbage(inner, &uid);
            }
        }
    }

    fn removed(&self, inner: &mut Inner, r: &'static Resource, ns: &str, mut obj: Value) {
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::from(inner.rv.to_string());
        self.announce(
            inner,
            Event {
                kind: "DELETED",
                resource: r,
                namespace: ns.to_string(),
                object: obj,
            },
        );
    }

    /// The cluster's CA certificate, which the `kube-root-ca.crt` ConfigMap of every
    /// namespace holds (those made before it was known are completed).
    pub fn set_cluster_ca(&self, pem: &str) {
        let mut inner = self.lock();
        inner.cluster_ca = pem.to_string();
        for ((group, plural, _, name), obj) in inner.objects.iter_mut() {
            if group.is_empty() && *plural == "configmaps" && name == "kube-root-ca.crt" {
                obj["data"]["ca.crt"] = Value::from(pem);
            }
        }
    }

    /// Store an object after the simulated controllers ran, and announce it.
    fn commit(
        &self,
        inner: &mut Inner,
        r: &'static Resource,
        ns: &str,
        mut obj: Value,
        event: &'static str,
    ) -> Value {
        let derived = simulate(r, &mut obj, inner);
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::from(inner.rv.to_string());
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        inner.objects.insert(key(r, ns, &name), obj.clone());
        self.announce(
            inner,
            Event {
                kind: event,
                resource: r,
                namespace: ns.to_string(),
                object: obj.clone(),
            },
        );
        for (dr, dobj) in derived {
            let dname = dobj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // what a Namespace makes lies inside it; a workload's, beside it
            let ns = dobj["metadata"]["namespace"]
                .as_str()
                .map_or_else(|| ns.to_string(), str::to_string);
            let ns = ns.as_str();
            let exists = inner.objects.contains_key(&key(dr, ns, &dname));
            let mut dobj = dobj;
            if !exists {
                dobj["metadata"]["uid"] = Value::from(uid());
                dobj["metadata"]["creationTimestamp"] = Value::from(now_rfc3339());
                dobj["metadata"]["generation"] = Value::from(1);
            }
            self.commit(
                inner,
                dr,
                ns,
                dobj,
                if exists { "MODIFIED" } else { "ADDED" },
            );
        }
        obj
    }
}

fn namespace_resource() -> &'static Resource {
    resources::find("", "v1", "namespaces").expect("namespaces are served")
}

/// Check and complete the object's type and metadata for storing under `r` in `ns`.
fn prepare(r: &'static Resource, ns: &str, obj: Value) -> Result<Value> {
    let Value::Object(mut map) = obj else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let api_version = r.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), api_version.clone().into());
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), r.kind.into());
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                r.kind
            )));
        }
    }
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    if r.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), ns.into());
            }
        }
    } else {
        meta.remove("namespace");
    }
    for field in ["labels", "annotations"] {
        if let Some(v) = meta.get(field)
            && !v.is_null()
            && !v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string))
        {
            return Err(ApiError::bad_request(format!(
                "metadata.{field} must map strings to strings"
            )));
        }
    }
    if let Some(name) = meta.get("name")
        && !name.is_null()
        && !name.is_string()
    {
        return Err(ApiError::bad_request("metadata.name must be a string"));
    }
    Ok(Value::Object(map))
}

/// Keep what the server owns across an update, and bump the generation on a spec change.
fn carry_over(r: &'static Resource, old: &Value, mut new: Value) -> Value {
    for field in ["uid", "creationTimestamp"] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    // an update that does not send the field managers keeps them
    if new["metadata"]["managedFields"].is_null() && !old["metadata"]["managedFields"].is_null() {
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    }
    if r.has_generation() {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = strip(old) != strip(&new);
        new["metadata"]["generation"] = Value::from(if changed { g + 1 } else { g });
    }
    new
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
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
pub fn strategic_merge(target: &Value, patch: &Value) -> Value {
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
        use super::validation::{is_label_key, is_label_value};
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

/// The simulated controllers: fill in what a real cluster's controllers would, so that readiness
/// checks (helm 3's polling, helm 4's kstatus watcher, kube-rs conditions) see ready workloads.
/// Answers with derived objects to store (a Deployment's ReplicaSets).
fn simulate(
    r: &'static Resource,
    obj: &mut Value,
    inner: &mut Inner,
) -> Vec<(&'static Resource, Value)> {
    let generation = obj["metadata"]["generation"].clone();
    let replicas = |obj: &mut Value| -> i64 {
        if obj["spec"]["replicas"].is_null() && obj["spec"].is_object() {
            obj["spec"]["replicas"] = Value::from(1);
        }
        obj["spec"]["replicas"].as_i64().unwrap_or(1)
    };
    match r.kind {
        "Secret" => {
            if obj["type"].as_str().unwrap_or("").is_empty() {
                obj["type"] = Value::from("Opaque");
            }
            // stringData is write-only: the server folds it into data
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in sd {
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    obj["data"][k] = Value::from(b64.encode(text));
                }
            }
        }
        "Namespace" => {
            obj["status"] = json!({"phase": "Active"});
            // the real server labels every namespace with its name
            let name = obj["metadata"]["name"].clone();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            // a new namespace: the real controller manager gives it the cluster's CA and a
            // default ServiceAccount
            let ns = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !inner.objects.contains_key(&key(r, "", &ns)) {
                let kind = |plural| resources::find("", "v1", plural).expect("served");
                return vec![
                    (
                        kind("configmaps"),
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "kube-root-ca.crt", "namespace": ns},
                               "data": {"ca.crt": inner.cluster_ca}}),
                    ),
                    (
                        kind("serviceaccounts"),
                        json!({"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": {"name": "default", "namespace": ns}}),
                    ),
                ];
            }
        }
        "Service" => {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            let kind = obj["spec"]["type"]
                .as_str()
                .unwrap_or("ClusterIP")
                .to_string();
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = Value::from("ClusterIP");
            }
            if kind != "ExternalName" && obj["spec"]["clusterIP"].as_str().unwrap_or("").is_empty()
            {
                inner.next_ip += 1;
                let ip = format!("10.96.{}.{}", inner.next_ip / 250, inner.next_ip % 250 + 1);
                obj["spec"]["clusterIP"] = Value::from(ip.clone());
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            if kind == "LoadBalancer" {
                let ip = format!("198.51.100.{}", inner.next_ip % 250 + 1);
                obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
            } else {
                obj["status"] = json!({"loadBalancer": {}});
            }
        }
        "Deployment" | "StatefulSet"
            if inner
                .faults
                .workload(obj["metadata"]["name"].as_str().unwrap_or_default())
                .is_some() =>
        {
            let n = replicas(obj);
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let why = inner.faults.workload(name).expect("checked");
            let mut derived: Vec<(&'static Resource, Value)> =
                super::faults::broken_workload(r.kind, obj, n, why)
                    .into_iter()
                    .filter_map(|o| {
                        let kind = o["kind"].as_str().unwrap_or_default().to_string();
                        resources::by_kind("v1", &kind).map(|res| (res, o))
                    })
                    .collect();
            if r.kind == "Deployment" {
                derived.extend(replica_sets(obj, n, inner));
            }
            return derived;
        }
        "Deployment" | "StatefulSet" if !matured(r, obj, inner) => {
            let n = replicas(obj);
            obj["status"] = json!({
                "observedGeneration": generation,
                "replicas": n, "updatedReplicas": n, "readyReplicas": 0, "availableReplicas": 0,
                "unavailableReplicas": n, "currentReplicas": n,
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet is progressing."},
                ],
            });
            if r.kind == "Deployment" {
                return replica_sets(obj, n, inner);
            }
        }
        "Deployment" => {
            let n = replicas(obj);
            obj["status"] = json!({
                "observedGeneration": generation,
                "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed."},
                ],
            });
            return replica_sets(obj, n, inner);
        }
        "ReplicaSet" => {
            let n = replicas(obj);
            let owner = obj["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .unwrap_or_default();
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            let deployments = resources::find("apps", "v1", "deployments").expect("served");
            let waiting = inner
                .ready_due
                .get(&key(deployments, ns, owner))
                .is_some_and(|d| !d.shown);
            let ready = if inner.faults.workload(owner).is_some() || waiting {
                0
            } else {
                n
            };
            obj["status"] = json!({
                "observedGeneration": generation,
                "replicas": n, "fullyLabeledReplicas": n, "readyReplicas": ready, "availableReplicas": ready,
            });
        }
        "StatefulSet" => {
            let n = replicas(obj);
            let revision = format!(
                "{}-{}",
                obj["metadata"]["name"].as_str().unwrap_or(""),
                template_hash(&obj["spec"]["template"])
            );
            obj["status"] = json!({
                "observedGeneration": generation,
                "replicas": n, "readyReplicas": n, "currentReplicas": n, "updatedReplicas": n, "availableReplicas": n,
                "currentRevision": revision, "updateRevision": revision,
            });
        }
        "DaemonSet" => {
            obj["status"] = json!({
                "observedGeneration": generation,
                "desiredNumberScheduled": 1, "currentNumberScheduled": 1, "updatedNumberScheduled": 1,
                "numberReady": 1, "numberAvailable": 1, "numberMisscheduled": 0,
            });
        }
        "Job" => {
            let now = now_rfc3339();
            obj["status"] = json!({
                "startTime": now, "completionTime": now, "succeeded": 1, "active": 0,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            });
        }
        "PersistentVolumeClaim" => {
            obj["status"] = json!({"phase": "Bound", "accessModes": obj["spec"]["accessModes"], "capacity": obj["spec"]["resources"]["requests"]});
        }
        "Pod" if !obj["metadata"]["annotations"][super::faults::FAULT_ANNOTATION].is_null() => {}
        "Pod" => {
            obj["status"] = json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            });
        }
        "PodDisruptionBudget" | "HorizontalPodAutoscaler" | "CronJob" => {
            if !obj["status"].is_object() {
                obj["status"] = json!({});
            }
            obj["status"]["observedGeneration"] = generation;
        }
        _ => {}
    }
    Vec::new()
}

/// With a readiness delay: has this workload's generation been there long enough to be ready?
/// A new generation starts its delay now.
fn matured(r: &'static Resource, obj: &Value, inner: &mut Inner) -> bool {
    let Some(delay) = inner.faults.ready_after() else {
        return true;
    };
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let generation = obj["metadata"]["generation"].clone();
    let now = std::time::Instant::now();
    let due = inner.ready_due.entry(key(r, ns, name)).or_insert(Due {
        generation: generation.clone(),
        at: now + delay,
        shown: false,
    });
    if due.generation != generation {
        *due = Due {
            generation,
            at: now + delay,
            shown: false,
        };
    }
    if now >= due.at {
        due.shown = true;
    }
    due.shown
}

impl Store {
    /// With a readiness delay: store as ready the workloads whose delay has passed (as a
    /// controller's status update, announced to watches). Answers whether any still waits.
    pub fn mature_workloads(&self) -> bool {
        let mut inner = self.lock();
        let now = std::time::Instant::now();
        let due: Vec<Key> = inner
            .ready_due
            .iter()
            .filter(|(_, d)| !d.shown && now >= d.at)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            let Some(obj) = inner.objects.get(&k).cloned() else {
                inner.ready_due.remove(&k);
                continue;
            };
            let Some(r) = resources::find(k.0, "v1", k.1) else {
                continue;
            };
            self.commit(&mut inner, r, &k.2, obj, "MODIFIED");
        }
        inner.ready_due.values().any(|d| !d.shown)
    }
}

fn template_hash(template: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:x}", h.finish())[..10].to_string()
}

/// The Deployment's current ReplicaSet (template plus `pod-template-hash`, owned by it, ready)
/// and its older ones scaled to zero.
fn replica_sets(deploy: &Value, n: i64, inner: &Inner) -> Vec<(&'static Resource, Value)> {
    let rs_res = resources::find("apps", "v1", "replicasets").expect("served");
    let name = deploy["metadata"]["name"].as_str().unwrap_or_default();
    let ns = deploy["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = deploy["metadata"]["uid"].clone();
    let hash = template_hash(&deploy["spec"]["template"]);
    let mut template = deploy["spec"]["template"].clone();
    if !template.is_object() {
        template = json!({});
    }
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    template["metadata"]["labels"]["pod-template-hash"] = Value::from(hash.clone());
    let mut selector = deploy["spec"]["selector"].clone();
    if selector["matchLabels"].is_object() {
        selector["matchLabels"]["pod-template-hash"] = Value::from(hash.clone());
    }
    let mut labels = template["metadata"]["labels"].clone();
    labels["pod-template-hash"] = Value::from(hash.clone());
    let owner = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    let current_name = format!("{name}-{hash}");
    let mut out = vec![(
        rs_res,
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": current_name,
                "namespace": ns,
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": deploy["metadata"]["generation"].to_string()},
                "ownerReferences": owner,
            },
            "spec": {"replicas": n, "selector": selector, "template": template},
        }),
    )];
    for ((g, p, n2, rs_name), rs) in &inner.objects {
        if *g == "apps"
            && *p == "replicasets"
            && n2 == ns
            && *rs_name != current_name
            && rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            && rs["spec"]["replicas"].as_i64() != Some(0)
        {
            let mut old = rs.clone();
            old["spec"]["replicas"] = Value::from(0);
            out.push((rs_res, old));
        }
    }
    out
}

pub fn random_hex(bytes: usize) -> String {
    crate::secret::generate_hex(bytes).unwrap_or_else(|_| "0".repeat(bytes * 2))
}

fn uid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The current time as RFC 3339 in UTC, second precision.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(plural: &str) -> &'static Resource {
        resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .unwrap()
    }

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

    #[test]
    fn deployments_become_ready_with_an_owned_replica_set() {
        let s = Store::new();
        let d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let created = s
            .create(res("deployments"), "default", d.clone(), false)
            .unwrap();
        assert_eq!(created["status"]["readyReplicas"], 1);
        assert_eq!(created["status"]["observedGeneration"], 1);
        let (rs, _) = s.list(
            res("replicasets"),
            Some("default"),
            &Selector::default(),
            &Selector::default(),
        );
        assert_eq!(rs.len(), 1);
        assert_eq!(
            rs[0]["metadata"]["ownerReferences"][0]["uid"],
            created["metadata"]["uid"]
        );
        // a template change makes a new ReplicaSet and scales the old one down
        let (patched, _) = s
            .patch(res("deployments"), "default", "web", PatchKind::Merge,
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}), ("", false), false)
            .unwrap();
        assert_eq!(patched["metadata"]["generation"], 2);
        let (rs, _) = s.list(
            res("replicasets"),
            Some("default"),
            &Selector::default(),
            &Selector::default(),
        );
        assert_eq!(rs.len(), 2);
        assert!(rs.iter().any(|r| r["spec"]["replicas"] == 0));
        // deleting the Deployment collects its ReplicaSets
        s.delete(res("deployments"), "default", "web").unwrap();
        let (rs, _) = s.list(
            res("replicasets"),
            None,
            &Selector::default(),
            &Selector::default(),
        );
        assert!(rs.is_empty());
    }

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

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
