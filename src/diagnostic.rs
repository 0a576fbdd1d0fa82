//! Error reports in the shape of `just` and rustc: the message, `--> file:line:col`, the source
//! line with a caret, then the call chain, and the exit code that goes with the error.

use rhai::{EvalAltResult, ParseError, Position};

use crate::engine::Sources;
use crate::failure::Failure;

pub struct Report {
    pub text: String,
    pub exit_code: i32,
    /// The error is the plan pass reaching a value only the cluster gives (a query's
    /// `<planned: …>` placeholder) where the script needs the real one: a
    /// [`crate::failure::FailureKind::NeedsLive`] failure, or an error about such a value.
    pub needs_live: bool,
}

/// What the dry-run executor answers for a value only the cluster gives.
pub const PLANNED_MARK: &str = "<planned:";

/// Render an error of a run or of compiling a script.
pub fn render(err: &EvalAltResult, main_source: &str, sources: &Sources) -> Report {
    let mut src = main_source.to_string();
    let mut notes = Vec::new();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, fn_src, inner, pos) => {
                notes.push(format!("in the call to `{name}` at {}", place(&src, *pos)));
                if !fn_src.is_empty() {
                    src = fn_src.clone();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                notes.push(format!(
                    "while loading the module {name}, imported at {}",
                    place(&src, *pos)
                ));
                if !matches!(**inner, EvalAltResult::ErrorSystem(..)) {
                    src = name.clone();
                }
                e = inner;
            }
            _ => break,
        }
    }
    let pos = e.position();
    let needs_live = match e {
        EvalAltResult::ErrorRuntime(value, _) if value.is::<Failure>() => value
            .clone()
            .try_cast::<Failure>()
            .is_some_and(|f| f.kind == crate::failure::FailureKind::NeedsLive),
        // an error about a placeholder itself (`parse_int` of `<planned: …>`, a thrown message
        // quoting it): the script needed the real value
        EvalAltResult::ErrorTerminated(..) | EvalAltResult::ErrorParsing(..) => false,
        other => other.to_string().contains(PLANNED_MARK),
    };
    let (message, problems, exit_code) = describe(e);
    let message = if matches!(e, EvalAltResult::ErrorRuntime(..)) {
        message
    } else {
        rhai_type_names(&message)
    };
    let mut text = format!("error: {message}\n");
    text.push_str(&snippet(&src, pos, sources));
    for p in &problems {
        text.push_str(&format!("  - {p}\n"));
    }
    for n in notes.iter().rev() {
        text.push_str(&format!("  = note: {n}\n"));
    }
    Report {
        text,
        exit_code,
        needs_live,
    }
}

/// Render a parse error of the top-level script.
pub fn render_parse(err: &ParseError, source: &str, sources: &Sources) -> Report {
    let e: EvalAltResult = EvalAltResult::ErrorParsing(err.err_type().clone(), err.position());
    render(&e, source, sources)
}

pub(crate) fn describe(e: &EvalAltResult) -> (String, Vec<String>, i32) {
    match e {
        EvalAltResult::ErrorRuntime(value, _) => match value.clone().try_cast::<Failure>() {
            Some(f) => {
                let code = f.exit_code();
                let head = Failure {
                    problems: Vec::new(),
                    ..f.clone()
                }
                .to_string();
                (head, f.problems, code)
            }
            None => (crate::api::display(value), Vec::new(), 1),
        },
        EvalAltResult::ErrorParsing(kind, _) => (kind.to_string(), Vec::new(), 2),
        EvalAltResult::ErrorTerminated(token, _)
            if token.clone().into_string().ok().as_deref() != Some(crate::engine::INTERRUPTED)
                && token.is_string() =>
        {
            // an engine limit that stops the script (the memory limit)
            (token.to_string(), Vec::new(), 1)
        }
        EvalAltResult::ErrorTerminated(..) => (
            "interrupted".to_string(),
            Vec::new(),
            crate::process::interrupted_exit_code(),
        ),
        EvalAltResult::ErrorSystem(msg, _) => (msg.clone(), Vec::new(), 2),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split('(').next().unwrap_or(sig).trim();
            let hint = crate::check::suggest(name, &crate::check::known_functions())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            (format!("unknown function {sig}{hint}"), Vec::new(), 1)
        }
        // A value closures share is borrowed while something else wants it. With one engine
        // thread, that is a `parallel` branch calling a method on a captured variable: the
        // method keeps it while its branch waits, and the next branch to use it finds it taken.
        EvalAltResult::ErrorDataRace(..) => (
            "a value the closures share is in use elsewhere (Rhai's \"data race\"): in a `parallel` \
             group, a method called on a variable the branches capture (`site.agent_install()`) \
             keeps it while its branch waits, so another branch cannot use it; in a branch, pass \
             it to a function instead (`f(site)` for `site.f()`), which takes a copy"
                .to_string(),
            Vec::new(),
            1,
        ),
        other => (without_position(&other.to_string()), Vec::new(), 1),
    }
}

/// Rust type names in Rhai's messages (`&str | ImmutableString | String`, `i64`,
/// `rhai::Map`, `clearml_script::secret::Secret`) as a script writer knows them (`string`,
/// `int`, `map`, `Secret`).
pub fn rhai_type_names(message: &str) -> String {
    use std::sync::OnceLock;
    static PATHS: OnceLock<regex::Regex> = OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        regex::Regex::new(r"\b(?:[a-z_][a-z0-9_]*::)+([A-Za-z_][A-Za-z0-9_]*)").expect("regex")
    });
    static WORDS: OnceLock<regex::Regex> = OnceLock::new();
    let words = WORDS.get_or_init(|| {
        regex::Regex::new(
            r"&str \| ImmutableString \| String|&mut |\b(ImmutableString|String|i64|i32|u64|f64|f32|Array|Map|Blob|FnPtr|INT|FLOAT)\b|&str\b",
        )
        .expect("regex")
    });
    let message = paths.replace_all(message, "$1");
    words
        .replace_all(&message, |c: &regex::Captures| {
            match c
                .get(1)
                .map_or(c.get(0).map_or("", |m| m.as_str()), |m| m.as_str())
            {
                "&mut " => "",
                "i64" | "i32" | "u64" | "INT" => "int",
                "f64" | "f32" | "FLOAT" => "float",
                "Array" => "array",
                "Map" => "map",
                "Blob" => "blob",
                "FnPtr" => "Fn",
                _ => "string",
            }
            .to_string()
        })
        .into_owned()
}

fn place(src: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{src}:{l}:{c}"),
        (Some(l), None) => format!("{src}:{l}"),
        _ => src.to_string(),
    }
}

/// ` --> file:line:col`, the line, and a caret under the column.
pub fn snippet(src: &str, pos: Position, sources: &Sources) -> String {
    let Some(line_no) = pos.line() else {
        return format!(" --> {src}\n");
    };
    let col = pos.position().unwrap_or(1);
    let mut out = format!(" --> {src}:{line_no}:{col}\n");
    if let Some(text) = sources.get(src)
        && let Some(line) = text.lines().nth(line_no - 1)
    {
        let gutter = " ".repeat(line_no.to_string().len());
        let pad: String = line
            .chars()
            .take(col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!(
            "{gutter} |\n{line_no} | {line}\n{gutter} | {pad}^\n"
        ));
    }
    out
}

/// Rhai's messages end in ` (line L, position C)`; the report shows the place itself.
fn without_position(msg: &str) -> String {
    match msg.rfind(" (line ") {
        Some(i) if msg.ends_with(')') => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_type_names_become_rhai_names() {
        assert_eq!(
            rhai_type_names(
                "unknown function f (&str | ImmutableString | String, i64, &mut rhai::Map, clearml_script::secret::Secret)"
            ),
            "unknown function f (string, int, map, Secret)"
        );
        assert_eq!(
            rhai_type_names("Data type incorrect: f64 (expecting Array)"),
            "Data type incorrect: float (expecting array)"
        );
    }
}
