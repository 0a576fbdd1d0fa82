//! The bad-input table: each class of bad input gets its exit code and a message naming the file
//! and line or the key, and a `--sandbox-state` directory is byte-identical afterwards.

use std::path::Path;

use crate::common::{Test, repo};

/// A bad input: the values file `bad.yaml` layered over the example site (or `None`), a
/// playbook (or the standard install), extra arguments, the exit code and what stderr must say.
struct Case {
    class: &'static str,
    values: Option<&'static str>,
    script: Option<&'static str>,
    args: &'static [&'static str],
    code: i32,
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        class: "YAML syntax",
        values: Some("base_domain: [unclosed\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:1:14: invalid YAML", "unclosed bracket"],
    },
    Case {
        class: "leftover placeholder",
        values: Some("base_domain: <BASE_DOMAIN>\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`base_domain` (bad.yaml:1:14) still holds the placeholder <BASE_DOMAIN>"],
    },
    Case {
        class: "bad domain",
        values: Some("base_domain: Not_A.Domain\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`base_domain` (bad.yaml:1:14): `Not_A.Domain` has capital letters"],
    },
    Case {
        class: "bad email",
        values: Some("supervisor: {email: nope}\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`supervisor.email` (bad.yaml:1:21): `nope` is not an email address"],
    },
    Case {
        class: "port range",
        values: Some(
            "gateway: {enabled: true, key: gw-key-1, secret: gw-secret-1, port_range: {start: 40000, end: 30000}}\n",
        ),
        script: None,
        args: &[],
        code: 2,
        says: &[
            "`gateway.port_range` (bad.yaml:1:",
            "starts at 40000 after it ends at 30000",
        ],
    },
    Case {
        class: "enumeration",
        values: Some("service_type: Foo\n"),
        script: None,
        args: &[],
        code: 2,
        says: &[
            "`service_type` (bad.yaml:1:15): `Foo` is not one of ClusterIP, NodePort, LoadBalancer",
        ],
    },
    Case {
        class: "enumeration, misspelt",
        values: Some("service_type: ClusterIp\n"),
        script: None,
        args: &[],
        code: 2,
        says: &[
            "`ClusterIp` is not one of ClusterIP, NodePort, LoadBalancer (did you mean ClusterIP?)",
        ],
    },
    Case {
        class: "generation",
        values: Some("generation: helm\n"),
        script: None,
        args: &[],
        code: 2,
        says: &[
            "1 problem in the values",
            "`generation` (bad.yaml:1:13): must be \"repo\" or \"oci\", not \"helm\"",
        ],
    },
    Case {
        class: "SSO provider id",
        values: Some("sso: {provider: \"Bad Provider\", client_id: cid-1, client_secret: cs-1}\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`sso.provider` (bad.yaml:1:17): must be a provider id"],
    },
    Case {
        class: "apps checksum",
        values: Some("apps: {enabled: true, sha256: xyz, user: a, password: pw-123456}\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`apps.sha256` (bad.yaml:1:31): must be the package's sha256"],
    },
    Case {
        class: "apps target repository",
        values: Some(
            "apps: {enabled: true, registry: \"https://x/y\", user: a, password: pw-123456}\n",
        ),
        script: None,
        args: &[],
        code: 2,
        says: &["convert_registry: `https://x/y` is not a target repository"],
    },
    Case {
        class: "--set without =",
        values: None,
        script: None,
        args: &["--set", "noequals"],
        code: 2,
        says: &["--set noequals: key `noequals` has no value: write noequals=VALUE"],
    },
    Case {
        class: "--set with a value in a list index's place",
        values: None,
        script: None,
        args: &["--set", "dockerhub_token[0=s3cr3t-canary-77"],
        code: 2,
        says: &["--set dockerhub_token…: a list index is not closed with `]`"],
    },
    Case {
        class: "--set nested deeper than a values file may be",
        values: None,
        script: None,
        args: &[
            "--set",
            "extra_values.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a=1",
        ],
        code: 2,
        says: &["a key nests more than 128 levels deep"],
    },
    Case {
        class: "secret file without end",
        values: Some("dockerhub_token: {file: /dev/zero}\n"),
        script: None,
        args: &[],
        code: 2,
        says: &[
            "bad.yaml:1:18: `dockerhub_token`: cannot read the file /dev/zero: it holds more than 1 MiB",
        ],
    },
    Case {
        class: "--set-file without end",
        values: None,
        script: None,
        args: &["--set-file", "dockerhub_token=/dev/zero"],
        code: 2,
        says: &["cannot read the file /dev/zero: it holds more than 1 MiB"],
    },
    Case {
        class: "missing values file",
        values: None,
        script: None,
        args: &["--values", "missing.yaml"],
        code: 2,
        says: &["cannot read values file missing.yaml"],
    },
    Case {
        class: "unknown option key",
        values: None,
        script: Some("helm_repo_add(\"x\", \"https://x.example.com\", #{ usernme: \"a\" });\n"),
        args: &[],
        code: 2,
        says: &["usernme", " --> playbook.rhai:1:1"],
    },
    Case {
        class: "secret registry username (helm login)",
        values: None,
        script: Some(
            "helm_registry_login(\"registry.local\", #{ username: secret(\"u-1\"), password: \"p\" });\n",
        ),
        args: &[],
        code: 2,
        says: &[
            "helm_registry_login",
            "the username is a secret",
            " --> playbook.rhai:1:1",
        ],
    },
    Case {
        class: "secret registry username (bundle push)",
        values: None,
        script: Some(
            "bundle_push(\"b.tar.gz\", \"oci://registry.local/charts\", #{ username: secret(\"u-1\"), password: \"p\" });\n",
        ),
        args: &[],
        code: 2,
        says: &[
            "bundle_push",
            "the username is a secret",
            " --> playbook.rhai:1:1",
        ],
    },
    Case {
        class: "misspelled top-level key",
        values: Some("base_domain: clearml.example.com\nwiat: true\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:2:7: unknown key `wiat`; did you mean `wait`?"],
    },
    Case {
        class: "misspelled section key",
        values: Some("agent:\n  namspace: x\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:2:13: unknown key `agent.namspace`; did you mean `agent.namespace`?"],
    },
    Case {
        class: "misspelled enumerated key",
        values: Some("service_tpye: NodePort\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:1:15: unknown key `service_tpye`; did you mean `service_type`?"],
    },
    Case {
        class: "--set secret with an unescaped comma",
        values: None,
        script: None,
        // helm reads the part after `,` as a key: the message must not quote that rest of the
        // secret back
        args: &["--set", "dockerhub_token=abc,s3cr3t-canary-77"],
        code: 2,
        says: &["--set dockerhub_token…", "`\\,`"],
    },
    Case {
        class: "--set secret with an unescaped comma, the rest not a key",
        values: None,
        script: None,
        args: &["--set", "dockerhub_token=abc,s3cr3t!canary-77"],
        code: 2,
        says: &["--set dockerhub_token…", "`\\,`"],
    },
    Case {
        class: "a password inside a URL",
        values: Some("chart_repo_url: https://bob:s3cr3t-canary-77@charts.example.com/x\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`chart_repo_url` (bad.yaml:1:17)", "password"],
    },
    Case {
        class: "a password inside a URL that does not parse",
        values: Some("chart_repo_url: https://bob:s3cr3t-canary-77@charts.example.com:99999/x\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["`chart_repo_url` (bad.yaml:1:17)", "invalid port number"],
    },
    Case {
        class: "misspelled section in a --set key",
        values: None,
        script: None,
        args: &["--set", "agnet.namespace=x"],
        code: 2,
        says: &["--set agnet.namespace: unknown key `agnet`; did you mean `agent`?"],
    },
    Case {
        class: "a comma meant inside a --set secret",
        values: None,
        script: None,
        args: &["--set", "github_token=gh-part-one,gh-part-two=x"],
        code: 2,
        says: &[
            "--set gh-part-two (after a comma: write `\\,` to keep a comma in a value): unknown key `gh-part-two`",
        ],
    },
    Case {
        class: "misspelled section whose keys start lines below",
        values: Some(
            "base_domain: clearml.example.com\ngatway:\n  # the gateway\n\n  enabled: true\n",
        ),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:2:1: unknown key `gatway`; did you mean `gateway`?"],
    },
    Case {
        class: "a list entry of the wrong type",
        values: Some(
            "agent:\n  enabled: true\n  key: agent-key-1\n  secret: agent-secret-1\n  queues:\n    - name: cpu-queue\n    - 5\n",
        ),
        script: None,
        args: &[],
        code: 2,
        says: &["`agent.queues[1]` (bad.yaml:7:7): must be a map"],
    },
    Case {
        class: "values nested past the parser's bound",
        values: Some(
            "deep: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        ),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:1:", "nest deeper than 64 levels"],
    },
    Case {
        class: "several YAML documents",
        values: Some("base_domain: a.example.com\n---\nbase_domain: b.example.com\n"),
        script: None,
        args: &[],
        code: 2,
        says: &["bad.yaml:3:1", "one YAML document"],
    },
    Case {
        class: "duplicate key",
        values: Some("base_domain: a.example.com\nbase_domain: b.example.com\n"),
        script: None,
        args: &[],
        code: 2,
        says: &[
            "bad.yaml:2:1",
            "`base_domain` is given twice in the same map",
        ],
    },
    Case {
        class: "script syntax",
        values: None,
        script: Some("let x = ;\n"),
        args: &[],
        code: 2,
        says: &[" --> playbook.rhai:1:9"],
    },
    Case {
        class: "a map grown by index assignment without end",
        values: None,
        // each new key holds a new 1 MiB string: Rhai measured only the value assigned
        script: Some(
            "let big = \"xxxxxxxx\";\nfor j in 0..17 { big += big; }\nlet m = #{};\nlet i = 0;\n\
             loop {\n    m[`k${i}`] = big + i;\n    i += 1;\n}\n",
        ),
        args: &[],
        code: 2,
        says: &[
            "the playbook's data outgrew the memory limit",
            " --> playbook.rhai:6:",
            "nothing was started: nothing was changed",
        ],
    },
    Case {
        class: "a string doubled without end",
        values: None,
        script: Some("let s = \"xxxxxxxx\";\nloop { s += s; }\n"),
        args: &[],
        code: 2,
        says: &[
            "the playbook's data outgrew the memory limit",
            " --> playbook.rhai:2:",
        ],
    },
];

fn state_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_class_of_bad_input_is_refused_with_its_place_and_nothing_changes() {
    // a kept sandbox cluster, to be left byte-identical by every bad input
    let home = Test::new();
    let state = home.dir().join("state");
    Test::new()
        .script("log(\"kept\");")
        .arg("--sandbox")
        .arg("--sandbox-state")
        .arg(state.display().to_string())
        .run()
        .success();
    let before = state_bytes(&state);
    assert!(before.iter().any(|(n, _)| n == "sandbox-state.json"));
    for case in CASES {
        let mut t = Test::new().helm(4);
        if let Some(v) = case.values {
            t = t.file("bad.yaml", v);
        }
        t = match case.script {
            Some(s) => t.script(s),
            None => t
                .args(["install.rhai", "--values"])
                .arg(repo().join("examples/site.yaml").display().to_string()),
        };
        if case.values.is_some() {
            t = t.args(["--values", "bad.yaml"]);
        }
        let out = t
            .args(case.args)
            .args(["--sandbox", "--sandbox-state"])
            .arg(state.display().to_string())
            .run();
        assert_eq!(out.code, case.code, "{}: {}", case.class, out.stderr);
        for s in case.says {
            assert!(
                out.stderr.contains(s),
                "{}: lacks {s:?}\n{}",
                case.class,
                out.stderr
            );
        }
        // a value given in the wrong place is never echoed
        assert!(
            !out.stderr.contains("s3cr3t"),
            "{}: {}",
            case.class,
            out.stderr
        );
        assert_eq!(
            state_bytes(&state),
            before,
            "{}: the sandbox state changed",
            case.class
        );
    }
    eprintln!("bad-input classes: {}", CASES.len() + 1);
}

#[test]
fn a_state_that_cannot_be_read_is_left_as_it_is() {
    let home = Test::new();
    let state = home.dir().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("sandbox-state.json");
    std::fs::write(&file, "{\"kubernetes\": 5").unwrap();
    let out = Test::new()
        .script("log(\"x\");")
        .arg("--sandbox")
        .arg("--sandbox-state")
        .arg(state.display().to_string())
        .run();
    out.code(2).stderr_has(&format!(
        "the sandbox state {} cannot be read",
        file.display()
    ));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"kubernetes\": 5"
    );
}

#[test]
fn a_kept_state_seeds_the_clearml_users_once() {
    let t = Test::new()
        .file(
            "site.yaml",
            "api: {key: KEY1, secret: secret-1}\nother: {user_key: KEY2, user_secret: secret-2}\n",
        )
        .script("log(\"x\");");
    let state = t.dir().join("state");
    let t = t
        .args(["--values", "site.yaml", "--sandbox", "--sandbox-state"])
        .arg(state.display().to_string());
    let users = || {
        let snap = crate::kill_matrix::kept_state(&state);
        snap["clearml"]["users"].as_object().unwrap().len()
    };
    t.run().success();
    let first = users();
    assert!(first >= 2);
    for _ in 0..2 {
        t.run().success();
        assert_eq!(users(), first, "the seeded users are not added again");
    }
    // credentials are not kept in the state: they are seeded again from the site
    let state_text = crate::kill_matrix::kept_state(&state).to_string();
    assert!(!state_text.contains("secret-1"));
}

/// A live run refuses the example sites' `…-replace-me` credentials before anything is touched
/// (dry runs and the sandbox rehearse with them).
#[test]
fn a_live_run_refuses_the_examples_credentials() {
    let site = crate::common::repo().join("examples/site.yaml");
    let site = site.display().to_string();
    let out = crate::common::Test::new()
        .args(["install.rhai", "--values", &site])
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .env("CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS", "0")
        .run();
    out.code(2)
        .stderr_has("`dockerhub_token` (")
        .stderr_has("examples/site.yaml:19:18) still holds the example value (…-replace-me)")
        .nowhere("example-dockerhub-token-replace-me");
    crate::common::Test::new()
        .args(["install.rhai", "--values", &site, "--dry-run"])
        .env("CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS", "0")
        .run()
        .success();
    // with the variable at 1 (a rehearsal on a throwaway cluster) the examples are let through:
    // the same live run gets past validation and stops only where it first needs the cluster
    crate::common::Test::new()
        .args(["install.rhai", "--values", &site])
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .env("CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS", "1")
        .run()
        .code(2)
        .stderr_has("nothing was changed")
        .nowhere("still holds the example value")
        .nowhere("example-dockerhub-token-replace-me");
}

/// Pushing onto an array in a loop stays linear: Rhai's per-value size limits, which measure
/// the whole array again after each push, are off (the heap limit bounds the data instead).
/// 300,000 pushes and 200,000 map keys (twice the old map limit) finish, with the right result;
/// the timings are in BENCHMARKS.md.
#[test]
fn pushes_and_map_keys_in_a_loop_stay_linear_and_are_no_error() {
    Test::new()
        .script(
            "let a = [];\nfor i in 0..300000 { a.push(i); }\nlet m = #{};\n\
             for i in 0..200000 { m[`k${i}`] = i; }\nprint(`${a.len()} ${a[299999]} ${m.len()} ${m.k199999}`);\n",
        )
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("300000 299999 200000 199999\n");
}
