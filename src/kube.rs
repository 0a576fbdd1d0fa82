//! The Kubernetes client side (kube-rs), with the same kubeconfig and context as helm.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret as KSecret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use serde_json::{Value as J, json};

use crate::action::Target;

/// The field manager of everything the tool applies.
pub const MANAGER: &str = "clearml-script";

pub struct Kube {
    client: kube::Client,
    context: String,
    server: String,
}

/// The annotation on a pending release record whose helm this tool saw exit.
pub const HELM_EXITED: &str = "clearml-script/helm-exited";

/// A release's latest record and what is known about it (see [`Kube::release`]).
#[derive(Clone, Debug)]
pub struct ReleaseRecord {
    /// The release as `helm status -o json` shows it.
    pub record: J,
    /// The Secret that holds the record.
    pub secret: String,
    /// How old the record is, in seconds.
    pub age_secs: Option<i64>,
    /// The tool's note that the helm which wrote this record has exited.
    pub helm_exited: Option<String>,
    /// Every revision with its state, oldest first.
    pub history: Vec<(i64, String)>,
}

impl ReleaseRecord {
    pub fn state(&self) -> &str {
        self.record["info"]["status"].as_str().unwrap_or_default()
    }

    pub fn revision(&self) -> i64 {
        self.record["version"].as_i64().unwrap_or(0)
    }
}

pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => match terminating_namespace(&s.message) {
            Some(ns) => format!(
                "{} ({} {}); the {}",
                s.message,
                s.code,
                s.reason,
                terminating_advice(ns)
            ),
            None => format!("{} ({} {})", s.message, s.code, s.reason),
        },
        // the deadline's own error names the call and the server; the causes under it (a
        // certificate the CA does not sign, a refused connection) say what to fix
        kube::Error::Service(e) => with_causes(e.to_string(), e.source()),
        other => with_causes(other.to_string(), std::error::Error::source(other)),
    }
}

/// How long a run waits for a namespace being deleted to go before creating it again.
pub const NAMESPACE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// The namespace an answer names as being deleted, refusing new content in it (the API
/// server's answer, or helm quoting it).
pub fn terminating_namespace(message: &str) -> Option<&str> {
    const SAID: &str = "unable to create new content in namespace ";
    let at = message.find(SAID)?;
    message[at + SAID.len()..]
        .split_once(" because it is being terminated")
        .map(|(ns, _)| ns)
        .filter(|ns| !ns.is_empty() && !ns.contains(char::is_whitespace))
}

/// What to do when the namespace `ns` is being deleted (`namespace … is being deleted: …`).
pub fn terminating_advice(ns: &str) -> String {
    format!(
        "namespace {ns} is being deleted: wait until `kubectl get namespace {ns}` no longer \
         finds it, then run again"
    )
}

/// An error's message followed by each cause under it that says more (`client error
/// (Connect): invalid peer certificate: UnknownIssuer`).
fn with_causes(mut text: String, mut cause: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// A kubeconfig, or a colon-separated list of them merged as kubectl merges `KUBECONFIG`: files
/// that do not exist are skipped, the first file to set a value wins.
fn read_merged(list: &std::path::Path) -> Result<Kubeconfig, String> {
    let paths: Vec<std::path::PathBuf> = std::env::split_paths(list.as_os_str())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let existing: Vec<&std::path::PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if existing.is_empty() {
        return Err(format!(
            "cannot read the kubeconfig {}: there is no such file",
            list.display()
        ));
    }
    existing
        .into_iter()
        .try_fold(Kubeconfig::default(), |merged, p| {
            let next = Kubeconfig::read_from(p)
                .map_err(|e| format!("cannot read the kubeconfig {}: {e}", p.display()))?;
            merged
                .merge(next)
                .map_err(|e| format!("cannot merge the kubeconfig {}: {e}", p.display()))
        })
}

/// `text` with the `user:password@` of each URL in it shown as `<redacted>@`: a kubeconfig's
/// server or `proxy-url` may carry a password, which is no registered secret.
fn without_userinfo(text: &str) -> String {
    static USERINFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    USERINFO
        .get_or_init(|| {
            regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#@]+@").expect("regex")
        })
        .replace_all(text, format!("${{1}}{}@", crate::secret::REDACTED))
        .into_owned()
}

/// Is the kubeconfig setting a list of files (`KUBECONFIG=a:b`)?
pub fn is_list(path: &std::path::Path) -> bool {
    std::env::split_paths(path.as_os_str()).count() > 1
}

/// How long one request to the API may take before it is given up (no call of the tool
/// streams, so a longer wait means a stalled API).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long one request to the API may take: `CLEARML_SCRIPT_KUBE_TIMEOUT` (seconds), else 60 s.
/// helm's reads of the cluster are given as long in all ([`crate::helm::Helm::read`]).
pub fn request_timeout() -> Result<std::time::Duration, String> {
    crate::kube_deadline::timeout(REQUEST_TIMEOUT)
}
/// How long the connection check before the first step waits for `/version`.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Kube {
    /// The kubeconfig as kubectl and helm read it: `--kubeconfig`, else every file of the
    /// colon-separated `KUBECONFIG` merged (the first file to set a value wins), else
    /// `~/.kube/config`. Answers it with the context used and its server URL.
    fn kubeconfig(target: &Target) -> Result<(Kubeconfig, String, String), String> {
        let kubeconfig = match &target.kubeconfig {
            Some(p) => read_merged(p)?,
            None => Kubeconfig::read().map_err(|e| {
                format!("cannot read the kubeconfig (KUBECONFIG or ~/.kube/config): {e}")
            })?,
        };
        let context = target
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
            .ok_or("the kubeconfig names no current context: pass --context NAME")?;
        let Some(ctx) = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
        else {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(format!(
                "the kubeconfig has no context `{context}`; it has: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        let server = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.as_deref().map(without_userinfo))
            .ok_or_else(|| {
                format!(
                    "the context `{context}` names the cluster `{}`, which the kubeconfig does not have with a server",
                    ctx.cluster
                )
            })?;
        Ok((kubeconfig, context, server))
    }

    /// Whether connecting runs nothing the kubeconfig names (no `exec` credential plugin, no
    /// auth provider, which may log in or prompt): then the connection check may be made
    /// ahead, while the plan pass runs. False when the kubeconfig cannot be read (the check
    /// then reports it in its turn).
    pub fn connects_without_plugins(target: &Target) -> bool {
        let Ok((kubeconfig, context, _)) = Self::kubeconfig(target) else {
            return false;
        };
        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone());
        let Some(user) = user else {
            return true;
        };
        kubeconfig
            .auth_infos
            .iter()
            .filter(|a| a.name == user)
            .filter_map(|a| a.auth_info.as_ref())
            .all(|a| a.exec.is_none() && a.auth_provider.is_none())
    }

    pub async fn connect(target: &Target) -> Result<Kube, String> {
        let (kubeconfig, context, server) = Self::kubeconfig(target)?;
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| {
                without_userinfo(&format!(
                    "cannot use the kubeconfig (context `{context}`, server {server}): {e}"
                ))
            })?;
        let timeout = request_timeout()?;
        // the deadline below names the call; this is only a backstop behind it
        config.read_timeout = Some(timeout + std::time::Duration::from_secs(5));
        // longer than the check's own deadline, which then names what happened
        config.connect_timeout = Some(CHECK_TIMEOUT * 2);
        let deadline = crate::kube_deadline::DeadlineLayer {
            timeout,
            server: server.as_str().into(),
        };
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| without_userinfo(&format!("cannot create the Kubernetes client: {e}")))?
            .with_layer(&deadline)
            .build();
        Ok(Kube {
            client,
            context,
            server,
        })
    }

    /// The connection check before the first step: the API server answers `/version` in time.
    pub async fn check(&self) -> Result<String, String> {
        let unreachable = |why: String| {
            format!(
                "the Kubernetes API at {} (context `{}`) {why}: check that the cluster is up and the kubeconfig and --context are the right ones",
                self.server, self.context
            )
        };
        match tokio::time::timeout(CHECK_TIMEOUT, self.client.apiserver_version()).await {
            Ok(Ok(v)) => Ok(v.git_version),
            Ok(Err(e)) => Err(unreachable(format!("does not answer: {}", describe(&e)))),
            Err(_) => Err(unreachable(format!(
                "did not answer within {}s",
                CHECK_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The client, for the reads of [`crate::inspect`].
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub async fn version(&self) -> Result<String, String> {
        self.client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .map_err(|e| format!("cannot reach the Kubernetes API: {}", describe(&e)))
    }

    /// Create the namespace if it is missing (server-side apply: a re-run changes nothing). A
    /// namespace being deleted (`Terminating`, as just after `kubectl delete namespace`), in
    /// which nothing can be created, is waited for to go (at most `patience`; `stop` ends the
    /// wait), then created again.
    pub async fn ensure_namespace(
        &self,
        name: &str,
        patience: std::time::Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<J, String> {
        let manifest = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let applied = self.apply(None, &manifest).await?;
        if applied["metadata"]["deletionTimestamp"].is_null() {
            return Ok(applied);
        }
        crate::ui::info(&format!(
            "namespace {name} is being deleted (Terminating): waiting for it to go (at most {} s), \
             then creating it again",
            patience.as_secs()
        ));
        self.namespace_gone(name, patience, stop).await?;
        self.apply(None, &manifest).await
    }

    /// Wait until the namespace `name` is gone: at most `patience`, stopping when `stop` is set.
    async fn namespace_gone(
        &self,
        name: &str,
        patience: std::time::Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<(), String> {
        use k8s_openapi::api::core::v1::Namespace;
        let api: Api<Namespace> = Api::all(self.client.clone());
        let started = std::time::Instant::now();
        loop {
            let there = api
                .get_opt(name)
                .await
                .map_err(|e| format!("cannot read the namespace {name}: {}", describe(&e)))?;
            let Some(ns) = there else {
                return Ok(());
            };
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(format!(
                    "stopped while the namespace {name} was being deleted"
                ));
            }
            if started.elapsed() >= patience {
                // what the namespace controller says it waits for (content left, finalizers)
                let waits: Vec<String> = ns
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.status == "True")
                    .map(|c| format!("{}: {}", c.type_, c.message.unwrap_or_default()))
                    .collect();
                return Err(format!(
                    "the namespace {name} is still being deleted after {} s{}: `kubectl get \
                     namespace {name} -o yaml` shows what it waits for (often a finalizer of \
                     an object or an API that is gone); run again once it is gone",
                    patience.as_secs(),
                    if waits.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", waits.join("; "))
                    }
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The API of one object's kind, looked up through discovery: in `namespace` for a
    /// namespaced kind (which then needs one), cluster-wide otherwise.
    async fn dynamic_api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Api<DynamicObject>, String> {
        match dynamic_api(&self.client, api_version, kind, namespace).await? {
            (_, true) if namespace.is_none() => Err(format!("{kind} {name} needs a namespace")),
            (api, _) => Ok(api),
        }
    }

    /// Server-side apply of any manifest, its kind looked up through discovery.
    pub async fn apply(&self, namespace: Option<&str>, manifest: &J) -> Result<J, String> {
        let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
        let kind = manifest["kind"].as_str().unwrap_or_default();
        let name = manifest["metadata"]["name"]
            .as_str()
            .ok_or("the manifest has no metadata.name")?;
        let api = self.dynamic_api(api_version, kind, namespace, name).await?;
        let params = PatchParams::apply(MANAGER).force();
        let obj = api
            .patch(name, &params, &Patch::Apply(manifest))
            .await
            .map_err(|e| format!("cannot apply {kind} {name}: {}", describe(&e)))?;
        serde_json::to_value(obj).map_err(|e| e.to_string())
    }

    /// Delete one object, its kind looked up through discovery; answers whether it was there.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, String> {
        let api = self.dynamic_api(api_version, kind, namespace, name).await?;
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(format!("cannot delete {kind} {name}: {}", describe(&e))),
        }
    }

    /// The address a router is reached at from outside: the ingress controller's own
    /// LoadBalancer Service (the one the IngressClasses' controllers name), its ingress hostname
    /// or IP; else a node's ExternalIP, else a node's InternalIP; with what it came from. Other
    /// LoadBalancer Services (a monitoring stack's, say) are never taken for it: when the
    /// controller's Service is not clear, the candidates are listed and nothing is guessed.
    pub async fn router_address(&self) -> Result<(String, String), String> {
        use k8s_openapi::api::core::v1::{Node, Service};
        use k8s_openapi::api::networking::v1::IngressClass;
        let classes: Api<IngressClass> = Api::all(self.client.clone());
        let classes = classes
            .list(&Default::default())
            .await
            .map_err(|e| format!("cannot list IngressClasses: {}", describe(&e)))?;
        // `k8s.io/ingress-nginx` gives `ingress-nginx`, `traefik.io/ingress-controller` `traefik`
        let generic = [
            "k8s",
            "kubernetes",
            "ingress-controller",
            "controller",
            "io",
        ];
        let tokens: Vec<String> = classes
            .items
            .iter()
            .filter_map(|c| c.spec.as_ref()?.controller.clone())
            .flat_map(|c| {
                let (domain, path) = c.split_once('/').unwrap_or(("", c.as_str()));
                let first = domain.split('.').next().unwrap_or("").to_string();
                [first, path.rsplit('/').next().unwrap_or("").to_string()]
            })
            .map(|t| t.to_ascii_lowercase())
            .filter(|t| !t.is_empty() && !generic.contains(&t.as_str()))
            .collect();
        let services: Api<Service> = Api::all(self.client.clone());
        let list = services
            .list(&Default::default())
            .await
            .map_err(|e| format!("cannot list Services: {}", describe(&e)))?;
        // (name, address, what the address is, whether the controller's)
        let mut candidates: Vec<(String, String, &str, bool)> = Vec::new();
        for s in list.items {
            let is_lb = s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer");
            let first = s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .and_then(|i| i.first().cloned());
            let (true, Some(first)) = (is_lb, first) else {
                continue;
            };
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let name = s.metadata.name.clone().unwrap_or_default();
            let mut words = vec![ns.to_ascii_lowercase(), name.to_ascii_lowercase()];
            words.extend(
                s.metadata
                    .labels
                    .iter()
                    .flatten()
                    .map(|(_, v)| v.to_ascii_lowercase()),
            );
            let controllers = tokens.iter().any(|t| words.iter().any(|w| w.contains(t)));
            let (address, what) = match (&first.hostname, &first.ip) {
                (Some(h), _) => (h.clone(), "hostname"),
                (None, Some(ip)) => (ip.clone(), "IP"),
                _ => continue,
            };
            candidates.push((format!("{ns}/{name}"), address, what, controllers));
        }
        let theirs: Vec<&(String, String, &str, bool)> =
            candidates.iter().filter(|c| c.3).collect();
        let chosen = match (theirs.as_slice(), candidates.as_slice()) {
            ([one], _) => Some(*one),
            // no ingress class to tell by, and only one LoadBalancer
            ([], [one]) if tokens.is_empty() => Some(one),
            (_, []) => None,
            _ => {
                let listed: Vec<String> = (if theirs.is_empty() {
                    candidates.iter().collect::<Vec<_>>()
                } else {
                    theirs
                })
                .iter()
                .map(|(n, a, _, _)| format!("{n} ({a})"))
                .collect();
                return Err(format!(
                    "routerAddress: the ingress controller's LoadBalancer Service is not clear (controllers: {}); the candidates: {}; set gateway.router_address",
                    if tokens.is_empty() {
                        "no IngressClass".to_string()
                    } else {
                        tokens.join(", ")
                    },
                    listed.join(", ")
                ));
            }
        };
        if let Some((name, address, what, _)) = chosen {
            return Ok((
                address.clone(),
                format!("the {what} of the LoadBalancer Service {name}"),
            ));
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = nodes
            .list(&Default::default())
            .await
            .map_err(|e| format!("cannot list Nodes: {}", describe(&e)))?;
        for wanted in ["ExternalIP", "InternalIP"] {
            for n in &list.items {
                let addresses = n
                    .status
                    .as_ref()
                    .and_then(|st| st.addresses.clone())
                    .unwrap_or_default();
                if let Some(a) = addresses.iter().find(|a| a.type_ == wanted) {
                    let node = n.metadata.name.clone().unwrap_or_default();
                    return Ok((
                        a.address.clone(),
                        format!("the {wanted} of the node {node}"),
                    ));
                }
            }
        }
        Err("no LoadBalancer Service with an address and no node address: set gateway.router_address".into())
    }

    /// The latest record of a Helm release (helm's `secrets` storage driver, its default), read
    /// through the Kubernetes API without starting helm: the release as `helm status -o json`
    /// shows it (`info.status`, `version`, `config`, `manifest`, `chart.metadata`), or `None`
    /// when there is no such release. For the chart steps and for any reader of release state.
    pub async fn release_record(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<J>, String> {
        Ok(self.release(release, namespace).await?.map(|r| r.record))
    }

    /// The latest record of a Helm release with what the recovery of a pending release needs:
    /// the Secret that holds it, its age, whether this tool saw the helm that wrote it exit,
    /// and every revision's state.
    pub async fn release(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<ReleaseRecord>, String> {
        use kube::api::ListParams;
        let api: Api<KSecret> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
            .await
            .map_err(|e| {
                format!(
                    "cannot read the release {release} in {namespace}: {}",
                    describe(&e)
                )
            })?;
        let label = |s: &KSecret, key: &str| -> String {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default()
        };
        let revision = |s: &KSecret| -> i64 { label(s, "version").parse().unwrap_or(0) };
        let Some(latest) = list.items.iter().max_by_key(|s| revision(s)) else {
            return Ok(None);
        };
        let raw = latest
            .data
            .as_ref()
            .and_then(|d| d.get("release"))
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let mut record = decode_release(raw).unwrap_or_else(|| json!({}));
        // the label is written with the record; either says the state
        if record["info"]["status"].as_str().is_none_or(str::is_empty) {
            record["info"]["status"] = J::from(label(latest, "status"));
        }
        if record["version"].is_null() {
            record["version"] = J::from(revision(latest));
        }
        let mut history: Vec<(i64, String)> = list
            .items
            .iter()
            .map(|s| (revision(s), label(s, "status")))
            .collect();
        history.sort();
        Ok(Some(ReleaseRecord {
            record,
            secret: latest.metadata.name.clone().unwrap_or_default(),
            age_secs: latest.metadata.creation_timestamp.as_ref().map(|t| {
                (k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second()).max(0)
            }),
            helm_exited: latest
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(HELM_EXITED))
                .cloned(),
            history,
        }))
    }

    /// Note on a release record left pending that the helm which wrote it has exited (this
    /// tool waited for it): no helm operation holds it, so the next run may recover it. The
    /// note is an annotation of that record's own Secret, so it goes with exactly that record:
    /// a newer revision is another Secret, and helm's own update of a record replaces it.
    pub async fn note_helm_exited(
        &self,
        namespace: &str,
        secret: &str,
        note: &str,
    ) -> Result<(), String> {
        let api: Api<KSecret> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({"metadata": {"annotations": {HELM_EXITED: note}}});
        api.patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "cannot note on the release record {namespace}/{secret} that helm exited: {}",
                    describe(&e)
                )
            })
    }

    /// A Secret's data, decoded, or `None` when it does not exist.
    pub async fn get_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        let api: Api<KSecret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api.get_opt(name).await.map_err(|e| {
            format!(
                "cannot read the Secret {namespace}/{name}: {}",
                describe(&e)
            )
        })?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for (k, v) in secret.data.unwrap_or_default() {
            out.insert(k, String::from_utf8_lossy(&v.0).into_owned());
        }
        for (k, v) in secret.string_data.unwrap_or_default() {
            out.insert(k, v);
        }
        Ok(Some(out))
    }

    /// The objects of a release's manifest that the cluster does not hold (deleted by hand):
    /// `Kind name` of each answered 404, in the manifest's order. An object whose kind is not
    /// served, or that cannot be read, is not counted: only what is certainly gone. Each kind
    /// is looked up once; the objects are read a few at a time.
    pub async fn missing_objects(&self, namespace: &str, manifest: &str) -> Vec<String> {
        use futures_util::StreamExt as _;
        let mut apis: BTreeMap<(String, String), Option<(kube::discovery::ApiResource, bool)>> =
            BTreeMap::new();
        let mut reads = Vec::new();
        for obj in crate::helm::parse_manifests(manifest).unwrap_or_default() {
            let (Some(api_version), Some(kind), Some(name)) = (
                obj["apiVersion"].as_str(),
                obj["kind"].as_str(),
                obj["metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            let key = (api_version.to_string(), kind.to_string());
            if !apis.contains_key(&key) {
                let found = served_resource(&self.client, api_version, kind)
                    .await
                    .ok()
                    .flatten();
                apis.insert(key.clone(), found);
            }
            let Some((ar, namespaced)) = &apis[&key] else {
                continue;
            };
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or(namespace);
            let api: Api<DynamicObject> = if *namespaced {
                Api::namespaced_with(self.client.clone(), ns, ar)
            } else {
                Api::all_with(self.client.clone(), ar)
            };
            let shown = format!("{kind} {name}");
            let name = name.to_string();
            reads
                .push(async move { matches!(api.get_opt(&name).await, Ok(None)).then_some(shown) });
        }
        futures_util::stream::iter(reads)
            .buffered(8)
            .filter_map(|m| async move { m })
            .collect()
            .await
    }
}

/// Helm's release encoding: base64 of the gzipped JSON of the release.
fn decode_release(raw: &[u8]) -> Option<J> {
    use std::io::Read;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .ok()?;
        out
    } else {
        bytes
    };
    serde_json::from_slice(&json).ok()
}

/// A Secret manifest for `apply`: data base64-encoded, owned by the tool.
pub fn secret_manifest(namespace: &str, name: &str, data: &BTreeMap<String, String>) -> J {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, J> = data
        .iter()
        .map(|(k, v)| (k.clone(), J::from(b64.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGER},
        },
        "type": "Opaque",
        "data": data,
    })
}

/// A kind (`apiVersion`, `kind`) as the cluster serves it, looked up through discovery: its
/// resource (group, version, plural) and whether it is namespaced.
pub async fn resource_of(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
) -> Result<(kube::discovery::ApiResource, bool), String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| {
            format!(
                "the cluster does not serve {api_version} {kind}: {}",
                describe(&e)
            )
        })?;
    Ok((ar, caps.scope == kube::discovery::Scope::Namespaced))
}

/// [`resource_of`], with a kind the cluster does not serve (its group or version unknown, or
/// the kind missing from it) answered `None`, and any other failure of the look-up an error.
pub async fn served_resource(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
) -> Result<Option<(kube::discovery::ApiResource, bool)>, String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => Ok(Some((ar, caps.scope == kube::discovery::Scope::Namespaced))),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(e) => Err(format!(
            "cannot look up {api_version} {kind} in the cluster's discovery: {}",
            describe(&e)
        )),
    }
}

/// The API of a kind, looked up through discovery, and whether the kind is namespaced: in
/// `namespace` when given and the kind is namespaced, across the cluster otherwise.
pub async fn dynamic_api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<(Api<DynamicObject>, bool), String> {
    let (ar, namespaced) = resource_of(client, api_version, kind).await?;
    let api = match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    Ok((api, namespaced))
}

#[cfg(test)]
mod tests {
    use super::Kube;
    use crate::action::Target;

    fn kubeconfig(user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n\
             users:\n- name: u\n  user:\n{user}"
        )
    }

    /// The connection is made ahead of the plan pass only when making it runs nothing the
    /// kubeconfig names: a token or a certificate, yes; an `exec` credential plugin or an auth
    /// provider (which may log in or prompt), or a kubeconfig that cannot be read, no.
    #[test]
    fn only_a_kubeconfig_without_credential_plugins_connects_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = |user: &str| {
            let path = dir.path().join("config");
            std::fs::write(&path, kubeconfig(user)).unwrap();
            let target = Target {
                kubeconfig: Some(path),
                ..Default::default()
            };
            // each kubeconfig reads: the answer is about its user, not a parse error
            assert!(Kube::kubeconfig(&target).is_ok(), "{user}");
            Kube::connects_without_plugins(&target)
        };
        assert!(ahead("    token: abc\n"));
        assert!(ahead(
            "    client-certificate-data: YQ==\n    client-key-data: YQ==\n"
        ));
        assert!(!ahead(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: get-token\n      interactiveMode: Never\n"
        ));
        assert!(!ahead(
            "    auth-provider:\n      name: oidc\n      config:\n        idp-issuer-url: https://idp\n"
        ));
        assert!(!Kube::connects_without_plugins(&Target {
            kubeconfig: Some(dir.path().join("missing")),
            ..Default::default()
        }));
    }

    /// A namespace being deleted: the wait for it ends when it is gone, when the patience is
    /// spent (saying what it waits for) or when the run is stopped.
    #[test]
    fn a_namespace_being_deleted_is_waited_for_within_bounds() {
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let faults = crate::sandbox::faults::Faults::default();
        let server = rt
            .block_on(crate::sandbox::kube::start(faults.clone()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, server.kubeconfig()).unwrap();
        let target = Target {
            kubeconfig: Some(path),
            ..Default::default()
        };
        let kube = rt.block_on(Kube::connect(&target)).unwrap();
        let go = AtomicBool::new(false);
        let delete = |ns: &str| {
            rt.block_on(kube.delete("v1", "Namespace", None, ns))
                .unwrap()
        };
        // 400 ms of terminating: waited for, then made again
        faults.terminate_namespaces_after(Duration::from_millis(400));
        rt.block_on(kube.ensure_namespace("t", Duration::from_secs(30), &go))
            .unwrap();
        assert!(delete("t"));
        let again = rt
            .block_on(kube.ensure_namespace("t", Duration::from_secs(30), &go))
            .unwrap();
        assert_eq!(again["status"]["phase"], "Active");
        assert!(again["metadata"]["deletionTimestamp"].is_null());
        // a minute of terminating: the patience (a second) runs out, and the error says so
        faults.terminate_namespaces_after(Duration::from_secs(60));
        assert!(delete("t"));
        let e = rt
            .block_on(kube.ensure_namespace("t", Duration::from_secs(1), &go))
            .unwrap_err();
        assert!(
            e.starts_with("the namespace t is still being deleted after 1 s: `kubectl get namespace t -o yaml`"),
            "{e}"
        );
        // stopped: at once, whatever the patience
        let stop = AtomicBool::new(true);
        let started = std::time::Instant::now();
        let e = rt
            .block_on(kube.ensure_namespace("t", Duration::from_secs(60), &stop))
            .unwrap_err();
        assert_eq!(e, "stopped while the namespace t was being deleted");
        assert!(started.elapsed() < Duration::from_secs(30));
        // what the server says when content is refused there, and the advice
        let map =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let e = rt.block_on(kube.apply(Some("t"), &map)).unwrap_err();
        assert!(
            e.ends_with(
                "unable to create new content in namespace t because it is being terminated \
                 (403 Forbidden); the namespace t is being deleted: wait until `kubectl get \
                 namespace t` no longer finds it, then run again"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_namespace_being_deleted_is_read_from_the_answer() {
        use super::terminating_namespace as t;
        let helm = "Error: create: failed to create: secrets \"sh.helm.release.v1.a.v1\" is \
                    forbidden: unable to create new content in namespace agents because it is \
                    being terminated";
        assert_eq!(t(helm), Some("agents"));
        assert_eq!(
            t("unable to create new content in namespace  because it is being terminated"),
            None
        );
        assert_eq!(
            t("unable to create new content in namespace a b because it is being terminated"),
            None
        );
        assert_eq!(t("unable to create new content in namespace agents"), None);
        assert_eq!(t("secrets is forbidden: User cannot create"), None);
    }
}
