//! What independent stand-ins found: a dropped connection on a read-only look-up, the helm
//! repositories a run refreshes, the oci chart's registry, Keycloak URLs, the agent's file
//! server URL.

use std::io::{Read, Write};

use serde_json::Value;

use crate::common::{Test, repo};

/// An API whose first connection is dropped after the request is read; later ones answer.
fn flaky_api() -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                continue; // dropped: closed without an answer
            }
            let body = r#"{"meta":{"result_code":200,"result_subcode":0,"result_msg":"OK"},"data":{"queues":[{"id":"q1","name":"default"}]}}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn a_dropped_connection_on_a_read_only_look_up_is_retried() {
    let (url, seen) = flaky_api();
    let client = clearml_script::clearml::Client::new(clearml_script::clearml::Connection {
        api_url: url,
        key: "KEY".into(),
        secret: clearml_script::secret::Secret::new("secret-1"),
        ca_file: None,
        insecure: false,
        timeout: std::time::Duration::from_secs(10),
        retry_base: std::time::Duration::from_millis(10),
        attempts: 3,
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let q = rt
        .block_on(client.find_queue("default", None))
        .expect("retried after the dropped connection");
    assert_eq!(q.unwrap()["id"], "q1");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
}

fn plan(values: &str) -> Value {
    let t = Test::new().file("extra.yaml", values);
    let extra = t.dir().join("extra.yaml").display().to_string();
    let out = t
        .args(["install.rhai", "--values"])
        .arg(repo().join("examples/site.yaml").display().to_string())
        .arg("--values")
        .arg(repo().join("examples/site-gpu.yaml").display().to_string())
        .args(["--values", &extra])
        .args(["--dry-run", "--output", "json"])
        .run();
    out.success();
    out.json()
}

fn actions<'a>(plan: &'a Value, kind: &str) -> Vec<&'a Value> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

#[test]
fn only_the_playbooks_repositories_are_refreshed() {
    let p = plan("{}\n");
    let updates = actions(&p, "helm.repo_update");
    assert!(!updates.is_empty());
    for u in updates {
        assert_eq!(u["names"], serde_json::json!(["clearml-enterprise"]), "{u}");
    }
}

#[test]
fn the_oci_charts_follow_the_registry() {
    let p = plan("generation: oci\nregistry: registry.example.com\n");
    let charts: Vec<&str> = actions(&p, "helm.upgrade_install")
        .iter()
        .map(|a| a["chart"].as_str().unwrap())
        .collect();
    assert!(!charts.is_empty());
    for c in &charts {
        assert!(
            c.starts_with("oci://registry.example.com/clearml/"),
            "{charts:?}"
        );
    }
}

#[test]
fn keycloak_urls_and_the_agents_file_server_are_consistent() {
    let p = plan(
        "sso:\n  provider: keycloak\n  url: https://kc.example.com/\n  realm: clearml\n  client_id: cid\n  client_secret: csecret-123\n",
    );
    let text = p.to_string();
    assert!(
        text.contains("https://kc.example.com/realms/clearml/protocol/openid-connect/auth"),
        "{text}"
    );
    assert!(!text.contains("kc.example.com//realms"));
    let installs = actions(&p, "helm.upgrade_install");
    let agent = installs
        .iter()
        .find(|a| a["release"] == "clearml-agent")
        .unwrap();
    let server = installs.iter().find(|a| a["release"] == "clearml").unwrap();
    let files_url = agent["values"]["agentk8sglue"]["fileServerUrlReference"]
        .as_str()
        .unwrap();
    let server_text = server["values"].to_string();
    let host = files_url.trim_start_matches("https://");
    assert!(
        server_text.contains(&format!("\"{host}\"")),
        "the agent's {files_url} is the file server's ingress host: {server_text}"
    );
}
