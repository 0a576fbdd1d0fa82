//! Secrets never appear in output, plans, logs or errors.

use crate::common::{Test, repo};

const TOKEN: &str = "dckr_pat_TOPSECRET0123456789";

#[test]
fn a_set_secret_appears_nowhere() {
    let site = repo().join("examples/site.yaml");
    for output in ["json", "text"] {
        Test::new()
            .arg(repo().join("scripts/install.rhai").display().to_string())
            .args(["--values", &site.display().to_string(), "--dry-run"])
            .args(["--output", output])
            .arg("--set")
            .arg(format!("dockerhub_token={TOKEN}"))
            .run()
            .success()
            .nowhere(TOKEN);
    }
}

#[test]
fn every_output_path_masks_secrets() {
    Test::new()
        .script(
            "print(site);\n\
             debug(site.dockerhub_token);\n\
             print(`interpolated ${site.dockerhub_token}`);\n\
             let joined = \"Bearer \" + site.dockerhub_token;\n\
             print(joined);\n\
             print(is_secret(joined));\n\
             log(\"token: \" + site.dockerhub_token);\n\
             print(to_yaml(#{ password: site.dockerhub_token }));\n\
             try { throw \"joined \" + site.dockerhub_token; } catch (e) { print(e); }\n\
             throw `failed with ${site.dockerhub_token}`;\n",
        )
        .arg("--set")
        .arg(format!("dockerhub_token={TOKEN}"))
        .arg("--dry-run")
        .run()
        // the script's own error: exit 2, nothing was started
        .code(2)
        .stdout_has("\"dockerhub_token\": <redacted>")
        .stdout_has("interpolated <redacted>\n<redacted>\ntrue\n")
        .stdout_has("password: <redacted>")
        .stdout_has("\n<redacted>\n")
        .stderr_has("error: failed with <redacted>")
        .nowhere(TOKEN);
}

#[test]
fn values_files_mark_credentials_by_key_name() {
    Test::new()
        .file(
            "site.yaml",
            "supervisor:\n  user_key: KEY123456\n  user_secret: SECRET123456\n  email: admin@example.com\nsso:\n  access_token_url: https://idp.example.com/token\n",
        )
        .script(
            "print(is_secret(site.supervisor.user_key));\nprint(is_secret(site.supervisor.user_secret));\nprint(is_secret(site.supervisor.email));\nprint(is_secret(site.sso.access_token_url));\nprint(site.supervisor);",
        )
        .args(["--values", "site.yaml"])
        .run()
        .success()
        .stdout_has("true\ntrue\nfalse\nfalse\n")
        .nowhere("KEY123456")
        .nowhere("SECRET123456");
}

#[test]
fn generated_secrets_are_hex_and_masked() {
    Test::new()
        .script("let s = generate_secret(16);\nprint(s);\nprint(s.len());\nprint(is_secret(s));\ngenerate_secret(0);")
        .arg("--dry-run")
        .run()
        .code(2)
        .stdout("<redacted>\n32\ntrue\n")
        .stderr_has("generate_secret: bytes must be 1 to 1024, not 0");
}

#[test]
fn apply_secret_takes_strings_numbers_and_booleans_as_secrets_and_refuses_other_values() {
    Test::new()
        .script(
            "apply_secret(\"ns\", \"site-creds\", #{ n: 12345678, b: true, s: \"plain-text-value\" });",
        )
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("  1. kube.apply namespace=ns")
        .stdout_has("\"n\": <redacted>")
        .stdout_has("b: <redacted>")
        .stdout_has("s: <redacted>")
        .nowhere("12345678")
        .nowhere("plain-text-value");
    Test::new()
        .script("apply_secret(\"ns\", \"site-creds\", #{ l: [1] });")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("apply_secret: the value of `l` must be a string or a secret, not array");
}

/// `to_json` of a value holding a secret is a secret (the JSON with the real value, shown as
/// `<redacted>`); of a value without one, plain text.
#[test]
fn to_json_of_a_value_with_a_secret_is_a_secret() {
    Test::new()
        .script(
            "let j = to_json(#{ token: secret(\"tok-value-123456\"), n: 1 });\n\
             print(is_secret(j));\nprint(j);\n\
             let p = to_json(#{ n: 1, l: [true] });\nprint(is_secret(p));\nprint(p);\n",
        )
        .run()
        .success()
        .stdout("true\n<redacted>\nfalse\n{\"l\":[true], \"n\":1}\n")
        .nowhere("tok-value-123456");
}

/// `--diff` shows the values as YAML writes them: a secret of several lines (a private key read
/// with `{file: …}`) becomes a block of indented lines, one with a tab a quoted string with
/// `\t`. Neither is the raw value the redactor knows, and both must still be masked.
#[test]
fn a_multi_line_or_escaped_secret_is_masked_in_the_diff() {
    let out = Test::new()
        .helm(4)
        .file(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj\nPemCanaryLineTwo0123456789abcdef\n-----END PRIVATE KEY-----\n",
        )
        .file(
            "extra.yaml",
            "extra_values:\n  apiserver:\n    tlsKey: {file: key.pem}\n    aPassword: \"tab\\there-TabCanary-0042\"\n",
        )
        .args(["install-control-plane.rhai", "--values"])
        .arg(repo().join("examples/site.yaml").display().to_string())
        .args(["--values", "extra.yaml", "--sandbox", "--diff"])
        .run();
    out.success()
        .stdout_has("tlsKey")
        .nowhere("PemCanaryLineTwo")
        .nowhere("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj")
        .nowhere("TabCanary-0042");
}

/// The run log (`$XDG_STATE_HOME/clearml-script/last-run.log`, which the support bundle ships
/// to the vendor) starts with the command line: a `--set` secret is masked there however it is
/// written, with helm's `\,` escape or shorter than the redactor's minimum.
#[test]
fn the_run_log_masks_a_set_secret_however_it_is_written() {
    let t = Test::new();
    let xdg = t.dir().join("state").display().to_string();
    let t = t
        .env("XDG_STATE_HOME", &xdg)
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args([
            "--values",
            &repo().join("examples/site.yaml").display().to_string(),
        ])
        .arg("--dry-run")
        .arg("--set")
        .arg("supervisor.user_secret=Escaped\\,LogCanary-0051")
        .arg("--set-string")
        .arg("github_token=back\\\\slash-LogCanary-0052")
        .arg("--set")
        .arg("dockerhub_token=q7Z");
    t.run()
        .success()
        .nowhere("LogCanary-0051")
        .nowhere("LogCanary-0052");
    let log = std::fs::read_to_string(t.dir().join("state/clearml-script/last-run.log")).unwrap();
    assert!(log.starts_with("$ "), "{log}");
    for leaked in ["LogCanary-0051", "LogCanary-0052", "dockerhub_token=q7Z"] {
        assert!(!log.contains(leaked), "{leaked} in the run log:\n{log}");
    }
}

/// A password inside a URL's userinfo is a password: never in the plan (nor, in a live run, in
/// `helm repo add`'s arguments).
#[test]
fn a_password_inside_a_url_is_refused_or_masked() {
    let out = Test::new()
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args([
            "--values",
            &repo().join("examples/site.yaml").display().to_string(),
        ])
        .args(["--dry-run", "--set"])
        .arg("chart_repo_url=https://bob:UrlCanary-0061@charts.example.com/x")
        .run();
    out.nowhere("UrlCanary-0061");
}

/// An API key given to a server's environment (`OPENAI_API_KEY`) is a key: masked in the plan.
#[test]
fn an_api_key_in_extra_env_is_masked() {
    Test::new()
        .file(
            "env.yaml",
            "extra_env:\n  apiserver:\n    - {name: OPENAI_API_KEY, value: sk-proj-EnvCanary-0071}\n",
        )
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args(["--values", &repo().join("examples/site.yaml").display().to_string()])
        .args(["--values", "env.yaml", "--dry-run"])
        .run()
        .success()
        .nowhere("EnvCanary-0071");
}

/// The YAML parser quotes a number it cannot hold as a float (`7e999`): a secret's value
/// written unquoted is never quoted back.
#[test]
fn a_yaml_error_never_quotes_a_secrets_value() {
    Test::new()
        .file("bad.yaml", "dockerhub_token: 7e999\n")
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args([
            "--values",
            &repo().join("examples/site.yaml").display().to_string(),
        ])
        .args(["--values", "bad.yaml", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("bad.yaml:1:18: invalid YAML")
        .nowhere("7e999");
}

/// A token written unquoted that YAML reads as a number (`0x1A2B`, `1234e5`, `0123456789`) is
/// either kept as written or refused with its place: never sent as another text (`6699`,
/// `123400000`, `123456789`).
#[test]
fn a_secret_that_yaml_reads_as_a_number_is_kept_as_written_or_refused() {
    let out = Test::new()
        .file(
            "t.yaml",
            "a_token: 0x1A2B\nb_token: 1234e5\nc_token: 0123456789\n",
        )
        .script(
            "print(`${site.a_token == secret(\"0x1A2B\")} ${site.b_token == secret(\"1234e5\")} ${site.c_token == secret(\"0123456789\")}`);\n",
        )
        .args(["--values", "t.yaml", "--dry-run"])
        .run();
    if out.code == 0 {
        out.stdout_has("true true true\n");
    } else {
        out.code(2).stderr_has("t.yaml:1:10");
    }
}
