//! The live executor (also the sandbox's, pointed at the simulators): each action carried out
//! by the domain that owns it. A kind whose live side this build does not have yet is refused
//! before anything is done, never faked.

use std::cell::{OnceCell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use crate::action::{Action, ApiTarget, ChartInstall, Executor, Mode, Query, Target};
use crate::helm::{Helm, strings};
use crate::kube::{Kube, secret_manifest};
use crate::secret::Secret;
use crate::value::Value;

pub struct LiveExecutor {
    pub mode: Mode,
    pub target: Target,
    helm_flag: Option<PathBuf>,
    helm: OnceCell<Helm>,
    kube: OnceCell<Kube>,
    /// The connection check's answer when it was made ahead ([`crate::executors::Early`]).
    checked: RefCell<Option<Result<String, String>>>,
    /// ClearML API clients by everything a session says: URL, key, secret, TLS and retries.
    clients: RefCell<std::collections::HashMap<ClientKey, Rc<crate::clearml::Client>>>,
    /// The queues each API target and identity sees (name to id), listed once per run.
    queue_index:
        RefCell<std::collections::HashMap<QueueScope, std::collections::HashMap<String, String>>>,
}

/// A client's identity: URL, key, secret, CA file, insecure, timeout, attempts (a session
/// that differs in any of them, such as one with the secret corrected, gets its own client).
type ClientKey = (String, String, String, Option<String>, bool, u64, u32);

/// An API (URL and key) and the identity a queue call acts as.
type QueueScope = (String, String, Option<String>);

impl LiveExecutor {
    /// With `require_helm`, helm is found now, so that a missing helm is reported before the
    /// first action; otherwise when a helm step first needs it.
    pub fn new(
        mode: Mode,
        target: Target,
        helm_flag: Option<PathBuf>,
        require_helm: bool,
    ) -> Result<LiveExecutor, String> {
        let live = LiveExecutor {
            mode,
            target,
            helm_flag,
            helm: OnceCell::new(),
            kube: OnceCell::new(),
            checked: RefCell::new(None),
            clients: Default::default(),
            queue_index: Default::default(),
        };
        if require_helm {
            live.helm()?;
        }
        Ok(live)
    }

    /// Take the helm found and the Kubernetes client connected (and its connection check's
    /// answer) while the plan pass ran ([`crate::executors::Early`]), as if found here.
    pub fn adopt(
        &self,
        helm: Option<crate::helm::Probed>,
        kube: Option<(Kube, Result<String, String>)>,
    ) {
        if let Some(probed) = helm {
            let _ = self.helm.set(Helm::with(probed, self.target.clone()));
        }
        if let Some((kube, checked)) = kube {
            let _ = self.kube.set(kube);
            *self.checked.borrow_mut() = Some(checked);
        }
    }

    /// An `oci://HOST/PATH` reference as helm is given it: in the sandbox, its host is the
    /// sandbox's OCI registry (plain HTTP), which stands in for every registry; elsewhere as it
    /// is. Answers the reference and whether helm needs `--plain-http`.
    fn oci_reference(&self, reference: &str, plain_http: bool) -> (String, bool) {
        let Some(standin) = &self.target.oci_registry else {
            return (reference.to_string(), plain_http);
        };
        let rest = reference.strip_prefix("oci://").unwrap_or(reference);
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        crate::ui::info(&format!(
            "sandbox: {reference} is served by the sandbox's OCI registry {standin}"
        ));
        (format!("oci://{standin}/{path}"), true)
    }

    /// Before the first step: the kubeconfig is readable, the context exists and the API
    /// server answers. The error names the server and the context.
    pub fn check_connection(&self) -> Result<(), String> {
        let ahead = self.checked.borrow_mut().take();
        let version = match ahead {
            Some(answer) => answer?,
            None => block_on(self.kube()?.check())?,
        };
        crate::ui::info(&format!("Kubernetes API answers: {version}"));
        Ok(())
    }

    /// The client for an API target; in the sandbox, pointed at the simulator instead.
    pub(crate) fn clearml(&self, api: &ApiTarget) -> Result<Rc<crate::clearml::Client>, String> {
        let url = match &self.target.clearml_api_url {
            Some(sim) => sim.clone(),
            None => api.api_url.clone(),
        };
        let key = expose(&api.key);
        let id = (
            url.clone(),
            key.clone(),
            api.secret.expose().to_string(),
            api.ca_file.clone(),
            api.insecure,
            api.timeout_secs,
            api.attempts,
        );
        if let Some(client) = self.clients.borrow().get(&id) {
            return Ok(client.clone());
        }
        {
            if self.target.clearml_api_url.is_some() {
                crate::ui::info(&format!(
                    "sandbox: the ClearML API {} is served by the simulator",
                    api.api_url
                ));
            }
            let client = crate::clearml::Client::new(crate::clearml::Connection {
                api_url: url,
                key,
                secret: api.secret.clone(),
                ca_file: api.ca_file.clone().map(PathBuf::from),
                insecure: api.insecure,
                timeout: std::time::Duration::from_secs(api.timeout_secs.max(1)),
                retry_base: std::time::Duration::from_millis(250),
                attempts: api.attempts.max(1),
            })?;
            let client = Rc::new(client);
            self.clients.borrow_mut().insert(id, client.clone());
            Ok(client)
        }
    }

    /// A release's latest record, read through the Kubernetes API (no helm process).
    pub fn release_record(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<serde_json::Value>, String> {
        block_on(self.kube()?.release_record(release, namespace))
    }

    /// A release's latest record with its Secret, age, note and history.
    fn release(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<crate::kube::ReleaseRecord>, String> {
        block_on(self.kube()?.release(release, namespace))
    }

    /// Clear a release left pending ([`crate::recover`]): refused without evidence that no
    /// helm holds it; otherwise helm's own rollback or uninstall, said as it is done. Answers
    /// the release's record afterwards.
    fn recover_pending(
        &self,
        spec: &ChartInstall,
        rec: &crate::kube::ReleaseRecord,
    ) -> Result<Option<serde_json::Value>, String> {
        let (release, ns) = (&spec.release, &spec.namespace);
        let recovery = crate::recover::decide(release, ns, rec, self.target.recover_pending)?;
        let why = match &rec.helm_exited {
            Some(note) => format!("left by a helm that has exited ({note})"),
            None => "--recover-pending: no helm operation runs on it".to_string(),
        };
        crate::ui::warn(&format!(
            "the release {release} in {ns} is {} (revision {}), {why}: recovering it: {}",
            rec.state(),
            rec.revision(),
            recovery.describe(release, ns)
        ));
        self.helm()?
            .run(&recovery.helm_args(release, ns), None)
            .map_err(|e| {
                format!(
                    "{e}\nThe release {release} in {ns} is still {}; {}",
                    rec.state(),
                    crate::helm::way_out(release, ns, rec.state())
                )
            })?;
        let after = self.release(release, ns)?;
        match &after {
            Some(a) if a.state().starts_with("pending-") => {
                return Err(format!(
                    "after `helm {}` the release {release} in {ns} is {} still; {}",
                    recovery.helm_args(release, ns).join(" "),
                    a.state(),
                    crate::helm::way_out(release, ns, a.state())
                ));
            }
            Some(a) => crate::ui::info(&format!(
                "chart {release} in {ns}: rolled back, revision {} is {}",
                a.revision(),
                a.state()
            )),
            None => crate::ui::info(&format!(
                "chart {release} in {ns}: the unfinished install was uninstalled"
            )),
        }
        Ok(after.map(|a| a.record))
    }

    /// `--diff` in a dry run: what the chart step would change, read from the cluster and
    /// rendered by helm (`--dry-run=server`); nothing is changed.
    pub fn show_diff(&self, spec: &ChartInstall) -> Result<(), String> {
        let before = self.release_record(&spec.release, &spec.namespace)?;
        let rendered = self.helm()?.upgrade_install(spec, true)?;
        let comparison = crate::chartdiff::Comparison::new(spec, before).with_rendered(rendered);
        print_diff(&comparison, spec);
        Ok(())
    }

    /// A chart step: a pending release is recovered when that is safe and refused otherwise
    /// ([`crate::recover`]); skipped when neither the values nor the rendered manifest would
    /// change (no new revision, no restarts); otherwise one `helm upgrade --install`, which
    /// succeeds only when the release ends `deployed`.
    fn install_chart(&self, spec: &ChartInstall) -> Result<Value, String> {
        let before = match self.release(&spec.release, &spec.namespace)? {
            Some(rec) if rec.state().starts_with("pending-") => self.recover_pending(spec, &rec)?,
            other => other.map(|r| r.record),
        };
        let answer = |r: &serde_json::Value, changed: bool| {
            Value::from_json(&serde_json::json!({
                "release": spec.release,
                "namespace": spec.namespace,
                "revision": r["version"],
                "status": r["info"]["status"],
                "changed": changed,
            }))
        };
        let mut comparison = crate::chartdiff::Comparison::new(spec, before);
        let show = crate::chartdiff::showing();
        // the same values and the same chart version as deployed: nothing to render
        let mut unchanged = !show
            && comparison.values_unchanged()
            && self
                .helm()?
                .installing(spec)?
                .is_some_and(|(name, version)| comparison.deployed_chart_is(&name, &version));
        if !unchanged && (comparison.values_unchanged() || show) {
            // the same values: render (one helm process) to see whether the chart would change
            let rendered = self.helm()?.upgrade_install(spec, true)?;
            comparison = comparison.with_rendered(rendered);
            if show {
                print_diff(&comparison, spec);
            }
            unchanged = comparison.unchanged();
        }
        if unchanged {
            // nothing to change, unless objects of the release were deleted since: an upgrade
            // creates them again
            let manifest = comparison
                .before
                .as_ref()
                .and_then(|b| b["manifest"].as_str());
            let missing = match (self.kube(), manifest) {
                (Ok(k), Some(m)) => block_on(k.missing_objects(&spec.namespace, m)),
                _ => Vec::new(),
            };
            if !missing.is_empty() {
                crate::ui::info(&format!(
                    "chart {} in {}: unchanged, but the cluster lacks {}: upgraded to restore them",
                    spec.release,
                    spec.namespace,
                    missing.join(", ")
                ));
                unchanged = false;
            }
        }
        if unchanged {
            let before = comparison
                .before
                .as_ref()
                .expect("values compared with a release");
            crate::ui::info(&format!(
                "chart {} in {}: unchanged (revision {}), not upgraded",
                spec.release, spec.namespace, before["version"]
            ));
            return Ok(answer(before, false));
        }
        let helm = self.helm()?;
        // while helm waits, its workloads' progress (never delaying or failing the step); from
        // here to `stop` nothing returns early
        let watch = spec
            .wait
            .then(|| self.kube().ok().map(|k| k.client().clone()))
            .flatten()
            .map(|client| {
                crate::progress::watch(
                    client,
                    &spec.release,
                    &spec.namespace,
                    crate::runtime::interrupt_flag(),
                )
            });
        let revision_before = comparison
            .before
            .as_ref()
            .and_then(|b| b["version"].as_i64())
            .unwrap_or(0);
        let outcome = helm.upgrade_install(spec, false);
        if let Some(w) = watch {
            w.stop();
        }
        // helm has exited: a record it left pending is held by nobody, which the next run may
        // act on (and only this run knows). Only a record it wrote: newer than the one read
        // before it started, and not when helm refused because another operation holds the
        // release (that record is the other helm's, which may be running still)
        let after = match self.release(&spec.release, &spec.namespace) {
            Ok(after) => after,
            Err(e) => return Err(outcome.err().unwrap_or(e)),
        };
        let held_by_another = outcome.as_ref().err().is_some_and(|e| {
            e.contains("another operation (install/upgrade/rollback) is in progress")
        });
        if let Some(left) = after.as_ref().filter(|a| {
            a.state().starts_with("pending-") && a.revision() > revision_before && !held_by_another
        }) {
            let note = crate::recover::exited_note(&outcome);
            let noted = self
                .kube()
                .and_then(|k| block_on(k.note_helm_exited(&spec.namespace, &left.secret, &note)));
            if let Err(e) = noted {
                crate::ui::warn(&format!("{e}; the next run will need --recover-pending"));
            }
        }
        let after = after.map(|a| a.record);
        if let Err(e) = outcome {
            let pending = after.as_ref().filter(|a| {
                a["info"]["status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("pending-"))
            });
            if let (Some(p), true) = (pending, held_by_another) {
                return Err(format!(
                    "{e}\nAnother helm operation holds the release {} in {} (revision {}, {}): \
                     wait for it to finish and run again; when no helm operation runs on it (on \
                     any machine; `helm history {} -n {}`), run again with --recover-pending",
                    spec.release,
                    spec.namespace,
                    p["version"],
                    p["info"]["status"].as_str().unwrap_or("pending"),
                    spec.release,
                    spec.namespace
                ));
            }
            // refused by a namespace being deleted: not a workload's wait to diagnose
            if let Some(ns) = crate::kube::terminating_namespace(&e) {
                let advice = crate::kube::terminating_advice(ns);
                return Err(format!("{e}\nThe {advice}"));
            }
            if let Some(p) = pending {
                // helm failed and left its record pending: what the next run does about it
                let state = crate::helm::require_deployed(&spec.release, &spec.namespace, Some(p))
                    .err()
                    .unwrap_or_default();
                return Err(format!("{e}\n{state}"));
            }
            // a failed wait: the diagnosis first, then the release's state and choices
            return Err(if spec.wait {
                self.explain_failed_wait(spec, e)
            } else {
                e
            });
        }
        crate::helm::require_deployed(&spec.release, &spec.namespace, after.as_ref())?;
        Ok(answer(after.as_ref().expect("deployed"), true))
    }

    /// Queue creations: the queues of each API target and identity listed once (paged), then
    /// the missing ones created, a few at a time. One result per action, in order.
    fn create_queues(&self, actions: &[Action]) -> Vec<Result<Value, String>> {
        let mut results: Vec<Option<Result<Value, String>>> = vec![None; actions.len()];
        // the actions of one scope together, in their order
        let mut scopes: Vec<(
            QueueScope,
            ApiTarget,
            Vec<usize>,
            Rc<crate::clearml::Client>,
        )> = Vec::new();
        for (i, a) in actions.iter().enumerate() {
            let Action::ClearmlCreateQueue {
                impersonate_as,
                api,
                ..
            } = a
            else {
                results[i] = Some(self.execute(a));
                continue;
            };
            let client = match self.clearml(api) {
                Ok(c) => c,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let scope = (
                client.api_url().to_string(),
                expose(&api.key),
                impersonate_as.clone(),
            );
            match scopes
                .iter_mut()
                .find(|(s, _, _, c)| *s == scope && Rc::ptr_eq(c, &client))
            {
                Some((_, _, idx, _)) => idx.push(i),
                None => scopes.push((scope, api.clone(), vec![i], client)),
            }
        }
        for (scope, api, idx, client) in scopes {
            let client = &*client;
            let imp = scope.2.as_deref();
            if !self.queue_index.borrow().contains_key(&scope) {
                match block_on(client.list_queues(imp)) {
                    Ok(index) => {
                        self.queue_index.borrow_mut().insert(scope.clone(), index);
                    }
                    Err(e) => {
                        let msg = api_failure(&e, &api);
                        for i in idx {
                            results[i] = Some(Err(msg.clone()));
                        }
                        continue;
                    }
                }
            }
            let mut indexes = self.queue_index.borrow_mut();
            let index = indexes.get_mut(&scope).expect("listed");
            let jobs: Vec<_> = idx
                .iter()
                .map(|&i| {
                    let Action::ClearmlCreateQueue { name, tags, .. } = &actions[i] else {
                        unreachable!("only queue creations are grouped")
                    };
                    let known = index.get(name).cloned();
                    async move {
                        let r = client
                            .create_queue(name, tags, imp, Some(known.as_deref()))
                            .await;
                        (i, name, r)
                    }
                })
                .collect();
            use futures_util::StreamExt as _;
            let done: Vec<_> = block_on(
                futures_util::stream::iter(jobs)
                    .buffered(crate::clearml::QUEUE_CONCURRENCY)
                    .collect::<Vec<_>>(),
            );
            for (i, name, r) in done {
                results[i] = Some(match r {
                    Ok((id, created)) => {
                        crate::ui::info(&format!(
                            "queue {name}: {} ({id})",
                            if created { "created" } else { "already there" }
                        ));
                        index.insert(name.clone(), id.clone());
                        Ok(Value::Str(id))
                    }
                    Err(e) => Err(api_failure(&e, &api)),
                });
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every action answered"))
            .collect()
    }

    pub(crate) fn helm(&self) -> Result<&Helm, String> {
        if self.helm.get().is_none() {
            let helm = Helm::new(self.helm_flag.as_deref(), self.target.clone())?;
            // a branch of a parallel group may have found it meanwhile: either is the same
            let _ = self.helm.set(helm);
        }
        Ok(self.helm.get().expect("found"))
    }

    pub(crate) fn kube(&self) -> Result<&Kube, String> {
        if self.kube.get().is_none() {
            let kube = block_on(Kube::connect(&self.target))?;
            let _ = self.kube.set(kube);
        }
        Ok(self.kube.get().expect("connected"))
    }
}

/// A chart step's diff, on the primary output.
fn print_diff(comparison: &crate::chartdiff::Comparison, spec: &ChartInstall) {
    let diff = comparison.diff(&spec.release, &spec.namespace);
    if diff.is_empty() {
        crate::ui::print(&format!(
            "diff {}/{}: no change",
            spec.namespace, spec.release
        ));
    } else {
        crate::ui::print(diff.trim_end());
    }
}

/// A path made absolute, so the vendor's scripts may run in another directory.
fn absolute(p: &str) -> Result<PathBuf, String> {
    std::fs::canonicalize(p).map_err(|e| format!("{p}: {e}"))
}

/// An API error, saying which credentials an endpoint rejected.
pub(crate) fn api_failure(e: &crate::clearml::ApiError, api: &ApiTarget) -> String {
    match e.code {
        Some((401, _)) => {
            let key = expose(&api.key);
            let shown: String = key.chars().take(4).collect();
            format!(
                "{e}: the credentials with the access key {shown}… were rejected by the endpoint {} of {}",
                e.endpoint, api.api_url
            )
        }
        _ => e.to_string(),
    }
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    crate::runtime::tokio_handle()
        .expect("the async runtime is started in main")
        .block_on(f)
}

fn expose(v: &Value) -> String {
    match v {
        Value::Secret(s) => s.expose().to_string(),
        Value::Str(s) => s.clone(),
        other => other.reveal().to_string(),
    }
}

/// Turn a Secret manifest's `stringData` (which may hold secrets) into base64 `data`.
fn secret_payload(
    manifest: &Value,
) -> Option<(String, String, std::collections::BTreeMap<String, String>)> {
    let ns = manifest.at_path("metadata.namespace");
    let name = manifest.at_path("metadata.name");
    let Some(Value::Map(data)) = manifest.at_path("stringData") else {
        return None;
    };
    match (ns, name) {
        (Some(Value::Str(ns)), Some(Value::Str(name))) => Some((
            ns.clone(),
            name.clone(),
            data.iter().map(|(k, v)| (k.clone(), expose(v))).collect(),
        )),
        _ => None,
    }
}

impl Executor for LiveExecutor {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn execute_many(&self, actions: &[Action]) -> Vec<Result<Value, String>> {
        if actions
            .iter()
            .all(|a| matches!(a, Action::ClearmlCreateQueue { .. }))
        {
            return self.create_queues(actions);
        }
        actions.iter().map(|a| self.execute(a)).collect()
    }

    fn execute(&self, action: &Action) -> Result<Value, String> {
        match action {
            Action::HelmRepoAdd {
                name,
                url,
                username,
                password,
            } => {
                let url = match &self.target.chart_repo_url {
                    Some(standin) => {
                        crate::ui::info(&format!(
                            "sandbox: the repository {name} ({url}) is served by the sandbox's stand-in charts"
                        ));
                        standin
                    }
                    None => url,
                };
                let username = username.as_ref().map(expose);
                let added =
                    self.helm()?
                        .repo_add(name, url, username.as_deref(), password.as_ref())?;
                if !added {
                    crate::ui::info(&format!(
                        "helm repository {name}: already added with the same URL and credentials"
                    ));
                }
                Ok(Value::Null)
            }
            Action::HelmRepoUpdate { names } => {
                self.helm()?.repo_update(names);
                crate::ui::info(
                    "helm repo update: each index is fetched before a chart from it is first needed (not again if this run fetched it)",
                );
                Ok(Value::Null)
            }
            Action::HelmRegistryLogin {
                host,
                username,
                password,
                plain_http,
            } => {
                let (host, plain_http) = match &self.target.oci_registry {
                    Some(standin) => {
                        crate::ui::info(&format!(
                            "sandbox: the registry {host} is served by the sandbox's OCI registry {standin}"
                        ));
                        (standin.clone(), true)
                    }
                    None => (host.clone(), *plain_http),
                };
                self.helm()?
                    .registry_login(&host, &expose(username), password, plain_http)?;
                Ok(Value::Null)
            }
            Action::HelmPush {
                archive,
                registry,
                plain_http,
                ..
            } => {
                let (registry, plain_http) = self.oci_reference(registry, *plain_http);
                self.helm()?
                    .push(std::path::Path::new(archive), &registry, plain_http)?;
                Ok(Value::Null)
            }
            Action::HelmUpgradeInstall(spec) if spec.chart.starts_with("oci://") => {
                let (chart, plain_http) = self.oci_reference(&spec.chart, spec.plain_http);
                let spec = ChartInstall {
                    chart,
                    plain_http,
                    ..spec.clone()
                };
                self.install_chart(&spec).map_err(|e| {
                    if self.target.oci_registry.is_some() {
                        format!(
                            "{e}\nThe sandbox's OCI registry holds only the charts pushed to it in this run \
                             (an air-gapped site's airgap.chart_registry), not the vendor's: \
                             rehearse the vendor's charts with generation: repo"
                        )
                    } else {
                        e
                    }
                })
            }
            Action::HelmUpgradeInstall(spec) => self.install_chart(spec),
            Action::KubeDelete {
                api_version,
                object_kind,
                namespace,
                name,
            } => {
                let gone = block_on(self.kube()?.delete(
                    api_version,
                    object_kind,
                    namespace.as_deref(),
                    name,
                ))?;
                Ok(Value::Bool(gone))
            }
            Action::HelmUninstall {
                release,
                namespace,
                wait,
            } => {
                if self.release_record(release, namespace)?.is_none() {
                    return Ok(Value::Bool(false));
                }
                let mut args = strings(&["uninstall", release, "-n", namespace]);
                if *wait {
                    args.push("--wait".into());
                }
                self.helm()?.run(&args, None)?;
                Ok(Value::Bool(true))
            }
            Action::KubeEnsureNamespace { name } => {
                let stop = crate::runtime::interrupt_flag();
                block_on(self.kube()?.ensure_namespace(
                    name,
                    crate::kube::NAMESPACE_PATIENCE,
                    &stop,
                ))?;
                Ok(Value::Null)
            }
            Action::KubeApply {
                namespace,
                manifest,
            } => {
                let json = match secret_payload(manifest) {
                    Some((ns, name, data)) => secret_manifest(&ns, &name, &data),
                    None => manifest.reveal(),
                };
                let applied = block_on(self.kube()?.apply(namespace.as_deref(), &json))?;
                Ok(Value::Str(
                    applied["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ))
            }
            Action::ClearmlCreateQueue { .. } => self
                .create_queues(std::slice::from_ref(action))
                .pop()
                .expect("one result per action"),
            Action::ClearmlDeleteQueue {
                name,
                impersonate_as,
                api,
            } => {
                let client = self.clearml(api)?;
                let scope = (
                    client.api_url().to_string(),
                    expose(&api.key),
                    impersonate_as.clone(),
                );
                let deleted = block_on(client.delete_queue(name, impersonate_as.as_deref()))
                    .map_err(|e| api_failure(&e, api))?;
                if let Some(index) = self.queue_index.borrow_mut().get_mut(&scope) {
                    index.remove(name);
                }
                Ok(Value::Bool(deleted))
            }
            Action::AppsDownload { url, dir, sha256 } => {
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let zip = dir.join(crate::apps_package::PACKAGE);
                let fresh = match sha256 {
                    Some(want) if zip.is_file() => {
                        !crate::apps_package::sha256_file(&zip)?.eq_ignore_ascii_case(want)
                    }
                    _ => !zip.is_file(),
                };
                if fresh {
                    block_on(crate::apps_package::download(
                        &expose(url),
                        &zip,
                        sha256.as_deref(),
                    ))?;
                } else {
                    crate::ui::info(&format!("download: {} is there already", zip.display()));
                }
                let files = crate::apps_package::extract(&zip, &dir)?;
                crate::ui::info(&format!(
                    "download: extracted {} new files into {}",
                    files.len(),
                    dir.display()
                ));
                Ok(Value::List(
                    files
                        .iter()
                        .map(|f| Value::Str(f.display().to_string()))
                        .collect(),
                ))
            }
            Action::AppsConvertRegistry {
                apps_dir,
                target_repo,
                generation,
                script,
                images_file,
                mirror_file,
                ..
            } => {
                crate::apps_package::app_zips(std::path::Path::new(apps_dir))?;
                let dir = absolute(apps_dir)?;
                let script = script.as_ref().map(PathBuf::from).or_else(|| {
                    Some(dir.join("convert_image_registry.py")).filter(|p| p.is_file())
                });
                let moves = match script {
                    Some(script) => {
                        let flag = if generation == "oci" {
                            "--artifactory"
                        } else {
                            "--repo"
                        };
                        let args = vec![
                            "--apps-dir".to_string(),
                            dir.display().to_string(),
                            flag.to_string(),
                            target_repo.clone(),
                        ];
                        crate::ui::info(&format!("convert: running {}", script.display()));
                        let python = crate::apps_package::python()?;
                        crate::apps_package::convert_with_vendor(&dir, target_repo, || {
                            let out = crate::apps_package::run_vendor(
                                &python,
                                &script,
                                &args,
                                &[],
                                &dir,
                            )?;
                            Ok(crate::apps_package::parse_vendor_output(&out))
                        })?
                    }
                    None => {
                        crate::ui::info(
                            "convert: no convert_image_registry.py in the package: converting natively",
                        );
                        crate::apps_package::convert_native(
                            &dir,
                            target_repo,
                            &crate::apps_package::default_image_pattern(),
                        )?
                    }
                };
                if let Some(f) = images_file {
                    let text: String = moves
                        .iter()
                        .map(|m| format!("{} {}\n", m.image, m.target))
                        .collect();
                    crate::fsutil::write_atomic(std::path::Path::new(f), text.as_bytes())?;
                    crate::apps_package::checkpoint("images file written");
                }
                if let Some(f) = mirror_file {
                    crate::fsutil::write_atomic(
                        std::path::Path::new(f),
                        crate::apps_package::mirror_commands(&moves).as_bytes(),
                    )?;
                }
                for m in &moves {
                    crate::ui::info(&format!(
                        "convert: make sure {} is in the registry as {}",
                        m.image, m.target
                    ));
                }
                Ok(Value::from_json(&serde_json::Value::Array(
                    moves
                        .iter()
                        .map(|m| serde_json::json!({"image": m.image, "target": m.target}))
                        .collect(),
                )))
            }
            Action::AppsUpload {
                source,
                generation,
                script,
                api,
            } => {
                let python = crate::apps_package::python()?;
                // the API answers and the credentials are valid, before anything is uploaded
                let client = self.clearml(api)?;
                block_on(client.ping()).map_err(|e| api_failure(&e, api))?;
                let identity = block_on(client.whoami());
                match identity {
                    Ok(_) => {}
                    // a system identity has no user record but valid credentials
                    Err(e) if e.is(400, 300) => {}
                    Err(e) => return Err(api_failure(&e, api)),
                }
                let api_url = self
                    .target
                    .clearml_api_url
                    .clone()
                    .unwrap_or_else(|| api.api_url.clone());
                let source: Vec<String> = source
                    .iter()
                    .map(|s| absolute(s).map(|p| p.display().to_string()))
                    .collect::<Result<_, _>>()?;
                let first = PathBuf::from(&source[0]);
                let is_dir = source.len() == 1 && first.is_dir();
                let base = if is_dir {
                    first.clone()
                } else {
                    first.parent().map(PathBuf::from).unwrap_or_default()
                };
                let script = script
                    .as_ref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| base.join("upload_apps.py"));
                if !script.is_file() {
                    return Err(format!(
                        "{} is missing: the applications package brings upload_apps.py; give it with `script`",
                        script.display()
                    ));
                }
                let mut args = vec!["--host".to_string(), api_url];
                if generation == "oci" {
                    args.extend([
                        "--key".into(),
                        "{secret:1}".into(),
                        "--secret".into(),
                        "{secret:0}".into(),
                        "--command".into(),
                        "upload".into(),
                    ]);
                } else {
                    args.extend([
                        "--user".into(),
                        "{secret:1}".into(),
                        "--password".into(),
                        "{secret:0}".into(),
                    ]);
                }
                if is_dir {
                    args.extend(["--dir".into(), first.display().to_string(), "-ml".into()]);
                } else {
                    args.push("--files".into());
                    args.extend(source.iter().cloned());
                }
                let out = crate::apps_package::run_vendor(
                    &python,
                    &script,
                    &args,
                    // the key (or user) too: an access key is a credential
                    &[api.secret.expose(), &expose(&api.key)],
                    &base,
                )?;
                for line in out.lines().filter(|l| !l.trim().is_empty()) {
                    crate::ui::info(&format!("upload: {line}"));
                }
                Ok(Value::Null)
            }
            other => Err(format!(
                "this build cannot carry out {} live yet; run with --dry-run to see the plan",
                other.kind()
            )),
        }
    }

    fn query(&self, query: &Query) -> Result<Value, String> {
        match query {
            // the release record through the Kubernetes API: no helm process; a pending one
            // with `recovery`, what the chart step will do about it (`()`: it will refuse)
            Query::HelmStatus { release, namespace } => {
                let Some(rec) = self.release(release, namespace)? else {
                    return Ok(Value::Null);
                };
                let mut record = rec.record.clone();
                if rec.state().starts_with("pending-") {
                    record["recovery"] = crate::recover::decide(
                        release,
                        namespace,
                        &rec,
                        self.target.recover_pending,
                    )
                    .map(|r| serde_json::Value::from(r.describe(release, namespace)))
                    .unwrap_or_default();
                }
                Ok(Value::from_json(&record))
            }
            Query::HelmList { namespace } => {
                Ok(Value::from_json(&self.helm()?.list(namespace.as_deref())?))
            }
            Query::GetSecret { namespace, name } => {
                let data = block_on(self.kube()?.get_secret(namespace, name))?;
                Ok(match data {
                    None => Value::Null,
                    Some(d) => Value::Map(
                        d.into_iter()
                            .map(|(k, v)| (k, Value::Secret(Secret::new(v))))
                            .collect(),
                    ),
                })
            }
            Query::KubeVersion => Ok(Value::Str(block_on(self.kube()?.version())?)),
            Query::RouterAddress => {
                let (address, source) = block_on(self.kube()?.router_address())?;
                Ok(Value::from_json(
                    &serde_json::json!({"address": address, "source": source}),
                ))
            }
            Query::Ops(q) => self.ops_query(q),
            Query::ClearmlPing(api) => {
                let client = self.clearml(api)?;
                block_on(client.ping()).map_err(|e| api_failure(&e, api))?;
                Ok(Value::Bool(true))
            }
            Query::ClearmlWhoami(api) => {
                let client = self.clearml(api)?;
                let user = block_on(client.whoami()).map_err(|e| api_failure(&e, api))?;
                Ok(Value::from_json(&user))
            }
            Query::ClearmlGetQueue {
                api,
                name,
                impersonate_as,
            } => {
                let client = self.clearml(api)?;
                let q = block_on(client.find_queue(name, impersonate_as.as_deref()))
                    .map_err(|e| api_failure(&e, api))?;
                Ok(q.map(|q| Value::from_json(&q)).unwrap_or(Value::Null))
            }
        }
    }
}
