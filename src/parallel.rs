//! Independent steps together: the branches of a `parallel` group run as coroutines on the
//! engine's own thread, and each child process a branch waits for (helm's `--wait`, above all)
//! is waited for on a helper thread while the other branches go on.
//!
//! Rhai is built without its `sync` feature: script values are not `Send`, so a branch's script
//! can never move to another thread. Instead every branch gets a stack of its own (a
//! coroutine, [`corosensei`]) on the one thread that runs the engine; a branch that reaches a
//! blocking wait ([`blocking`]) hands it to a helper thread and suspends, and the scheduler
//! resumes another branch. Only one branch runs script code at any moment, so the run's state
//! (the thread-local runtime, the plan, the script's values) needs no locks; what runs at the
//! same time are the waits.
//!
//! Outside a branch (a playbook without `parallel`, a dry run, the REPL) [`blocking`] simply
//! runs its work in place.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::sync::mpsc::{TryRecvError, channel};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use serde::Serialize;

/// Where a step stands in the plan: in which group, in which branch (`outer/inner` for a group
/// inside a branch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Place {
    pub group: usize,
    pub branch: String,
}

/// Each branch's stack: as much as the engine's thread has (Rhai evaluates recursively). The
/// memory is reserved, not committed: pages are used as the branch needs them.
const STACK: usize = 8 * 1024 * 1024;

struct Branch {
    yielder: *const Yielder<(), ()>,
    place: Place,
}

thread_local! {
    /// The branch running now on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Branch>>> = const { RefCell::new(None) };
}

/// How many helper waits have finished, so an idle scheduler sleeps until one more does.
static FINISHED: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());

fn finished_count() -> u64 {
    *FINISHED.0.lock().unwrap_or_else(|e| e.into_inner())
}

fn note_finished() {
    *FINISHED.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    FINISHED.1.notify_all();
}

fn current() -> Option<Rc<Branch>> {
    CURRENT.with(|c| c.borrow().clone())
}

fn set_current(b: Option<Rc<Branch>>) {
    CURRENT.with(|c| *c.borrow_mut() = b);
}

/// The place of the step that starts now: the branch running, if any.
pub fn place() -> Option<Place> {
    current().map(|b| b.place.clone())
}

/// Let the other branches run; back when the scheduler resumes this one.
fn suspend(branch: &Rc<Branch>) {
    // SAFETY: the yielder belongs to the coroutine running this code; it lives as long as the
    // coroutine's body, which is on the stack below this call.
    unsafe { (*branch.yielder).suspend(()) };
    set_current(Some(branch.clone()));
}

/// Do `work`, which blocks (waits for a child process). In a branch of a parallel group it
/// runs on a helper thread while the other branches go on; elsewhere, in place.
pub fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let Some(branch) = current() else {
        return work();
    };
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(work));
        let _ = tx.send(result);
        note_finished();
    });
    loop {
        match rx.try_recv() {
            Ok(Ok(value)) => return value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(TryRecvError::Empty) => suspend(&branch),
            Err(TryRecvError::Disconnected) => unreachable!("the helper always answers"),
        }
    }
}

/// A branch: its name and its work.
pub type Work<'a, R> = (String, Box<dyn FnOnce() -> R + 'a>);

/// Run the branches of group `group` together and answer each one's result, in order. Each
/// branch runs until it waits; then the next one runs. When every branch waits, the scheduler
/// sleeps until a wait ends (or, in a branch of an enclosing group, lets that group go on).
pub fn run<'a, R: 'a>(group: usize, branches: Vec<Work<'a, R>>) -> Result<Vec<R>, String> {
    let enclosing = current();
    let mut coroutines = Vec::with_capacity(branches.len());
    for (name, work) in branches {
        let stack = DefaultStack::new(STACK)
            .map_err(|e| format!("cannot make a stack for the branch {name}: {e}"))?;
        // a group inside a branch: its branches are named under the enclosing one
        let branch = match &enclosing {
            Some(outer) => format!("{}/{name}", outer.place.branch),
            None => name,
        };
        let place = Place { group, branch };
        let body = move |yielder: &Yielder<(), ()>, ()| {
            set_current(Some(Rc::new(Branch {
                yielder: yielder as *const _,
                place,
            })));
            work()
        };
        // SAFETY: `body` borrows what lives for 'a, which outlives this function; every
        // coroutine is driven to its end below, or dropped (its stack unwound) before this
        // function returns or unwinds. None is leaked.
        coroutines.push(unsafe { Coroutine::with_stack_unchecked(stack, body) });
    }
    let mut results: Vec<Option<R>> = coroutines.iter().map(|_| None).collect();
    loop {
        let seen = finished_count();
        let mut waiting = false;
        for (i, co) in coroutines.iter_mut().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let step = co.resume(());
            set_current(enclosing.clone());
            match step {
                CoroutineResult::Yield(()) => waiting = true,
                CoroutineResult::Return(r) => results[i] = Some(r),
            }
        }
        if !waiting {
            break;
        }
        match &enclosing {
            Some(outer) => suspend(outer),
            None => {
                let guard = FINISHED.0.lock().unwrap_or_else(|e| e.into_inner());
                if *guard == seen {
                    let _ = FINISHED
                        .1
                        .wait_timeout(guard, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every branch ended"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each helper waits until all three have started (or 30 s pass): only branches whose
    /// waits overlap all answer `true`.
    #[test]
    fn branches_wait_together_and_answer_in_order() {
        let arrived = std::sync::Arc::new((Mutex::new(0), Condvar::new()));
        let log = RefCell::new(Vec::new());
        let branches: Vec<Work<'_, String>> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                let log = &log;
                let arrived = arrived.clone();
                let w: Box<dyn FnOnce() -> String + '_> = Box::new(move || {
                    log.borrow_mut().push(format!("{name} starts"));
                    let all = blocking(move || {
                        let (count, cv) = &*arrived;
                        let mut n = count.lock().unwrap();
                        *n += 1;
                        cv.notify_all();
                        let (n, _) = cv
                            .wait_timeout_while(n, Duration::from_secs(30), |n| *n < 3)
                            .unwrap();
                        *n == 3
                    });
                    log.borrow_mut().push(format!("{name} ends"));
                    format!("{name}:{all}:{}", place().unwrap().branch)
                });
                (name.to_string(), w)
            })
            .collect();
        let out = run(1, branches).unwrap();
        assert_eq!(out, ["a:true:a", "b:true:b", "c:true:c"]);
        let log = log.into_inner();
        let first_end = log.iter().position(|l| l.ends_with("ends")).unwrap();
        assert_eq!(first_end, 3, "{log:?}");
        assert_eq!(place(), None);
    }

    #[test]
    fn a_wait_outside_a_group_runs_in_place() {
        let here = std::thread::current().id();
        let id = blocking(move || std::thread::current().id());
        assert_eq!(id, here);
    }

    #[test]
    fn nested_groups_keep_their_places() {
        let branches: Vec<Work<'_, Vec<String>>> = vec![
            (
                "outer".into(),
                Box::new(|| {
                    let inner: Vec<Work<'_, String>> = vec![(
                        "inner".into(),
                        Box::new(|| {
                            blocking(|| ());
                            place().unwrap().branch
                        }),
                    )];
                    let mut got = run(2, inner).unwrap();
                    got.push(place().unwrap().branch);
                    got
                }),
            ),
            ("other".into(), Box::new(|| vec![place().unwrap().branch])),
        ];
        let out = run(1, branches).unwrap();
        assert_eq!(out, vec![vec!["outer/inner", "outer"], vec!["other"]]);
    }
}
