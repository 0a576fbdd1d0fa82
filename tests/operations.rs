//! Operations around the install, against the simulated cluster: the preflight checks one by
//! one, the status, the diagnosis of a chart whose wait failed, and the uninstall.

use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
use clearml_script::sandbox::faults::WorkloadFault;
use serde_json::{Value, json};

use crate::common::{Cluster, Output, Test, demo_chart, repo};

fn site() -> String {
    repo().join("examples/site.yaml").display().to_string()
}

fn gpu_site() -> String {
    repo().join("examples/site-gpu.yaml").display().to_string()
}

/// A playbook run against the cluster with the example site; the image registry is the local
/// chart repository, so the source checks stay on 127.0.0.1, and names are not resolved.
fn run(c: &Cluster, script: &str, extra: &[&str]) -> Output {
    c.test()
        .args([script, "--values", &site()])
        .arg("--set")
        .arg(format!(
            "preflight.image_registry={}/index.yaml",
            c.repo_url
        ))
        .args(["--set", "preflight.skip=hosts"])
        .args(extra)
        .run()
}

/// The check of a JSON report by name.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// POST an object to the cluster's Kubernetes API; it must be created.
pub(crate) fn post(c: &Cluster, path: &str, body: Value) {
    let (status, text) = c.sim.kube_http(
        "POST",
        path,
        "application/json",
        body.to_string().as_bytes(),
    );
    assert!(
        status == 201 || status == 200,
        "POST {path}: {status} {text}"
    );
}

fn delete(c: &Cluster, path: &str) {
    let (status, text) = c.sim.kube_http("DELETE", path, "application/json", b"");
    assert_eq!(status, 200, "DELETE {path}: {text}");
}

fn exists(c: &Cluster, path: &str) -> bool {
    let (status, _) = c.sim.kube_http("GET", path, "application/json", b"");
    status == 200
}

#[test]
fn preflight_passes_on_a_ready_cluster_and_changes_nothing() {
    let c = Cluster::new(4);
    let out = run(&c, "preflight.rhai", &[]);
    out.success()
        .stdout_has("Preflight\n")
        .stdout_has("PASS  cluster ")
        .stdout_has("Kubernetes v1.33.0 answers (supported: 1.25 to 1.34)")
        .stdout_has("all 35 permissions the install needs are granted (5 kinds from 1 chart(s) as rendered with the site values")
        .stdout_has("default StorageClass standard (sandbox.local/hostpath)")
        .stdout_has("IngressClass nginx (k8s.io/ingress-nginx)")
        .stdout_has("1 Ready node(s) with 8.0 CPUs and 32.0Gi allocatable")
        .stdout_has("PASS  chart repository")
        .stdout_has("PASS  image registry")
        .stdout_has("not installed yet in clearml")
        .stdout_has("0 failed\n")
        .nowhere("example-github-token-replace-me");
    assert!(
        !exists(&c, "/api/v1/namespaces/clearml"),
        "the preflight created nothing"
    );
    // JSON: the report alone on stdout
    let out = run(&c, "preflight.rhai", &["--output", "json"]);
    out.success();
    let report = out.json();
    assert_eq!(report["title"], "Preflight");
    assert_eq!(report["failed"], 0);
    assert_eq!(check(&report, "storage class")["status"], "pass");
    assert_eq!(check(&report, "ingress controller")["status"], "warn");
    assert_eq!(check(&report, "load balancer")["status"], "warn");
    assert!(
        check(&report, "load balancer")["fix"]
            .as_str()
            .unwrap()
            .contains("NodePort")
    );
}

#[test]
fn preflight_fails_without_a_default_storage_class_or_an_ingress_class() {
    let c = Cluster::new(4);
    delete(&c, "/apis/storage.k8s.io/v1/storageclasses/standard");
    delete(&c, "/apis/networking.k8s.io/v1/ingressclasses/nginx");
    let out = run(&c, "preflight.rhai", &["--output", "json"]);
    out.code(1)
        .stderr_has("error: report_checks: Preflight: 2 of ");
    let report = out.json();
    let sc = check(&report, "storage class");
    assert_eq!(sc["status"], "fail");
    assert!(sc["fix"].as_str().unwrap().contains("default StorageClass"));
    let ic = check(&report, "ingress class");
    assert_eq!(ic["status"], "fail");
    assert!(ic["fix"].as_str().unwrap().contains("ingress-nginx"));
    // a non-default class only: the fix names it
    post(
        &c,
        "/apis/storage.k8s.io/v1/storageclasses",
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "x"}),
    );
    run(&c, "preflight.rhai", &[])
        .code(1)
        .stdout_has("FAIL  storage class")
        .stdout_has(
            "kubectl annotate storageclass fast storageclass.kubernetes.io/is-default-class=true",
        );
    // a site that names its classes
    run(
        &c,
        "preflight.rhai",
        &["--set", "preflight.skip={hosts,ingress_class}"],
    )
    .code(1)
    .stdout_has("FAIL  storage class");
}

#[test]
fn preflight_checks_version_capacity_permissions_and_the_load_balancer() {
    let c = Cluster::new(4);
    run(&c, "preflight.rhai", &["--set", "preflight.kube_max=1.30"])
        .code(1)
        .stdout_has("FAIL  cluster")
        .stdout_has("Kubernetes v1.33.0 is outside the supported range 1.25 to 1.30");
    run(
        &c,
        "preflight.rhai",
        &["--set", "preflight.requests.cpu=64"],
    )
    .code(1)
    .stdout_has("FAIL  capacity")
    .stdout_has("64.0 CPUs and 0.0Gi requested as given in preflight.requests");
    // an access review the API refuses
    c.sim.faults.fail(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        1,
        403,
    );
    run(&c, "preflight.rhai", &[])
        .code(1)
        .stdout_has("FAIL  permissions")
        .stdout_has("cannot ask the access review");
    // a LoadBalancer Service with an address, and an ingress controller
    post(
        &c,
        "/api/v1/namespaces/default/services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingress-nginx-controller"},
               "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    );
    post(
        &c,
        "/apis/apps/v1/namespaces/default/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ingress-nginx-controller"},
               "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    run(&c, "preflight.rhai", &[])
        .success()
        .stdout_has("PASS  load balancer")
        .stdout_has(
            "LoadBalancer Service default/ingress-nginx-controller has the address 198.51.100.",
        )
        .stdout_has("PASS  ingress controller")
        .stdout_has("Deployment default/ingress-nginx-controller serves k8s.io/ingress-nginx");
}

/// The permissions the preflight asked, from its JSON report.
fn asked(report: &Value) -> Vec<String> {
    let c = check(report, "permissions");
    c["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {c}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// The permissions of a kind (`resource.group` or a core `resource`) in `ns`, for the verbs
/// helm uses on what a chart makes.
fn object_permissions(what: &str, ns: &str) -> Vec<String> {
    ["get", "list", "watch", "create", "patch", "delete"]
        .iter()
        .map(|v| format!("{v} {what} in {ns}"))
        .collect()
}

/// The permissions asked are derived from what the charts render with the site values, each
/// kind mapped to its resource through discovery: the stand-in server chart's five kinds, helm's
/// release records and the tool's own; a chart that renders a Job adds `jobs.batch` (and takes
/// it away again without it); a cluster-scoped kind is asked cluster-wide, an object naming its
/// namespace there; a kind the cluster does not serve, and a chart that cannot be rendered, are
/// warnings that say what was asked instead.
#[test]
fn preflight_asks_the_permissions_of_what_the_charts_render() {
    let c = Cluster::new(4);
    let out = run(&c, "preflight.rhai", &["--output", "json"]);
    out.success();
    let report = out.json();
    let permissions = check(&report, "permissions");
    assert_eq!(permissions["status"], "pass", "{permissions}");
    let mut want: Vec<String> = ["get", "create", "patch"]
        .iter()
        .map(|v| format!("{v} namespaces (cluster-wide)"))
        .collect();
    want.extend(
        [
            "get", "list", "create", "update", "delete", "patch", "watch",
        ]
        .iter()
        .map(|v| format!("{v} secrets in clearml")),
    );
    for what in [
        "configmaps",
        "services",
        "deployments.apps",
        "ingresses.networking.k8s.io",
    ] {
        want.extend(object_permissions(what, "clearml"));
    }
    want.push("list replicasets.apps in clearml".into());
    let mut got = asked(&report);
    assert_eq!(got.len(), 35, "{got:#?}");
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // a chart that renders a ServiceAccount, a StatefulSet and a Job, and the same without the Job
    let demo = demo_chart();
    let chart = format!("chart={demo}");
    let with_job = run(
        &c,
        "preflight.rhai",
        &[
            "--output",
            "json",
            "--set",
            &chart,
            "--set",
            "extra_values.job=true",
            "--set",
            "extra_values.statefulset=true",
        ],
    );
    with_job.success();
    let got = asked(&with_job.json());
    for p in object_permissions("jobs.batch", "clearml")
        .into_iter()
        .chain(object_permissions("serviceaccounts", "clearml"))
        .chain(object_permissions("statefulsets.apps", "clearml"))
    {
        assert!(got.contains(&p), "{p} not asked: {got:#?}");
    }
    // the demo chart renders no Ingress nor Secret of its own
    assert!(!got.iter().any(|p| p.contains("ingresses")), "{got:#?}");
    assert!(
        !got.contains(&"watch secrets in clearml".to_string()),
        "{got:#?}"
    );
    let without_job = run(&c, "preflight.rhai", &["--output", "json", "--set", &chart]);
    without_job.success();
    let got = asked(&without_job.json());
    assert!(!got.iter().any(|p| p.contains("jobs.batch")), "{got:#?}");
    assert!(!got.iter().any(|p| p.contains("statefulsets")), "{got:#?}");
    assert!(got.contains(&"create serviceaccounts in clearml".to_string()));

    // a cluster-scoped kind, an object in another namespace, a kind the sandbox does not serve
    let extra = tempfile::tempdir().unwrap();
    let dir = extra.path().join("extra");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: extra\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/all.yaml"),
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\nprovisioner: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: elsewhere\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\nrules: []\n---\napiVersion: widgets.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    )
    .unwrap();
    let chart = format!("chart={}", dir.display());
    let out = run(&c, "preflight.rhai", &["--output", "json", "--set", &chart]);
    out.success();
    let report = out.json();
    let permissions = check(&report, "permissions");
    assert_eq!(permissions["status"], "warn", "{permissions}");
    assert!(
        permissions["message"].as_str().unwrap().contains(
            "control plane renders widgets.example.com/v1 Widget: the cluster does not serve it, so it was not asked"
        ),
        "{permissions}"
    );
    let got = asked(&report);
    for p in object_permissions("storageclasses.storage.k8s.io", "x")
        .into_iter()
        .chain(object_permissions(
            "clusterroles.rbac.authorization.k8s.io",
            "x",
        ))
        .map(|p| p.replace(" in x", " (cluster-wide)"))
        .chain(object_permissions("configmaps", "elsewhere"))
    {
        assert!(got.contains(&p), "{p} not asked: {got:#?}");
    }
    assert!(
        !got.iter().any(|p| p.contains("configmaps in clearml")),
        "{got:#?}"
    );
    assert!(!got.iter().any(|p| p.contains("widgets")), "{got:#?}");

    // the chart cannot be rendered: the documented minimum, said
    let out = run(
        &c,
        "preflight.rhai",
        &["--output", "json", "--set", "chart_version=99.0.0"],
    );
    out.success();
    let report = out.json();
    let permissions = check(&report, "permissions");
    assert_eq!(permissions["status"], "warn", "{permissions}");
    let message = permissions["message"].as_str().unwrap();
    assert!(
        message.contains(
            "control plane (clearml-enterprise/clearml-enterprise) could not be rendered ("
        ) && message.contains("so the documented minimum was asked in clearml instead"),
        "{message}"
    );
    let got = asked(&report);
    // the README role's kinds, which the stand-in server chart does not all render
    assert!(
        got.contains(&"create statefulsets.apps in clearml".to_string()),
        "{got:#?}"
    );
    assert!(
        permissions["fix"]
            .as_str()
            .unwrap()
            .contains("chart source reachable")
    );
}

/// The capacity is what the charts request as rendered with the site values (`helm template`):
/// the stand-in server chart requests 0.5 + 0.1 + 0.1 CPUs and 1Gi + 256Mi + 256Mi at one
/// replica each; the sandbox's node has 8 CPUs and 32Gi. Replicas and requests set in the values
/// count; the largest pod must fit on a node; `preflight.requests` overrides the sum. helm's own
/// repository configuration is left untouched.
#[test]
fn preflight_capacity_is_what_the_rendered_charts_request() {
    let c = Cluster::new(3);
    run(&c, "preflight.rhai", &[])
        .success()
        .stdout_has("PASS  capacity")
        .stdout_has(
            "1 Ready node(s) with 8.0 CPUs and 32.0Gi allocatable; 0.7 CPUs and 1.5Gi requested by 3 workloads of 1 chart(s) as rendered with the site values\n",
        );
    // 20 API servers at half a CPU each
    run(
        &c,
        "preflight.rhai",
        &["--set", "extra_values.apiserver.replicaCount=20"],
    )
    .code(1)
    .stdout_has("FAIL  capacity")
    .stdout_has("; 10.2 CPUs and 20.5Gi requested by 3 workloads of 1 chart(s)");
    // one pod larger than any node, though the sum would fit
    run(
        &c,
        "preflight.rhai",
        &["--set-string", "extra_values.webserver.resources.requests.memory=40Gi"],
    )
    .code(1)
    .stdout_has("a pod of Deployment clearml-webserver requests 0.1 CPUs and 40.0Gi, more than the largest node has (8.0 CPUs, 32.0Gi)")
    .stdout_has("fix: add a larger node, or lower that workload's requests");
    // the site's own figure wins
    run(
        &c,
        "preflight.rhai",
        &[
            "--set",
            "extra_values.apiserver.replicaCount=20",
            "--set-string",
            "preflight.requests.cpu=2",
            "--set-string",
            "preflight.requests.memory=4Gi",
        ],
    )
    .success()
    .stdout_has("2.0 CPUs and 4.0Gi requested as given in preflight.requests");
    let repos = c.home.path().join("config/repositories.yaml");
    let text = std::fs::read_to_string(&repos).unwrap_or_default();
    assert!(!text.contains("clearml-enterprise"), "{text}");
    // a chart that cannot be rendered: a warning with the way out, not a guess
    run(
        &c,
        "preflight.rhai",
        &["--set", "chart_version=99.0.0"],
    )
    .code(0)
    .stdout_has("WARN  capacity")
    .stdout_has("what the charts request is unknown: they could not be rendered: control plane (clearml-enterprise/clearml-enterprise)")
    .stdout_has("or give the requests in preflight.requests");
}

#[test]
fn preflight_finds_a_release_of_another_chart_in_the_way_and_unreachable_sources() {
    let c = Cluster::new(4);
    let helm = &crate::common::helm_binaries()[1].1;
    let chart = repo().join("src/sandbox/charts/clearml-enterprise-agent");
    c.sim
        .helm(
            helm,
            &[
                "install",
                "clearml",
                &chart.display().to_string(),
                "-n",
                "clearml",
                "--create-namespace",
            ],
        )
        .success();
    run(
        &c,
        "preflight.rhai",
        &["--set", "preflight.image_registry=http://127.0.0.1:9/v2/"],
    )
    .code(1)
    .stdout_has("FAIL  namespace clearml")
    .stdout_has("the release clearml is the chart clearml-enterprise-agent-")
    .stdout_has("FAIL  image registry")
    .stdout_has("http://127.0.0.1:9/v2/ does not answer");
}

#[test]
fn preflight_in_the_sandbox_and_in_a_dry_run() {
    Test::new()
        .args(["preflight.rhai", "--values", &site(), "--sandbox"])
        .helm(4)
        .run()
        .success()
        .stdout_has("WARN  host api.clearml.example.com")
        .stdout_has("the sandbox has no DNS")
        .stdout_has("from the sandbox's stand-in repository")
        .stdout_has("WARN  image registry");
    Test::new()
        .args(["preflight.rhai", "--values", &site(), "--dry-run"])
        .run()
        .success()
        .stdout("Plan (dry run: nothing was changed): 0 steps\n")
        .stderr_has("preflight: a dry run reads nothing of the cluster");
}

#[test]
fn install_runs_the_preflight_first_and_stops_before_anything_on_a_failure() {
    let c = Cluster::new(4);
    delete(&c, "/apis/storage.k8s.io/v1/storageclasses/standard");
    run(&c, "install.rhai", &[])
        .code(1)
        .stdout_has("FAIL  storage class")
        .stderr_has("Preflight: 1 of ");
    assert!(
        !exists(&c, "/api/v1/namespaces/clearml"),
        "nothing was changed"
    );
    run(&c, "install.rhai", &["--skip-preflight"])
        .success()
        .stderr_has("control plane: release clearml in clearml: deployed");
}

/// A cluster with the example site installed: control plane, agent and gateway, and the
/// agent's credentials known to the ClearML API.
fn installed() -> Cluster {
    let c = Cluster::new(4);
    let state = &c.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");
    state.add_user("supervisor", "supervisor", DEFAULT_COMPANY, Role::System);
    state.add_credentials(
        "example-supervisor-key-replace-me",
        "example-supervisor-secret-replace-me",
        "supervisor",
    );
    full(&c, "install.rhai", &[]).success();
    c
}

fn full(c: &Cluster, script: &str, extra: &[&str]) -> Output {
    run(
        c,
        script,
        &[
            &["--values", &gpu_site()],
            &[
                "--set",
                &format!("agent.api_url={}", c.sim.sandbox.clearml.url()),
                "--set",
                &format!("status.api_url={}", c.sim.sandbox.clearml.url()),
                "--set",
                "agent.key=AGENTKEY",
                "--set",
                "agent.secret=agent-secret-1",
            ][..],
            extra,
        ]
        .concat(),
    )
}

#[test]
fn status_shows_releases_workloads_hosts_api_queues_and_the_gateway() {
    let c = installed();
    c.sim
        .sandbox
        .clearml
        .state
        .add_worker("gpu-worker-1", DEFAULT_COMPANY, &["GPUshm"]);
    let out = full(&c, "status.rhai", &[]);
    out.success()
        .stdout_has("PASS  release clearml/clearml ")
        .stdout_has("clearml-enterprise-7.14.0 (app 3.22.0), revision 1: deployed")
        .stdout_has("PASS  release clearml-agents/clearml-agent ")
        .stdout_has("PASS  Deployment clearml/clearml-apiserver ")
        .stdout_has("WARN  host api.clearml.example.com ")
        .stdout_has("ingress clearml-apiserver has no address yet")
        .stdout_has("ClearML 3.22.0 (API 2.31)")
        .stdout_has("the configured credentials log in as a system identity")
        .stdout_has("PASS  queue GPUshm ")
        .stdout_has("served by 1 worker(s): [\"gpu-worker-1\"]")
        .stdout_has("WARN  queue default ")
        .stdout_has("PASS  gateway router ")
        .stdout_has("routerAddress 203.0.113.20")
        .nowhere("agent-secret-1")
        .nowhere("example-supervisor-secret-replace-me");
    // the shortcut, as JSON
    let out = Test::new()
        .args(["status", "--values", &site(), "--values", &gpu_site()])
        .arg("--kubeconfig")
        .arg(c.sim.sandbox.kubeconfig.display().to_string())
        .helm(4)
        .arg("--set")
        .arg(format!("status.api_url={}", c.sim.sandbox.clearml.url()))
        .args(["--output", "json"])
        .run();
    out.success();
    let report = out.json();
    assert_eq!(report["title"], "Status");
    assert_eq!(check(&report, "credentials")["status"], "pass");
    // credentials that do not log in
    full(
        &c,
        "status.rhai",
        &["--set", "supervisor.user_secret=wrong-secret-9"],
    )
    .code(1)
    .stdout_has("FAIL  credentials")
    .stdout_has("were rejected")
    .nowhere("wrong-secret-9");
}

#[test]
fn status_says_why_a_workload_is_not_ready() {
    let c = installed();
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ImagePullBackOff);
    // the controllers act on the next change of the Deployment
    let (code, body) = c.sim.kube_http(
        "PATCH",
        "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver",
        "application/merge-patch+json",
        br#"{"metadata": {"annotations": {"touched": "1"}}}"#,
    );
    assert_eq!(code, 200, "{body}");
    full(&c, "status.rhai", &[])
        .code(1)
        .stdout_has("FAIL  Deployment clearml/clearml-apiserver ")
        .stdout_has("0/1 ready; clearml-apiserver-sbx0: ImagePullBackOff: Back-off pulling image")
        .stdout_has("fix: check the image credentials")
        .stderr_has("Status: 1 of ");
    // a release missing
    delete(&c, "/api/v1/namespaces/clearml-agents");
    full(&c, "status.rhai", &[])
        .code(1)
        .stdout_has("FAIL  release clearml-agents/clearml-agent ")
        .stdout_has("the agent is not installed");
}

fn diagnosis(why: WorkloadFault, expect: &[&str]) {
    let c = Cluster::new(4);
    c.sim.faults.break_workload("clearml-apiserver", why);
    let mut out = run(&c, "install.rhai", &["--set", "timeout=3s"]);
    out.code(1);
    for e in expect {
        out.stderr_has(e);
    }
    out.stderr_has("Diagnosis: workloads in clearml that are not ready:\n  Deployment clearml/clearml-apiserver: 0/1 ready\n")
        .stderr_has("Release clearml in clearml: revision 1, failed.")
        .stderr_has("  - or remove it: helm uninstall clearml -n clearml\n")
        .stderr_has("`rollback_on_failure: true` in the site values");
    // the diagnosis comes before the release's state
    let d = out.stderr.find("Diagnosis:").unwrap();
    let r = out.stderr.find("Release clearml in clearml").unwrap();
    assert!(d < r);
    // fixed: the re-run upgrades it, and the choice is now a rollback to the revision before
    c.sim.faults.heal_workload("clearml-apiserver");
    run(&c, "install.rhai", &[]).success();
    c.sim.faults.break_workload("clearml-apiserver", why);
    out = run(
        &c,
        "install.rhai",
        &["--set", "timeout=3s", "--set", "ui.show_datasets=true"],
    );
    out.code(1)
        .stderr_has("helm rollback clearml 2 -n clearml --wait");
}

#[test]
fn a_failed_wait_is_diagnosed_crash_loop() {
    diagnosis(
        WorkloadFault::CrashLoopBackOff,
        &[
            "pod clearml-apiserver-sbx0 (container apiserver, 5 restarts): CrashLoopBackOff",
            "event: Warning BackOff: back-off 2m40s restarting failed container",
            "last log lines:\n",
            "| ERROR: cannot connect to mongodb://mongodb:27017: connection refused",
            "likely fix: the container keeps exiting",
        ],
    );
}

#[test]
fn a_site_can_ask_for_a_rollback_on_failure() {
    let c = Cluster::new(3);
    run(&c, "install.rhai", &[]).success();
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ProbeFailure);
    run(
        &c,
        "install.rhai",
        &[
            "--set",
            "timeout=3s",
            "--set",
            "rollback_on_failure=true",
            "--set",
            "ui.show_datasets=true",
        ],
    )
    .code(1)
    .stderr_has("ProbeFailure: the container runs but is not ready")
    .stderr_has("event: Warning Unhealthy: Readiness probe failed")
    // helm 3 was given --atomic: it rolled back (whose wait fails too, the workload still
    // broken), and the rollback is revision 3
    .stderr_has("an error occurred while rolling back the release")
    .stderr_has("Release clearml in clearml: revision 3, failed.")
    .nowhere("rollback_on_failure: true` in the site values");
}

#[test]
fn a_failed_wait_is_diagnosed_image_pull_and_pending() {
    let c = Cluster::new(3);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ImagePullBackOff);
    run(&c, "install.rhai", &["--set", "timeout=3s"])
        .code(1)
        .stderr_has(": ImagePullBackOff: Back-off pulling image")
        .stderr_has(
            "likely fix: the image cannot be pulled: check the image credentials (dockerhub_token",
        )
        .nowhere("example-dockerhub-token-replace-me");
    let c = Cluster::new(4);
    c.sim
        .faults
        .break_workload("clearml-webserver", WorkloadFault::Pending);
    run(&c, "install.rhai", &["--set", "timeout=3s"])
        .code(1)
        .stderr_has("pod clearml-webserver-sbx0: Pending/Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.")
        .stderr_has("event: Warning FailedScheduling")
        .stderr_has("likely fix: the scheduler cannot place the pod");
}

#[test]
fn uninstall_asks_removes_in_reverse_order_keeps_data_and_is_idempotent() {
    let c = installed();
    post(
        &c,
        "/api/v1/namespaces/clearml/persistentvolumeclaims",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-mongodb-0", "labels": {"app.kubernetes.io/instance": "clearml"}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    // no terminal and no --yes: nothing is removed
    full(&c, "uninstall.rhai", &[])
        .code(2)
        .stderr_has("pass --yes to confirm");
    assert!(exists(
        &c,
        "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver"
    ));
    let out = full(&c, "uninstall.rhai", &["--yes"]);
    out.success();
    let gw = out
        .stderr
        .find("gateway: release clearml-ttr in clearml-agents removed")
        .unwrap();
    let agent = out
        .stderr
        .find("agent: release clearml-agent in clearml-agents removed")
        .unwrap();
    let cp = out
        .stderr
        .find("control plane: release clearml in clearml removed")
        .unwrap();
    assert!(gw < agent && agent < cp, "{}", out.stderr);
    out.stderr_has("kept the credentials Secret and the PersistentVolumeClaims");
    assert!(!exists(
        &c,
        "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver"
    ));
    assert!(exists(
        &c,
        "/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials"
    ));
    assert!(exists(
        &c,
        "/api/v1/namespaces/clearml/persistentvolumeclaims/data-mongodb-0"
    ));
    let queues = |c: &Cluster| -> Vec<String> {
        c.sim
            .sandbox
            .clearml
            .state
            .queues(DEFAULT_COMPANY)
            .into_iter()
            .map(|q| q.name)
            .collect()
    };
    assert!(
        queues(&c).contains(&"GPUshm".to_string()),
        "queues stay unless asked"
    );
    // again: nothing more to remove; with purge the data goes
    full(
        &c,
        "uninstall.rhai",
        &["--yes", "--set", "uninstall.purge=true"],
    )
    .success()
    .stderr_has("control plane: release clearml in clearml was not there")
    .stderr_has("0 release(s) removed");
    assert!(!exists(
        &c,
        "/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials"
    ));
    assert!(!exists(
        &c,
        "/api/v1/namespaces/clearml/persistentvolumeclaims/data-mongodb-0"
    ));
}

#[test]
fn uninstall_deletes_the_queues_only_when_asked() {
    let c = installed();
    let queues = |c: &Cluster| -> Vec<String> {
        let mut q: Vec<String> = c
            .sim
            .sandbox
            .clearml
            .state
            .queues(DEFAULT_COMPANY)
            .into_iter()
            .map(|q| q.name)
            .collect();
        q.sort();
        q
    };
    assert_eq!(queues(&c), ["GPUshm", "default"]);
    full(
        &c,
        "uninstall.rhai",
        &["--yes", "--set", "uninstall.queues=true"],
    )
    .success()
    .stderr_has("queue GPUshm deleted")
    .nowhere("agent-secret-1");
    assert!(queues(&c).is_empty());
    // the plan shows it all, changes nothing
    full(
        &c,
        "uninstall.rhai",
        &["--dry-run", "--set", "uninstall.queues=true"],
    )
    .success()
    .stdout_has("helm.uninstall release=clearml-ttr")
    .stdout_has("clearml.delete_queue name=GPUshm");
}

/// A live run that fails after a report of checks still writes the report, as the one JSON
/// document on stdout; one with no report writes nothing there (no plan, no empty list).
#[test]
fn a_failed_json_run_writes_its_reports_and_nothing_else() {
    let fail_live = "let v = kube_version();\nif v.starts_with(\"v\") { throw \"boom\"; }\n";
    let out = Test::new()
        .script(&format!(
            "ensure_namespace(\"a\");\nreport_checks(\"Pre\", [check(\"x\", \"pass\", \"ok\", \"\")]);\n{fail_live}"
        ))
        .args(["--sandbox", "--output", "json"])
        .run();
    out.code(1).stderr_has("1 step finished before the failure");
    let reports = out.json();
    assert_eq!(reports.as_array().map(Vec::len), Some(1), "{reports}");
    assert_eq!(reports[0]["title"], "Pre");
    assert_eq!(reports[0]["passed"], 1);
    Test::new()
        .script(&format!("ensure_namespace(\"a\");\n{fail_live}"))
        .args(["--sandbox", "--output", "json"])
        .run()
        .code(1)
        .stdout("");
}

/// Listing workloads: a kind the identity may not list (403) is none of the install's, so the
/// rest is listed; any other refusal (a 500) is an error that names the kind and namespace,
/// never taken for an empty list.
#[test]
fn workloads_a_forbidden_kind_is_none_and_another_error_is_an_error() {
    let c = Cluster::new(4);
    post(
        &c,
        "/apis/apps/v1/namespaces/default/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    let script = "for w in workloads(\"default\") { print(w.kind + \" \" + w.name); }";
    c.test()
        .script(script)
        .run()
        .success()
        .stdout_has("Deployment web");
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    c.sim.faults.fail("GET", deployments, 1, 403);
    let out = c.test().script(script).run();
    out.success();
    assert!(!out.stdout.contains("web"), "{}", out.stdout);
    c.sim.faults.fail("GET", deployments, 1, 500);
    c.test()
        .script(script)
        .run()
        .code(1)
        .stderr_has("cannot list Deployments in default");
}

/// `--diff` masks a Secret's data in the manifests it shows, whatever its key is called and
/// wherever its value came from (a chart-generated password, a TLS private key): the README
/// promises "values and manifests, secrets masked".
#[test]
fn diff_masks_the_data_of_a_secret_the_chart_generates() {
    let c = Cluster::new(4);
    let charts = tempfile::tempdir().unwrap();
    let chart = charts.path().join("gen");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: gen\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gen\ntype: Opaque\ndata:\n  tls.key: {{ randAlphaNum 40 | b64enc }}\n  mongodb-root: {{ randAlphaNum 32 | b64enc }}\n",
    )
    .unwrap();
    let script = format!(
        "install_chart(\"gen\", \"{}\", #{{ namespace: \"gen\", wait: false }});\n",
        chart.display()
    );
    c.test().script(&script).run().success();
    let secret = c.sim.kube_get("/api/v1/namespaces/gen/secrets/gen");
    let data = secret["data"].as_object().unwrap().clone();
    let out = c.test().script(&script).args(["--dry-run", "--diff"]).run();
    out.success()
        .stdout_has("--- gen/gen manifest (revision 1)");
    for v in data.values() {
        out.nowhere(v.as_str().unwrap());
    }
}

/// The uninstall removes what the install made, and only that: a release of another chart that
/// sits under a planned name (the preflight calls it "in the way", so the install never made it)
/// is left alone.
#[test]
fn uninstall_leaves_a_release_of_another_chart_under_a_planned_name() {
    let c = Cluster::new(4);
    let helm = crate::common::helm_binaries()[1].1.clone();
    c.sim
        .helm(
            &helm,
            &[
                "install",
                "clearml",
                &demo_chart(),
                "-n",
                "clearml",
                "--create-namespace",
            ],
        )
        .success();
    run(&c, "preflight.rhai", &[])
        .code(1)
        .stdout_has("the release clearml is the chart demo-0.1.0, not clearml-enterprise");
    run(&c, "uninstall.rhai", &["--yes"]).success();
    assert!(
        exists(
            &c,
            "/api/v1/namespaces/clearml/secrets/sh.helm.release.v1.clearml.v1"
        ),
        "the other chart's release was uninstalled"
    );
}

/// `uninstall.purge: true` deletes the install's PersistentVolumeClaims, never those of other
/// software in a namespace it shares.
#[test]
fn uninstall_purge_keeps_the_claims_of_other_software_in_the_namespace() {
    let c = Cluster::new(4);
    run(&c, "install.rhai", &[]).success();
    post(
        &c,
        "/api/v1/namespaces/clearml/persistentvolumeclaims",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "postgres-data-0", "labels": {"app.kubernetes.io/instance": "billing-db"}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    // a claim of a StatefulSet of the release (no labels: named TEMPLATE-SET-ORDINAL)
    post(
        &c,
        "/apis/apps/v1/namespaces/clearml/statefulsets",
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "clearml-mongodb", "annotations": {"meta.helm.sh/release-name": "clearml"}},
               "spec": {"serviceName": "m", "selector": {"matchLabels": {"a": "m"}},
                        "template": {"metadata": {"labels": {"a": "m"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "datadir"},
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    );
    post(
        &c,
        "/api/v1/namespaces/clearml/persistentvolumeclaims",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "datadir-clearml-mongodb-0"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    run(
        &c,
        "uninstall.rhai",
        &["--yes", "--set", "uninstall.purge=true"],
    )
    .success();
    assert!(
        exists(
            &c,
            "/api/v1/namespaces/clearml/persistentvolumeclaims/postgres-data-0"
        ),
        "another application's data was deleted"
    );
    assert!(!exists(
        &c,
        "/api/v1/namespaces/clearml/persistentvolumeclaims/datadir-clearml-mongodb-0"
    ));
}

/// The fixed users' password hashes are kept in a Secret of the tool's own: `uninstall.purge`
/// deletes it with the credentials Secret, so nothing the install made is left behind.
#[test]
fn uninstall_purge_deletes_the_fixed_users_password_hashes() {
    let c = Cluster::new(4);
    let users = [
        "--set-json",
        r#"fixed_users=[{"username":"jane","password":"jane-pass-0001","name":"Jane"}]"#,
        "--set",
        "fixed_users_pass_hashed=true",
    ];
    run(&c, "install.rhai", &users).success();
    let hashes = "/api/v1/namespaces/clearml/secrets/clearml-script-fixed-user-hashes";
    assert!(exists(&c, hashes));
    run(
        &c,
        "uninstall.rhai",
        &[&users[..], &["--yes", "--set", "uninstall.purge=true"]].concat(),
    )
    .success();
    assert!(!exists(
        &c,
        "/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials"
    ));
    assert!(!exists(&c, hashes), "the password hashes were left behind");
}

/// A site that installs the server chart from an archive (`chart: …/NAME-VERSION.tgz`): the
/// release is of that chart, so a re-run's preflight finds nothing in the way and the uninstall
/// removes it.
#[test]
fn a_chart_given_as_an_archive_is_the_install_s_on_a_re_run_and_at_uninstall() {
    let c = Cluster::new(4);
    let archive = c
        .home
        .path()
        .join("chart-repo/clearml-enterprise-7.14.0.tgz");
    let chart = format!("chart={}", archive.display());
    run(&c, "install.rhai", &["--set", &chart]).success();
    run(&c, "install.rhai", &["--set", &chart])
        .success()
        .stderr_has("unchanged (revision 1), not upgraded");
    run(&c, "uninstall.rhai", &["--set", &chart, "--yes"])
        .success()
        .stderr_has("control plane: release clearml in clearml removed");
}

/// Status against an identity that may not list Deployments: it cannot tell whether the
/// install's Deployments are ready, so it must not report the install healthy.
#[test]
fn status_does_not_pass_when_it_may_not_read_the_workloads() {
    let c = Cluster::new(4);
    let api = installed_for_status(&c);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ImagePullBackOff);
    let (code, body) = c.sim.kube_http(
        "PATCH",
        "/apis/apps/v1/namespaces/clearml/deployments/clearml-apiserver",
        "application/merge-patch+json",
        br#"{"metadata": {"annotations": {"touched": "1"}}}"#,
    );
    assert_eq!(code, 200, "{body}");
    run(&c, "status.rhai", &["--set", &api])
        .code(1)
        .stdout_has("FAIL  Deployment clearml/clearml-apiserver ");
    // the same cluster, the same broken Deployment, but Deployments may not be listed
    c.sim.faults.fail(
        "GET",
        "/apis/apps/v1/namespaces/clearml/deployments",
        5,
        403,
    );
    run(&c, "status.rhai", &["--set", &api])
        .code(1)
        .stdout_has("FAIL  Deployment clearml/clearml-apiserver ")
        .stdout_has(
            "the release has it, but it is not in the cluster, or the identity may not list it",
        );
    // a Deployment of the release deleted: the release still says deployed
    c.sim.faults.heal_workload("clearml-apiserver");
    delete(
        &c,
        "/apis/apps/v1/namespaces/clearml/deployments/clearml-webserver",
    );
    run(&c, "status.rhai", &["--set", &api])
        .code(1)
        .stdout_has("FAIL  Deployment clearml/clearml-webserver ");
}

/// `resolve_host` asks the system's resolver in a live run (`[]` for a name that does not
/// resolve); the sandbox has no DNS, and says so rather than answer for it.
#[test]
fn resolve_host_resolves_live_and_refuses_in_the_sandbox() {
    let c = Cluster::new(4);
    c.test()
        .script("print(resolve_host(\"localhost\").contains(\"127.0.0.1\")); print(resolve_host(\"no-such-host.invalid\"));")
        .run()
        .success()
        .stdout("true\n[]\n");
    Test::new()
        .script("resolve_host(\"localhost\");")
        .arg("--sandbox")
        .helm(4)
        .run()
        .code(1)
        .stderr_has("the sandbox has no DNS");
}

/// `delete_object`: true when it deleted the object, false when it was not there (a re-run),
/// and an error naming the object for any other refusal.
#[test]
fn delete_object_says_whether_it_deleted_and_names_a_refusal() {
    let c = Cluster::new(4);
    post(
        &c,
        "/api/v1/namespaces/default/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leftover"}}),
    );
    let script = "print(delete_object(\"v1\", \"ConfigMap\", \"default\", \"leftover\"));";
    c.test().script(script).run().success().stdout("true\n");
    c.test().script(script).run().success().stdout("false\n");
    c.sim.faults.fail(
        "DELETE",
        "/api/v1/namespaces/default/configmaps/leftover",
        1,
        500,
    );
    c.test()
        .script(script)
        .run()
        .code(1)
        .stderr_has("cannot delete ConfigMap leftover");
}

/// Review: with `agent.impersonate_as` the site's queues are in the user's tenant; status must
/// not report them missing (it asks in the caller's own company).
#[test]
fn status_finds_the_queues_made_in_the_impersonated_users_tenant() {
    let c = Cluster::new(4);
    let state = &c.sim.sandbox.clearml.state;
    let tenant = "0000000000000000000000000000tenant";
    state.add_company(tenant, "tenant-b");
    state.add_user("tenant-user", "bob", tenant, Role::User);
    state.add_user("supervisor", "supervisor", DEFAULT_COMPANY, Role::System);
    state.add_credentials(
        "example-supervisor-key-replace-me",
        "example-supervisor-secret-replace-me",
        "supervisor",
    );
    state.add_credentials("AGENTKEY", "agent-secret-1", "supervisor");
    let imp = ["--set", "agent.impersonate_as=tenant-user"];
    full(&c, "install.rhai", &imp).success();
    let mut names: Vec<String> = state.queues(tenant).into_iter().map(|q| q.name).collect();
    names.sort();
    assert_eq!(names, ["GPUshm", "default"]);
    full(&c, "status.rhai", &imp).nowhere("the site's queue does not exist");
}

/// In a namespace shared with another application, its workload that is not ready is a
/// warning in status, not the install's failure (the install's own are judged as before).
#[test]
fn status_warns_of_another_applications_workload_in_the_namespace() {
    let c = Cluster::new(4);
    let api = installed_for_status(&c);
    c.sim
        .faults
        .break_workload("billing-api", WorkloadFault::ImagePullBackOff);
    post(
        &c,
        "/apis/apps/v1/namespaces/clearml/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "billing-api"},
               "spec": {"selector": {"matchLabels": {"app": "billing"}}, "template": {"metadata": {"labels": {"app": "billing"}}, "spec": {"containers": [{"name": "c", "image": "billing:1"}]}}}}),
    );
    run(&c, "status.rhai", &["--set", &api])
        .success()
        .stdout_has("WARN  Deployment clearml/billing-api ")
        .stdout_has("(no planned release has it: another application's)")
        .nowhere("FAIL  Deployment clearml/billing-api");
}

/// The example site installed on `c`, with the ClearML API knowing its supervisor (the
/// identity status asks it with): answers the `--set` that points status at that API.
fn installed_for_status(c: &Cluster) -> String {
    let state = &c.sim.sandbox.clearml.state;
    state.add_user("supervisor", "supervisor", DEFAULT_COMPANY, Role::System);
    state.add_credentials(
        "example-supervisor-key-replace-me",
        "example-supervisor-secret-replace-me",
        "supervisor",
    );
    run(c, "install.rhai", &[]).success();
    format!("status.api_url={}", c.sim.sandbox.clearml.url())
}

/// A namespace deleted just before a run (`kubectl delete namespace clearml`) stays Terminating
/// a while, and nothing can be created in it: the preflight says so, the install waits for it
/// to go and creates it again, and with `create_namespace: false` the run stops and says why.
#[test]
fn a_namespace_being_deleted_is_waited_for_and_then_created_again() {
    let c = Cluster::new(4);
    let terminating = |c: &Cluster| {
        c.sim
            .faults
            .terminate_namespaces_after(std::time::Duration::from_millis(2500));
        if !exists(c, "/api/v1/namespaces/clearml") {
            post(
                c,
                "/api/v1/namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clearml"}}),
            );
        }
        delete(c, "/api/v1/namespaces/clearml");
        assert_eq!(
            c.sim.kube_get("/api/v1/namespaces/clearml")["status"]["phase"],
            "Terminating"
        );
    };
    terminating(&c);
    let out = run(&c, "preflight.rhai", &["--output", "json"]);
    let report = out.json();
    assert_eq!(
        check(&report, "namespace clearml")["status"],
        "warn",
        "{report:#}"
    );
    assert!(
        check(&report, "namespace clearml")["message"]
            .as_str()
            .unwrap()
            .contains("being deleted (Terminating): the install waits for it to go"),
        "{report:#}"
    );
    let out = run(&c, "preflight.rhai", &["--set", "create_namespace=false"]);
    out.code(1)
        .stdout_has("is being deleted (Terminating), and the site says create_namespace: false");
    // the install (skipping the preflight's warning) waits, then installs into a new namespace
    let out = run(&c, "install.rhai", &["--skip-preflight"]);
    out.success().stderr_has(
        "namespace clearml is being deleted (Terminating): waiting for it to go (at most 300 s), \
         then creating it again",
    );
    let ns = c.sim.kube_get("/api/v1/namespaces/clearml");
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(ns["metadata"]["deletionTimestamp"].is_null());
    assert!(exists(
        &c,
        "/api/v1/namespaces/clearml/secrets/clearml-script-internal-credentials"
    ));
    // with create_namespace: false the namespace is the site's to make again: the run says so
    terminating(&c);
    let out = run(
        &c,
        "install.rhai",
        &["--skip-preflight", "--set", "create_namespace=false"],
    );
    out.code(2).stderr_has(
        "the namespace clearml is being deleted and the site says create_namespace: false",
    );
}
