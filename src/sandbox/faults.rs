//! Fault injection shared by both simulators: make the next N requests that match a method and
//! a path fail with a status, or wait first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status (and an error body in the simulator's own format).
    Status(u16),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// `None` matches any method.
    pub method: Option<String>,
    /// Matches a request whose path starts with it.
    pub path: String,
    pub remaining: u32,
    pub action: FaultAction,
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    requests: Arc<Mutex<Vec<Fault>>>,
    /// Workloads (by name) that the simulated controllers keep from becoming ready, and why.
    workloads: Arc<Mutex<std::collections::BTreeMap<String, WorkloadFault>>>,
    /// Seeded objects to remove when the sandbox starts (`remove:storageclass`).
    removals: Arc<Mutex<Vec<Removal>>>,
    /// How long each workload (Deployment, StatefulSet) takes to become ready after each
    /// change of its spec (`ready-after:MS`); at once when unset.
    ready_after: Arc<Mutex<Option<Duration>>>,
    /// How long a deleted namespace stays `Terminating` (`namespace-terminating:MS`):
    /// [`DEFAULT_TERMINATING`] when unset.
    terminating: Arc<Mutex<Option<Duration>>>,
}

/// How long a deleted namespace stays `Terminating` unless a fault says otherwise: a real
/// cluster's namespace controller takes a few seconds to empty and finalize one, during which
/// nothing may be created in it and it cannot be created again.
pub const DEFAULT_TERMINATING: Duration = Duration::from_secs(2);

/// Why a faulted workload's pods are not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadFault {
    /// The scheduler cannot place the pod.
    Pending,
    /// The image cannot be pulled.
    ImagePullBackOff,
    /// The container exits with an error again and again.
    CrashLoopBackOff,
    /// The container runs but fails its readiness probe.
    ProbeFailure,
}

/// A seeded object the sandbox starts without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    DefaultStorageClass,
    IngressClass,
    /// The stand-in chart repository answers nothing (an air-gapped cluster's network).
    ChartRepository,
}

impl Faults {
    /// The next `count` requests matching `method` (`*` for any) and path prefix fail with `status`.
    pub fn fail(&self, method: &str, path: &str, count: u32, status: u16) {
        self.add(method, path, count, FaultAction::Status(status));
    }

    /// The next `count` matching requests wait `delay` first.
    pub fn delay(&self, method: &str, path: &str, count: u32, delay: Duration) {
        self.add(method, path, count, FaultAction::Delay(delay));
    }

    pub fn add(&self, method: &str, path: &str, count: u32, action: FaultAction) {
        let method = (method != "*").then(|| method.to_ascii_uppercase());
        self.requests().push(Fault {
            method,
            path: path.to_string(),
            remaining: count,
            action,
        });
    }

    /// Keep the workload `name` (a Deployment or StatefulSet, in any namespace) from becoming
    /// ready, for `why`: its pods show what a real cluster would (events, container states,
    /// logs of a crashing container).
    pub fn break_workload(&self, name: &str, why: WorkloadFault) {
        lock(&self.workloads).insert(name.to_string(), why);
    }

    /// Let a workload become ready again.
    pub fn heal_workload(&self, name: &str) {
        lock(&self.workloads).remove(name);
    }

    /// The fault of a workload, if it has one.
    pub fn workload(&self, name: &str) -> Option<WorkloadFault> {
        lock(&self.workloads).get(name).copied()
    }

    /// Make every workload take `delay` to become ready after each change of its spec, as pods
    /// that pull, start and pass their probes would.
    pub fn delay_readiness(&self, delay: Duration) {
        *lock(&self.ready_after) = Some(delay);
    }

    /// How long a workload takes to become ready, if it is delayed.
    pub fn ready_after(&self) -> Option<Duration> {
        *lock(&self.ready_after)
    }

    /// How long a deleted namespace stays `Terminating` before it is gone.
    pub fn terminating(&self) -> Duration {
        lock(&self.terminating).unwrap_or(DEFAULT_TERMINATING)
    }

    /// Keep each deleted namespace `Terminating` this long (zero: gone at once).
    pub fn terminate_namespaces_after(&self, delay: Duration) {
        *lock(&self.terminating) = Some(delay);
    }

    /// The seeded objects to remove when the sandbox starts.
    pub fn removals(&self) -> Vec<Removal> {
        lock(&self.removals).clone()
    }

    /// Parse a `--fault`: `METHOD:PATH:COUNT:STATUS`, `METHOD:PATH:COUNT:delay=MS`,
    /// `workload:NAME:Pending|ImagePullBackOff|CrashLoopBackOff|ProbeFailure`,
    /// `remove:storageclass|ingressclass|chart-repository`, `ready-after:MS` (each workload
    /// becomes ready MS milliseconds after each change) or `namespace-terminating:MS` (a deleted
    /// namespace stays `Terminating` MS milliseconds; 2000 unless given).
    pub fn add_spec(&self, spec: &str) -> Result<(), String> {
        for (prefix, set) in [
            (
                "ready-after:",
                Faults::delay_readiness as fn(&Faults, Duration),
            ),
            ("namespace-terminating:", Faults::terminate_namespaces_after),
        ] {
            if let Some(ms) = spec.strip_prefix(prefix) {
                let ms: u64 = ms.parse().map_err(|_| {
                    format!(
                        "--fault {spec}: expected {prefix}MS, MS a whole number of milliseconds"
                    )
                })?;
                set(self, Duration::from_millis(ms));
                return Ok(());
            }
        }
        if let Some(rest) = spec.strip_prefix("workload:") {
            let (name, why) = rest.rsplit_once(':').unwrap_or((rest, ""));
            let why = match why {
                "Pending" => WorkloadFault::Pending,
                "ImagePullBackOff" => WorkloadFault::ImagePullBackOff,
                "CrashLoopBackOff" => WorkloadFault::CrashLoopBackOff,
                "ProbeFailure" => WorkloadFault::ProbeFailure,
                _ => {
                    return Err(format!(
                        "--fault {spec}: expected workload:NAME:Pending, ImagePullBackOff, \
                         CrashLoopBackOff or ProbeFailure"
                    ));
                }
            };
            if name.is_empty() {
                return Err(format!("--fault {spec}: the workload NAME is empty"));
            }
            self.break_workload(name, why);
            return Ok(());
        }
        if let Some(what) = spec.strip_prefix("remove:") {
            let r = match what {
                "storageclass" => Removal::DefaultStorageClass,
                "ingressclass" => Removal::IngressClass,
                "chart-repository" => Removal::ChartRepository,
                _ => {
                    return Err(format!(
                        "--fault {spec}: expected remove:storageclass, remove:ingressclass or remove:chart-repository"
                    ));
                }
            };
            lock(&self.removals).push(r);
            return Ok(());
        }
        let parts: Vec<&str> = spec.splitn(4, ':').collect();
        let [method, path, count, what] = parts[..] else {
            return Err(format!(
                "--fault {spec}: expected METHOD:PATH:COUNT:STATUS or METHOD:PATH:COUNT:delay=MS, \
                 for example POST:/api/v1/namespaces/clearml/secrets:1:500"
            ));
        };
        let count: u32 = count
            .parse()
            .map_err(|_| format!("--fault {spec}: COUNT must be a whole number"))?;
        let action = match what.strip_prefix("delay=") {
            Some(ms) => FaultAction::Delay(Duration::from_millis(
                ms.parse()
                    .map_err(|_| format!("--fault {spec}: delay=MS needs milliseconds"))?,
            )),
            None => FaultAction::Status(
                what.parse()
                    .ok()
                    .filter(|s| (100..600).contains(s))
                    .ok_or_else(|| format!("--fault {spec}: STATUS must be an HTTP status"))?,
            ),
        };
        self.add(method, path, count, action);
        Ok(())
    }

    /// The action for this request, if a fault matches; counts it down.
    pub fn take(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut faults = self.requests();
        let f = faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.method.as_deref().is_none_or(|m| m == method)
                && path.starts_with(&f.path)
        })?;
        f.remaining -= 1;
        let action = f.action.clone();
        faults.retain(|f| f.remaining > 0);
        Some(action)
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        lock(&self.requests)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove from a new cluster the seeded objects that `remove:` faults name.
pub fn remove_seeded(faults: &Faults, store: &super::store::Store) {
    for r in faults.removals() {
        let (group, plural, name) = match r {
            Removal::DefaultStorageClass => ("storage.k8s.io", "storageclasses", "standard"),
            Removal::IngressClass => ("networking.k8s.io", "ingressclasses", "nginx"),
            // not an object: the chart repository refuses every request (see sandbox::kube)
            Removal::ChartRepository => continue,
        };
        if let Some(res) = super::resources::find(group, "v1", plural) {
            let _ = store.delete(res, "", name);
        }
    }
}

/// The annotation that marks a pod made by a faulted workload; its status is left as made.
pub const FAULT_ANNOTATION: &str = "sandbox.clearml-script/fault";
/// The annotation holding what the sandbox serves as a faulted pod's log.
pub const LOG_ANNOTATION: &str = "sandbox.clearml-script/log";

/// A faulted workload's status and the objects a real cluster would show for it: one pod (not
/// ready, for `why`) and a Warning event about it. `name`/`ns`/`uid` are the workload's.
pub fn broken_workload(
    kind: &str,
    obj: &mut serde_json::Value,
    replicas: i64,
    why: WorkloadFault,
) -> Vec<serde_json::Value> {
    use serde_json::json;
    let generation = obj["metadata"]["generation"].clone();
    obj["status"] = match kind {
        "StatefulSet" => json!({
            "observedGeneration": generation, "replicas": replicas, "readyReplicas": 0,
            "currentReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": 0,
        }),
        _ => json!({
            "observedGeneration": generation,
            "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": 0,
            "availableReplicas": 0, "unavailableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet is progressing."},
            ],
        }),
    };
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let container = obj["spec"]["template"]["spec"]["containers"][0].clone();
    let cname = container["name"].as_str().unwrap_or("main").to_string();
    let image = container["image"].as_str().unwrap_or("unknown").to_string();
    let pod_name = format!("{name}-sbx0");
    let now = super::store::now_rfc3339();
    let waiting = |reason: &str, message: String| {
        json!([{"name": cname, "image": image, "ready": false, "started": false,
                "restartCount": if reason == "CrashLoopBackOff" { 5 } else { 0 },
                "state": {"waiting": {"reason": reason, "message": message}},
                "lastState": if reason == "CrashLoopBackOff" {
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": now}})
                } else { json!({}) }}])
    };
    let (status, event_reason, event_message, log) = match why {
        WorkloadFault::Pending => {
            let msg = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
            (
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}]}),
                "FailedScheduling",
                msg.to_string(),
                String::new(),
            )
        }
        WorkloadFault::ImagePullBackOff => {
            let msg = format!(
                "Back-off pulling image \"{image}\": ErrImagePull: pull access denied for {image}, repository does not exist or may require authorization"
            );
            (
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                       "containerStatuses": waiting("ImagePullBackOff", msg.clone())}),
                "Failed",
                msg,
                String::new(),
            )
        }
        WorkloadFault::CrashLoopBackOff => {
            let msg = format!("back-off 2m40s restarting failed container={cname} pod={pod_name}");
            (
                json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                       "containerStatuses": waiting("CrashLoopBackOff", msg.clone())}),
                "BackOff",
                msg,
                "starting (sandbox fault CrashLoopBackOff)\nloading configuration\nERROR: cannot connect to mongodb://mongodb:27017: connection refused\nexiting with status 1\n".to_string(),
            )
        }
        WorkloadFault::ProbeFailure => {
            let msg = "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string();
            (
                json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                       "containerStatuses": [{"name": cname, "image": image, "ready": false, "started": true, "restartCount": 0,
                                              "state": {"running": {"startedAt": now}}}]}),
                "Unhealthy",
                msg,
                "serving on :8008\nwaiting for the database\n".to_string(),
            )
        }
    };
    let mut labels = obj["spec"]["template"]["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let why_text = format!("{why:?}");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod_name, "namespace": ns, "labels": labels,
            "annotations": {FAULT_ANNOTATION: why_text, LOG_ANNOTATION: log},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name,
                                  "uid": obj["metadata"]["uid"], "controller": true}],
        },
        "spec": obj["spec"]["template"]["spec"].clone(),
        "status": status,
    });
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{pod_name}.sbx"), "namespace": ns,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name,
                                           "uid": obj["metadata"]["uid"]}]},
        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": ns},
        "reason": event_reason, "message": event_message, "type": "Warning", "count": 5,
        "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": if why == WorkloadFault::Pending { "default-scheduler" } else { "kubelet" }},
    });
    vec![pod, event]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_matches() {
        let f = Faults::default();
        f.fail("post", "/api/v1/namespaces/a/secrets", 2, 500);
        assert_eq!(f.take("GET", "/api/v1/namespaces/a/secrets"), None);
        assert_eq!(
            f.take("POST", "/api/v1/namespaces/a/secrets/x"),
            Some(FaultAction::Status(500))
        );
        assert!(f.take("POST", "/api/v1/namespaces/a/secrets").is_some());
        assert_eq!(f.take("POST", "/api/v1/namespaces/a/secrets"), None);
        f.add_spec("*:/queues.create:1:delay=5").unwrap();
        assert_eq!(
            f.take("GET", "/queues.create"),
            Some(FaultAction::Delay(Duration::from_millis(5)))
        );
        assert!(f.add_spec("GET:/x:one:500").is_err());
        assert!(f.add_spec("GET:/x").is_err());
        f.add_spec("workload:clearml-apiserver:ImagePullBackOff")
            .unwrap();
        assert_eq!(
            f.workload("clearml-apiserver"),
            Some(WorkloadFault::ImagePullBackOff)
        );
        assert!(f.add_spec("workload:x:Sleepy").is_err());
        f.add_spec("remove:ingressclass").unwrap();
        assert_eq!(f.removals(), [Removal::IngressClass]);
        assert!(f.add_spec("remove:nodes").is_err());
    }
}
