//! Operations around the install: the reads they make (answered by the live executor, planned
//! placeholders in a dry run), the command-line switches playbooks see (`--skip-preflight`,
//! `--yes`), the check reports of preflight and status (a table, or JSON with `--output json`),
//! and the diagnosis of a chart whose wait failed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value as J, json};

use crate::action::{ApiTarget, ChartInstall, Mode};
use crate::live::{LiveExecutor, api_failure, block_on};
use crate::value::Value;

static SKIP_PREFLIGHT: AtomicBool = AtomicBool::new(false);
static YES: AtomicBool = AtomicBool::new(false);
static REPORTS: Mutex<Vec<J>> = Mutex::new(Vec::new());

/// Remember the run's switches for the playbooks (`skip_preflight()`, `confirm`).
pub fn set_switches(skip_preflight: bool, yes: bool) {
    SKIP_PREFLIGHT.store(skip_preflight, Ordering::SeqCst);
    YES.store(yes, Ordering::SeqCst);
}

pub fn skip_preflight() -> bool {
    SKIP_PREFLIGHT.load(Ordering::SeqCst)
}

pub fn yes() -> bool {
    YES.load(Ordering::SeqCst)
}

/// The reads of operations. None is ever part of a plan.
#[derive(Clone, Debug)]
pub enum OpsQuery {
    /// Every object of a kind, in a namespace or all.
    KubeList {
        api_version: String,
        kind: String,
        namespace: Option<String>,
    },
    /// The workloads of a namespace with their readiness and why not.
    Workloads { namespace: String },
    /// A SelfSubjectAccessReview.
    CanI {
        verb: String,
        group: String,
        resource: String,
        namespace: Option<String>,
    },
    /// The addresses a host name resolves to.
    ResolveHost { host: String },
    /// Does anything answer HTTP at the URL? `chart_repo`: the URL of a chart repository (in
    /// the sandbox, its stand-in repository is asked instead).
    Reachable { url: String, chart_repo: bool },
    /// The last lines of a container's log.
    PodLogs {
        namespace: String,
        pod: String,
        container: Option<String>,
        lines: i64,
    },
    /// The ClearML API's version, queues and workers, as the target's identity.
    ClearmlServer(ApiTarget),
    /// Collect a support bundle into a local file (the cluster is only read).
    SupportBundle(crate::support_bundle::BundleSpec),
    /// A chart rendered as its step would install it (`helm template`), and what its
    /// workloads request.
    ChartRequests {
        chart: ChartInstall,
        repo: Option<crate::helm::RepoSource>,
    },
}

impl OpsQuery {
    /// A dry run reads nothing: empty lists, and answers that say they are planned.
    pub fn planned_result(&self) -> Value {
        match self {
            OpsQuery::KubeList { .. }
            | OpsQuery::Workloads { .. }
            | OpsQuery::ResolveHost { .. } => Value::List(Vec::new()),
            OpsQuery::CanI { .. } => Value::from_json(&json!({
                "allowed": true, "reason": "<planned: asked at run time>"
            })),
            OpsQuery::Reachable { .. } => Value::from_json(&json!({
                "ok": true, "detail": "<planned: tried at run time>"
            })),
            OpsQuery::PodLogs { .. } => Value::Str(String::new()),
            OpsQuery::ChartRequests { .. } => {
                Value::from_json(&json!({"workloads": [], "resources": [], "unserved": []}))
            }
            OpsQuery::SupportBundle(spec) => {
                Value::Str(format!("<planned: a support bundle in {}>", spec.out))
            }
            OpsQuery::ClearmlServer(_) => Value::from_json(&json!({
                "version": "<planned: the server's version>", "api_version": "<planned>",
                "login": {"ok": true, "detail": "<planned: tried at run time>"},
                "queues": [], "workers": []
            })),
        }
    }
}

/// Is `host` one of this machine's own (loopback) names or addresses?
fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Ask for `url` with a short timeout; any HTTP answer (even 401) means it is reachable.
pub async fn reachable(url: &str) -> J {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return json!({"ok": false, "detail": e.to_string()}),
    };
    match client.get(url).send().await {
        Ok(resp) => json!({"ok": true, "detail": format!("HTTP {}", resp.status().as_u16())}),
        Err(e) => {
            let mut detail = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                detail = format!("{detail}: {s}");
                src = s.source();
            }
            json!({"ok": false, "detail": detail})
        }
    }
}

/// The addresses a host name resolves to (empty when it does not).
pub async fn resolve(host: &str) -> Vec<String> {
    let mut out: Vec<String> = match tokio::net::lookup_host((host, 443)).await {
        Ok(addrs) => addrs.map(|a| a.ip().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

impl LiveExecutor {
    /// Answer a read of operations.
    pub(crate) fn ops_query(&self, q: &OpsQuery) -> Result<Value, String> {
        let sandbox = self.mode == Mode::Sandbox;
        match q {
            OpsQuery::KubeList {
                api_version,
                kind,
                namespace,
            } => {
                let client = self.kube()?.client().clone();
                let items = block_on(crate::inspect::list(
                    &client,
                    api_version,
                    kind,
                    namespace.as_deref(),
                ))?;
                Ok(Value::from_json(&J::Array(items)))
            }
            OpsQuery::Workloads { namespace } => {
                let client = self.kube()?.client().clone();
                let w = block_on(crate::inspect::workloads(&client, namespace))?;
                Ok(Value::from_json(
                    &serde_json::to_value(w).map_err(|e| e.to_string())?,
                ))
            }
            OpsQuery::CanI {
                verb,
                group,
                resource,
                namespace,
            } => {
                let client = self.kube()?.client().clone();
                let (allowed, reason) = block_on(crate::inspect::can_i(
                    &client,
                    verb,
                    group,
                    resource,
                    namespace.as_deref(),
                ))?;
                Ok(Value::from_json(
                    &json!({"allowed": allowed, "reason": reason}),
                ))
            }
            OpsQuery::ResolveHost { .. } if sandbox => {
                Err("the sandbox has no DNS: host names are not resolved in a rehearsal".into())
            }
            OpsQuery::ResolveHost { host } => Ok(Value::from_json(&json!(block_on(resolve(host))))),
            OpsQuery::Reachable { url, chart_repo } => {
                let (url, via) = match (&self.target.chart_repo_url, chart_repo) {
                    (Some(standin), true) => (
                        format!("{standin}/index.yaml"),
                        " from the sandbox's stand-in repository",
                    ),
                    _ => (url.clone(), ""),
                };
                if sandbox && !is_loopback_url(&url) {
                    return Err(format!(
                        "the sandbox reaches no network: {url} is not tried in a rehearsal"
                    ));
                }
                let mut answer = block_on(reachable(&url));
                if let Some(d) = answer["detail"].as_str() {
                    answer["detail"] = J::from(format!("{d}{via}"));
                }
                Ok(Value::from_json(&answer))
            }
            OpsQuery::PodLogs {
                namespace,
                pod,
                container,
                lines,
            } => {
                let client = self.kube()?.client().clone();
                Ok(Value::Str(block_on(crate::inspect::logs(
                    &client,
                    namespace,
                    pod,
                    container.as_deref(),
                    *lines,
                ))?))
            }
            OpsQuery::SupportBundle(spec) => Ok(Value::from_json(&self.support_bundle(spec)?)),
            OpsQuery::ChartRequests { chart, repo } => {
                // in the sandbox, the repository is its stand-in, as for helm_repo_add
                let repo = repo.clone().map(|mut r| {
                    if let Some(standin) = &self.target.chart_repo_url {
                        r.url = standin.clone();
                    }
                    r
                });
                let objects = self.helm()?.template(chart, repo.as_ref())?;
                let workloads = crate::capacity::requests(&objects);
                // the same rendering gives the resources the permissions are asked on
                let client = self.kube()?.client().clone();
                let discover = |api_version: String, kind: String| {
                    let client = client.clone();
                    async move {
                        let found =
                            crate::kube::served_resource(&client, &api_version, &kind).await?;
                        Ok(found.map(|(ar, namespaced)| (ar.group, ar.plural, namespaced)))
                    }
                };
                let (resources, unserved) = block_on(crate::capacity::resources(
                    &objects,
                    &chart.namespace,
                    discover,
                ));
                Ok(Value::from_json(&json!({
                    "workloads": workloads,
                    "resources": resources,
                    "unserved": unserved,
                })))
            }
            OpsQuery::ClearmlServer(api) => {
                let client = self.clearml(api)?;
                block_on(client.ping()).map_err(|e| api_failure(&e, api))?;
                let info = block_on(client.server_info()).map_err(|e| api_failure(&e, api))?;
                let login = match block_on(client.whoami()) {
                    Ok(u) => {
                        json!({"ok": true, "detail": format!("as {}", u["name"].as_str().unwrap_or("?"))})
                    }
                    // a system identity (the supervisor) has no user record but valid credentials
                    Err(e) if e.is(400, 300) => {
                        json!({"ok": true, "detail": "as a system identity"})
                    }
                    Err(e) => json!({"ok": false, "detail": api_failure(&e, api)}),
                };
                let (queues, workers) = if login["ok"] == true {
                    let client = self.clearml(api)?;
                    (
                        block_on(client.queues()).map_err(|e| api_failure(&e, api))?,
                        block_on(client.workers()).map_err(|e| api_failure(&e, api))?,
                    )
                } else {
                    (json!([]), json!([]))
                };
                Ok(Value::from_json(&json!({
                    "version": info["version"],
                    "api_version": info["api_version"],
                    "login": login,
                    "queues": queues,
                    "workers": workers,
                })))
            }
        }
    }

    /// A chart whose wait failed: the diagnosis of its namespace first (which workloads are
    /// not ready and why, with the likely fix), then the release's state and the choices.
    pub(crate) fn explain_failed_wait(&self, spec: &ChartInstall, error: String) -> String {
        let mut out = error;
        let client = self.kube().map(|k| k.client().clone());
        match client.map(|c| block_on(crate::inspect::diagnose(&c, &spec.namespace))) {
            Ok(Ok(Some(d))) => {
                out = format!(
                    "{out}\n\nDiagnosis: workloads in {} that are not ready:\n{d}",
                    spec.namespace
                );
            }
            Ok(Ok(None)) => {
                out.push_str(&format!(
                    "\n\nDiagnosis: every workload in {} is ready now; the wait may have been too short (raise `timeout`)",
                    spec.namespace
                ));
            }
            Ok(Err(e)) | Err(e) => out.push_str(&format!("\n\nDiagnosis: not available: {e}")),
        }
        let (release, ns) = (&spec.release, &spec.namespace);
        // the release record through the Kubernetes API: no helm process
        let state = self.release_record(release, ns).ok().flatten();
        match state {
            Some(s) => {
                let revision = s["version"].as_i64().unwrap_or(0);
                let status = s["info"]["status"].as_str().unwrap_or("unknown");
                out.push_str(&format!(
                    "\nRelease {release} in {ns}: revision {revision}, {status}.\nChoices:\n  - fix the cause and run the playbook again: it upgrades the release in place\n"
                ));
                if revision > 1 {
                    out.push_str(&format!(
                        "  - or roll back to the revision before: helm rollback {release} {} -n {ns} --wait\n",
                        revision - 1
                    ));
                } else {
                    out.push_str(&format!(
                        "  - or remove it: helm uninstall {release} -n {ns}\n"
                    ));
                }
                if !spec.rollback_on_failure {
                    out.push_str("  - a site can ask for a rollback on failure: `rollback_on_failure: true` in the site values (an install_chart option)\n");
                }
            }
            None => out.push_str(&format!(
                "\nRelease {release} in {ns}: not installed (rolled back or never created); fix the cause and run again\n"
            )),
        }
        out
    }
}

/// One check of a preflight or a status: `pass`, `warn` or `fail`, what was found, and the fix.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub status: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fix: String,
    /// What the check looked at, item by item (the permissions asked, say): in the JSON
    /// report, not in the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// The report of checks: a table for people, with the count of each outcome.
pub fn render_table(title: &str, checks: &[Check]) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{title}\n");
    for c in checks {
        out.push_str(&format!(
            "  {:<4}  {:<width$}  {}\n",
            c.status.to_uppercase(),
            c.name,
            c.message
        ));
        if !c.fix.is_empty() && c.status != "pass" {
            out.push_str(&format!("        {:<width$}  fix: {}\n", "", c.fix));
        }
    }
    let count = |s: &str| checks.iter().filter(|c| c.status == s).count();
    out.push_str(&format!(
        "{} passed, {} warnings, {} failed\n",
        count("pass"),
        count("warn"),
        count("fail")
    ));
    out
}

/// Keep a report for the JSON output of the run.
pub fn keep_report(doc: J) {
    REPORTS.lock().unwrap_or_else(|e| e.into_inner()).push(doc);
}

/// The reports the run made, for `--output json`.
pub fn take_reports() -> Vec<J> {
    std::mem::take(&mut *REPORTS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Ask a yes/no question on the terminal. With `--yes` the answer is yes without asking;
/// without a terminal and without `--yes`, the answer is an error that says to pass it.
pub fn confirm(question: &str) -> Result<bool, String> {
    use std::io::IsTerminal;
    if yes() {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{question}: stdin is not a terminal to ask on; pass --yes to confirm"
        ));
    }
    crate::ui::err(&format!("{question} [y/N] "));
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_counts_and_shows_fixes_only_when_needed() {
        let checks = vec![
            Check {
                name: "cluster".into(),
                status: "pass".into(),
                message: "v1.33.0".into(),
                fix: "never shown".into(),
                details: vec!["never shown either".into()],
            },
            Check {
                name: "storage class".into(),
                status: "fail".into(),
                message: "no default StorageClass".into(),
                fix: "mark one default".into(),
                details: Vec::new(),
            },
        ];
        let t = render_table("Preflight", &checks);
        assert!(t.contains("  PASS  cluster        v1.33.0\n"), "{t}");
        assert!(
            t.contains("  FAIL  storage class  no default StorageClass\n"),
            "{t}"
        );
        assert!(t.contains("fix: mark one default"), "{t}");
        assert!(!t.contains("never shown"), "{t}");
        assert!(t.ends_with("1 passed, 0 warnings, 1 failed\n"), "{t}");
    }

    #[test]
    fn localhost_resolves_without_the_network() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addrs = rt.block_on(resolve("localhost"));
        assert!(
            addrs.iter().any(|a| a == "127.0.0.1" || a == "::1"),
            "{addrs:?}"
        );
        assert!(is_loopback_url("http://127.0.0.1:8080/x"));
        assert!(!is_loopback_url("https://registry-1.docker.io/v2/"));
    }
}
