//! `clearml-script schema`: every example site validates against the schema it names, checked
//! by an independent validator (Python's `jsonschema`, with PyYAML reading the YAML as helm
//! does); sites with a wrong enum, a missing required key or a wrong type are refused by it.

use std::process::Command;

use crate::common::Test;

/// Validate each YAML file against a schema file with Python's jsonschema; answers one line per
/// file: `ok` or the first error. Installs jsonschema and PyYAML with pip when missing.
fn validate(dir: &std::path::Path, pairs: &[(&str, &str)]) -> Vec<String> {
    const CHECK: &str = "import json, sys, yaml, jsonschema\n\
        d = sys.argv[1]\n\
        for pair in sys.argv[2:]:\n    \
            site, schema = pair.split('=')\n    \
            s = json.load(open(d + '/' + schema))\n    \
            v = jsonschema.Draft202012Validator(s)\n    \
            errs = sorted(v.iter_errors(yaml.safe_load(open(d + '/' + site)) or {}), key=str)\n    \
            print(site, 'ok' if not errs else errs[0].message)\n";
    let has = Command::new("python3")
        .args(["-c", "import jsonschema, yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        let installed = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--user",
                "jsonschema==4.26.0",
                "PyYAML==6.0.3",
            ])
            .status()
            .expect("python3 and pip");
        assert!(
            installed.success(),
            "pip could not install jsonschema and PyYAML"
        );
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(dir)
        .args(pairs.iter().map(|(a, b)| format!("{a}={b}")))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_example_site_validates_against_the_schema_it_names() {
    let t = Test::new().args(["scripts", "export", "site"]);
    t.run().success();
    let dir = t.dir().join("site");
    let mut pairs = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let first = text.lines().next().unwrap();
            let schema = first
                .strip_prefix("# yaml-language-server: $schema=")
                .unwrap_or_else(|| panic!("{} names no schema: {first}", path.display()));
            names.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                schema.to_string(),
            ));
        }
    }
    assert_eq!(names.len(), 4, "{names:?}");
    for (n, s) in &names {
        pairs.push((n.as_str(), s.as_str()));
    }
    for line in validate(&dir, &pairs) {
        assert!(line.ends_with(" ok"), "{line}");
    }
}

#[test]
fn the_schema_refuses_what_validation_refuses() {
    let t = Test::new()
        .file("good.yaml", "base_domain: a.example.com\ndockerhub_token: {env: TOKEN}\ngeneration: oci\nextra_values: {any: {thing: 1}}\n")
        .file("bad-generation.yaml", "base_domain: a.example.com\ndockerhub_token: x\ngeneration: git\n")
        .file("bad-service.yaml", "base_domain: a.example.com\ndockerhub_token: x\nservice_type: Balancer\n")
        .file("no-domain.yaml", "dockerhub_token: x\n")
        .file("agent-no-key.yaml", "base_domain: a.example.com\ndockerhub_token: x\nagent: {enabled: true, secret: s}\n")
        .file("bad-port.yaml", "base_domain: a.example.com\ndockerhub_token: x\ngateway: {port_range: {start: 0, end: 10}}\n")
        .file("bad-sso.yaml", "base_domain: a.example.com\ndockerhub_token: x\nsso: {provider: Auth-0}\n")
        .file("misspelled.yaml", "base_domain: a.example.com\ndockerhub_token: x\nagent: {namspace: x}\nextra_values: {any: {thing: 1}}\n")
        .arg("schema");
    let out = t.run();
    out.success();
    std::fs::write(t.dir().join("schema.json"), &out.stdout).unwrap();
    let got = validate(
        t.dir(),
        &[
            ("good.yaml", "schema.json"),
            ("bad-generation.yaml", "schema.json"),
            ("bad-service.yaml", "schema.json"),
            ("no-domain.yaml", "schema.json"),
            ("agent-no-key.yaml", "schema.json"),
            ("bad-port.yaml", "schema.json"),
            ("bad-sso.yaml", "schema.json"),
            ("misspelled.yaml", "schema.json"),
        ],
    );
    assert_eq!(got[0], "good.yaml ok");
    for line in &got[1..] {
        assert!(!line.ends_with(" ok"), "{line}");
    }
    assert_eq!(
        got[3],
        "no-domain.yaml 'base_domain' is a required property"
    );
    assert_eq!(got[4], "agent-no-key.yaml 'key' is a required property");
    // a closed map (additionalProperties: false) refuses the misspelling, not extra_values
    assert_eq!(
        got[7],
        "misspelled.yaml Additional properties are not allowed ('namspace' was unexpected)"
    );
}

#[test]
fn the_schema_describes_keys_with_defaults() {
    let out = Test::new().arg("schema").run();
    out.success();
    let s = out.json();
    let p = &s["properties"];
    assert_eq!(p["service_type"]["default"], "ClusterIP");
    assert!(
        p["service_type"]["description"]
            .as_str()
            .unwrap()
            .contains("Service type of the api, file and web servers"),
        "{}",
        p["service_type"]
    );
    // a section is described too, from the comment above its key
    assert!(
        p["agent"]["description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("The agent (agentk8sglue) and its queues"),
        "{}",
        p["agent"]["description"]
    );
    assert_eq!(p["generation"]["default"], "repo");
    assert_eq!(
        p["generation"]["anyOf"][0]["enum"],
        serde_json::json!(["repo", "oci"])
    );
}
