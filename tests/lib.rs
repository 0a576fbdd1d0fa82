//! One integration-test binary: every test drives the real `clearml-script` binary through the
//! `Test` builder, one file per feature.

mod common;

mod apps;

mod check;
mod clearml_api;
mod control_plane;
mod docs;
mod fault_matrix;
mod kill_matrix;
mod kube_client;
mod leak_scan;
mod playbooks;
mod promises;
mod repl;
mod run;
mod sandbox;
mod secrets;
mod validation;
mod workloads;
