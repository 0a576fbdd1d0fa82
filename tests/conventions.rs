//! The conventions users bring from helm: the `--set…` flags with helm's syntax, values from
//! stdin, secrets from the environment and files, `--kube-context`, `-o json`, `-v`.

use base64::Engine as _;

use crate::common::{Cluster, Test, repo};

#[test]
fn set_flags_follow_helms_syntax_and_types() {
    Test::new()
        .script("print(site);")
        .args([
            "--set",
            "a=1,b=2,esc\\.key=x\\,y",
            "--set",
            "l={p,q},m[1].n=z",
        ])
        .args(["--set", "tenant=00123,z=0"])
        .args(["--set-string", "s=123,t=true"])
        .args(["--set-json", r#"j={"k":[1,"2"]}"#])
        .arg("--dry-run")
        .run()
        .success()
        .stdout(
            "#{\"a\": 1, \"b\": 2, \"esc.key\": \"x,y\", \"j\": #{\"k\": [1, \"2\"]}, \
             \"l\": [\"p\", \"q\"], \"m\": [(), #{\"n\": \"z\"}], \"s\": \"123\", \"t\": \"true\", \
             \"tenant\": \"00123\", \"z\": 0}\n\
             Plan (dry run: nothing was changed): 0 steps\n",
        );
}

#[test]
fn an_index_sets_a_list_item_and_a_key_without_value_is_refused() {
    Test::new()
        .script("print(site.a);")
        .args(["--set", "a[0]=x", "--dry-run"])
        .run()
        .success()
        .stdout_has("[\"x\"]\n");
    Test::new()
        .script("print(site);")
        .args(["--set", "a[0]", "--dry-run"])
        .run()
        .code(2)
        .stderr("error: --set a[0]: `a[0]` has no value: write a[0]=VALUE\n");
    Test::new()
        .script("print(site);")
        .args(["--set", "a,b=1", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("key `a` has no value");
}

#[test]
fn values_from_stdin() {
    Test::new()
        .file("b.yaml", "x: {b: 2}\n")
        .script("print(site.x);")
        .args(["-f", "-", "-f", "b.yaml", "--dry-run"])
        .stdin("x: {a: 1}\n")
        .run()
        .success()
        .stdout_has("#{\"a\": 1, \"b\": 2}\n");
}

#[test]
fn env_and_file_values_are_secrets_whatever_their_key() {
    Test::new()
        .file("secrets/tok.txt", "token-from-file-0001\n")
        .file(
            "site.yaml",
            "base_domain: {env: MY_DOMAIN_0001}\nother: {file: secrets/tok.txt}\nplain: {env: 3}\n",
        )
        .script("print(site.base_domain); print(site.other); print(site.plain);")
        .env("MY_DOMAIN_0001", "domain-from-env-0001")
        .args(["--values", "site.yaml", "--dry-run"])
        .run()
        .success()
        // `{env: 3}` names no variable (3 is not a string): it is a plain map
        .stdout_has("<redacted>\n<redacted>\n#{\"env\": 3}\n")
        .nowhere("domain-from-env-0001")
        .nowhere("token-from-file-0001");
}

#[test]
fn a_missing_variable_or_file_names_the_key_and_line() {
    Test::new()
        .file(
            "site.yaml",
            "base_domain: example.com\ndockerhub_token: {env: UNSET_VAR_0001}\nsso:\n  client_secret: {file: nope.txt}\n",
        )
        .script("print(1);")
        .args(["--values", "site.yaml", "--dry-run"])
        .run()
        .code(2)
        .stderr_has(
            "error: site.yaml:2:18: `dockerhub_token`: the environment variable UNSET_VAR_0001 is not set",
        )
        .stderr_has("site.yaml:4:18: `sso.client_secret`: cannot read the file ")
        .stderr_has("nope.txt");
    Test::new()
        .script("print(1);")
        .args(["--set-file", "token=missing.txt", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("error: --set-file token…: `token`: cannot read the file missing.txt");
}

#[test]
fn missing_secrets_are_hinted_to_come_from_env_or_file() {
    Test::new()
        .script("require(site, \"dockerhub_token\");")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("as `dockerhub_token: {env: VARIABLE}` or `dockerhub_token: {file: PATH}`");
}

#[test]
fn kube_context_alias_and_short_output_flag() {
    let out = Test::new()
        .script("print(1);")
        .args(["--kube-context", "ctx", "-o", "json", "--dry-run"])
        .run();
    out.success();
    assert_eq!(out.json()["dry_run"], true);
}

/// The standard control-plane playbook, live against the simulator, with the DockerHub token
/// given each of the three ways; the real value reaches the cluster and shows nowhere.
#[test]
fn the_standard_playbook_takes_a_secret_each_way() {
    let live = Cluster::new(4);
    let t = Test::new()
        .file("tok-file.txt", "token-by-file-0001\n")
        .file("tok-setfile.txt", "token-by-set-file-0001")
        .file("by-env.yaml", "dockerhub_token: {env: CONV_TOKEN_0001}\n")
        .file("by-file.yaml", "dockerhub_token: {file: tok-file.txt}\n");
    let site = repo().join("tests/fixtures/guide-site.yaml");
    let image_password = || {
        let s = live
            .sim
            .kube_get("/api/v1/namespaces/clearml/secrets/clearml-image-credentials");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["password"].as_str().unwrap())
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    let ways: [(&[String], &str, &str); 3] = [
        (
            &[
                "--values".into(),
                t.dir().join("by-env.yaml").display().to_string(),
            ],
            "token-by-env-0001",
            "env",
        ),
        (
            &[
                "--values".into(),
                t.dir().join("by-file.yaml").display().to_string(),
            ],
            "token-by-file-0001",
            "file",
        ),
        (
            &[
                "--set-file".into(),
                format!(
                    "dockerhub_token={}",
                    t.dir().join("tok-setfile.txt").display()
                ),
            ],
            "token-by-set-file-0001",
            "set-file",
        ),
    ];
    for (extra, token, way) in ways {
        let out = live
            .test()
            .arg(
                repo()
                    .join("scripts/install-control-plane.rhai")
                    .display()
                    .to_string(),
            )
            .args(["--values", &site.display().to_string()])
            .args(extra)
            .env("CONV_TOKEN_0001", "token-by-env-0001")
            .arg("-v")
            .run();
        out.success()
            .stderr_has("debug: $ ")
            .stderr_has(" upgrade ")
            .nowhere(token);
        assert_eq!(image_password(), token, "given by {way}");
    }
}

#[test]
fn check_resolves_standard_names_and_unknown_names_get_a_did_you_mean() {
    Test::new()
        .args(["check", "install.rhai", "install-agent"])
        .run()
        .success()
        .stderr("checked 2 scripts: no problems\n");
    Test::new()
        .args(["check", "instal.rhai"])
        .run()
        .code(2)
        .stderr_has("Did you mean install.rhai?");
    Test::new()
        .args(["install-agnt.rhai", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("Did you mean install-agent.rhai?");
    // a path (with a `/`) names a file: a missing one is not matched to a standard playbook
    let out = Test::new().args(["./instal", "--dry-run"]).run();
    out.code(2)
        .stderr_has("error: no playbook ./instal: there is no such file")
        .nowhere("Did you mean");
}

#[test]
fn export_with_stdlib_writes_the_library_sources() {
    let t = Test::new().args(["scripts", "export", "site", "--with-stdlib"]);
    t.run().success();
    let values = std::fs::read_to_string(t.dir().join("site/stdlib/clearml/values.rhai")).unwrap();
    assert_eq!(
        values,
        std::fs::read_to_string(repo().join("stdlib/clearml/values.rhai")).unwrap()
    );
    assert!(t.dir().join("site/site.schema.json").is_file());
    let plain = Test::new().args(["scripts", "export", "site"]);
    plain.run().success();
    assert!(!plain.dir().join("site/stdlib").exists());
}

#[test]
fn completions_offer_playbook_and_docs_names_and_the_man_page_is_generated() {
    // clap_complete's fish script completes options and subcommands only
    for shell in ["bash", "zsh"] {
        let out = Test::new().args(["completions", shell]).run();
        // zsh escapes the colons
        let module_fn = if shell == "zsh" {
            "values\\:\\:check"
        } else {
            "values::check"
        };
        out.success()
            .stdout_has("install-agent.rhai")
            .stdout_has(module_fn)
            .stdout_has("bcrypt_hash");
    }
    Test::new()
        .arg("man")
        .run()
        .success()
        .stdout_has(".TH clearml-script 1")
        .stdout_has("\\-\\-set\\-string");
    let t = Test::new().args(["man", "--out", "man1"]);
    t.run().success();
    assert!(t.dir().join("man1/clearml-script.1").is_file());
    assert!(t.dir().join("man1/clearml-script-repl.1").is_file());
}
