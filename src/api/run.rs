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
