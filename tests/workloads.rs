//! The workload paths: the agent with its queues and shared memory, queue creation through the
//! ClearML API, the AI Application Gateway; planned, and run live against the simulators.

use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
use serde_json::{Value, json};

use crate::common::{Cluster, Test, repo};

fn site() -> String {
    repo().join("examples/site.yaml").display().to_string()
}

fn gpu_site() -> String {
    repo().join("examples/site-gpu.yaml").display().to_string()
}

fn plan(extra: &[&str]) -> Value {
    let out = Test::new()
        .args(["install.rhai", "--values", &site(), "--values", &gpu_site()])
        .args(extra)
        .args(["--dry-run", "--output", "json"])
        .run();
    out.success();
    out.json()
}

fn release<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "helm.upgrade_install" && a["release"] == name)
        .unwrap_or_else(|| panic!("no release {name}"))
}

#[test]
fn the_gpu_site_plans_the_agent_its_queues_and_the_gateway() {
    let plan = plan(&[]);
    let agent = release(&plan, "clearml-agent");
    assert_eq!(
        agent["chart"],
        "clearml-enterprise/clearml-enterprise-agent"
    );
    assert_eq!(agent["namespace"], "clearml-agents");
    let v = &agent["values"];
    assert_eq!(v["imageCredentials"]["password"], "<redacted>");
    assert_eq!(
        v["clearml"],
        json!({"agentk8sglueKey": "<redacted>", "agentk8sglueSecret": "<redacted>"})
    );
    let glue = &v["agentk8sglue"];
    assert_eq!(
        glue["apiServerUrlReference"],
        "https://api.clearml.example.com"
    );
    // the file server's own ingress host (file_host_prefix `file`), not the guide's `files.`
    assert_eq!(
        glue["fileServerUrlReference"],
        "https://file.clearml.example.com"
    );
    assert_eq!(
        glue["webServerUrlReference"],
        "https://app.clearml.example.com"
    );
    assert_eq!(glue["defaultContainerImage"], "python:3.9");
    // the guide's shared-memory block, for the GPUshm queue
    assert_eq!(
        glue["queues"]["GPUshm"]["templateOverrides"],
        json!({
            "env": [{"name": "VLLM_SKIP_P2P_CHECK", "value": "1"}],
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}],
        })
    );
    assert_eq!(
        glue["queues"]["GPUshm"]["queueSettings"],
        json!({"maxPods": 4})
    );
    let queues: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "clearml.create_queue")
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["default", "GPUshm"]);
    let gateway = release(&plan, "clearml-ttr");
    assert_eq!(
        gateway["chart"],
        "clearml-enterprise/clearml-enterprise-task-traffic-router"
    );
    assert_eq!(
        gateway["values"]["tcpSession"],
        json!({"routerAddress": "203.0.113.20", "portRange": {"start": 30000, "end": 30100}})
    );
    assert_eq!(gateway["values"]["clearml"]["apiServerKey"], "<redacted>");
    assert_eq!(
        gateway["values"]["clearml"]["apiServerUrlReference"],
        "https://api.clearml.example.com"
    );
    assert_eq!(
        gateway["values"]["ingress"],
        json!({"enabled": true, "hostName": "task-router.clearml.example.com"})
    );
}

#[test]
fn the_oci_generation_creates_queues_in_the_chart() {
    let oci = repo().join("examples/site-oci.yaml").display().to_string();
    let out = Test::new()
        .args([
            "install.rhai",
            "--values",
            &oci,
            "--values",
            &gpu_site(),
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    out.success();
    let plan = out.json();
    let agent = release(&plan, "clearml-enterprise-agent");
    assert_eq!(
        agent["chart"],
        "oci://docker.io/clearml/clearml-enterprise-agent"
    );
    let glue = &agent["values"]["agentk8sglue"];
    assert_eq!(glue["createQueues"], true);
    assert!(glue["queues"]["GPUshm"]["templateOverrides"]["extraVolumes"].is_array());
    assert!(glue["queues"]["GPUshm"]["templateOverrides"]["extraVolumeMounts"].is_array());
    assert!(
        !plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "clearml.create_queue")
    );
    let gateway = release(&plan, "clearml-app-gateway");
    assert_eq!(
        gateway["chart"],
        "oci://docker.io/clearml/clearml-enterprise-app-gateway"
    );
    assert_eq!(gateway["values"]["clearml"]["apiKey"], "<redacted>");
    assert_eq!(
        gateway["values"]["streamSession"]["portRange"],
        json!({"start": 30000, "end": 30100})
    );
    assert_eq!(
        gateway["values"]["streamSession"]["service"]["type"],
        "NodePort"
    );
}

#[test]
fn bad_ports_and_queue_names_are_reported_together() {
    Test::new()
        .args(["install.rhai", "--values", &site(), "--values", &gpu_site()])
        .args(["--set", "gateway.port_range.start=40000", "--set", "gateway.port_range.end=30000"])
        .file(
            "q.yaml",
            "agent:\n  queues:\n    - {name: ab}\n    - {name: GPUshm, shm_size_gi: 0}\n    - {name: GPUshm}\n    - {name: big, template_overrides: 5, vllm: maybe}\n    - plain\n",
        )
        .args(["--values", "q.yaml", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("the port range starts at 40000 after it ends at 30000: swap them, start ≤ end")
        .stderr_has("`agent.queues[0].name` (q.yaml:3:14): the queue name \"ab\" is too short: a queue name has at least 3 characters")
        .stderr_has("`agent.queues[1].shm_size_gi` (q.yaml:4:35): must be a whole number of GiB, at least 1")
        .stderr_has("`agent.queues[2].name` (q.yaml:5:14): the queue \"GPUshm\" is listed twice")
        // found by the check, before the chart's values are made (not a late script error)
        .stderr_has("`agent.queues[3].template_overrides` (q.yaml:6:39): must be a map")
        .stderr_has("`agent.queues[3].vllm` (q.yaml:6:48): must be true or false")
        .stderr_has("`agent.queues[4]` (q.yaml:7:7): must be a map with at least a name");
    // the built-in refuses too
    Test::new()
        .script("let api = clearml_connect(#{ api_url: \"https://api.example.com\", key: \"k\", secret: \"s\" });\napi.create_queue(\"ab\");")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("error: create_queue: the queue name `ab` is too short");
}

/// A simulated cluster whose ClearML API knows the example site's agent credentials.
fn seeded(major: u32) -> Cluster {
    let cluster = Cluster::new(major);
    let state = &cluster.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");
    cluster
}

/// The site with the shared Redis enabled.
const WITH_REDIS: &[&str] = &[
    "--set",
    "agent.redis.enabled=true",
    "--set",
    "agent.redis.password=redis-pass-1",
];

/// Runs of the workload playbooks against a simulated cluster.
impl Cluster {
    fn workloads(&self, script: &str, extra: &[&str]) -> crate::common::Output {
        self.test()
            .args([script, "--values", &site(), "--values", &gpu_site()])
            .arg("--set")
            .arg(format!("agent.redis.chart_repo_url={}", self.repo_url))
            .arg("--set")
            .arg(format!("agent.api_url={}", self.sim.sandbox.clearml.url()))
            .args([
                "--set",
                "agent.key=AGENTKEY",
                "--set",
                "agent.secret=agent-secret-1",
                "--set",
                "control_plane=false",
            ])
            .args(extra)
            .run()
    }

    fn queue_names(&self, company: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .sim
            .sandbox
            .clearml
            .state
            .queues(company)
            .into_iter()
            .map(|q| q.name)
            .collect();
        names.sort();
        names
    }
}

fn agent_and_gateway(major: u32) {
    let live = seeded(major);
    live.workloads("install.rhai", WITH_REDIS)
        .success()
        .stderr_has("• queue default: already there")
        .stderr_has("• queue GPUshm: created")
        .stderr_has("agent: release clearml-agent in clearml-agents: deployed")
        .stderr_has("gateway: release clearml-ttr in clearml-agents: deployed")
        .nowhere("agent-secret-1")
        .nowhere("redis-pass-1");
    assert_eq!(live.queue_names(DEFAULT_COMPANY), ["GPUshm", "default"]);
    let cm = live
        .sim
        .kube_get("/api/v1/namespaces/clearml-agents/configmaps/clearml-agent-queues");
    assert!(
        cm["data"]["queues.yaml"]
            .as_str()
            .unwrap()
            .contains("sizeLimit: 32Gi")
    );
    let router = live
        .sim
        .kube_get("/api/v1/namespaces/clearml-agents/configmaps/clearml-ttr-tcp-session");
    assert_eq!(router["data"]["portRangeStart"], "30000");
    assert_eq!(router["data"]["routerAddress"], "203.0.113.20");
    let redis = live
        .sim
        .kube_get("/apis/apps/v1/namespaces/redis-shared/statefulsets/redis-master");
    assert_eq!(redis["status"]["readyReplicas"], 1);
    let deploy = live
        .sim
        .kube_get("/apis/apps/v1/namespaces/clearml-agents/deployments/clearml-agent-agentk8sglue");
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains("redis-master.redis-shared") && env.contains("redis-pass-1"),
        "{env}"
    );

    // a second run creates nothing
    let before = live
        .sim
        .sandbox
        .clearml
        .state
        .requests()
        .get("queues.create")
        .copied()
        .unwrap_or(0);
    live.workloads("install.rhai", WITH_REDIS)
        .success()
        .stderr_has("• queue GPUshm: already there");
    assert_eq!(live.queue_names(DEFAULT_COMPANY), ["GPUshm", "default"]);
    let after = live
        .sim
        .sandbox
        .clearml
        .state
        .requests()
        .get("queues.create")
        .copied()
        .unwrap_or(0);
    assert_eq!(before, after, "no queues.create on a re-run");
}

#[test]
fn agent_and_gateway_with_helm_3() {
    agent_and_gateway(3);
}

#[test]
fn agent_and_gateway_with_helm_4() {
    agent_and_gateway(4);
}

#[test]
fn queues_land_in_the_impersonated_users_tenant() {
    let live = seeded(4);
    let tenant = TENANT;
    let args = impersonating(&live);
    // the queues are steps of one built-in, each said as it is answered in a live run, and
    // never in a dry run (which lists them in its plan)
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    live.workloads("create-queue.rhai", &dry)
        .success()
        .stdout_has("clearml.create_queue")
        .nowhere("→ step");
    live.workloads("create-queue.rhai", &args)
        .success()
        .stderr_has("→ step 1: clearml.create_queue\n")
        .stderr_has("→ step 2: clearml.create_queue\n");
    assert_eq!(live.queue_names(tenant), ["GPUshm", "default"]);
    assert_eq!(live.queue_names(DEFAULT_COMPANY), ["default"]);
    live.workloads("create-queue.rhai", &args)
        .success()
        .stderr_has("• queue GPUshm: already there");
    assert_eq!(live.queue_names(tenant), ["GPUshm", "default"]);
}

#[test]
fn api_errors_stop_the_run_with_the_endpoint_and_the_credentials() {
    let live = seeded(4);
    // wrong key: the failing step names the endpoint and the rejected credentials; the
    // gateway beside it (in the same parallel group) finishes, and nothing comes after
    live.workloads("install.rhai", &["--set", "agent.secret=wrong-secret-9"])
        .code(1)
        .stderr_has("error: create_queues: step 5 (clearml.create_queue): queues.get_all: 401/22 Unauthorized (invalid credentials): the credentials with the access key AGEN… were rejected by the endpoint queues.get_all of http://127.0.0.1:")
        .stderr_has("  - the branch gateway finished\n")
        .nowhere("wrong-secret-9")
        .nowhere("→ step 7");
    // 503 once, then success: retried
    live.sim.faults.fail("POST", "/queues.create", 1, 503);
    live.workloads("create-queue.rhai", &[])
        .success()
        .stderr_has("• queue GPUshm: created");
    // connection refused: the message says where
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    live.workloads(
        "create-queue.rhai",
        &["--set", &format!("agent.api_url={url}")],
    )
    .code(1)
    .stderr_has(&format!("queues.get_all: cannot connect to {url}"));
}

#[test]
fn the_router_address_is_discovered_when_not_given() {
    let live = seeded(4);
    let t = Test::new().file("no-addr.yaml", "gateway:\n  router_address: null\n");
    let extra = t.dir().join("no-addr.yaml").display().to_string();
    live.workloads("install-app-gateway.rhai", &["--values", &extra])
        .success()
        .stderr_has(
            "gateway: routerAddress 203.0.113.10 (the ExternalIP of the node sandbox-node-1)",
        );
}

#[test]
fn the_router_address_is_the_ingress_controllers_own_service() {
    let cluster = seeded(4);
    let store = &cluster.sim.sandbox.kube.store;
    let put = |api_version: &str, kind: &str, ns: &str, obj: Value| {
        let r = clearml_script::sandbox::resources::by_kind(api_version, kind).unwrap();
        store.create(r, ns, obj, false).unwrap();
    };
    for ns in ["aaa-monitoring", "ingress-nginx"] {
        put("v1", "Namespace", "", json!({"metadata": {"name": ns}}));
    }
    // the sandbox's IngressClass `nginx` names the controller k8s.io/ingress-nginx
    let lb = |ns: &str, name: &str, labels: Value| {
        put(
            "v1",
            "Service",
            ns,
            json!({"metadata": {"name": name, "labels": labels},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
        );
    };
    // listed first, and not the controller's
    lb("aaa-monitoring", "grafana-lb", json!({"app": "grafana"}));
    lb(
        "ingress-nginx",
        "controller",
        json!({"app.kubernetes.io/name": "ingress-nginx"}),
    );
    let run = || {
        let t = Test::new().file("no-addr.yaml", "gateway:\n  router_address: null\n");
        let extra = t.dir().join("no-addr.yaml").display().to_string();
        cluster.workloads("install-app-gateway.rhai", &["--values", &extra])
    };
    run()
        .success()
        .stderr_has("(the IP of the LoadBalancer Service ingress-nginx/controller)");
    // a second Service of the controller: not clear, refused with the candidates
    lb(
        "ingress-nginx",
        "controller-internal",
        json!({"app.kubernetes.io/name": "ingress-nginx"}),
    );
    run()
        .code(1)
        .stderr_has("routerAddress: the ingress controller's LoadBalancer Service is not clear")
        .stderr_has("ingress-nginx/controller (198.51.100.")
        .stderr_has("ingress-nginx/controller-internal (198.51.100.")
        .stderr_has("set gateway.router_address");
}

/// The queues `agent.impersonate_as` created in the user's tenant are the ones
/// `uninstall.queues: true` deletes; the caller's own company (its `default` queue) is left alone.
#[test]
fn uninstall_deletes_the_queues_in_the_impersonated_users_tenant() {
    let live = seeded(4);
    let tenant = TENANT;
    let args = impersonating(&live);
    live.workloads("create-queue.rhai", &args).success();
    assert_eq!(live.queue_names(tenant), ["GPUshm", "default"]);
    assert_eq!(live.queue_names(DEFAULT_COMPANY), ["default"]);
    let mut un = args.to_vec();
    un.extend(["--yes", "--set", "uninstall.queues=true"]);
    live.workloads("uninstall.rhai", &un).success();
    assert_eq!(
        live.queue_names(DEFAULT_COMPANY),
        ["default"],
        "the server's own default queue, in the caller's company, must stay"
    );
    assert!(
        live.queue_names(tenant).is_empty(),
        "the site's queues, in the tenant, are deleted: {:?}",
        live.queue_names(tenant)
    );
}

/// Review: a session is its URL, key *and* secret (and TLS and retry options): a second
/// session with the corrected secret must not reuse the client of the first.
#[test]
fn a_session_with_another_secret_is_not_the_first_sessions_client() {
    let live = seeded(4);
    let url = live.sim.sandbox.clearml.url();
    let script = format!(
        "let bad = clearml_connect(#{{ api_url: \"{url}\", key: \"AGENTKEY\", secret: \"wrong-secret-9\" }});\n\
         try {{ bad.whoami(); log(\"bad: logged in\"); }} catch (e) {{ log(\"bad: refused\"); }}\n\
         let good = clearml_connect(#{{ api_url: \"{url}\", key: \"AGENTKEY\", secret: \"agent-secret-1\" }});\n\
         log(\"good: \" + good.whoami().name);\n"
    );
    live.test()
        .script(&script)
        .run()
        .success()
        .stderr_has("bad: refused")
        .stderr_has("good: agent-admin");
}

/// The company of the user `tenant-user` that [`impersonating`] makes.
const TENANT: &str = "0000000000000000000000000000tenant";

/// A tenant with its user `tenant-user`, and a system identity that may impersonate it: the
/// `--set` flags that make the agent act as that user through that identity.
fn impersonating(live: &Cluster) -> [&'static str; 6] {
    let state = &live.sim.sandbox.clearml.state;
    state.add_company(TENANT, "tenant-b");
    state.add_user("tenant-user", "bob", TENANT, Role::User);
    state.add_user("system-id", "supervisor", DEFAULT_COMPANY, Role::System);
    state.add_credentials("SYSKEY", "sys-secret-1", "system-id");
    [
        "--set",
        "agent.key=SYSKEY",
        "--set",
        "agent.secret=sys-secret-1",
        "--set",
        "agent.impersonate_as=tenant-user",
    ]
}
