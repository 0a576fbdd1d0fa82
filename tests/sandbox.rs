//! The Kubernetes API simulator against real Helm 3 and Helm 4, and the `clearml-script sandbox`
//! command used by hand.

use std::io::BufRead;
use std::path::Path;

use crate::common::{BIN, Sim, demo_chart, helm_binaries, http, http_with};

fn chart() -> String {
    demo_chart()
}

fn configmap_message(sim: &Sim, ns: &str) -> String {
    sim.kube_get(&format!("/api/v1/namespaces/{ns}/configmaps/demo-demo"))["data"]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

fn release_secrets(sim: &Sim, ns: &str) -> usize {
    sim.kube_get(&format!(
        "/api/v1/namespaces/{ns}/secrets?labelSelector=owner%3Dhelm"
    ))["items"]
        .as_array()
        .unwrap()
        .len()
}

fn conformance(major: u32, helm: &Path) {
    let sim = Sim::start();
    let ns = "demo";
    let chart = chart();
    // every revision holds workloads of every kind
    let upgrade = |extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "--install",
            "demo",
            chart.as_str(),
            "-n",
            ns,
            "--wait",
            "--timeout",
            "60s",
            "--set",
            "statefulset=true",
            "--set",
            "job=true",
            "--set",
            "serviceType=LoadBalancer",
        ];
        args.extend_from_slice(extra);
        sim.helm(helm, &args)
    };
    // install with --create-namespace and --wait
    upgrade(&["--create-namespace"])
        .success()
        .stdout_has("STATUS: deployed");
    // a second upgrade
    upgrade(&["--set", "message=bye"]).success();
    assert_eq!(configmap_message(&sim, ns), "bye");

    let list: serde_json::Value = serde_json::from_str(
        &sim.helm(helm, &["list", "-n", ns, "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["revision"], "2");
    assert_eq!(list[0]["status"], "deployed");

    let status: serde_json::Value = serde_json::from_str(
        &sim.helm(helm, &["status", "demo", "-n", ns, "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["info"]["status"], "deployed");
    assert_eq!(status["version"], 2);

    let values: serde_json::Value = serde_json::from_str(
        &sim.helm(helm, &["get", "values", "demo", "-n", ns, "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(values["message"], "bye");

    // rollback
    sim.helm(helm, &["rollback", "demo", "1", "-n", ns, "--wait"])
        .success();
    assert_eq!(configmap_message(&sim, ns), "hello");

    // an upgrade that fails part-way is rolled back
    sim.faults.fail(
        "PATCH",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        1,
        500,
    );
    let flag = if major == 3 {
        "--atomic"
    } else {
        "--rollback-on-failure"
    };
    upgrade(&[flag, "--set", "message=broken", "--set", "image=nginx:9"]).code(1);
    let status: serde_json::Value = serde_json::from_str(
        &sim.helm(helm, &["status", "demo", "-n", ns, "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(configmap_message(&sim, ns), "hello");

    // uninstall leaves no release secret and no objects behind
    sim.helm(helm, &["uninstall", "demo", "-n", ns, "--wait"])
        .success();
    assert_eq!(release_secrets(&sim, ns), 0);
    let deployments = sim.kube_get(&format!("/apis/apps/v1/namespaces/{ns}/deployments"));
    assert_eq!(deployments["items"].as_array().unwrap().len(), 0);
    let replicasets = sim.kube_get(&format!("/apis/apps/v1/namespaces/{ns}/replicasets"));
    assert_eq!(replicasets["items"].as_array().unwrap().len(), 0);
}

#[test]
fn simulator_helm_3_conformance() {
    let (major, helm) = helm_binaries()[0].clone();
    assert_eq!(major, 3);
    conformance(major, &helm);
}

#[test]
fn simulator_helm_4_conformance() {
    let (major, helm) = helm_binaries()[1].clone();
    assert_eq!(major, 4);
    conformance(major, &helm);
}

#[test]
fn the_sandbox_command_serves_helm_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["sandbox", "--dir", &dir.path().display().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut kubeconfig = String::new();
    let mut api = String::new();
    let mut charts = String::new();
    for line in lines.by_ref().take(5) {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("kubeconfig: ") {
            kubeconfig = p.to_string();
        }
        if let Some(u) = line.strip_prefix("kubernetes API: ") {
            api = u.to_string();
        }
        if let Some(u) = line.strip_prefix("chart repository: ") {
            charts = u.to_string();
        }
    }
    assert!(!kubeconfig.is_empty() && !api.is_empty());
    // the chart repository it prints is one helm can add and pull the stand-in charts from
    let helm_home = dir.path().join("helm-home");
    let (_, helm4) = helm_binaries().into_iter().find(|(m, _)| *m == 4).unwrap();
    for args in [
        &["repo", "add", "sbx", charts.as_str()][..],
        &[
            "pull",
            "sbx/clearml-enterprise",
            "-d",
            &helm_home.display().to_string(),
        ],
    ] {
        let out = std::process::Command::new(&helm4)
            .args(args)
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?} with the printed chart repository {charts:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let creds = std::fs::metadata(dir.path().join("clearml-credentials.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(creds.permissions().mode() & 0o777, 0o600);
    for (major, helm) in helm_binaries() {
        let release = format!("hand{major}");
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&helm)
                .args(args)
                .env("KUBECONFIG", &kubeconfig)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "helm {major} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "upgrade",
            "--install",
            &release,
            &chart(),
            "-n",
            &release,
            "--create-namespace",
            "--wait",
            "--timeout",
            "60s",
        ]);
        run(&["uninstall", &release, "-n", &release]);
        let all: &[&str] = if major == 3 { &["-a"] } else { &[] };
        let out = std::process::Command::new(&helm)
            .args(["list", "-A", "-o", "json"])
            .args(all)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v, serde_json::json!([]), "helm {major} left a release");
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn simulator_unknown_kinds_and_malformed_bodies_are_answered_like_a_real_server() {
    let sim = Sim::start();
    let (code, body) = sim.kube_http(
        "GET",
        "/apis/example.com/v1/widgets",
        "application/json",
        b"",
    );
    assert_eq!(code, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "NotFound");
    let (code, body) = sim.kube_http(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        b"{not json",
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = sim.kube_http(
        "GET",
        "/api/v1/namespaces/default/configmaps/missing",
        "application/json",
        b"",
    );
    assert_eq!(code, 404);
    let (code, body) = sim.kube_http(
        "POST",
        "/api/v1/namespaces/default/secrets",
        "application/vnd.kubernetes.protobuf",
        b"k8s\0\x0a\x05",
    );
    assert_eq!(code, 400, "{body}");
}

/// A deterministic xorshift generator: the same bodies on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn simulator_no_request_body_crashes() {
    let sim = Sim::start();
    let kube = sim.sandbox.kube.plain_url();
    let api = sim.sandbox.clearml.url();
    let token = format!("Bearer {}", sim.sandbox.kube.token());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds: Vec<Vec<u8>> = vec![
        br#"{"metadata":{"name":"x","labels":{"a":1}}}"#.to_vec(),
        br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"k":"dg=="}}"#
            .to_vec(),
        br#"[{"op":"replace","path":"/x/y/z","value":1}]"#.to_vec(),
        br#"{"name":"q","tags":["a"]}"#.to_vec(),
        b"k8s\0".to_vec(),
        crate_protobuf_like(),
    ];
    let targets: Vec<(&str, String, &str)> = vec![
        (
            "POST",
            format!("{kube}/api/v1/namespaces/default/secrets"),
            "application/vnd.kubernetes.protobuf",
        ),
        (
            "POST",
            format!("{kube}/api/v1/namespaces/default/configmaps"),
            "application/json",
        ),
        (
            "PUT",
            format!("{kube}/api/v1/namespaces/default/configmaps/x"),
            "application/json",
        ),
        (
            "PATCH",
            format!("{kube}/apis/apps/v1/namespaces/default/deployments/d"),
            "application/apply-patch+yaml",
        ),
        (
            "PATCH",
            format!("{kube}/api/v1/namespaces/default/configmaps/x"),
            "application/strategic-merge-patch+json",
        ),
        (
            "PATCH",
            format!("{kube}/api/v1/namespaces/default/configmaps/x"),
            "application/json-patch+json",
        ),
        (
            "POST",
            format!("{kube}/api/v1/namespaces"),
            "application/vnd.kubernetes.protobuf",
        ),
        ("POST", format!("{api}/queues.create"), "application/json"),
        ("POST", format!("{api}/auth.login"), "application/json"),
    ];
    for i in 0..1500 {
        let (method, url, ct) = &targets[i % targets.len()];
        let mut body = seeds[(rng.next() as usize) % seeds.len()].clone();
        // mutate: flip bytes, truncate, or append noise
        match rng.next() % 4 {
            0 => {
                for _ in 0..(rng.next() % 4 + 1) {
                    if !body.is_empty() {
                        let at = (rng.next() as usize) % body.len();
                        body[at] = rng.next() as u8;
                    }
                }
            }
            1 => body.truncate((rng.next() as usize) % (body.len() + 1)),
            2 => {
                let n = (rng.next() % 64) as usize;
                body.extend(rng.bytes(n));
            }
            _ => {
                let n = (rng.next() % 128) as usize;
                body = rng.bytes(n);
            }
        }
        let auth = url.starts_with(&kube).then_some(token.as_str());
        let (code, text) = http_with(method, url, ct, &body, auth);
        assert!(
            (200..500).contains(&code),
            "{method} {url} with {body:?} answered {code}: {text}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "not JSON: {text}"
        );
    }
    let (code, _) = sim.kube_http("GET", "/version", "application/json", b"");
    assert_eq!(code, 200);
    // without the bearer token, or with another, the API answers 401 to everything
    for auth in [None, Some("Bearer wrong"), Some("Basic dXNlcjpwdw==")] {
        let (code, _) = http_with(
            "GET",
            &format!("{kube}/api/v1/secrets"),
            "application/json",
            b"",
            auth,
        );
        assert_eq!(code, 401, "{auth:?}");
    }
    let (code, _) = http(
        "GET",
        &format!("{api}/_sandbox/requests"),
        "application/json",
        b"",
    );
    assert_eq!(code, 401);
    let (code, _) = http("GET", &format!("{api}/debug.ping"), "application/json", b"");
    assert_eq!(code, 200);
}

/// A protobuf envelope with a Secret inside, for the fuzzer to mutate.
fn crate_protobuf_like() -> Vec<u8> {
    let mut v = b"k8s\0".to_vec();
    // TypeMeta{apiVersion "v1", kind "Secret"}, raw Secret{metadata{name "p"}}
    v.extend([0x0a, 0x0c, 0x0a, 0x02, b'v', b'1', 0x12, 0x06]);
    v.extend(b"Secret");
    v.extend([0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, b'p']);
    v
}

/// A sandbox run never touches the cluster of the user's kubeconfig, even one that answers:
/// every step goes to the sandbox's own cluster (the early connection check is for live runs).
#[test]
fn a_sandbox_run_leaves_the_users_cluster_alone() {
    let users = crate::common::Cluster::new(4);
    let script = "ensure_namespace(\"rehearsal-only\");";
    users
        .test()
        .script(script)
        .arg("--sandbox")
        .run()
        .success()
        .stderr_has("→ step 1: kube.ensure_namespace");
    let names: Vec<String> = users.sim.kube_get("/api/v1/namespaces")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");
    assert!(!names.contains(&"rehearsal-only".to_string()), "{names:?}");
    // and the same script run live there does reach it
    users.test().script(script).run().success();
    assert_eq!(
        users.sim.kube_get("/api/v1/namespaces/rehearsal-only")["metadata"]["name"],
        "rehearsal-only"
    );
}
