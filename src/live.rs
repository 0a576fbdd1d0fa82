//! The live executor (also the sandbox's, pointed at the simulators): each action carried out
//! by the domain that owns it. A kind whose live side this build does not have yet is refused
//! before anything is done, never faked.

use std::path::PathBuf;

use crate::action::{Action, ApiTarget, Executor, Mode, Query, Target};
use crate::helm::{Helm, strings};
use crate::kube::{Kube, secret_manifest};
use crate::secret::Secret;
use crate::value::Value;

pub struct LiveExecutor {
    pub mode: Mode,
    pub target: Target,
    helm_flag: Option<PathBuf>,
    helm: Option<Helm>,
    kube: Option<Kube>,
    /// ClearML API clients by URL and key.
    clients: std::collections::HashMap<(String, String), crate::clearml::Client>,
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
            clients: Default::default(),
        };
        if require_helm {
            live.helm()?;
        }
        Ok(live)
    }

    /// Before the first step: the kubeconfig is readable, the context exists and the API
    /// server answers. The error names the server and the context.
    pub fn check_connection(&mut self) -> Result<(), String> {
        let version = block_on(self.kube()?.check())?;
        crate::ui::info(&format!("Kubernetes API answers: {version}"));
        Ok(())
    }

    /// The client for an API target; in the sandbox, pointed at the simulator instead.
    pub(crate) fn clearml(&mut self, api: &ApiTarget) -> Result<&crate::clearml::Client, String> {
        let url = match &self.target.clearml_api_url {
            Some(sim) => sim.clone(),
            None => api.api_url.clone(),
        };
        let key = expose(&api.key);
        let id = (url.clone(), key.clone());
        if !self.clients.contains_key(&id) {
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
            self.clients.insert(id.clone(), client);
        }
        Ok(self.clients.get(&id).expect("inserted"))
    }

    pub(crate) fn helm(&mut self) -> Result<&Helm, String> {
        if self.helm.is_none() {
            self.helm = Some(Helm::new(self.helm_flag.as_deref(), self.target.clone())?);
        }
        Ok(self.helm.as_ref().expect("found"))
    }

    pub(crate) fn kube(&mut self) -> Result<&Kube, String> {
        if self.kube.is_none() {
            let target = self.target.clone();
            self.kube = Some(block_on(Kube::connect(&target))?);
        }
        Ok(self.kube.as_ref().expect("connected"))
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
            Action::HelmUpgradeInstall(spec) => {
                let result = match self.helm()?.upgrade_install(spec) {
                    Ok(r) => r,
                    // a failed wait: the diagnosis first, then the release's state and choices
                    Err(e) if spec.wait => return Err(self.explain_failed_wait(spec, e)),
                    Err(e) => return Err(e),
                };
                Ok(Value::from_json(&result))
            }
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
            Action::ClearmlCreateQueue {
                name,
                impersonate_as,
                tags,
                api,
            } => {
                let client = self.clearml(api)?;
                let (id, created) =
                    block_on(client.create_queue(name, tags, impersonate_as.as_deref()))
                        .map_err(|e| api_failure(&e, api))?;
                crate::ui::info(&format!(
                    "queue {name}: {} ({id})",
                    if created { "created" } else { "already there" }
                ));
                Ok(Value::Str(id))
            }
            Action::ClearmlDeleteQueue {
                name,
                impersonate_as,
                api,
            } => {
                let client = self.clearml(api)?;
                let deleted = block_on(client.delete_queue(name, impersonate_as.as_deref()))
                    .map_err(|e| api_failure(&e, api))?;
                Ok(Value::Bool(deleted))
            }
            Action::AppsDownload { url, dir, sha256 } => {
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let zip = dir.join("apps.zip");
                let fresh = match sha256 {
                    Some(want) if zip.is_file() => {
                        !crate::apps::sha256_file(&zip)?.eq_ignore_ascii_case(want)
                    }
                    _ => !zip.is_file(),
                };
                if fresh {
                    block_on(crate::apps::download(&expose(url), &zip, sha256.as_deref()))?;
                } else {
                    crate::ui::info(&format!("download: {} is there already", zip.display()));
                }
                let files = crate::apps::extract(&zip, &dir)?;
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
                crate::apps::app_zips(std::path::Path::new(apps_dir))?;
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
                        let python = crate::apps::python()?;
                        crate::apps::convert_with_vendor(&dir, target_repo, || {
                            let out = crate::apps::run_vendor(&python, &script, &args, &[], &dir)?;
                            Ok(crate::apps::parse_vendor_output(&out))
                        })?
                    }
                    None => {
                        crate::ui::info(
                            "convert: no convert_image_registry.py in the package: converting natively",
                        );
                        crate::apps::convert_native(
                            &dir,
                            target_repo,
                            &crate::apps::default_image_pattern(),
                        )?
                    }
                };
                if let Some(f) = images_file {
                    let text: String = moves
                        .iter()
                        .map(|m| format!("{} {}\n", m.image, m.target))
                        .collect();
                    crate::fsutil::write_atomic(std::path::Path::new(f), text.as_bytes())?;
                    crate::apps::checkpoint("images file written");
                }
                if let Some(f) = mirror_file {
                    crate::fsutil::write_atomic(
                        std::path::Path::new(f),
                        crate::apps::mirror_commands(&moves).as_bytes(),
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
                let python = crate::apps::python()?;
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
                let out = crate::apps::run_vendor(
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
