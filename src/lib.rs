//! clearml-script: install and operate ClearML Enterprise on Kubernetes with Rhai playbooks.
//!
//! Effects are actions (`action`), carried out by an executor: dry-run (the plan), live, or the
//! sandbox. Built-ins live in `api`, one plugin module per domain.

pub mod action;
pub mod api;
pub mod app;
pub mod apps;
pub mod chartdiff;
pub mod check;
pub mod clearml;
pub mod cli;
pub mod diagnostic;
pub mod docs;
pub mod embedded;
pub mod engine;
pub mod failure;
pub mod helm;
pub mod kube;
pub mod live;
pub mod playbook;
pub mod repl;
pub mod runtime;
pub mod sandbox;
pub mod secret;
pub mod site;
pub mod ui;
pub mod validate;
pub mod value;
