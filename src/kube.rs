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

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
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

/// Is the kubeconfig setting a list of files (`KUBECONFIG=a:b`)?
pub fn is_list(path: &std::path::Path) -> bool {
    std::env::split_paths(path.as_os_str()).count() > 1
}

/// How long one request to the API may take before it is given up (no call of the tool
/// streams, so a longer wait means a stalled API).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
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
            .and_then(|c| c.server.clone())
            .ok_or_else(|| {
                format!(
                    "the context `{context}` names the cluster `{}`, which the kubeconfig does not have with a server",
                    ctx.cluster
                )
            })?;
        Ok((kubeconfig, context, server))
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
                format!("cannot use the kubeconfig (context `{context}`, server {server}): {e}")
            })?;
        config.read_timeout = Some(REQUEST_TIMEOUT);
        // longer than the check's own deadline, which then names what happened
        config.connect_timeout = Some(CHECK_TIMEOUT * 2);
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("cannot create the Kubernetes client: {e}"))?;
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

    pub async fn version(&self) -> Result<String, String> {
        self.client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .map_err(|e| format!("cannot reach the Kubernetes API: {}", describe(&e)))
    }

    /// Create the namespace if it is missing (server-side apply: a re-run changes nothing).
    pub async fn ensure_namespace(&self, name: &str) -> Result<J, String> {
        self.apply(
            None,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await
    }

    /// Server-side apply of any manifest, its kind looked up through discovery.
    pub async fn apply(&self, namespace: Option<&str>, manifest: &J) -> Result<J, String> {
        let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
        let kind = manifest["kind"].as_str().unwrap_or_default();
        let name = manifest["metadata"]["name"]
            .as_str()
            .ok_or("the manifest has no metadata.name")?;
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| {
                format!(
                    "the cluster does not serve {api_version} {kind}: {}",
                    describe(&e)
                )
            })?;
        let api: Api<DynamicObject> = match (caps.scope, namespace) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            (kube::discovery::Scope::Namespaced, None) => {
                return Err(format!("{kind} {name} needs a namespace"));
            }
            (kube::discovery::Scope::Cluster, _) => Api::all_with(self.client.clone(), &ar),
        };
        let params = PatchParams::apply(MANAGER).force();
        let obj = api
            .patch(name, &params, &Patch::Apply(manifest))
            .await
            .map_err(|e| format!("cannot apply {kind} {name}: {}", describe(&e)))?;
        serde_json::to_value(obj).map_err(|e| e.to_string())
    }

    /// The address a router is reached at from outside: a LoadBalancer Service's ingress
    /// hostname or IP, else a node's ExternalIP, else a node's InternalIP; with what it came from.
    pub async fn router_address(&self) -> Result<(String, String), String> {
        use k8s_openapi::api::core::v1::{Node, Service};
        let services: Api<Service> = Api::all(self.client.clone());
        let list = services
            .list(&Default::default())
            .await
            .map_err(|e| format!("cannot list Services: {}", describe(&e)))?;
        for s in list.items {
            let is_lb = s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer");
            let ingress = s
                .status
                .and_then(|st| st.load_balancer)
                .and_then(|lb| lb.ingress)
                .unwrap_or_default();
            if let (true, Some(first)) = (is_lb, ingress.first()) {
                let name = format!(
                    "{}/{}",
                    s.metadata.namespace.unwrap_or_default(),
                    s.metadata.name.unwrap_or_default()
                );
                if let Some(h) = &first.hostname {
                    return Ok((
                        h.clone(),
                        format!("the hostname of the LoadBalancer Service {name}"),
                    ));
                }
                if let Some(ip) = &first.ip {
                    return Ok((
                        ip.clone(),
                        format!("the IP of the LoadBalancer Service {name}"),
                    ));
                }
            }
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
