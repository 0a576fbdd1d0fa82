//! What the tool reads back from the cluster and shows (the diagnosis of a failed wait, the
//! progress lines, the status), when the cluster's content is hostile or its reads are refused.

use clearml_script::sandbox::faults::WorkloadFault;
use serde_json::json;

use crate::common::{Cluster, repo};
use crate::operations::post;

fn site() -> String {
    repo().join("examples/site.yaml").display().to_string()
}

/// An identity that may not read pod logs nor list events (the least-privilege role grants
/// neither) still gets the diagnosis of the workloads and pods it can read, with what it could
/// not see said (README: "without those reads they report what they could not see").
#[test]
fn a_diagnosis_without_logs_or_events_still_names_the_pods() {
    let c = Cluster::new(4);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::CrashLoopBackOff);
    c.sim.faults.fail(
        "GET",
        "/api/v1/namespaces/clearml/pods/clearml-apiserver-sbx0/log",
        1000,
        403,
    );
    c.sim
        .faults
        .fail("GET", "/api/v1/namespaces/clearml/events", 1000, 403);
    c.test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "timeout=3s"])
        .run()
        .code(1)
        .stderr_has("Diagnosis: workloads in clearml that are not ready:\n  Deployment clearml/clearml-apiserver: 0/1 ready\n")
        .stderr_has("pod clearml-apiserver-sbx0 (container apiserver, 5 restarts): CrashLoopBackOff")
        .stderr_has("      events: not read: cannot list events in clearml: ")
        .stderr_has("      last log lines: not read: cannot read the log of clearml/clearml-apiserver-sbx0: ")
        .stderr_has("likely fix: the container keeps exiting")
        .stderr_has("Release clearml in clearml: revision 1, failed.");
}

/// Text the cluster holds (an event's message, a log line) may carry terminal control
/// sequences: they reach the operator's terminal escaped, never raw (a title set, the screen
/// cleared, a line rewritten with a carriage return).
#[test]
fn control_characters_from_the_cluster_never_reach_the_terminal() {
    let c = Cluster::new(4);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ProbeFailure);
    post(
        &c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clearml"}}),
    );
    let evil = "Readiness probe failed: \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mred\rPASS\u{9b}31m";
    post(
        &c,
        "/api/v1/namespaces/clearml/events",
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "clearml-apiserver-sbx0.evil", "namespace": "clearml"},
            "involvedObject": {"kind": "Pod", "name": "clearml-apiserver-sbx0", "namespace": "clearml"},
            "reason": "Unhealthy", "type": "Warning", "message": evil,
            "lastTimestamp": "2099-01-01T00:00:00Z",
        }),
    );
    let out = c
        .test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "timeout=3s"])
        .run();
    out.code(1)
        .stderr_has("Diagnosis: workloads in clearml that are not ready:")
        // the watcher's line and the diagnosis's event, escaped
        .stderr_has(r"ProbeFailure: Readiness probe failed: \u{1b}]0;owned\u{7}\u{1b}[2J")
        .stderr_has(r"event: Warning Unhealthy: Readiness probe failed: \u{1b}]0;owned");
    for c in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
        assert!(
            !out.stderr.contains(c) && !out.stdout.contains(c),
            "{c:?} reached the terminal:\n{}",
            out.stderr
        );
    }
}
