//! Validation: every problem reported together, with key paths and file lines, exit 2.

use crate::common::Test;

#[test]
fn all_problems_are_reported_together_with_locations() {
    Test::new()
        .file(
            "site.yaml",
            "base_domain: <BASE_DOMAIN>\nsupervisor:\n  email: not-an-email\ngateway:\n  ports: {start: 40000, end: 30000}\napi_url: ftp://x.example.com\nshm: 32GB\n",
        )
        .script(
            "validate(site, #{\n  base_domain: \"domain\",\n  \"supervisor.email\": \"email\",\n  \"gateway.ports\": \"port_range\",\n  api_url: \"url\",\n  shm: \"size\",\n  missing: \"string\",\n  optional: \"string?\",\n});\nprint(\"not reached\");",
        )
        .args(["--values", "site.yaml"])
        .run()
        .code(2)
        .stdout("")
        .stderr(
            "error: validate: 6 problems in the values; nothing was changed\n --> playbook.rhai:1:1\n  |\n1 | validate(site, #{\n  | ^\n\
             \x20 - `api_url` (site.yaml:6:10): `ftp://x.example.com`: the scheme must be http or https, not ftp\n\
             \x20 - `gateway.ports` (site.yaml:5:10): the port range starts at 40000 after it ends at 30000: swap them, start ≤ end\n\
             \x20 - `missing` is missing (string): add it to the site values file, or pass --set missing=VALUE\n\
             \x20 - `shm` (site.yaml:7:6): `32GB` is not a size; write a number with a unit such as 32Gi, 512Mi or 1G\n\
             \x20 - `supervisor.email` (site.yaml:3:10): `not-an-email` is not an email address (no `@`); write one such as admin@example.com\n\
             \x20 - `base_domain` (site.yaml:1:14) still holds the placeholder <BASE_DOMAIN>: replace it with the real value\n",
        );
}

/// A problem names the site's file and line only when the value checked is the site's own: a
/// value the playbook made at the same path is not the one in the file.
#[test]
fn only_the_sites_own_value_is_placed_in_its_file() {
    Test::new()
        .file("site.yaml", "base_domain: good.example.com\n")
        .script("validate(#{ base_domain: \"bad domain\" }, #{ base_domain: \"domain\" });")
        .args(["--values", "site.yaml"])
        .run()
        .code(2)
        .stderr_has("  - `base_domain`: `bad domain` is a single label;")
        .nowhere("site.yaml:1");
}

#[test]
fn playbook_problems_join_the_report() {
    Test::new()
        .script("validate(site, #{ base_domain: \"domain\" }, [#{ path: \"users\", message: \"duplicate user alice\" }, \"free-form problem\"]);")
        .args(["--set", "base_domain=Example.COM"])
        .run()
        .code(2)
        .stderr_has("  - `base_domain` (--set base_domain): `Example.COM` has capital letters; write it in lowercase (example.com)\n")
        .stderr_has("  - `users`: duplicate user alice\n")
        .stderr_has("  - free-form problem\n");
}

#[test]
fn unknown_rule_is_named() {
    Test::new()
        .script("validate(site, #{ a: \"domian\" });")
        .run()
        .code(2)
        .stderr_has("the rule for `a` is `domian`, which is not a rule");
}

#[test]
fn predicates() {
    Test::new()
        .script("print([is_domain(\"a.example.com\"), is_domain(\"x\"), is_email(\"a@b.io\"), is_url(\"https://a.b\"), is_port(0), is_port_range(#{start: 1, end: 2}), is_size(\"32Gi\")]);")
        .run()
        .success()
        .stdout("[true, false, true, true, false, true, true]\n");
    // each predicate answers both ways (one that always answered true or false would pass above)
    Test::new()
        .script("print([is_email(\"a.b.io\"), is_url(\"a b\"), is_port(443), is_port_range(#{start: 2, end: 1}), is_port_range(#{start: 0, end: 1}), is_port_range(\"1-2\"), is_size(\"32GB\")]);")
        .run()
        .success()
        .stdout("[false, false, true, false, false, false, false]\n");
}

#[test]
fn standard_install_rejects_placeholders_before_anything() {
    Test::new()
        .arg(
            crate::common::repo()
                .join("scripts/install.rhai")
                .display()
                .to_string(),
        )
        .args([
            "--set",
            "base_domain=<BASE_DOMAIN>",
            "--set",
            "generation=helm",
            "--dry-run",
        ])
        .run()
        .code(2)
        .stderr_has(
            "  - `generation` (--set generation): must be \"repo\" or \"oci\", not \"helm\"",
        )
        .stderr_has("  - `dockerhub_token` is missing (secret)")
        .stderr_has(
            "  - `base_domain` (--set base_domain) still holds the placeholder <BASE_DOMAIN>",
        );
}

/// A values file whose name is not UTF-8 (a Latin-1 file name) is read like any other: the
/// run log's command line must not turn it into an internal error (exit 70).
#[test]
fn a_values_file_whose_name_is_not_utf8_is_no_internal_error() {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"site\xff.yaml");
    let t = crate::common::Test::new();
    std::fs::copy(
        crate::common::repo().join("examples/site.yaml"),
        t.dir().join(name),
    )
    .unwrap();
    let t = t.args(["install.rhai", "--dry-run", "--values"]);
    let mut cmd = t.command();
    cmd.arg(name);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
}

/// A required key set to null (`~`) in a file layered over the site is not "missing": the
/// problem names the file and line that emptied it.
#[test]
fn a_required_key_emptied_by_a_later_file_is_placed_there() {
    Test::new()
        .file("site.yaml", "base_domain: good.example.com\n")
        .file("override.yaml", "base_domain: ~\n")
        .script("validate(site, #{ base_domain: \"domain\" });")
        .args(["--values", "site.yaml", "--values", "override.yaml"])
        .run()
        .code(2)
        .stderr_has("  - `base_domain` (override.yaml:1:14) is null (domain): give it a value\n");
}
