//! clearml-script: install and operate ClearML Enterprise on Kubernetes with Rhai playbooks.
//!
//! Effects are actions (`action`), carried out by an executor: dry-run (the plan), live, or the
//! sandbox. Built-ins live in `api`, one plugin module per domain.

pub mod action;
pub mod airgap;
pub mod api;
pub mod apps_package;
pub mod capacity;
pub mod chartdiff;
pub mod check;
pub mod clearml;
pub mod cli;
pub mod commands;
pub mod diagnostic;
pub mod docs;
pub mod embedded;
pub mod engine;
pub mod execute;
pub mod executors;
pub mod failure;
pub mod fsutil;
pub mod helm;
pub mod helm_repos;
pub mod inspect;
pub mod kube;
pub mod kube_deadline;
pub mod live;
pub mod memory;
pub mod ops;
pub mod parallel;
pub mod playbook;
pub mod process;
pub mod progress;
pub mod recover;
pub mod repl;
pub mod runtime;
pub mod sandbox;
pub mod schema;
pub mod secret;
pub mod site;
pub mod site_keys;
pub mod strvals;
pub mod support_bundle;
pub mod tool_cache;
pub mod ui;
pub mod validate;
pub mod value;
pub mod zip_rewrite;
