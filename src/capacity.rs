//! What rendered charts ask of the cluster: the CPU and memory requests of the pods their
//! workloads run, for the preflight's capacity check.
//!
//! A pod requests, per resource, the larger of its containers' sum and its largest init
//! container (init containers run one at a time, before the others), as the scheduler counts
//! it. A Deployment, StatefulSet or ReplicaSet runs `replicas` pods (1 when not set), a Job
//! `parallelism` (1), a bare Pod one; a DaemonSet runs one per node, so it is answered per node
//! and the caller multiplies. CronJobs run later, not at the install, and are left out.

use serde::Serialize;
use serde_json::Value as J;

/// One workload of a rendered chart and what each of its pods requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadRequests {
    pub kind: String,
    pub name: String,
    /// How many pods run; for a DaemonSet, 1 per node (`per_node`).
    pub replicas: i64,
    pub per_node: bool,
    /// CPU cores and memory bytes one pod requests.
    pub cpu: f64,
    pub memory: f64,
    /// Containers (init ones included) that request no CPU or no memory.
    pub unrequested: usize,
}

/// A CPU or memory quantity (`500m`, `2`, `1.5Gi`, `512Mi`, `1e3`, `1G`) as a number of cores or
/// bytes; `None` when it is not one.
pub fn quantity(text: &str) -> Option<f64> {
    let t = text.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = t.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    match t.strip_suffix('P').or(t.strip_suffix('E')) {
        Some(number) => number
            .parse::<f64>()
            .ok()
            .map(|n| n * if t.ends_with('P') { 1e15 } else { 1e18 }),
        None => t.parse::<f64>().ok(),
    }
}

fn request(container: &J, resource: &str) -> Option<f64> {
    match &container["resources"]["requests"][resource] {
        J::String(s) => quantity(s),
        J::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// What one pod of a pod spec requests: `(cpu, memory, containers without a request)`.
fn pod_requests(spec: &J) -> (f64, f64, usize) {
    let list = |key: &str| spec[key].as_array().cloned().unwrap_or_default();
    let (containers, inits) = (list("containers"), list("initContainers"));
    let each = |c: &J, resource: &str| request(c, resource).unwrap_or(0.0);
    let mut sum = (0.0, 0.0);
    for c in &containers {
        sum.0 += each(c, "cpu");
        sum.1 += each(c, "memory");
    }
    let mut init = (0.0f64, 0.0f64);
    for c in &inits {
        init.0 = init.0.max(each(c, "cpu"));
        init.1 = init.1.max(each(c, "memory"));
    }
    // a container missing either counts once
    let missing = containers
        .iter()
        .chain(&inits)
        .filter(|c| request(c, "cpu").is_none() || request(c, "memory").is_none())
        .count();
    (sum.0.max(init.0), sum.1.max(init.1), missing)
}

/// The workloads of rendered objects (as `helm template` gives them) and their pods' requests.
pub fn requests(objects: &[J]) -> Vec<WorkloadRequests> {
    let mut out = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        let (replicas, per_node, spec) = match kind {
            "Deployment" | "StatefulSet" | "ReplicaSet" => (
                o["spec"]["replicas"].as_i64().unwrap_or(1),
                false,
                &o["spec"]["template"]["spec"],
            ),
            "DaemonSet" => (1, true, &o["spec"]["template"]["spec"]),
            "Job" => (
                o["spec"]["parallelism"].as_i64().unwrap_or(1),
                false,
                &o["spec"]["template"]["spec"],
            ),
            "Pod" => (1, false, &o["spec"]),
            _ => continue,
        };
        let (cpu, memory, unrequested) = pod_requests(spec);
        out.push(WorkloadRequests {
            kind: kind.to_string(),
            name: o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            replicas,
            per_node,
            cpu,
            memory,
            unrequested,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("1.5Gi"), Some(1.5 * 1073741824.0));
        assert_eq!(quantity("512Mi"), Some(536870912.0));
        assert_eq!(quantity("1G"), Some(1e9));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("2P"), Some(2e15));
        assert_eq!(quantity("lots"), None);
    }

    #[test]
    fn replicas_init_containers_daemonsets_and_missing_requests() {
        let container = |cpu: Option<&str>, mem: Option<&str>| {
            let mut r = serde_json::Map::new();
            if let Some(c) = cpu {
                r.insert("cpu".into(), json!(c));
            }
            if let Some(m) = mem {
                r.insert("memory".into(), json!(m));
            }
            json!({"name": "c", "resources": {"requests": r}})
        };
        let objects = [
            json!({"kind": "Service", "metadata": {"name": "svc"}}),
            json!({"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"replicas": 3,
                "template": {"spec": {
                    "initContainers": [container(Some("2"), Some("64Mi"))],
                    "containers": [container(Some("500m"), Some("1Gi")), container(Some("250m"), Some("1Gi"))]}}}}),
            json!({"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {
                "template": {"spec": {"containers": [container(None, Some("2Gi"))]}}}}),
            json!({"kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {
                "template": {"spec": {"containers": [container(Some("100m"), Some("128Mi"))]}}}}),
            json!({"kind": "CronJob", "metadata": {"name": "later"}}),
        ];
        let r = requests(&objects);
        assert_eq!(r.len(), 3);
        // the init container's 2 CPUs outweigh the containers' 0.75; memory is their sum
        assert_eq!(
            (r[0].replicas, r[0].cpu, r[0].memory, r[0].unrequested),
            (3, 2.0, 2.0 * 1073741824.0, 0)
        );
        assert_eq!((r[1].replicas, r[1].cpu, r[1].unrequested), (1, 0.0, 1));
        assert!(r[2].per_node && !r[0].per_node);
    }
}
