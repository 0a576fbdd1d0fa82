//! The real Kubernetes control plane (`tools/real-cluster`: kube-apiserver, controller manager,
//! scheduler and etcd built from the Kubernetes and etcd Go modules, kwok for the node):
//! every live path against it, and the embedded sandbox held to it.
//!
//! One cluster serves the whole test binary: the first test that needs it builds it when the
//! cache is missing (many minutes, once) and starts it in a temporary directory; a watchdog
//! stops it when the test process ends. Each test works in namespaces of its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use serde_json::{Value, json};

use crate::common::{Sim, repo};

/// The running real cluster: its directory and admin kubeconfig.
pub struct Real {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

/// The one real cluster of this test binary: built when the cache is missing, started once.
pub fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        let tool = repo().join("tools/real-cluster");
        let build = Command::new(&tool)
            .arg("build")
            .output()
            .expect("run tools/real-cluster build");
        assert!(
            build.status.success(),
            "tools/real-cluster build failed:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let dir = tempfile::Builder::new()
            .prefix("real-cluster-")
            .tempdir()
            .unwrap()
            .keep();
        // the watchdog: when this test process ends, however it ends, stop the cluster. It
        // outlives this process on purpose (setsid), so it is never waited for here.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .args([
                "bash",
                "-c",
                r#"while kill -0 "$0" 2>/dev/null; do sleep 0.5; done; "$1" down "$2"; rm -rf "$2""#,
            ])
            .arg(std::process::id().to_string())
            .arg(&tool)
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the watchdog");
        let up = Command::new(&tool)
            .arg("up")
            .arg(&dir)
            .output()
            .expect("run tools/real-cluster up");
        assert!(
            up.status.success(),
            "tools/real-cluster up failed:\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&up.stdout).trim());
        assert!(kubeconfig.exists(), "no kubeconfig at {}", kubeconfig.display());
        Real { dir, kubeconfig }
    })
}

/// A tokio runtime for one test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A kube-rs client for a kubeconfig.
pub async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A namespace of its own for a test, created (and the default ServiceAccount awaited, which
/// the real controller manager creates, so pods can be admitted).
pub async fn namespace(c: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    namespaces
        .patch(name, &PatchParams::apply("tests"), &Patch::Apply(&ns))
        .await
        .unwrap();
}

fn api_error(e: &kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("not an API error: {other:?}"),
    }
}

#[test]
fn the_real_server_says_its_version_and_rejects_a_deployment_without_a_selector() {
    let real = real();
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        let version = c.apiserver_version().await.unwrap();
        assert_eq!(version.git_version, "v1.34.2");
        namespace(&c, "rc-version").await;
        let deployments: Api<DynamicObject> = Api::namespaced_with(
            c.clone(),
            "rc-version",
            &kube::discovery::ApiResource::erase::<Deployment>(&()),
        );
        let no_selector: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}))
        .unwrap();
        let err = deployments
            .create(&PostParams::default(), &no_selector)
            .await
            .unwrap_err();
        assert_eq!(api_error(&err), (422, "Invalid".to_string()), "{err:?}");
        assert!(err.to_string().contains("spec.selector"), "{err}");
    });
}

/// What kube-rs does against a cluster: get, list, server-side apply, create, replace with a
/// resourceVersion (and its conflict), delete, watch, and waiting for a Deployment to complete.
/// The same code runs against the sandbox and the real server: both must answer alike.
async fn kube_rs_paths(c: kube::Client, ns: &str) {
    namespace(&c, ns).await;
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let got = namespaces.get(ns).await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Active"));

    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds", "labels": {"app.kubernetes.io/managed-by": "clearml-script"}},
        "stringData": {"k": "v"},
    }))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.data.as_ref().unwrap()["k"].0, b"v");
    assert!(created.string_data.is_none());
    let err = secrets
        .create(&PostParams::default(), &s)
        .await
        .unwrap_err();
    assert_eq!(api_error(&err), (409, "AlreadyExists".into()));
    let found = secrets
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=clearml-script"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let none = secrets
        .list(&ListParams::default().labels("app=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let mut updated = created.clone();
    updated
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("x".into(), "y".into());
    let replaced = secrets
        .replace("creds", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let err = secrets
        .replace("creds", &PostParams::default(), &updated)
        .await
        .unwrap_err();
    assert_eq!(api_error(&err), (409, "Conflict".into()));
    secrets
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    let err = secrets.get("creds").await.unwrap_err();
    assert_eq!(api_error(&err), (404, "NotFound".into()));

    // a watch sees a new ConfigMap
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let mut stream = Box::pin(watcher(cms.clone(), watcher::Config::default()).applied_objects());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "watched"}, "data": {"a": "1"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(ev) = stream.next().await {
            let obj = ev.unwrap();
            if obj.metadata.name.as_deref() == Some("watched") {
                return obj;
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the watch saw the new ConfigMap");
    assert_eq!(seen.data.unwrap()["a"], "1");

    // a Deployment applied server-side completes: on the real server through the controller
    // manager, the scheduler and kwok (the node simulator)
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    deployments
        .patch(
            "web",
            &PatchParams::apply("clearml-script"),
            &Patch::Apply(&d),
        )
        .await
        .unwrap();
    let ready = tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(
            deployments.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await
    .expect("the Deployment completed in time")
    .unwrap();
    assert_eq!(ready.unwrap().status.unwrap().ready_replicas, Some(1));
}

#[test]
fn kube_rs_reads_applies_watches_and_awaits_against_the_real_server_and_the_sandbox() {
    let real = real();
    rt().block_on(async { kube_rs_paths(client_for(&real.kubeconfig).await, "rc-kube-rs").await });
    let sim = Sim::start();
    let kubeconfig = sim.sandbox.kubeconfig.clone();
    sim.rt
        .block_on(async { kube_rs_paths(client_for(&kubeconfig).await, "rc-kube-rs").await });
}

/// Serializes the tests that use the cluster-wide names of the standard install (the
/// namespaces `clearml` and `redis-shared`, LoadBalancer discovery).
pub static STANDARD_NAMES: Mutex<()> = Mutex::new(());

/// A Secret's data on the real server, decoded, or `None` when it does not exist.
async fn secret_data(
    c: &kube::Client,
    ns: &str,
    name: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let s = secrets.get_opt(name).await.unwrap()?;
    Some(
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect(),
    )
}

async fn get_json(c: &kube::Client, path: &str) -> Value {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    c.request::<Value>(req).await.unwrap()
}

/// The standard install: the site's values with the agent (queues, shared memory, shared
/// Redis) and the gateway, against the real server with the sandbox's chart repository and
/// ClearML API.
fn standard_install(
    live: &crate::common::Cluster,
    kubeconfig: &std::path::Path,
    extra: &[&str],
) -> crate::common::Output {
    standard_run(live, kubeconfig, "install.rhai", extra)
}

/// A standard playbook (`install.rhai`, `uninstall.rhai`) with the standard install's values,
/// without the preflight.
pub fn standard_run(
    live: &crate::common::Cluster,
    kubeconfig: &std::path::Path,
    script: &str,
    extra: &[&str],
) -> crate::common::Output {
    standard_site(live, kubeconfig, script)
        // the tools/real-cluster control plane has no StorageClass nor IngressClass (no storage
        // provisioner, no ingress controller): the preflight would rightly refuse it
        .arg("--skip-preflight")
        .args(extra)
        .run()
}

/// A playbook with the standard install's site values, against the real server.
fn standard_site(
    live: &crate::common::Cluster,
    kubeconfig: &std::path::Path,
    script: &str,
) -> crate::common::Test {
    let site = repo().join("examples/site.yaml").display().to_string();
    let gpu = repo().join("examples/site-gpu.yaml").display().to_string();
    // no router address: the tool discovers it
    let discover = live.home.path().join("discover.yaml");
    std::fs::write(&discover, "gateway:\n  router_address: null\n").unwrap();
    live.test_on(kubeconfig)
        .args([script, "--values", &site, "--values", &gpu])
        .arg("--set")
        .arg(format!("agent.redis.chart_repo_url={}", live.repo_url))
        .arg("--set")
        .arg(format!("agent.api_url={}", live.sim.sandbox.clearml.url()))
        .args([
            "--set",
            "agent.key=AGENTKEY",
            "--set",
            "agent.secret=agent-secret-1",
            "--set",
            "agent.redis.enabled=true",
            "--set",
            "agent.redis.password=redis-pass-1",
            "--set",
            "timeout=120s",
        ])
        .args(["--values", &discover.display().to_string()])
}

/// Uninstall what the standard install made: the releases with helm, then the namespaces,
/// awaited until the real namespace controller removed them.
fn uninstall(live: &crate::common::Cluster, helm: &std::path::Path, kubeconfig: &std::path::Path) {
    for (release, ns) in [
        ("clearml-ttr", "clearml-agents"),
        ("clearml-agent", "clearml-agents"),
        ("redis", "redis-shared"),
        ("clearml", "clearml"),
    ] {
        let out = Command::new(helm)
            .args([
                "uninstall",
                release,
                "-n",
                ns,
                "--wait",
                "--timeout",
                "120s",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("HELM_CACHE_HOME", live.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", live.home.path().join("config"))
            .env("HELM_DATA_HOME", live.home.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm uninstall {release}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    remove_namespaces(kubeconfig);
}

/// The IngressClass `nginx` of ingress-nginx and its controller's LoadBalancer Service (no
/// controller runs: rc-helper's LoadBalancer provider gives the Service its address).
async fn ingress_controller(kubeconfig: &std::path::Path) {
    let c = client_for(kubeconfig).await;
    let create = |path: &'static str, body: Value| {
        let c = c.clone();
        async move {
            let req = http::Request::post(path)
                .header("Content-Type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap();
            match c.request::<Value>(req).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => panic!("POST {path}: {e}"),
            }
        }
    };
    create(
        "/apis/networking.k8s.io/v1/ingressclasses",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
    )
    .await;
    create(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ingress-nginx"}}),
    )
    .await;
    create(
        "/api/v1/namespaces/ingress-nginx/services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "ingress-nginx-controller",
                            "labels": {"app.kubernetes.io/name": "ingress-nginx"}},
               "spec": {"type": "LoadBalancer", "selector": {"app": "ingress-nginx"},
                        "ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
}

/// The standard install with helm `major`, then the same run again: it converges.
fn standard_install_converges(major: u32, kubeconfig: &std::path::Path, lb: bool) {
    use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
    let live = crate::common::Cluster::new(major);
    let state = &live.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");
    let service_type = if lb { "LoadBalancer" } else { "ClusterIP" };
    if lb {
        // an ingress controller's own LoadBalancer Service, which the discovery must tell from
        // the server's LoadBalancer Services by the IngressClass's controller
        rt().block_on(ingress_controller(kubeconfig));
    }
    let extra = ["--set", &format!("service_type={service_type}")];
    let out = standard_install(&live, kubeconfig, &extra);
    out.success()
        .stderr_has("internal credentials: 7 generated;")
        .stderr_has("• queue GPUshm: created")
        .stderr_has("control plane: release clearml in clearml: deployed")
        .stderr_has("agent: release clearml-agent in clearml-agents: deployed")
        .stderr_has("gateway: release clearml-ttr in clearml-agents: deployed")
        .nowhere("agent-secret-1")
        .nowhere("redis-pass-1");
    // the router address: the real LoadBalancer status rc-helper's LoadBalancer provider gave
    // the server's Services, or the real node's ExternalIP
    if lb {
        out.stderr_has("gateway: routerAddress 198.51.100.")
            .stderr_has(
                "(the IP of the LoadBalancer Service ingress-nginx/ingress-nginx-controller",
            );
    } else {
        out.stderr_has(
            "gateway: routerAddress 203.0.113.11 (the ExternalIP of the node rc-node-1)",
        );
    }
    let mut queues: Vec<String> = state
        .queues(DEFAULT_COMPANY)
        .into_iter()
        .map(|q| q.name)
        .collect();
    queues.sort();
    assert_eq!(queues, ["GPUshm", "default"]);

    let kept = rt().block_on(async {
        let c = client_for(kubeconfig).await;
        let kept = secret_data(&c, "clearml", "clearml-script-internal-credentials")
            .await
            .expect("the internal credentials are kept");
        assert_eq!(kept.len(), 7);
        let conf = secret_data(&c, "clearml", "clearml-conf").await.unwrap();
        assert_eq!(conf["apiserver_key"], kept["apiserverKey"]);
        // the workloads are ready: the real controllers, scheduler and kwok made them so
        let glue = get_json(
            &c,
            "/apis/apps/v1/namespaces/clearml-agents/deployments/clearml-agent-agentk8sglue",
        )
        .await;
        assert_eq!(glue["status"]["readyReplicas"], 1, "{glue}");
        let env = glue["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
        assert!(env.contains("redis-master.redis-shared"), "{env}");
        let redis = get_json(
            &c,
            "/apis/apps/v1/namespaces/redis-shared/statefulsets/redis-master",
        )
        .await;
        assert_eq!(redis["status"]["readyReplicas"], 1, "{redis}");
        let cm = get_json(
            &c,
            "/api/v1/namespaces/clearml-agents/configmaps/clearml-agent-queues",
        )
        .await;
        assert!(
            cm["data"]["queues.yaml"]
                .as_str()
                .unwrap()
                .contains("sizeLimit: 32Gi")
        );
        kept
    });

    // the same run again: credentials unchanged, no queue created twice, releases upgraded
    let before = state.requests().get("queues.create").copied().unwrap_or(0);
    standard_install(&live, kubeconfig, &extra)
        .success()
        .stderr_has("internal credentials: 7 reused")
        .stderr_has("• queue GPUshm: already there");
    assert_eq!(
        state.requests().get("queues.create").copied().unwrap_or(0),
        before
    );
    rt().block_on(async {
        let c = client_for(kubeconfig).await;
        assert_eq!(
            secret_data(&c, "clearml", "clearml-script-internal-credentials")
                .await
                .unwrap(),
            kept
        );
        // the re-run changed nothing, so it made no new revision: one release Secret
        let releases = get_json(
            &c,
            "/api/v1/namespaces/clearml/secrets?labelSelector=owner%3Dhelm,name%3Dclearml",
        )
        .await;
        let mut versions: Vec<String> = releases["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["metadata"]["labels"]["version"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        versions.sort();
        assert_eq!(versions, ["1"]);
        let deployments = get_json(&c, "/apis/apps/v1/namespaces/clearml/deployments").await;
        let names: Vec<&str> = deployments["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
    });
    let helm = crate::common::helm_binaries()[(major - 3) as usize]
        .1
        .clone();
    uninstall(&live, &helm, kubeconfig);
}

#[test]
fn the_standard_install_converges_against_the_real_server_with_helm_3_and_helm_4() {
    let real = real();
    let _names = STANDARD_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    // helm 3: the router address from the real node; helm 4: from a real LoadBalancer status
    standard_install_converges(3, &real.kubeconfig, false);
    standard_install_converges(4, &real.kubeconfig, true);
}

/// Every object `helm template` renders, as JSON.
fn render(
    helm: &std::path::Path,
    release: &str,
    chart: &std::path::Path,
    values: &std::path::Path,
) -> Vec<Value> {
    let out = Command::new(helm)
        .args(["template", release])
        .arg(chart)
        .arg("-f")
        .arg(values)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm template {release}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut docs = Vec::new();
    let mut doc = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" {
            if doc
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                docs.push(serde_saphyr::from_str::<Value>(&doc).unwrap());
            }
            doc.clear();
        } else {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

/// Server-side dry-run of every object the stand-in charts render with the standard install's
/// values (from its plan), with both helms: answers the rejections, `kind/name: message`.
async fn dry_run_everything(c: &kube::Client, ns: &str) -> Vec<String> {
    let site = repo().join("examples/site.yaml").display().to_string();
    let gpu = repo().join("examples/site-gpu.yaml").display().to_string();
    let plan = crate::common::Test::new()
        .args(["install.rhai", "--values", &site, "--values", &gpu])
        // the tools/real-cluster control plane has no StorageClass nor IngressClass (no storage
        // provisioner, no ingress controller): the preflight would rightly refuse it
        .arg("--skip-preflight")
        .args([
            "--set",
            "agent.redis.enabled=true",
            "--set",
            "agent.redis.password=p",
        ])
        .args(["--set", "service_type=LoadBalancer"])
        .args(["--dry-run", "--output", "json"])
        .run();
    plan.success();
    let plan = plan.json();
    let work = tempfile::tempdir().unwrap();
    let mut rejected = Vec::new();
    let mut checked = 0;
    for (major, helm) in crate::common::helm_binaries() {
        for action in plan["actions"].as_array().unwrap() {
            if action["kind"] != "helm.upgrade_install" {
                continue;
            }
            let chart_name = action["chart"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let chart = repo().join("src/sandbox/charts").join(chart_name);
            assert!(chart.exists(), "no stand-in chart for {chart_name}");
            let values = work.path().join("values.json");
            std::fs::write(&values, action["values"].to_string()).unwrap();
            let release = action["release"].as_str().unwrap();
            for obj in render(&helm, release, &chart, &values) {
                let gvk = kube::api::GroupVersionKind::try_from(&kube::api::TypeMeta {
                    api_version: obj["apiVersion"].as_str().unwrap().to_string(),
                    kind: obj["kind"].as_str().unwrap().to_string(),
                })
                .unwrap();
                let (ar, caps) = kube::discovery::pinned_kind(c, &gvk).await.unwrap();
                let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
                    Api::namespaced_with(c.clone(), ns, &ar)
                } else {
                    Api::all_with(c.clone(), &ar)
                };
                let name = obj["metadata"]["name"].as_str().unwrap().to_string();
                let params = PatchParams::apply("clearml-script").dry_run();
                checked += 1;
                if let Err(e) = api.patch(&name, &params, &Patch::Apply(&obj)).await {
                    rejected.push(format!("helm {major}: {} {name}: {e}", gvk.kind));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} objects rendered");
    rejected
}

#[test]
fn the_stand_in_charts_pass_the_real_servers_validation() {
    let real = real();
    let rejected = rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        namespace(&c, "rc-dry-run").await;
        dry_run_everything(&c, "rc-dry-run").await
    });
    assert!(
        rejected.is_empty(),
        "the real server rejects:\n{}",
        rejected.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Differential: the same requests to the sandbox and to the real server, answers compared.

/// One request of a scenario: `{ns}` in the path or body is the scenario's namespace,
/// `{rv:NAME}` the resourceVersion an earlier answer recorded under NAME.
struct Step {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// record the answer's resourceVersion under this name
    keep_rv: Option<&'static str>,
}

const fn step(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
) -> Step {
    Step {
        name,
        method,
        path,
        content_type,
        body,
        keep_rv: None,
    }
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// Requests a user's own playbook would plausibly send, and those the tool and helm send.
fn scenario() -> Vec<Step> {
    let keep = |mut s: Step, rv: &'static str| {
        s.keep_rv = Some(rv);
        s
    };
    vec![
        step(
            "create the namespace",
            "POST",
            "/api/v1/namespaces",
            JSON,
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"{ns}"}}"#,
        ),
        keep(
            step(
                "a Secret with stringData",
                "POST",
                "/api/v1/namespaces/{ns}/secrets",
                JSON,
                r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","labels":{"app":"a"}},"stringData":{"password":"s3cret"}}"#,
            ),
            "creds",
        ),
        step(
            "read it back",
            "GET",
            "/api/v1/namespaces/{ns}/secrets/creds",
            "",
            "",
        ),
        step(
            "create it again",
            "POST",
            "/api/v1/namespaces/{ns}/secrets",
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds"},"stringData":{"password":"x"}}"#,
        ),
        step(
            "a patch with a wrong content type",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/creds",
            JSON,
            r#"{"metadata":{"labels":{"b":"c"}}}"#,
        ),
        step(
            "a merge patch",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/creds",
            MERGE,
            r#"{"metadata":{"labels":{"b":"c"}}}"#,
        ),
        step(
            "a JSON patch",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/creds",
            "application/json-patch+json",
            r#"[{"op":"add","path":"/metadata/labels/d","value":"e"}]"#,
        ),
        step(
            "a JSON patch of a missing path",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/creds",
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/x","value":"e"}]"#,
        ),
        step(
            "a strategic merge patch",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/creds",
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"labels":{"f":"g"}}}"#,
        ),
        step(
            "an apply without a field manager",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/creds",
            APPLY,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds"}}"#,
        ),
        step(
            "a replace with a stale resourceVersion",
            "PUT",
            "/api/v1/namespaces/{ns}/secrets/creds",
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","resourceVersion":"{rv:creds}"},"data":{"password":"eA=="}}"#,
        ),
        step(
            "a replace without a resourceVersion",
            "PUT",
            "/api/v1/namespaces/{ns}/secrets/creds",
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds"},"data":{"password":"eA=="}}"#,
        ),
        step(
            "a replace whose name differs from the path",
            "PUT",
            "/api/v1/namespaces/{ns}/secrets/creds",
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"other"},"data":{"password":"eA=="}}"#,
        ),
        keep(
            step(
                "the list before the ConfigMaps",
                "GET",
                "/api/v1/namespaces/{ns}/configmaps?labelSelector=app",
                "",
                "",
            ),
            "list",
        ),
        step(
            "ConfigMap a",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"app":"a"}},"data":{"k":"1"}}"#,
        ),
        step(
            "ConfigMap b",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","labels":{"app":"b","tier":"x"}},"data":{"k":"2"}}"#,
        ),
        step(
            "a list with an equality selector",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3Da",
            "",
            "",
        ),
        step(
            "a list with a set selector",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%20in%20(a,b),tier",
            "",
            "",
        ),
        step(
            "a list with a negated selector",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?labelSelector=app,!tier",
            "",
            "",
        ),
        step(
            "a list with a bad selector",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3D%3D%3D",
            "",
            "",
        ),
        step(
            "a list with a field selector",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3Db",
            "",
            "",
        ),
        step(
            "a ConfigMap with an invalid name",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
        ),
        step(
            "a ConfigMap without a name",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
        ),
        step(
            "a body that is not JSON",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            "{not json",
        ),
        step(
            "a kind that does not match the path",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c"}}"#,
        ),
        step(
            "a missing object",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps/missing",
            "",
            "",
        ),
        step(
            "an unknown resource",
            "GET",
            "/api/v1/namespaces/{ns}/widgets",
            "",
            "",
        ),
        step(
            "a Deployment without a selector",
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            JSON,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#,
        ),
        step(
            "a Deployment whose selector does not match its labels",
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            JSON,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#,
        ),
        step(
            "a Deployment without containers",
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            JSON,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[]}}}}"#,
        ),
        step(
            "a valid Deployment",
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            JSON,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#,
        ),
        step(
            "a Service with a bad port",
            "POST",
            "/api/v1/namespaces/{ns}/services",
            JSON,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":70000}]}}"#,
        ),
        step(
            "apply by one manager",
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/c?fieldManager=one",
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"x":"1"}}"#,
        ),
        step(
            "apply of the same field by another manager",
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/c?fieldManager=two",
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"x":"2"}}"#,
        ),
        step(
            "the same, forced",
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/c?fieldManager=two&force=true",
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"x":"2"}}"#,
        ),
        step(
            "apply of the same value by the first manager",
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/c?fieldManager=one",
            APPLY,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"x":"2"}}"#,
        ),
        step(
            "delete a",
            "DELETE",
            "/api/v1/namespaces/{ns}/configmaps/a",
            "",
            "",
        ),
        step(
            "delete a again",
            "DELETE",
            "/api/v1/namespaces/{ns}/configmaps/a",
            "",
            "",
        ),
        step(
            "the watch since the list",
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?watch=1&labelSelector=app&resourceVersion={rv:list}&timeoutSeconds=1",
            "",
            "",
        ),
        step(
            "delete the namespace",
            "DELETE",
            "/api/v1/namespaces/{ns}",
            "",
            "",
        ),
    ]
}

/// The significant part of an answer: the status code; for a Status its reason; for an object
/// its kind, name, labels, data, which generated metadata it has, and its type; for a list the
/// kind and the names of the items; for a watch the events' types and object names.
pub fn significant(code: u16, body: &str) -> Value {
    let mut out = json!({"code": code});
    let lines: Vec<Value> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    if lines.len() > 1
        || lines
            .first()
            .is_some_and(|e| e.get("type").is_some() && e.get("object").is_some())
    {
        out["events"] = lines
            .iter()
            .map(|e| json!([e["type"], e["object"]["metadata"]["name"]]))
            .collect();
        return out;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        out["body"] = json!("not JSON");
        return out;
    };
    out["kind"] = v["kind"].clone();
    if v["kind"] == "Status" {
        out["reason"] = v["reason"].clone();
        out["status"] = v["status"].clone();
        return out;
    }
    if let Some(items) = v["items"].as_array() {
        out["items"] = items
            .iter()
            .map(|i| i["metadata"]["name"].clone())
            .collect();
        out["has resourceVersion"] = json!(v["metadata"]["resourceVersion"].is_string());
        return out;
    }
    let m = &v["metadata"];
    out["name"] = m["name"].clone();
    out["labels"] = m["labels"].clone();
    out["data"] = v["data"].clone();
    out["stringData"] = v["stringData"].clone();
    out["type"] = v["type"].clone();
    out["generated"] = json!({
        "uid": m["uid"].is_string(),
        "resourceVersion": m["resourceVersion"].is_string(),
        "creationTimestamp": m["creationTimestamp"].is_string(),
    });
    if v["kind"] == "Namespace" {
        out["phase"] = v["status"]["phase"].clone();
    }
    if v["kind"] == "Deployment" {
        out["generation"] = m["generation"].clone();
    }
    out
}

/// Run the scenario against one cluster: the significant part of every answer.
async fn run_scenario(c: &kube::Client, ns: &str) -> Vec<Value> {
    let mut rvs: std::collections::HashMap<&str, String> = Default::default();
    let mut answers = Vec::new();
    for s in scenario() {
        let fill = |t: &str| {
            let mut t = t.replace("{ns}", ns);
            for (k, v) in &rvs {
                t = t.replace(&format!("{{rv:{k}}}"), v);
            }
            t
        };
        let mut req = http::Request::builder().method(s.method).uri(fill(s.path));
        if !s.content_type.is_empty() {
            req = req.header("Content-Type", s.content_type);
        }
        let req = req
            .body(kube::client::Body::from(fill(s.body).into_bytes()))
            .unwrap();
        let res = c.send(req).await.unwrap();
        let code = res.status().as_u16();
        let body = res.into_body().collect_bytes().await.unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        if let Some(name) = s.keep_rv {
            let v: Value = serde_json::from_str(&body).unwrap();
            rvs.insert(
                name,
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        answers.push(significant(code, &body));
    }
    answers
}

/// The divergences between the sandbox and the real server, `step: sandbox ≠ real`.
fn divergences(sandbox: &[Value], real: &[Value]) -> Vec<String> {
    scenario()
        .iter()
        .zip(sandbox.iter().zip(real))
        .filter(|(_, (a, b))| a != b)
        .map(|(s, (a, b))| format!("{}: sandbox {a} ≠ real {b}", s.name))
        .collect()
}

/// What the sandbox does not simulate, by step (README, "Not simulated"): nothing the scenario
/// sends.
const NOT_SIMULATED: &[&str] = &[];

#[test]
fn the_sandbox_answers_a_users_requests_as_the_real_server_does() {
    let real_cluster = real();
    let real = rt().block_on(async {
        run_scenario(
            &client_for(&real_cluster.kubeconfig).await,
            "rc-differential",
        )
        .await
    });
    let sim = Sim::start();
    let kubeconfig = sim.sandbox.kubeconfig.clone();
    let sandbox = sim
        .rt
        .block_on(async { run_scenario(&client_for(&kubeconfig).await, "rc-differential").await });
    let found: Vec<String> = divergences(&sandbox, &real)
        .into_iter()
        .filter(|d| {
            !NOT_SIMULATED
                .iter()
                .any(|n| d.starts_with(&format!("{n}:")))
        })
        .collect();
    assert!(found.is_empty(), "divergences:\n{}", found.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The tool's Secret apply: its field manager, and another manager's change.

fn managers(s: &Secret) -> Vec<(String, String)> {
    s.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn the_tools_secret_apply_keeps_its_field_manager_and_takes_back_a_changed_field() {
    let real = real();
    let ns = "rc-field-manager";
    rt().block_on(async { namespace(&client_for(&real.kubeconfig).await, ns).await });
    let apply = |value: &str| {
        crate::common::Test::new()
            .script(&format!(
                "apply_secret(\"{ns}\", \"site-credentials\", #{{ token: secret(\"{value}\") }});"
            ))
            .arg("--kubeconfig")
            .arg(real.kubeconfig.display().to_string())
            .run()
    };
    apply("token-one").success().nowhere("token-one");
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
        let s = secrets.get("site-credentials").await.unwrap();
        assert_eq!(s.data.as_ref().unwrap()["token"].0, b"token-one");
        assert_eq!(
            managers(&s),
            [("clearml-script".to_string(), "Apply".to_string())]
        );
        // another manager's apply of the same field conflicts unless forced
        let other = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "site-credentials"}, "data": {"token": "b3RoZXI="}});
        let err = secrets
            .patch(
                "site-credentials",
                &PatchParams::apply("someone-else"),
                &Patch::Apply(&other),
            )
            .await
            .unwrap_err();
        assert_eq!(api_error(&err), (409, "Conflict".into()), "{err:?}");
        assert!(err.to_string().contains("clearml-script"), "{err}");
        secrets
            .patch(
                "site-credentials",
                &PatchParams::apply("someone-else").force(),
                &Patch::Apply(&other),
            )
            .await
            .unwrap();
    });
    // the tool's next run takes the field back (it applies with force, as documented)
    apply("token-one").success();
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
        let s = secrets.get("site-credentials").await.unwrap();
        assert_eq!(s.data.as_ref().unwrap()["token"].0, b"token-one");
        assert!(
            managers(&s).contains(&("clearml-script".to_string(), "Apply".to_string())),
            "{:?}",
            managers(&s)
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Least privilege: the install as a ServiceAccount bound to the README's rules.

/// The ClusterRole the README states, as JSON.
fn readme_role() -> Value {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- least-privilege-rules -->")
        .expect("the rules in the README");
    let end = readme.find("<!-- /least-privilege-rules -->").unwrap();
    let block = &readme[start..end];
    let yaml = block
        .split_once("```yaml\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    serde_saphyr::from_str(yaml).unwrap()
}

/// A kubeconfig for a new ServiceAccount bound to `role` (a ClusterRole) cluster-wide, with a
/// token from the TokenRequest API; written 0600 into `dir`.
async fn service_account_kubeconfig(
    c: &kube::Client,
    real: &Real,
    name: &str,
    role: &Value,
    dir: &std::path::Path,
) -> PathBuf {
    service_account_kubeconfig_in(c, real, name, role, None, dir).await
}

/// The same, the ClusterRole bound in namespace `bound_in` only (a RoleBinding there) when given.
async fn service_account_kubeconfig_in(
    c: &kube::Client,
    real: &Real,
    name: &str,
    role: &Value,
    bound_in: Option<&str>,
    dir: &std::path::Path,
) -> PathBuf {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let ns = "rc-installers";
    namespace(c, ns).await;
    let ssa = PatchParams::apply("tests").force();
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), ns);
    sas.patch(
        name,
        &ssa,
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        ),
    )
    .await
    .unwrap();
    let mut role = role.clone();
    role["metadata"]["name"] = json!(name);
    let gvk = kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "ClusterRole");
    let roles: Api<DynamicObject> =
        Api::all_with(c.clone(), &kube::discovery::ApiResource::from_gvk(&gvk));
    roles.patch(name, &ssa, &Patch::Apply(&role)).await.unwrap();
    let kind = if bound_in.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    let gvk = kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
    let resource = kube::discovery::ApiResource::from_gvk(&gvk);
    let bindings: Api<DynamicObject> = match bound_in {
        Some(b) => {
            namespace(c, b).await;
            Api::namespaced_with(c.clone(), b, &resource)
        }
        None => Api::all_with(c.clone(), &resource),
    };
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]});
    bindings
        .patch(name, &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let admin = std::fs::read_to_string(&real.kubeconfig).unwrap();
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_string();
    let path = dir.join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: real\n  context: {{cluster: real, user: {name}}}\ncurrent-context: real\n",
        real.dir.join("pki/ca.crt").display()
    );
    clearml_script::fsutil::write_private(&path, &text).unwrap();
    path
}

/// `can_i` asks about the namespace it is given: an identity allowed to create Deployments in
/// one namespace only (a RoleBinding there) may there, and not in another or cluster-wide.
#[test]
fn can_i_asks_about_the_namespace_given() {
    let real = real();
    let work = tempfile::tempdir().unwrap();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "x"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}]});
    let kubeconfig = rt().block_on(async {
        let admin = client_for(&real.kubeconfig).await;
        service_account_kubeconfig_in(
            &admin,
            real,
            "rc-scoped",
            &role,
            Some("rc-scoped-ns"),
            work.path(),
        )
        .await
    });
    let ask = |ns: &str| {
        format!("print(can_i(\"create\", \"deployments\", #{{ group: \"apps\"{ns} }}).allowed);\n")
    };
    crate::common::Test::new()
        .script(&format!(
            "{}{}{}",
            ask(", namespace: \"rc-scoped-ns\""),
            ask(", namespace: \"rc-other-ns\""),
            ask("")
        ))
        .args(["--kubeconfig", &kubeconfig.display().to_string()])
        .run()
        .success()
        .stdout("true\nfalse\nfalse\n");
}

#[test]
fn least_privilege() {
    use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
    let real = real();
    let _names = STANDARD_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let role = readme_role();
    let rules = role["rules"].as_array().unwrap().clone();
    let work = tempfile::tempdir().unwrap();
    // one rule removed: the verb `create` of the Deployments (and StatefulSets: one rule)
    let mut fewer = role.clone();
    let mut found = false;
    for rule in fewer["rules"].as_array_mut().unwrap() {
        if rule["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("deployments"))
        {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            verbs.retain(|v| v != "create");
            found = true;
        }
    }
    assert!(found && fewer["rules"] != json!(rules));
    let (exact, short) = rt().block_on(async {
        let admin = client_for(&real.kubeconfig).await;
        (
            service_account_kubeconfig(&admin, real, "rc-install-exact", &role, work.path()).await,
            service_account_kubeconfig(&admin, real, "rc-install-short", &fewer, work.path()).await,
        )
    });
    let live = crate::common::Cluster::new(4);
    let state = &live.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");

    // the preflight's permissions check, as each identity: what the stand-in charts render,
    // helm's records and the tool's own, all granted by exactly the README's rules
    let permissions = |kubeconfig: &std::path::Path| {
        let out = standard_site(&live, kubeconfig, "preflight.rhai")
            .args(["--output", "json"])
            .run();
        let report = out.json();
        eprintln!("preflight:\n{report:#}\n{}", out.stderr);
        report_check(&report, "permissions").clone()
    };
    let granted = permissions(&exact);
    assert_eq!(granted["status"], "pass", "{granted}");
    assert!(
        granted["message"].as_str().unwrap().contains(
            "permissions the install needs are granted (6 kinds from 4 chart(s) as rendered with the site values"
        ),
        "{granted}"
    );
    let asked: Vec<&str> = granted["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for p in [
        "create namespaces (cluster-wide)",
        "update secrets in redis-shared",
        "patch secrets in clearml",
        "create statefulsets.apps in redis-shared",
        "watch deployments.apps in clearml-agents",
        "delete ingresses.networking.k8s.io in clearml",
        "list replicasets.apps in clearml",
        "list nodes (cluster-wide)",
    ] {
        assert!(asked.contains(&p), "{p} not asked: {asked:#?}");
    }
    // redis renders no Deployment, and nothing renders a Job
    assert!(!asked.contains(&"create deployments.apps in redis-shared"));
    assert!(!asked.iter().any(|p| p.contains("jobs")), "{asked:#?}");
    let refused = permissions(&short);
    assert_eq!(refused["status"], "fail", "{refused}");
    assert_eq!(
        refused["message"].as_str().unwrap(),
        format!(
            "3 of {} permissions missing: create deployments.apps in clearml, create statefulsets.apps in redis-shared, create deployments.apps in clearml-agents",
            asked.len()
        ),
        "{refused}"
    );
    assert!(
        refused["fix"]
            .as_str()
            .unwrap()
            .contains("least-privilege role")
    );

    let out = standard_install(&live, &short, &[]);
    out.code(1)
        .stderr_has("cannot create resource \"deployments\" in API group \"apps\"");
    eprintln!("with one rule removed:\n{}", out.stderr);
    standard_install(&live, &exact, &[])
        .success()
        .stderr_has("gateway: release clearml-ttr in clearml-agents: deployed");
    // an upgrade (a changed value: helm patches what is there; no `update` is granted on it)
    let upgrade = ["--set", "extra_values.apiserver.replicaCount=2"];
    standard_install(&live, &exact, &upgrade)
        .success()
        .stderr_has("control plane: release clearml in clearml: deployed");
    let helm = crate::common::helm_binaries()[1].1.clone();
    uninstall(&live, &helm, &real.kubeconfig);

    // helm 3 too: the install and the upgrade (its three-way merge patch), with exactly the rules
    let live = crate::common::Cluster::new(3);
    let state = &live.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");
    standard_install(&live, &exact, &[])
        .success()
        .stderr_has("gateway: release clearml-ttr in clearml-agents: deployed");
    standard_install(&live, &exact, &upgrade)
        .success()
        .stderr_has("control plane: release clearml in clearml: deployed");
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        let d = get_json(
            &c,
            "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver",
        )
        .await;
        assert_eq!(d["spec"]["replicas"], 2, "{d}");
    });
    let helm = crate::common::helm_binaries()[0].1.clone();
    uninstall(&live, &helm, &real.kubeconfig);
}

// ---------------------------------------------------------------------------------------------
// Day-2 operations against the real server, as the least-privilege identity.

/// The check of a JSON report by name.
fn report_check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// Preflight, status and uninstall against the real server with real RBAC: run as a
/// ServiceAccount bound to the README's ClusterRole, before and after the standard install.
#[test]
fn preflight_status_and_uninstall_against_the_real_server_as_the_least_privilege_identity() {
    use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
    let real = real();
    let _names = STANDARD_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let role = readme_role();
    let sa = rt().block_on(async {
        let admin = client_for(&real.kubeconfig).await;
        ingress_controller(&real.kubeconfig).await;
        service_account_kubeconfig(&admin, real, "rc-day-two", &role, work.path()).await
    });
    let live = crate::common::Cluster::new(4);
    let state = &live.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");
    state.add_user("supervisor", "supervisor", DEFAULT_COMPANY, Role::System);
    state.add_credentials(
        "example-supervisor-key-replace-me",
        "example-supervisor-secret-replace-me",
        "supervisor",
    );
    let api = format!("status.api_url={}", live.sim.sandbox.clearml.url());

    // preflight before the install: the real server has no StorageClass (no provisioner)
    let out = standard_site(&live, &sa, "preflight.rhai")
        .args(["--output", "json"])
        .run();
    out.code(1).stderr_has("1 of 14 checks failed");
    let report = out.json();
    eprintln!("preflight:\n{report:#}\n{}", out.stderr);
    let cluster = report_check(&report, "cluster");
    assert_eq!(cluster["status"], "pass", "{cluster}");
    assert!(
        cluster["message"]
            .as_str()
            .unwrap()
            .starts_with("Kubernetes v1.34.")
    );
    // the real authorizer's answers: the README's role grants what the stand-in charts render
    let permissions = report_check(&report, "permissions");
    assert_eq!(permissions["status"], "pass", "{permissions}");
    // the reads the README's role leaves out are reported as such (README: the preflight reads
    // more than the install needs)
    let storage = report_check(&report, "storage class");
    assert_eq!(storage["status"], "fail", "{storage}");
    assert!(
        storage["message"]
            .as_str()
            .unwrap()
            .contains("cannot list resource \"storageclasses\" in API group \"storage.k8s.io\" at the cluster scope (403 Forbidden)"),
        "{storage}"
    );
    let ingress = report_check(&report, "ingress class");
    assert_eq!(ingress["status"], "warn", "{ingress}");
    assert_eq!(
        ingress["message"],
        "no default IngressClass; nginx would have to be named"
    );
    let controller = report_check(&report, "ingress controller");
    assert_eq!(controller["status"], "warn", "{controller}");
    assert!(
        controller["message"]
            .as_str()
            .unwrap()
            .contains("cannot list resource \"daemonsets\""),
        "{controller}"
    );
    let lb = report_check(&report, "load balancer");
    assert_eq!(lb["status"], "pass", "{lb}");
    assert!(
        lb["message"]
            .as_str()
            .unwrap()
            .contains("has the address 198.51.100.")
    );
    let capacity = report_check(&report, "capacity");
    assert!(
        capacity["message"]
            .as_str()
            .unwrap()
            .contains("; 0.7 CPUs and 1.5Gi requested by 6 workloads of 4 chart(s) as rendered with the site values"),
        "{capacity}"
    );
    assert_eq!(capacity["status"], "pass", "{capacity}");
    for release in ["redis", "clearml", "clearml-agent", "clearml-ttr"] {
        let r = report_check(&report, &format!("release {release}"));
        assert_eq!(r["status"], "pass", "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .starts_with("not installed yet")
        );
    }

    // the install, then the status
    standard_install(&live, &sa, &[])
        .success()
        .stderr_has("gateway: release clearml-ttr in clearml-agents: deployed");
    let out = standard_site(&live, &sa, "status.rhai")
        .args(["--set", &api, "--output", "json"])
        .run();
    let report = out.json();
    eprintln!("status:\n{report:#}\n{}", out.stderr);
    for (release, ns) in [
        ("clearml", "clearml"),
        ("redis", "redis-shared"),
        ("clearml-agent", "clearml-agents"),
        ("clearml-ttr", "clearml-agents"),
    ] {
        let r = report_check(&report, &format!("release {ns}/{release}"));
        assert_eq!(r["status"], "pass", "{r}");
        assert!(
            r["message"].as_str().unwrap().ends_with(": deployed"),
            "{r}"
        );
    }
    for w in [
        "Deployment clearml/clearml-apiserver",
        "StatefulSet redis-shared/redis-master",
        "Deployment clearml-agents/clearml-agent-agentk8sglue",
    ] {
        let r = report_check(&report, w);
        assert_eq!(r["status"], "pass", "{r}");
        assert!(
            r["message"].as_str().unwrap().starts_with("1/1 ready"),
            "{r}"
        );
    }
    let login = report_check(&report, "credentials");
    assert_eq!(login["status"], "pass", "{login}");
    let router = report_check(&report, "gateway router");
    assert!(
        router["message"]
            .as_str()
            .unwrap()
            .starts_with("routerAddress 198.51.100."),
        "{router}"
    );
    // no ingress controller runs: the hosts have no address (warnings), nothing failed
    assert_eq!(report["failed"], 0, "{report:#}");
    out.success()
        .nowhere("agent-secret-1")
        .nowhere("example-supervisor-secret-replace-me");

    // the uninstall: reverse order, the credentials kept; again: nothing to remove
    let out = standard_site(&live, &sa, "uninstall.rhai")
        .arg("--yes")
        .run();
    out.success();
    let gw = out
        .stderr
        .find("gateway: release clearml-ttr in clearml-agents removed")
        .unwrap_or_else(|| panic!("{}", out.stderr));
    let cp = out
        .stderr
        .find("control plane: release clearml in clearml removed")
        .unwrap();
    assert!(gw < cp, "{}", out.stderr);
    out.stderr_has("kept the credentials Secret and the PersistentVolumeClaims");
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        assert!(
            secret_data(&c, "clearml", "clearml-script-internal-credentials")
                .await
                .is_some()
        );
        let d: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(c.clone(), "clearml");
        assert!(d.get_opt("clearml-apiserver").await.unwrap().is_none());
    });
    standard_site(&live, &sa, "uninstall.rhai")
        .arg("--yes")
        .run()
        .success()
        .stderr_has("control plane: release clearml in clearml was not there")
        .stderr_has("0 release(s) removed");
    remove_namespaces(&real.kubeconfig);
    // the ingress controller's LoadBalancer goes too: the other tests discover the router
    // address from the node without it
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        let req = http::Request::delete("/apis/networking.k8s.io/v1/ingressclasses/nginx")
            .body(Vec::new())
            .unwrap();
        let _ = c.request::<Value>(req).await;
    });
    remove(&real.kubeconfig, &["ingress-nginx"]);
}

/// Remove the standard install's namespaces, awaited until the real namespace controller
/// removed them.
/// The node simulator (kwok, playing the stages of tools/real-cluster-src/kwok/stages.yaml) does
/// a kubelet's part: a scheduled pod becomes Running and Ready on the node's address, a Job's
/// (which never restarts) Succeeds, a deleted one is removed; and the annotation
/// `real-cluster.clearml-script/fail` makes a pod fail on purpose, as the day-2 diagnosis
/// (`inspect::workloads`) reads it: ImagePullBackOff, CrashLoopBackOff (its restarts counting)
/// and Pending.
#[test]
fn kwok_runs_the_pods_and_fails_the_ones_the_annotation_asks_for() {
    use clearml_script::inspect::{PodProblem, workloads};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;
    let real = real();
    let ns = "rc-kwok";
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        namespace(&c, ns).await;
        let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
        for (name, fail) in [
            ("ok", None),
            ("pull", Some("ImagePullBackOff")),
            ("crash", Some("CrashLoopBackOff")),
            ("pending", Some("Pending")),
        ] {
            let annotations = match fail {
                Some(f) => json!({"real-cluster.clearml-script/fail": f}),
                None => json!({}),
            };
            let d = json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                        "spec": {"containers": [{"name": "app", "image": format!("registry.example/{name}:1")}]}}}});
            deployments
                .patch(name, &PatchParams::apply("tests"), &Patch::Apply(&d))
                .await
                .unwrap();
        }
        // a Job's pod never restarts: it Succeeds, and the real Job controller completes the Job
        let jobs: Api<Job> = Api::namespaced(c.clone(), ns);
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "job", "image": "registry.example/job:1"}]}}}});
        jobs.patch("once", &PatchParams::apply("tests"), &Patch::Apply(&job))
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(c.clone(), ns);

        // what the diagnosis says of each workload, once every one is as expected
        let problem = |w: &[clearml_script::inspect::Workload], name: &str| -> Option<PodProblem> {
            let w = w.iter().find(|w| w.name == name)?;
            w.problems.first().cloned()
        };
        let settled = tokio::time::timeout(Duration::from_secs(180), async {
            loop {
                let w = workloads(&c, ns).await.unwrap();
                let ok = w.iter().any(|w| w.name == "ok" && w.healthy && w.ready == 1);
                let reasons = ["pull", "crash", "pending"].map(|n| problem(&w, n));
                let crashed_twice = reasons[1].as_ref().is_some_and(|p| p.restarts >= 2);
                let once = jobs.get("once").await.unwrap();
                let complete = once.status.and_then(|s| s.succeeded) == Some(1);
                if ok && crashed_twice && complete && reasons.iter().all(Option::is_some) {
                    return reasons.map(Option::unwrap);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
        .await
        .expect("the pods reached their states in time");
        let [pull, crash, pending] = settled;
        assert_eq!(pull.reason, "ImagePullBackOff");
        assert_eq!(
            pull.message,
            "Back-off pulling image \"registry.example/pull:1\""
        );
        assert_eq!(pull.container.as_deref(), Some("app"));
        assert_eq!(crash.reason, "CrashLoopBackOff");
        assert_eq!(crash.message, "back-off restarting failed container app");
        assert_eq!(pending.reason, "ContainerCreating");

        // the pods as a kubelet leaves them: on the node's address, an IP of its podCIDR
        let list = |app: &str| {
            let pods = pods.clone();
            let app = app.to_string();
            async move {
                pods.list(&ListParams::default().labels(&format!("app={app}")))
                    .await
                    .unwrap()
                    .items
            }
        };
        let ok = list("ok").await.remove(0);
        let st = ok.status.clone().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.host_ip.as_deref(), Some("192.0.2.11"));
        assert!(st.pod_ip.as_deref().unwrap().starts_with("10.244.1."), "{st:?}");
        let running = &st.container_statuses.unwrap()[0];
        assert!(running.ready && running.state.as_ref().unwrap().running.is_some());
        let crash_pod = list("crash").await.remove(0);
        let st = crash_pod.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let last = st.container_statuses.unwrap()[0].last_state.clone().unwrap();
        assert_eq!(last.terminated.unwrap().exit_code, 1);
        let pull_pod = list("pull").await.remove(0);
        assert_eq!(pull_pod.status.unwrap().phase.as_deref(), Some("Pending"));

        // a deleted pod is removed, and its Deployment's new one runs
        let uid = ok.metadata.uid.clone().unwrap();
        pods.delete(ok.metadata.name.as_deref().unwrap(), &DeleteParams::default())
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(120),
            await_condition(
                pods.clone(),
                ok.metadata.name.as_deref().unwrap(),
                conditions::is_deleted(&uid),
            ),
        )
        .await
        .expect("the deleted pod was removed in time")
        .unwrap();
        tokio::time::timeout(
            Duration::from_secs(120),
            await_condition(deployments.clone(), "ok", conditions::is_deployment_completed()),
        )
        .await
        .expect("the Deployment was ready again in time")
        .unwrap();
    });
    // the namespace goes only once kwok removed its pods
    remove(&real.kubeconfig, &[ns]);
}

fn remove_namespaces(kubeconfig: &std::path::Path) {
    remove(kubeconfig, &["clearml-agents", "redis-shared", "clearml"]);
}

/// Remove namespaces, awaited until the real namespace controller removed them.
fn remove(kubeconfig: &std::path::Path, names: &[&str]) {
    rt().block_on(async {
        let c = client_for(kubeconfig).await;
        let namespaces: Api<Namespace> = Api::all(c.clone());
        for &ns in names {
            let _ = namespaces.delete(ns, &DeleteParams::default()).await;
            let uid = namespaces
                .get_opt(ns)
                .await
                .unwrap()
                .and_then(|n| n.metadata.uid);
            if let Some(uid) = uid {
                tokio::time::timeout(
                    Duration::from_secs(120),
                    await_condition(namespaces.clone(), ns, conditions::is_deleted(&uid)),
                )
                .await
                .expect("the namespace was removed in time")
                .unwrap();
            }
        }
    });
}

/// The kube-rs client and helm act on one cluster, context and storage: helm's own environment
/// overrides (`HELM_KUBECONTEXT`, `HELM_KUBEAPISERVER`, …) cannot point helm elsewhere than the
/// context the connection check checked, and a `HELM_DRIVER` that keeps the release records
/// where the tool does not read them (ConfigMaps) is refused before anything is changed, not
/// a failed step and a new helm revision on every run.
#[test]
fn helms_environment_cannot_split_it_from_the_kubernetes_client() {
    let real = real();
    let ns = "rc-helm-env";
    let kubeconfig = real.kubeconfig.display().to_string();
    let script = format!(
        "let r = install_chart(\"demo\", {:?}, #{{ namespace: \"{ns}\", values: #{{ message: \"one\" }} }});\n\
         print(`revision ${{r.revision}} changed ${{r.changed}}`);\n",
        crate::common::demo_chart()
    );
    for major in [3, 4] {
        let run = |env: &[(&str, &str)]| {
            let mut t = crate::common::Test::new()
                .script(&script)
                .args(["--kubeconfig", &kubeconfig])
                .helm(major);
            for (k, v) in env {
                t = t.env(k, v);
            }
            t.run()
        };
        // a context the kubeconfig does not have: the tool checked `real-cluster`, helm must
        // use it too (and not fail on, or install into, another one)
        run(&[("HELM_KUBECONTEXT", "staging")])
            .success()
            .stdout_has("changed true")
            .nowhere("context \"staging\" does not exist");
        run(&[("HELM_KUBEAPISERVER", "https://127.0.0.1:1")])
            .success()
            .stdout_has("changed false");
        // the release records in ConfigMaps: refused before the first step, nothing written
        for _ in 0..2 {
            run(&[("HELM_DRIVER", "configmap")])
                .code(2)
                .stderr_has("HELM_DRIVER=configmap")
                .stderr_has("nothing was changed");
        }
        rt().block_on(async {
            let c = client_for(&real.kubeconfig).await;
            let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
            let records = cms
                .list(&ListParams::default().labels("owner=helm"))
                .await
                .unwrap();
            assert!(
                records.items.is_empty(),
                "helm {major} wrote release records into ConfigMaps: {:?}",
                records
                    .items
                    .iter()
                    .map(|c| c.metadata.name.clone())
                    .collect::<Vec<_>>()
            );
        });
        remove(&real.kubeconfig, &[ns]);
    }
}

/// A chart of one Deployment whose pods kwok fails as `fail` asks (the annotation of
/// tools/real-cluster's kwok stages), its image from the values.
fn rolling_chart(dir: &std::path::Path) -> String {
    let chart = dir.join("rolling");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: rolling\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/deploy.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}-web}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-web}
      {{- if .Values.fail }}
      annotations: {"real-cluster.clearml-script/fail": {{ .Values.fail | quote }}}
      {{- end }}
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
"#,
    )
    .unwrap();
    chart.display().to_string()
}

/// An upgrade whose new pods cannot start, against the real Deployment controller: its
/// rolling update keeps the old pod ready (readyReplicas 1 of 1) while the new one is in
/// ImagePullBackOff and helm's wait runs out. The diagnosis of the failed wait must name the
/// new pod and its image pull, not say that every workload is ready and the wait was short.
#[test]
fn a_failed_rolling_upgrade_is_diagnosed_by_its_new_pod() {
    let real = real();
    let ns = "rc-rolling";
    let dir = tempfile::tempdir().unwrap();
    let chart = rolling_chart(dir.path());
    let kubeconfig = real.kubeconfig.display().to_string();
    let script = format!(
        "let fail = get(site, \"fail\", \"\");\n\
         install_chart(\"r\", {chart:?}, #{{ namespace: \"{ns}\", wait: true, timeout: get(site, \"timeout\", \"90s\"),\n\
             values: #{{ image: get(site, \"image\", \"registry.example/web:1\"), fail: fail }} }});\n"
    );
    let run = |extra: &[&str]| {
        crate::common::Test::new()
            .script(&script)
            .args(["--kubeconfig", &kubeconfig])
            .args(extra)
            .helm(3)
            .run()
    };
    run(&[]).success();
    let out = run(&[
        "--set",
        "image=registry.example/web:2",
        "--set",
        "fail=ImagePullBackOff",
        "--set",
        "timeout=25s",
    ]);
    out.code(1)
        .stderr_has("Diagnosis: workloads in rc-rolling that are not ready:")
        .stderr_has("ImagePullBackOff")
        .nowhere("every workload in rc-rolling is ready now");
    remove(&real.kubeconfig, &[ns]);
}

/// A kubeconfig whose CA did not sign the server's certificate: the connection check's error
/// says so (the TLS cause), not only that the API "does not answer".
#[test]
fn a_wrong_ca_is_named_by_the_connection_check() {
    let real = real();
    let dir = tempfile::tempdir().unwrap();
    // a CA of its own: the real server's certificate is not signed by it
    let ca = dir.path().join("other-ca.crt");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=other-ca", "-keyout"])
        .arg(dir.path().join("other-ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let text = std::fs::read_to_string(&real.kubeconfig).unwrap();
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let cluster = &mut kc["clusters"][0]["cluster"];
    cluster
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data");
    cluster["certificate-authority"] = json!(ca.display().to_string());
    let wrong = dir.path().join("wrong-ca.kubeconfig");
    std::fs::write(&wrong, kc.to_string()).unwrap();
    crate::common::Test::new()
        .script("kube_version();\nensure_namespace(\"rc-wrong-ca\");\n")
        .args(["--kubeconfig", &wrong.display().to_string()])
        .helm(3)
        .run()
        .code(2)
        .stderr_has("does not answer")
        .stderr_has("UnknownIssuer");
}

/// A Secret key the real API server refuses (`data[my key]: Invalid value`) is refused in the
/// plan pass, before the first step: not after the namespace was made.
#[test]
fn a_secret_key_the_real_server_refuses_stops_the_run_before_the_first_step() {
    let real = real();
    let ns = "rc-secret-key";
    crate::common::Test::new()
        .script(&format!(
            "ensure_namespace(\"{ns}\");\napply_secret(\"{ns}\", \"s\", #{{ \"my key\": \"v\" }});\n"
        ))
        .args(["--kubeconfig", &real.kubeconfig.display().to_string()])
        .helm(3)
        .run()
        .code(2)
        .stderr_has("the key `my key` is not a valid Secret key")
        .nowhere("→ step 1");
    rt().block_on(async {
        let c = client_for(&real.kubeconfig).await;
        let namespaces: Api<Namespace> = Api::all(c);
        assert!(namespaces.get_opt(ns).await.unwrap().is_none());
    });
}

// ---------------------------------------------------------------------------------------------
// Updates the real server refuses, and field values its decoding and validation refuse: a day-2
// `helm upgrade` (a strategic merge patch with helm 3, a server-side apply with helm 4) that
// changes a workload's selector, a StatefulSet's volumeClaimTemplates, a Job's template or a
// Service's clusterIP fails on a real cluster and must fail in the rehearsal too.

/// Run a list of steps (as `run_scenario` runs the scenario): the significant part of each answer.
async fn run_steps(c: &kube::Client, ns: &str, steps: &[Step]) -> Vec<Value> {
    let mut answers = Vec::new();
    for s in steps {
        let fill = |t: &str| t.replace("{ns}", ns);
        let mut req = http::Request::builder().method(s.method).uri(fill(s.path));
        if !s.content_type.is_empty() {
            req = req.header("Content-Type", s.content_type);
        }
        let req = req
            .body(kube::client::Body::from(fill(s.body).into_bytes()))
            .unwrap();
        let res = c.send(req).await.unwrap();
        let code = res.status().as_u16();
        let body = res.into_body().collect_bytes().await.unwrap();
        answers.push(significant(code, &String::from_utf8_lossy(&body)));
    }
    answers
}

fn update_steps() -> Vec<Step> {
    vec![
        step(
            "create the namespace",
            "POST",
            "/api/v1/namespaces",
            JSON,
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"{ns}"}}"#,
        ),
        step(
            "a Deployment",
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            JSON,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#,
        ),
        step(
            "a merge patch of its selector",
            "PATCH",
            "/apis/apps/v1/namespaces/{ns}/deployments/web",
            MERGE,
            r#"{"spec":{"selector":{"matchLabels":{"app":"web","tier":"b"}},"template":{"metadata":{"labels":{"app":"web","tier":"b"}}}}}"#,
        ),
        step(
            "an apply of another selector",
            "PATCH",
            "/apis/apps/v1/namespaces/{ns}/deployments/web?fieldManager=helm&force=true",
            APPLY,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web2"}},"template":{"metadata":{"labels":{"app":"web2"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#,
        ),
        step(
            "a StatefulSet with an 8Gi claim template",
            "PATCH",
            "/apis/apps/v1/namespaces/{ns}/statefulsets/redis?fieldManager=helm",
            APPLY,
            r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"redis"},"spec":{"serviceName":"redis","selector":{"matchLabels":{"app":"redis"}},"template":{"metadata":{"labels":{"app":"redis"}},"spec":{"containers":[{"name":"redis","image":"redis"}]}},"volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"8Gi"}}}}]}}"#,
        ),
        step(
            "the same with 16Gi",
            "PATCH",
            "/apis/apps/v1/namespaces/{ns}/statefulsets/redis?fieldManager=helm",
            APPLY,
            r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"redis"},"spec":{"serviceName":"redis","selector":{"matchLabels":{"app":"redis"}},"template":{"metadata":{"labels":{"app":"redis"}},"spec":{"containers":[{"name":"redis","image":"redis"}]}},"volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"16Gi"}}}}]}}"#,
        ),
        step(
            "a Job",
            "POST",
            "/apis/batch/v1/namespaces/{ns}/jobs",
            JSON,
            r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"migrate","labels":{"app":"migrate"}},"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"m","image":"busybox:1"}]}}}}"#,
        ),
        step(
            "a strategic merge patch of its image",
            "PATCH",
            "/apis/batch/v1/namespaces/{ns}/jobs/migrate",
            "application/strategic-merge-patch+json",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"m","image":"busybox:2"}]}}}}"#,
        ),
        step(
            "a Service",
            "POST",
            "/api/v1/namespaces/{ns}/services",
            JSON,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}"#,
        ),
        step(
            "a merge patch of its clusterIP",
            "PATCH",
            "/api/v1/namespaces/{ns}/services/api",
            MERGE,
            r#"{"spec":{"clusterIP":"10.96.0.250"}}"#,
        ),
        step(
            "an immutable Secret",
            "POST",
            "/api/v1/namespaces/{ns}/secrets",
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"fixed"},"immutable":true,"data":{"k":"YQ=="}}"#,
        ),
        step(
            "a merge patch of its data",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/fixed",
            MERGE,
            r#"{"data":{"k":"Yg=="}}"#,
        ),
        step(
            "a ConfigMap whose data holds a number",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},"data":{"replicas":2}}"#,
        ),
        step(
            "a ConfigMap with an invalid label value",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l","labels":{"version":"1.0 beta"}}}"#,
        ),
        step(
            "a ConfigMap with an invalid data key",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"k"},"data":{"a b":"1"}}"#,
        ),
        step(
            "a ConfigMap with an invalid annotation key",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"an","annotations":{"bad key":"x"}}}"#,
        ),
    ]
}

/// The steps sent in order to the real server and to a fresh sandbox, namespace `ns`: each
/// server's significant answers, and each step where they differ (`step: sandbox ≠ real`).
fn differential(ns: &str, steps: &[Step]) -> (Vec<Value>, Vec<String>) {
    let real_cluster = real();
    let real = rt().block_on(async {
        run_steps(&client_for(&real_cluster.kubeconfig).await, ns, steps).await
    });
    let sim = Sim::start();
    let kubeconfig = sim.sandbox.kubeconfig.clone();
    let sandbox = sim
        .rt
        .block_on(async { run_steps(&client_for(&kubeconfig).await, ns, steps).await });
    let found = steps
        .iter()
        .zip(sandbox.iter().zip(&real))
        .filter(|(_, (a, b))| a != b)
        .map(|(s, (a, b))| format!("{}: sandbox {a} ≠ real {b}", s.name))
        .collect();
    (real, found)
}

#[test]
fn the_sandbox_refuses_the_updates_and_values_the_real_server_refuses() {
    let (_, found) = differential("rc-immutable", &update_steps());
    assert!(found.is_empty(), "divergences:\n{}", found.join("\n"));
}

/// A namespace just deleted, while its controller empties it: the real server keeps it
/// `Terminating`, refuses new content in it (403) and its creation again (409), and takes an
/// apply of it; the sandbox must answer the same (its namespaces stay `Terminating` 2 s).
fn termination_steps() -> Vec<Step> {
    const NS: &str = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"{ns}"}}"#;
    vec![
        step(
            "create the namespace",
            "POST",
            "/api/v1/namespaces",
            JSON,
            NS,
        ),
        step(
            "a ConfigMap in it",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}"#,
        ),
        step(
            "delete the namespace",
            "DELETE",
            "/api/v1/namespaces/{ns}",
            "",
            "",
        ),
        step("read it", "GET", "/api/v1/namespaces/{ns}", "", ""),
        step(
            "create a ConfigMap in it",
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#,
        ),
        step(
            "apply a Secret in it",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/s?fieldManager=t",
            APPLY,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"k":"v"}}"#,
        ),
        step("create it again", "POST", "/api/v1/namespaces", JSON, NS),
        step(
            "apply it",
            "PATCH",
            "/api/v1/namespaces/{ns}?fieldManager=t&force=true",
            APPLY,
            NS,
        ),
        step(
            "delete it again",
            "DELETE",
            "/api/v1/namespaces/{ns}",
            "",
            "",
        ),
    ]
}

#[test]
fn a_namespace_being_deleted_answers_in_the_sandbox_as_on_the_real_server() {
    let (real, found) = differential("rc-terminating", &termination_steps());
    assert!(found.is_empty(), "divergences:\n{}", found.join("\n"));
    // what the tool reads from the real refusal
    assert_eq!(real[4]["code"], 403, "{:#}", real[4]);
}
