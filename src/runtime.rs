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
        // Debug builds only (the tests' binary): a bug's panic once step STEP has run, with
        // MESSAGE, from CLEARML_SCRIPT_TEST_PANIC=STEP:MESSAGE (tests/plan_and_signals.rs).
        #[cfg(debug_assertions)]
        if let Ok(at) = std::env::var("CLEARML_SCRIPT_TEST_PANIC")
            && let Some((n, message)) = at.split_once(':')
            && n.parse() == Ok(step)
        {
            panic!("{message}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Query;

    /// A live executor that answers each action from a script of results, records what it was
    /// given, and can play a Ctrl-C arriving during a step.
    struct Scripted {
        results: RefCell<Vec<Result<Value, String>>>,
        done: Rc<RefCell<Vec<String>>>,
        interrupt_during: Option<(usize, Arc<AtomicBool>)>,
    }

    impl Executor for Scripted {
        fn mode(&self) -> Mode {
            Mode::Live
        }
        fn execute(&self, action: &Action) -> Result<Value, String> {
            self.done.borrow_mut().push(action.kind());
            if let Some((n, flag)) = &self.interrupt_during
                && *n == self.done.borrow().len()
            {
                flag.store(true, Ordering::SeqCst);
            }
            self.results.borrow_mut().remove(0)
        }
        fn query(&self, _: &Query) -> Result<Value, String> {
            Ok(Value::Str("the cluster's answer".into()))
        }
    }

    fn namespace(name: &str) -> Action {
        Action::KubeEnsureNamespace { name: name.into() }
    }

    /// A run whose steps answer `results` in turn; a Ctrl-C comes during step `interrupt`.
    fn run(
        results: Vec<Result<Value, String>>,
        interrupt: Option<usize>,
    ) -> (Rc<Runtime>, Rc<RefCell<Vec<String>>>) {
        let flag = Arc::new(AtomicBool::new(false));
        let done = Rc::new(RefCell::new(Vec::new()));
        let executor = Scripted {
            results: RefCell::new(results),
            done: done.clone(),
            interrupt_during: interrupt.map(|n| (n, flag.clone())),
        };
        let rt = Rc::new(Runtime::new(
            Box::new(executor),
            Site::default(),
            ".".into(),
            flag,
        ));
        (rt, done)
    }

    #[allow(clippy::boxed_local)] // what the built-ins answer, taken as it is
    fn failure(e: Box<EvalAltResult>) -> Failure {
        match *e {
            EvalAltResult::ErrorRuntime(d, _) => d.try_cast::<Failure>().expect("a Failure"),
            other => panic!("not a failure: {other}"),
        }
    }

    #[test]
    fn steps_are_numbered_counted_and_answered() {
        let (rt, done) = run(vec![Ok(Value::Str("one".into())), Ok(Value::Int(2))], None);
        assert_eq!(rt.mode(), Mode::Live);
        let a = rt.perform("b", namespace("a")).unwrap();
        assert_eq!(a.into_string().unwrap(), "one");
        let b = rt.perform("b", namespace("b")).unwrap();
        assert_eq!(b.as_int().unwrap(), 2);
        assert_eq!(rt.finished(), 2);
        assert!(!rt.step_failed());
        let names: Vec<_> = rt
            .actions()
            .iter()
            .map(|a| a.to_json()["name"].clone())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(rt.places(), vec![None, None]);
        assert_eq!(*done.borrow(), ["kube.ensure_namespace"; 2]);
        // a query does not count as a step
        let q = rt.query("b", Query::KubeVersion).unwrap();
        assert_eq!(q.into_string().unwrap(), "the cluster's answer");
        assert_eq!(rt.actions().len(), 2);
    }

    #[test]
    fn a_failed_step_names_its_number_and_kind_and_a_later_success_clears_it() {
        let (rt, _) = run(
            vec![Ok(Value::Null), Err("refused".into()), Ok(Value::Null)],
            None,
        );
        let _ = rt.perform("b", namespace("a")).unwrap();
        let f = failure(rt.perform("ensure_namespace", namespace("b")).unwrap_err());
        assert_eq!(f.kind, FailureKind::Step);
        assert_eq!(f.builtin.as_deref(), Some("ensure_namespace"));
        assert_eq!(f.message, "step 2 (kube.ensure_namespace): refused");
        assert!(rt.step_failed());
        assert_eq!(rt.finished(), 1);
        let _ = rt.perform("b", namespace("c")).unwrap();
        assert!(!rt.step_failed());
        assert_eq!(rt.finished(), 2);
        rt.note_step_failed();
        assert!(rt.step_failed());
    }

    #[test]
    fn an_interrupted_run_starts_no_step_and_a_step_stopped_by_ctrl_c_says_so() {
        // Ctrl-C during the first step, which then fails: an interruption, not a step failure
        let (rt, done) = run(vec![Err("helm: signal: interrupt".into())], Some(1));
        let f = failure(rt.perform("install_chart", namespace("a")).unwrap_err());
        assert_eq!(f.kind, FailureKind::Interrupted);
        assert_eq!(
            f.message,
            "interrupted: step 1 (kube.ensure_namespace): helm: signal: interrupt"
        );
        assert!(rt.is_interrupted());
        // after it, nothing more starts, and nothing is read
        for e in [
            rt.perform("b", namespace("b")).unwrap_err(),
            rt.perform_many("b", vec![namespace("c")]).unwrap_err(),
            rt.query("b", Query::KubeVersion).unwrap_err(),
        ] {
            assert_eq!(failure(e).kind, FailureKind::Interrupted);
        }
        assert_eq!(done.borrow().len(), 1);
        assert_eq!(rt.actions().len(), 1);
        // a step that finishes although Ctrl-C came during it counts as done
        let (rt, _) = run(vec![Ok(Value::Null)], Some(1));
        let _ = rt.perform("b", namespace("a")).unwrap();
        assert_eq!(rt.finished(), 1);
    }

    #[test]
    fn several_steps_at_once_are_numbered_in_order_and_the_first_failure_is_reported() {
        let (rt, done) = run(
            vec![
                Ok(Value::Null),
                Ok(Value::Str("q1".into())),
                Err("exists".into()),
                Ok(Value::Null),
            ],
            None,
        );
        let _ = rt.perform("b", namespace("first")).unwrap();
        let f = failure(
            rt.perform_many(
                "create_queues",
                vec![namespace("a"), namespace("b"), namespace("c")],
            )
            .unwrap_err(),
        );
        assert_eq!(f.message, "step 3 (kube.ensure_namespace): exists");
        // every action was tried
        assert_eq!(done.borrow().len(), 4);
        assert_eq!(rt.actions().len(), 4);
        let (rt, _) = run(vec![Ok(Value::Int(1)), Ok(Value::Int(2))], None);
        let out = rt
            .perform_many("b", vec![namespace("a"), namespace("b")])
            .unwrap();
        let out: Vec<i64> = out.into_iter().map(|d| d.as_int().unwrap()).collect();
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn a_secret_interpolated_into_a_string_is_refused_before_the_step() {
        let manifest = Value::from_json(&serde_json::json!({
            "a": {"b": 1, "c": format!("x {REDACTED} y")},
            "d": REDACTED,
        }));
        let apply = Action::KubeApply {
            namespace: None,
            manifest,
        };
        assert_eq!(interpolated_secret(&apply).as_deref(), Some("manifest.a.c"));
        assert_eq!(interpolated_secret(&namespace("plain")), None);
        let (rt, done) = run(vec![], None);
        let f = failure(rt.perform("kube_apply", apply.clone()).unwrap_err());
        assert_eq!(f.kind, FailureKind::Validation);
        assert!(
            f.message.starts_with("`manifest.a.c` holds the text"),
            "{}",
            f.message
        );
        let f = failure(
            rt.perform_many("kube_apply", vec![namespace("a"), apply])
                .unwrap_err(),
        );
        assert_eq!(f.kind, FailureKind::Validation);
        assert!(done.borrow().is_empty() && rt.actions().is_empty());
    }

    #[test]
    fn built_ins_see_the_installed_run_and_its_flag() {
        // outside a run: a dry run whose flag nothing sets
        std::thread::spawn(|| {
            with(|rt| assert_eq!(rt.mode(), Mode::DryRun));
            assert!(!interrupt_flag().load(Ordering::SeqCst));
        })
        .join()
        .unwrap();
        std::thread::spawn(|| {
            let (rt, _) = run(vec![], None);
            rt.install();
            assert_eq!(with(|r| r.mode()), Mode::Live);
            interrupt_flag().store(true, Ordering::SeqCst);
            assert!(rt.is_interrupted());
            assert_eq!(rt.next_group(), 1);
            assert_eq!(rt.next_group(), 2);
            assert_eq!(shown_kind("helm.upgrade_install"), "helm.upgrade_install");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_playbook_sees_the_site_as_a_constant() {
        let site = Site {
            values: Value::from_json(&serde_json::json!({"a": 1})),
            ..Site::default()
        };
        let mut scope = site_scope(&site);
        assert!(scope.is_constant("site").unwrap());
        let engine = rhai::Engine::new();
        let a: i64 = engine.eval_with_scope(&mut scope, "site.a").unwrap();
        assert_eq!(a, 1);
    }

    #[test]
    fn the_tokio_runtime_is_remembered() {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        set_tokio_handle(tokio.handle().clone());
        assert!(tokio_handle().is_some());
    }
}
