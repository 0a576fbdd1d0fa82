//! The REPL, driven through a pseudo-terminal as a person would, and through piped stdin.

use std::process::Command;

use crate::common::{BIN, Test};

fn spawn(home: &std::path::Path, args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = Command::new(BIN);
    cmd.arg("repl")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("KUBECONFIG")
        .env("TERM", "xterm");
    rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn the REPL in a pty")
}

/// The line editor switches bracketed paste on when it starts reading a line: the one sure sign
/// that the REPL waits for input again (the prompt itself is redrawn on every key).
const READY: &str = "\u{1b}[?2004h";

/// Type a line and Enter, and answer with what the REPL printed before it was ready for the next
/// input, with terminal escape sequences removed. Waiting matters: the line editor drops what
/// was typed ahead of it.
fn enter(p: &mut rexpect::session::PtySession, line: &str) -> String {
    p.send_line(line).unwrap();
    plain(&p.exp_string(READY).unwrap())
}

/// Type without Enter, and give the editor a moment (completion, continuation lines).
fn type_text(p: &mut rexpect::session::PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() || d == '~' {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[test]
fn multi_line_help_completion_errors_and_exit() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &["--dry-run", "--context", "kind-lab"]);
    p.exp_string("clearml [dry-run kind-lab]> ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));

    // multi-line input from incomplete syntax, no backslash needed
    type_text(&mut p, "let v = #{ a: 1,\r");
    enter(&mut p, "b: 2 };");
    let out = enter(&mut p, "v.b");
    assert!(out.ends_with("\n2\n"), "{out:?}");

    // :help from the same documentation as `clearml-script docs`
    let out = enter(&mut p, ":help merge");
    assert!(out.contains("Deep merge: maps merge key by key"), "{out:?}");

    // Tab completes a built-in
    type_text(&mut p, "let y = parse_ya\t");
    enter(&mut p, "(\"k: 41\").k + 1;");
    let out = enter(&mut p, "y");
    assert!(out.ends_with("\n42\n"), "{out:?}");

    // an error prints the caret diagnostic and the session goes on
    let out = enter(&mut p, "let broken = ;");
    assert!(out.contains("error: "), "{out:?}");
    assert!(out.contains(" --> <input>:1:"), "{out:?}");
    assert!(out.contains("  |              ^\n"), "{out:?}");
    let out = enter(&mut p, "v.a + 100");
    assert!(out.ends_with("\n101\n"), "{out:?}");

    // Ctrl-C cancels the current input
    type_text(&mut p, "let partial = ");
    p.send_control('c').unwrap();
    p.exp_string(READY).unwrap();
    let out = enter(&mut p, "7 * 6");
    assert!(out.ends_with("\n42\n"), "{out:?}");

    // Ctrl-C stops a running step, and the session goes on
    p.send_line("let n = 0; loop { n += 1; }").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    p.send_control('c').unwrap();
    let out = plain(&p.exp_string(READY).unwrap());
    assert!(out.contains("error: interrupted"), "{out:?}");
    let out = enter(&mut p, "1 + 1");
    assert!(out.ends_with("\n2\n"), "{out:?}");

    // Ctrl-D leaves
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    // history was kept in the XDG state directory
    let path = home.path().join(".local/state/clearml-script/history");
    let history = std::fs::read_to_string(&path).unwrap();
    assert!(history.contains("v.a + 100"), "{history}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the history is private");
}

#[test]
fn completion_of_commands_modules_and_variables() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &["--live"]);
    p.exp_string("clearml [live]> ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    enter(&mut p, "let my_long_variable = 5;");
    type_text(&mut p, "my_long_v\t");
    let out = enter(&mut p, " * 2");
    assert!(out.ends_with("\n10\n"), "{out:?}");
    type_text(&mut p, "import \"clearml/val\t");
    enter(&mut p, "\" as values;");
    let out = enter(&mut p, "values::generation(#{})");
    assert!(out.ends_with("\nrepo\n"), "{out:?}");
    type_text(&mut p, ":pl\t");
    let out = enter(&mut p, "");
    assert!(out.contains("Done: 0 steps"), "{out:?}");
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn piped_stdin_runs_statements() {
    let out = Test::new()
        .arg("repl")
        .stdin("print(merge(#{a: 1}, #{b: 2}))\n")
        .run();
    out.success().stdout("#{\"a\": 1, \"b\": 2}\n");
}

#[test]
fn piped_stdin_ending_inside_a_statement_reports_it() {
    // the statement left open at the end of the input is run, not dropped: its error is said
    Test::new()
        .arg("repl")
        .stdin("print(1);\nlet a = [1,\n")
        .run()
        .code(2)
        .stdout("1\n")
        .stderr_has("error: Expecting ']' to end this array literal");
}

#[test]
fn piped_session_keeps_state_and_reports_errors() {
    Test::new()
        .args(["repl", "--dry-run", "--set", "dockerhub_token=TOKEN-VALUE-123"])
        .stdin(
            "let v = #{ a: 1,\nb: 2 };\nv.b\nfn sq(x) { x * x }\nimport \"clearml/values\" as values;\nnope(1)\nsq(v.b)\nvalues::generation(site)\nsite.dockerhub_token\n:scope\n",
        )
        .run()
        .code(1)
        .stdout(
            "2\n4\nrepo\n<redacted>\nlet v = #{\"a\": 1, \"b\": 2}\nconst site = #{\"dockerhub_token\": <redacted>}\n",
        )
        .stderr_has("error: unknown function nope")
        .nowhere("TOKEN-VALUE-123");
}

#[test]
fn help_for_an_unknown_name_suggests() {
    Test::new()
        .arg("repl")
        .stdin(":help mrge\n:nope\n")
        .run()
        .code(2)
        .stderr_has("error: there is no built-in `mrge`; did you mean `merge`?")
        .stderr_has("error: unknown command :nope");
}

#[test]
fn a_dry_run_by_default_strings_continue_and_module_members_complete() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &[]);
    p.exp_string("clearml [dry-run]> ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));

    // a `"` string left open continues on the next line, and holds the line break
    type_text(&mut p, "let s = \"ab\r");
    type_text(&mut p, "  cd\";\r");
    type_text(&mut p, "s.len() * 100\r");
    p.exp_string("\r\n700\r\n").unwrap();

    // Tab completes a module member, and lists the candidates when several fit
    type_text(&mut p, "import \"clearml/values\" as values;\r");
    type_text(&mut p, "values::genera\t");
    type_text(&mut p, "(#{}) + \"-done\"\r");
    p.exp_string("\r\nrepo-done\r\n").unwrap();
    // as in a shell: the first Tab rings the bell, the second lists
    type_text(&mut p, "values::\t\t");
    // the listing is laid out in columns: read it up to the prompt drawn again below it
    let mut listed = plain(&p.exp_string("values::check").unwrap());
    listed += &plain(&p.exp_string("[dry-run]> values::").unwrap());
    for f in ["values::generation", "values::hosts", "values::urls"] {
        assert!(listed.contains(f), "{f} not listed: {listed:?}");
    }
    p.send_control('c').unwrap();
    p.exp_string(READY).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn load_errors_name_the_file_and_types_are_rhai_names() {
    Test::new()
        .file("bad.rhai", "let a = 1;\nlet b = a +;\n")
        .arg("repl")
        .stdin(":load bad.rhai\n\"a\" - 1\n")
        .run()
        .code(1)
        .stderr_has(" --> bad.rhai:2:")
        .stderr_has("unknown function - (string, int)")
        .nowhere("ImmutableString");
}

/// Ctrl-C stops a scripted session (`repl < steps.rhai`): the statements after the one it
/// stopped must not run (with --live they would change the cluster), and the exit code says so.
#[test]
fn ctrl_c_stops_a_piped_session_not_only_its_statement() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("steps.rhai");
    std::fs::write(
        &script,
        "print(\"started\");\nlet i = 0; loop { i += 1; }\nprint(\"after the Ctrl-C\");\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("repl")
        .env("HOME", dir.path())
        .env_remove("XDG_STATE_HOME")
        .stdin(std::fs::File::open(&script).unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until the loop runs: "started" is printed just before it
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("started\n") {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "ended early");
        seen.push(byte[0]);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!rest.contains("after the Ctrl-C"), "{rest:?}");
    assert_eq!(status.code(), Some(130));
}

/// A `"` string inside a backtick string's `${…}` is code: a backtick in it neither keeps the
/// input open nor garbles the statements after it (`run` takes the same file).
#[test]
fn a_string_in_an_interpolation_does_not_keep_the_input_open() {
    Test::new()
        .file("bt.rhai", "let s = `${\"`\"}`;\nprint(s);\n")
        .arg("repl")
        .stdin(":load bt.rhai\nlet t = `${\"`\"}`;\nprint(s + t + \"!\");\n")
        .run()
        .success()
        .stdout("`\n``!\n");
}
