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
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

impl Kube {
    pub async fn connect(target: &Target) -> Result<Kube, String> {
        let kubeconfig = match &target.kubeconfig {
            Some(p) => Kubeconfig::read_from(p)
                .map_err(|e| format!("cannot read the kubeconfig {}: {e}", p.display()))?,
            None => Kubeconfig::read().map_err(|e| {
                format!("cannot read the kubeconfig (KUBECONFIG or ~/.kube/config): {e}")
            })?,
        };
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| format!("cannot use the kubeconfig: {e}"))?;
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("cannot create the Kubernetes client: {e}"))?;
        Ok(Kube { client })
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

    /// The latest record of a Helm release (helm's `secrets` storage driver, its default), read
    /// through the Kubernetes API without starting helm: the release as `helm status -o json`
    /// shows it (`info.status`, `version`, `config`, `manifest`, `chart.metadata`), or `None`
    /// when there is no such release. For the chart steps and for any reader of release state.
    pub async fn release_record(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<J>, String> {
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
        let revision = |s: &KSecret| -> i64 {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("version"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let Some(latest) = list.items.iter().max_by_key(|s| revision(s)) else {
            return Ok(None);
        };
        let label_status = latest
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("status"))
            .cloned()
            .unwrap_or_default();
        let raw = latest
            .data
            .as_ref()
            .and_then(|d| d.get("release"))
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let mut record = decode_release(raw).unwrap_or_else(|| json!({}));
        // the label is written with the record; either says the state
        if record["info"]["status"].as_str().is_none_or(str::is_empty) {
            record["info"]["status"] = J::from(label_status);
        }
        if record["version"].is_null() {
            record["version"] = J::from(revision(latest));
        }
        Ok(Some(record))
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
