//! Air-gapped installs end to end: a bundle made in the sandbox, an install from it in a second
//! sandbox whose chart repository is switched off, the closure proof naming an image no value
//! can move to the mirror, and a tampered bundle refused.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::apps::{IMAGE, package_with};
use crate::common::{Test, repo, serve_dir};
use crate::recorder::{Recorder, no_secret_in_argv};

fn example(name: &str) -> String {
    repo().join("examples").join(name).display().to_string()
}

/// A run of the binary in `dir` with helm 3 and its own helm files there.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    run_helm(3, dir, args)
}

fn run_helm(major: u32, dir: &Path, args: &[&str]) -> Output {
    run_env(major, dir, args, &[])
}

/// The same, with more environment (a recording helm as HELM_BIN, a password).
fn run_env(major: u32, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    env.iter()
        .fold(Test::new().helm(major), |t, (k, v)| t.env(k, v))
        .helm_homes(dir)
        // the stand-in of the vendor's upload script records its calls there
        .env("VENDOR_LOG", &dir.join("vendor.log").display().to_string())
        .args(args)
        .command()
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The site: the base example, the agent and gateway of site-gpu.yaml, and the air-gapped
/// example, with its applications package served on 127.0.0.1 (at `pkg`).
struct Site {
    t: Test,
    pkg: PathBuf,
    values: Vec<String>,
    major: u32,
}

impl Site {
    fn new() -> Site {
        let t = Test::new();
        let pkg = package_with(t.dir(), &["upload_apps.py"]);
        let sha = clearml_script::apps_package::sha256_file(&pkg).unwrap();
        let url = format!("{}/clearml-apps.zip", serve_dir(pkg.parent().unwrap()));
        let t = t.file(
            "package.yaml",
            &format!("apps:\n  url: {url}\n  sha256: {sha}\n"),
        );
        let mut values = Vec::new();
        for v in [
            example("site.yaml"),
            example("site-gpu.yaml"),
            example("site-airgapped.yaml"),
            t.dir().join("package.yaml").display().to_string(),
        ] {
            values.extend(["--values".to_string(), v]);
        }
        Site {
            t,
            pkg,
            values,
            major: 3,
        }
    }

    fn dir(&self) -> &Path {
        self.t.dir()
    }

    /// One more values file over the others.
    fn layer(mut self, name: &str, text: &str) -> Site {
        let path = self.dir().join(name);
        std::fs::write(&path, text).unwrap();
        self.values
            .extend(["--values".to_string(), path.display().to_string()]);
        self
    }

    fn run(&self, head: &[&str], tail: &[&str]) -> Output {
        self.run_env(head, tail, &[])
    }

    fn run_env(&self, head: &[&str], tail: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args: Vec<&str> = head.to_vec();
        args.extend(self.values.iter().map(String::as_str));
        args.extend(tail);
        run_env(self.major, self.dir(), &args, env)
    }
}

/// The decompressed bytes of every entry of a bundle, by name.
fn entries(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(bundle).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (name, b)
        })
        .collect()
}

fn write_bundle(path: &Path, entries: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (name, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

const SKIP_NETWORK_CHECKS: &str = "preflight.skip={hosts,sources}";

#[test]
fn a_bundle_made_in_the_sandbox_installs_with_the_chart_repository_switched_off() {
    end_to_end(3);
}

#[test]
fn a_bundle_made_in_the_sandbox_installs_with_the_chart_repository_switched_off_helm4() {
    end_to_end(4);
}

/// The example site with the shared Redis, for helm `major`, and its bundle made in the sandbox
/// (`bundle.tar.gz`, four charts).
fn site_with_bundle(major: u32) -> Site {
    let mut site = Site::new().layer(
        "redis.yaml",
        "agent:\n  redis:\n    enabled: true\n    password: redis-pass-123456\n",
    );
    site.major = major;
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wrote bundle.tar.gz: 4 charts"), "{err}");
    site
}

/// What every air-gapped install from the bundle says: the closure proven, no request to the
/// switched-off chart repository, the releases deployed and the applications uploaded.
fn assert_installed_air_gapped(err: &str) {
    for want in [
        "closure: 7 image references of 4 chart(s)",
        "chart repository: switched off; 0 request(s) reached it",
        "clearml/clearml revision 1: deployed",
        "clearml-agents/clearml-ttr revision 1: deployed",
        "upload: uploaded hpo.zip",
    ] {
        assert!(err.contains(want), "{want} not in:\n{err}");
    }
}

fn end_to_end(major: u32) {
    let site = site_with_bundle(major);
    let bundle = site.dir().join("bundle.tar.gz");
    let files = entries(&bundle);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "manifest.json");
    for want in [
        "charts/clearml-enterprise-7.14.0.tgz",
        "charts/clearml-enterprise-agent-5.3.0.tgz",
        "charts/clearml-enterprise-task-traffic-router-1.4.0.tgz",
        "charts/redis-17.8.3.tgz",
        "apps/apps.zip",
        "images.txt",
        "mirror-images.sh",
        "skopeo-sync.sh",
        "skopeo-sync/allegroai.yaml",
        "skopeo-sync/library.yaml",
        "skopeo-sync/bitnami.yaml",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    // no secret of the site, whatever the file
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for secret in [
            "example-agent-secret-replace-me",
            "example-gateway-secret-replace-me",
            "example-apps-password-replace-me",
            "redis-pass-123456",
        ] {
            assert!(!text.contains(secret), "{secret} in {name}");
        }
    }
    let text =
        |n: &str| String::from_utf8(files.iter().find(|(f, _)| f == n).unwrap().1.clone()).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text("manifest.json")).unwrap();
    assert_eq!(manifest["site"]["agent"]["secret"], "<redacted>");
    assert_eq!(
        manifest["files"]["apps/apps.zip"],
        clearml_script::apps_package::sha256_file(&site.pkg).unwrap()
    );
    // every image a chart renders, the one the agent's values set, and the applications' own
    let images = text("images.txt");
    for want in [
        "docker.io/allegroai/clearml-enterprise-apiserver:3.22.0",
        "docker.io/allegroai/clearml-enterprise-agent-k8s-base:1.9.0",
        "docker.io/allegroai/clearml-enterprise-task-traffic-router:1.4.0",
        "docker.io/bitnami/redis:7.0.9",
        "docker.io/library/python:3.9",
        &format!("docker.io/{IMAGE}"),
    ] {
        assert!(images.lines().any(|l| l == want), "{want} not in {images}");
    }
    let copy = text("mirror-images.sh");
    assert!(copy.contains("skopeo copy --all docker://docker.io/allegroai/clearml-enterprise-webserver:3.22.0 docker://registry.local:5000/allegroai/clearml-enterprise-webserver:3.22.0"), "{copy}");
    assert!(copy.contains(&format!(
        "docker://docker.io/{IMAGE} docker://registry.local:5000/clearml-apps:hpo-1.10.0-1062"
    )));
    // skopeo sync puts an image at DEST/NAME:TAG: one file per directory of the mirror
    let sync = text("skopeo-sync/allegroai.yaml");
    assert!(sync.contains("docker.io:\n  images:\n"), "{sync}");
    assert!(
        sync.contains("    allegroai/clearml-enterprise-apiserver:\n      - \"3.22.0\"\n"),
        "{sync}"
    );
    assert!(
        !sync.contains("python") && !sync.contains("redis"),
        "{sync}"
    );
    assert!(text("skopeo-sync/library.yaml").contains("    library/python:\n      - \"3.9\"\n"));
    let script = text("skopeo-sync.sh");
    for line in [
        "skopeo sync --all --src yaml --dest docker skopeo-sync/allegroai.yaml registry.local:5000/allegroai\n",
        "skopeo sync --all --src yaml --dest docker skopeo-sync/bitnami.yaml registry.local:5000/bitnami\n",
        "skopeo sync --all --src yaml --dest docker skopeo-sync/library.yaml registry.local:5000/library\n",
        // the applications' images are renamed: copied, and said
        &format!("#   docker.io/{IMAGE} -> registry.local:5000/clearml-apps:hpo-1.10.0-1062\n"),
    ] {
        assert!(script.contains(line), "{line} not in {script}");
    }
    run_helm(major, site.dir(), &["bundle", "verify", "bundle.tar.gz"])
        .status
        .success()
        .then_some(())
        .expect("the bundle verifies");

    // the air-gapped side: the package server is gone, the chart repository switched off
    std::fs::remove_file(&site.pkg).unwrap();
    let installed = site.run(
        &["install.rhai"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
            "--fault",
            "remove:chart-repository",
        ],
    );
    let err = stderr(&installed);
    assert!(installed.status.success(), "{err}");
    assert_installed_air_gapped(&err);
    assert!(
        !err.contains("helm.repo_add") && !err.contains("helm.registry_login"),
        "{err}"
    );

    // the same site without the bundle needs the repository, and the switched-off one refuses it
    let connected = site.run(
        &["install.rhai"],
        &[
            "--set",
            SKIP_NETWORK_CHECKS,
            "--set",
            "apps.enabled=false",
            "--sandbox",
            "--fault",
            "remove:chart-repository",
        ],
    );
    let err = stderr(&connected);
    assert_eq!(connected.status.code(), Some(1), "{err}");
    assert!(
        err.contains("request(s) reached it: GET /charts/index.yaml"),
        "{err}"
    );
}

#[test]
fn the_closure_proof_names_an_image_no_value_moves_to_the_mirror() {
    let site = Site::new().layer(
        "exporter.yaml",
        "apps:\n  enabled: false\nagent:\n  extra_values:\n    agentk8sglue:\n      metricsExporter:\n        enabled: true\n",
    );
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // the bundle lists the exporter's image; the chart still renders it from Docker Hub
    let check = site.run(
        &["bundle", "check"],
        &["--set", "airgap.bundle=bundle.tar.gz"],
    );
    let err = stderr(&check);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(err.contains("chart clearml-enterprise-agent 5.3.0 (release clearml-agent in clearml-agents): Deployment clearml-agent-agentk8sglue, container metrics-exporter: image prom/statsd-exporter:v0.26.0 does not point at the mirror registry.local:5000"), "{err}");
    assert!(err.contains("found 1 image reference(s)"), "{err}");
    // the install stops there, before the sandbox is even started
    let install = site.run(
        &["install.rhai"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
        ],
    );
    let err = stderr(&install);
    assert_eq!(install.status.code(), Some(2), "{err}");
    assert!(err.contains("container metrics-exporter"), "{err}");
    assert!(!err.contains("The sandbox cluster now holds"), "{err}");

    // an image in the mirror, but not in the bundle: another default task image
    let other = site.run(
        &["bundle", "check"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            "agent.extra_values.agentk8sglue.metricsExporter.enabled=false",
            "--set",
            "agent.default_image=python:3.12",
        ],
    );
    let err = stderr(&other);
    assert_eq!(other.status.code(), Some(2), "{err}");
    assert!(err.contains("values agentk8sglue.defaultContainerImage: image registry.local:5000/library/python:3.12 is not in the bundle's image list"), "{err}");
    // and with the values the bundle was made for, the proof holds
    let ok = site.run(
        &["bundle", "check"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            "agent.extra_values.agentk8sglue.metricsExporter.enabled=false",
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stderr(&ok).contains("all in the mirror registry.local:5000 and in the bundle"));
}

#[test]
fn a_tampered_bundle_fails_verify_and_the_install() {
    let site = Site::new();
    let out = site.run(
        &["bundle", "create", "bundle.tar.gz"],
        &["--sandbox", "--set", "apps.enabled=false"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let good = entries(&site.dir().join("bundle.tar.gz"));
    // one byte of a chart changed
    let mut changed = good.clone();
    let chart = changed
        .iter_mut()
        .find(|(n, _)| n == "charts/clearml-enterprise-7.14.0.tgz")
        .unwrap();
    let last = chart.1.len() - 1;
    chart.1[last] ^= 1;
    write_bundle(&site.dir().join("changed.tar.gz"), &changed);
    let v = run_in(site.dir(), &["bundle", "verify", "changed.tar.gz"]);
    let err = stderr(&v);
    assert_eq!(v.status.code(), Some(2), "{err}");
    assert!(err.contains("changed.tar.gz: charts/clearml-enterprise-7.14.0.tgz was changed after the bundle was made"), "{err}");
    // a file more, and a file less
    let mut more = good.clone();
    more.push(("charts/extra-1.0.0.tgz".into(), b"x".to_vec()));
    write_bundle(&site.dir().join("more.tar.gz"), &more);
    let v = run_in(site.dir(), &["bundle", "verify", "more.tar.gz"]);
    assert_eq!(v.status.code(), Some(2));
    assert!(
        stderr(&v).contains("holds charts/extra-1.0.0.tgz, which its manifest does not list"),
        "{}",
        stderr(&v)
    );
    let less: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != "images.txt")
        .cloned()
        .collect();
    write_bundle(&site.dir().join("less.tar.gz"), &less);
    let v = run_in(site.dir(), &["bundle", "verify", "less.tar.gz"]);
    assert_eq!(v.status.code(), Some(2));
    assert!(stderr(&v).contains("lacks images.txt"), "{}", stderr(&v));
    // the untouched copy verifies
    write_bundle(&site.dir().join("same.tar.gz"), &good);
    assert!(
        run_in(site.dir(), &["bundle", "verify", "same.tar.gz"])
            .status
            .success()
    );
    // an install from the changed bundle stops before anything
    let install = site.run(
        &["install.rhai"],
        &[
            "--set",
            "airgap.bundle=changed.tar.gz",
            "--set",
            "apps.enabled=false",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
        ],
    );
    let err = stderr(&install);
    assert_eq!(install.status.code(), Some(2), "{err}");
    assert!(
        err.contains("was changed after the bundle was made"),
        "{err}"
    );
    assert!(!err.contains("The sandbox cluster now holds"), "{err}");
}

#[test]
fn the_air_gapped_example_rehearses_in_the_sandbox_with_its_upload() {
    // examples/site-airgapped.yaml over site.yaml, as its header says, without a bundle: the
    // package downloaded, converted to the mirror, uploaded as apps.user (seeded in the sandbox)
    let site = Site::new();
    let out = run_in(
        site.dir(),
        &[
            "install.rhai",
            "--values",
            &example("site.yaml"),
            "--values",
            &example("site-airgapped.yaml"),
            "--values",
            "package.yaml",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("fixed user `admin` (`apps.user`)"), "{err}");
    assert!(err.contains(&format!("convert: make sure {IMAGE} is in the registry as registry.local:5000/clearml-apps:hpo-1.10.0-1062")), "{err}");
    assert!(err.contains("upload: uploaded hpo.zip"), "{err}");
    assert!(!err.contains("example-apps-password-replace-me"));
    assert!(site.dir().join("mirror-apps.sh").is_file());
}

#[test]
fn the_preflight_reaches_for_the_mirror_and_not_the_vendor() {
    // a port of 127.0.0.1 nothing listens on any more: the mirror that does not answer
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Test::new();
    let out = run_in(
        t.dir(),
        &[
            "preflight.rhai",
            "--values",
            &example("site.yaml"),
            "--set",
            &format!("airgap.registry=127.0.0.1:{port}/mirror"),
            "--set",
            "airgap.bundle=no-bundle-here.tar.gz",
            "--set",
            "preflight.skip={hosts}",
            "--sandbox",
        ],
    );
    // the report on stdout, the error on stderr
    let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "FAIL  mirror registry     https://127.0.0.1:{port}/v2/ does not answer"
        )),
        "{err}"
    );
    assert!(!err.contains("chart repository"), "{err}");
    assert!(!err.contains("registry-1.docker.io"), "{err}");
    // the capacity check renders the bundle's charts: without the bundle it warns, naming it;
    // the permissions check asks the documented minimum instead, and says so
    assert!(err.contains("no-bundle-here.tar.gz"), "{err}");
    assert!(
        err.contains("WARN  permissions         the 40 permissions asked are granted; the charts of the plan could not be rendered (bundle_chart: the bundle "),
        "{err}"
    );
    assert!(
        err.contains("fix: give the bundle at airgap.bundle (clearml-script bundle create) so the charts' own kinds are asked"),
        "{err}"
    );
}

#[test]
fn a_bundle_without_its_mirror_is_refused_before_anything() {
    let out = Test::new()
        .args(["install.rhai", "--values", &example("site.yaml")])
        .args(["--set", "airgap.bundle=bundle.tar.gz", "--dry-run"])
        .run();
    out.code(2)
        .stderr_has("`airgap.registry`: is needed with airgap.bundle");
    // bundle create needs the mirror too, and says which key
    let out = Test::new()
        .args([
            "bundle",
            "create",
            "b.tar.gz",
            "--values",
            &example("site.yaml"),
        ])
        .run();
    out.code(2)
        .stderr_has("`bundle create` needs `airgap.registry`");
    let out = Test::new()
        .args([
            "bundle",
            "create",
            "b.tar.gz",
            "--values",
            &example("site.yaml"),
        ])
        .args(["--set", "airgap.registry=https://registry.local"])
        .run();
    out.code(2)
        .stderr_has("airgap.registry `https://registry.local` is not a registry");
}

// ---------------------------------------------------------------------------------------------
// The site's own chart registry: the bundle's charts pushed there, and installed from there.

const REGISTRY_PASSWORD: &str = "chart-registry-pass-71c2e9";

/// The site's chart registry, its password from the environment.
const CHART_REGISTRY: &str = "airgap:\n  bundle: bundle.tar.gz\n  chart_registry: oci://registry.local:5000/charts\n  chart_registry_username: pusher\n  chart_registry_password: {env: CHART_REGISTRY_PASSWORD}\n  chart_registry_plain_http: true\n";

#[test]
fn charts_pushed_to_the_sites_registry_install_from_there() {
    from_the_registry(3);
}

#[test]
fn charts_pushed_to_the_sites_registry_install_from_there_helm4() {
    from_the_registry(4);
}

fn from_the_registry(major: u32) {
    let site = site_with_bundle(major).layer("registry.yaml", CHART_REGISTRY);
    // the air-gapped side: the package server is gone, the chart repository switched off
    std::fs::remove_file(&site.pkg).unwrap();
    let env = [("CHART_REGISTRY_PASSWORD", REGISTRY_PASSWORD)];

    // the plan: the login, a push per chart, then every chart from the registry
    let plan = site.run_env(
        &["install.rhai"],
        &["--set", SKIP_NETWORK_CHECKS, "--dry-run"],
        &env,
    );
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(text.contains("helm.registry_login host=registry.local:5000 username=pusher password=<redacted> plain_http=true"), "{text}");
    for (name, version) in [
        ("clearml-enterprise", "7.14.0"),
        ("clearml-enterprise-agent", "5.3.0"),
        ("clearml-enterprise-task-traffic-router", "1.4.0"),
        ("redis", "17.8.3"),
    ] {
        assert!(
            text.contains(&format!(
                "name={name} version={version} registry=oci://registry.local:5000/charts plain_http=true"
            )),
            "{name}: {text}"
        );
        assert!(
            text.contains(&format!(
                "chart=oci://registry.local:5000/charts/{name} namespace="
            )),
            "{name}: {text}"
        );
    }
    assert!(!text.contains("helm.repo_add"), "{text}");

    // the install, helm recorded: pushed, then installed from the sandbox's OCI registry
    let rec = Recorder::passing(site.dir(), major);
    let helm = rec.path();
    let installed = site.run_env(
        &["install.rhai"],
        &[
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
            "--fault",
            "remove:chart-repository",
        ],
        &[env[0], ("HELM_BIN", &helm)],
    );
    let err = stderr(&installed);
    assert!(installed.status.success(), "{err}");
    assert_installed_air_gapped(&err);
    assert!(err.contains("it holds charts/clearml-enterprise:7.14.0, charts/clearml-enterprise-agent:5.3.0, charts/clearml-enterprise-task-traffic-router:1.4.0, charts/redis:17.8.3"), "{err}");
    assert!(
        err.contains("charts: the bundle's 4 chart(s) pushed to oci://registry.local:5000/charts"),
        "{err}"
    );
    // the preflight rendered the bundle's archives, before anything was pushed
    assert!(!err.contains("could not be rendered"), "{err}");
    let stdout = String::from_utf8_lossy(&installed.stdout);
    assert!(
        !err.contains(REGISTRY_PASSWORD) && !stdout.contains(REGISTRY_PASSWORD),
        "the registry's password in the output"
    );

    // what helm was given: the password on stdin only, plain HTTP as each version takes it
    let calls = rec.calls();
    no_secret_in_argv(&calls, &[REGISTRY_PASSWORD]);
    let login: Vec<_> = calls
        .iter()
        .filter(|c| c.argv.starts_with(&["registry".into(), "login".into()]))
        .collect();
    assert_eq!(login.len(), 1, "{calls:?}");
    assert!(login[0].argv.contains(&"--password-stdin".to_string()));
    assert_eq!(login[0].stdin, REGISTRY_PASSWORD);
    let plain = if major == 3 {
        "--insecure"
    } else {
        "--plain-http"
    };
    assert!(
        login[0].argv.contains(&plain.to_string()),
        "{:?}",
        login[0].argv
    );
    let pushes = calls
        .iter()
        .filter(|c| c.argv.first().is_some_and(|a| a == "push"));
    assert_eq!(pushes.clone().count(), 4, "{calls:?}");
    for p in pushes {
        assert!(p.argv.contains(&"--plain-http".to_string()), "{:?}", p.argv);
    }
    let upgrades: Vec<_> = calls
        .iter()
        .filter(|c| c.argv.starts_with(&["upgrade".into(), "--install".into()]))
        .collect();
    assert!(!upgrades.is_empty());
    for u in &upgrades {
        assert!(
            u.argv[3].starts_with("oci://127.0.0.1:")
                && u.argv.contains(&"--plain-http".to_string()),
            "{:?}",
            u.argv
        );
    }
    assert!(
        !calls
            .iter()
            .any(|c| c.argv.starts_with(&["repo".into(), "add".into()])),
        "{calls:?}"
    );
}

#[test]
fn bundle_push_rehearses_and_refuses_a_bad_registry_before_anything() {
    let site = Site::new().layer("apps.yaml", "apps:\n  enabled: false\n");
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let site = site.layer("registry.yaml", CHART_REGISTRY);
    let env = [("CHART_REGISTRY_PASSWORD", REGISTRY_PASSWORD)];
    // pushed into the sandbox's registry, which requires the site's credentials
    let pushed = site.run_env(&["bundle", "push"], &["--sandbox"], &env);
    let err = stderr(&pushed);
    assert!(pushed.status.success(), "{err}");
    assert!(err.contains("pushed clearml-enterprise-agent 5.3.0: oci://registry.local:5000/charts/clearml-enterprise-agent:5.3.0"), "{err}");
    assert!(err.contains("the OCI registry now holds charts/clearml-enterprise:7.14.0, charts/clearml-enterprise-agent:5.3.0, charts/clearml-enterprise-task-traffic-router:1.4.0"), "{err}");
    assert!(!err.contains(REGISTRY_PASSWORD), "{err}");
    // the login to the sandbox's registry stays in the sandbox: the user's helm configuration
    // (here, the test's helm homes) holds no registry credentials
    let registry_config = site.t.dir().join(".helm/config/registry");
    assert!(!registry_config.exists(), "{}", registry_config.display());
    // the plan of the push
    let plan = site.run_env(&["bundle", "push"], &["--dry-run"], &env);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        text.contains("Plan (dry run: nothing was changed): 4 steps"),
        "{text}"
    );
    assert!(!text.contains(REGISTRY_PASSWORD), "{text}");

    // bad values: exit 2, naming the value and where it was given, before anything
    let bad = site.run_env(
        &["bundle", "push"],
        &[
            "--set",
            "airgap.chart_registry=https://registry.local/charts",
        ],
        &env,
    );
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("`airgap.chart_registry` (--set airgap.chart_registry): `https://registry.local/charts` is not an OCI registry for charts"), "{err}");
    // the install refuses a registry that is not oci://, with where it was given
    let out = site.run_env(
        &["install.rhai"],
        &[
            "--set",
            "airgap.chart_registry=registry.local:5000/charts",
            "--dry-run",
        ],
        &env,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`registry.local:5000/charts` is not an OCI registry for charts: write oci://HOST[:PORT]/PATH"), "{err}");
    let no_password = site.layer("nopass.yaml", "airgap:\n  chart_registry_password: null\n");
    for head in [&["bundle", "push"][..], &["install.rhai"][..]] {
        let out = no_password.run_env(head, &["--dry-run"], &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{head:?}: {err}");
        assert!(
            err.contains("`airgap.chart_registry` (") && err.contains("registry.yaml:3"),
            "{head:?}: {err}"
        );
        assert!(
            err.contains("airgap.chart_registry_password"),
            "{head:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A bundle that lies, a mirror that is Docker Hub, an image in two places, a pinned version the
// bundle does not hold, a playbook in another folder, Ctrl-C.

/// The bundle at `dir/bundle.tar.gz` with its manifest changed by `edit`, written to `out`
/// (every other entry as it was, so every file's sha256 still holds).
fn with_manifest(dir: &Path, out: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut files = entries(&dir.join("bundle.tar.gz"));
    let mut m: serde_json::Value = serde_json::from_slice(&files[0].1).unwrap();
    edit(&mut m);
    files[0].1 = serde_json::to_vec_pretty(&m).unwrap();
    write_bundle(&dir.join(out), &files);
}

#[test]
fn a_manifest_whose_chart_file_is_not_one_of_its_files_fails_verify() {
    let site = Site::new().layer("apps.yaml", "apps:\n  enabled: false\n");
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // the control plane's chart named as a file outside the bundle (here: next to it)
    let outside = site.dir().join("elsewhere.tgz");
    std::fs::write(&outside, b"not the verified chart").unwrap();
    let outside = outside.display().to_string();
    with_manifest(site.dir(), "lying.tar.gz", |m| {
        m["charts"][0]["file"] = outside.clone().into();
    });
    let v = run_in(site.dir(), &["bundle", "verify", "lying.tar.gz"]);
    let err = stderr(&v);
    assert_eq!(
        v.status.code(),
        Some(2),
        "verify passed a manifest naming a chart outside its files: {err}"
    );
    // the plan of an install from it takes the chart from outside the verified files
    let plan = site.run(
        &["install.rhai"],
        &[
            "--set",
            "airgap.bundle=lying.tar.gz",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--dry-run",
        ],
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        !text.contains(&format!("chart={outside}")),
        "the plan installs a chart no sha256 covers:\n{text}"
    );
}

#[test]
fn a_manifest_whose_apps_sha256_disagrees_with_its_file_fails_verify() {
    let site = Site::new();
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    with_manifest(site.dir(), "lying.tar.gz", |m| {
        m["apps"]["sha256"] = "0".repeat(64).into();
    });
    let v = run_in(site.dir(), &["bundle", "verify", "lying.tar.gz"]);
    let verify_err = stderr(&v);
    assert_eq!(v.status.code(), Some(2), "verify passed: {verify_err}");
    std::fs::remove_file(&site.pkg).unwrap();
    let installed = site.run(
        &["install.rhai"],
        &[
            "--set",
            "airgap.bundle=lying.tar.gz",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
        ],
    );
    let err = stderr(&installed);
    // the disagreement is found only after the charts were installed
    assert!(
        !err.contains("clearml/clearml revision 1: deployed"),
        "charts installed before the bundle's own disagreement was found (exit {:?}):\n{err}",
        installed.status.code()
    );
}

#[test]
fn a_pinned_chart_version_the_bundle_does_not_hold_is_refused() {
    let site = Site::new().layer("apps.yaml", "apps:\n  enabled: false\n");
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    let err = stderr(&out);
    assert!(err.contains("chart clearml-enterprise 7.14.0"), "{err}");
    // the site now pins another version of the control plane's chart (an upgrade), the bundle
    // is the old one: the install must not silently install 7.14.0
    let plan = site.run(
        &["install.rhai"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            "chart_version=7.15.0",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--dry-run",
        ],
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    let err = stderr(&plan);
    assert_ne!(
        plan.status.code(),
        Some(0),
        "the pinned 7.15.0 was replaced by the bundle's version without a word:\n{text}\n{err}"
    );
}

#[test]
fn the_closure_proof_opens_the_bundle_the_install_uses() {
    let site = Site::new().layer("apps.yaml", "apps:\n  enabled: false\n");
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // the site's own copy of the playbook, in a folder of its own, the bundle beside it
    let pb = site.dir().join("pb");
    std::fs::create_dir_all(&pb).unwrap();
    std::fs::copy(repo().join("scripts/install.rhai"), pb.join("install.rhai")).unwrap();
    std::fs::rename(site.dir().join("bundle.tar.gz"), pb.join("bundle.tar.gz")).unwrap();
    let plan = site.run(
        &["pb/install.rhai"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--dry-run",
        ],
    );
    assert!(
        plan.status.success(),
        "the plan (bundle_chart) finds pb/bundle.tar.gz: {}",
        stderr(&plan)
    );
    let live = site.run(
        &["pb/install.rhai"],
        &[
            "--set",
            "airgap.bundle=bundle.tar.gz",
            "--set",
            SKIP_NETWORK_CHECKS,
            "--sandbox",
        ],
    );
    let err = stderr(&live);
    assert!(
        live.status.success(),
        "the closure proof looked for the bundle somewhere else than the install:\n{err}"
    );
}

/// A mirror a container runtime would read as a Docker Hub path (`mirror/allegroai/x:1` is
/// `docker.io/mirror/allegroai/x:1`), or Docker Hub itself, is refused before anything, by the
/// bundle and by the install's proof.
#[test]
fn a_mirror_a_container_runtime_reads_as_docker_hub_is_refused() {
    for registry in ["mirror", "docker.io/acme", "mirror/clearml"] {
        let site = Site::new().layer(
            "apps.yaml",
            &format!("apps:\n  enabled: false\nairgap:\n  registry: {registry}\n"),
        );
        let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{registry}: {err}");
        assert!(
            err.contains(&format!(
                "airgap.registry `{registry}` does not start with a registry host"
            )),
            "{registry}: {err}"
        );
        assert!(!site.dir().join("bundle.tar.gz").exists());
        // the site's own rules: with its file and line, before anything
        let check = site.run(
            &["install.rhai"],
            &["--set", "airgap.bundle=any.tar.gz", "--dry-run"],
        );
        let err = stderr(&check);
        assert_eq!(check.status.code(), Some(2), "{registry}: {err}");
        assert!(
            err.contains("`airgap.registry` (")
                && err.contains("apps.yaml:4")
                && err.contains(&format!("`{registry}` does not start with a registry host")),
            "{err}"
        );
    }
}

#[test]
fn an_image_both_a_chart_and_the_apps_use_is_copied_to_both_places() {
    // the agent's default task image is the applications' image: the chart's reference goes to
    // MIRROR/allegroai/clearml-apps:…, the converted apps point at MIRROR/clearml-apps:hpo-…
    let site = Site::new().layer("same.yaml", &format!("agent:\n  default_image: {IMAGE}\n"));
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = entries(&site.dir().join("bundle.tar.gz"));
    let copy = String::from_utf8(
        files
            .iter()
            .find(|(n, _)| n == "mirror-images.sh")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    assert!(
        copy.contains("docker://registry.local:5000/clearml-apps:hpo-1.10.0-1062"),
        "the converted applications' image is never copied into the mirror:\n{copy}"
    );
    assert!(
        copy.contains(&format!("docker://registry.local:5000/{IMAGE}")),
        "{copy}"
    );
}

#[test]
fn ctrl_c_stops_bundle_create_and_writes_no_bundle() {
    use std::os::unix::process::CommandExt;
    let site = Site::new().layer("apps.yaml", "apps:\n  enabled: false\n");
    // a helm that says when it pulls, and takes its time
    let real = crate::common::helm_binaries()[0].1.clone();
    let mark = site.dir().join("pulling");
    let wrapper = site.dir().join("slow-helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = pull ]; then touch {}; sleep 2; fi\nexec {} \"$@\"\n",
            mark.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut args: Vec<String> = vec!["bundle".into(), "create".into(), "bundle.tar.gz".into()];
    args.extend(site.values.iter().cloned());
    args.push("--sandbox".into());
    let mut cmd = Test::new().helm(3).helm_homes(site.dir()).command();
    cmd.args(&args)
        .current_dir(site.dir())
        .env("HELM_BIN", &wrapper)
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while !mark.exists() {
        assert!(start.elapsed().as_secs() < 120, "no helm pull");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Ctrl-C at the terminal: the tool's process group
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", "--", &format!("-{}", child.id())])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("stopping after the current step"), "{err}");
    assert!(
        err.contains("error: interrupted; no bundle was written"),
        "{err}"
    );
    assert!(
        !site.dir().join("bundle.tar.gz").exists() && out.status.code() == Some(130),
        "Ctrl-C said it would stop, yet the bundle was made (exit {:?}):\n{err}",
        out.status.code()
    );
}

#[test]
fn an_image_map_the_mirror_overrides_is_no_escape() {
    // the site pins the agent's image (repository and tag, a common override); the chart renders
    // it as global.imageRegistry/repository:tag, in the mirror
    let site = Site::new().layer(
        "pin.yaml",
        "apps:\n  enabled: false\nagent:\n  extra_values:\n    agentk8sglue:\n      image:\n        repository: allegroai/clearml-enterprise-agent-k8s-base\n        tag: 1.9.0\n",
    );
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let check = site.run(
        &["bundle", "check"],
        &["--set", "airgap.bundle=bundle.tar.gz"],
    );
    let err = stderr(&check);
    assert!(
        check.status.success(),
        "every rendered image is in the mirror, yet the proof refuses the values' own map:\n{err}"
    );
}

/// An image the values used for `bundle create` already point at the mirror cannot be copied
/// from anywhere (the mirror is its only source): refused, naming the chart, the value and the
/// image, and no bundle written (the copy line would copy the mirror onto itself).
#[test]
fn an_image_the_values_already_point_at_the_mirror_is_refused_by_bundle_create() {
    let site = Site::new().layer(
        "pin.yaml",
        "apps:\n  enabled: false\nagent:\n  extra_values:\n    agentk8sglue:\n      image:\n        registry: registry.local:5000\n        repository: allegroai/clearml-enterprise-agent-k8s-base\n        tag: 1.9.0\n",
    );
    let out = site.run(&["bundle", "create", "bundle.tar.gz"], &["--sandbox"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("chart clearml-agent: Deployment clearml-agent-agentk8sglue, container agentk8sglue: the image registry.local:5000/allegroai/clearml-enterprise-agent-k8s-base:1.9.0 is already in the mirror registry.local:5000")
            && err.contains("give the public image in the site values")
            && err.contains("no bundle was written"),
        "{err}"
    );
    assert!(!site.dir().join("bundle.tar.gz").exists());
}
