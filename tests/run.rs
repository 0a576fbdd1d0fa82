//! Running playbooks: site values, the dry-run plan, diagnostics, exit codes.

use crate::common::{Test, repo};

#[test]
fn values_files_merge_left_to_right_then_set() {
    Test::new()
        .file("a.yaml", "x: {a: 1, l: [1, 2]}\nname: first\n")
        .file("b.yaml", "x: {b: 2, l: [3]}\n")
        .script("print(site);")
        .args(["--values", "a.yaml", "--values", "b.yaml"])
        .args(["--set", "name=second", "--set", "x.n=3", "--set", "x.t=true"])
        .run()
        .success()
        .stdout(
            "#{\"name\": \"second\", \"x\": #{\"a\": 1, \"b\": 2, \"l\": [3], \"n\": 3, \"t\": true}}\n\
             Done: 0 steps\n"
                .split_once("Done")
                .unwrap()
                .0,
        );
}

#[test]
fn dry_run_json_is_alone_on_stdout() {
    let out = Test::new()
        .script("print(\"hello\"); log(\"narration\"); debug(1);")
        .args(["--dry-run", "--output", "json"])
        .run();
    out.success();
    let doc = out.json();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["actions"], serde_json::json!([]));
    out.stderr_has("hello\n").stderr_has("• narration\n");
}

#[test]
fn dry_run_of_the_standard_install_with_the_example_site() {
    let site = repo().join("examples/site.yaml");
    let out = Test::new()
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args([
            "--values",
            &site.display().to_string(),
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    out.success();
    assert_eq!(out.json()["dry_run"], true);
    let kinds: Vec<String> = out.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["kind"],
                a["release"].as_str().or(a["name"].as_str()).unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "\"helm.repo_add\" clearml-enterprise",
            "\"helm.repo_update\" ",
            "\"kube.ensure_namespace\" clearml",
            "\"kube.apply\" ",
            "\"helm.upgrade_install\" clearml"
        ]
    );
    out.stderr_has("site clearml.example.com: generation repo");
}

#[test]
fn syntax_error_prints_caret_and_exits_2() {
    Test::new()
        .script("let a = 1;\nlet b = (2 + ;\n")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr(
            "error: Unexpected ';'\n --> playbook.rhai:2:14\n  |\n2 | let b = (2 + ;\n  |              ^\n",
        );
}

#[test]
fn undefined_variable_is_a_compile_error() {
    Test::new()
        .script("let a = 1;\nprint(b);\n")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("error: Undefined variable: b\n --> playbook.rhai:2:7\n");
}

#[test]
fn require_names_the_missing_key_path() {
    Test::new()
        .script("let d = require(site, \"control_plane.base_domain\");\n")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr(
            "error: require: the required key `control_plane.base_domain` is missing: add it to the site values file, or pass --set control_plane.base_domain=VALUE\n --> playbook.rhai:1:9\n  |\n1 | let d = require(site, \"control_plane.base_domain\");\n  |         ^\n",
        );
}

#[test]
fn get_returns_the_default_and_env_reads_variables() {
    Test::new()
        .script("print(get(site, \"a.b\", \"dflt\")); print(get(site, \"x\", 0)); print(env(\"CS_TEST_VAR\")); print(env(\"CS_UNSET_VAR\", \"none\"));")
        .args(["--set", "x=5"])
        .env("CS_TEST_VAR", "from-env")
        .run()
        .success()
        .stdout("dflt\n5\nfrom-env\nnone\n");
}

#[test]
fn unknown_map_property_is_an_error() {
    Test::new()
        .script("let m = #{ a: 1 };\nprint(m.b);\n")
        .run()
        .code(2)
        .stderr_has("error: Property not found: b\n --> playbook.rhai:2:9\n");
}

#[test]
fn errors_inside_functions_show_the_call_chain() {
    Test::new()
        .file("lib.rhai", "fn need(m) {\n    require(m, \"k\")\n}\n")
        .script("import \"lib\" as lib;\nlib::need(#{});\n")
        .run()
        .code(2)
        .stderr_has("error: require: the required key `k` is missing")
        .stderr_has(" --> lib.rhai:2:5\n  |\n2 |     require(m, \"k\")\n  |     ^\n")
        .stderr_has("= note: in the call to `need` at playbook.rhai:2:6");
}

#[test]
fn yaml_error_names_file_and_line() {
    Test::new()
        .file("site.yaml", "a: 1\nb: [1, 2\n")
        .script("print(1);")
        .args(["--values", "site.yaml"])
        .run()
        .code(2)
        .stderr_has("error: site.yaml:2:4: invalid YAML");
}

#[test]
fn a_thrown_error_before_any_step_exits_2() {
    Test::new()
        .script("throw \"custom failure\";")
        .run()
        .code(2)
        .stderr_has("error: custom failure\n")
        .stderr_has("nothing was started: nothing was changed\n");
}

#[test]
fn merge_and_yaml_builtins() {
    Test::new()
        .script(
            "let v = merge(#{ a: 1, s: #{ x: 1, l: [1] } }, #{ b: \"on\", s: #{ y: 2, l: [2] } });\n\
             print(to_yaml(v));\n\
             let p = parse_yaml(\"k: [1, yes, 'on']\");\n\
             print(p.k);",
        )
        .run()
        .success()
        .stdout("a: 1\nb: \"on\"\ns:\n  l:\n  - 2\n  x: 1\n  \"y\": 2\n\n[1, true, \"on\"]\n");
}

#[test]
fn to_map_builds_a_map_from_pairs_and_refuses_anything_else() {
    Test::new()
        .script("print(to_map([[\"a\", 1], [\"b\", 2], [\"a\", 3]]));")
        .run()
        .success()
        .stdout("#{\"a\": 3, \"b\": 2}\n");
    for bad in ["[[\"a\", 1], [\"b\"]]", "[[\"a\", 1, 2]]", "[\"a\"]"] {
        Test::new()
            .script(&format!("to_map({bad});"))
            .run()
            .code(2)
            .stderr_has("is not a [key, value] pair");
    }
}

#[test]
fn ctrl_c_stops_the_run_with_130() {
    // the loop never ends, in the silent plan pass as in the run: Ctrl-C stops either
    let t = Test::new().script("let i = 0; loop { i += 1; }");
    let child = t
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: interrupted"));
}

#[test]
fn version_help_and_completions() {
    Test::new()
        .arg("--version")
        .run()
        .success()
        .stdout(&format!("clearml-script {}\n", env!("CARGO_PKG_VERSION")));
    Test::new()
        .arg("--help")
        .run()
        .success()
        .stdout_has("Usage:");
    for (shell, head) in [
        ("bash", "complete -F _clearml__script"),
        ("zsh", "#compdef clearml-script\n"),
        ("fish", "complete -c clearml-script"),
    ] {
        let out = Test::new().args(["completions", shell]).run();
        out.success().stdout_has(head);
        // the subcommands and the run flags are offered
        for word in ["sandbox", "completions", "dry-run", "kubeconfig", "values"] {
            out.stdout_has(word);
        }
    }
    // bash's offers `docs FUNCTION` every documented name: built-ins and the stdlib's
    let bash = Test::new().args(["completions", "bash"]).run();
    for name in [
        "install_chart",
        "create_queue",
        "values::check",
        "cp::check",
    ] {
        bash.stdout_has(&format!(" {name} "));
    }
    Test::new().run().code(2);
}

#[test]
fn a_sandbox_run_shows_what_the_cluster_holds() {
    Test::new()
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args(["--values", &repo().join("examples/site.yaml").display().to_string(), "--sandbox"])
        .helm(4)
        .run()
        .success()
        .stderr_has("• sandbox: Kubernetes API https://127.0.0.1:")
        .stderr_has("is served by the sandbox's stand-in charts")
        .stderr_has("The sandbox cluster now holds:\n  releases:\n    clearml/clearml revision 1: deployed\n  namespaces: clearml, default, kube-public, kube-system\n  workloads:\n    Deployment clearml/clearml-apiserver: 1/1 ready\n")
        .stderr_has("Done: 5 steps\n  1. helm.repo_add")
        .nowhere("example-dockerhub-token-replace-me");
    // in one sandbox session, a second install keeps the generated credentials
    Test::new()
        .args(["repl", "--sandbox", "--values", &repo().join("examples/site.yaml").display().to_string()])
        .helm(3)
        .stdin(
            "mode()\nimport \"clearml/control_plane\" as cp;\nimport \"clearml/values\" as values;\nvalues::add_chart_source(site);\ncp::install(site).status\n\
             let first = get_secret(\"clearml\", cp::credentials_secret());\n\
             cp::install(site).revision\n\
             first == get_secret(\"clearml\", cp::credentials_secret())\n:cluster\n",
        )
        .run()
        .success()
        // the second install changes nothing: not upgraded, no new revision
        .stdout_has("sandbox\ndeployed\n1\ntrue\nThe sandbox cluster now holds:\n  releases:\n    clearml/clearml revision 1: deployed\n");
    Test::new()
        .script("print(1);")
        .args(["--sandbox", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("cannot be used with");
}

#[test]
fn a_live_run_without_helm_stops_before_anything() {
    let script = "print(\"before\");\nensure_namespace(\"ns\");\ninstall_chart(\"r\", \"repo/chart\", #{ namespace: \"ns\" });\n";
    Test::new()
        .script(script)
        .env("HELM_BIN", "/nonexistent/helm")
        .run()
        .code(2)
        .stderr("error: HELM_BIN=/nonexistent/helm: there is no such file; nothing was changed\n");
    // a playbook without helm steps needs no helm
    Test::new()
        .script("print(\"no helm needed\");")
        .env("HELM_BIN", "/nonexistent/helm")
        .run()
        .success()
        .stdout("no helm needed\n");
}

#[test]
fn a_live_run_validates_every_step_before_the_first() {
    // the second install_chart has a bad release name: nothing runs, not even the first step
    Test::new()
        .script("print(\"planning\");\nensure_namespace(\"ns\");\ninstall_chart(\"Bad_Name\", \"repo/chart\", #{ namespace: \"ns\" });\n")
        .env("HELM_BIN", "/nonexistent/helm")
        .run()
        .code(2)
        .stdout("")
        .stderr_has("error: install_chart: the release name `Bad_Name` is not valid");
}

#[test]
fn a_kept_sandbox_continues_on_the_next_run() {
    let t = Test::new();
    let state = t.dir().join("state").display().to_string();
    let run = || {
        Test::new()
            .args(["install.rhai", "--values"])
            .arg(repo().join("examples/site.yaml").display().to_string())
            .arg("--values")
            .arg(repo().join("examples/site-gpu.yaml").display().to_string())
            .args(["--sandbox", "--sandbox-state", &state])
            .helm(4)
            .run()
    };
    run()
        .success()
        .stderr_has("sandbox: a new cluster, kept in")
        .stderr_has("internal credentials: 7 generated")
        .stderr_has("• queue GPUshm: created")
        .stderr_has("    clearml/clearml revision 1: deployed\n");
    run()
        .success()
        .stderr_has("sandbox: continuing the cluster kept in")
        .stderr_has("internal credentials: 7 reused")
        .stderr_has("• queue GPUshm: already there")
        // nothing changed: no release is upgraded, none gets a new revision
        .stderr_has("    clearml/clearml revision 1: deployed\n")
        .stderr_has("    clearml-agents/clearml-agent revision 1: deployed\n")
        .stderr_has("unchanged (revision 1), not upgraded")
        .nowhere("example-dockerhub-token-replace-me");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.dir().join("state/sandbox-state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A playbook named by mistake that has no end (`/dev/zero`), run or `:load`ed in the REPL,
/// is refused once past 16 MiB instead of filling the memory.
#[test]
fn an_endless_playbook_is_refused_not_read_into_memory() {
    Test::new()
        .arg("/dev/zero")
        .run()
        .code(2)
        .stderr_has("cannot read /dev/zero: it holds more than 16 MiB");
    Test::new()
        .arg("repl")
        .stdin(":load /dev/zero\n")
        .run()
        .code(2)
        .stderr_has("cannot read /dev/zero: it holds more than 16 MiB");
}
