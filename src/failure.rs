//! The failures a run can end with, and their exit codes.
//!
//! Built-ins raise a [`Failure`] inside Rhai as a runtime error whose value is the failure
//! itself, so the position Rhai fills in points at the call, and the exit code survives the trip
//! through nested script functions and modules.

use std::fmt;

use rhai::{Dynamic, EvalAltResult, Position};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad input found before anything was changed: exit 2.
    Validation,
    /// A step (an action, or a built-in at run time) failed: exit 1.
    Step,
    /// Stopped by Ctrl-C (exit 130) or SIGTERM (exit 143).
    Interrupted,
    /// In the plan pass, a query was answered with a placeholder (`<planned: …>`) and the script
    /// needs the real value to go on: only a run against the cluster can get further. The one
    /// condition under which a plan pass that did not finish lets a live run start.
    NeedsLive,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    /// The built-in that raised it, if any.
    pub builtin: Option<String>,
    pub message: String,
    /// Individual problems, for a validation that found several.
    pub problems: Vec<String>,
}

impl Failure {
    pub fn validation(builtin: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Validation,
            builtin: Some(builtin.to_string()),
            message: message.into(),
            problems: Vec::new(),
        }
    }

    pub fn step(builtin: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Step,
            builtin: Some(builtin.to_string()),
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// The plan pass cannot go further than a value only the cluster gives.
    pub fn needs_live(builtin: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::NeedsLive,
            builtin: Some(builtin.to_string()),
            message: message.into(),
            problems: Vec::new(),
        }
    }

    pub fn with_problems(mut self, problems: Vec<String>) -> Failure {
        self.problems = problems;
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            FailureKind::Validation => 2,
            FailureKind::Step | FailureKind::NeedsLive => 1,
            FailureKind::Interrupted => crate::process::interrupted_exit_code(),
        }
    }

    /// As a Rhai error; Rhai fills in the position of the call.
    pub fn into_rhai(self) -> Box<EvalAltResult> {
        EvalAltResult::ErrorRuntime(Dynamic::from(self), Position::NONE).into()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = &self.builtin {
            write!(f, "{b}: ")?;
        }
        f.write_str(&self.message)?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Shorthand for built-ins: a validation failure as a Rhai error.
pub fn invalid(builtin: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    Failure::validation(builtin, message).into_rhai()
}

/// Shorthand for built-ins: a step failure as a Rhai error.
pub fn failed(builtin: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    Failure::step(builtin, message).into_rhai()
}
