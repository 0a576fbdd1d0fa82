//! Every key reachable: `extra_env` lists merged by name into the generated environments, and
//! the site values for what a site could reach before only through `extra_values` (cookie
//! domain, hosts, Ingresses, Service types per server, rollback, `create_namespace`, a registry
//! token per chart, the queues' API identity, the vendor's script paths), each followed from the
//! site file to the chart values and, in the sandbox, to the objects the charts render.

use base64::Engine as _;
use serde_json::{Value, json};

use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};

use crate::common::{Cluster, Output, Test, repo};

fn example(name: &str) -> String {
    repo().join("examples").join(name).display().to_string()
}

fn guide_site() -> String {
    repo()
        .join("tests/fixtures/guide-site.yaml")
        .display()
        .to_string()
}

/// The dry-run plan of a standard playbook with the guide's site and a layer of site values.
fn plan(t: Test, script: &str, sites: &[String], layer: &str) -> (Output, Value) {
    let mut t = t.file("layer.yaml", layer).arg(script);
    for s in sites {
        t = t.args(["--values", s]);
    }
    let layer = t.dir().join("layer.yaml").display().to_string();
    let out = t
        .args([
            "--values",
            &layer,
            "--skip-preflight",
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    out.success();
    let json = out.json();
    (out, json)
}

fn actions<'a>(plan: &'a Value, kind: &str) -> Vec<&'a Value> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

fn env_names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

const EXTRA_ENV: &str = "\
extra_env:
  apiserver:
    - {name: CLEARML__apiserver__company__unique_names, value: \"false\"}
    - {name: MY_FEATURE, value: \"on\"}
    - {name: PROXY_PASSWORD, value: proxy-pass-0001}
    - {name: FROM_ENV, value: {env: SV_EXTRA_0001}}
  webserver:
    - {name: WEB_FLAG, value: \"1\"}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
";

#[test]
fn extra_env_extends_the_generated_lists_merged_by_name() {
    let (out, plan) = plan(
        Test::new().env("SV_EXTRA_0001", "from-env-0001"),
        "install-control-plane.rhai",
        &[guide_site()],
        EXTRA_ENV,
    );
    out.stderr_has(
        "extra_env.apiserver: CLEARML__apiserver__company__unique_names replaces the value the playbook generates",
    )
    .nowhere("proxy-pass-0001")
    .nowhere("from-env-0001");
    let values = &actions(&plan, "helm.upgrade_install")[0]["values"];
    // the generated list, as the guide has it, then the site's own variables in its order
    let text = std::fs::read_to_string(repo().join("tests/fixtures/guide-overrides.yaml")).unwrap();
    let guide: Value = serde_saphyr::from_str(&text).unwrap();
    let mut expected = env_names(&guide["apiserver"]["extraEnvs"]);
    expected.extend(["MY_FEATURE", "PROXY_PASSWORD", "FROM_ENV"]);
    let envs = &values["apiserver"]["extraEnvs"];
    assert_eq!(env_names(envs), expected);
    let value = |name: &str| {
        envs.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["value"]
            .clone()
    };
    // replaced where it stood, the supervisor's variables kept
    assert_eq!(value("CLEARML__apiserver__company__unique_names"), "false");
    assert_eq!(
        value("CLEARML__secure__credentials__supervisor__role"),
        "system"
    );
    assert_eq!(value("MY_FEATURE"), "on");
    // secret by the variable's name, and from the environment
    assert_eq!(value("PROXY_PASSWORD"), "<redacted>");
    assert_eq!(value("FROM_ENV"), "<redacted>");
    assert_eq!(
        values["webserver"]["extraEnvs"],
        json!([
            {"name": "WEB_FLAG", "value": "1"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        ])
    );
    assert!(values["fileserver"].get("extraEnvs").is_none(), "{values}");
}

#[test]
fn extra_values_still_replace_a_list_whole_as_the_readme_says() {
    let (_, plan) = plan(
        Test::new(),
        "install-control-plane.rhai",
        &[guide_site()],
        "extra_values:\n  apiserver:\n    extraEnvs: [{name: ONLY, value: \"1\"}]\n",
    );
    let values = &actions(&plan, "helm.upgrade_install")[0]["values"];
    assert_eq!(
        values["apiserver"]["extraEnvs"],
        json!([{"name": "ONLY", "value": "1"}])
    );
}

#[test]
fn bad_extra_env_entries_are_refused_with_their_place_and_nothing_runs() {
    let t = Test::new().file(
        "layer.yaml",
        "extra_env:\n  apiserver:\n    - {name: A, value: 1}\n    - {name: A, value: \"x\"}\n    - {value: \"x\"}\n    - {name: B}\n    - {name: C, value: \"x\", valueFrom: {}}\n    - {name: D, vaule: \"x\"}\n  webserver: nope\n  websrver: []\n",
    );
    let layer = t.dir().join("layer.yaml").display().to_string();
    t.arg("install-control-plane.rhai")
    .args(["--values", &guide_site(), "--values", &layer, "--dry-run"])
    .run()
    .code(2)
    .stderr_has("layer.yaml:10:13: unknown key `extra_env.websrver`; did you mean `extra_env.webserver`?");
    // without the misspelt key, the entries' own problems, all together
    let t = Test::new().file(
        "layer.yaml",
        "extra_env:\n  apiserver:\n    - {name: A, value: 1}\n    - {name: A, value: \"x\"}\n    - {value: \"x\"}\n    - {name: B}\n    - {name: C, value: \"x\", valueFrom: {}}\n    - {name: D, vaule: \"x\"}\n  webserver: nope\n",
    );
    let layer = t.dir().join("layer.yaml").display().to_string();
    t.arg("install-control-plane.rhai")
        .args(["--values", &guide_site(), "--values", &layer, "--dry-run"])
        .run()
        .code(2)
        .stderr_has("`extra_env.apiserver[0].value` (")
        .stderr_has("layer.yaml:3:24): must be a string, found a number")
        .stderr_has("`extra_env.apiserver[1].name` (")
        .stderr_has("A is listed twice")
        .stderr_has("`extra_env.apiserver[2].name`: must be the variable's name")
        .stderr_has("`extra_env.apiserver[3]` (")
        .stderr_has("layer.yaml:6:7): has neither value nor valueFrom")
        .stderr_has("`extra_env.apiserver[4]` (")
        .stderr_has("layer.yaml:7:7): has both value and valueFrom")
        .stderr_has("`extra_env.apiserver[5].vaule` (")
        .stderr_has("is not a key of an environment variable")
        .stderr_has("`extra_env.webserver` (")
        .stderr_has("must be a list")
        .nowhere("→ step");
}

#[test]
fn new_site_values_reach_the_chart_values() {
    let (_, plan) = plan(
        Test::new(),
        "install-control-plane.rhai",
        &[guide_site()],
        "cookie_domain: .example.com\napi_host: api.ml.example.com\napp_host: ml.example.com\n\
         ingress: {enabled: false}\nservice_types: {webserver: LoadBalancer}\nservice_type: NodePort\n\
         rollback_on_failure: true\ncreate_namespace: false\n",
    );
    let install = actions(&plan, "helm.upgrade_install")[0];
    let v = &install["values"];
    assert_eq!(v["clearml"]["cookieDomain"], ".example.com");
    assert_eq!(
        v["apiserver"]["ingress"],
        json!({"enabled": false, "hostName": "api.ml.example.com"})
    );
    assert_eq!(
        v["webserver"]["ingress"],
        json!({"enabled": false, "hostName": "ml.example.com"})
    );
    assert_eq!(
        v["fileserver"]["ingress"]["hostName"],
        "file.clearml.example.com"
    );
    assert_eq!(v["apiserver"]["service"]["type"], "NodePort");
    assert_eq!(v["fileserver"]["service"]["type"], "NodePort");
    assert_eq!(v["webserver"]["service"]["type"], "LoadBalancer");
    assert_eq!(install["rollback_on_failure"], true);
    assert_eq!(install["create_namespace"], false);
    // the tool creates no namespace either (its credentials Secret goes into an existing one)
    assert!(actions(&plan, "kube.ensure_namespace").is_empty(), "{plan}");
    assert_eq!(actions(&plan, "kube.apply").len(), 1);
}

#[test]
fn new_site_values_are_validated() {
    let t = Test::new().file(
        "layer.yaml",
        "cookie_domain: other.org\napi_host: \"http://api\"\napp_host: app.clearml.example.com\n\
         file_host: app.clearml.example.com\nservice_types: {webserver: Balancer}\ncreate_namespace: maybe\n\
         ingress: {enabled: 1}\n",
    );
    let layer = t.dir().join("layer.yaml").display().to_string();
    t.arg("install-control-plane.rhai")
    .args(["--values", &guide_site(), "--values", &layer, "--dry-run"])
    .run()
    .code(2)
    .stderr_has("`api_host` (")
    .stderr_has("is a URL; write the domain alone")
    .stderr_has("app.clearml.example.com is also app_host: each server needs a host of its own")
    .stderr_has("`cookie_domain` (")
    .stderr_has("app.clearml.example.com is not in other.org: the browser would not send the login cookie to it")
    .stderr_has("`service_types.webserver` (")
    .stderr_has("`Balancer` is not one of ClusterIP, NodePort, LoadBalancer")
    .stderr_has("`create_namespace` (")
    .stderr_has("`ingress.enabled` (")
    .nowhere("→ step");
}

#[test]
fn per_chart_tokens_queue_identity_and_vendor_scripts_reach_the_plan() {
    let (out, plan) = plan(
        Test::new(),
        "install.rhai",
        &[
            example("site.yaml"),
            example("site-gpu.yaml"),
            example("site-airgapped.yaml"),
        ],
        "agent:\n  queue_api: {url: \"https://queues.example.com\", key: qk-0001, secret: qs-0001}\n  \
         dockerhub_token: agent-token-0001\n  extra_env: [{name: CLEARML_AGENT_DEBUG, value: \"1\"}]\n\
         gateway:\n  dockerhub_token: gw-token-0001\n  ingress: {enabled: false}\n\
         apps:\n  upload_script: vendor/upload_apps.py\n  convert_script: vendor/convert_image_registry.py\n\
         control_plane: false\n",
    );
    out.nowhere("agent-token-0001")
        .nowhere("gw-token-0001")
        .nowhere("qk-0001")
        .nowhere("qs-0001");
    let queues = actions(&plan, "clearml.create_queue");
    assert_eq!(queues.len(), 2, "{plan}");
    for q in queues {
        assert_eq!(q["api_url"], "https://queues.example.com");
        assert_eq!(q["key"], "<redacted>");
    }
    let installs = actions(&plan, "helm.upgrade_install");
    let agent = installs
        .iter()
        .find(|a| a["release"] == "clearml-agent")
        .unwrap();
    assert_eq!(
        agent["values"]["agentk8sglue"]["extraEnvs"],
        json!([{"name": "CLEARML_AGENT_DEBUG", "value": "1"}])
    );
    let gateway = installs
        .iter()
        .find(|a| a["release"] == "clearml-ttr")
        .unwrap();
    assert_eq!(gateway["values"]["ingress"]["enabled"], false);
    let convert = actions(&plan, "apps.convert_registry");
    assert!(
        convert[0]["script"]
            .as_str()
            .unwrap()
            .ends_with("vendor/convert_image_registry.py"),
        "{plan}"
    );
    let upload = actions(&plan, "apps.upload");
    assert!(
        upload[0]["script"]
            .as_str()
            .unwrap()
            .ends_with("vendor/upload_apps.py"),
        "{plan}"
    );
    // a queue identity needs both halves
    let t = Test::new().file("half.yaml", "agent: {queue_api: {key: qk-0002}}\n");
    let half = t.dir().join("half.yaml").display().to_string();
    t.arg("install-agent.rhai")
        .args([
            "--values",
            &example("site.yaml"),
            "--values",
            &example("site-gpu.yaml"),
            "--values",
            &half,
            "--dry-run",
        ])
        .run()
        .code(2)
        .stderr_has("`agent.queue_api`")
        .stderr_has("give both key and secret")
        .nowhere("qk-0002");
}

/// `--set` with list indexes: a value reached through an index works, an index where no list
/// belongs is an error; never silently ignored.
#[test]
fn set_with_list_indexes_reaches_the_values_or_is_refused() {
    let script = "install-control-plane.rhai";
    let out = Test::new()
        .arg(script)
        .args(["--values", &guide_site()])
        .args([
            "--set",
            "extra_env.apiserver[0].name=SET_BY_INDEX,extra_env.apiserver[0].value=yes",
            "--set-string",
            "extra_env.webserver[1].name=SECOND,extra_env.webserver[1].value=2",
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    out.code(2)
        // the index past the end left a null at [0]: refused, not dropped
        .stderr_has("`extra_env.webserver[0]`: must be a map");
    let out = Test::new()
        .arg(script)
        .args(["--values", &guide_site()])
        .args([
            "--set",
            "extra_env.apiserver[0].name=SET_BY_INDEX,extra_env.apiserver[0].value=yes",
            "--set-string",
            "extra_env.webserver[0].name=N,extra_env.webserver[0].value=2",
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    out.success();
    let plan = out.json();
    let v = &actions(&plan, "helm.upgrade_install")[0]["values"];
    assert_eq!(
        v["apiserver"]["extraEnvs"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        &json!({"name": "SET_BY_INDEX", "value": "yes"})
    );
    assert_eq!(
        v["webserver"]["extraEnvs"],
        json!([{"name": "N", "value": "2"}])
    );
    // an index into a key that is not a list, and into a key nothing reads
    Test::new()
        .arg(script)
        .args([
            "--values",
            &guide_site(),
            "--set",
            "base_domain[0]=x",
            "--dry-run",
        ])
        .run()
        .code(2)
        .stderr_has("`base_domain` (--set base_domain): must be a string, found list");
    Test::new()
        .arg(script)
        .args([
            "--values",
            &guide_site(),
            "--set",
            "extra_envs[0]=x",
            "--dry-run",
        ])
        .run()
        .code(2)
        .stderr_has("unknown key `extra_envs`; did you mean `extra_env`?");
}

fn secret_data(c: &Cluster, ns: &str, name: &str, key: &str) -> String {
    let s = c
        .sim
        .kube_get(&format!("/api/v1/namespaces/{ns}/secrets/{name}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s["data"][key].as_str().unwrap())
        .unwrap();
    String::from_utf8(raw).unwrap()
}

fn container_env(c: &Cluster, ns: &str, deployment: &str) -> Vec<(String, Value)> {
    let d = c.sim.kube_get(&format!(
        "/apis/apps/v1/namespaces/{ns}/deployments/{deployment}"
    ));
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    let v = e.get("value").cloned().unwrap_or(e["valueFrom"].clone());
                    (e["name"].as_str().unwrap().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The whole install in the sandbox: each new value reaches the objects the charts render, the
/// secrets reach the cluster and show nowhere.
#[test]
fn the_new_values_reach_the_rendered_objects_in_the_sandbox() {
    let c = Cluster::new(4);
    // the queues' own identity; the agent's example credentials are unknown to the API
    let state = &c.sim.sandbox.clearml.state;
    state.add_user("queue-admin", "queue-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("QADMINKEY", "qadmin-secret-0001", "queue-admin");
    let t = c.test().file(
        "layer.yaml",
        &format!(
            "{EXTRA_ENV}cookie_domain: example.com\napi_host: api.ml.example.com\n\
             service_types: {{webserver: LoadBalancer}}\ningress: {{enabled: false}}\n\
             agent:\n  dockerhub_token: agent-token-0001\n  extra_env: [{{name: AGENT_TOKEN, value: agent-env-0001}}]\n\
             \x20 queue_api: {{url: \"{}\", key: QADMINKEY, secret: qadmin-secret-0001}}\n\
             gateway:\n  dockerhub_token: gw-token-0001\n  ingress: {{enabled: false}}\n",
            c.sim.sandbox.clearml.url()
        ),
    );
    let layer = t.dir().join("layer.yaml").display().to_string();
    let out = t
        .arg("install.rhai")
        .args(["--values", &example("site.yaml")])
        .args(["--values", &example("site-gpu.yaml")])
        .args(["--values", &layer, "--skip-preflight"])
        .env("SV_EXTRA_0001", "from-env-0001")
        .run();
    out.success()
        .stderr_has("extra_env.apiserver: CLEARML__apiserver__company__unique_names replaces")
        .nowhere("proxy-pass-0001")
        .nowhere("from-env-0001")
        .nowhere("agent-token-0001")
        .nowhere("agent-env-0001")
        .nowhere("gw-token-0001")
        .nowhere("qadmin-secret-0001");
    let mut queues: Vec<String> = state
        .queues(DEFAULT_COMPANY)
        .into_iter()
        .map(|q| q.name)
        .collect();
    queues.sort();
    assert!(
        queues.contains(&"GPUshm".to_string()) && queues.contains(&"default".to_string()),
        "{queues:?}"
    );
    let api = container_env(&c, "clearml", "clearml-apiserver");
    let get = |env: &[(String, Value)], n: &str| {
        env.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {n} in {env:?}"))
    };
    assert_eq!(get(&api, "PROXY_PASSWORD"), "proxy-pass-0001");
    assert_eq!(get(&api, "FROM_ENV"), "from-env-0001");
    assert_eq!(
        get(&api, "CLEARML__apiserver__company__unique_names"),
        "false"
    );
    assert_eq!(
        get(&api, "CLEARML__secure__credentials__supervisor__role"),
        "system"
    );
    let web = container_env(&c, "clearml", "clearml-webserver");
    assert_eq!(get(&web, "WEB_FLAG"), "1");
    assert_eq!(
        get(&web, "POD_IP"),
        json!({"fieldRef": {"fieldPath": "status.podIP"}})
    );
    assert!(container_env(&c, "clearml", "clearml-fileserver").is_empty());
    let svc = |name: &str| {
        c.sim
            .kube_get(&format!("/api/v1/namespaces/clearml/services/{name}"))["spec"]["type"]
            .clone()
    };
    assert_eq!(svc("clearml-webserver"), "LoadBalancer");
    assert_eq!(svc("clearml-apiserver"), "ClusterIP");
    let ingresses = c
        .sim
        .kube_get("/apis/networking.k8s.io/v1/namespaces/clearml/ingresses");
    assert_eq!(ingresses["items"], json!([]), "{ingresses}");
    let gw_ingresses = c
        .sim
        .kube_get("/apis/networking.k8s.io/v1/namespaces/clearml-agents/ingresses");
    assert_eq!(gw_ingresses["items"], json!([]), "{gw_ingresses}");
    let conf = c
        .sim
        .kube_get("/api/v1/namespaces/clearml/configmaps/clearml-apiserver-configs");
    assert_eq!(conf["data"]["cookie_domain"], "example.com");
    // a registry token per chart
    assert_eq!(
        secret_data(&c, "clearml", "clearml-image-credentials", "password"),
        "example-dockerhub-token-replace-me"
    );
    assert_eq!(
        secret_data(
            &c,
            "clearml-agents",
            "clearml-agent-credentials",
            "image_password"
        ),
        "agent-token-0001"
    );
    assert_eq!(
        secret_data(
            &c,
            "clearml-agents",
            "clearml-ttr-credentials",
            "image_password"
        ),
        "gw-token-0001"
    );
    let agent = container_env(&c, "clearml-agents", "clearml-agent-agentk8sglue");
    assert_eq!(get(&agent, "AGENT_TOKEN"), "agent-env-0001");
    assert_eq!(
        get(&agent, "CLEARML_API_HOST"),
        "https://api.ml.example.com"
    );
}

/// `create_namespace: false`: the namespace is the site's to make; the preflight asks for no
/// right on namespaces and fails on a missing one, a run stops naming it before writing
/// anything there, and goes through once it exists.
#[test]
fn without_create_namespace_a_missing_namespace_stops_the_run() {
    let c = Cluster::new(4);
    let preflight = |create: &str| {
        c.test()
            .args(["preflight.rhai", "--values", &guide_site()])
            .args(["--set", &format!("create_namespace={create}")])
            .args(["--output", "json"])
            .run()
    };
    let asked = |out: &crate::common::Output| -> Vec<String> {
        let report = out.json();
        let p = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "permissions")
            .unwrap()
            .clone();
        assert_eq!(p["status"], "pass", "{p}");
        p["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    let out = preflight("false");
    out.code(1);
    let without = asked(&out);
    let missing = out.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["message"] == "does not exist, and the site says create_namespace: false");
    assert!(missing, "{}", out.stdout);
    assert!(
        !without.iter().any(|p| p.contains("namespaces")),
        "{without:#?}"
    );
    // with the right to make namespaces: the same, and get, create and patch on namespaces
    let with = asked(&preflight("true"));
    let extra: Vec<&String> = with.iter().filter(|p| !without.contains(p)).collect();
    assert_eq!(
        extra,
        [
            "get namespaces (cluster-wide)",
            "create namespaces (cluster-wide)",
            "patch namespaces (cluster-wide)"
        ],
        "{with:#?}"
    );
    assert_eq!(with.len(), without.len() + 3);
    let run = || {
        c.test()
            .arg("install-control-plane.rhai")
            .args(["--values", &guide_site(), "--set", "create_namespace=false"])
            .run()
    };
    run().code(2).stderr_has(
        "the namespace clearml does not exist and the site says create_namespace: false",
    );
    let (status, _) = c
        .sim
        .kube_http("GET", "/api/v1/namespaces/clearml", "application/json", b"");
    assert_eq!(status, 404);
    let (status, text) = c.sim.kube_http(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"clearml"}}"#,
    );
    assert_eq!(status, 201, "{text}");
    run().success();
}
