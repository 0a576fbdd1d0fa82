//! The control-plane path: the guide's overrides key by key, the server-shaped chart rendered
//! with them by both helm versions, live installs against the simulator (credentials kept on
//! re-runs, a broken install repaired by a re-run), and bad input.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::{Cluster, Test, helm_binaries, repo};

fn guide_site() -> String {
    repo()
        .join("tests/fixtures/guide-site.yaml")
        .display()
        .to_string()
}

fn plan_of(args: &[&str]) -> Value {
    let out = Test::new()
        .arg(
            repo()
                .join("scripts/install-control-plane.rhai")
                .display()
                .to_string(),
        )
        .args(args)
        .args(["--dry-run", "--output", "json"])
        .run();
    out.success();
    out.json()
}

fn install_values(plan: &Value) -> Value {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "helm.upgrade_install")
        .expect("an upgrade_install")["values"]
        .clone()
}

#[test]
fn the_guides_example_gives_the_guides_overrides_key_by_key() {
    let creds = repo().join("tests/fixtures/guide-internal-credentials.yaml");
    let plan = plan_of(&[
        "--values",
        &guide_site(),
        "--values",
        &creds.display().to_string(),
    ]);
    let kinds: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "helm.repo_add",
            "helm.repo_update",
            "kube.ensure_namespace",
            "kube.apply",
            "helm.upgrade_install"
        ]
    );
    let install = &plan["actions"][4];
    assert_eq!(install["release"], "clearml");
    assert_eq!(install["chart"], "clearml-enterprise/clearml-enterprise");
    assert_eq!(install["namespace"], "clearml");
    assert_eq!(install["create_namespace"], true);
    assert_eq!(
        plan["actions"][0]["url"],
        "https://raw.githubusercontent.com/clearml/clearml-enterprise-helm-charts/gh-pages"
    );
    assert_eq!(plan["actions"][0]["password"], "<redacted>");

    let text = std::fs::read_to_string(repo().join("tests/fixtures/guide-overrides.yaml")).unwrap();
    let mut expected: Value = serde_saphyr::from_str(&text).unwrap();
    // in a plan, secrets show as <redacted>; their real values reach helm (see the live tests)
    for path in [
        "/imageCredentials/password",
        "/clearml/apiserverKey",
        "/clearml/apiserverSecret",
        "/clearml/fileserverKey",
        "/clearml/fileserverSecret",
        "/clearml/secureAuthTokenSecret",
        "/clearml/testUserKey",
        "/clearml/testUserSecret",
        "/apiserver/extraEnvs/6/value",
        "/apiserver/extraEnvs/7/value",
    ] {
        *expected.pointer_mut(path).unwrap() = json!("<redacted>");
    }
    assert_eq!(install_values(&plan), expected);
}

#[test]
fn the_oci_generation() {
    let plan = plan_of(&[
        "--values",
        &repo().join("examples/site-oci.yaml").display().to_string(),
    ]);
    let actions = plan["actions"].as_array().unwrap();
    assert_eq!(actions[0]["kind"], "helm.registry_login");
    assert_eq!(actions[0]["host"], "docker.io");
    assert_eq!(actions[0]["username"], "allegroaienterprise");
    let install = actions.last().unwrap();
    assert_eq!(
        install["chart"],
        "oci://docker.io/clearml/clearml-enterprise"
    );
    assert_eq!(install["release"], "clearml-enterprise");
    let v = &install["values"];
    assert_eq!(v["mongodb"]["enabled"], false);
    assert_eq!(v["mckMongodb"], json!({"enabled": true, "migrated": true}));
    assert_eq!(
        v["fileserver"]["ingress"]["hostName"],
        "files.clearml.example.com"
    );
    let envs = v["apiserver"]["extraEnvs"].as_array().unwrap();
    assert!(
        !envs
            .iter()
            .any(|e| e["name"].as_str().unwrap().contains("supervisor"))
    );
    assert!(
        v["clearml"].get("apiserverKey").is_none(),
        "the chart generates them"
    );
}

#[test]
fn sso_and_fixed_users() {
    let plan = plan_of(&[
        "--values",
        &guide_site(),
        "--set",
        "sso.provider=keycloak",
        "--set",
        "sso.client_id=kc-client",
        "--set",
        "sso.client_secret=kc-secret-1",
        "--set",
        "sso.url=https://kc.example.com",
        "--set",
        "sso.realm=ml",
    ]);
    let envs = install_values(&plan)["apiserver"]["extraEnvs"].clone();
    let tail: Vec<Value> = envs.as_array().unwrap()[11..].to_vec();
    let p = "CLEARML__services__login__sso__oauth_client__keycloak__";
    assert_eq!(
        tail,
        vec![
            // validated as a secret: masked in the plan whatever its key's name
            json!({"name": "CLEARML__secure__login__sso__oauth_client__keycloak__client_id", "value": "<redacted>"}),
            json!({"name": "CLEARML__secure__login__sso__oauth_client__keycloak__client_secret", "value": "<redacted>"}),
            json!({"name": format!("{p}base_url"), "value": "https://kc.example.com/realms/ml/"}),
            json!({"name": format!("{p}authorize_url"), "value": "https://kc.example.com/realms/ml/protocol/openid-connect/auth"}),
            json!({"name": format!("{p}access_token_url"), "value": "https://kc.example.com/realms/ml/protocol/openid-connect/token"}),
            json!({"name": format!("{p}idp_logout"), "value": "true"}),
        ]
    );
    let t = Test::new().file(
        "users.yaml",
        "fixed_users:\n  - {username: my_user, password: my_password, name: My User, admin: true}\n  - {username: viewer, password: pw2}\n",
    );
    let users = t.dir().join("users.yaml").display().to_string();
    let plan = plan_of(&["--values", &guide_site(), "--values", &users]);
    assert_eq!(
        install_values(&plan)["apiserver"]["additionalConfigs"]["apiserver.conf"],
        "<redacted>"
    );
}

#[test]
fn bad_input_lists_every_problem_and_runs_nothing() {
    Test::new()
        .file(
            "bad.yaml",
            "base_domain: <BASE_DOMAIN>\nsupervisor: {email: not-an-email}\nsso: {provider: auth0, client_id: x, base_url: https://a.example.com, authorize_url: https://a.example.com/a, access_token_url: https://a.example.com/t}\nfixed_users:\n  - {username: alice, password: a1}\n  - {username: alice, password: a2}\n  - {username: 1234, password: a3, admin: \"yes\"}\n",
        )
        .arg(repo().join("scripts/install-control-plane.rhai").display().to_string())
        .args(["--values", &guide_site(), "--values", "bad.yaml"])
        .env("HELM_BIN", "/nonexistent/helm")
        .run()
        .code(2)
        .stdout("")
        .stderr_has("`base_domain` (bad.yaml:1:14) still holds the placeholder <BASE_DOMAIN>")
        .stderr_has("`supervisor.email` (bad.yaml:2:21): `not-an-email` is not an email address")
        .stderr_has("`sso.client_secret` is missing (secret)")
        .stderr_has("`fixed_users[1].username` (bad.yaml:6:16): \"alice\" is listed twice")
        .stderr_has("`fixed_users[2].username` (bad.yaml:7:16): must be text: quote it")
        .stderr_has("`fixed_users[2].admin` (bad.yaml:7:43): must be true or false")
        .stderr_has("error: validate: 6 problems in the values; nothing was changed");
}

/// Runs of the control-plane playbook against a simulated cluster.
impl Cluster {
    fn control_plane(&self, extra: &[&str]) -> crate::common::Output {
        self.test()
            .arg(
                repo()
                    .join("scripts/install-control-plane.rhai")
                    .display()
                    .to_string(),
            )
            .args(["--values", &guide_site()])
            .args(extra)
            .run()
    }

    fn secret(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        let s = self
            .sim
            .kube_get(&format!("/api/v1/namespaces/clearml/secrets/{name}"));
        s["data"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap();
                (k.clone(), String::from_utf8(raw).unwrap())
            })
            .collect()
    }
}

fn live_install(major: u32) {
    let live = Cluster::new(major);
    live.control_plane(&[
        "--set",
        "internal_credentials=",
        "--set",
        "fixed_users_pass_hashed=true",
    ])
    .code(2); // `internal_credentials=` is a string, not a map
    // generated credentials this time
    let t = Test::new().file("no-creds.yaml", "fixed_users_pass_hashed: true\nfixed_users:\n  - {username: my_user, password: my_password, name: My User, admin: true}\n");
    let extra = t.dir().join("no-creds.yaml").display().to_string();
    let out = live.control_plane(&["--values", &extra]);
    out.success()
        .stderr_has("→ step 1: helm.repo_add")
        .stderr_has("→ step 7: helm.upgrade_install")
        .stderr_has("internal credentials: 7 generated;")
        .nowhere("dckr-test-token-0001")
        .nowhere("supervisor-secret-0001");
    // the real values reached the cluster
    assert_eq!(
        live.secret("clearml-image-credentials")["password"],
        "dckr-test-token-0001"
    );
    let deploy = live
        .sim
        .kube_get("/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver");
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str().unwrap().ends_with(name))
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(value("supervisor__user_key"), "SUPERVISORKEY0001");
    assert_eq!(value("supervisor__email"), "\"admin@example.com\"");
    assert_eq!(
        value("supervisor__sec_groups"),
        "[\"users\", \"admins\", \"queue_admins\"]"
    );
    let ingress = live
        .sim
        .kube_get("/apis/networking.k8s.io/v1/namespaces/clearml/ingresses/clearml-apiserver");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "api.clearml.example.com"
    );
    // fixed users: the password is base64 of a bcrypt hash of the real one
    let conf = live.sim.kube_get("/api/v1/namespaces/clearml/configmaps/clearml-apiserver-configs")["data"]["apiserver.conf"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(conf.contains("pass_hashed: true"), "{conf}");
    let hashed = conf
        .lines()
        .find(|l| l.trim().starts_with("password:"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap();
    let bcrypt_hash = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(hashed)
            .unwrap(),
    )
    .unwrap();
    assert!(bcrypt::verify("my_password", &bcrypt_hash).unwrap());

    // the generated internal credentials are kept and passed to the chart
    let kept = live.secret("clearml-script-internal-credentials");
    assert_eq!(kept.len(), 7);
    assert_eq!(
        live.secret("clearml-conf")["apiserver_key"],
        kept["apiserverKey"]
    );

    // a re-run reuses them, and the hashed password's hash: nothing changes, so the chart is
    // not upgraded (no new revision, no restarts)
    live.control_plane(&["--values", &extra])
        .success()
        .stderr_has("internal credentials: 7 reused")
        .stderr_has("chart clearml in clearml: unchanged (revision 1), not upgraded");
    assert_eq!(live.secret("clearml-script-internal-credentials"), kept);
    assert_eq!(
        live.secret("clearml-conf")["apiserver_key"],
        kept["apiserverKey"]
    );
    let status: Value = serde_json::from_str(
        &live
            .sim
            .helm(
                &helm_binaries()[(major - 3) as usize].1,
                &["status", "clearml", "-n", "clearml", "-o", "json"],
            )
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        status["version"], 1,
        "an unchanged re-run makes no new revision"
    );
    assert_eq!(status["info"]["status"], "deployed");
    let conf_again = live.sim.kube_get("/api/v1/namespaces/clearml/configmaps/clearml-apiserver-configs")["data"]["apiserver.conf"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(conf_again, conf, "the unchanged password kept its hash");

    // a changed value upgrades: revision 2
    live.control_plane(&["--values", &extra, "--set", "service_type=NodePort"])
        .success()
        .nowhere("not upgraded");
    let status: Value = serde_json::from_str(
        &live
            .sim
            .helm(
                &helm_binaries()[(major - 3) as usize].1,
                &["status", "clearml", "-n", "clearml", "-o", "json"],
            )
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["version"], 2);
}

#[test]
fn live_install_with_helm_3() {
    live_install(3);
}

#[test]
fn live_install_with_helm_4() {
    live_install(4);
}

#[test]
fn a_broken_install_is_repaired_by_a_re_run() {
    broken_install_repaired(4);
}

#[test]
fn a_broken_install_is_repaired_by_a_re_run_with_helm_3() {
    broken_install_repaired(3);
}

fn broken_install_repaired(major: u32) {
    let live = Cluster::new(major);
    // the Kubernetes API fails while the chart's Deployments are written (helm 3 creates them,
    // helm 4 applies them server-side)
    live.sim.faults.fail(
        if major == 3 { "POST" } else { "PATCH" },
        "/apis/apps/v1/namespaces/clearml/deployments",
        1,
        500,
    );
    live.control_plane(&[])
        .code(1)
        .stderr_has(
            "error: install_chart: step 5 (helm.upgrade_install): helm upgrade --install failed",
        )
        .stderr_has(
            "4 steps finished before the failing step; a re-run continues from the cluster's state",
        );
    live.control_plane(&[]).success();
    let status: Value = serde_json::from_str(
        &live
            .sim
            .helm(
                &helm_binaries()[(major - 3) as usize].1,
                &["status", "clearml", "-n", "clearml", "-o", "json"],
            )
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["info"]["status"], "deployed");
}

#[test]
fn simulator_chart_renders_the_guides_overrides_with_both_helms() {
    let overrides = repo().join("tests/fixtures/guide-overrides.yaml");
    let chart = repo().join("src/sandbox/charts/clearml-enterprise");
    for (major, helm) in helm_binaries() {
        let out = std::process::Command::new(&helm)
            .args([
                "template",
                "clearml",
                &chart.display().to_string(),
                "-n",
                "clearml",
                "-f",
                &overrides.display().to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {major}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("value: '\"admin@example.com\"'"),
            "helm {major}:\n{text}"
        );
        assert!(
            text.contains("host: \"app.clearml.example.com\""),
            "helm {major}"
        );
        assert!(
            text.contains("applications_enabled: \"true\""),
            "helm {major}"
        );
    }
}

#[test]
fn a_release_stuck_pending_is_reported_with_the_choices() {
    let live = Cluster::new(4);
    // a helm install interrupted while it applies the chart leaves the release pending-install
    live.sim.faults.delay(
        "PATCH",
        "/apis/apps/v1/namespaces/clearml/deployments",
        1,
        std::time::Duration::from_secs(30),
    );
    let helm = &helm_binaries()[1].1;
    let chart = repo().join("src/sandbox/charts/clearml-enterprise");
    let mut stuck = std::process::Command::new(helm)
        .args([
            "upgrade",
            "--install",
            "clearml",
            &chart.display().to_string(),
            "-n",
            "clearml",
            "--create-namespace",
        ])
        .env("KUBECONFIG", &live.sim.sandbox.kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut pending = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (_, body) = live.sim.kube_http(
            "GET",
            "/api/v1/namespaces/clearml/secrets?labelSelector=status%3Dpending-install",
            "application/json",
            b"",
        );
        if body.contains("sh.helm.release.v1.clearml.v1") {
            pending = true;
            break;
        }
    }
    stuck.kill().unwrap();
    let _ = stuck.wait();
    assert!(pending, "helm wrote its pending release record");
    // the tool did not see that helm exit: it cannot know that no helm holds the release
    live.control_plane(&[])
        .code(1)
        .stderr_has("the release clearml in clearml is pending-install (revision 1, written ")
        .stderr_has("this tool did not see the helm that wrote it exit")
        .stderr_has(
            "run again with --recover-pending, which will uninstall the unfinished first install",
        )
        .stderr_has("`helm rollback clearml -n clearml`")
        .stderr_has("nothing was changed");
    // the operator says no helm runs on it: uninstalled, then installed, and told so
    live.control_plane(&["--recover-pending"])
        .success()
        .stderr_has("--recover-pending: no helm operation runs on it: recovering it: uninstall the unfinished first install (`helm uninstall clearml -n clearml`")
        .stderr_has("the unfinished install was uninstalled");
    assert_eq!(release_states(&live), vec![(1, "deployed".to_string())]);
}

/// Every revision of the release clearml in clearml with its state, from helm's records.
fn release_states(live: &Cluster) -> Vec<(i64, String)> {
    let list = live
        .sim
        .kube_get("/api/v1/namespaces/clearml/secrets?labelSelector=owner%3Dhelm,name%3Dclearml");
    let mut states: Vec<(i64, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = &s["metadata"]["labels"];
            (
                labels["version"].as_str().unwrap().parse().unwrap(),
                labels["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    states.sort();
    states
}

#[test]
fn a_release_left_pending_fails_the_step_with_the_state_and_the_way_out() {
    let live = Cluster::new(4);
    // helm cannot record the release as deployed (its update of the release record fails), so
    // the release stays pending-install although helm itself exits 0
    live.sim
        .faults
        .fail("PUT", "/api/v1/namespaces/clearml/secrets", 1, 500);
    live.control_plane(&[])
        .code(1)
        .stderr_has("the release clearml in clearml is pending-install, not deployed")
        .stderr_has("`helm uninstall clearml -n clearml`");
    // helm has exited, which the tool noted on the record: the next run uninstalls the
    // unfinished install, says so, and installs
    live.control_plane(&[])
        .success()
        .stderr_has("left by a helm that has exited (helm upgrade --install, run by clearml-script")
        .stderr_has("recovering it: uninstall the unfinished first install (`helm uninstall clearml -n clearml`");
    assert_eq!(release_states(&live), vec![(1, "deployed".to_string())]);
}

#[test]
fn an_upgrade_left_pending_is_rolled_back_to_the_last_deployed_revision_then_upgraded() {
    for major in [3, 4] {
        let live = Cluster::new(major);
        live.control_plane(&[]).success();
        // the upgrade's final write of its new record (revision 2) fails: pending-upgrade
        live.sim.faults.fail(
            "PUT",
            "/api/v1/namespaces/clearml/secrets/sh.helm.release.v1.clearml.v2",
            1,
            500,
        );
        live.control_plane(&["--set", "service_type=NodePort"])
            .code(1)
            .stderr_has("the release clearml in clearml is pending-upgrade, not deployed")
            .stderr_has("The next run recovers it");
        let states = release_states(&live);
        assert_eq!(states.last().unwrap().1, "pending-upgrade", "helm {major}");
        live.control_plane(&["--set", "service_type=NodePort"])
            .success()
            .stderr_has("is pending-upgrade (revision 2), left by a helm that has exited")
            .stderr_has("recovering it: roll it back to revision 1, the last deployed (`helm rollback clearml 1 -n clearml`)");
        // revision 3 is the rollback (a copy of 1), revision 4 this run's upgrade; helm's own
        // rollback leaves the history of revision 2 as it was, as a rollback by hand does
        let states = release_states(&live);
        assert_eq!(
            states[2..],
            [(3, "superseded".to_string()), (4, "deployed".to_string())],
            "helm {major}: {states:?}"
        );
    }
}

#[test]
fn diff_shows_what_a_run_would_change_with_secrets_masked() {
    use base64::Engine as _;
    let live = Cluster::new(3);
    live.control_plane(&[]).success();
    let token = "dckr-changed-token-7788";
    let out = live.control_plane(&[
        "--dry-run",
        "--diff",
        "--set",
        &format!("dockerhub_token={token}"),
        "--set",
        "service_type=NodePort",
    ]);
    out.success()
        .stdout_has("--- clearml/clearml values (revision 1)")
        .stdout_has("+++ clearml/clearml values (this run)")
        .stdout_has("--- clearml/clearml manifest (revision 1)")
        .stdout_has("<redacted>")
        .nowhere(token)
        .nowhere("dckr-test-token-0001");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with('+') && l.trim_end().ends_with("type: NodePort")),
        "{}",
        out.stdout
    );
    // nor inside the base64 of the image pull Secret
    let b64 = base64::engine::general_purpose::STANDARD;
    for prefix in ["", "a", "ab"] {
        let enc = b64.encode(format!("{prefix}{token}"));
        let middle = &enc[4..enc.len() - 4];
        out.nowhere(middle);
    }
    // nothing was changed
    let status: Value = serde_json::from_str(
        &live
            .sim
            .helm(
                &helm_binaries()[0].1,
                &["status", "clearml", "-n", "clearml", "-o", "json"],
            )
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["version"], 1);
}

/// A credential in a server's environment (`extra_env`, a `…_TOKEN`) that the site no longer
/// gives: the deployed value is still a secret, masked in `--diff`'s values and manifest.
#[test]
fn diff_masks_a_deployed_credential_the_site_dropped() {
    let live = Cluster::new(3);
    let canary = "old-env-canary-4411";
    live.control_plane(&[
        "--set-json",
        &format!(r#"extra_env.apiserver=[{{"name":"MY_SERVICE_TOKEN","value":"{canary}"}}]"#),
    ])
    .success();
    live.control_plane(&["--dry-run", "--diff"])
        .success()
        .stdout_has("MY_SERVICE_TOKEN")
        .stdout_has("<redacted>")
        .nowhere(canary);
}

/// The fixed users all removed (the site moves to SSO): the deployed `apiserver.conf` still holds
/// their passwords, masked in `--diff`'s values and manifest.
#[test]
fn diff_masks_the_passwords_of_fixed_users_the_site_removed() {
    let live = Cluster::new(3);
    let canary = "old-user-pass-canary-5522";
    live.control_plane(&[
        "--set-json",
        &format!(r#"fixed_users=[{{"username":"jane","password":"{canary}","name":"Jane"}}]"#),
    ])
    .success();
    live.control_plane(&["--dry-run", "--diff", "--set-json", "fixed_users=[]"])
        .success()
        .stdout_has("apiserver.conf")
        .nowhere(canary);
}

/// A workload of the release deleted by hand: status says to run the install again, which
/// restores it (the step is not skipped as unchanged while the release's objects are missing).
#[test]
fn a_re_run_restores_a_workload_deleted_from_the_release() {
    let live = Cluster::new(3);
    live.control_plane(&[]).success();
    let path = "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver";
    let (status, text) = live.sim.kube_http("DELETE", path, "application/json", b"");
    assert_eq!(status, 200, "{text}");
    live.control_plane(&[])
        .success()
        .stderr_has("but the cluster lacks Deployment clearml-apiserver: upgraded to restore them");
    let (status, _) = live.sim.kube_http("GET", path, "application/json", b"");
    assert_eq!(
        status, 200,
        "the re-run left the deleted Deployment missing"
    );
}

/// The `helm-exited` note goes only on the record the tool's own helm wrote. Here another helm
/// (a colleague's, CI's) starts an upgrade between the tool's read of the release and its own
/// helm, which then refuses ("another operation is in progress") and exits: the pending record
/// is the other helm's, which is still running. The tool must not note it as left by a helm that
/// exited, and the next run must not roll it back under the running helm.
#[test]
fn a_pending_record_of_another_running_helm_is_not_noted_as_exited() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::new(4);
    let chart = crate::common::demo_chart();
    let install = |message: &str| {
        format!(
            "install_chart(\"demo\", \"{chart}\", #{{ namespace: \"a\", wait: false, values: #{{ message: \"{message}\" }} }});\n"
        )
    };
    c.test().script(&install("one")).run().success();
    // the other helm's upgrade waits for a workload that never becomes ready
    c.sim.faults.break_workload(
        "demo-demo",
        clearml_script::sandbox::faults::WorkloadFault::Pending,
    );
    let real = helm_binaries()[1].1.clone();
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in *\" upgrade --install \"*) case \" $* \" in *dry-run*) ;; *)\n\
               KUBECONFIG={kc} HELM_DRIVER=secret \"{real}\" upgrade demo \"{chart}\" -n a --set message=colleague --wait --timeout 40s >/dev/null 2>&1 &\n\
               sleep 3;;\n\
             esac;; esac\n\
             exec \"{real}\" \"$@\"\n",
            kc = c.sim.sandbox.kubeconfig.display(),
            real = real.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = c
        .test()
        .script(&install("two"))
        .env("HELM_BIN", &wrapper.display().to_string())
        .run();
    out.code(1).stderr_has(
        "Another helm operation holds the release demo in a (revision 2, pending-upgrade)",
    );
    assert!(
        !out.stderr.contains("The next run recovers it"),
        "{}",
        out.stderr
    );
    // the record is the other helm's revision 2, pending while it waits
    let secret = c
        .sim
        .kube_get("/api/v1/namespaces/a/secrets/sh.helm.release.v1.demo.v2");
    assert_eq!(secret["metadata"]["labels"]["status"], "pending-upgrade");
    assert!(
        secret["metadata"]["annotations"]["clearml-script/helm-exited"].is_null(),
        "another helm's running upgrade was noted as exited: {:#}\n--- stderr of the run\n{}",
        secret["metadata"],
        out.stderr
    );
    // the next run, while the other helm still waits, refuses rather than rolling it back
    c.test()
        .script(&install("two"))
        .run()
        .code(1)
        .stderr_has("this tool did not see the helm that wrote it exit")
        .stderr_has("--recover-pending");
}
