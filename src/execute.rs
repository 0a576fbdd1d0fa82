//! Running a playbook with an executor: compile it, run it with the site values, and gather
//! what it did (the actions, the steps finished, the error report). The command line's `run`,
//! the REPL-less plan of `bundle` and the silent plan pass all go through here.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::action::{self, DryRunExecutor, Executor};
use crate::diagnostic;
use crate::engine::{self, Sources};
use crate::runtime::Runtime;
use crate::site::Site;
use crate::{playbook, ui};

/// The silent plan of a standard playbook for a site: its actions, or the error's text and exit
/// code (the plan pass's).
pub fn plan_actions(
    script: &str,
    site: &Site,
    interrupted: Arc<AtomicBool>,
) -> Result<Vec<action::Action>, (String, i32)> {
    let book = playbook::resolve(script).map_err(|e| (format!("error: {e}\n"), 2))?;
    let quiet = ui::is_quiet();
    ui::set_quiet(true);
    let plan = execute(&book, site.clone(), Box::new(DryRunExecutor), interrupted);
    ui::set_quiet(quiet);
    match plan.result {
        Ok(()) => Ok(plan.actions),
        Err(report) => Err((report.text.clone(), plan_pass_exit(&report, true))),
    }
}

/// What running a playbook gave: the actions, how many steps finished, whether the failure (if
/// any) was a step's, and the error report if it failed.
pub struct Outcome {
    pub actions: Vec<action::Action>,
    pub places: Vec<Option<crate::parallel::Place>>,
    pub finished: usize,
    pub step_failed: bool,
    pub result: Result<(), diagnostic::Report>,
}

/// The exit code of a plan pass that stopped on an error: nothing was started, so every error
/// of the script or its values is bad input (2); an interruption keeps its own code.
pub fn plan_pass_exit(report: &diagnostic::Report, dry_run: bool) -> i32 {
    if report.exit_code > 2 {
        report.exit_code
    } else {
        if !dry_run && !report.text.contains("nothing was changed") {
            ui::err("nothing was started: nothing was changed\n");
        }
        2
    }
}

/// Run a playbook with an executor.
pub fn execute(
    book: &playbook::Playbook,
    site: Site,
    executor: Box<dyn Executor>,
    interrupted: Arc<AtomicBool>,
) -> Outcome {
    let rt = Rc::new(Runtime::new(
        executor,
        site,
        book.base_dir.clone(),
        interrupted.clone(),
    ));
    rt.install();
    let sources = Sources::default();
    sources.insert(&book.name, &book.text);
    let engine = engine::build(&book.base_dir, sources.clone(), interrupted);
    let mut ast = match engine::compile(&engine, &book.text) {
        Ok(ast) => ast,
        Err(e) => {
            return Outcome {
                actions: Vec::new(),
                places: Vec::new(),
                finished: 0,
                step_failed: false,
                result: Err(diagnostic::render_parse(&e, &book.name, &sources)),
            };
        }
    };
    ast.set_source(book.name.as_str());
    let mut scope = crate::runtime::site_scope(&rt.site);
    let result = engine
        .run_ast_with_scope(&mut scope, &ast)
        .map_err(|e| diagnostic::render(&e, &book.name, &sources));
    drop(scope);
    let (actions, places) = rt.finish();
    Outcome {
        actions,
        places,
        finished: rt.finished(),
        step_failed: rt.step_failed(),
        result,
    }
}
