//! The leak scan: a unique canary in every credential the site gives (values file, `--set`,
//! environment), sandbox runs of the standard playbooks (and one whose helm step fails and
//! prints its values), then a search for every canary in stdout, stderr, the plan, every file
//! the runs wrote (helm's configuration, temporary files) and the arguments and environment of
//! every descendant process, sampled from /proc while the run goes on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{Test, helm_binaries, repo};
use crate::plan_and_signals::walk;

/// Each credential-bearing key of the example sites, with its own canary.
const VALUES: &[(&str, &str)] = &[
    ("github_token", "canary-github-7c1e"),
    ("supervisor.user_key", "CANARYSUPKEY9a2b"),
    ("supervisor.user_secret", "canary-sup-secret-5d3f"),
    ("sso.client_id", "canary-sso-client-id-81aa"),
    ("sso.client_secret", "canary-sso-secret-0f4c"),
    ("agent.key", "CANARYAGENTKEY3c9d"),
    ("agent.secret", "canary-agent-secret-6b7e"),
    ("gateway.key", "CANARYGWKEY44e1"),
    ("gateway.secret", "canary-gw-secret-2a8f"),
];
/// Given with `--set` (in the process's own arguments, which the user chose; the scan checks
/// that no child gets it there).
const SET: (&str, &str) = ("dockerhub_token", "canary-dockerhub-set-9e0b");
/// In the environment, under a name that says it is a credential.
const ENV: (&str, &str) = ("CLEARML_LEAK_CANARY_TOKEN", "canary-env-token-1d5a");

fn canaries() -> Vec<&'static str> {
    let mut all: Vec<&str> = VALUES.iter().map(|(_, c)| *c).collect();
    all.push(SET.1);
    all.push(ENV.1);
    all
}

fn site_yaml() -> String {
    let mut tree: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut top = String::new();
    for (key, canary) in VALUES {
        match key.split_once('.') {
            Some((a, b)) => {
                tree.entry(a.to_string())
                    .or_default()
                    .insert(b.to_string(), canary.to_string());
            }
            None => top.push_str(&format!("{key}: {canary}\n")),
        }
    }
    let sso = tree.entry("sso".into()).or_default();
    for (k, v) in [
        ("provider", "auth0"),
        ("base_url", "https://example.eu.auth0.com"),
        ("authorize_url", "https://example.eu.auth0.com/authorize"),
        (
            "access_token_url",
            "https://example.eu.auth0.com/oauth/token",
        ),
        ("audience", "https://example.eu.auth0.com/userinfo"),
    ] {
        sso.insert(k.into(), v.into());
    }
    for (section, keys) in tree {
        top.push_str(&format!("{section}:\n"));
        for (k, v) in keys {
            top.push_str(&format!("  {k}: {v}\n"));
        }
    }
    top
}

/// The arguments and environment of every process descended from `root`, sampled until `stop`.
fn sample_descendants(root: u32, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<u8>>>) {
    while !stop.load(Ordering::SeqCst) {
        let mut parents: BTreeMap<u32, u32> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    && let Some(after) = stat.rsplit_once(')').map(|(_, a)| a)
                    && let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok())
                {
                    parents.insert(pid, ppid);
                }
            }
        }
        for &pid in parents.keys() {
            let mut p = pid;
            let mut descends = false;
            for _ in 0..32 {
                match parents.get(&p) {
                    Some(&pp) if pp == root => {
                        descends = true;
                        break;
                    }
                    Some(&pp) if pp > 1 => p = pp,
                    _ => break,
                }
            }
            if descends {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let after = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                // between fork and exec a child is still a copy of the tool, with the tool's
                // own arguments and environment (which the user gave it): not a child's yet
                let copy_of_tool = |c: &[u8]| c.starts_with(crate::common::BIN.as_bytes());
                if copy_of_tool(&cmdline) || copy_of_tool(&after) {
                    continue;
                }
                let mut buf = seen.lock().unwrap();
                buf.extend(cmdline);
                buf.push(b'\n');
                buf.extend(environ);
                buf.push(b'\n');
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A helm that fails its install and prints the values files it was given, as a broken helm or
/// chart might: the tool must mask them.
fn leaky_helm(dir: &Path, real: &Path) -> PathBuf {
    let path = dir.join("leaky-helm");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = upgrade ]; then\n  while [ $# -gt 0 ]; do if [ \"$1\" = -f ]; then cat \"$2\" >&2; fi; shift; done\n  echo 'Error: install failed' >&2; exit 1\nfi\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Scan {
    found: Vec<String>,
    runs: usize,
}

impl Scan {
    fn run(&mut self, label: &str, t: &Test, args: &[&str], helm: Option<&Path>) -> i32 {
        let tmp = t.dir().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = t.command();
        cmd.args(args)
            .args(["--values", "canaries.yaml", "--set"])
            .arg(format!("{}={}", SET.0, SET.1))
            .env(ENV.0, ENV.1)
            .env("TMPDIR", &tmp)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(h) = helm {
            cmd.env("HELM_BIN", h);
        }
        let child = cmd.spawn().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sampler = {
            let (stop, seen, pid) = (stop.clone(), seen.clone(), child.id());
            std::thread::spawn(move || sample_descendants(pid, stop, seen))
        };
        let out = child.wait_with_output().unwrap();
        stop.store(true, Ordering::SeqCst);
        sampler.join().unwrap();
        self.runs += 1;
        let procs = seen.lock().unwrap().clone();
        // a sandbox run starts helm: the sampler must have seen it
        assert!(
            !procs.is_empty()
                || !args.contains(&"--sandbox")
                || args.contains(&"create-queue.rhai")
                || helm.is_none(),
            "{label}: no child was sampled"
        );
        let mut places: Vec<(String, Vec<u8>)> = vec![
            (format!("{label}: stdout"), out.stdout.clone()),
            (format!("{label}: stderr"), out.stderr.clone()),
            (
                format!("{label}: a child's arguments or environment"),
                procs,
            ),
        ];
        for f in walk(t.dir()) {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            // the inputs the test wrote itself; everything else, the kept sandbox state (which
            // holds the server's Deployment environment with the supervisor's and SSO
            // credentials, encrypted at rest) and its key included
            if f.is_file() && name != "canaries.yaml" {
                places.push((
                    format!("{label}: {}", f.display()),
                    std::fs::read(&f).unwrap_or_default(),
                ));
            }
        }
        for (place, bytes) in &places {
            let text = String::from_utf8_lossy(bytes);
            for c in canaries() {
                if text.contains(c) {
                    self.found.push(format!("{c} in {place}"));
                }
            }
        }
        out.status.code().unwrap_or(-1)
    }
}

#[test]
fn no_canary_reaches_output_files_or_children() {
    let (_, helm) = helm_binaries().into_iter().find(|(m, _)| *m == 4).unwrap();
    let mut scan = Scan {
        found: Vec::new(),
        runs: 0,
    };
    let base = [
        "--values",
        &repo().join("examples/site.yaml").display().to_string(),
        "--values",
        &repo().join("examples/site-gpu.yaml").display().to_string(),
    ]
    .map(String::from);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        v.push(extra[0].to_string());
        v.extend(base.iter().cloned());
        v.extend(extra[1..].iter().map(|s| s.to_string()));
        v
    };
    for playbook in [
        "install.rhai",
        "install-control-plane.rhai",
        "install-agent.rhai",
        "create-queue.rhai",
        "install-app-gateway.rhai",
    ] {
        for mode in [
            &["--dry-run", "--output", "json"][..],
            &["--dry-run"],
            &["--sandbox", "--sandbox-state", "state"],
        ] {
            let t = Test::new().file("canaries.yaml", &site_yaml()).helm(4);
            let mut args = vec![playbook];
            args.extend(mode);
            let args = with(&args);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let code = scan.run(&format!("{playbook} {mode:?}"), &t, &refs, Some(&helm));
            assert_eq!(code, 0, "{playbook} {mode:?}");
            if playbook == "install.rhai" && mode.contains(&"--sandbox-state") {
                // the cluster holds the credentials (the server's environment), so the scan of
                // the kept state proves something: they are there, encrypted, and not on disk
                let plain = crate::kill_matrix::kept_state(&t.dir().join("state")).to_string();
                assert!(
                    canaries().iter().any(|c| plain.contains(c)),
                    "the decrypted state holds no canary"
                );
            }
        }
    }
    // a failing step whose helm prints the values it was given
    let t = Test::new().file("canaries.yaml", &site_yaml()).helm(4);
    let leaky = leaky_helm(t.dir(), &helm);
    let args = with(&["install.rhai", "--sandbox"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = scan.run("install.rhai with a failing helm", &t, &refs, Some(&leaky));
    assert_eq!(code, 1);
    eprintln!(
        "leak scan: {} canaries, {} runs, {} found",
        canaries().len(),
        scan.runs,
        scan.found.len()
    );
    assert!(
        scan.found.is_empty(),
        "canaries found:\n{}",
        scan.found.join("\n")
    );
}
