//! Built-ins about the run itself: its mode, and narration lines.

use rhai::plugin::*;

#[export_module]
pub mod run_api {
    use crate::action::Mode;
    use crate::runtime;
    use crate::ui;
    use rhai::Dynamic;

    /// The run's mode: `dry-run`, `live` or `sandbox`.
    ///
    /// # Example
    /// ```rhai
    /// if mode() == "dry-run" { log("planning only"); }
    /// ```
    pub fn mode() -> String {
        runtime::with(|rt| rt.mode().as_str().to_string())
    }

    /// Is this a dry run (nothing outside the process is touched)?
    ///
    /// # Example
    /// ```rhai
    /// if !is_dry_run() { log("installing for real"); }
    /// ```
    pub fn is_dry_run() -> bool {
        runtime::with(|rt| rt.mode() == Mode::DryRun)
    }

    /// Narrate a step on stderr (never stdout, so `--output json` stays clean). Secrets in the
    /// message are masked.
    ///
    /// # Example
    /// ```rhai
    /// let ns = get(site, "namespace", "clearml");
    /// log("installing the control plane into " + ns);
    /// ```
    pub fn log(message: Dynamic) {
        ui::info(&crate::api::display(&message));
    }

    /// Run independent steps together: each closure is a branch, and the branches' waits
    /// (helm's `--wait` above all) overlap. A list of closures answers the list of their
    /// results; a map of closures answers a map, and names the branches in the plan and in
    /// messages. Each branch runs its steps in order; the plan shows each step's group and
    /// branch. When a branch fails, the others still finish, and the error names every
    /// branch's outcome. After Ctrl-C every branch stops before its next step.
    ///
    /// Branches should not change variables they share: each hands its result back.
    ///
    /// # Example
    /// ```rhai
    /// let r = parallel(#{
    ///     redis: || install_chart("redis", "bitnami/redis", #{ namespace: "redis-shared", wait: true }),
    ///     gateway: || install_chart("gateway", "clearml-enterprise/clearml-enterprise-app-gateway", #{ namespace: "clearml", wait: true }),
    /// });
    /// log(`redis: ${r.redis.status}`);
    /// ```
    #[rhai_fn(return_raw, name = "parallel")]
    pub fn parallel_list(
        ctx: NativeCallContext,
        branches: rhai::Array,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let named = branches
            .into_iter()
            .enumerate()
            .map(|(i, f)| ((i + 1).to_string(), f))
            .collect();
        super::group(&ctx, named)
    }

    /// Run independent steps together, the branches named by the map's keys: see
    /// `parallel(list)`.
    ///
    /// # Example
    /// ```rhai
    /// let r = parallel(#{ first: || 1, second: || 2 });
    /// log(`${r.first + r.second}`);
    /// ```
    #[rhai_fn(return_raw, name = "parallel")]
    pub fn parallel_map(
        ctx: NativeCallContext,
        branches: rhai::Map,
    ) -> Result<rhai::Map, Box<EvalAltResult>> {
        let named: Vec<(String, Dynamic)> = branches
            .into_iter()
            .map(|(k, f)| (k.to_string(), f))
            .collect();
        let names: Vec<String> = named.iter().map(|(k, _)| k.clone()).collect();
        let results = super::group(&ctx, named)?;
        Ok(names.into_iter().map(Into::into).zip(results).collect())
    }
}

/// The branches of a `parallel` group, run together (see [`crate::parallel`]); their results in
/// order, or the first failure (an interruption before any other) with every branch's outcome.
fn group(
    ctx: &NativeCallContext,
    branches: Vec<(String, Dynamic)>,
) -> Result<Vec<Dynamic>, Box<EvalAltResult>> {
    use crate::failure::{Failure, FailureKind, invalid};
    use crate::runtime;
    const B: &str = "parallel";
    let mut fns = Vec::with_capacity(branches.len());
    for (name, d) in branches {
        match d.clone().try_cast::<rhai::FnPtr>() {
            Some(f) => fns.push((name, f)),
            None => {
                return Err(invalid(
                    B,
                    format!(
                        "the branch {name} is a {}, not a closure: write it as `|| …`",
                        crate::diagnostic::rhai_type_names(d.type_name())
                    ),
                ));
            }
        }
    }
    if fns.is_empty() {
        return Ok(Vec::new());
    }
    if runtime::with(|rt| rt.is_interrupted()) {
        return Err(runtime::interrupted());
    }
    let group = runtime::with(|rt| rt.next_group());
    let work: Vec<crate::parallel::Work<'_, Result<Dynamic, Box<EvalAltResult>>>> = fns
        .iter()
        .map(|(name, f)| {
            let run: Box<dyn FnOnce() -> Result<Dynamic, Box<EvalAltResult>> + '_> =
                Box::new(move || f.call_within_context::<Dynamic>(ctx, ()));
            (name.clone(), run)
        })
        .collect();
    let results = crate::parallel::run(group, work).map_err(|e| crate::failure::failed(B, e))?;
    if results.iter().all(Result::is_ok) {
        return Ok(results.into_iter().map(|r| r.expect("ok")).collect());
    }
    // `exit()` in a branch ends the script as it does outside a group: it is no failure
    if let Some(exit) = results.iter().position(|r| {
        r.as_ref().is_err_and(|e| {
            let mut e = &**e;
            while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
            | EvalAltResult::ErrorInModule(_, inner, _) = e
            {
                e = inner;
            }
            matches!(e, EvalAltResult::Exit(..))
        })
    }) {
        let mut err = results
            .into_iter()
            .nth(exit)
            .expect("exit")
            .expect_err("exit");
        let inner = std::mem::replace(
            innermost(&mut err),
            EvalAltResult::ErrorTerminated(Dynamic::UNIT, rhai::Position::NONE),
        );
        return Err(Box::new(inner));
    }
    // the failure reported: an interruption first, else the first branch that failed
    let failures: Vec<Option<Failure>> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| as_failure(e)))
        .collect();
    let primary = failures
        .iter()
        .position(|f| {
            f.as_ref()
                .is_some_and(|f| f.kind == FailureKind::Interrupted)
        })
        .or_else(|| failures.iter().position(Option::is_some))
        .expect("a branch failed");
    if failures
        .iter()
        .flatten()
        .any(|f| f.kind == FailureKind::Step)
    {
        runtime::with(|rt| rt.note_step_failed());
    }
    let stopped = failures[primary]
        .as_ref()
        .is_some_and(|f| f.kind == FailureKind::Interrupted);
    let mut outcomes = vec![format!(
        "parallel group {group}: the branch {} {} as above",
        fns[primary].0,
        if stopped { "stopped" } else { "failed" }
    )];
    for (i, f) in failures.iter().enumerate() {
        if i == primary {
            continue;
        }
        let name = &fns[i].0;
        outcomes.push(match f {
            None => format!("the branch {name} finished"),
            Some(f) if f.kind == FailureKind::Interrupted => {
                format!("the branch {name} stopped: {}", first_line(&f.to_string()))
            }
            Some(f) => format!("the branch {name} failed: {}", first_line(&f.to_string())),
        });
    }
    let mut err = results
        .into_iter()
        .nth(primary)
        .expect("primary")
        .expect_err("failed");
    let inner = innermost(&mut err);
    let mut failure = failures[primary].clone().expect("failed");
    failure.problems.extend(outcomes);
    let pos = inner.position();
    *inner = EvalAltResult::ErrorRuntime(Dynamic::from(failure), pos);
    Err(err)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// The error inside the calls and modules it came through.
fn innermost(e: &mut EvalAltResult) -> &mut EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        other => other,
    }
}

/// A branch's error as a failure of the run: its own failure, or a script error described as
/// the run reports it (with the exit code it would have).
fn as_failure(e: &EvalAltResult) -> crate::failure::Failure {
    use crate::failure::{Failure, FailureKind};
    let mut e = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = e
    {
        e = inner;
    }
    if let EvalAltResult::ErrorRuntime(v, _) = e
        && let Some(f) = v.clone().try_cast::<Failure>()
    {
        return f;
    }
    let (message, problems, code) = crate::diagnostic::describe(e);
    let message = crate::diagnostic::rhai_type_names(&message);
    let kind = if message.contains(crate::diagnostic::PLANNED_MARK) {
        FailureKind::NeedsLive
    } else {
        match code {
            2 => FailureKind::Validation,
            1 => FailureKind::Step,
            _ => FailureKind::Interrupted,
        }
    };
    Failure {
        kind,
        builtin: None,
        message,
        problems,
    }
}

#[export_module]
pub mod failure_api {
    use crate::failure::Failure;

    /// A failure caught with `try { … } catch (e) { … }`, as text: the built-in, the message and
    /// each problem.
    ///
    /// # Example
    /// ```rhai
    /// try { require(site, "nope") } catch (e) { print(e); }
    /// ```
    #[rhai_fn(name = "to_string", pure)]
    pub fn failure_to_string(f: &mut Failure) -> String {
        f.to_string()
    }

    /// A caught failure in debug output, the same as its text.
    ///
    /// # Example
    /// ```rhai
    /// try { fail("x") } catch (e) { debug(e); }
    /// ```
    #[rhai_fn(name = "to_debug", pure)]
    pub fn failure_to_debug(f: &mut Failure) -> String {
        f.to_string()
    }
}
