//! The state of one run, shared by the built-ins: mode, executor, the actions so far, the site
//! values and their locations, and the interrupt flag.
//!
//! The engine runs on one thread of its own; built-ins reach the run through a thread-local,
//! since Rhai's plugin functions (whose doc comments are the user documentation) are plain
//! functions and cannot capture it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{Dynamic, EvalAltResult};

use crate::action::{Action, DryRunExecutor, Executor, Mode};
use crate::failure::{Failure, FailureKind};
use crate::parallel::Place;
use crate::secret::REDACTED;
use crate::site::Site;
use crate::ui;
use crate::value::Value;

pub struct Runtime {
    executor: Box<dyn Executor>,
    actions: RefCell<Vec<Action>>,
    /// Each action's place in a parallel group, if it ran in one.
    places: RefCell<Vec<Option<Place>>>,
    /// How many parallel groups started.
    groups: std::cell::Cell<usize>,
    /// Steps that finished, and whether the last one handed to the executor failed.
    finished: std::cell::Cell<usize>,
    step_failed: std::cell::Cell<bool>,
    pub site: Site,
    pub interrupted: Arc<AtomicBool>,
    /// Where relative paths given to built-ins resolve: the playbook's directory.
    pub base_dir: std::path::PathBuf,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

impl Runtime {
    pub fn new(
        executor: Box<dyn Executor>,
        site: Site,
        base_dir: std::path::PathBuf,
        interrupted: Arc<AtomicBool>,
    ) -> Runtime {
        Runtime {
            executor,
            actions: RefCell::new(Vec::new()),
            places: RefCell::new(Vec::new()),
            groups: std::cell::Cell::new(0),
            finished: std::cell::Cell::new(0),
            step_failed: std::cell::Cell::new(false),
            site,
            interrupted,
            base_dir,
        }
    }

    /// Make this the run that built-ins on this thread see.
    pub fn install(self: &Rc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// The end of the run: the built-ins have no current run any more, and the run's steps and
    /// where each ran are taken out (not copied) for its outcome; its site and executor go with
    /// it when the caller drops it.
    pub fn finish(&self) -> (Vec<Action>, Vec<Option<Place>>) {
        CURRENT.with(|c| c.borrow_mut().take());
        (self.actions.take(), self.places.take())
    }

    pub fn mode(&self) -> Mode {
        self.executor.mode()
    }

    pub fn actions(&self) -> Vec<Action> {
        self.actions.borrow().clone()
    }

    /// Where each action ran: in which parallel group and branch, if in one.
    pub fn places(&self) -> Vec<Option<Place>> {
        self.places.borrow().clone()
    }

    /// The number of the next parallel group.
    pub fn next_group(&self) -> usize {
        self.groups.set(self.groups.get() + 1);
        self.groups.get()
    }

    /// After a parallel group one of whose branches failed at a step.
    pub fn note_step_failed(&self) {
        self.step_failed.set(true);
    }

    /// Record actions as started (numbered in the order they start, which a parallel group
    /// interleaves); answers the step number of the first.
    fn record(&self, actions: &[Action]) -> usize {
        let first = self.actions.borrow().len() + 1;
        let place = crate::parallel::place();
        self.actions.borrow_mut().extend(actions.iter().cloned());
        self.places
            .borrow_mut()
            .extend(actions.iter().map(|_| place.clone()));
        first
    }

    /// How many steps finished.
    pub fn finished(&self) -> usize {
        self.finished.get()
    }

    /// Did the last step handed to the executor fail (rather than a read or the script)?
    pub fn step_failed(&self) -> bool {
        self.step_failed.get()
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Hand an action to the executor. Values that carry the text `<redacted>` mean a secret
    /// was interpolated into a plain string, which would send the mask instead of the secret:
    /// that is refused with the key path before anything happens.
    pub fn perform(&self, builtin: &str, action: Action) -> Result<Dynamic, Box<EvalAltResult>> {
        if self.is_interrupted() {
            return Err(interrupted());
        }
        if let Some(path) = interpolated_secret(&action) {
            return Err(Failure::validation(
                builtin,
                format!(
                    "`{path}` holds the text {REDACTED}: a secret was put into a string with \
                     interpolation (`\"${{...}}\"`), which keeps only its mask; join it with `+` \
                     instead, so the result stays a secret"
                ),
            )
            .into_rhai());
        }
        let step = self.record(std::slice::from_ref(&action));
        let kind = action.kind();
        if self.mode() != Mode::DryRun {
            ui::step(step, &shown_kind(&kind));
        }
        let result = self.executor.execute(&action);
        match result {
            Ok(v) => {
                self.finished.set(self.finished.get() + 1);
                self.step_failed.set(false);
                Ok(v.to_dynamic())
            }
            Err(msg) => {
                self.step_failed.set(true);
                let message = format!("step {step} ({kind}): {msg}");
                if self.is_interrupted() {
                    // the step was interrupted on purpose (a second Ctrl-C reached the child)
                    return Err(Failure {
                        kind: FailureKind::Interrupted,
                        builtin: Some(builtin.to_string()),
                        message: format!("interrupted: {message}"),
                        problems: Vec::new(),
                    }
                    .into_rhai());
                }
                Err(Failure::step(builtin, message).into_rhai())
            }
        }
    }
}

impl Runtime {
    /// Hand several independent actions to the executor at once (each a step of the plan), so
    /// that it may carry them out together; answers their results in order. The first failure
    /// is reported with its step, after every action was tried.
    pub fn perform_many(
        &self,
        builtin: &str,
        actions: Vec<Action>,
    ) -> Result<Vec<Dynamic>, Box<EvalAltResult>> {
        if self.is_interrupted() {
            return Err(interrupted());
        }
        if let Some(path) = actions.iter().find_map(interpolated_secret) {
            return Err(Failure::validation(
                builtin,
                format!(
                    "`{path}` holds the text {REDACTED}: a secret was put into a string with \
                     interpolation; join it with `+` instead, so the result stays a secret"
                ),
            )
            .into_rhai());
        }
        let first = self.record(&actions);
        let results = self.executor.execute_many(&actions);
        let live = self.mode() != Mode::DryRun;
        let mut out = Vec::with_capacity(results.len());
        for ((i, r), action) in results.into_iter().enumerate().zip(&actions) {
            // the steps as they are answered, up to the first failure
            if live {
                ui::step(first + i, &shown_kind(&action.kind()));
            }
            match r {
                Ok(v) => out.push(v.to_dynamic()),
                Err(msg) => {
                    return Err(Failure::step(
                        builtin,
                        format!("step {} ({}): {msg}", first + i, action.kind()),
                    )
                    .into_rhai());
                }
            }
        }
        Ok(out)
    }

    /// Ask the executor to read something; a failure names the built-in.
    pub fn query(
        &self,
        builtin: &str,
        query: crate::action::Query,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        if self.is_interrupted() {
            return Err(interrupted());
        }
        self.executor
            .query(&query)
            .map(|v| v.to_dynamic())
            .map_err(|msg| Failure::step(builtin, msg).into_rhai())
    }
}

/// A step's kind as a live run shows it: in a parallel group, with its branch.
fn shown_kind(kind: &str) -> String {
    match crate::parallel::place() {
        Some(p) => format!("[{}] {kind}", p.branch),
        None => kind.to_string(),
    }
}

fn interpolated_secret(action: &Action) -> Option<String> {
    // most actions hold no such text: their JSON text says so at once (JSON escapes neither `<`
    // nor `>`), and only one that does is walked for the key path
    let text = crate::secret::with_sentinel(|| {
        serde_json::to_string(action).expect("actions always serialize")
    });
    if !text.contains(REDACTED) {
        return None;
    }
    let json = crate::secret::with_sentinel(|| action.to_json());
    let mut found = None;
    Value::from_json(&json).walk_leaves("", &mut |path, v| {
        if found.is_none()
            && let Value::Str(s) = v
            && s.contains(REDACTED)
        {
            found = Some(path.to_string());
        }
    });
    found
}

pub fn interrupted() -> Box<EvalAltResult> {
    Failure {
        kind: FailureKind::Interrupted,
        builtin: None,
        message: "interrupted".into(),
        problems: Vec::new(),
    }
    .into_rhai()
}

/// Run `f` with the current run; outside a run (docs, check) a dry-run with empty site values.
pub fn with<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    let rt = CURRENT.with(|c| c.borrow().clone());
    match rt {
        Some(rt) => f(&rt),
        None => f(&Runtime::new(
            Box::new(DryRunExecutor),
            Site::default(),
            std::path::PathBuf::from("."),
            Arc::new(AtomicBool::new(false)),
        )),
    }
}

/// The current run's interrupt flag (set by the first Ctrl-C or SIGTERM); outside a run, a flag
/// nothing sets.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    with(|rt| rt.interrupted.clone())
}

static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// Remember the tokio runtime that built-ins use (`Handle::block_on`, from the engine's thread,
/// which is never a runtime thread).
pub fn set_tokio_handle(handle: tokio::runtime::Handle) {
    let _ = HANDLE.set(handle);
}

/// The tokio runtime for built-ins that call async code.
pub fn tokio_handle() -> Option<&'static tokio::runtime::Handle> {
    HANDLE.get()
}

/// The scope every playbook compiles and runs with: the constant `site`.
pub fn site_scope(site: &Site) -> rhai::Scope<'static> {
    let mut scope = rhai::Scope::new();
    let values = site.values.to_dynamic();
    scope.push_constant_dynamic("site", values);
    scope
}
