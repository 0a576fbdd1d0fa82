//! Turns the command line into work: runs a playbook, or one of the other commands.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{CommandFactory, Parser};
use rhai::{Engine, Map, Scope};

use crate::action::{self, DryRunExecutor, Executor};
use crate::cli::{Cli, Command, DocsFormat, OutputFormat, RunArgs, ScriptsAction};
use crate::engine::{self, Sources};
use crate::execute::{Outcome, execute, plan_pass_exit};
use crate::live::LiveExecutor;
use crate::site::Site;
use crate::{check, docs, playbook, ui};

/// Parse the command line, do the work, and answer with the exit code.
pub fn main(interrupted: Arc<AtomicBool>) -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    ui::set_debug(cli.debug);
    match (cli.command, cli.run) {
        (Some(Command::Run(args)), _) | (None, args) => run(&args, interrupted),
        (Some(Command::Status(args)), _) => run(&args.run_args("status.rhai"), interrupted),
        (Some(Command::SupportBundle { out, args }), _) => {
            // this run reads the last run's log: it keeps none of its own
            crate::support_bundle::keep_no_log();
            let mut args = args.run_args("support-bundle.rhai");
            let out = std::path::absolute(&out).unwrap_or(out);
            args.site
                .set
                .push(format!("support_bundle.out={}", out.display()));
            run(&args, interrupted)
        }
        (Some(Command::Check { scripts }), _) => check_scripts(&scripts),
        (Some(Command::Bundle { action }), _) => crate::airgap::command(action, interrupted),
        (
            Some(Command::Repl {
                site,
                dry_run: _,
                live,
                sandbox,
                sandbox_state,
                kube,
            }),
            _,
        ) => crate::repl::run(
            &crate::repl::Options {
                site,
                dry_run: !live && !sandbox,
                sandbox,
                sandbox_state,
                kube,
            },
            interrupted,
        ),
        (Some(Command::Docs { function, format }), _) => show_docs(function.as_deref(), format),
        (Some(Command::Defs { out }), _) => write_defs(&out),
        (Some(Command::Schema { layer }), _) => match if layer {
            crate::schema::build_layer()
        } else {
            crate::schema::build()
        } {
            Ok(schema) => {
                ui::out(&format!("{schema:#}\n"));
                0
            }
            Err(e) => {
                ui::err(&format!("error: {e}\n"));
                1
            }
        },
        (Some(Command::Man { out }), _) => man(out.as_deref()),
        (Some(Command::Completions { shell }), _) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "clearml-script",
                &mut std::io::stdout(),
            );
            0
        }
        (Some(Command::Sandbox { dir, faults }), _) => sandbox(dir, &faults, interrupted),
        (Some(Command::Scripts { action: None }), _) => {
            ui::out(&format!("Standard playbooks:\n{}", playbook::list()));
            0
        }
        (
            Some(Command::Scripts {
                action:
                    Some(ScriptsAction::Export {
                        dir,
                        force,
                        with_stdlib,
                    }),
            }),
            _,
        ) => match playbook::export(&dir, force, with_stdlib) {
            Ok(written) => {
                for p in &written {
                    ui::err(&format!("wrote {}\n", p.display()));
                }
                ui::err(&format!(
                    "Run the exported copy with: clearml-script {} --values {} --dry-run\n",
                    dir.join("install.rhai").display(),
                    dir.join("site.yaml").display()
                ));
                0
            }
            Err(e) => {
                ui::err(&format!("error: {e}\n"));
                2
            }
        },
    }
}

/// The planner of `--dry-run --diff`: reads from the kubeconfig's cluster, changes nothing.
fn plan_with_diff(kube: &crate::cli::KubeArgs) -> Result<crate::chartdiff::DiffPlanner, String> {
    let target = crate::action::Target {
        kubeconfig: kube.kubeconfig.clone(),
        context: kube.context.clone(),
        ..Default::default()
    };
    let live = LiveExecutor::new(crate::action::Mode::Live, target, kube.helm.clone(), false)?;
    Ok(crate::chartdiff::DiffPlanner::new(live))
}

/// The command line for the run log: arguments that are not UTF-8 shown lossily, and in each
/// `--set…` argument the value of every key the site holds as a secret masked (see
/// [`crate::strvals::masked_spec`]).
fn logged_command(sets: &[(crate::strvals::Mode, String)], site: &Site) -> String {
    let secret = |path: &str| !matches!(site.values.at_path(path), Some(v) if !matches!(v, crate::value::Value::Secret(_)));
    std::env::args_os()
        .map(|a| {
            let a = a.to_string_lossy().into_owned();
            match sets.iter().find(|(_, spec)| {
                a == *spec || (a.starts_with("--set") && a.ends_with(spec.as_str()))
            }) {
                Some((mode, spec)) => {
                    let head = &a[..a.len() - spec.len()];
                    format!(
                        "{head}{}",
                        crate::strvals::masked_spec(spec, *mode, &secret)
                    )
                }
                None => a,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(args: &RunArgs, interrupted: Arc<AtomicBool>) -> i32 {
    let Some(script) = args.script.as_deref() else {
        let _ = Cli::command().print_help();
        return 2;
    };
    let book = match playbook::resolve(script) {
        Ok(b) => b,
        Err(e) => {
            ui::err(&format!("error: {e}\n"));
            return 2;
        }
    };
    if book.embedded {
        ui::err(&format!("running the standard playbook {}\n", book.name));
    }
    let site = match Site::load(&args.site.values, &args.site.sets()) {
        Ok(s) => s,
        Err(e) => {
            ui::err(&format!("error: {e}\n"));
            return 2;
        }
    };
    if let Some(code) =
        crate::site_keys::refuse_unknown(&site, (!book.embedded).then_some(book.text.as_str()))
    {
        return code;
    }
    let json = args.output == OutputFormat::Json;
    ui::set_json_stdout(json);
    crate::ops::set_switches(args.skip_preflight, args.yes);
    // a live run refuses the examples' `…-replace-me` credentials; dry runs and the sandbox
    // rehearse with them
    crate::validate::refuse_examples(
        !args.dry_run && !args.sandbox && !crate::validate::examples_allowed(),
    );
    crate::support_bundle::start_run_log(&logged_command(&args.site.sets(), &site));

    // First the whole playbook as a dry run. For a live or sandbox run this pass is silent and
    // only checks: every validation of every step runs before anything is touched. Meanwhile,
    // what changes nothing is found out (helm's version, the cluster's answer).
    let early = (!args.dry_run).then(|| crate::executors::Early::start(&args.kube, args.sandbox));
    ui::set_quiet(!args.dry_run);
    crate::chartdiff::set_show(args.diff);
    let planner: Box<dyn Executor> = if args.dry_run && args.diff {
        // --dry-run --diff: the cluster is read, nothing is changed
        match plan_with_diff(&args.kube) {
            Ok(p) => Box::new(p),
            Err(e) => {
                ui::err(&format!("error: {e}; nothing was changed\n"));
                return 2;
            }
        }
    } else {
        Box::new(DryRunExecutor)
    };
    if args.dry_run {
        // the site goes to the one pass there is, not a copy of it (thousands of queues)
        let plan = execute(&book, site, planner, interrupted);
        ui::set_quiet(false);
        return finish(&plan, None, json, true);
    }
    let plan = execute(&book, site.clone(), planner, interrupted.clone());
    ui::set_quiet(false);
    // The plan pass may stop early only where the script needs for real a value only the
    // cluster gives; any other error stops here, before anything is started.
    let needs_live = match &plan.result {
        Ok(()) => false,
        Err(report) if report.needs_live => true,
        Err(report) => {
            ui::err(&report.text);
            return plan_pass_exit(report, false);
        }
    };
    // helm is looked for now when the plan holds a helm step. When the plan pass stopped early
    // (at a value only a live cluster gives), helm is looked for at the first helm step.
    if needs_live {
        ui::info(
            "the plan pass stopped at a value only the cluster gives: the rest is checked as it runs",
        );
    }
    let needs_helm = !needs_live && plan.actions.iter().any(|a| a.kind().starts_with("helm."));
    // the upload always runs the vendor's script: python3 must be there before anything starts
    if plan.actions.iter().any(|a| a.kind() == "apps.upload")
        && let Err(e) = crate::apps_package::python()
    {
        ui::err(&format!("error: {e}; nothing was changed\n"));
        return 2;
    }
    // an air-gapped site: every image of every chart points at the mirror, before anything
    match crate::airgap::closure(
        &site,
        &plan.actions,
        args.kube.helm.as_deref(),
        &book.base_dir,
    ) {
        Ok(Some(proved)) => ui::info(proved.trim_end()),
        Ok(None) => {}
        Err(code) => return code,
    }
    // the cluster answers before the first step of a playbook that touches it
    let check_cluster = needs_live
        || plan.actions.iter().any(|a| {
            let kind = a.kind();
            ["helm.", "kube.", "wait."]
                .iter()
                .any(|p| kind.starts_with(p))
        });
    let (executor, sandbox) = match crate::executors::executor_for(
        false,
        args.sandbox,
        args.sandbox_state.as_deref(),
        &args.kube,
        &site,
        needs_helm,
        check_cluster,
        &args.faults,
        early,
    ) {
        Ok(x) => x,
        Err(e) => {
            ui::err(&format!("error: {e}; nothing was changed\n"));
            return 2;
        }
    };
    let outcome = execute(&book, site, executor, interrupted);
    finish(&outcome, sandbox.as_ref(), json, false)
}

/// Print the plan or the result, or the error, and answer the exit code.
fn finish(
    outcome: &Outcome,
    sandbox: Option<&crate::sandbox::Sandbox>,
    json: bool,
    dry_run: bool,
) -> i32 {
    if let Some(sb) = sandbox {
        ui::err(&sb.summary());
    }
    // rendered and masked once (thousands of queues plan megabytes): kept for a support
    // bundle, and printed with --output json
    let mut plan_json = action::render_json(&outcome.actions, &outcome.places, dry_run);
    plan_json.push('\n');
    let plan_json = crate::secret::masked(&plan_json);
    crate::support_bundle::keep_plan(&plan_json);
    // reports of checks (preflight, status) are the JSON document of a run that changed nothing
    let reports = crate::ops::take_reports();
    if json && !reports.is_empty() && outcome.actions.is_empty() {
        let doc = if reports.len() == 1 {
            reports[0].clone()
        } else {
            serde_json::Value::Array(reports.clone())
        };
        ui::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ));
    }
    match &outcome.result {
        Ok(()) if json && !reports.is_empty() && outcome.actions.is_empty() => 0,
        Ok(()) => {
            if json {
                ui::out_masked(&plan_json);
            } else if dry_run {
                ui::out(&action::render_text(
                    &outcome.actions,
                    &outcome.places,
                    true,
                ));
            } else {
                ui::err(&action::render_text(
                    &outcome.actions,
                    &outcome.places,
                    false,
                ));
            }
            0
        }
        Err(report) if dry_run && report.needs_live => {
            ui::err(&report.text);
            ui::err(
                "note: the plan ends here: the script needs a value only the cluster gives; \
                 the steps above are planned so far\n",
            );
            if json {
                // the branch is a dry run's: the plan as rendered above
                ui::out_masked(&plan_json);
            } else {
                ui::out(&action::render_text(
                    &outcome.actions,
                    &outcome.places,
                    true,
                ));
            }
            0
        }
        Err(report) if dry_run => {
            ui::err(&report.text);
            plan_pass_exit(report, true)
        }
        Err(report) => {
            if json && !reports.is_empty() && !outcome.actions.is_empty() {
                ui::out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&reports).unwrap_or_default()
                ));
            }
            ui::err(&report.text);
            ui::err(&after_failure(outcome, report.exit_code));
            report.exit_code
        }
    }
}

/// What a failed run says about the cluster after the error: how many steps finished, and
/// whether a re-run continues.
fn after_failure(outcome: &Outcome, exit_code: i32) -> String {
    let done = outcome.finished;
    let steps = format!("{done} step{}", if done == 1 { "" } else { "s" });
    let interrupted = exit_code > 2;
    match (done, outcome.step_failed, interrupted, exit_code) {
        (0, false, _, _) => "no step was started: nothing was changed\n".into(),
        (_, _, true, _) => format!(
            "{steps} finished before the interruption; a re-run continues from the cluster's state\n"
        ),
        (_, true, _, _) => format!(
            "{steps} finished before the failing step; a re-run continues from the cluster's state\n"
        ),
        (_, false, _, 2) => {
            format!("{steps} finished before the failure; fix the problem above, then run again\n")
        }
        _ => format!(
            "{steps} finished before the failure; a re-run continues from the cluster's state\n"
        ),
    }
}

fn check_scripts(scripts: &[std::path::PathBuf]) -> i32 {
    let mut problems = 0;
    for script in scripts {
        match check::check_file(script) {
            Ok(reports) => {
                problems += reports.len();
                for r in reports {
                    ui::err(&r.text);
                }
            }
            Err(report) => {
                problems += 1;
                ui::err(&report.text);
            }
        }
    }
    let n = scripts.len();
    let s = if n == 1 { "" } else { "s" };
    if problems == 0 {
        ui::err(&format!("checked {n} script{s}: no problems\n"));
        0
    } else {
        ui::err(&format!("checked {n} script{s}: {problems} problem(s)\n"));
        2
    }
}

fn builtin_engine() -> Engine {
    engine::build(
        Path::new("."),
        Sources::default(),
        Arc::new(AtomicBool::new(false)),
    )
}

fn show_docs(function: Option<&str>, format: DocsFormat) -> i32 {
    let all = docs::collect_all(&builtin_engine());
    let selected: Vec<docs::FnDoc> = match function {
        None => all,
        Some(name) => match docs::lookup(&all, name) {
            Ok(found) => found.into_iter().cloned().collect(),
            Err(e) => {
                ui::err(&format!("error: {e}\n"));
                return 2;
            }
        },
    };
    match format {
        DocsFormat::Md => ui::out(&docs::render_md(&selected)),
        DocsFormat::Json => ui::out(&format!("{}\n", docs::render_json(&selected))),
    }
    0
}

/// The man page from the command-line definition (clap_mangen): `cargo install` installs no man
/// pages, so the binary gives its own.
fn man(out: Option<&Path>) -> i32 {
    let cmd = Cli::command();
    let result = match out {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|_| clap_mangen::generate_to(cmd, dir)),
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map(|_| ui::out(&String::from_utf8_lossy(&buf)))
        }
    };
    match result {
        Ok(()) => {
            if let Some(dir) = out {
                ui::err(&format!("wrote the man pages into {}\n", dir.display()));
            }
            0
        }
        Err(e) => {
            ui::err(&format!("error: cannot write the man page: {e}\n"));
            1
        }
    }
}

fn write_defs(out: &Path) -> i32 {
    let engine = builtin_engine();
    let mut scope = Scope::new();
    scope.push_constant("site", Map::new());
    let result = std::fs::create_dir_all(out).and_then(|_| {
        engine
            .definitions_with_scope(&scope)
            .with_headers(true)
            .include_standard_packages(false)
            .write_to_dir(out)
    });
    match result {
        Ok(()) => {
            ui::err(&format!("wrote definition files into {}\n", out.display()));
            0
        }
        Err(e) => {
            ui::err(&format!(
                "error: cannot write into {}: {e}\n",
                out.display()
            ));
            1
        }
    }
}

fn sandbox(
    dir: Option<std::path::PathBuf>,
    fault_specs: &[String],
    interrupted: Arc<AtomicBool>,
) -> i32 {
    let Some(handle) = crate::runtime::tokio_handle() else {
        ui::err("error: no async runtime\n");
        return 1;
    };
    let faults = crate::sandbox::faults::Faults::default();
    for spec in fault_specs {
        if let Err(e) = faults.add_spec(spec) {
            ui::err(&format!("error: {e}\n"));
            return 2;
        }
    }
    let sandbox = match handle.block_on(crate::sandbox::Sandbox::start(dir, faults)) {
        Ok(s) => s,
        Err(e) => {
            ui::err(&format!("error: cannot start the sandbox: {e}\n"));
            return 1;
        }
    };
    // Throwaway credentials for using the ClearML API by hand: an admin of the default
    // company, written to a 0600 file rather than printed.
    let state = &sandbox.clearml.state;
    let admin = crate::sandbox::store::random_hex(16);
    state.add_user(
        &admin,
        "sandbox-admin",
        crate::sandbox::clearml::DEFAULT_COMPANY,
        crate::sandbox::clearml::Role::Admin,
    );
    let key = crate::sandbox::store::random_hex(10).to_uppercase();
    let secret = crate::sandbox::store::random_hex(24);
    state.add_credentials(&key, &secret, &admin);
    let creds = sandbox.dir.join("clearml-credentials.json");
    let written = crate::fsutil::write_private(
        &creds,
        &serde_json::json!({"api_url": sandbox.clearml.url(), "access_key": key, "secret_key": secret}).to_string(),
    );
    if let Err(e) = written {
        ui::err(&format!("error: cannot write {}: {e}\n", creds.display()));
        return 1;
    }
    ui::out(&format!(
        "kubeconfig: {}\nkubernetes API: {}\nClearML API: {}\nClearML credentials: {}\nchart repository: {}\n",
        sandbox.kubeconfig.display(),
        sandbox.kube.url(),
        sandbox.clearml.url(),
        creds.display(),
        sandbox.kube.chart_repo_url()
    ));
    ui::err(&format!(
        "The sandbox runs until Ctrl-C. Try: KUBECONFIG={} helm list -A\n",
        sandbox.kubeconfig.display()
    ));
    while !interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    0
}
