//! The product's helm calls seen from outside: a wrapper in helm's place records each call's
//! argv, stdin, environment and the values files it is handed, then runs the real helm. These
//! tests judge the tool by what it gives helm, not by what the simulator makes of it.

use std::path::{Path, PathBuf};

use crate::common::{Cluster, Test, demo_chart, helm_binaries, repo};

/// One recorded helm call.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) argv: Vec<String>,
    pub(crate) stdin: String,
    /// `(mode, contents)` of each `-f` file, read while helm ran.
    values_files: Vec<(PathBuf, String, String)>,
    config_home: String,
}

impl Call {
    fn is(&self, words: &[&str]) -> bool {
        self.argv.len() >= words.len() && self.argv.iter().zip(words).all(|(a, w)| a == w)
    }

    fn after(&self, flag: &str) -> Option<&str> {
        let i = self.argv.iter().position(|a| a == flag)?;
        self.argv.get(i + 1).map(String::as_str)
    }
}

/// A helm in the real helm's place that records every call under `dir/calls`. `registry login`
/// is answered by the wrapper (there is no registry here), and an `oci://` chart is refused.
pub(crate) struct Recorder {
    script: PathBuf,
    calls: PathBuf,
}

impl Recorder {
    fn new(dir: &Path, major: u32) -> Recorder {
        Recorder::make(
            dir,
            major,
            r#"case " $* " in
  *" registry login "*) echo "Login Succeeded"; exit 0;;
  *oci://*) echo "Error: no OCI registry in this test" >&2; exit 1;;
esac"#,
        )
    }

    /// A recorder that hands every call to the real helm, registry logins and `oci://` charts
    /// included (for a test with the sandbox's OCI registry).
    pub(crate) fn passing(dir: &Path, major: u32) -> Recorder {
        Recorder::make(dir, major, "")
    }

    fn make(dir: &Path, major: u32, intercept: &str) -> Recorder {
        let real = helm_binaries()
            .into_iter()
            .find(|(m, _)| *m == major)
            .unwrap()
            .1;
        let calls = dir.join("calls");
        std::fs::create_dir_all(&calls).unwrap();
        let script = dir.join("recording-helm");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
d=$(mktemp -d "{calls}/call.XXXXXXXX")
for a in "$@"; do printf '%s\0' "$a" >> "$d/argv"; done
cat > "$d/stdin"
printf '%s' "${{HELM_CONFIG_HOME:-}}" > "$d/config_home"
prev=""
n=0
for a in "$@"; do
  if [ "$prev" = "-f" ]; then
    n=$((n+1))
    printf '%s' "$a" > "$d/file$n.path"
    stat -c '%a' "$a" > "$d/file$n.mode"
    cat "$a" > "$d/file$n.text"
  fi
  prev="$a"
done
{intercept}
exec "{real}" "$@" < "$d/stdin"
"#,
                calls = calls.display(),
                real = real.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Recorder { script, calls }
    }

    pub(crate) fn path(&self) -> String {
        self.script.display().to_string()
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        let mut dirs: Vec<_> = std::fs::read_dir(&self.calls)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        // in the order they were made
        dirs.sort_by_key(|d| std::fs::metadata(d).unwrap().modified().unwrap());
        dirs.iter()
            .map(|d| {
                let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap_or_default();
                let argv = read("argv")
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let mut values_files = Vec::new();
                for n in 1.. {
                    if !d.join(format!("file{n}.path")).exists() {
                        break;
                    }
                    values_files.push((
                        PathBuf::from(read(&format!("file{n}.path"))),
                        read(&format!("file{n}.mode")).trim().to_string(),
                        read(&format!("file{n}.text")),
                    ));
                }
                Call {
                    argv,
                    stdin: read("stdin"),
                    values_files,
                    config_home: read("config_home"),
                }
            })
            .collect()
    }
}

fn leaks_in_argv(calls: &[Call], secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for c in calls {
        for s in secrets {
            if c.argv.iter().any(|a| a.contains(s)) {
                found.push(format!("{s:?} in helm's arguments: {:?}", c.argv));
            }
        }
    }
    found
}

pub(crate) fn no_secret_in_argv(calls: &[Call], secrets: &[&str]) {
    let found = leaks_in_argv(calls, secrets);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

fn guide_site() -> String {
    repo()
        .join("tests/fixtures/guide-site.yaml")
        .display()
        .to_string()
}

/// A kubeconfig whose current context is a cluster that is not there, and whose `sandbox`
/// context is the simulated cluster: only a run that honours `--context sandbox` in helm AND in
/// the Kubernetes client can succeed.
fn two_context_kubeconfig(live: &Cluster, dir: &Path) -> String {
    let text = std::fs::read_to_string(&live.sim.sandbox.kubeconfig).unwrap();
    assert!(text.contains("current-context: sandbox\n"), "{text}");
    let text = text
        .replace("current-context: sandbox\n", "current-context: elsewhere\n")
        .replacen(
            "clusters:\n",
            "clusters:\n- name: elsewhere\n  cluster:\n    server: http://127.0.0.1:9\n",
            1,
        )
        .replacen(
            "contexts:\n",
            "contexts:\n- name: elsewhere\n  context:\n    cluster: elsewhere\n    user: sandbox\n",
            1,
        );
    let path = dir.join("two-contexts.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs the control-plane playbook live through the recorder; answers the run and the calls.
fn control_plane_through(
    live: &Cluster,
    rec: &Recorder,
    kubeconfig: &str,
    extra: &[&str],
) -> (crate::common::Output, Vec<Call>) {
    // HELM_BIN names a helm that must not run: --helm wins
    let wrong = rec.script.with_file_name("wrong-helm");
    std::fs::write(&wrong, "#!/bin/sh\necho 'the wrong helm ran' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = live.home.path();
    let out = Test::new()
        .helm(4)
        .env("HELM_BIN", &wrong.display().to_string())
        .env(
            "HELM_CONFIG_HOME",
            &home.join("config").display().to_string(),
        )
        .env("HELM_CACHE_HOME", &home.join("cache").display().to_string())
        .env("HELM_DATA_HOME", &home.join("data").display().to_string())
        .args(["--set", &format!("chart_repo_url={}", live.repo_url)])
        .args(["--set", "timeout=60s"])
        .arg(
            repo()
                .join("scripts/install-control-plane.rhai")
                .display()
                .to_string(),
        )
        .args(["--values", &guide_site()])
        .args(["--kubeconfig", kubeconfig])
        .args(["--helm", &rec.path()])
        .args(extra)
        .run();
    (out, rec.calls())
}

/// `--context` reaches helm (`--kube-context`) and the Kubernetes client alike, in a run and in
/// a diff, and `--helm` wins over `HELM_BIN`: with the kubeconfig's current context elsewhere,
/// only a run that gives both the named context succeeds.
#[test]
fn helm_and_the_kubernetes_client_use_the_given_context() {
    let live = Cluster::new(4);
    let t = Test::new();
    let rec = Recorder::new(t.dir(), 4);
    let kubeconfig = two_context_kubeconfig(&live, t.dir());
    let (out, calls) = control_plane_through(&live, &rec, &kubeconfig, &["--context", "sandbox"]);
    out.success().nowhere("the wrong helm ran");
    // every call that talks to the cluster names the context and the kubeconfig
    for c in calls.iter().filter(|c| !c.is(&["version"])) {
        assert_eq!(c.after("--kube-context"), Some("sandbox"), "{c:?}");
        assert_eq!(c.after("--kubeconfig"), Some(kubeconfig.as_str()), "{c:?}");
    }
    assert!(calls.iter().any(|c| c.is(&["upgrade", "--install"])));
    // `--dry-run --diff` reads the release from the same context, not the current one
    let (diff, _) = control_plane_through(
        &live,
        &rec,
        &kubeconfig,
        &[
            "--context",
            "sandbox",
            "--dry-run",
            "--diff",
            "--set",
            "service_type=NodePort",
        ],
    );
    diff.success()
        .stdout_has("--- clearml/clearml values (revision 1)");
}

/// The control plane installed live through the recorder: the GitHub token reaches `helm repo
/// add` on stdin only, the values file is 0600, holds the real secrets and is gone afterwards.
/// Each promise is checked and all that fail are reported together.
#[test]
fn helm_gets_secrets_on_stdin_and_in_a_private_values_file_only() {
    let live = Cluster::new(4);
    let t = Test::new();
    let rec = Recorder::new(t.dir(), 4);
    let users = t.dir().join("users.yaml");
    std::fs::write(
        &users,
        "fixed_users_pass_hashed: true\nfixed_users:\n  - {username: my_user, password: my-password-1, name: My User, admin: true}\n  - {username: viewer, password: viewer-pw-2}\n",
    )
    .unwrap();
    let kubeconfig = live.sim.sandbox.kubeconfig.display().to_string();
    let (out, calls) = control_plane_through(
        &live,
        &rec,
        &kubeconfig,
        &["--values", &users.display().to_string()],
    );
    out.success().nowhere("the wrong helm ran");
    let mut problems = leaks_in_argv(
        &calls,
        &[
            "ghp-test-token-0001",
            "dckr-test-token-0001",
            "supervisor-secret-0001",
            "my-password-1",
            "viewer-pw-2",
        ],
    );
    // repo add: the token on stdin, announced by --password-stdin; no other call gets stdin
    let add = calls
        .iter()
        .find(|c| c.is(&["repo", "add"]))
        .expect("a helm repo add");
    if !add.argv.contains(&"--password-stdin".to_string())
        || add.stdin.trim_end() != "ghp-test-token-0001"
    {
        problems.push(format!("repo add without the token on stdin: {add:?}"));
    }
    for c in calls.iter().filter(|c| !c.is(&["repo", "add"])) {
        if !c.stdin.is_empty() {
            problems.push(format!("stdin for {c:?}"));
        }
    }
    // the upgrade: the values through a 0600 file that holds the real values, removed afterwards
    let up = calls
        .iter()
        .find(|c| c.is(&["upgrade", "--install"]))
        .expect("a helm upgrade");
    let (path, mode, text) = up.values_files.last().expect("a values file");
    if mode != "600" {
        problems.push(format!("the values file's mode is {mode}"));
    }
    if !text.contains("dckr-test-token-0001") || text.contains("<redacted>") {
        problems.push(format!("the values file lacks the real secrets: {text}"));
    }
    if path.exists() {
        problems.push(format!("{} was left behind", path.display()));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the fixed users' apiserver.conf, with each password as base64 of a bcrypt hash of it
    let values: serde_json::Value = serde_saphyr::from_str(text).unwrap();
    let conf = values["apiserver"]["additionalConfigs"]["apiserver.conf"]
        .as_str()
        .expect("apiserver.conf")
        .to_string();
    let mut shown = conf.clone();
    for (user, plain) in [("my_user", "my-password-1"), ("viewer", "viewer-pw-2")] {
        let after = conf.split(&format!("username: \"{user}\"")).nth(1).unwrap();
        let b64 = after.split('"').nth(1).unwrap();
        use base64::Engine as _;
        let hash = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        assert!(hash.starts_with("$2b$12$"), "{hash}");
        assert!(bcrypt::verify(plain, &hash).unwrap(), "{user}'s hash");
        shown = shown.replace(b64, "HASH");
    }
    assert_eq!(
        shown,
        "auth {\n  fixed_users {\n    enabled: true\n    pass_hashed: true\n    users: [\n      \
         {\n        username: \"my_user\"\n        password: \"HASH\"\n        name: \"My User\"\n        admin: true\n      },\n      \
         {\n        username: \"viewer\"\n        password: \"HASH\"\n        name: \"viewer\"\n        admin: false\n      },\n    ]\n  }\n}\n"
    );
}

/// `helm registry login` in the oci generation: the password on stdin only.
#[test]
fn registry_login_gets_the_password_on_stdin() {
    let live = Cluster::new(4);
    let t = Test::new();
    let rec = Recorder::new(t.dir(), 4);
    live.test()
        .arg(
            repo()
                .join("scripts/install-control-plane.rhai")
                .display()
                .to_string(),
        )
        .args(["--values", &guide_site(), "--set", "generation=oci"])
        .args(["--helm", &rec.path()])
        .run()
        .code(1)
        .stderr_has("no OCI registry in this test")
        .nowhere("dckr-test-token-0001");
    let calls = rec.calls();
    no_secret_in_argv(&calls, &["dckr-test-token-0001"]);
    let login = calls
        .iter()
        .find(|c| c.is(&["registry", "login"]))
        .expect("a helm registry login");
    assert_eq!(login.argv[2], "docker.io", "{login:?}");
    assert!(login.argv.contains(&"--password-stdin".to_string()));
    assert_eq!(login.stdin.trim_end(), "dckr-test-token-0001");
}

/// The built-ins for releases against a live cluster, through the recorder: the rollback flag
/// and `list -a` each helm understands, status, list and uninstall.
fn release_builtins(major: u32) {
    let live = Cluster::new(major);
    let t = Test::new();
    let rec = Recorder::new(t.dir(), major);
    let chart = demo_chart();
    let script = format!(
        r#"
let r = install_chart("rec", "{chart}", #{{ namespace: "rec-ns", values: #{{ message: secret("demo-pass-77") }}, rollback_on_failure: true }});
print(`installed ${{r.release}} ${{r.namespace}} ${{r.revision}} ${{r.status}}`);
let s = chart_status("rec", #{{ namespace: "rec-ns" }});
print(`status ${{s?.name}} ${{s?.info?.status}} ${{s?.version}}`);
for x in list_releases() {{ print(`listed ${{x.namespace}}/${{x.name}} ${{x.status}}`); }}
print(`in rec-ns ${{list_releases("rec-ns").len()}}, in other ${{list_releases("other").len()}}`);
print(`uninstalled ${{uninstall_chart("rec", #{{ namespace: "rec-ns", wait: true }})}}`);
print(`again ${{uninstall_chart("rec", #{{ namespace: "rec-ns" }})}}`);
print(`status after ${{chart_status("rec", #{{ namespace: "rec-ns" }}) == ()}}`);
print(`kube ${{kube_version()}}`);
"#
    );
    let out = live
        .test()
        .script(&script)
        .args(["--helm", &rec.path()])
        .run();
    out.success();
    let kube = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("kube "))
        .unwrap_or_default()
        .to_string();
    assert!(kube.starts_with("v1."), "{}", out.stdout);
    out.stdout(&format!(
        "installed rec rec-ns 1 deployed\nstatus rec deployed 1\nlisted rec-ns/rec deployed\n\
         in rec-ns 1, in other 0\nuninstalled true\nagain false\nstatus after true\nkube {kube}\n"
    ))
    .nowhere("demo-pass-77");
    let calls = rec.calls();
    no_secret_in_argv(&calls, &["demo-pass-77"]);
    let up = calls.iter().find(|c| c.is(&["upgrade"])).unwrap();
    let (rollback, not) = if major == 3 {
        ("--atomic", "--rollback-on-failure")
    } else {
        ("--rollback-on-failure", "--atomic")
    };
    assert!(up.argv.contains(&rollback.to_string()), "{up:?}");
    assert!(!up.argv.contains(&not.to_string()), "{up:?}");
    assert!(up.values_files[0].2.contains("demo-pass-77"));
    let lists: Vec<&Call> = calls.iter().filter(|c| c.is(&["list"])).collect();
    assert_eq!(lists.len(), 3, "{calls:?}");
    for l in lists {
        // helm 3 hides failed and pending releases without -a; helm 4 shows all and refuses -a
        assert_eq!(l.argv.contains(&"-a".to_string()), major == 3, "{l:?}");
    }
    let un: Vec<&Call> = calls.iter().filter(|c| c.is(&["uninstall"])).collect();
    assert_eq!(un.len(), 1, "the second uninstall finds nothing to do");
    assert!(un[0].argv.contains(&"--wait".to_string()));
}

#[test]
fn release_builtins_with_helm_3() {
    release_builtins(3);
}

#[test]
fn release_builtins_with_helm_4() {
    release_builtins(4);
}

/// A sandbox run keeps helm away from the user's helm configuration.
#[test]
fn the_sandbox_leaves_the_users_helm_configuration_alone() {
    let t = Test::new();
    let rec = Recorder::new(t.dir(), 4);
    let user_config = t.dir().join("users-helm-config");
    let user_cache = t.dir().join("users-helm-cache").display().to_string();
    let user_data = t.dir().join("users-helm-data").display().to_string();
    let t = t
        .file("site.yaml", &std::fs::read_to_string(guide_site()).unwrap())
        .arg(
            repo()
                .join("scripts/install-control-plane.rhai")
                .display()
                .to_string(),
        )
        .args(["--values", "site.yaml", "--sandbox", "--set", "timeout=60s"])
        .args(["--helm", &rec.path()])
        .env("HELM_CONFIG_HOME", &user_config.display().to_string())
        .env("HELM_CACHE_HOME", &user_cache)
        .env("HELM_DATA_HOME", &user_data);
    let out = t.run();
    out.success();
    let calls = rec.calls();
    assert!(calls.iter().any(|c| c.is(&["repo", "add"])));
    for c in calls.iter().filter(|c| !c.is(&["version"])) {
        assert!(!c.config_home.is_empty(), "{c:?}");
        assert_ne!(c.config_home, user_config.display().to_string(), "{c:?}");
    }
    assert!(
        !user_config.exists(),
        "the sandbox wrote into the user's helm configuration"
    );
}

/// The helm processes of a run, as `VERB SUBVERB` (the first two arguments).
fn processes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.argv.iter().take(2).cloned().collect::<Vec<_>>().join(" "))
        .collect()
}

/// A re-run that changes nothing starts only the helm processes it needs: helm's repository
/// entry is there already (no `repo add`), the index is fetched before the chart needs it (one
/// `repo update`), and with the same values and the version that index names, no render and no
/// upgrade. With the chart pinned at the deployed version, nothing but the version probe. The
/// first install fetches the index once, with its `repo add`.
#[test]
fn an_unchanged_re_run_starts_only_the_helm_processes_it_needs() {
    let live = Cluster::new(4);
    let t = Test::new();
    let kubeconfig = live.sim.sandbox.kubeconfig.display().to_string();
    let run = |name: &str, extra: &[&str]| {
        let rec = Recorder::new(&t.dir().join(name), 4);
        let (out, calls) = control_plane_through(&live, &rec, &kubeconfig, extra);
        out.success().nowhere("the wrong helm ran");
        (out, processes(&calls))
    };
    // the release's revisions: helm's release Secrets
    let revisions = || {
        live.sim
            .kube_get("/api/v1/namespaces/clearml/secrets?labelSelector=owner%3Dhelm")["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let (_, first) = run("first", &[]);
    assert_eq!(
        first,
        ["version --template", "repo add", "upgrade --install"]
    );
    assert_eq!(revisions(), 1);

    let (out, again) = run("again", &[]);
    out.stderr_has("helm repository clearml-enterprise: already added")
        .stderr_has("chart clearml in clearml: unchanged (revision 1), not upgraded");
    assert_eq!(again, ["version --template", "repo update"]);
    assert_eq!(revisions(), 1, "no new revision");

    let metadata: serde_json::Value = serde_json::from_str(
        &live
            .sim
            .helm(
                &helm_binaries()[1].1,
                &["get", "metadata", "clearml", "-n", "clearml", "-o", "json"],
            )
            .success()
            .stdout,
    )
    .unwrap();
    let version = metadata["version"].as_str().unwrap().to_string();
    let (out, pinned) = run("pinned", &["--set", &format!("chart_version={version}")]);
    out.stderr_has("not upgraded");
    assert_eq!(pinned, ["version --template"]);

    // another value: the chart is fetched (the index first) and upgraded
    let (out, changed) = run("changed", &["--set", "service_type=NodePort"]);
    out.nowhere("not upgraded");
    assert_eq!(
        changed,
        ["version --template", "repo update", "upgrade --install"]
    );
    assert_eq!(revisions(), 2);
}

/// Two branches of a parallel group need the same repository, whose index this run has not
/// fetched (its entry was there already): one `helm repo update` runs, and the other branch
/// waits for it rather than running a second one beside it.
#[test]
fn branches_needing_one_repository_fetch_its_index_once() {
    let live = Cluster::new(4);
    let t = Test::new();
    let script = t.dir().join("two.rhai");
    std::fs::write(
        &script,
        format!(
            "helm_repo_add(\"standins\", \"{url}\");\nhelm_repo_update();\n\
             parallel([\n  || install_chart(\"one\", \"standins/redis\", #{{ namespace: \"one\", values: #{{ n: N }} }}),\n  \
             || install_chart(\"two\", \"standins/redis\", #{{ namespace: \"two\", values: #{{ n: N }} }}),\n]);\n",
            url = live.repo_url
        )
        .replace("N", "1"),
    )
    .unwrap();
    let run = |name: &str, script: &Path| recorded_run(&live, &t.dir().join(name), script);
    let first = run("first", &script);
    assert_eq!(
        first.iter().filter(|p| *p == "repo update").count(),
        0,
        "the add fetched the index: {first:?}"
    );
    // the same values, with another value for each so both charts are fetched and upgraded
    let changed = t.dir().join("changed.rhai");
    std::fs::write(
        &changed,
        std::fs::read_to_string(&script)
            .unwrap()
            .replace("n: 1", "n: 2"),
    )
    .unwrap();
    let again = run("again", &changed);
    assert!(!again.contains(&"repo add".to_string()), "{again:?}");
    assert_eq!(
        again.iter().filter(|p| *p == "repo update").count(),
        1,
        "{again:?}"
    );
    assert_eq!(
        again.iter().filter(|p| *p == "upgrade --install").count(),
        2,
        "{again:?}"
    );
}

/// A repository added again (its entry already there, so no `repo add`) or asked to update has
/// its index fetched once before its chart is read; a chart from a repository the playbook
/// neither added nor updated is read from the index as the user left it.
#[test]
fn a_repository_added_again_or_updated_is_fetched_before_its_chart_and_otherwise_left_alone() {
    let live = Cluster::new(4);
    let t = Test::new();
    let chart = |n: u32| {
        format!(
            "install_chart(\"one\", \"standins/redis\", #{{ namespace: \"one\", values: #{{ n: {n} }} }});\n"
        )
    };
    let add = format!("helm_repo_add(\"standins\", \"{}\");\n", live.repo_url);
    let run = |name: &str, text: String| {
        let script = t.dir().join(format!("{name}.rhai"));
        std::fs::write(&script, text).unwrap();
        recorded_run(&live, &t.dir().join(name), &script)
    };
    let first = run("first", format!("{add}{}", chart(1)));
    assert_eq!(
        first,
        ["version --template", "repo add", "upgrade --install"]
    );
    let again = run("again", format!("{add}{}", chart(2)));
    assert_eq!(
        again,
        ["version --template", "repo update", "upgrade --install"]
    );
    let updated = run("updated", format!("helm_repo_update();\n{}", chart(3)));
    assert_eq!(
        updated,
        ["version --template", "repo update", "upgrade --install"]
    );
    let neither = run("neither", chart(4));
    assert_eq!(neither, ["version --template", "upgrade --install"]);
}

/// Run `script` live with helm 4 through a recorder kept in `dir`: the helm processes it ran.
fn recorded_run(live: &Cluster, dir: &Path, script: &Path) -> Vec<String> {
    let rec = Recorder::new(dir, 4);
    live.test()
        .arg(script.display().to_string())
        .args(["--helm", &rec.path()])
        .run()
        .success();
    processes(&rec.calls())
}
