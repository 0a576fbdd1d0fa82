//! kube-rs against the Kubernetes API simulator: get, list, apply, replace, delete, watch, and
//! waiting for readiness.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};

use crate::common::Sim;

async fn client(sim: &Sim) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&sim.sandbox.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[test]
fn simulator_get_list_apply_replace_delete() {
    let sim = Sim::start();
    sim.rt.block_on(async {
        let c = client(&sim).await;
        let nodes: Api<Node> = Api::all(c.clone());
        let list = nodes.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        let addresses = list.items[0].status.as_ref().unwrap().addresses.as_ref().unwrap();
        assert!(addresses.iter().any(|a| a.type_ == "ExternalIP"));

        // server-side apply creates, then updates
        let namespaces: Api<Namespace> = Api::all(c.clone());
        let ssa = PatchParams::apply("clearml-script");
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clearml"}});
        namespaces.patch("clearml", &ssa, &Patch::Apply(&ns)).await.unwrap();
        let got = namespaces.get("clearml").await.unwrap();
        assert_eq!(got.status.unwrap().phase.as_deref(), Some("Active"));

        let secrets: Api<Secret> = Api::namespaced(c.clone(), "clearml");
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "creds", "labels": {"app.kubernetes.io/managed-by": "clearml-script"}},
            "stringData": {"k": "v"},
        }))
        .unwrap();
        let created = secrets.create(&PostParams::default(), &s).await.unwrap();
        let err = secrets.create(&PostParams::default(), &s).await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(ref e) if e.code == 409), "{err:?}");
        let found = secrets
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=clearml-script"))
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);
        let none = secrets.list(&ListParams::default().labels("app=other")).await.unwrap();
        assert!(none.items.is_empty());

        // replace with the current resourceVersion; a stale one conflicts
        let mut updated = created.clone();
        updated.metadata.labels.as_mut().unwrap().insert("x".into(), "y".into());
        let replaced = secrets.replace("creds", &PostParams::default(), &updated).await.unwrap();
        assert_ne!(replaced.metadata.resource_version, created.metadata.resource_version);
        let err = secrets.replace("creds", &PostParams::default(), &updated).await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(ref e) if e.code == 409), "{err:?}");

        secrets.delete("creds", &DeleteParams::default()).await.unwrap();
        let err = secrets.get("creds").await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(ref e) if e.code == 404 && e.reason == "NotFound"), "{err:?}");
    });
}

#[test]
fn simulator_watch_sees_changes_and_deployments_become_ready() {
    let sim = Sim::start();
    sim.rt.block_on(async {
        let c = client(&sim).await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let stream = watcher(cms.clone(), watcher::Config::default()).applied_objects();
        let mut stream = Box::pin(stream);
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "watched"}, "data": {"a": "1"}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(20), async {
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

        let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
        let d = serde_json::json!({
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
            Duration::from_secs(20),
            await_condition(
                deployments.clone(),
                "web",
                conditions::is_deployment_completed(),
            ),
        )
        .await
        .expect("ready in time")
        .unwrap();
        assert_eq!(ready.unwrap().status.unwrap().ready_replicas, Some(1));
    });
}
