//! The simulated controllers: what a real cluster's controllers fill in, so that readiness
//! checks see ready workloads — Deployments with their ReplicaSets, StatefulSets, Jobs, Pods,
//! Services' cluster and load-balancer IPs, a new namespace's `kube-root-ca.crt` and default
//! ServiceAccount, the readiness delay of `ready-after:MS`, workload faults, and the garbage
//! collector that deletes what a deleted owner owned.

use serde_json::{Value, json};

use super::metadata::now_rfc3339;
use super::{Inner, Key, Store, key, resource_of};
use crate::sandbox::faults;
use crate::sandbox::resources::{self, Resource};

/// The simulated controllers: fill in what a real cluster's controllers would, so that readiness
/// checks (helm 3's polling, helm 4's kstatus watcher, kube-rs conditions) see ready workloads.
/// Answers with derived objects to store (a Deployment's ReplicaSets).
pub(super) fn simulate(
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
            // a deleted namespace stays Terminating until its controller finalizes it
            let phase = if obj["metadata"]["deletionTimestamp"].is_null() {
                "Active"
            } else {
                "Terminating"
            };
            obj["status"] = json!({ "phase": phase });
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
            let given = obj["status"]["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|i| !i.is_empty());
            if kind == "LoadBalancer" {
                // the cloud's controller gives an address once; one written to the status
                // subresource (a hostname, as AWS's gives) is kept
                if !given {
                    let ip = format!("198.51.100.{}", inner.next_ip % 250 + 1);
                    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
                }
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
                faults::broken_workload(r.kind, obj, n, why)
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
        "Pod" if !obj["metadata"]["annotations"][faults::FAULT_ANNOTATION].is_null() => {}
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

/// A workload's readiness delay: its generation, when it becomes ready, and whether its ready
/// state is stored yet.
pub(super) struct Due {
    generation: Value,
    at: std::time::Instant,
    shown: bool,
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

    /// The garbage collector: delete what the owner of `owner_uid` owned, and so on down.
    pub(super) fn collect_garbage(&self, inner: &mut Inner, owner_uid: &str) {
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
                if let Some(res) = resource_of(k.0, k.1) {
                    self.removed(inner, res, &k.2, o);
                }
                self.collect_garbage(inner, &uid);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::{PatchKind, Selector, res};
    use super::*;

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
        let replica_sets = |ns| {
            let any = Selector::default();
            s.list(res("replicasets"), ns, &any, &any).0
        };
        let rs = replica_sets(Some("default"));
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
        let rs = replica_sets(Some("default"));
        assert_eq!(rs.len(), 2);
        assert!(rs.iter().any(|r| r["spec"]["replicas"] == 0));
        // deleting the Deployment collects its ReplicaSets
        s.delete(res("deployments"), "default", "web").unwrap();
        assert!(replica_sets(None).is_empty());
    }
}
