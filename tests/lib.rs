//! One integration-test binary: every test drives the real `clearml-script` binary through the
//! `Test` builder, one file per feature.

mod common;

mod apps;

mod check;
mod clearml_api;
mod control_plane;
mod conventions;
mod docs;
mod kube_client;
mod playbooks;
mod repl;
mod run;
mod sandbox;
mod schema;
mod secrets;
mod validation;
mod workloads;
