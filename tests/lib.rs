//! One integration-test binary: every test drives the real `clearml-script` binary through the
//! `Test` builder, one file per feature.

mod common;

mod airgap;
mod apps;
mod apps_edges;
mod bad_input;

mod check;
mod clearml_api;
mod control_plane;
mod conventions;
mod docs;
mod fault_matrix;
mod kill_matrix;
mod kube_client;
mod leak_scan;
mod operations;
mod parallel;
mod plan_and_signals;
mod plans;
mod playbooks;
mod progress;

mod promises;
mod readback;
mod real_cluster;
mod recorder;
mod repl;
mod replay;
mod run;
mod sandbox;
mod schema;
mod secrets;
mod site_keys;
mod site_values;
mod stand_ins;
mod support_bundle;
mod validation;
mod workloads;
