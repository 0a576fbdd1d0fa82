//! The fault matrix: `install.rhai --sandbox --sandbox-state DIR --fault SPEC` for faults of the
//! Kubernetes API and of the ClearML API. A run never exits 0 unless everything is deployed, and
//! the next run (without the fault) converges.

use crate::common::Test;
use crate::kill_matrix::{assert_converges, install_args};

fn run_with_fault(spec: &str) {
    let t = Test::new().helm(4);
    let state = t.dir().join("state");
    let t = t.args(install_args(&state)).args(["--fault", spec]);
    let out = t.run();
    if out.code == 0 {
        // success means success: every release deployed
        let releases = out
            .stderr
            .split("  releases:\n")
            .nth(1)
            .and_then(|r| r.split("  namespaces:").next())
            .unwrap_or_default()
            .to_string();
        assert!(
            !releases.contains("pending") && !releases.contains("failed"),
            "{spec}: exit 0 with\n{releases}\n{}",
            out.stderr
        );
    } else {
        assert!(
            [1, 2].contains(&out.code),
            "{spec}: exit {}:\n{}",
            out.code,
            out.stderr
        );
    }
    assert_converges(&state, spec, None);
}

/// Faults whose run either fails with a clear error or retries through.
const FAULTS: &[&str] = &[
    // Kubernetes: the connection check, discovery, the namespace, the credentials Secret
    "GET:/version:1:503",
    "GET:/api:1:500",
    "PATCH:/api/v1/namespaces/clearml:1:500",
    "GET:/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials:1:500",
    "PATCH:/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials:1:500",
    // the ClearML API: a retried look-up, a refused creation, rejected credentials
    "POST:/queues.get_all:2:503",
    "POST:/queues.create:1:500",
    "*:/queues.get_all:1:401",
    "POST:/queues.create:1:delay=200",
];

#[test]
fn faults_of_the_apis_never_end_in_a_false_success_and_re_runs_converge() {
    for spec in FAULTS {
        run_with_fault(spec);
    }
    eprintln!("fault matrix: {} faults survived", FAULTS.len());
}

/// Faults in the middle of helm's own install: the release is left pending or failed. Exit 0
/// then is a false success; a chart step succeeds only when the release ends deployed.
#[test]
#[ignore = "open: the first run now fails naming the pending state, but the re-run refuses the release helm left pending-install (recovering it safely is not built yet)"]
fn a_fault_during_helm_s_install_is_not_a_success() {
    for spec in [
        "PUT:/api/v1/namespaces/clearml/secrets:1:500",
        "POST:/api/v1/namespaces/clearml/secrets:2:500",
    ] {
        run_with_fault(spec);
    }
}
