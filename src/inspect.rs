//! Reads of the cluster for operations (preflight, status, diagnosis, support bundle): workload
//! readiness and why a pod is not ready, events, logs, access reviews, lists of any kind. All of
//! them are queries: nothing here changes the cluster.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, LogParams, PostParams};
use serde::Serialize;
use serde_json::Value as J;

use crate::kube::describe;

/// A workload and how ready it is; for one that is not, why, pod by pod.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub ready: i64,
    pub desired: i64,
    pub healthy: bool,
    /// Why its pods are not ready (empty when ready).
    pub problems: Vec<PodProblem>,
}

/// Why one pod is not ready.
#[derive(Clone, Debug, Serialize)]
pub struct PodProblem {
    pub pod: String,
    /// Pending, Unschedulable, ImagePullBackOff, CrashLoopBackOff, ProbeFailure, …
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub restarts: i32,
}

fn selector_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// An `OnDelete` update strategy: the controller replaces no pod by itself (helm's wait does
/// not ask it to), so such a workload counts as rolled out.
fn on_delete(strategy: Option<&str>) -> bool {
    strategy == Some("OnDelete")
}

/// Whether a workload's controller has rolled its current spec out: it has seen this
/// generation, every desired pod runs it, and no pod of an older spec is left. A rolling
/// update keeps the old pods ready (and `readyReplicas` at the desired count) while the new
/// ones fail, so readiness alone would call such a workload ready.
fn rolled_out(
    generation: Option<i64>,
    observed: Option<i64>,
    updated: i64,
    total: i64,
    desired: i64,
) -> bool {
    let seen = match (generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (Some(_), None) => false,
        (None, _) => true,
    };
    seen && updated >= desired && total <= desired
}

/// The Deployments, StatefulSets and DaemonSets of a namespace with their readiness, and for
/// those not ready, why each of their pods is not.
pub async fn workloads(client: &kube::Client, namespace: &str) -> Result<Vec<Workload>, String> {
    workloads_where(client, namespace, &|_| true).await
}

/// The annotation helm puts on every object of a release (helm 3.2 and later, and 4).
pub const RELEASE_ANNOTATION: &str = "meta.helm.sh/release-name";

/// The workloads of one helm release (those helm annotated with its name), as [`workloads`].
pub async fn release_workloads(
    client: &kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<Workload>, String> {
    workloads_where(client, namespace, &|meta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(RELEASE_ANNOTATION))
            .is_some_and(|r| r == release)
    })
    .await
}

/// The items of a list; none when the identity may not list them (403): a least-privilege
/// identity that may not list a kind (the README's may not list DaemonSets) cannot have
/// installed one either, so what it may list is all the install made.
fn listed<K: Clone>(
    list: Result<kube::core::ObjectList<K>, kube::Error>,
) -> Result<Vec<K>, kube::Error> {
    match list {
        Ok(l) => Ok(l.items),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The workloads of a namespace whose metadata `keep` accepts, as [`workloads`].
async fn workloads_where(
    client: &kube::Client,
    namespace: &str,
    keep: &(dyn Fn(&ObjectMeta) -> bool + Sync),
) -> Result<Vec<Workload>, String> {
    let lp = ListParams::default();
    let mut out = Vec::new();
    let err =
        |what: &str, e: kube::Error| format!("cannot list {what} in {namespace}: {}", describe(&e));
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for d in listed(deploys.list(&lp).await).map_err(|e| err("Deployments", e))? {
        if !keep(&d.metadata) {
            continue;
        }
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as i64;
        let st = d.status.as_ref();
        let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0) as i64;
        // a rolling update keeps the old pods ready while the new ones are not: ready only
        // once the controller has seen this spec and every pod runs it
        let rolled = rolled_out(
            d.metadata.generation,
            st.and_then(|s| s.observed_generation),
            st.and_then(|s| s.updated_replicas).unwrap_or(0) as i64,
            st.and_then(|s| s.replicas).unwrap_or(0) as i64,
            desired,
        );
        let sel = selector_of(
            d.spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref()),
        );
        out.push((
            "Deployment",
            d.metadata.name.unwrap_or_default(),
            ready,
            desired,
            rolled,
            sel,
        ));
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    for s in listed(sets.list(&lp).await).map_err(|e| err("StatefulSets", e))? {
        if !keep(&s.metadata) {
            continue;
        }
        let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as i64;
        let st = s.status.as_ref();
        let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0) as i64;
        let rolled = on_delete(
            s.spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.type_.as_deref()),
        ) || rolled_out(
            s.metadata.generation,
            st.and_then(|s| s.observed_generation),
            st.and_then(|s| s.updated_replicas).unwrap_or(0) as i64,
            st.map(|s| s.replicas).unwrap_or(0) as i64,
            desired,
        );
        let sel = selector_of(
            s.spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref()),
        );
        out.push((
            "StatefulSet",
            s.metadata.name.unwrap_or_default(),
            ready,
            desired,
            rolled,
            sel,
        ));
    }
    let daemons: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    for d in listed(daemons.list(&lp).await).map_err(|e| err("DaemonSets", e))? {
        if !keep(&d.metadata) {
            continue;
        }
        let st = d.status.as_ref();
        let desired = st.map(|s| s.desired_number_scheduled).unwrap_or(0) as i64;
        let ready = st.map(|s| s.number_ready).unwrap_or(0) as i64;
        let rolled = on_delete(
            d.spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.type_.as_deref()),
        ) || rolled_out(
            d.metadata.generation,
            st.and_then(|s| s.observed_generation),
            st.and_then(|s| s.updated_number_scheduled).unwrap_or(0) as i64,
            st.map(|s| s.current_number_scheduled).unwrap_or(0) as i64,
            desired,
        );
        let sel = selector_of(
            d.spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref()),
        );
        out.push((
            "DaemonSet",
            d.metadata.name.unwrap_or_default(),
            ready,
            desired,
            rolled,
            sel,
        ));
    }
    let mut result = Vec::new();
    for (kind, name, ready, desired, rolled, selector) in out {
        let healthy = ready >= desired && rolled;
        let problems = if healthy || selector.is_empty() {
            Vec::new()
        } else {
            pod_problems(client, namespace, &selector).await?
        };
        result.push(Workload {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name,
            ready,
            desired,
            healthy,
            problems,
        });
    }
    Ok(result)
}

/// Why the pods that a label selector picks are not ready.
pub async fn pod_problems(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<PodProblem>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| format!("cannot list pods in {namespace}: {}", describe(&e)))?;
    let mut out = Vec::new();
    for pod in list {
        if let Some(p) = pod_problem(&pod) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Why a pod is not ready, or `None` when it is.
pub fn pod_problem(pod: &Pod) -> Option<PodProblem> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let conditions = status.conditions.clone().unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready || status.phase.as_deref() == Some("Succeeded") {
        return None;
    }
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        return Some(PodProblem {
            pod: name,
            reason: format!(
                "Pending/{}",
                c.reason.clone().unwrap_or("Unschedulable".into())
            ),
            message: c.message.clone().unwrap_or_default(),
            container: None,
            restarts: 0,
        });
    }
    for cs in status.container_statuses.iter().flatten() {
        if cs.ready {
            continue;
        }
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            return Some(PodProblem {
                pod: name,
                reason: w.reason.clone().unwrap_or("Waiting".into()),
                message: w.message.clone().unwrap_or_default(),
                container: Some(cs.name.clone()),
                restarts: cs.restart_count,
            });
        }
        if state.and_then(|s| s.running.as_ref()).is_some() {
            return Some(PodProblem {
                pod: name,
                reason: "ProbeFailure".into(),
                message: "the container runs but is not ready: its readiness probe fails".into(),
                container: Some(cs.name.clone()),
                restarts: cs.restart_count,
            });
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            return Some(PodProblem {
                pod: name,
                reason: t.reason.clone().unwrap_or("Terminated".into()),
                message: format!("exited with code {}", t.exit_code),
                container: Some(cs.name.clone()),
                restarts: cs.restart_count,
            });
        }
    }
    Some(PodProblem {
        pod: name,
        reason: status.phase.clone().unwrap_or("Unknown".into()),
        message: status.message.clone().unwrap_or_default(),
        container: None,
        restarts: 0,
    })
}

/// The last `n` events about an object of a namespace, oldest first, as one line each.
pub async fn events_about(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    n: usize,
) -> Result<Vec<String>, String> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list events in {namespace}: {}", describe(&e)))?;
    let mut about: Vec<Event> = list
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect();
    about.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    let start = about.len().saturating_sub(n);
    Ok(about[start..]
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect())
}

/// The latest message of each pod's failing probes (its `Unhealthy` events) in a namespace,
/// by pod name: what tells a failing readiness probe from a container still starting.
pub async fn probe_failures(
    client: &kube::Client,
    namespace: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    // an identity that may not list events sees no failing probe
    let list = listed(events.list(&ListParams::default()).await)
        .map_err(|e| format!("cannot list events in {namespace}: {}", describe(&e)))?;
    let mut unhealthy: Vec<Event> = list
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Unhealthy")
                && e.involved_object.kind.as_deref() == Some("Pod")
        })
        .collect();
    unhealthy.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    Ok(unhealthy
        .into_iter()
        .filter_map(|e| Some((e.involved_object.name?, e.message.unwrap_or_default())))
        .collect())
}

/// The last `lines` lines a container wrote.
pub async fn logs(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    lines: i64,
) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = LogParams {
        container: container.map(str::to_string),
        tail_lines: Some(lines),
        ..Default::default()
    };
    pods.logs(pod, &lp)
        .await
        .map_err(|e| format!("cannot read the log of {namespace}/{pod}: {}", describe(&e)))
}

/// What the likely fix is for a pod problem.
pub fn likely_fix(reason: &str) -> &'static str {
    match reason {
        r if r.starts_with("Pending") => {
            "the scheduler cannot place the pod: add nodes or capacity, lower the requests in the values, or fix the node selectors and tolerations it names"
        }
        "ImagePullBackOff" | "ErrImagePull" => {
            "the image cannot be pulled: check the image credentials (dockerhub_token, which becomes imageCredentials), that the image and tag exist, and for an air-gapped site that the image is in the mirror"
        }
        "CrashLoopBackOff" | "Error" => {
            "the container keeps exiting: its last log lines above say why; fix that (often a value or a service it connects to) and run again"
        }
        "ProbeFailure" => {
            "the container runs but does not answer its readiness probe: see its log, and the services it waits for"
        }
        "CreateContainerConfigError" => {
            "a Secret or ConfigMap the pod refers to is missing: see the message"
        }
        _ => "see the events and the message above",
    }
}

/// The diagnosis of a namespace whose workloads are not ready: which, why (container states,
/// last events, the last log lines of a crashing container) and the likely fix. `None` when
/// every workload is ready.
pub async fn diagnose(client: &kube::Client, namespace: &str) -> Result<Option<String>, String> {
    let not_ready: Vec<Workload> = workloads(client, namespace)
        .await?
        .into_iter()
        .filter(|w| !w.healthy)
        .collect();
    if not_ready.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    for w in &not_ready {
        out.push_str(&format!(
            "  {} {}/{}: {}/{} ready\n",
            w.kind, w.namespace, w.name, w.ready, w.desired
        ));
        for p in &w.problems {
            let container = p
                .container
                .as_deref()
                .map(|c| format!(" (container {c}, {} restarts)", p.restarts))
                .unwrap_or_default();
            out.push_str(&format!(
                "    pod {}{container}: {}: {}\n",
                p.pod, p.reason, p.message
            ));
            // what cannot be read (an identity that may not list events nor read logs) is
            // said, and the diagnosis goes on
            match events_about(client, namespace, &p.pod, 3).await {
                Ok(events) => {
                    for e in events {
                        out.push_str(&format!("      event: {e}\n"));
                    }
                }
                Err(e) => out.push_str(&format!("      events: not read: {e}\n")),
            }
            if matches!(
                p.reason.as_str(),
                "CrashLoopBackOff" | "Error" | "ProbeFailure"
            ) {
                match logs(client, namespace, &p.pod, p.container.as_deref(), 10).await {
                    Ok(log) if log.trim().is_empty() => {}
                    Ok(log) => {
                        out.push_str("      last log lines:\n");
                        for l in log.lines() {
                            out.push_str(&format!("        | {l}\n"));
                        }
                    }
                    Err(e) => out.push_str(&format!("      last log lines: not read: {e}\n")),
                }
            }
            out.push_str(&format!("      likely fix: {}\n", likely_fix(&p.reason)));
        }
    }
    Ok(Some(out))
}

/// May the identity do `verb` on `resource` (of `group`, in `namespace` or cluster-wide)?
/// Answers `(allowed, reason)` from a SelfSubjectAccessReview.
pub async fn can_i(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<(bool, String), String> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("cannot ask the access review: {}", describe(&e)))?;
    let st = answer.status.unwrap_or_default();
    Ok((st.allowed, st.reason.unwrap_or_default()))
}

/// Every object of a kind (looked up through discovery), in a namespace or all.
pub async fn list(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Vec<J>, String> {
    let (api, _) = crate::kube::dynamic_api(client, api_version, kind, namespace).await?;
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list {kind}: {}", describe(&e)))?;
    items
        .items
        .into_iter()
        .map(|o| {
            let mut j = serde_json::to_value(o).map_err(|e| e.to_string())?;
            j["apiVersion"] = J::from(api_version);
            j["kind"] = J::from(kind);
            Ok(j)
        })
        .collect()
}
