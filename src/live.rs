//! The live executor (also the sandbox's, pointed at the simulators): each action carried out
//! by the domain that owns it. A kind whose live side this build does not have yet is refused
//! before anything is done, never faked.

use std::path::PathBuf;

use crate::action::{Action, Executor, Mode, Query, Target};
use crate::helm::{Helm, UpgradeInstall, strings};
use crate::kube::{Kube, secret_manifest};
use crate::secret::Secret;
use crate::value::Value;

pub struct LiveExecutor {
    pub mode: Mode,
    pub target: Target,
    helm_flag: Option<PathBuf>,
    helm: Option<Helm>,
    kube: Option<Kube>,
}

impl LiveExecutor {
    /// With `require_helm`, helm is found now, so that a missing helm is reported before the
    /// first action; otherwise when a helm step first needs it.
    pub fn new(
        mode: Mode,
        target: Target,
        helm_flag: Option<PathBuf>,
        require_helm: bool,
    ) -> Result<LiveExecutor, String> {
        let mut live = LiveExecutor {
            mode,
            target,
            helm_flag,
            helm: None,
            kube: None,
        };
        if require_helm {
            live.helm()?;
        }
        Ok(live)
    }

    fn helm(&mut self) -> Result<&Helm, String> {
        if self.helm.is_none() {
            self.helm = Some(Helm::new(self.helm_flag.as_deref(), self.target.clone())?);
        }
        Ok(self.helm.as_ref().expect("found"))
    }

    fn kube(&mut self) -> Result<&Kube, String> {
        if self.kube.is_none() {
            let target = self.target.clone();
            self.kube = Some(block_on(Kube::connect(&target))?);
        }
        Ok(self.kube.as_ref().expect("connected"))
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
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

    fn execute(&mut self, action: &Action) -> Result<Value, String> {
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
                let mut args = strings(&["repo", "add", name, url, "--force-update"]);
                if let Some(u) = username {
                    args.extend(["--username".to_string(), expose(u)]);
                }
                let pw = password.as_ref().map(Secret::expose);
                if pw.is_some() {
                    args.push("--password-stdin".into());
                }
                self.helm()?.run(&args, pw)?;
                Ok(Value::Null)
            }
            Action::HelmRepoUpdate { names } => {
                let mut args = strings(&["repo", "update"]);
                args.extend(names.iter().cloned());
                self.helm()?.run(&args, None)?;
                Ok(Value::Null)
            }
            Action::HelmRegistryLogin { .. } if self.mode == Mode::Sandbox => Err(
                "the sandbox serves charts from a Helm repository only, not from an OCI registry: \
                 rehearse with generation: repo"
                    .into(),
            ),
            Action::HelmRegistryLogin {
                host,
                username,
                password,
            } => {
                let args = vec![
                    "registry".into(),
                    "login".into(),
                    host.clone(),
                    "--username".into(),
                    expose(username),
                    "--password-stdin".into(),
                ];
                self.helm()?.run(&args, Some(password.expose()))?;
                Ok(Value::Null)
            }
            Action::HelmUpgradeInstall {
                release,
                chart,
                namespace,
                version,
                create_namespace,
                values,
                values_files,
                wait,
                timeout,
                rollback_on_failure,
            } => {
                let result = self.helm()?.upgrade_install(&UpgradeInstall {
                    release: release.clone(),
                    chart: chart.clone(),
                    namespace: namespace.clone(),
                    version: version.clone(),
                    create_namespace: *create_namespace,
                    values: values.reveal(),
                    values_files: values_files.clone(),
                    wait: *wait,
                    timeout: timeout.clone(),
                    rollback_on_failure: *rollback_on_failure,
                })?;
                Ok(Value::from_json(&result))
            }
            Action::HelmUninstall {
                release,
                namespace,
                wait,
            } => {
                if self.helm()?.status(release, namespace)?.is_none() {
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
                block_on(self.kube()?.ensure_namespace(name))?;
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
            other => Err(format!(
                "this build cannot carry out {} live yet; run with --dry-run to see the plan",
                other.kind()
            )),
        }
    }

    fn query(&mut self, query: &Query) -> Result<Value, String> {
        match query {
            Query::HelmStatus { release, namespace } => Ok(self
                .helm()?
                .status(release, namespace)?
                .map(|j| Value::from_json(&j))
                .unwrap_or(Value::Null)),
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
        }
    }
}
