//! What a chart step's wait is doing: while `helm --wait` runs, the release's workloads
//! (Deployments, StatefulSets and DaemonSets helm annotated with the release's name) and their
//! pods are read every second through kube-rs, with the same reads as the diagnosis of a failed
//! wait ([`crate::inspect`]).
//!
//! - On a terminal (stderr), one live line per workload: ready/desired, and for a pod that is
//!   not ready, why (Pending/Unschedulable with the scheduler's message, ImagePullBackOff,
//!   CrashLoopBackOff, a failing readiness probe), under a line with the time waited.
//! - Off a terminal, milestone lines only: one when a workload becomes ready, one the first time
//!   it shows each kind of failure. A pod that is only starting prints nothing.
//!
//! The watcher never delays or fails the step: it runs beside helm on the async runtime, a read
//! that fails is said once and the watch goes on, and it stops when helm ends. A Ctrl-C (or
//! SIGTERM) takes the live lines down before the interruption is said, and stops the watcher;
//! helm goes on to the end of its wait, as with any step.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::inspect::{PodProblem, Workload};

/// How often the workloads are read.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often, between reads, the watcher looks for an interruption.
const SLICE: Duration = Duration::from_millis(100);
/// How long the end of a step waits for the watcher to clear its lines.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Is a pod problem a failure, rather than a pod still starting? Answers its kind, the same for
/// the reasons a kubelet alternates between (ErrImagePull and ImagePullBackOff; a crashing
/// container's Error and CrashLoopBackOff), so that each is said once.
pub fn failure_kind(reason: &str) -> Option<&'static str> {
    match reason {
        r if r.starts_with("Pending/") => Some("Unschedulable"),
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
            Some("ImagePullBackOff")
        }
        "CrashLoopBackOff" | "Error" | "OOMKilled" | "RunContainerError" => {
            Some("CrashLoopBackOff")
        }
        "ProbeFailure" => Some("ProbeFailure"),
        "CreateContainerConfigError" | "CreateContainerError" => Some("CreateContainerError"),
        // Pending (not yet scheduled), ContainerCreating, PodInitializing, Running, …: starting
        _ => None,
    }
}

/// A running container that is not ready is starting until its readiness probe is seen
/// failing (an `Unhealthy` event about the pod): then it is a failing probe, with the probe's
/// message.
pub fn confirm_probes(workloads: &mut [Workload], probe_failures: &HashMap<String, String>) {
    for p in workloads.iter_mut().flat_map(|w| w.problems.iter_mut()) {
        if p.reason != "ProbeFailure" {
            continue;
        }
        match probe_failures.get(&p.pod) {
            Some(message) => p.message = message.clone(),
            None => {
                p.reason = "Running".into();
                p.message = "started, not ready yet".into();
            }
        }
    }
}

/// `Deployment clearml/clearml-apiserver`
fn title(w: &Workload) -> String {
    format!("{} {}/{}", w.kind, w.namespace, w.name)
}

/// Why one pod is not ready, in one line: the reason first, as a narrow terminal cuts the end.
/// `others`: how many more pods are not ready.
fn problem_text(p: &PodProblem, others: usize) -> String {
    let message = p.message.lines().next().unwrap_or_default().trim();
    let pods = match others {
        0 => format!("pod {}", p.pod),
        n => format!("pod {} and {n} more", p.pod),
    };
    if message.is_empty() {
        format!("{} ({pods})", p.reason)
    } else {
        format!("{}: {message} ({pods})", p.reason)
    }
}

/// The live line of a workload: `Deployment name: 0/1 ready; reason: message (pod …)` (the
/// namespace is on the line above). Of several pods not ready, a failing one is named first.
pub fn live_line(w: &Workload) -> String {
    let head = format!("{} {}: {}/{} ready", w.kind, w.name, w.ready, w.desired);
    if w.healthy {
        return head;
    }
    let first = w
        .problems
        .iter()
        .find(|p| failure_kind(&p.reason).is_some())
        .or(w.problems.first());
    match first {
        Some(p) => format!(
            "{head}; {}",
            problem_text(p, w.problems.len().saturating_sub(1))
        ),
        None => head,
    }
}

/// The milestones seen so far of one wait: which workloads were last seen ready, and which
/// failures were already said.
#[derive(Default)]
pub struct Milestones {
    ready: HashMap<String, bool>,
    said: HashSet<(String, &'static str)>,
}

impl Milestones {
    /// The milestone lines of a new look at the workloads: a workload that became ready (or is
    /// ready when first seen), and each kind of failure of a workload the first time it shows.
    pub fn lines(&mut self, workloads: &[Workload]) -> Vec<String> {
        let mut out = Vec::new();
        for w in workloads {
            let key = title(w);
            let was_ready = self.ready.insert(key.clone(), w.healthy).unwrap_or(false);
            if w.healthy {
                if !was_ready {
                    out.push(format!("{key}: {}/{} ready", w.ready, w.desired));
                }
                continue;
            }
            for p in &w.problems {
                let Some(kind) = failure_kind(&p.reason) else {
                    continue;
                };
                if self.said.insert((key.clone(), kind)) {
                    out.push(format!(
                        "{key}: {}/{} ready; {}",
                        w.ready,
                        w.desired,
                        problem_text(p, 0)
                    ));
                }
            }
        }
        out
    }
}

/// The workloads of a release now, with failing probes told from starting containers.
async fn look(
    client: &kube::Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<Workload>, String> {
    let mut workloads = crate::inspect::release_workloads(client, namespace, release).await?;
    let probing = workloads
        .iter()
        .flat_map(|w| &w.problems)
        .any(|p| p.reason == "ProbeFailure");
    let failures = if probing {
        crate::inspect::probe_failures(client, namespace).await?
    } else {
        HashMap::new()
    };
    confirm_probes(&mut workloads, &failures);
    Ok(workloads)
}

/// Where the progress goes: live lines on a terminal, or milestone lines.
enum View {
    Live(Board),
    Lines(Milestones),
}

impl View {
    fn show(&mut self, workloads: &[Workload]) {
        match self {
            View::Live(board) => board.show(workloads),
            View::Lines(m) => {
                for line in m.lines(workloads) {
                    crate::ui::info(&line);
                }
            }
        }
    }

    /// A read failed: said once, on the live board's header or as a line.
    fn cannot_read(&mut self, release: &str, namespace: &str, error: &str) {
        let text = format!(
            "the progress of {release} in {namespace} cannot be read ({error}); helm goes on waiting"
        );
        match self {
            View::Live(board) => board.header.set_message(crate::ui::shown(&text)),
            View::Lines(_) => crate::ui::info(&text),
        }
    }
}

/// The live lines being drawn, for [`interrupt`].
static DRAWING: std::sync::Mutex<Option<indicatif::MultiProgress>> = std::sync::Mutex::new(None);

fn drawing() -> std::sync::MutexGuard<'static, Option<indicatif::MultiProgress>> {
    DRAWING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Ctrl-C or SIGTERM: the live lines go at once and are not drawn again, so the
/// interruption's message (printed after this) stands alone. The watcher then stops.
pub fn interrupt() {
    if let Some(multi) = drawing().take() {
        let _ = multi.clear();
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
}

/// The live lines on a terminal: a header with the time waited, then one line per workload.
struct Board {
    multi: indicatif::MultiProgress,
    header: indicatif::ProgressBar,
    lines: HashMap<String, indicatif::ProgressBar>,
    /// The milestones of the wait, kept in the run log (not printed: the lines show them).
    milestones: Milestones,
}

impl Board {
    fn new(release: &str, namespace: &str) -> Board {
        let multi = indicatif::MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::stderr_with_hz(8),
        );
        let header = multi.add(indicatif::ProgressBar::new_spinner());
        header.set_style(style("{spinner} {wide_msg} {elapsed:>4}"));
        header.set_message(crate::ui::shown(&format!(
            "helm waits for the workloads of {release} in {namespace}"
        )));
        header.enable_steady_tick(Duration::from_millis(120));
        *drawing() = Some(multi.clone());
        Board {
            multi,
            header,
            lines: HashMap::new(),
            milestones: Milestones::default(),
        }
    }

    fn show(&mut self, workloads: &[Workload]) {
        for line in self.milestones.lines(workloads) {
            crate::support_bundle::log_text(&crate::ui::shown(&format!("• {line}\n")));
        }
        for w in workloads {
            let bar = self.lines.entry(title(w)).or_insert_with(|| {
                let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(style("  {prefix} {wide_msg}"));
                bar
            });
            let mark = if w.healthy {
                "✓"
            } else if w.problems.iter().any(|p| failure_kind(&p.reason).is_some()) {
                "✗"
            } else {
                "…"
            };
            bar.set_prefix(mark);
            bar.set_message(crate::ui::shown(&live_line(w)));
        }
    }

    /// helm ended: the lines go, so that what the step says next starts where they were. After
    /// an [`interrupt`] they are gone already.
    fn clear(&self) {
        drawing().take();
        for bar in self.lines.values() {
            bar.finish_and_clear();
        }
        self.header.finish_and_clear();
        let _ = self.multi.clear();
    }
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
}

/// Is stderr a terminal that can redraw lines?
fn on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && !matches!(std::env::var("TERM").as_deref(), Ok("dumb"))
}

/// The watcher of one chart step's wait; [`Watch::stop`] ends it when helm ends.
pub struct Watch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Start watching the workloads of `release` in `namespace`, until [`Watch::stop`] (or a
/// Ctrl-C: `interrupted`).
pub fn watch(
    client: kube::Client,
    release: &str,
    namespace: &str,
    interrupted: Arc<AtomicBool>,
) -> Watch {
    let Some(runtime) = crate::runtime::tokio_handle() else {
        return Watch {
            stop: None,
            task: None,
        };
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (release, namespace) = (release.to_string(), namespace.to_string());
    let live = on_terminal();
    let task = runtime.spawn(async move {
        let view = if live {
            View::Live(Board::new(&release, &namespace))
        } else {
            View::Lines(Milestones::default())
        };
        run(client, release, namespace, interrupted, view, stopped).await
    });
    Watch {
        stop: Some(stop),
        task: Some(task),
    }
}

async fn run(
    client: kube::Client,
    release: String,
    namespace: String,
    interrupted: Arc<AtomicBool>,
    mut view: View,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut failed_once = false;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            seen = look(&client, &namespace, &release) => match seen {
                Ok(workloads) if !interrupted.load(Ordering::SeqCst) => view.show(&workloads),
                Ok(_) => {}
                Err(e) if !failed_once => {
                    failed_once = true;
                    view.cannot_read(&release, &namespace, &e);
                }
                Err(_) => {}
            },
        }
        // until the next read, look for an interruption every SLICE
        let mut waited = Duration::ZERO;
        while waited < INTERVAL && !interrupted.load(Ordering::SeqCst) {
            tokio::select! {
                _ = &mut stopped => {
                    if let View::Live(board) = &view {
                        board.clear();
                    }
                    return;
                }
                _ = tokio::time::sleep(SLICE) => waited += SLICE,
            }
        }
        if interrupted.load(Ordering::SeqCst) {
            // the live lines were taken down by `interrupt`, before the message
            interrupt();
            return;
        }
    }
    if let View::Live(board) = &view {
        board.clear();
    }
}

impl Watch {
    /// helm ended: stop the watcher, and give it a moment (at most a second) to clear its lines.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(task), Some(runtime)) = (self.task.take(), crate::runtime::tokio_handle()) {
            let abort = task.abort_handle();
            let finished = runtime.block_on(async { tokio::time::timeout(STOP_GRACE, task).await });
            if finished.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, ready: i64, problems: &[(&str, &str)]) -> Workload {
        Workload {
            kind: "Deployment".into(),
            namespace: "clearml".into(),
            name: name.into(),
            ready,
            desired: 1,
            healthy: ready >= 1,
            problems: problems
                .iter()
                .map(|(reason, message)| PodProblem {
                    pod: format!("{name}-0"),
                    reason: reason.to_string(),
                    message: message.to_string(),
                    container: None,
                    restarts: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn milestones_say_each_failure_once_and_each_readiness() {
        let mut m = Milestones::default();
        // starting: nothing to say
        assert!(
            m.lines(&[workload("api", 0, &[("ContainerCreating", "")])])
                .is_empty()
        );
        let pull = [("ErrImagePull", "pull access denied")];
        assert_eq!(
            m.lines(&[workload("api", 0, &pull), workload("web", 1, &[])]),
            [
                "Deployment clearml/api: 0/1 ready; ErrImagePull: pull access denied (pod api-0)",
                "Deployment clearml/web: 1/1 ready",
            ]
        );
        // the kubelet alternates ErrImagePull and ImagePullBackOff: said once
        let backoff = [("ImagePullBackOff", "Back-off pulling image")];
        assert!(
            m.lines(&[workload("api", 0, &backoff), workload("web", 1, &[])])
                .is_empty()
        );
        assert!(m.lines(&[workload("api", 0, &pull)]).is_empty());
        // another kind of failure is said; then ready
        assert_eq!(
            m.lines(&[workload("api", 0, &[("CrashLoopBackOff", "back-off")])]),
            ["Deployment clearml/api: 0/1 ready; CrashLoopBackOff: back-off (pod api-0)"]
        );
        assert_eq!(
            m.lines(&[workload("api", 1, &[])]),
            ["Deployment clearml/api: 1/1 ready"]
        );
        assert!(m.lines(&[workload("api", 1, &[])]).is_empty());
    }

    #[test]
    fn a_running_container_fails_its_probe_only_when_seen_failing() {
        let mut w = [workload(
            "api",
            0,
            &[("ProbeFailure", "the container runs")],
        )];
        confirm_probes(&mut w, &HashMap::new());
        assert_eq!(w[0].problems[0].reason, "Running");
        assert!(Milestones::default().lines(&w).is_empty());
        let mut w = [workload(
            "api",
            0,
            &[("ProbeFailure", "the container runs")],
        )];
        let failing = HashMap::from([(
            "api-0".to_string(),
            "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
        )]);
        confirm_probes(&mut w, &failing);
        assert_eq!(
            live_line(&w[0]),
            "Deployment api: 0/1 ready; ProbeFailure: Readiness probe failed: HTTP probe failed with statuscode: 503 (pod api-0)"
        );
    }

    #[test]
    fn the_live_line_names_a_failing_pod_first() {
        let mut w = workload(
            "api",
            0,
            &[
                ("ContainerCreating", ""),
                (
                    "Pending/Unschedulable",
                    "0/3 nodes are available: 3 Insufficient cpu.",
                ),
            ],
        );
        w.desired = 2;
        assert_eq!(
            live_line(&w),
            "Deployment api: 0/2 ready; Pending/Unschedulable: 0/3 nodes are available: 3 Insufficient cpu. (pod api-0 and 1 more)"
        );
        assert_eq!(
            live_line(&workload("api", 1, &[])),
            "Deployment api: 1/1 ready"
        );
    }
}
