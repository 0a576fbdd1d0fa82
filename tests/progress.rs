//! The progress of a chart step while helm waits, against the simulated cluster with broken
//! workloads: milestone lines off a terminal, live lines on one (a pty), and a Ctrl-C.

use clearml_script::sandbox::faults::WorkloadFault;

use crate::common::{Cluster, repo};

fn site() -> String {
    repo().join("examples/site.yaml").display().to_string()
}

/// How many times `part` is in `text`.
fn count(text: &str, part: &str) -> usize {
    text.matches(part).count()
}

/// Off a terminal: one line when a workload becomes ready, and one for each kind of failure
/// the first time it shows (the scheduler's message, the image pull, the failing probe), all
/// before the diagnosis; a healthy wait says no failure.
#[test]
fn milestone_lines_off_a_terminal() {
    let c = Cluster::new(4);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ImagePullBackOff);
    c.sim
        .faults
        .break_workload("clearml-webserver", WorkloadFault::Pending);
    c.sim
        .faults
        .break_workload("clearml-fileserver", WorkloadFault::ProbeFailure);
    let out = c
        .test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "timeout=5s"])
        .run();
    out.code(1);
    let err = &out.stderr;
    let lines = [
        "• Deployment clearml/clearml-apiserver: 0/1 ready; ImagePullBackOff: Back-off pulling image \"docker.io/allegroai/clearml-enterprise-apiserver:",
        "• Deployment clearml/clearml-webserver: 0/1 ready; Pending/Unschedulable: 0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod. (pod clearml-webserver-sbx0)\n",
        "• Deployment clearml/clearml-fileserver: 0/1 ready; ProbeFailure: Readiness probe failed: HTTP probe failed with statuscode: 503 (pod clearml-fileserver-sbx0)\n",
    ];
    // the watcher reads once a second (helm waits 5 s here; the chart has no DaemonSet, so
    // only the watcher and the diagnosis list them), not in a loop that hammers the API server
    let reads =
        c.sim.sandbox.kube.api_requests()["GET /apis/apps/v1/namespaces/clearml/daemonsets"];
    assert!((2..=15).contains(&reads), "{reads} reads");
    let diagnosis = err.find("Diagnosis:").expect("a diagnosis");
    for line in lines {
        // once: the watcher reads every second for five, and says each failure once
        assert_eq!(count(err, line), 1, "{line:?} in:\n{err}");
        assert!(err.find(line).unwrap() < diagnosis, "{err}");
    }
    // the step line comes before; the failure text itself is the watcher's, not helm's
    assert!(err.find("→ step 5: helm.upgrade_install").unwrap() < err.find(lines[0]).unwrap());

    // healed: a wait with nothing broken says no failure (a starting pod is not one)
    for w in [
        "clearml-apiserver",
        "clearml-webserver",
        "clearml-fileserver",
    ] {
        c.sim.faults.heal_workload(w);
        // the controllers act on the next change of the Deployment
        let (code, body) = c.sim.kube_http(
            "PATCH",
            &format!("/apis/apps/v1/namespaces/clearml/deployments/{w}"),
            "application/merge-patch+json",
            br#"{"metadata": {"annotations": {"touched": "1"}}}"#,
        );
        assert_eq!(code, 200, "{body}");
    }
    let out = c
        .test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "ui.show_datasets=true"])
        .run();
    out.success().nowhere("0/1 ready; ");
    assert!(
        count(
            &out.stderr,
            "• Deployment clearml/clearml-apiserver: 1/1 ready"
        ) <= 1
    );
}

/// When the watcher cannot read the workloads (the API server answers 500 for a while), it says
/// so once, as a line off a terminal, and goes on; helm's wait is not disturbed, and what the
/// watcher reads afterwards is still said.
#[test]
fn a_watcher_that_cannot_read_says_so_once() {
    let c = Cluster::new(4);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ImagePullBackOff);
    // the chart has no DaemonSet: only the watcher lists them while helm waits
    c.sim
        .faults
        .fail("GET", "/apis/apps/v1/namespaces/clearml/daemonsets", 3, 500);
    let out = c
        .test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "timeout=5s"])
        .run();
    out.code(1);
    let err = &out.stderr;
    let said = "the progress of clearml in clearml cannot be read (";
    assert_eq!(count(err, said), 1, "{err}");
    assert!(err.contains("helm goes on waiting"), "{err}");
    let line = err.lines().find(|l| l.contains(said)).unwrap();
    assert!(line.contains("500"), "{line}");
    // the reads that came after the failures still show the broken workload, before the
    // diagnosis
    let broken = "• Deployment clearml/clearml-apiserver: 0/1 ready; ImagePullBackOff";
    assert!(
        err.find(said).unwrap() < err.find(broken).expect("the watcher's line")
            && err.find(broken).unwrap() < err.find("Diagnosis:").expect("a diagnosis"),
        "{err}"
    );
}

/// A run on a pty, and all it wrote so far.
struct Pty {
    p: rexpect::session::PtySession,
    seen: String,
}

impl Pty {
    fn spawn(cmd: std::process::Command) -> Pty {
        Pty {
            p: rexpect::session::spawn_command(cmd, Some(60_000)).unwrap(),
            seen: String::new(),
        }
    }

    /// Read until `pattern` (text, not a regex). rexpect reads a byte as a char: the pattern is
    /// given to it so, and what it read turned back to text.
    fn until(&mut self, pattern: &str) {
        let raw: String = pattern.bytes().map(char::from).collect();
        let read = self
            .p
            .exp_string(&raw)
            .unwrap_or_else(|e| panic!("{pattern:?} never came: {}", text(&e.to_string())));
        self.seen.push_str(&text(&read));
        self.seen.push_str(pattern);
    }

    /// Read to the end; answers what came after the last pattern.
    fn rest(&mut self) -> String {
        let rest = text(&self.p.exp_eof().unwrap());
        self.seen.push_str(&rest);
        rest
    }
}

/// What rexpect read (a char per byte) as text.
fn text(read: &str) -> String {
    let bytes: Vec<u8> = read.chars().map(|c| c as u32 as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The width of rexpect's pty as indicatif sees it (it sets no size; 80 is the fallback).
const WIDTH: usize = 80;

/// The screen a terminal shows after `output`: enough of one for indicatif's drawing (carriage
/// return, new line, wrapping, erase line, cursor up and down; other sequences ignored).
fn screen(output: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut arg = String::new();
                let mut cmd = ' ';
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        cmd = d;
                        break;
                    }
                    arg.push(d);
                }
                let n = arg.parse::<usize>().unwrap_or(1);
                match cmd {
                    'K' => lines[row].clear(),
                    'A' => row = row.saturating_sub(n),
                    'B' => {
                        row += n;
                        while lines.len() <= row {
                            lines.push(Vec::new());
                        }
                    }
                    _ => {}
                }
            }
            c => {
                // a line fills the width and wraps at the next character
                if col >= WIDTH {
                    row += 1;
                    col = 0;
                    if lines.len() <= row {
                        lines.push(Vec::new());
                    }
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_screen_of_a_redrawn_line() {
    assert_eq!(
        screen("a\r\nb1\r\u{1b}[2Kb2\r\nc\u{1b}[1A\r\u{1b}[2K\u{1b}[1B\r\u{1b}[2Kd"),
        ["a", "d"]
    );
    let wide = format!("{}{}", "x".repeat(WIDTH), "y");
    assert_eq!(screen(&wide), ["x".repeat(WIDTH), "y".to_string()]);
}

/// On a terminal: the live lines under a header, redrawn in place; gone when helm ends, before
/// the diagnosis. A crash loop shows as such on its workload's line.
#[test]
fn live_lines_on_a_terminal_are_cleared_when_helm_ends() {
    let c = Cluster::new(3);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::CrashLoopBackOff);
    // the run's directory lives as long as the test
    let test = c
        .test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "timeout=4s"]);
    let mut cmd = test.command();
    cmd.env("TERM", "xterm");
    let mut p = Pty::spawn(cmd);
    p.until("→ step 5: helm.upgrade_install");
    p.until("helm waits for the workloads of clearml in clearml");
    p.until("✗ Deployment clearml-apiserver: 0/1 ready; CrashLoopBackOff: back-off");
    p.until("✓ Deployment clearml-webserver: 1/1 ready");
    // helm's wait times out: the lines are cleared, and the error follows the step's line
    p.until("Diagnosis: workloads in clearml that are not ready");
    p.rest();
    let shown = screen(&p.seen);
    let step = shown
        .iter()
        .position(|l| l == "→ step 5: helm.upgrade_install")
        .unwrap_or_else(|| panic!("{shown:#?}\n{:?}", p.seen));
    assert!(
        shown[step + 1].starts_with("error: install_chart: step 5"),
        "{shown:#?}"
    );
    assert!(
        !shown
            .iter()
            .any(|l| l.contains("helm waits for the") || l.contains("Deployment clearml-")),
        "{shown:#?}"
    );
}

/// A Ctrl-C while helm waits: the live lines go before the interruption is said, and are not
/// drawn again; helm finishes its wait and the run stops after the step (exit 130).
#[test]
fn a_ctrl_c_takes_the_live_lines_down_before_it_is_said() {
    let c = Cluster::new(4);
    c.sim
        .faults
        .break_workload("clearml-apiserver", WorkloadFault::ImagePullBackOff);
    // the run's directory lives as long as the test
    let test = c
        .test()
        .args(["install.rhai", "--values", &site(), "--skip-preflight"])
        .args(["--set", "timeout=4s"]);
    let mut cmd = test.command();
    cmd.env("TERM", "xterm");
    let mut p = Pty::spawn(cmd);
    p.until("✗ Deployment clearml-apiserver: 0/1 ready; ImagePullBackOff");
    p.p.send_control('c').unwrap();
    p.until("interrupted (Ctrl-C): stopping after the current step");
    let rest = p.rest();
    // nothing is drawn after the message: the lines were taken down before it
    assert!(!rest.contains("\u{1b}["), "{rest:?}");
    let shown = screen(&p.seen);
    let step = shown
        .iter()
        .position(|l| l == "→ step 5: helm.upgrade_install")
        .unwrap_or_else(|| panic!("{shown:#?}\n{:?}", p.seen));
    assert!(
        shown[step + 1].starts_with("interrupted (Ctrl-C): stopping after the current step"),
        "{shown:#?}"
    );
    match p.p.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => assert_eq!(code, 130, "{rest}"),
        other => panic!("{other:?}: {rest}"),
    }
}
