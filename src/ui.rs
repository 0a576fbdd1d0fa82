//! Everything the tool writes goes through here, and through the redactor: human output to
//! stderr, machine output (`--output json`) alone on stdout; control characters escaped (see
//! [`printable`]).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::secret::redact;

static JSON_STDOUT: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);
static DEBUG: AtomicBool = AtomicBool::new(false);

/// `-v/--debug`: each helm command and ClearML API call is printed as it runs.
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::SeqCst);
}

/// A debug line (`-v`), on stderr and through the redactor like everything else.
pub fn debug(message: &str) {
    if DEBUG.load(Ordering::SeqCst) {
        err(&format!("debug: {message}\n"));
    }
}

/// While quiet, a playbook's own output (`print`, `debug`, `log`) is dropped: the silent plan
/// pass before a live run.
pub fn set_quiet(on: bool) {
    QUIET.store(on, Ordering::SeqCst);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

/// With `--output json`, stdout carries the JSON document alone, so script `print` goes to
/// stderr.
pub fn set_json_stdout(on: bool) {
    JSON_STDOUT.store(on, Ordering::SeqCst);
}

pub fn is_json_stdout() -> bool {
    JSON_STDOUT.load(Ordering::SeqCst)
}

/// `text` with the control characters a terminal acts on (all but new line and tab: escape
/// sequences, carriage return, bell, the C1 controls) written escaped (`\u{1b}`), so that text
/// from the cluster or an API (an event's message, a log line, a worker's name) cannot drive the
/// operator's terminal. The tool's own output holds none.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let control = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Machine or primary output, on stdout.
pub fn out(text: &str) {
    out_masked(&crate::secret::masked(text));
}

/// [`out`] of text masked already.
pub fn out_masked(text: &crate::secret::Masked) {
    let text = printable(text.as_str());
    crate::support_bundle::log_text(&text);
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// `text` as the tool shows it: secrets masked, control characters escaped.
pub fn shown(text: &str) -> String {
    printable(&redact(text)).into_owned()
}

/// Human output, on stderr.
pub fn err(text: &str) {
    let text = shown(text);
    crate::support_bundle::log_text(&text);
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.flush();
}

/// A script's `print`: stdout, unless stdout is reserved for JSON.
pub fn print(text: &str) {
    if is_quiet() {
        return;
    }
    let line = format!("{text}\n");
    if JSON_STDOUT.load(Ordering::SeqCst) {
        err(&line)
    } else {
        out(&line)
    }
}

/// A narration line.
pub fn info(message: &str) {
    if is_quiet() {
        return;
    }
    err(&format!("• {message}\n"));
}

/// The start of a live step.
pub fn step(n: usize, kind: &str) {
    err(&format!("→ step {n}: {kind}\n"));
}

/// A warning.
pub fn warn(message: &str) {
    err(&format!("warning: {message}\n"));
}
