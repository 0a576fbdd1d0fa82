//! What rendered charts ask of the cluster: the CPU and memory requests of the pods their
//! workloads run, for the preflight's capacity check, and the resources their objects are (group,
//! plural, scope, as the cluster's discovery names them), for its permissions check. One
//! rendering serves both.
//!
//! A pod requests, per resource, the larger of its containers' sum and its largest init
//! container (init containers run one at a time, before the others), as the scheduler counts
//! it. A Deployment, StatefulSet or ReplicaSet runs `replicas` pods (1 when not set), a Job
//! `parallelism` (1), a bare Pod one; a DaemonSet runs one per node, so it is answered per node
//! and the caller multiplies. CronJobs run later, not at the install, and are left out.

use std::collections::{BTreeMap, BTreeSet};

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

/// A resource the objects of a rendered chart are, as the cluster serves it: what the
/// permissions to install them are asked on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RenderedResource {
    /// The API group (`""` for the core group) and the plural resource name.
    pub group: String,
    pub resource: String,
    pub api_version: String,
    pub kind: String,
    /// Where the objects go: the namespace an object names, else the release's; `None` for a
    /// cluster-scoped kind.
    pub namespace: Option<String>,
}

/// A kind rendered that the cluster does not serve (and no rendered CustomResourceDefinition
/// defines), with why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unserved {
    pub api_version: String,
    pub kind: String,
    pub reason: String,
}

/// The kinds of rendered objects, each once with each namespace an object names (`None`: the
/// release's, or none for a cluster-scoped kind).
pub fn rendered_kinds(objects: &[J]) -> BTreeSet<(String, String, Option<String>)> {
    objects
        .iter()
        .filter_map(|o| {
            let api_version = o["apiVersion"].as_str()?;
            let kind = o["kind"].as_str()?;
            let namespace = o["metadata"]["namespace"].as_str().map(str::to_string);
            Some((api_version.to_string(), kind.to_string(), namespace))
        })
        .collect()
}

/// The kinds the rendered CustomResourceDefinitions define: `(group, kind)` to `(plural,
/// namespaced)`, for the custom objects of a chart whose definitions it installs itself.
pub fn crd_kinds(objects: &[J]) -> BTreeMap<(String, String), (String, bool)> {
    objects
        .iter()
        .filter(|o| {
            o["kind"] == "CustomResourceDefinition"
                && o["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
        })
        .filter_map(|o| {
            let spec = &o["spec"];
            let group = spec["group"].as_str()?.to_string();
            let kind = spec["names"]["kind"].as_str()?.to_string();
            let plural = spec["names"]["plural"].as_str()?.to_string();
            Some(((group, kind), (plural, spec["scope"] == "Namespaced")))
        })
        .collect()
}

/// A kind as the cluster's discovery serves it: its group, plural and whether it is namespaced.
pub type Discovered = (String, String, bool);

/// The resources of rendered objects installed as a release in `namespace`: each kind mapped to
/// its group and plural through `discover` (the cluster's discovery: `(group, plural,
/// namespaced)` of an `apiVersion` and `kind`, `None` when it does not serve it), or through a
/// rendered CustomResourceDefinition when the cluster does not serve it yet; the kinds neither
/// knows, and those whose look-up failed, are answered apart with why.
pub async fn resources<F, Fut>(
    objects: &[J],
    namespace: &str,
    discover: F,
) -> (Vec<RenderedResource>, Vec<Unserved>)
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Discovered>, String>>,
{
    let defined = crd_kinds(objects);
    let mut known: BTreeMap<(String, String), Result<Discovered, String>> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut unserved = BTreeSet::new();
    for (api_version, kind, named) in rendered_kinds(objects) {
        let key = (api_version.clone(), kind.clone());
        if !known.contains_key(&key) {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let found = match discover(api_version.clone(), kind.clone()).await {
                Ok(Some(d)) => Ok(d),
                Ok(None) => defined
                    .get(&(group.to_string(), kind.clone()))
                    .map(|(plural, ns)| (group.to_string(), plural.clone(), *ns))
                    .ok_or_else(|| "the cluster does not serve it".to_string()),
                Err(e) => Err(e),
            };
            known.insert(key.clone(), found);
        }
        match &known[&key] {
            Ok((group, resource, namespaced)) => {
                out.insert(RenderedResource {
                    group: group.clone(),
                    resource: resource.clone(),
                    api_version,
                    kind,
                    namespace: namespaced.then(|| named.unwrap_or_else(|| namespace.to_string())),
                });
            }
            Err(reason) => {
                unserved.insert(Unserved {
                    api_version,
                    kind,
                    reason: reason.clone(),
                });
            }
        }
    }
    (out.into_iter().collect(), unserved.into_iter().collect())
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
            json!({"kind": "Job", "metadata": {"name": "migrate"}, "spec": {"parallelism": 2,
                "template": {"spec": {"containers": [container(Some("1"), None)]}}}}),
            json!({"kind": "Pod", "metadata": {"name": "hook"}, "spec": {
                "containers": [container(Some("300m"), Some("32Mi"))]}}),
        ];
        let r = requests(&objects);
        assert_eq!(r.len(), 5);
        // a Job's pods are its parallelism; a bare Pod (a hook's) is one, its spec its own
        assert_eq!(
            (r[3].kind.as_str(), r[3].replicas, r[3].cpu),
            ("Job", 2, 1.0)
        );
        assert_eq!(
            (
                r[4].kind.as_str(),
                r[4].name.as_str(),
                r[4].replicas,
                r[4].cpu,
                r[4].memory
            ),
            ("Pod", "hook", 1, 0.3, 32.0 * 1048576.0)
        );
        // the init container's 2 CPUs outweigh the containers' 0.75; memory is their sum
        assert_eq!(
            (r[0].replicas, r[0].cpu, r[0].memory, r[0].unrequested),
            (3, 2.0, 2.0 * 1073741824.0, 0)
        );
        assert_eq!((r[1].replicas, r[1].cpu, r[1].unrequested), (1, 0.0, 1));
        assert!(r[2].per_node && !r[0].per_node);
    }

    /// Kinds map to resources through discovery (its plural, its scope), the namespace an
    /// object names wins over the release's, a cluster-scoped kind has none, a custom kind the
    /// chart defines itself is known from its rendered definition, and an unknown one is said.
    #[test]
    fn rendered_objects_are_resources_as_discovery_names_them() {
        let objects = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets"}}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            json!({"apiVersion": "nowhere.io/v1", "kind": "Gadget", "metadata": {"name": "g"}}),
            json!({"apiVersion": "v1", "kind": "Broken", "metadata": {"name": "x"}}),
        ];
        let asked = std::sync::Mutex::new(Vec::new());
        let discover = |api_version: String, kind: String| {
            asked.lock().unwrap().push(kind.clone());
            async move {
                let d = |g: &str, r: &str, ns: bool| Ok(Some((g.into(), r.into(), ns)));
                match kind.as_str() {
                    "Deployment" => d("apps", "deployments", true),
                    "ConfigMap" => d("", "configmaps", true),
                    "ClusterRole" => d("rbac.authorization.k8s.io", "clusterroles", false),
                    "CustomResourceDefinition" => {
                        d("apiextensions.k8s.io", "customresourcedefinitions", false)
                    }
                    "Broken" => Err(format!("cannot look up {api_version} {kind}: 500")),
                    _ => Ok(None),
                }
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (found, unserved) = rt.block_on(resources(&objects, "clearml", discover));
        let names: Vec<String> = found
            .iter()
            .map(|r| format!("{}.{} in {:?}", r.resource, r.group, r.namespace))
            .collect();
        assert_eq!(
            names,
            [
                "configmaps. in Some(\"other\")",
                "customresourcedefinitions.apiextensions.k8s.io in None",
                "deployments.apps in Some(\"clearml\")",
                "widgets.example.com in Some(\"clearml\")",
                "clusterroles.rbac.authorization.k8s.io in None",
            ]
        );
        let why: Vec<String> = unserved
            .iter()
            .map(|u| format!("{} {}: {}", u.api_version, u.kind, u.reason))
            .collect();
        assert_eq!(
            why,
            [
                "nowhere.io/v1 Gadget: the cluster does not serve it",
                "v1 Broken: cannot look up v1 Broken: 500",
            ]
        );
        // each kind is looked up once
        assert_eq!(
            asked
                .lock()
                .unwrap()
                .iter()
                .filter(|k| *k == "Deployment")
                .count(),
            1
        );
    }
}
