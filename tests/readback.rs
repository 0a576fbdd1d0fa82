//! What the tool reads back from the cluster and shows (the diagnosis of a failed wait, the
//! progress lines, the status), when the cluster's content is hostile or its reads are refused.

use clearml_script::sandbox::faults::WorkloadFault;

use crate::common::{Cluster, repo};

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
