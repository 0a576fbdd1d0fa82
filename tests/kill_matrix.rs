//! The kill matrix: `install.rhai --sandbox --sandbox-state DIR` stopped by SIGINT to its
//! process group (the terminal's Ctrl-C), SIGTERM or SIGKILL at the start of each of several
//! steps (the tool's own `→ step N` line, not a timer), then run again: every re-run converges.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use crate::common::{Test, repo};

/// The standard install with the agent and gateway paths, kept in `state`.
pub fn install_args(state: &Path) -> Vec<String> {
    vec![
        "install.rhai".into(),
        "--values".into(),
        repo().join("examples/site.yaml").display().to_string(),
        "--values".into(),
        repo().join("examples/site-gpu.yaml").display().to_string(),
        "--sandbox".into(),
        "--sandbox-state".into(),
        state.display().to_string(),
    ]
}

/// Run again without faults or signals: exit 0, every release deployed, the internal
/// credentials those of the first run that made them, each queue once.
pub fn assert_converges(state: &Path, label: &str, credentials_before: Option<&serde_json::Value>) {
    assert_converges_with(state, label, credentials_before, 4);
}

/// [`assert_converges`] with the helm `major`; answers the re-run's output.
pub fn assert_converges_with(
    state: &Path,
    label: &str,
    credentials_before: Option<&serde_json::Value>,
    major: u32,
) -> crate::common::Output {
    let out = Test::new().args(install_args(state)).helm(major).run();
    assert_eq!(out.code, 0, "{label}: the re-run failed:\n{}", out.stderr);
    let releases = out
        .stderr
        .split("  releases:\n")
        .nth(1)
        .and_then(|r| r.split("  namespaces:").next())
        .unwrap_or_default()
        .to_string();
    for release in ["clearml/clearml", "clearml-agents/clearml-agent"] {
        assert!(
            releases
                .lines()
                .any(|l| l.contains(release) && l.ends_with(": deployed")),
            "{label}: {release} is not deployed:\n{releases}"
        );
    }
    assert!(
        !releases.contains("pending") && !releases.contains("failed"),
        "{label}:\n{releases}"
    );
    let snap = kept_state(state);
    let queues = snap["clearml"]["queues"].to_string();
    assert_eq!(
        queues.matches("\"GPUshm\"").count(),
        1,
        "{label}: queues {queues}"
    );
    if let Some(before) = credentials_before {
        assert_eq!(
            &internal_credentials(state),
            before,
            "{label}: the credentials changed"
        );
    }
    out
}

/// The kept sandbox state in `dir`, decrypted with its key (as the tool reads it).
pub fn kept_state(dir: &Path) -> serde_json::Value {
    clearml_script::sandbox::state::read(dir)
        .unwrap()
        .expect("a kept state")
}

/// The data of the Secret that keeps the server's internal credentials, from the state.
pub fn internal_credentials(state: &Path) -> serde_json::Value {
    let snap = clearml_script::sandbox::state::read(state)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut found = serde_json::Value::Null;
    fn walk(v: &serde_json::Value, found: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("metadata").and_then(|md| md.get("name"))
                    == Some(&serde_json::json!("clearml-script-internal-credentials"))
                {
                    *found = m.get("data").cloned().unwrap_or_default();
                    return;
                }
                m.values().for_each(|x| walk(x, found));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, found)),
            _ => {}
        }
    }
    walk(&snap["kubernetes"], &mut found);
    found
}

#[test]
fn every_stop_of_the_install_converges_on_the_next_run() {
    let mut survived = 0;
    // each signal at three different steps (the repo added, the namespace made, the control
    // plane's chart running, the agent's chart), six stops in all
    let stops = [
        (2, "INT to the group"),
        (2, "KILL"),
        (4, "TERM"),
        (5, "INT to the group"),
        (5, "KILL"),
        (7, "TERM"),
    ];
    for (step, signal) in stops {
        {
            let t = Test::new().helm(4);
            let state = t.dir().join("state");
            let mut cmd = t.command();
            cmd.args(install_args(&state))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0);
            let mut child = cmd.spawn().unwrap();
            let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
            let marker = format!("→ step {step}:");
            let mut seen = String::new();
            let reached = lines.by_ref().map_while(Result::ok).any(|l| {
                seen.push_str(&l);
                seen.push('\n');
                l.starts_with(&marker)
            });
            assert!(reached, "step {step} never started:\n{seen}");
            let target = match signal {
                "INT to the group" => format!("-{}", child.id()),
                _ => child.id().to_string(),
            };
            let sig = signal.split(' ').next().unwrap();
            let ok = std::process::Command::new("kill")
                .args([&format!("-{sig}"), "--", &target])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            let status = child.wait().unwrap();
            let label = format!("{signal} at step {step}");
            let expected = match sig {
                "INT" => Some(130),
                "TERM" => Some(143),
                _ => None,
            };
            assert_eq!(
                status.code(),
                expected,
                "{label}:\n{seen}{}",
                rest.join("\n")
            );
            if sig != "KILL" {
                assert!(
                    state.join("sandbox-state.json").is_file(),
                    "{label}: no state kept"
                );
            }
            let credentials = internal_credentials(&state);
            let before = (!credentials.is_null()).then_some(&credentials);
            assert_converges(&state, &label, before);
            survived += 1;
        }
    }
    eprintln!("kill matrix: {survived} stops survived");
}
