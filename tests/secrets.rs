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
