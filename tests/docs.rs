//! `clearml-script docs` and `defs`.

use crate::common::Test;

#[test]
fn every_builtin_is_documented_with_an_example() {
    let out = Test::new().args(["docs", "--format", "json"]).run();
    out.success();
    let doc = out.json();
    let fns = doc["functions"].as_array().unwrap();
    for name in [
        "merge",
        "require",
        "validate",
        "secret",
        "parse_yaml",
        "env",
    ] {
        assert!(fns.iter().any(|f| f["name"] == name), "{name} missing");
    }
    for f in fns {
        assert!(
            !f["description"].as_str().unwrap().is_empty(),
            "no description: {f}"
        );
        // the stdlib's helpers are documented; examples are for the built-ins and entry points
        assert!(
            f.get("module").is_some() || !f["example"].as_str().unwrap().is_empty(),
            "no example: {f}"
        );
    }
}

#[test]
fn one_function_in_markdown() {
    Test::new()
        .args(["docs", "require"])
        .run()
        .success()
        .stdout_has("## `require(map: map, path: string) -> any`")
        .stdout_has("```rhai\nlet domain = require(site, \"base_domain\");\n```");
    Test::new()
        .args(["docs", "requir"])
        .run()
        .code(2)
        .stderr("error: there is no built-in `requir`; did you mean `require`?\n");
}

#[test]
fn defs_are_written() {
    let t = Test::new().args(["defs", "--out", "defs"]);
    t.run().success();
    let text: String = std::fs::read_dir(t.dir().join("defs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(text.contains("fn validate("), "{text}");
    let scope = std::fs::read_to_string(t.dir().join("defs/__scope__.d.rhai")).unwrap();
    assert!(scope.contains("const site: map;"), "{scope}");
    assert!(
        text.contains("fn install_chart(release: string, chart: string, opts: map)"),
        "{text}"
    );
    // every documented built-in has its definition
    let docs = Test::new().args(["docs", "--format", "json"]).run().json();
    for f in docs["functions"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        if name.chars().next().unwrap().is_alphabetic() && !name.contains("::") {
            assert!(
                text.contains(&format!("fn {name}(")),
                "no definition of {name}"
            );
        }
    }
}

/// Every example in the docs, built-ins and stdlib modules alike, compiles and calls only
/// functions that exist (`clearml-script check`), with the stdlib modules imported as the docs
/// name them.
#[test]
fn every_docs_example_compiles() {
    let out = Test::new().args(["docs", "--format", "json"]).run();
    out.success();
    let doc = out.json();
    let fns = doc["functions"].as_array().unwrap();
    let modules = fns.iter().filter(|f| f.get("module").is_some()).count();
    assert!(
        modules >= 20,
        "the stdlib modules are documented: {modules}"
    );
    for name in [
        "values::check",
        "cp::install",
        "agent::install",
        "gateway::install",
        "apps::install",
    ] {
        let f = fns
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            !f["example"].as_str().unwrap().is_empty(),
            "{name} has no example"
        );
    }
    let header = "import \"clearml/values\" as values;\nimport \"clearml/control_plane\" as cp;\n\
                  import \"clearml/agent\" as agent;\nimport \"clearml/gateway\" as gateway;\n\
                  import \"clearml/apps\" as apps;\n";
    let mut t = Test::new().arg("check");
    let mut n = 0;
    for f in fns {
        let example = f["example"].as_str().unwrap();
        if example.is_empty() {
            continue;
        }
        n += 1;
        let file = format!("example-{n}.rhai");
        // each example alone, as a user would paste it into a playbook
        t = t.file(&file, &format!("{header}{example}\n")).arg(&file);
    }
    assert!(n > 40, "{n} examples");
    t.run()
        .success()
        .stderr(&format!("checked {n} scripts: no problems\n"));
}

/// The Markdown reference nests its headings: a group (`# Built-ins`, `# Module …`), then a
/// function (`##`), then its sections (`###`); never a level skipped.
#[test]
fn markdown_headings_nest() {
    let out = Test::new().arg("docs").run();
    out.success();
    let mut last = 0;
    let mut in_code = false;
    let mut groups = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        assert!(level <= last + 1, "{line:?} after a level-{last} heading");
        if level == 1 {
            groups.push(line.to_string());
        }
        last = level;
    }
    assert_eq!(groups[0], "# Built-ins");
    assert!(
        groups.contains(&"# Module `clearml/control_plane`".to_string()),
        "{groups:?}"
    );
}
