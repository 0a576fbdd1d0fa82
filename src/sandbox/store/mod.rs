//! The simulator's object store: objects by resource, namespace and name, the counters behind
//! resourceVersions and cluster IPs, and the cluster a new store starts as. Here are reading
//! (get, list), storing (`commit`: the controllers run, the resourceVersion advances, the
//! watches hear of it) and the snapshot `--sandbox-state` keeps; the rest, a file a concept:
//!
//! - `writes`: create, update (PUT) and delete, with the checks the API server makes;
//! - `patch`: PATCH as merge, strategic-merge, JSON and server-side apply patches;
//! - `metadata`: the type and metadata the server checks, fills in and keeps (uid,
//!   timestamps, generation), and random names;
//! - `selector`: label and field selectors;
//! - `watch`: events, and the history a watch resumes from;
//! - `controllers`: the simulated controllers (workloads ready, ReplicaSets, Services' IPs,
//!   a namespace's CA and default ServiceAccount, readiness delays, garbage collection);
//! - `error`: the API error, answered as a `Status` object.

mod controllers;
mod error;
mod metadata;
mod patch;
mod selector;
mod watch;
mod writes;

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::{self, Resource};
use controllers::{Due, simulate};
use metadata::uid;

pub use error::{ApiError, Result};
pub use metadata::{now_rfc3339, random_hex};
pub use patch::PatchKind;
pub use selector::Selector;
pub use watch::Event;

type Key = (&'static str, &'static str, String, String);

fn key(r: &'static Resource, ns: &str, name: &str) -> Key {
    (r.group, r.plural, ns.to_string(), name.to_string())
}

/// The resource objects are stored under by group and plural (a [`Key`]'s first two parts).
fn resource_of(group: &str, plural: &str) -> Option<&'static Resource> {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
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
    /// Deleted namespaces still `Terminating`, and when each is gone.
    terminating: BTreeMap<String, std::time::Instant>,
}

pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
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
                terminating: BTreeMap::new(),
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
            let r = resource_of(g, p)
                .ok_or_else(|| format!("the sandbox state holds an unknown resource {g}/{p}"))?;
            let obj = entry["object"].clone();
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            objects.insert(key(r, &ns, &name), obj);
        }
        // a namespace that was terminating when the state was kept is gone by now
        let namespaces = resources::find("", "v1", "namespaces").expect("served");
        let gone: Vec<String> = objects
            .iter()
            .filter(|((g, p, _, _), o)| {
                *g == namespaces.group
                    && *p == namespaces.plural
                    && !o["metadata"]["deletionTimestamp"].is_null()
            })
            .map(|(k, _)| k.3.clone())
            .collect();
        objects.retain(|(g, p, ns, name), _| {
            let is_namespace = *g == namespaces.group && *p == namespaces.plural;
            !gone.contains(if is_namespace { name } else { ns })
        });
        inner.terminating.clear();
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

/// The served resource of a plural, for the tests of the store's parts.
#[cfg(test)]
fn res(plural: &str) -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .unwrap()
}
