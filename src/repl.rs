//! `clearml-script repl`: every built-in and stdlib module at hand, `site` loaded as for a run,
//! variables, functions and imports kept across inputs, multi-line input recognised from
//! incomplete syntax, Tab completion, history, and `:` commands. With stdin not a terminal it
//! reads statements from stdin with the same semantics.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{AST, Dynamic, Engine, Module, OptimizationLevel, Scope, Stmt};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::action::{self, Mode};
use crate::cli::{KubeArgs, SiteArgs};
use crate::diagnostic::{self, Report};
use crate::engine::{self, Sources};
use crate::runtime::Runtime;
use crate::site::Site;
use crate::{docs, embedded, ui};

const INPUT: &str = "<input>";

const COMMANDS: &[(&str, &str)] = &[
    (
        ":help",
        "[name]  the documentation of a built-in, or this list",
    ),
    (":load", "FILE    run a script file in this session"),
    (":plan", "        the actions recorded so far"),
    (
        ":cluster",
        "     what the sandbox cluster holds (with --sandbox)",
    ),
    (":scope", "       the variables and their values"),
    (":quit", "        leave (Ctrl-D does the same)"),
];

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "break",
    "continue", "return", "throw", "try", "catch", "import", "export", "as", "switch", "true",
    "false", "this", "private",
];

pub struct Options {
    pub site: SiteArgs,
    pub dry_run: bool,
    pub sandbox: bool,
    pub sandbox_state: Option<PathBuf>,
    pub kube: KubeArgs,
}

/// One REPL session: the engine, the scope that persists, and what earlier inputs defined.
pub struct Session {
    engine: Engine,
    scope: Scope<'static>,
    /// Functions defined by earlier inputs.
    functions: AST,
    /// Import statements of earlier inputs, run again before each input (modules are cached).
    imports: AST,
    rt: Rc<Runtime>,
    sources: Sources,
    interrupted: Arc<AtomicBool>,
    docs: Vec<docs::FnDoc>,
    /// Names for completion, refreshed after each input.
    names: Rc<RefCell<Vec<String>>>,
    /// The simulators, while the session works against them.
    sandbox: Option<crate::sandbox::Sandbox>,
    /// Whether Ctrl-C (or SIGTERM) came while the last input ran.
    stopped: bool,
}

impl Session {
    pub fn new(opts: &Options, interrupted: Arc<AtomicBool>) -> Result<Session, String> {
        let site = Site::load(&opts.site.values, &opts.site.sets())?;
        // the REPL runs any code: an unknown key is a warning here
        crate::site_keys::refuse_unknown(&site, Some(""));
        let (executor, sandbox) = crate::executors::executor_for(
            opts.dry_run,
            opts.sandbox,
            opts.sandbox_state.as_deref(),
            &opts.kube,
            &site,
            false,
            false,
            &[],
            None,
        )?;
        let base = PathBuf::from(".");
        let rt = Rc::new(Runtime::new(
            executor,
            site,
            base.clone(),
            interrupted.clone(),
        ));
        rt.install();
        let sources = Sources::default();
        let mut engine = engine::build(&base, sources.clone(), interrupted.clone());
        // Each input is compiled alone, so names imported by an earlier input are resolved at
        // run time; undefined variables are reported when the input runs.
        engine.set_strict_variables(false);
        // Constants in the scope (`site`) must not be folded into the code: folding formats
        // host types such as secrets without their `to_string`.
        engine.set_optimization_level(OptimizationLevel::None);
        let scope = crate::runtime::site_scope(&rt.site);
        let docs = docs::collect_all(&engine);
        let session = Session {
            engine,
            scope,
            functions: AST::empty(),
            imports: AST::empty(),
            rt,
            sources,
            interrupted,
            docs,
            names: Rc::new(RefCell::new(Vec::new())),
            sandbox,
            stopped: false,
        };
        session.refresh_names();
        Ok(session)
    }

    pub fn mode(&self) -> Mode {
        self.rt.mode()
    }

    /// Evaluate one input: `Ok(Some(text))` for a value to show, `Ok(None)` for nothing.
    pub fn eval(&mut self, text: &str) -> Result<Option<String>, Report> {
        self.eval_from(text, INPUT)
    }

    /// Evaluate a script whose errors name `source` (`<input>`, or a `:load`ed file).
    fn eval_from(&mut self, text: &str, source: &str) -> Result<Option<String>, Report> {
        let text = &continue_strings(text);
        self.sources.insert(source, text);
        let mut ast = self
            .engine
            .compile_with_scope(&self.scope, text)
            .map_err(|e| diagnostic::render_parse(&e, source, &self.sources))?;
        ast.set_source(source);
        let combined = self.imports.merge(&self.functions).merge(&ast);
        self.interrupted.store(false, Ordering::SeqCst);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &combined);
        self.stopped = self.interrupted.swap(false, Ordering::SeqCst);
        // Functions and imports count once the input compiled, whether or not it then failed.
        self.functions += ast.clone_functions_only();
        let imports: Vec<Stmt> = ast
            .statements()
            .iter()
            .filter(|s| matches!(s, Stmt::Import(..)))
            .cloned()
            .collect();
        if !imports.is_empty() {
            self.imports += AST::new(imports, Module::new());
        }
        self.refresh_names();
        match result {
            Ok(v) if v.is_unit() => Ok(None),
            Ok(v) => Ok(Some(crate::api::display(&v))),
            Err(e) => Err(diagnostic::render(&e, source, &self.sources)),
        }
    }

    /// Run a `:` command; `Ok(false)` means quit.
    pub fn command(&mut self, line: &str) -> Result<bool, Report> {
        let (cmd, arg) = line
            .split_once(char::is_whitespace)
            .map(|(c, a)| (c, a.trim()))
            .unwrap_or((line, ""));
        let fail = |text: String| Report {
            needs_live: false,
            text: format!("error: {text}\n"),
            exit_code: 2,
        };
        match cmd {
            ":quit" | ":q" | ":exit" => return Ok(false),
            ":help" | ":h" if arg.is_empty() => {
                let mut text = String::from("Commands:\n");
                for (c, d) in COMMANDS {
                    text.push_str(&format!("  {c} {d}\n"));
                }
                text.push_str("Every built-in is documented: `:help NAME`. The stdlib modules:");
                for (p, _) in embedded::files() {
                    if let Some(m) = p.strip_prefix("stdlib/") {
                        text.push_str(&format!(" \"{}\"", m.trim_end_matches(".rhai")));
                    }
                }
                ui::out(&format!("{text}\n"));
            }
            ":help" | ":h" => match docs::lookup(&self.docs, arg) {
                Ok(found) => {
                    let owned: Vec<docs::FnDoc> = found.into_iter().cloned().collect();
                    ui::out(&docs::render_md(&owned));
                }
                Err(e) => return Err(fail(e)),
            },
            ":cluster" => match &self.sandbox {
                Some(sb) => ui::out(&sb.summary()),
                None => {
                    return Err(fail(
                        ":cluster needs a session started with --sandbox".into(),
                    ));
                }
            },
            ":plan" => ui::out(&action::render_text(
                &self.rt.actions(),
                &self.rt.places(),
                self.mode() == Mode::DryRun,
            )),
            ":scope" => {
                let mut text = String::new();
                for (name, constant, value) in self.scope.iter_raw() {
                    let kind = if constant { "const" } else { "let" };
                    text.push_str(&format!(
                        "{kind} {name} = {}\n",
                        crate::api::display(&value.clone().flatten())
                    ));
                }
                ui::out(&text);
            }
            ":load" if !arg.is_empty() => {
                let text = crate::fsutil::read_file_capped(
                    std::path::Path::new(arg),
                    crate::fsutil::PLAYBOOK_LIMIT,
                )
                .map_err(|e| fail(format!("cannot read {arg}: {e}")))?;
                if let Some(v) = self.eval_from(&text, arg)? {
                    ui::out(&format!("{v}\n"));
                }
            }
            ":load" => return Err(fail(":load needs a file: `:load FILE`".into())),
            other => {
                let names: Vec<String> = COMMANDS.iter().map(|(c, _)| c.to_string()).collect();
                let hint = crate::check::suggest(other, &names)
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default();
                return Err(fail(format!(
                    "unknown command {other}{hint}; :help lists them"
                )));
            }
        }
        Ok(true)
    }

    fn refresh_names(&self) {
        let mut names: Vec<String> = self.docs.iter().map(|d| d.name.clone()).collect();
        names.extend(crate::check::known_functions_of(&self.engine));
        names.extend(self.scope.iter_raw().map(|(n, _, _)| n.to_string()));
        names.extend(self.functions.iter_functions().map(|f| f.name.to_string()));
        for s in self.imports.statements() {
            if let Stmt::Import(x, _) = s {
                let alias = x.1.name.to_string();
                if let rhai::Expr::StringConstant(path, _) = &x.0
                    && let Ok(module) = self.engine.module_resolver().resolve(
                        &self.engine,
                        None,
                        path,
                        rhai::Position::NONE,
                    )
                {
                    for sig in module.gen_fn_signatures_with_mapper(Cow::Borrowed) {
                        let name = crate::check::signature_name(&sig);
                        names.push(format!("{alias}::{name}"));
                    }
                    names.extend(crate::check::global_methods_of(&module));
                }
                names.push(alias);
            }
        }
        names.extend(KEYWORDS.iter().map(|k| k.to_string()));
        names.retain(|n| {
            n.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && !n.contains(['(', ' '])
        });
        names.sort();
        names.dedup();
        *self.names.borrow_mut() = names;
    }
}

/// Is `text` a script whose end is missing (an open bracket, string or statement), so that
/// Enter should continue it on the next line rather than run it?
pub fn is_incomplete(text: &str) -> bool {
    if text.trim().is_empty() {
        return false;
    }
    if scan_strings(text).1 {
        return true;
    }
    let engine = Engine::new_raw();
    let Err(e) = engine.compile(text) else {
        return false;
    };
    if matches!(*e.0, rhai::ParseErrorType::UnexpectedEOF) {
        return true;
    }
    // The parser reports a missing end at the end of the input.
    let lines: Vec<&str> = text.lines().collect();
    let last_line = lines.len().max(1);
    let last_len = lines.last().map_or(0, |l| l.chars().count());
    let open_string = matches!(
        &*e.0,
        rhai::ParseErrorType::BadInput(rhai::LexError::UnterminatedString)
    );
    match (e.1.line(), e.1.position()) {
        (None, _) => true,
        (Some(l), _) if l > last_line => true,
        (Some(l), Some(c)) if l == last_line && c > last_len => true,
        _ => open_string && text.matches('`').count() % 2 == 1,
    }
}

/// Scan for `"` strings: the text with each line break inside one written as the escape `\n`
/// followed by Rhai's line continuation (so the string holds the line break and line numbers
/// stay right) and the next line's indentation as escapes (the continuation would drop it), and
/// whether the text ends inside a `"` string.
fn scan_strings(text: &str) -> (String, bool) {
    #[derive(PartialEq)]
    enum St {
        Code,
        Quote,
        Back,
        Char,
        Line,
        Block(u32),
    }
    let mut out = String::with_capacity(text.len());
    let mut st = St::Code;
    // the open `${` interpolations of backtick strings, each with the `{` opened inside it
    let mut interpolations: Vec<u32> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match st {
            St::Code => match c {
                '"' => st = St::Quote,
                '`' => st = St::Back,
                '\'' => st = St::Char,
                '{' if !interpolations.is_empty() => {
                    *interpolations.last_mut().expect("one is open") += 1;
                }
                '}' if !interpolations.is_empty() => {
                    let open = interpolations.last_mut().expect("one is open");
                    if *open == 0 {
                        // the interpolation ends: back in its backtick string
                        interpolations.pop();
                        st = St::Back;
                    } else {
                        *open -= 1;
                    }
                }
                '/' if chars.peek() == Some(&'/') => st = St::Line,
                '/' if chars.peek() == Some(&'*') => {
                    out.push(c);
                    out.extend(chars.next());
                    st = St::Block(1);
                    continue;
                }
                _ => {}
            },
            St::Quote | St::Char => match c {
                '\\' => {
                    out.push(c);
                    out.extend(chars.next());
                    continue;
                }
                '\n' if st == St::Quote => {
                    out.push_str("\\n\\\n");
                    // the continuation skips the next line's indentation: keep it as escapes
                    while let Some(w) = chars.next_if(|w| *w == ' ' || *w == '\t') {
                        out.push_str(if w == ' ' { "\\x20" } else { "\\t" });
                    }
                    continue;
                }
                '"' if st == St::Quote => st = St::Code,
                '\'' if st == St::Char => st = St::Code,
                '\n' => st = St::Code,
                _ => {}
            },
            St::Back => {
                if c == '`' {
                    st = St::Code;
                } else if c == '$' && chars.peek() == Some(&'{') {
                    // `${ … }` is code again until its `}`, strings and all
                    out.push(c);
                    out.extend(chars.next());
                    interpolations.push(0);
                    st = St::Code;
                    continue;
                }
            }
            St::Line => {
                if c == '\n' {
                    st = St::Code;
                }
            }
            St::Block(depth) => {
                if c == '*' && chars.peek() == Some(&'/') {
                    out.push(c);
                    out.extend(chars.next());
                    st = if depth == 1 {
                        St::Code
                    } else {
                        St::Block(depth - 1)
                    };
                    continue;
                }
                if c == '/' && chars.peek() == Some(&'*') {
                    out.push(c);
                    out.extend(chars.next());
                    st = St::Block(depth + 1);
                    continue;
                }
            }
        }
        out.push(c);
    }
    (out, st == St::Quote)
}

/// The input with line breaks inside `"` strings kept in the strings (see [`scan_strings`]).
fn continue_strings(text: &str) -> String {
    scan_strings(text).0
}

/// The prompt: the mode, and the kube context when one is known.
fn prompt(mode: Mode, context: Option<&str>) -> String {
    match context {
        Some(c) => format!("clearml [{} {c}]> ", mode.as_str()),
        None => format!("clearml [{}]> ", mode.as_str()),
    }
}

/// The kube context: `--context`, else the kubeconfig's `current-context`.
fn kube_context(kube: &KubeArgs) -> Option<String> {
    if let Some(c) = &kube.context {
        return Some(c.clone());
    }
    let path = kube
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let v = crate::site::parse_yaml(&text).ok()?;
    match v.at_path("current-context") {
        Some(crate::value::Value::Str(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn history_path() -> Option<PathBuf> {
    Some(crate::support_bundle::state_dir()?.join("history"))
}

/// Run the REPL; the exit code is 0, or the code of the last error when stdin is not a
/// terminal (so a scripted session reports failure).
pub fn run(opts: &Options, interrupted: Arc<AtomicBool>) -> i32 {
    let mut session = match Session::new(opts, interrupted) {
        Ok(s) => s,
        Err(e) => {
            ui::err(&format!("error: {e}\n"));
            return 2;
        }
    };
    if std::io::stdin().is_terminal() {
        interactive(&mut session, opts)
    } else {
        piped(&mut session)
    }
}

fn show(result: Result<Option<String>, Report>) -> Option<i32> {
    match result {
        Ok(Some(v)) => {
            ui::out(&format!("{v}\n"));
            None
        }
        Ok(None) => None,
        Err(r) => {
            ui::err(&r.text);
            Some(r.exit_code)
        }
    }
}

fn piped(session: &mut Session) -> i32 {
    let mut code = 0;
    let mut buffer = String::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if buffer.is_empty() && line.trim_start().starts_with(':') {
            match session.command(line.trim()) {
                Ok(true) => continue,
                Ok(false) => return code,
                Err(r) => {
                    ui::err(&r.text);
                    code = r.exit_code;
                    continue;
                }
            }
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if is_incomplete(&buffer) {
            continue;
        }
        if let Some(c) = show(session.eval(&buffer)) {
            code = c;
        }
        buffer.clear();
        // Ctrl-C stops a scripted session, not only its current statement: the statements after
        // it (live steps, with --live) must not run
        if session.stopped {
            return crate::process::interrupted_exit_code();
        }
    }
    if !buffer.trim().is_empty()
        && let Some(c) = show(session.eval(&buffer))
    {
        code = c;
    }
    code
}

fn interactive(session: &mut Session, opts: &Options) -> i32 {
    let helper = ReplHelper {
        names: session.names.clone(),
    };
    // ambiguous completions are listed, as in a shell
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<ReplHelper, rustyline::history::DefaultHistory> =
        match Editor::with_config(config) {
            Ok(e) => e,
            Err(e) => {
                ui::err(&format!("error: cannot start the line editor: {e}\n"));
                return 1;
            }
        };
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // what is typed may hold a secret: the history is for its owner only
        let _ = crate::fsutil::write_private_if_missing(h);
        let _ = editor.load_history(h);
    }
    let context = if session.mode() == Mode::Sandbox {
        Some("sandbox".to_string())
    } else {
        kube_context(&opts.kube)
    };
    let prompt = prompt(session.mode(), context.as_deref());
    ui::err("clearml-script REPL: :help for commands, Tab to complete, Ctrl-D to leave\n");
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if let Some(h) = &history {
                    let _ = editor.append_history(h);
                }
                if line.trim_start().starts_with(':') {
                    match session.command(line.trim()) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(r) => ui::err(&r.text),
                    }
                    continue;
                }
                show(session.eval(&line));
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                ui::err(&format!("error: {e}\n"));
                return 1;
            }
        }
    }
    0
}

struct ReplHelper {
    names: Rc<RefCell<Vec<String>>>,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let pair = |s: &str| Pair {
            display: s.to_string(),
            replacement: s.to_string(),
        };
        // `:` commands at the start of the line
        if before.starts_with(':') && !before.contains(char::is_whitespace) {
            let found = COMMANDS
                .iter()
                .filter(|(c, _)| c.starts_with(before))
                .map(|(c, _)| pair(c))
                .collect();
            return Ok((0, found));
        }
        // stdlib module paths inside `import "`
        if let Some(q) = before.rfind("import \"") {
            let typed = &before[q + 8..];
            if !typed.contains('"') {
                let found = embedded::files()
                    .iter()
                    .filter_map(|(p, _)| p.strip_prefix("stdlib/"))
                    .map(|p| p.trim_end_matches(".rhai"))
                    .filter(|m| m.starts_with(typed))
                    .map(pair)
                    .collect();
                return Ok((q + 8, found));
            }
        }
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == ':')
            .last()
            .map_or(pos, |(i, _)| i);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let found = self
            .names
            .borrow()
            .iter()
            .filter(|n| n.starts_with(word))
            .map(|n| pair(n))
            .collect();
        Ok((start, found))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if input.trim_start().starts_with(':') || !is_incomplete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_inputs() {
        assert!(is_incomplete("let v = #{ a: 1,"));
        assert!(is_incomplete("fn f(x) {"));
        assert!(is_incomplete("print(1 +"));
        assert!(is_incomplete("let s = `multi"));
        assert!(is_incomplete("if true {\n  print(1);\n"));
        assert!(!is_incomplete("let v = #{ a: 1, b: 2 };"));
        assert!(!is_incomplete("v.b"));
        assert!(!is_incomplete("let x = ;"));
        assert!(!is_incomplete("print(1))"));
        assert!(!is_incomplete(""));
        assert!(is_incomplete("let s = \"open"));
        assert!(is_incomplete("let s = \"a\\\"b"));
        assert!(!is_incomplete("let s = \"a\"; // \"open in a comment"));
        assert!(!is_incomplete("let c = '\"';"));
        // a string after a block comment, nested or not, is a string again
        assert!(is_incomplete("/* note */ let s = \"open"));
        assert!(is_incomplete("/* a /* b */ c */ let s = \"open"));
        // a quote in the outer comment after the inner one ended is still in the comment
        assert!(!is_incomplete("/* a /* b */ \"c */ let s = 1;"));
        assert!(!is_incomplete("/* \"in a comment */ let s = 1;"));
        // an apostrophe inside a string is text, not the start or end of a character
        assert!(!is_incomplete("let s = \"it's\";"));
        assert!(is_incomplete("let s = \"it's"));
        // a `"` string inside a backtick string's interpolation is code, backtick and all
        assert!(!is_incomplete("let s = `${\"`\"}`;"));
        assert!(!is_incomplete("let s = `a ${ #{ k: \"}`\" }.k } b`;"));
        assert!(is_incomplete("let s = `a ${ \"open"));
        assert!(is_incomplete("let s = `a ${ 1 } b"));
    }

    #[test]
    fn a_string_continued_on_the_next_line_holds_the_line_break() {
        let text = continue_strings("let s = \"ab\n  cd\";\ns");
        let engine = Engine::new_raw();
        let mut scope = Scope::new();
        let v: String = engine.eval_with_scope(&mut scope, &text).unwrap();
        assert_eq!(v, "ab\n  cd");
        // line numbers stay: the statement after the string is still on line 2
        assert_eq!(text.lines().count(), 3);
    }
}
