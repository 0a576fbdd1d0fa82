//! The README's promises under bad scripts, a cluster that does not answer, and signals:
//! nothing starts before the whole playbook passed, failures say what finished, Ctrl-C and
//! SIGTERM stop between steps with the current step finished.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::{Test, demo_chart, helm_binaries, repo};

/// Script errors that are not parse errors: each stops the plan pass with exit 2, before any
/// step, in live, sandbox and dry-run mode alike.
const SCRIPT_ERRORS: &[(&str, &str)] = &[
    (
        "ensure_namespace(\"early\");\ninstal_chart(\"r\", \"repo/chart\", #{ namespace: \"ns\" });\n",
        "unknown function instal_chart",
    ),
    (
        "fn deep(n) { deep(n + 1) }\nensure_namespace(\"early\");\ndeep(0);\n",
        "deep",
    ),
    (
        "ensure_namespace(\"early\");\nlet s = \"xxxxxxxx\";\nloop { s += s; }\n",
        "the playbook's data outgrew the memory limit",
    ),
    ("ensure_namespace(\"early\");\nlet n = 1 + \"a\" * 2;\n", ""),
    // one call asking for more than the memory limit, and a wait no clock holds (a panic and
    // an abort of Rhai's own functions before, found by a review)
    (
        "ensure_namespace(\"early\");\nlet a = [];\na.pad(9223372036854775807, 0);\n",
        "would outgrow the playbook's memory limit",
    ),
    (
        "ensure_namespace(\"early\");\nsleep(1e300);\n",
        "is not a time to wait",
    ),
    (
        "ensure_namespace(\"early\");\nthrow \"the playbook's own failure\";\n",
        "the playbook's own failure",
    ),
];

#[test]
fn a_script_error_in_the_plan_pass_starts_nothing() {
    for (script, message) in SCRIPT_ERRORS {
        for mode in [&["--sandbox"][..], &["--dry-run"], &[]] {
            let out = Test::new()
                .script(script)
                .args(mode)
                .env("HELM_BIN", "/nonexistent/helm")
                .run();
            out.code(2).stderr_has(message);
            assert!(
                !out.stderr.contains("→ step") && !out.stderr.contains("sandbox:"),
                "{mode:?} {script}: something started:\n{}",
                out.stderr
            );
        }
    }
    // a site value of the wrong type, in the standard install: nothing started, not even the
    // sandbox or helm's repository configuration
    let t = Test::new();
    let out = t
        .command()
        .args(["install.rhai", "--values"])
        .arg(repo().join("examples/site.yaml"))
        .args(["--set", "control_plane=no", "--sandbox"])
        .env("HELM_CONFIG_HOME", t.dir().join("helm-config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("→ step") && !stderr.contains("sandbox:"),
        "{stderr}"
    );
    assert!(!t.dir().join("helm-config").exists());
}

#[test]
fn only_a_value_the_cluster_gives_lets_the_plan_pass_stop_early() {
    // the dry run answers kube_version() with a placeholder; the script needs the real value
    let script = "ensure_namespace(\"early\");\nlet v = kube_version();\n\
                  if !v.starts_with(\"v\") { throw \"cannot read the version \" + v; }\n\
                  ensure_namespace(\"after-\" + v.sub_string(1, 1));\n";
    Test::new()
        .script(script)
        .args(["--sandbox"])
        .run()
        .success()
        .stderr_has("→ step 2: kube.ensure_namespace")
        .stderr_has("namespaces: after-1, default, early,");
    Test::new()
        .script(script)
        .arg("--dry-run")
        .run()
        .success()
        .stderr_has("note: the plan ends here")
        .stdout_has("1. kube.ensure_namespace name=early");
    // a built-in's own check refusing an argument is bad input even when the argument quotes a
    // placeholder: the plan pass does not end early on it
    Test::new()
        .script("ensure_namespace(\"early\");\nensure_namespace(\"after-\" + kube_version());\n")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("error: ensure_namespace: the namespace `after-<planned: the cluster's version>` is not valid")
        .nowhere("the plan ends here");
    // a branch of a parallel group that needs the cluster's value ends the plan the same way,
    // with the other branches' outcomes
    Test::new()
        .script(
            "ensure_namespace(\"early\");\nparallel(#{ a: || { let v = kube_version();\n\
             if !v.starts_with(\"v\") { throw \"cannot read the version \" + v; } }, b: || ensure_namespace(\"b\") });\n",
        )
        .arg("--dry-run")
        .run()
        .success()
        .stderr_has("  - the branch b finished")
        .stderr_has("note: the plan ends here")
        .stdout_has("2. [1:b] kube.ensure_namespace name=b");
}

#[test]
fn failure_messages_count_what_finished() {
    let run = |script: &str| Test::new().script(script).arg("--sandbox").run();
    // a failure after the last step, that is not a step's
    run("ensure_namespace(\"a\");\nensure_namespace(\"b\");\nif mode() != \"dry-run\" { throw \"read failed\"; }\n")
        .code(1)
        .stderr_has("2 steps finished before the failure; a re-run continues from the cluster's state\n");
    // a configuration error after steps: no promise that a re-run continues
    let out = run(
        "ensure_namespace(\"a\");\nif mode() != \"dry-run\" { fail(\"the site is wrong\"); }\n",
    );
    out.code(2)
        .stderr_has("1 step finished before the failure; fix the problem above, then run again\n");
    assert!(
        !out.stderr.contains("re-run continues") && !out.stderr.contains("nothing was changed")
    );
    // a failure before any step: nothing was changed
    run("if mode() != \"dry-run\" { throw \"discovery failed\"; }\nensure_namespace(\"a\");\n")
        .code(1)
        .stderr_has("no step was started: nothing was changed\n");
}

/// A kubeconfig for `server`, with the context `ctx`.
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig-test");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
             users:\n- name: u\n  user:\n    token: not-a-real-token\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_connection_is_checked_before_the_first_step() {
    let helm = helm_binaries()[1].1.clone();
    // a port nothing listens on, and an API that accepts and never answers
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_url = format!("https://{}", stalled.local_addr().unwrap());
    for (server, context, expected) in [
        (
            closed_url.as_str(),
            None,
            format!("the Kubernetes API at {closed_url} (context `ctx`) does not answer"),
        ),
        (
            closed_url.as_str(),
            Some("nope"),
            "the kubeconfig has no context `nope`; it has: ctx".to_string(),
        ),
        (
            stalled_url.as_str(),
            None,
            format!("the Kubernetes API at {stalled_url} (context `ctx`)"),
        ),
    ] {
        let t = Test::new();
        let kc = kubeconfig(t.dir(), server);
        let mut cmd = t.command();
        cmd.args(["install.rhai", "--values"])
            .arg(repo().join("examples/site.yaml"))
            .arg("--kubeconfig")
            .arg(&kc)
            .env("HELM_BIN", &helm)
            .env("HELM_CONFIG_HOME", t.dir().join("helm-config"))
            .env("HELM_CACHE_HOME", t.dir().join("helm-cache"));
        if let Some(c) = context {
            cmd.args(["--context", c]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert!(!stderr.contains("→ step"), "{stderr}");
        // helm's configuration (which would hold the repository's token) was never written
        assert!(!t.dir().join("helm-config").exists(), "{stderr}");
    }
    drop(stalled);
}

#[test]
fn a_kubeconfig_list_is_merged_as_kubectl_merges_it() {
    let cluster = crate::common::Cluster::new(3);
    let t = Test::new();
    // the first file sets the current context to the sandbox; a missing file is skipped
    let list = format!(
        "{}:{}:{}",
        t.dir().join("missing").display(),
        cluster.sim.sandbox.kubeconfig.display(),
        kubeconfig(t.dir(), "https://127.0.0.1:1").display()
    );
    // kube-rs and helm both read the merged list: a namespace applied, and helm's answer
    Test::new()
        .script("ensure_namespace(\"merged\");\nprint(list_releases().len());\n")
        .helm(3)
        .env("KUBECONFIG", &list)
        .run()
        .success()
        .stdout("0\n");
    let ns = cluster.sim.kube_get("/api/v1/namespaces/merged");
    assert_eq!(ns["metadata"]["name"], "merged");
}

/// `--dry-run` touches nothing outside the process: with a reachable cluster named by the
/// kubeconfig, the standard install's plan sends it no request at all (no connection check, no
/// early read), and helm's configuration is never written.
#[test]
fn a_dry_run_sends_the_cluster_no_request() {
    let c = crate::common::Cluster::new(4);
    let out = c
        .test()
        .args(["install.rhai", "--values"])
        .arg(repo().join("examples/site.yaml").display().to_string())
        .arg("--dry-run")
        .run();
    out.success().stdout_has("helm.upgrade_install");
    let asked = c.sim.sandbox.kube.api_requests();
    assert!(asked.is_empty(), "a dry run asked the cluster: {asked:?}");
    assert!(!c.home.path().join("config").exists());
}

/// A stand-in helm: `upgrade` marks that it started, waits for a `go` file, marks that it
/// finished; `status` answers deployed once finished. SIGINT makes it note it and fail.
fn slow_helm(dir: &Path) -> PathBuf {
    helm_held(dir, "exit 1")
}

/// The same stand-in, but one that notes SIGINT and goes on waiting (a step deaf to Ctrl-C).
fn stubborn_helm(dir: &Path) -> PathBuf {
    helm_held(dir, ":")
}

fn helm_held(dir: &Path, on_int: &str) -> PathBuf {
    // the real helm, held at the start of `upgrade` until the test writes `go` (or its
    // directory is gone: a test that ends without `go` leaves no process polling forever)
    let real = helm_binaries().last().expect("a helm").1.clone();
    let path = dir.join("slow-helm");
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ntrap 'touch {d}/got-int; {on_int}' INT\n\
             case \"$1\" in\n\
             upgrade) touch {d}/started; while [ ! -e {d}/go ]; do [ -d {d} ] || exit 1; sleep 0.05; done; \
             trap - INT; {real} \"$@\"; rc=$?; touch {d}/finished; exit $rc ;;\n\
             *) exec {real} \"$@\" ;;\n\
             esac\n",
            real = real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn wait_for(path: &Path) {
    for _ in 0..6000 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

/// Start the binary in a process group of its own (as a shell starts a foreground job), with
/// stderr read line by line on a thread.
fn spawn_job(
    t: &Test,
    args: &[&str],
    envs: &[(&str, &Path)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = t.command();
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn signal_group(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{}", child.id())])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, seen: &mut Vec<String>, part: &str) {
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        let found = line.contains(part);
        seen.push(line);
        if found {
            return;
        }
    }
    panic!("no line with {part:?} in:\n{}", seen.join("\n"));
}

/// A chart step (the fixture chart, from its folder) and a step after it.
fn two_steps() -> String {
    format!(
        "install_chart(\"demo\", \"{}\", #{{ namespace: \"ns\" }});\nensure_namespace(\"after\");\n",
        repo().join("tests/fixtures/charts/demo").display()
    )
}

#[test]
fn ctrl_c_to_the_terminal_lets_the_running_helm_step_finish() {
    let t = Test::new().script(&two_steps());
    let helm = slow_helm(t.dir());
    let tmp = t.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (mut child, rx) = spawn_job(&t, &["--sandbox"], &[("HELM_BIN", &helm), ("TMPDIR", &tmp)]);
    wait_for(&t.dir().join("started"));
    // the terminal's Ctrl-C goes to the whole foreground group: helm must not get it
    signal_group(&child, "INT");
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, "stopping after the current step");
    std::fs::write(t.dir().join("go"), "").unwrap();
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        t.dir().join("finished").exists(),
        "helm was interrupted:\n{stderr}"
    );
    assert!(!t.dir().join("got-int").exists(), "{stderr}");
    assert!(!stderr.contains("step 2"), "{stderr}");
    assert!(
        stderr.contains("1 step finished before the interruption"),
        "{stderr}"
    );
    assert_no_run_files(&tmp);
}

#[test]
fn a_third_ctrl_c_stops_the_tool_at_once_when_the_step_ignores_the_second() {
    let t = Test::new().script(&two_steps());
    let helm = stubborn_helm(t.dir());
    let tmp = t.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (mut child, rx) = spawn_job(&t, &["--sandbox"], &[("HELM_BIN", &helm), ("TMPDIR", &tmp)]);
    wait_for(&t.dir().join("started"));
    let mut seen = Vec::new();
    signal_group(&child, "INT");
    wait_line(&rx, &mut seen, "stopping after the current step");
    signal_group(&child, "INT");
    wait_line(
        &rx,
        &mut seen,
        "Ctrl-C again: interrupting the running step",
    );
    wait_for(&t.dir().join("got-int"));
    // helm goes on; the third Ctrl-C is not forwarded again but ends the tool
    signal_group(&child, "INT");
    let mut status = None;
    for _ in 0..600 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::write(t.dir().join("go"), "").unwrap();
    let Some(status) = status else {
        let _ = child.kill();
        panic!(
            "the third Ctrl-C did not stop the tool:\n{}",
            seen.join("\n")
        );
    };
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    assert_no_run_files(&tmp);
}

#[test]
fn a_second_ctrl_c_interrupts_the_running_step() {
    let t = Test::new().script(&two_steps());
    let helm = slow_helm(t.dir());
    let (mut child, rx) = spawn_job(&t, &["--sandbox"], &[("HELM_BIN", &helm)]);
    wait_for(&t.dir().join("started"));
    let mut seen = Vec::new();
    signal_group(&child, "INT");
    wait_line(&rx, &mut seen, "stopping after the current step");
    signal_group(&child, "INT");
    wait_for(&t.dir().join("got-int"));
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(!t.dir().join("finished").exists());
    assert!(
        stderr.contains("interrupted: step 1 (helm.upgrade_install)"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_between_steps_saves_the_state_and_removes_private_files() {
    let t = Test::new().script(&two_steps());
    let helm = slow_helm(t.dir());
    let tmp = t.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let state = t.dir().join("state");
    let (mut child, rx) = spawn_job(
        &t,
        &["--sandbox", "--sandbox-state", "state"],
        &[("HELM_BIN", &helm), ("TMPDIR", &tmp)],
    );
    wait_for(&t.dir().join("started"));
    // the values file for helm is in the run's private directory while helm runs
    let root = private_root(&tmp);
    let runs: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert_eq!(runs.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = runs[0].metadata().unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // SIGTERM to the tool only, as a service manager sends it
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, "stopping after the current step");
    std::fs::write(t.dir().join("go"), "").unwrap();
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(t.dir().join("finished").exists(), "{stderr}");
    assert!(state.join("sandbox-state.json").is_file(), "{stderr}");
    assert_no_run_files(&tmp);
}

#[test]
fn the_private_directory_of_a_killed_run_is_removed_by_the_next() {
    let t = Test::new().script(&two_steps());
    let helm = slow_helm(t.dir());
    let tmp = t.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (mut child, _rx) = spawn_job(&t, &["--sandbox"], &[("HELM_BIN", &helm), ("TMPDIR", &tmp)]);
    wait_for(&t.dir().join("started"));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(t.dir().join("go"), "").unwrap();
    let root = private_root(&tmp);
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert_eq!(
        left.len(),
        1,
        "SIGKILL leaves the run's directory (nothing can remove it then)"
    );
    // the next run removes it
    Test::new()
        .script("ensure_namespace(\"x\");")
        .arg("--sandbox")
        .env("TMPDIR", &tmp.display().to_string())
        .run()
        .success();
    assert_no_run_files(&tmp);
}

fn private_root(tmp: &Path) -> PathBuf {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("clearml-script-")
        })
        .expect("the runs' private root")
}

/// Nothing of a run is left in TMPDIR: no values files, no sandbox directories, no run's
/// private directory.
fn assert_no_run_files(tmp: &Path) {
    let mut left = Vec::new();
    for entry in walk(tmp) {
        let a_run = entry.is_dir()
            && entry
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("run-"));
        if entry.is_file() || a_run {
            left.push(entry);
        }
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// A bug's panic (injected in the tests' debug build once step 1 ran, its message carrying a
/// secret of the run) is said as an internal error with the secret masked, ends the run with
/// 70 before the next step, and the run's private files are removed as on every way out.
#[test]
fn a_panic_is_masked_exits_70_and_removes_the_private_files() {
    const CANARY: &str = "panic-canary-secret-9876";
    let chart = demo_chart();
    let t = Test::new()
        .script(&format!(
            "install_chart(\"demo\", \"{chart}\", #{{ namespace: \"a\", values: #{{ password: secret(\"{CANARY}\") }} }});\n\
             ensure_namespace(\"after\");\n"
        ))
        .helm(3);
    let tmp = t.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = t
        .command()
        .arg("--sandbox")
        .env("TMPDIR", &tmp)
        .env(
            "CLEARML_SCRIPT_TEST_PANIC",
            format!("1:the bug formatted {CANARY} into its message"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    assert!(
        stderr.contains("error: internal error (a bug in clearml-script, not in the playbook or the values), in thread main: the bug formatted <redacted> into its message at src/runtime.rs:"),
        "{stderr}"
    );
    assert!(!stderr.contains(CANARY), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CANARY));
    assert!(!stderr.contains("step 2"), "{stderr}");
    assert_no_run_files(&tmp);
}

#[test]
fn sigterm_while_a_values_file_is_read_stops_the_tool_at_once() {
    // a FIFO no one writes to: the read of the values waits, as `--values -` does on a terminal
    let t = Test::new().script("ensure_namespace(\"x\");\n");
    let fifo = t.dir().join("values.fifo");
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) and open(2) with a NUL-terminated path; no memory is shared.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let (mut child, rx) = spawn_job(&t, &["--values", "values.fifo", "--dry-run"], &[]);
    // a writer can open a FIFO without blocking only once its reader has: the tool is reading
    let writer = (0..6000)
        .find_map(|_| {
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK) };
            if fd < 0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (fd >= 0).then_some(fd)
        })
        .expect("the tool opens the values file");
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // SAFETY: the descriptor opened above, closed once.
    unsafe { libc::close(writer) };
    let stderr = rx.iter().collect::<Vec<_>>().join("\n");
    let status = status.unwrap_or_else(|| panic!("still reading after SIGTERM:\n{stderr}"));
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
}

/// A kubeconfig's proxy with a user and password (`proxy-url: http://u:PW@proxy`): the
/// password is in no message of the connection check.
#[test]
fn a_kubeconfig_proxy_password_is_in_no_message() {
    let t = Test::new().script("ensure_namespace(\"x\");\n");
    let kc = t.dir().join("kubeconfig-proxy");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    \
         proxy-url: http://bob:pr0xy-canary-91@127.0.0.1:2\ncontexts:\n- name: ctx\n  context:\n    \
         cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n    token: not-a-real-token\n",
    )
    .unwrap();
    t.arg("--kubeconfig")
        .arg(kc.display().to_string())
        .run()
        .code(2)
        .stderr_has("nothing was changed")
        .nowhere("pr0xy-canary-91");
}
