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
        assert!(
            !f["example"].as_str().unwrap().is_empty(),
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
        if name.chars().next().unwrap().is_alphabetic() {
            assert!(
                text.contains(&format!("fn {name}(")),
                "no definition of {name}"
            );
        }
    }
}
