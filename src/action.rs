//! Effects are actions. Every built-in that would touch the world describes the effect as an
//! [`Action`] and hands it to the run's [`Executor`]: the dry-run executor records it and answers
//! with a planned placeholder; live executors (helm, Kubernetes, the ClearML API, files) do it.
//!
//! Actions serialize as `{"kind": "helm.upgrade_install", ...fields}`; secrets inside them
//! serialize as `<redacted>`, so a plan can always be printed.

use serde::Serialize;

use crate::parallel::Place;
use crate::secret::Secret;
use crate::value::{Value, json_to_yaml};

/// One effect. The field names are the plan's JSON keys.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind")]
pub enum Action {
    #[serde(rename = "helm.repo_add")]
    HelmRepoAdd {
        name: String,
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
    },
    #[serde(rename = "helm.repo_update")]
    HelmRepoUpdate {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    #[serde(rename = "helm.registry_login")]
    HelmRegistryLogin {
        host: String,
        username: Value,
        password: Secret,
        /// The registry answers plain HTTP (helm 4's `--plain-http`, helm 3's `--insecure`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        plain_http: bool,
    },
    /// `helm push ARCHIVE oci://HOST/PATH`: a chart archive into an OCI registry (logged in to
    /// before), as `oci://HOST/PATH/NAME:VERSION`.
    #[serde(rename = "helm.push")]
    HelmPush {
        /// The chart archive (`NAME-VERSION.tgz`).
        archive: String,
        /// The chart's name and version, as the registry will hold them.
        name: String,
        version: String,
        /// Where to: `oci://HOST[:PORT]/PATH`.
        registry: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        plain_http: bool,
    },
    #[serde(rename = "helm.upgrade_install")]
    HelmUpgradeInstall(ChartInstall),
    #[serde(rename = "helm.uninstall")]
    HelmUninstall {
        release: String,
        namespace: String,
        wait: bool,
    },
    #[serde(rename = "kube.ensure_namespace")]
    KubeEnsureNamespace { name: String },
    #[serde(rename = "kube.apply")]
    KubeApply {
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        manifest: Value,
    },
    #[serde(rename = "clearml.create_queue")]
    ClearmlCreateQueue {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        impersonate_as: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        #[serde(flatten)]
        api: ApiTarget,
    },
    #[serde(rename = "clearml.delete_queue")]
    ClearmlDeleteQueue {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        impersonate_as: Option<String>,
        #[serde(flatten)]
        api: ApiTarget,
    },
    #[serde(rename = "apps.download")]
    AppsDownload {
        url: Value,
        dir: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    #[serde(rename = "apps.convert_registry")]
    AppsConvertRegistry {
        apps_dir: String,
        target_repo: String,
        generation: String,
        /// `vendor script` (the package's convert_image_registry.py when present, or the one
        /// given), else `native`: decided when the step runs, after the download.
        method: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        images_file: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mirror_file: Option<String>,
    },
    #[serde(rename = "apps.upload")]
    AppsUpload {
        source: Vec<String>,
        generation: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        #[serde(flatten)]
        api: ApiTarget,
    },
    /// Delete one object (idempotent: a missing one is not an error).
    #[serde(rename = "kube.delete")]
    KubeDelete {
        api_version: String,
        object_kind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        name: String,
    },
    #[serde(rename = "wait.ready")]
    WaitReady {
        namespace: String,
        resource: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    },
}

impl Action {
    /// The kind, as it appears in the plan.
    pub fn kind(&self) -> String {
        self.to_json()["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The plan's JSON object for this action (secrets redacted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("actions always serialize")
    }

    /// What the dry-run executor answers, so the script can go on: values that say they are
    /// planned, never made-up results.
    pub fn planned_result(&self) -> Value {
        match self {
            Action::ClearmlCreateQueue { name, .. } => {
                Value::Str(format!("<planned: id of queue {name}>"))
            }
            // the fields a live step answers, the ones only the cluster knows as placeholders
            Action::HelmUpgradeInstall(c) => Value::from_json(&serde_json::json!({
                "release": c.release,
                "namespace": c.namespace,
                "revision": "<planned: the release's revision>",
                "status": "planned",
                "changed": true,
            })),
            Action::AppsDownload { .. } | Action::AppsConvertRegistry { .. } => {
                Value::List(Vec::new())
            }
            _ => Value::Null,
        }
    }
}

/// The ClearML API a call goes to, and as whom. The secret is redacted in every plan.
#[derive(Clone, Debug, Serialize)]
pub struct ApiTarget {
    pub api_url: String,
    pub key: Value,
    pub secret: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    #[serde(skip)]
    pub attempts: u32,
    #[serde(skip)]
    pub timeout_secs: u64,
}

/// `helm upgrade --install`: what to install where, and how.
#[derive(Clone, Debug, Serialize)]
pub struct ChartInstall {
    pub release: String,
    pub chart: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub create_namespace: bool,
    pub values: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    pub wait: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    pub rollback_on_failure: bool,
    /// An `oci://` chart from a registry that answers plain HTTP (`--plain-http`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
}

/// A read of the world: answered by the executor, never part of the plan.
#[derive(Clone, Debug)]
pub enum Query {
    ClearmlPing(ApiTarget),
    ClearmlWhoami(ApiTarget),
    ClearmlGetQueue {
        api: ApiTarget,
        name: String,
        impersonate_as: Option<String>,
    },
    HelmStatus {
        release: String,
        namespace: String,
    },
    HelmList {
        namespace: Option<String>,
    },
    GetSecret {
        namespace: String,
        name: String,
    },
    KubeVersion,
    RouterAddress,
    /// The reads of operations (preflight, status, diagnosis, support bundle).
    Ops(crate::ops::OpsQuery),
}

impl Query {
    /// What a dry run answers: nothing found, so the script plans as for a first install.
    pub fn planned_result(&self) -> Value {
        match self {
            Query::HelmList { .. } => Value::List(Vec::new()),
            Query::KubeVersion => Value::Str("<planned: the cluster's version>".into()),
            Query::HelmStatus { .. } | Query::GetSecret { .. } | Query::ClearmlGetQueue { .. } => {
                Value::Null
            }
            Query::ClearmlPing(_) => Value::Bool(true),
            Query::RouterAddress => Value::from_json(&serde_json::json!({
                "address": "<planned: discovered in the cluster at run time>",
                "source": "a dry run discovers nothing",
            })),
            Query::Ops(q) => q.planned_result(),
            Query::ClearmlWhoami(_) => Value::from_json(&serde_json::json!({
                "id": "<planned: the user's id>",
                "name": "<planned: the user's name>",
            })),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Live,
    Sandbox,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Live => "live",
            Mode::Sandbox => "sandbox",
        }
    }
}

/// Carries out actions.
pub trait Executor {
    fn mode(&self) -> Mode;
    /// Do (or record) the action, and answer with what the script gets back.
    fn execute(&self, action: &Action) -> Result<Value, String>;
    /// Read something of the world.
    fn query(&self, query: &Query) -> Result<Value, String>;
    /// Several independent actions of one built-in (a list of queues): one result each, in
    /// order. One after another unless the executor can do better.
    fn execute_many(&self, actions: &[Action]) -> Vec<Result<Value, String>> {
        actions.iter().map(|a| self.execute(a)).collect()
    }
}

/// Records every action and touches nothing.
#[derive(Default)]
pub struct DryRunExecutor;

impl Executor for DryRunExecutor {
    fn mode(&self) -> Mode {
        Mode::DryRun
    }
    fn execute(&self, action: &Action) -> Result<Value, String> {
        Ok(action.planned_result())
    }
    fn query(&self, query: &Query) -> Result<Value, String> {
        Ok(query.planned_result())
    }
}

/// Where the live executor acts: the cluster (helm and kube-rs always use the same kubeconfig
/// and context) and, in the sandbox, the ClearML API that stands in for the site's.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    pub clearml_api_url: Option<String>,
    /// In the sandbox: the stand-in chart repository that every `helm repo add` points to.
    pub chart_repo_url: Option<String>,
    /// In the sandbox: the stand-in OCI registry (`HOST:PORT`, plain HTTP) that every
    /// `oci://` chart, registry login and push goes to.
    pub oci_registry: Option<String>,
    /// In the sandbox: helm's own configuration, cache and data, apart from the user's, so that
    /// the sandbox's repositories never reach the user's helm.
    pub helm_home: Option<std::path::PathBuf>,
    /// `--recover-pending`: the operator says no helm operation runs on a pending release, so
    /// the chart step may clear it ([`crate::recover`]).
    pub recover_pending: bool,
}

/// The plan as one JSON document: `{"dry_run": true, "actions": [...]}`. A step of a
/// parallel group carries `"parallel": {"group": N, "branch": NAME}`.
pub fn render_json(actions: &[Action], places: &[Option<Place>], dry_run: bool) -> String {
    // written straight from the actions, without a JSON tree of the whole plan in between (a
    // site with thousands of queues plans thousands of steps)
    #[derive(Serialize)]
    struct Step<'a> {
        #[serde(flatten)]
        action: &'a Action,
        #[serde(skip_serializing_if = "Option::is_none")]
        parallel: Option<&'a Place>,
    }
    struct Steps<'a>(&'a [Action], &'a [Option<Place>]);
    impl Serialize for Steps<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().enumerate().map(|(i, action)| Step {
                action,
                parallel: self.1.get(i).and_then(Option::as_ref),
            }))
        }
    }
    #[derive(Serialize)]
    struct Plan<'a> {
        dry_run: bool,
        actions: Steps<'a>,
    }
    serde_json::to_string_pretty(&Plan {
        dry_run,
        actions: Steps(actions, places),
    })
    .expect("plan serializes")
}

/// The plan as numbered human-readable steps. Scalar fields go on the step's line as
/// `field=value`; in a plan, maps and lists follow as indented YAML (after a live run, the
/// step lines alone). A parallel group starts with a line naming its branches, and each of
/// its steps shows `[N:BRANCH]`.
pub fn render_text(actions: &[Action], places: &[Option<Place>], dry_run: bool) -> String {
    let mut out = String::new();
    let what = if dry_run {
        "Plan (dry run: nothing was changed)"
    } else {
        "Done"
    };
    let n = actions.len();
    out.push_str(&format!(
        "{what}: {n} step{}\n",
        if n == 1 { "" } else { "s" }
    ));
    let place = |i: usize| places.get(i).cloned().flatten();
    for (i, action) in actions.iter().enumerate() {
        let json = action.to_json();
        let obj = json.as_object().expect("actions are objects");
        let here = place(i);
        let mut line = format!("{:>3}. {}", i + 1, action.kind());
        if let Some(p) = &here {
            if i == 0 || place(i - 1).is_none_or(|prev| prev.group != p.group) {
                let mut branches: Vec<String> = Vec::new();
                for q in (i..actions.len()).map_while(|j| place(j).filter(|q| q.group == p.group)) {
                    if !branches.contains(&q.branch) {
                        branches.push(q.branch);
                    }
                }
                out.push_str(&format!(
                    "     parallel group {}: {} wait together\n",
                    p.group,
                    branches.join(", ")
                ));
            }
            line = format!("{:>3}. [{}:{}] {}", i + 1, p.group, p.branch, action.kind());
        }
        let mut blocks = String::new();
        for (field, value) in obj.iter().filter(|(k, _)| *k != "kind") {
            match value {
                serde_json::Value::Object(m) if m.is_empty() => {
                    line.push_str(&format!(" {field}={{}}"))
                }
                serde_json::Value::Array(a) if a.iter().all(|v| !v.is_object()) => {
                    let items: Vec<String> = a.iter().map(scalar_text).collect();
                    line.push_str(&format!(" {field}=[{}]", items.join(",")));
                }
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                    blocks.push_str(&format!("       {field}:\n"));
                    let yaml = json_to_yaml(value).unwrap_or_else(|e| format!("<{e}>\n"));
                    for l in yaml.lines() {
                        blocks.push_str(&format!("         {l}\n"));
                    }
                }
                scalar => line.push_str(&format!(" {field}={}", scalar_text(scalar))),
            }
        }
        out.push_str(&line);
        out.push('\n');
        if dry_run {
            out.push_str(&blocks);
        }
    }
    out
}

fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
            s.clone()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A plan's scalar is written bare when it is one word, else quoted (so an empty value or
    /// one with spaces is seen for what it is).
    #[test]
    fn scalars_are_bare_only_when_one_word() {
        use serde_json::json;
        assert_eq!(scalar_text(&json!("clearml")), "clearml");
        assert_eq!(scalar_text(&json!("")), "\"\"");
        assert_eq!(scalar_text(&json!("two words")), "\"two words\"");
        assert_eq!(scalar_text(&json!("tab\there")), "\"tab\\there\"");
        assert_eq!(scalar_text(&json!(3)), "3");
        assert_eq!(scalar_text(&json!(null)), "null");
    }

    fn install() -> Action {
        Action::HelmUpgradeInstall(ChartInstall {
            release: "clearml".into(),
            chart: "clearml-enterprise/clearml-enterprise".into(),
            namespace: "clearml".into(),
            version: None,
            create_namespace: true,
            values: Value::Map(BTreeMap::from([(
                "imageCredentials".into(),
                Value::Map(BTreeMap::from([(
                    "password".into(),
                    Value::Secret(Secret::new("dockerhub-token-123")),
                )])),
            )])),
            values_files: vec![],
            wait: false,
            timeout: None,
            rollback_on_failure: false,
            plain_http: false,
        })
    }

    #[test]
    fn json_plan_redacts_and_tags_kind() {
        let text = render_json(&[install()], &[], true);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["dry_run"], true);
        assert_eq!(doc["actions"][0]["kind"], "helm.upgrade_install");
        assert_eq!(
            doc["actions"][0]["values"]["imageCredentials"]["password"],
            "<redacted>"
        );
        assert!(!text.contains("dockerhub-token-123"));
    }

    #[test]
    fn text_plan_numbers_steps() {
        let text = render_text(
            &[install(), Action::HelmRepoUpdate { names: vec![] }],
            &[],
            true,
        );
        assert!(text.starts_with("Plan (dry run: nothing was changed): 2 steps\n"));
        assert!(text.contains("  1. helm.upgrade_install release=clearml"));
        assert!(text.contains("password: <redacted>"), "{text}");
        assert!(text.contains("  2. helm.repo_update\n"));
    }

    #[test]
    fn dry_run_answers_planned_values() {
        let q = Action::ClearmlCreateQueue {
            name: "GPUshm".into(),
            impersonate_as: None,
            tags: vec![],
            api: ApiTarget {
                api_url: "https://api.example.com".into(),
                key: Value::Str("KEY".into()),
                secret: Secret::new("queue-test-secret"),
                ca_file: None,
                insecure: false,
                attempts: 1,
                timeout_secs: 1,
            },
        };
        assert_eq!(
            DryRunExecutor.execute(&q).unwrap(),
            Value::Str("<planned: id of queue GPUshm>".into())
        );
        let json = q.to_json();
        assert_eq!(json["api_url"], "https://api.example.com");
        assert_eq!(json["secret"], "<redacted>");
    }
}
