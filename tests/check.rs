//! `clearml-script check`.

use crate::common::{Test, repo};

#[test]
fn standard_playbooks_pass() {
    let scripts: Vec<String> = std::fs::read_dir(repo().join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".rhai"))
        .collect();
    assert!(!scripts.is_empty());
    Test::new()
        .arg("check")
        .args(&scripts)
        .run()
        .success()
        .stderr_has("no problems");
}

#[test]
fn a_misspelt_builtin_gets_the_closest_name() {
    Test::new()
        .file(
            "bad.rhai",
            "instal_chart(\"clearml\", \"repo/chart\", #{ namespace: \"clearml\" });\n",
        )
        .args(["check", "bad.rhai"])
        .run()
        .code(2)
        .stderr_has("error: unknown function `instal_chart`\n --> bad.rhai:1:1\n")
        .stderr_has("= help: did you mean `install_chart`?");
}

#[test]
fn unknown_function_names_line_and_closest_name() {
    Test::new()
        .file("bad.rhai", "let x = 1;\n\nlet y = requir(site, \"a\");\nfn f() { valdate(1, 2) }\n")
        .args(["check", "bad.rhai"])
        .run()
        .code(2)
        .stderr(
            "error: unknown function `requir`\n --> bad.rhai:3:9\n  |\n3 | let y = requir(site, \"a\");\n  |         ^\n  = help: did you mean `require`?\n\
             error: unknown function `valdate`\n --> bad.rhai:4:10\n  |\n4 | fn f() { valdate(1, 2) }\n  |          ^\n  = help: did you mean `validate`?\n\
             checked 1 script: 2 problem(s)\n",
        );
}

#[test]
fn script_functions_imports_and_methods_are_known() {
    Test::new()
        .file("lib.rhai", "fn helper(x) { x + 1 }\n")
        .file(
            "ok.rhai",
            "import \"lib\" as lib;\nimport \"clearml/values\" as values;\nfn mine(a) { a }\nlet f = |x| x * 2;\nlet l = [1, 2].map(|x| x + 1);\nprint(mine(lib::helper(1)) + l.len());\nprint(values::generation(site));\nprint(f.call(2));\n",
        )
        .args(["check", "ok.rhai"])
        .run()
        .success();
}

/// A stdlib module's methods on the site (`fn map.values_hosts()`), which an import puts in the
/// script's own namespace (clearml/agent's import of clearml/values too), are known when called
/// as methods; called as functions, or misspelt, they are reported, as the run would fail.
#[test]
fn an_imported_modules_methods_on_the_site_are_known() {
    for import in ["clearml/values\" as values", "clearml/agent\" as agent"] {
        Test::new()
            .file(
                "ok.rhai",
                &format!("import \"{import};\nlet h = site.values_hosts();\nprint(h.api);\n"),
            )
            .args(["check", "ok.rhai"])
            .run()
            .success();
    }
    Test::new()
        .file(
            "bad.rhai",
            "import \"clearml/values\" as values;\nlet h = site.values_hostz();\nlet g = values_generation(site);\nlet u = values::values_urls(site);\n",
        )
        .args(["check", "bad.rhai"])
        .run()
        .code(2)
        .stderr_has("error: unknown function `values_hostz`")
        .stderr_has("did you mean `values_hosts`?")
        .stderr_has("error: unknown function `values_generation`")
        .stderr_has("error: unknown function `values::values_urls`");
}

#[test]
fn unknown_module_function_is_reported() {
    Test::new()
        .file(
            "bad.rhai",
            "import \"clearml/values\" as values;\nvalues::hostz(site);\n",
        )
        .args(["check", "bad.rhai"])
        .run()
        .code(2)
        .stderr_has("error: unknown function `values::hostz`")
        .stderr_has("did you mean `values::hosts`?");
}

#[test]
fn nothing_runs_during_check() {
    Test::new()
        .file("side.rhai", "print(\"ran\"); fail(\"must not run\");\n")
        .args(["check", "side.rhai"])
        .run()
        .success()
        .stdout("");
}

#[test]
fn parse_errors_are_reported_with_exit_2() {
    Test::new()
        .file("bad.rhai", "let x = ;\n")
        .args(["check", "bad.rhai"])
        .run()
        .code(2)
        .stderr_has(" --> bad.rhai:1:9\n");
}
