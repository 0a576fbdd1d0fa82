//! The sandbox: simulators embedded in the binary, so that the live code paths (real helm,
//! kube-rs, the ClearML API client) run end to end offline, in the project's tests and for
//! users as `--sandbox` and `clearml-script sandbox`.

pub mod charts;
pub mod clearml;
pub mod faults;
pub mod kube;
pub mod oci;
pub mod ownership;
pub mod protobuf;
pub mod resources;
pub mod state;
pub mod store;
pub mod validation;

use std::path::PathBuf;

/// A listener on an ephemeral port of 127.0.0.1, and its address.
pub(crate) async fn bind() -> std::io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A listener that answers TLS: each connection's handshake runs in a task of its own (a
/// client that stalls in it holds up no other), and only connections that completed it are
/// handed to the server.
pub(crate) struct TlsListener {
    accepted: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    addr: std::net::SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(
        listener: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> TlsListener {
        let addr = listener.local_addr().expect("bound");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                if tx.is_closed() {
                    break;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    );
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { accepted: rx, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // the accepting task ended: no more connections, ever
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// A request's query parameters, decoded (the Kubernetes API's and the OCI registry's).
fn query_of(uri: &axum::http::Uri) -> std::collections::HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Serve `app` on the listener until the returned sender is dropped or fired.
pub(crate) fn serve<L: axum::serve::Listener>(
    listener: L,
    app: axum::Router,
) -> tokio::sync::oneshot::Sender<()>
where
    L::Addr: std::fmt::Debug,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    tx
}

/// Both simulators, running, with the kubeconfig written for them.
pub struct Sandbox {
    pub kube: kube::KubeServer,
    pub clearml: clearml::ClearmlServer,
    /// The OCI registry that stands in for every chart registry (`oci://…`) of a run.
    pub registry: oci::OciServer,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    /// Where the simulated cluster is kept between runs (`--sandbox-state`), saved on drop.
    /// `--sandbox-state DIR`: saved there when the sandbox ends.
    state_dir: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(dir) = self.state_dir.clone()
            && let Err(e) = self.save(&dir)
        {
            crate::ui::warn(&format!(
                "the sandbox state could not be saved to {}: {e}",
                dir.join(state::STATE_FILE).display()
            ));
        }
    }
}

impl Sandbox {
    /// Start the simulators (and the OCI registry) on 127.0.0.1 and write the kubeconfig into `dir` (a new temporary
    /// directory when `None`). One set of faults serves both: a fault's path names the
    /// simulator it hits (`/api/...` or `/queues.create`). Must run inside a tokio runtime.
    pub async fn start(dir: Option<PathBuf>, faults: faults::Faults) -> std::io::Result<Sandbox> {
        let kube = kube::start(faults.clone()).await?;
        let registry = oci::start(faults.clone()).await?;
        let clearml = clearml::start(clearml::ClearmlState::new(faults)).await?;
        let (dir_path, guard) = match dir {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                (d, None)
            }
            None => {
                // inside the run's private directory, so a killed run's sandbox (its
                // kubeconfig and helm configuration) is removed by the next run
                let parent = crate::process::run_dir().map_err(std::io::Error::other)?;
                let t = tempfile::Builder::new()
                    .prefix("clearml-sandbox-")
                    .tempdir_in(parent)?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let kubeconfig = dir_path.join("kubeconfig");
        // it holds the API's bearer token
        crate::fsutil::write_private(&kubeconfig, &kube.kubeconfig())?;
        Ok(Sandbox {
            kube,
            clearml,
            registry,
            kubeconfig,
            dir: dir_path,
            state_dir: None,
            _dir: guard,
        })
    }

    /// Keep the simulated cluster in `dir` between runs: restore what an earlier run left
    /// there, and save it again when this sandbox ends (also after a failed run). The state holds
    /// what the cluster holds, Secrets and workloads' environments included, as a real cluster's
    /// store does: it is encrypted at rest with the sandbox's own key ([`state`]), and both files
    /// are readable by their owner only. ClearML credentials are not kept; they are seeded again
    /// from the site values.
    ///
    /// A state that cannot be read is an error naming the file, and is left untouched: it is
    /// only ever replaced after it was read, atomically.
    pub fn keep_state(&mut self, dir: &std::path::Path) -> Result<bool, String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create the sandbox state directory {}: {e}",
                dir.display()
            )
        })?;
        let path = dir.join(state::STATE_FILE);
        let unreadable = |e: String| {
            format!(
                "the sandbox state {} cannot be read: {e}; it was left as it is: move it away to start a new cluster",
                path.display()
            )
        };
        let Some(snap) = state::read(dir).map_err(unreadable)? else {
            self.state_dir = Some(dir.to_path_buf());
            return Ok(false);
        };
        self.kube
            .store
            .restore(&snap["kubernetes"])
            .map_err(unreadable)?;
        self.clearml
            .state
            .restore(&snap["clearml"])
            .map_err(unreadable)?;
        // saved on drop from here on, and only now: an unreadable state is never overwritten
        self.state_dir = Some(dir.to_path_buf());
        Ok(true)
    }

    /// Write the state, encrypted, atomically (a 0600 temporary file beside it, synced, renamed
    /// over it), so a kill during the save leaves the old state or the new.
    fn save(&self, dir: &std::path::Path) -> Result<(), String> {
        let snap = serde_json::json!({
            "kubernetes": self.kube.store.snapshot(),
            "clearml": self.clearml.state.snapshot(),
        });
        state::write(dir, &snap)
    }
}

impl Sandbox {
    /// Seed the ClearML simulator from the site values, so that a playbook's credentials work
    /// against it: every map holding a key/secret pair (`apiserverKey`/`apiserverSecret`,
    /// `key`/`secret`, `user_key`/`user_secret`, …) becomes credentials of a user of the default
    /// company, with the role `system` under a `supervisor` map and `admin` elsewhere; each entry
    /// of a `fixed_users` list becomes a fixed user, and so does a map's `user` with its
    /// `password` (the applications' upload, `apps.user`), an admin. Answers with what was seeded, for the log.
    pub fn seed_from_site(&self, site: &crate::value::Value) -> Vec<String> {
        use crate::value::Value;
        let mut seeded = Vec::new();
        // the site's chart registry (`airgap.chart_registry`): its credentials are the sandbox
        // registry's, which then refuses a request without them
        if let (Some(Value::Str(user)), Some(pw)) = (
            site.at_path("airgap.chart_registry_username"),
            site.at_path("airgap.chart_registry_password"),
        ) {
            let pw = match pw {
                Value::Secret(s) => Some(s.expose().to_string()),
                Value::Str(s) => Some(s.clone()),
                _ => None,
            };
            if let Some(pw) = pw {
                self.registry.add_credentials(user, &pw);
                seeded.push(format!(
                    "registry user `{user}` (`airgap.chart_registry_username`)"
                ));
            }
        }
        let state = &self.clearml.state;
        site.walk_maps("", &mut |path, map| {
            for (k, v) in map {
                let norm = k.to_ascii_lowercase().replace(['_', '-'], "");
                let Some(prefix) = norm.strip_suffix("key") else {
                    continue;
                };
                let Some((_, sv)) = map.iter().find(|(n, _)| {
                    n.to_ascii_lowercase().replace(['_', '-'], "") == format!("{prefix}secret")
                }) else {
                    continue;
                };
                let text = |v: &Value| match v {
                    Value::Str(s) => Some(s.clone()),
                    Value::Secret(s) => Some(s.expose().to_string()),
                    _ => None,
                };
                let (Some(key), Some(secret)) = (text(v), text(sv)) else {
                    continue;
                };
                let system = path.split('.').any(|p| p == "supervisor");
                let role = if system {
                    clearml::Role::System
                } else {
                    clearml::Role::Admin
                };
                let at = crate::value::join_path(path, k);
                // the user a kept state has already: seeded once, whatever the number of runs
                let id = state
                    .user_named(&at, clearml::DEFAULT_COMPANY)
                    .unwrap_or_else(|| {
                        let id = store::random_hex(16);
                        state.add_user(&id, &at, clearml::DEFAULT_COMPANY, role.clone());
                        id
                    });
                state.add_credentials(&key, &secret, &id);
                seeded.push(format!("credentials at `{at}` ({})", role.as_str()));
            }
            // a user and password (the applications' upload, `apps.user`/`apps.password`): a
            // fixed user, admin, as the upload needs
            if let (Some(Value::Str(name)), Some(pw)) = (map.get("user"), map.get("password")) {
                let pw = match pw {
                    Value::Secret(s) => Some(s.expose().to_string()),
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                };
                if let Some(pw) = pw {
                    state.add_fixed_user(name, &pw, clearml::DEFAULT_COMPANY, true);
                    seeded.push(format!(
                        "fixed user `{name}` (`{}`)",
                        crate::value::join_path(path, "user")
                    ));
                }
            }
            if let Some(Value::List(users)) = map.get("fixed_users") {
                for u in users {
                    if let (Some(Value::Str(name)), Some(pw)) =
                        (u.at_path("username"), u.at_path("password"))
                    {
                        let pw = match pw {
                            Value::Secret(s) => s.expose().to_string(),
                            Value::Str(s) => s.clone(),
                            _ => continue,
                        };
                        let admin = matches!(u.at_path("admin"), Some(Value::Bool(true)));
                        state.add_fixed_user(name, &pw, clearml::DEFAULT_COMPANY, admin);
                        seeded.push(format!("fixed user `{name}`"));
                    }
                }
            }
        });
        seeded
    }

    /// What the cluster holds: helm releases, namespaces, and workloads with their readiness.
    pub fn summary(&self) -> String {
        use serde_json::Value as J;
        let store = &self.kube.store;
        let all = |group: &str, plural: &str| {
            let r = resources::RESOURCES
                .iter()
                .find(|r| r.group == group && r.plural == plural)
                .expect("served");
            store
                .list(
                    r,
                    None,
                    &store::Selector::default(),
                    &store::Selector::default(),
                )
                .0
        };
        let label = |o: &J, k: &str| {
            o["metadata"]["labels"][k]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let mut out = String::from("The sandbox cluster now holds:\n  releases:\n");
        let mut releases: Vec<(String, String, String, String)> = all("", "secrets")
            .iter()
            .filter(|s| label(s, "owner") == "helm")
            .map(|s| {
                (
                    s["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    label(s, "name"),
                    label(s, "version"),
                    label(s, "status"),
                )
            })
            .filter(|r| r.3 != "superseded")
            .collect();
        releases.sort();
        if releases.is_empty() {
            out.push_str("    (none)\n");
        }
        for (ns, name, version, status) in releases {
            out.push_str(&format!("    {ns}/{name} revision {version}: {status}\n"));
        }
        let namespaces: Vec<String> = all("", "namespaces")
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        out.push_str(&format!(
            "  namespaces: {}\n  workloads:\n",
            namespaces.join(", ")
        ));
        let mut any = false;
        for (group, plural, kind) in [
            ("apps", "deployments", "Deployment"),
            ("apps", "statefulsets", "StatefulSet"),
            ("apps", "daemonsets", "DaemonSet"),
            ("batch", "jobs", "Job"),
        ] {
            for o in all(group, plural) {
                any = true;
                let ready = match kind {
                    "Job" => format!(
                        "{} succeeded",
                        o["status"]["succeeded"].as_i64().unwrap_or(0)
                    ),
                    "DaemonSet" => format!(
                        "{}/{} ready",
                        o["status"]["numberReady"].as_i64().unwrap_or(0),
                        o["status"]["desiredNumberScheduled"].as_i64().unwrap_or(0)
                    ),
                    _ => format!(
                        "{}/{} ready",
                        o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                        o["spec"]["replicas"].as_i64().unwrap_or(1)
                    ),
                };
                out.push_str(&format!(
                    "    {kind} {}/{}: {ready}\n",
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap_or("")
                ));
            }
        }
        if !any {
            out.push_str("    (none)\n");
        }
        let asked = self.registry.requests();
        if !asked.is_empty() {
            let held = self.registry.tagged();
            out.push_str(&format!(
                "  OCI registry: {} request(s); it holds {}\n",
                asked.len(),
                if held.is_empty() {
                    "no chart".to_string()
                } else {
                    held.join(", ")
                }
            ));
        }
        if self.kube.chart_repo_off() {
            let reached = self.kube.chart_requests();
            out.push_str(&format!(
                "  chart repository: switched off; {} request(s) reached it{}\n",
                reached.len(),
                if reached.is_empty() {
                    String::new()
                } else {
                    format!(": {}", reached.join(", "))
                }
            ));
        }
        out
    }
}
