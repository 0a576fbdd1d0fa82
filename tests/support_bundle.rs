//! The support bundle: what it holds, and that no secret is inside it. Every secret of the
//! install is a canary; the bundle is made by a run that knows none of them (its site values
//! hold no secret), so each one must be caught by the bundle's own masking.

use std::io::Read;

use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
use clearml_script::sandbox::faults::WorkloadFault;

use crate::common::{Cluster, Test, repo};

const CANARIES: &[(&str, &str)] = &[
    ("dockerhub_token", "CANARY-dockerhub-0001"),
    ("github_token", "CANARY-github-0002"),
    ("supervisor.user_key", "CANARY-supkey-0003"),
    ("supervisor.user_secret", "CANARY-supsec-0004"),
    ("agent.key", "CANARY-agentkey-0006"),
    ("agent.secret", "CANARY-agentsec-0007"),
    ("agent.redis.password", "CANARY-redis-0008"),
    ("gateway.key", "CANARY-gwkey-0009"),
    ("gateway.secret", "CANARY-gwsec-0010"),
];

fn unpack(path: &std::path::Path) -> Vec<(String, String)> {
    let f = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            (name, text)
        })
        .collect()
}

#[test]
fn the_support_bundle_holds_what_helps_and_no_secret() {
    let c = Cluster::new(4);
    let state = &c.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials(
        "CANARY-agentkey-0006",
        "CANARY-agentsec-0007",
        "agent-admin",
    );
    let t = Test::new();
    let xdg = t.dir().join("state").display().to_string();
    let mut install = c
        .test()
        .env("XDG_STATE_HOME", &xdg)
        .args(["install.rhai", "--values"])
        .arg(repo().join("examples/site.yaml").display().to_string())
        .arg("--values")
        .arg(repo().join("examples/site-gpu.yaml").display().to_string())
        .args(["--set", "agent.redis.enabled=true"])
        .arg("--set")
        .arg(format!("agent.redis.chart_repo_url={}", c.repo_url))
        .arg("--set")
        .arg(format!("agent.api_url={}", c.sim.sandbox.clearml.url()));
    for (k, v) in CANARIES {
        install = install.arg("--set").arg(format!("{k}={v}"));
    }
    install.run().success();
    // the generated internal credentials are secrets too
    let creds = c
        .sim
        .kube_get("/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials");
    let mut canaries: Vec<String> = CANARIES.iter().map(|(_, v)| v.to_string()).collect();
    for v in creds["data"].as_object().unwrap().values() {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        canaries.push(String::from_utf8(raw).unwrap());
    }
    // a crashing workload, whose log goes into the bundle
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::CrashLoopBackOff);
    let (code, _) = c.sim.kube_http(
        "PATCH",
        "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver",
        "application/merge-patch+json",
        br#"{"metadata": {"annotations": {"touched": "1"}}}"#,
    );
    assert_eq!(code, 200);
    // the run log of the install is kept, private and redacted
    let log_path = t.dir().join("state/clearml-script/last-run.log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("→ step 5: helm.upgrade_install"), "{log}");

    let out = t.dir().join("bundle.tar.gz");
    std::fs::write(
        t.dir().join("bundle-site.yaml"),
        "base_domain: clearml.example.com\nagent: {enabled: true, redis: {enabled: true}}\ngateway: {enabled: true}\n",
    )
    .unwrap();
    let bundle_site = t.dir().join("bundle-site.yaml").display().to_string();
    Test::new()
        .args([
            "support-bundle",
            &out.display().to_string(),
            "--values",
            &bundle_site,
        ])
        .arg("--kubeconfig")
        .arg(c.sim.sandbox.kubeconfig.display().to_string())
        .helm(4)
        .env("XDG_STATE_HOME", &xdg)
        .arg("--set")
        .arg(format!("status.api_url={}", c.sim.sandbox.clearml.url()))
        .run()
        .success()
        .stderr_has("support bundle: ");
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let files = unpack(&out);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "support-bundle/run/last-run.log",
        "support-bundle/run/last-plan.json",
        "support-bundle/releases/clearml/clearml/values.json",
        "support-bundle/releases/clearml/clearml/manifest.json",
        "support-bundle/releases/clearml-agents/clearml-agent/values.json",
        "support-bundle/releases/redis-shared/redis/values.json",
        "support-bundle/releases/clearml-agents/clearml-ttr/manifest.json",
        "support-bundle/cluster/nodes.json",
        "support-bundle/namespaces/clearml/pods.json",
        "support-bundle/namespaces/clearml/events.json",
        "support-bundle/namespaces/clearml/workloads.json",
        "support-bundle/logs/clearml/clearml-apiserver-sbx0.log",
        "support-bundle/clearml/server-info.json",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let text = |n: &str| &files.iter().find(|(x, _)| x.ends_with(n)).unwrap().1;
    assert!(text("logs/clearml/clearml-apiserver-sbx0.log").contains("cannot connect to mongodb"));
    assert!(text("clearml/server-info.json").contains("3.22.0"));
    assert!(text("clearml/clearml/values.json").contains("<redacted>"));
    assert!(text("clearml/clearml/values.json").contains("api.clearml.example.com"));
    for (name, body) in &files {
        for canary in &canaries {
            assert!(
                !body.contains(canary.as_str()),
                "{canary} is in {name}:\n{body}"
            );
        }
    }
}

/// The archive is 0600 (README: "the archive is 0600") even where a file of that name was
/// already there, readable by others: it is replaced, not rewritten in place.
#[test]
fn an_existing_file_at_the_output_path_does_not_leave_the_bundle_readable() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::new(4);
    let t = Test::new();
    let out = t.dir().join("bundle.tar.gz");
    std::fs::write(&out, "an old bundle, shared with a colleague").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        t.dir().join("site.yaml"),
        "base_domain: clearml.example.com\n",
    )
    .unwrap();
    Test::new()
        .args(["support-bundle", &out.display().to_string(), "--values"])
        .arg(t.dir().join("site.yaml").display().to_string())
        .arg("--kubeconfig")
        .arg(c.sim.sandbox.kubeconfig.display().to_string())
        .helm(4)
        .env(
            "XDG_STATE_HOME",
            &t.dir().join("state").display().to_string(),
        )
        .arg("--set")
        .arg(format!("status.api_url={}", c.sim.sandbox.clearml.url()))
        .run()
        .success();
    assert!(!unpack(&out).is_empty());
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A read that fails while the bundle is collected (the API answers 500 to the Nodes list, as
/// a failing server does) is a note in the bundle, as every other read's failure: the
/// bundle is still written, when it is needed most.
#[test]
fn a_failed_read_is_a_note_and_the_bundle_is_still_written() {
    let sim = crate::common::Sim::start();
    let t = Test::new().file("site.yaml", "base_domain: clearml.example.com\n");
    let kept = tempfile::tempdir().unwrap();
    let out = kept.path().join("bundle.tar.gz");
    let state = kept.path().join("state").display().to_string();
    sim.faults.fail("GET", "/api/v1/nodes", 1, 500);
    t.args([
        "support-bundle",
        &out.display().to_string(),
        "--values",
        "site.yaml",
    ])
    .arg("--kubeconfig")
    .arg(sim.sandbox.kubeconfig.display().to_string())
    .helm(4)
    .env("XDG_STATE_HOME", &state)
    .run()
    .success();
    let files = unpack(&out);
    let notes = &files
        .iter()
        .find(|(n, _)| n.ends_with("NOTES.txt"))
        .expect("NOTES.txt")
        .1;
    assert!(
        notes.contains("nodes not read") && notes.contains("injected fault"),
        "{notes}"
    );
    assert!(
        files
            .iter()
            .any(|(n, _)| n.ends_with("namespaces/clearml/pods.json"))
    );
}

/// A crashing Deployment `legacy-app` of another application in the namespace `clearml`
/// (created first), with these container `args` and `env`; its pod's log is `log`.
fn legacy_app(c: &Cluster, args: serde_json::Value, env: serde_json::Value, log: &str) {
    let post = |path: &str, body: serde_json::Value| {
        let (code, text) = c.sim.kube_http(
            "POST",
            path,
            "application/json",
            body.to_string().as_bytes(),
        );
        assert!(code == 201 || code == 200, "POST {path}: {code} {text}");
    };
    post(
        "/api/v1/namespaces",
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clearml"}}),
    );
    c.sim
        .faults
        .break_workload("legacy-app", WorkloadFault::CrashLoopBackOff);
    post(
        "/apis/apps/v1/namespaces/clearml/deployments",
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "legacy-app", "namespace": "clearml"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "legacy-app"}},
                "template": {
                    "metadata": {"labels": {"app": "legacy-app"}},
                    "spec": {"containers": [{"name": "main", "image": "legacy:1", "args": args, "env": env}]},
                },
            },
        }),
    );
    let (code, text) = c.sim.kube_http(
        "PATCH",
        "/api/v1/namespaces/clearml/pods/legacy-app-sbx0",
        "application/merge-patch+json",
        serde_json::json!({"metadata": {"annotations": {
            clearml_script::sandbox::faults::LOG_ANNOTATION: log,
        }}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(code, 200, "{text}");
}

/// The support bundle of the cluster with a site that names no secret: its files.
fn bundle_of(c: &Cluster) -> Vec<(String, String)> {
    let t = Test::new();
    let out = t.dir().join("bundle.tar.gz");
    std::fs::write(
        t.dir().join("site.yaml"),
        "base_domain: clearml.example.com\n",
    )
    .unwrap();
    Test::new()
        .args(["support-bundle", &out.display().to_string(), "--values"])
        .arg(t.dir().join("site.yaml").display().to_string())
        .arg("--kubeconfig")
        .arg(c.sim.sandbox.kubeconfig.display().to_string())
        .helm(4)
        .env(
            "XDG_STATE_HOME",
            &t.dir().join("state").display().to_string(),
        )
        .arg("--set")
        .arg(format!("status.api_url={}", c.sim.sandbox.clearml.url()))
        .run()
        .success();
    unpack(&out)
}

/// Credentials the site does not name and no Secret holds, in what another application of the
/// namespace shows (its log, its pod's environment and arguments): a URL's password, an
/// `Authorization` header, `password=…`, a JSON `"api_key"`. None is in the bundle; the text
/// around them is.
#[test]
fn credentials_no_secret_holds_are_masked_in_logs_and_pods() {
    let c = Cluster::new(4);
    legacy_app(
        &c,
        serde_json::json!([
            "--db",
            "postgres://app:Pg-Pass-7781@db:5432/x",
            "--password=Arg-Pass-7785"
        ]),
        serde_json::json!([{"name": "DATABASE_URL", "value": "mysql://root:My-Pass-7786@mysql/db"}]),
        "connecting to postgres://app:Pg-Pass-7781@db:5432/x\n\
         GET /v1/info Authorization: Bearer eyJhbGciOi.Tok-7782\n\
         login with password=Hunter-7783 user=admin\n\
         {\"level\":\"error\",\"api_key\": \"Key-7784\",\"msg\":\"refused\"}\n",
    );
    let files = bundle_of(&c);
    let log = &files
        .iter()
        .find(|(n, _)| n.ends_with("logs/clearml/legacy-app-sbx0.log"))
        .expect("the crashing pod's log")
        .1;
    for kept in [
        "postgres://app:",
        "@db:5432/x",
        "Authorization: Bearer ",
        "user=admin",
        "\"msg\":\"refused\"",
    ] {
        assert!(log.contains(kept), "{kept} lost from:\n{log}");
    }
    for (name, body) in &files {
        for n in 7781..=7786 {
            assert!(
                !body.contains(&format!("-{n}")),
                "canary {n} is in {name}:\n{body}"
            );
        }
    }
}

/// The log of a pod that is not ready but cannot be read (an identity that may not read pod
/// logs) is said in NOTES.txt, as every other read that failed, not left out silently.
#[test]
fn a_log_that_cannot_be_read_is_noted() {
    let c = Cluster::new(4);
    legacy_app(
        &c,
        serde_json::json!([]),
        serde_json::json!([]),
        "crashed\n",
    );
    c.sim.faults.fail(
        "GET",
        "/api/v1/namespaces/clearml/pods/legacy-app-sbx0/log",
        10,
        403,
    );
    let files = bundle_of(&c);
    let notes = &files
        .iter()
        .find(|(n, _)| n.ends_with("NOTES.txt"))
        .unwrap()
        .1;
    assert!(
        notes.contains("logs/clearml/legacy-app-sbx0.log: not read: cannot read the log of clearml/legacy-app-sbx0: "),
        "{notes}"
    );
}
