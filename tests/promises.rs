//! The README's promises, each judged through the product's public surface (the CLI, the library
//! API, or a server written here that records what it is sent), not through the simulators'
//! internals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clearml_script::clearml::{Client, Connection};
use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
use clearml_script::secret::Secret;
use serde_json::json;

use crate::common::{BIN, Cluster, Sim, Test, repo};

// ---------------------------------------------------------------------------------------------
// A scripted HTTP server on 127.0.0.1: answers each request as the test says, records each
// request's first line and headers.

#[derive(Clone)]
enum Answer {
    /// A ClearML envelope with this status and subcode (200 gives `data`).
    Envelope(u16, u64, serde_json::Value),
    /// Wait, then answer 200 with an empty `data`.
    Slow(Duration),
    /// Raw bytes as they are (status line and headers included), then close.
    Raw(Vec<u8>),
    /// Raw bytes, then nothing more for an hour: a stalled server.
    Stall(Vec<u8>),
}

struct Scripted {
    url: String,
    /// `(path, headers as lowercase text)` of each request, in order.
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Scripted {
    /// `answer(path, n)` answers the `n`th request (from 1) to `path`.
    fn start(answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let answer = Arc::new(answer);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let answer = answer.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        headers.push_str(&lower);
                    }
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push((path.clone(), headers));
                        l.iter().filter(|(p, _)| *p == path).count()
                    };
                    let mut stream = stream;
                    let envelope = |status: u16, sub: u64, data: serde_json::Value| {
                        let body = json!({"meta": {"result_code": status, "result_subcode": sub,
                            "result_msg": format!("scripted {status}")}, "data": data})
                        .to_string();
                        format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    };
                    let bytes = match answer(path.trim_start_matches('/'), n) {
                        Answer::Envelope(status, sub, data) => envelope(status, sub, data),
                        Answer::Slow(d) => {
                            std::thread::sleep(d);
                            envelope(200, 0, json!({}))
                        }
                        Answer::Raw(bytes) => bytes,
                        Answer::Stall(bytes) => {
                            let _ = stream.write_all(&bytes);
                            let _ = stream.flush();
                            std::thread::sleep(Duration::from_secs(3600));
                            return;
                        }
                    };
                    let _ = stream.write_all(&bytes);
                });
            }
        });
        Scripted { url, seen }
    }

    fn hits(&self, path: &str) -> usize {
        let want = format!("/{path}");
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == want)
            .count()
    }
}

fn client(url: &str, attempts: u32, timeout: Duration) -> Client {
    Client::new(Connection {
        api_url: url.to_string(),
        key: "KEY".into(),
        secret: Secret::new("scripted-secret-1"),
        ca_file: None,
        insecure: false,
        timeout,
        retry_base: Duration::from_millis(1),
        attempts,
    })
    .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

const NONE: fn() -> serde_json::Value = || json!({"queues": []});

/// A read that keeps failing transiently is sent exactly `attempts` times, no more.
#[test]
fn retries_are_bounded_by_the_attempts() {
    for status in [503, 429, 502, 504] {
        let server = Scripted::start(move |_, _| Answer::Envelope(status, 0, json!({})));
        let err = block_on(client(&server.url, 3, Duration::from_secs(10)).ping()).unwrap_err();
        assert_eq!(err.code, Some((status, 0)));
        assert_eq!(server.hits("debug.ping"), 3, "attempts on {status}");
    }
    // not transient: sent once
    let server = Scripted::start(|_, _| Answer::Envelope(500, 0, json!({})));
    block_on(client(&server.url, 3, Duration::from_secs(10)).ping()).unwrap_err();
    assert_eq!(server.hits("debug.ping"), 1);
}

/// A write is sent again only when it certainly did not take effect (429, 503); on 500, 502,
/// 504 or a timeout it may have, and it is not sent again.
#[test]
fn writes_are_retried_only_when_they_did_not_take_effect() {
    for status in [429, 503] {
        let server = Scripted::start(move |path, n| match path {
            "queues.get_all" => Answer::Envelope(200, 0, NONE()),
            _ if n == 1 => Answer::Envelope(status, 0, json!({})),
            _ => Answer::Envelope(200, 0, json!({"id": "q-1"})),
        });
        let (id, created) = block_on(
            client(&server.url, 3, Duration::from_secs(10)).create_queue("q", &[], None, None),
        )
        .unwrap();
        assert_eq!((id.as_str(), created), ("q-1", true));
        assert_eq!(server.hits("queues.create"), 2, "retried after {status}");
    }
    for status in [500, 502, 504] {
        let server = Scripted::start(move |path, _| match path {
            "queues.get_all" => Answer::Envelope(200, 0, NONE()),
            _ => Answer::Envelope(status, 0, json!({})),
        });
        let err = block_on(
            client(&server.url, 3, Duration::from_secs(10)).create_queue("q", &[], None, None),
        )
        .unwrap_err();
        assert_eq!(err.code, Some((status, 0)));
        assert_eq!(
            server.hits("queues.create"),
            1,
            "not retried after {status}"
        );
    }
    // a write that timed out is not sent again; a read that timed out is
    let server = Scripted::start(|path, _| match path {
        "queues.get_all" => Answer::Envelope(200, 0, NONE()),
        _ => Answer::Slow(Duration::from_millis(1500)),
    });
    let c = client(&server.url, 3, Duration::from_millis(300));
    let err = block_on(c.create_queue("q", &[], None, None)).unwrap_err();
    assert!(err.message.contains("no answer"), "{err}");
    assert_eq!(server.hits("queues.create"), 1);
    block_on(c.ping()).unwrap_err();
    assert_eq!(server.hits("debug.ping"), 3);
}

/// Through the CLI: 429 is waited out and the call goes through; `retries` bounds the attempts.
#[test]
fn the_cli_waits_out_429_and_stops_at_the_retry_bound() {
    let server = Scripted::start(|path, n| match (path, n) {
        ("debug.ping", 1 | 2) => Answer::Envelope(429, 0, json!({})),
        ("debug.ping", _) => Answer::Envelope(200, 0, json!({"msg": "ok"})),
        _ => Answer::Envelope(429, 0, json!({})),
    });
    let script = format!(
        "let api = clearml_connect(#{{ api_url: \"{}\", key: \"K\", secret: \"cli-secret-9\", retries: 3 }});\n\
         print(api.ping());\n\
         api.whoami();\n",
        server.url
    );
    Test::new()
        .script(&script)
        .run()
        .code(1)
        .stdout("true\n")
        .stderr_has("users.get_current_user: 429/0")
        .nowhere("cli-secret-9");
    assert_eq!(server.hits("debug.ping"), 3);
    assert_eq!(server.hits("users.get_current_user"), 3);
}

/// A port on 127.0.0.1 nothing listens on (bound, then let go).
fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A call that never connects certainly did not take effect: a read and a write alike are sent
/// `attempts` times, and the error says the server cannot be reached.
#[test]
fn a_refused_connection_is_retried_for_reads_and_writes() {
    let url = refused_url();
    let c = client(&url, 3, Duration::from_secs(10));
    let err = block_on(c.ping()).unwrap_err();
    assert_eq!(err.code, None);
    assert_eq!(
        err.to_string(),
        format!("debug.ping: cannot connect to {url} (is the API server reachable from here?)")
    );
    assert_eq!(c.requests.load(std::sync::atomic::Ordering::Relaxed), 3);
    let c = client(&url, 3, Duration::from_secs(10));
    let err = block_on(c.create_queue("q", &[], None, Some(None))).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("queues.create: cannot connect to"),
        "{err}"
    );
    assert_eq!(c.requests.load(std::sync::atomic::Ordering::Relaxed), 3);
}

/// The error names the endpoint, the HTTP status, the subcode and the server's message; an
/// answer without a ClearML envelope is an error too, with what the server sent.
#[test]
fn api_errors_name_the_endpoint_code_subcode_and_message() {
    let server = Scripted::start(|path, _| {
        match path {
        "queues.create" => Answer::Envelope(400, 801, json!({})),
        "server.info" => Answer::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!".to_vec(),
        ),
        _ => Answer::Raw(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops"
                .to_vec(),
        ),
    }
    });
    let c = client(&server.url, 3, Duration::from_secs(10));
    let err = block_on(c.call(
        "queues.create",
        &json!({}),
        None,
        clearml_script::clearml::Retry::IfNotApplied,
    ))
    .unwrap_err();
    assert!(err.is(400, 801));
    assert!(!err.is(400, 800) && !err.is(401, 801));
    assert_eq!(err.to_string(), "queues.create: 400/801 scripted 400");
    let err = block_on(c.ping()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "debug.ping: 500/0 the server answered HTTP 500 Internal Server Error without a ClearML envelope: oops"
    );
    let err = block_on(c.server_info()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server.info: 200/0 the server answered HTTP 200 OK without a ClearML envelope: not json!"
    );
}

/// Each read answers its part of the envelope's `data`.
#[test]
fn reads_answer_their_part_of_the_data() {
    let server = Scripted::start(|path, _| match path {
        "debug.ping" => Answer::Envelope(200, 0, json!({"msg": "pong"})),
        "server.info" => Answer::Envelope(200, 0, json!({"version": "2.3.0"})),
        "queues.get_all" => Answer::Envelope(
            200,
            0,
            json!({"queues": [{"id": "q-2", "name": "default-x"}, {"id": "q-1", "name": "default"}]}),
        ),
        "workers.get_all" => Answer::Envelope(200, 0, json!({"workers": [{"id": "w-1"}]})),
        "users.get_current_user" => Answer::Envelope(200, 0, json!({"user": {"name": "dana"}})),
        _ => Answer::Envelope(404, 0, json!({})),
    });
    let c = client(&server.url, 3, Duration::from_secs(10));
    assert_eq!(block_on(c.ping()).unwrap(), json!({"msg": "pong"}));
    assert_eq!(block_on(c.server_info()).unwrap()["version"], "2.3.0");
    assert_eq!(block_on(c.queues()).unwrap()[1]["id"], "q-1");
    assert_eq!(block_on(c.workers()).unwrap(), json!([{"id": "w-1"}]));
    assert_eq!(block_on(c.whoami()).unwrap(), json!({"name": "dana"}));
    // the server's `name` is a pattern: only the queue of exactly that name is the one
    let q = block_on(c.find_queue("default", None)).unwrap().unwrap();
    assert_eq!(q["id"], "q-1");
    assert_eq!(block_on(c.find_queue("other", None)).unwrap(), None);
    assert_eq!(c.api_url(), server.url);
}

/// A creation refused as a duplicate (400/801), or answered 502/504 (it may have taken effect),
/// answers the queue that is there; on any other error the queue found afterwards is not taken
/// for ours: the error stands.
#[test]
fn a_queue_created_meanwhile_is_taken_only_after_a_duplicate_or_a_gateway_error() {
    let existing = || json!({"queues": [{"id": "q-9", "name": "q"}]});
    for (status, sub) in [(400, 801), (502, 0), (504, 0)] {
        let server = Scripted::start(move |path, n| match path {
            "queues.get_all" if n == 1 => Answer::Envelope(200, 0, NONE()),
            "queues.get_all" => Answer::Envelope(200, 0, existing()),
            _ => Answer::Envelope(status, sub, json!({})),
        });
        let c = client(&server.url, 3, Duration::from_secs(10));
        let got = block_on(c.create_queue("q", &[], None, None)).unwrap();
        assert_eq!(got, ("q-9".to_string(), false), "after {status}/{sub}");
        assert_eq!(server.hits("queues.create"), 1);
    }
    for (status, sub) in [(400, 800), (500, 0)] {
        let server = Scripted::start(move |path, n| match path {
            "queues.get_all" if n == 1 => Answer::Envelope(200, 0, NONE()),
            "queues.get_all" => Answer::Envelope(200, 0, existing()),
            _ => Answer::Envelope(status, sub, json!({})),
        });
        let c = client(&server.url, 3, Duration::from_secs(10));
        let err = block_on(c.create_queue("q", &[], None, None)).unwrap_err();
        assert!(err.is(status, sub), "{err}");
        assert_eq!(server.hits("queues.get_all"), 1, "after {status}/{sub}");
    }
    // a queue already there is answered without a creation
    let server = Scripted::start(move |path, _| match path {
        "queues.get_all" => Answer::Envelope(200, 0, existing()),
        _ => Answer::Envelope(200, 0, json!({"id": "new"})),
    });
    let c = client(&server.url, 3, Duration::from_secs(10));
    let got = block_on(c.create_queue("q", &[], None, None)).unwrap();
    assert_eq!(got, ("q-9".to_string(), false));
    assert_eq!(server.hits("queues.create"), 0);
}

// ---------------------------------------------------------------------------------------------
// Secrets: each defence alone.

/// The Secret type alone: a secret too short for the redactor (under 4 characters) is masked by
/// its type on every path.
#[test]
fn the_secret_type_masks_without_the_redactor() {
    let script = "let s = secret(\"q7z\");\n\
                  print(s); debug(s); log(s); print(#{ k: s }); print([s]);\n\
                  print(\"x\" + s); print(s + \"x\"); print(is_secret(s + \"x\"));\n\
                  install_chart(\"r\", \"c\", #{ namespace: \"n\", values: #{ p: s, q: \"pre-\" + s } });\n\
                  fail(s + \" went wrong\");\n";
    let out = Test::new().script(script).arg("--dry-run").run();
    out.code(2)
        .stderr_has("error: fail: <redacted>\n")
        .stdout("<redacted>\n#{\"k\": <redacted>}\n[<redacted>]\n<redacted>\n<redacted>\ntrue\n")
        .stderr_has("<redacted>\n")
        .stderr_has("• <redacted>\n")
        .nowhere("q7z");
    let out = Test::new()
        .script("let s = secret(\"q7z\");\ninstall_chart(\"r\", \"c\", #{ namespace: \"n\", values: #{ p: s, q: \"pre-\" + s } });")
        .args(["--dry-run", "--output", "json"])
        .run();
    out.success().nowhere("q7z");
    let values = &out.json()["actions"][0]["values"];
    assert_eq!(values, &json!({"p": "<redacted>", "q": "<redacted>"}));
}

/// The redactor alone: a plain string that holds a secret's value is masked on stdout and stderr.
#[test]
fn the_redactor_masks_a_plain_string() {
    let script = "let s = secret(\"plain-leak-9876\");\n\
                  let p = \"plain-leak-\" + \"9876\";\n\
                  print(is_secret(p)); print(p); print(`in ${p} text`); log(p);\n\
                  throw \"thrown \" + p;\n";
    Test::new()
        .script(script)
        .arg("--dry-run")
        .run()
        .code(2)
        .stdout("false\n<redacted>\nin <redacted> text\n")
        .stderr_has("• <redacted>\n")
        .stderr_has("thrown <redacted>")
        .nowhere("plain-leak-9876");
    // as do values that come from the site
    Test::new()
        .script("print(\"token=\" + site.dockerhub_token.len()); print(\"plain-site-tok-1\");")
        .args(["--set", "dockerhub_token=plain-site-tok-1"])
        .run()
        .success()
        .stdout("token=16\n<redacted>\n");
}

/// Key names mark secrets: `passwd` among them, in the site values, in `read_yaml` and `env()`.
#[test]
fn secret_key_names_in_values_files_and_the_environment() {
    let yaml = "db_passwd: pw-value-1\nuser_name: alice\nsmtp:\n  password: pw-value-2\n  password_file: /etc/pw\nkey: K1\nsecret: pw-value-3\n";
    let script = "for k in [\"db_passwd\", \"user_name\", \"key\", \"secret\"] { print(`${k} ${is_secret(site[k])}`); }\n\
                  print(is_secret(site.smtp.password)); print(is_secret(site.smtp.password_file));\n\
                  let y = read_yaml(\"extra.yaml\");\n\
                  print(is_secret(y.db_passwd)); print(is_secret(y.user_name)); print(y.db_passwd);\n\
                  print(is_secret(env(\"CLEARML_GITHUB_TOKEN\"))); print(is_secret(env(\"MY_DB_PASSWD\"))); print(is_secret(env(\"CLEARML_HOST_NAME\")));\n\
                  print(env(\"CLEARML_GITHUB_TOKEN\")); print(env(\"CLEARML_HOST_NAME\"));\n";
    Test::new()
        .file("site.yaml", yaml)
        .file("extra.yaml", yaml)
        .script(script)
        .args(["--values", "site.yaml"])
        .env("CLEARML_GITHUB_TOKEN", "ghp-env-tok-1")
        .env("MY_DB_PASSWD", "x")
        .env("CLEARML_HOST_NAME", "host-1")
        .run()
        .success()
        .stdout(
            "db_passwd true\nuser_name false\nkey true\nsecret true\ntrue\nfalse\n\
             true\nfalse\n<redacted>\ntrue\ntrue\nfalse\n<redacted>\nhost-1\n",
        )
        .nowhere("pw-value")
        .nowhere("ghp-env-tok-1");
}

/// A secret interpolated into a string is stopped before the step, with the key path.
#[test]
fn an_interpolated_secret_is_refused_before_the_step() {
    Test::new()
        .script("let t = secret(\"tok-123456\");\ninstall_chart(\"r\", \"c\", #{namespace: \"n\", values: #{a: #{token: `${t}`}}});\n")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("error: install_chart: `values.a.token` holds the text <redacted>: a secret was put into a string with interpolation")
        .stderr_has(" --> playbook.rhai:2:1");
    // the same in a live run: refused in the plan pass, before helm is even looked for
    Test::new()
        .script("let t = secret(\"tok-123456\");\nhelm_repo_add(\"x\", \"https://charts.example.com\", #{ username: \"u\", password: `${t}` });\n")
        .helm(4)
        .run()
        .code(2)
        .stderr_has("holds the text <redacted>")
        .nowhere("tok-123456");
}

// ---------------------------------------------------------------------------------------------
// Validation and the plan.

#[test]
fn yaml_errors_give_file_line_and_column() {
    Test::new()
        .file("site.yaml", "a: 1\nb: [1, 2\n")
        .script("print(1);")
        .args(["--values", "site.yaml"])
        .run()
        .code(2)
        .stdout("")
        .stderr_has("error: site.yaml:2:4: invalid YAML");
    Test::new()
        .file("extra.yaml", "ok: 1\nlist:\n  - a\n bad: 2\n")
        .script("read_yaml(\"extra.yaml\");")
        .run()
        .code(2)
        .stderr_has("extra.yaml:4:");
}

#[test]
fn a_release_name_is_at_most_53_characters() {
    let name = |n: usize| "r".repeat(n);
    for (n, code) in [(53, 0), (54, 2)] {
        let out = Test::new()
            .script(&format!(
                "install_chart(\"{}\", \"c\", #{{ namespace: \"n\" }});",
                name(n)
            ))
            .arg("--dry-run")
            .run();
        out.code(code);
        if code == 2 {
            out.stderr_has("the release name").stderr_has("53");
        }
    }
}

/// The numbered text plan of the guide's control plane, on stdout.
#[test]
fn the_numbered_text_plan_is_on_stdout() {
    let out = Test::new()
        .arg(
            repo()
                .join("scripts/install-control-plane.rhai")
                .display()
                .to_string(),
        )
        .args([
            "--values",
            &repo()
                .join("tests/fixtures/guide-site.yaml")
                .display()
                .to_string(),
            "--dry-run",
        ])
        .run();
    out.success()
        .nowhere("ghp-test-token-0001")
        .nowhere("dckr-test-token-0001");
    assert!(
        out.stdout.starts_with(
            "Plan (dry run: nothing was changed): 5 steps\n  \
             1. helm.repo_add name=clearml-enterprise url=https://raw.githubusercontent.com/clearml/clearml-enterprise-helm-charts/gh-pages username=clearml password=<redacted>\n  \
             2. helm.repo_update names=[clearml-enterprise]\n  \
             3. kube.ensure_namespace name=clearml\n  \
             4. kube.apply namespace=clearml\n"
        ),
        "{}",
        out.stdout
    );
    let steps: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ") && l.trim_start().chars().next().unwrap().is_ascii_digit())
        .map(|l| l.trim_start().split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "helm.repo_add",
            "helm.repo_update",
            "kube.ensure_namespace",
            "kube.apply",
            "helm.upgrade_install"
        ]
    );
    assert!(
        out.stdout
            .contains("  5. helm.upgrade_install release=clearml chart=clearml-enterprise/clearml-enterprise namespace=clearml"),
        "{}",
        out.stdout
    );
}

/// Leftover placeholders stop a sandbox run before anything is touched: helm is never run
/// for the cluster, and no namespace or release appears.
#[test]
fn placeholders_stop_a_sandbox_run_before_anything() {
    let t = Test::new().file(
        "site.yaml",
        &std::fs::read_to_string(repo().join("examples/site.yaml"))
            .unwrap()
            .replacen(
                "base_domain: clearml.example.com",
                "base_domain: <BASE_DOMAIN>",
                1,
            ),
    );
    let calls = t.dir().join("helm-calls");
    let fake = t.dir().join("helm");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\ncase \"$1\" in version) echo v4.1.4;; esac\n",
            calls.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = t
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args(["--values", "site.yaml", "--sandbox"])
        .args(["--helm", &fake.display().to_string()])
        .run();
    out.code(2)
        .stderr_has("<BASE_DOMAIN>")
        .stderr_has("nothing was changed");
    let made = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        made.lines().all(|l| l.starts_with("version")),
        "helm ran for the cluster: {made}"
    );
    assert!(!out.stderr.contains("→ step"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// The cluster and the ClearML API through the built-ins.

#[test]
fn router_discovery_prefers_a_load_balancer_over_node_addresses() {
    let live = Cluster::new(4);
    let script = "let r = discover_router_address(); print(r.address); print(r.source);";
    live.test()
        .script(script)
        .run()
        .success()
        .stdout("203.0.113.10\nthe ExternalIP of the node sandbox-node-1\n");
    // the ingress controller's LoadBalancer Service with an address wins
    live.sim.rt.block_on(async {
        use k8s_openapi::api::core::v1::Service;
        use kube::api::{Api, PostParams};
        let kubeconfig = kube::config::Kubeconfig::read_from(&live.sim.sandbox.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let services: Api<Service> = Api::namespaced(client, "default");
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ingress-nginx-controller"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
        }))
        .unwrap();
        services.create(&PostParams::default(), &svc).await.unwrap();
    });
    router_is_the_load_balancer(&live, "default/ingress-nginx-controller");
}

/// The router address discovered on `live` is the IP the sandbox gave the LoadBalancer Service
/// `service` (`NAMESPACE/NAME`).
fn router_is_the_load_balancer(live: &Cluster, service: &str) {
    let out = live
        .test()
        .script("let r = discover_router_address(); print(r.address); print(r.source);")
        .run();
    out.success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("198.51.100."), "{}", out.stdout);
    assert_eq!(
        lines[1],
        format!("the IP of the LoadBalancer Service {service}")
    );
}

/// With no IngressClass to tell the ingress controller by, the one LoadBalancer Service with an
/// address is taken, whatever its name.
#[test]
fn router_discovery_takes_the_only_load_balancer_when_no_ingress_class_tells() {
    let live = Cluster::new(4);
    let (status, body) = live.sim.kube_http(
        "DELETE",
        "/apis/networking.k8s.io/v1/ingressclasses/nginx",
        "application/json",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "edge-lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    })
    .to_string();
    let (status, body) = live.sim.kube_http(
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        svc.as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    router_is_the_load_balancer(&live, "default/edge-lb");
}

/// A cloud load balancer (AWS's, for one) is given a hostname, not an IP: the hostname is the
/// router address, not a node's.
#[test]
fn router_discovery_takes_a_load_balancers_hostname() {
    let live = Cluster::new(4);
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ingress-nginx-controller"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    })
    .to_string();
    let (status, body) = live.sim.kube_http(
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        svc.as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let elb = "a1b2c3-1234567890.eu-west-1.elb.amazonaws.com";
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"hostname": elb}]}}}).to_string();
    let (status, body) = live.sim.kube_http(
        "PATCH",
        "/api/v1/namespaces/default/services/ingress-nginx-controller/status",
        "application/merge-patch+json",
        patch.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    live.test()
        .script("let r = discover_router_address(); print(r.address); print(r.source);")
        .run()
        .success()
        .stdout(&format!(
            "{elb}\nthe hostname of the LoadBalancer Service default/ingress-nginx-controller\n"
        ));
}

#[test]
fn queue_and_identity_builtins_against_the_api() {
    let sim = Sim::start();
    let state = &sim.sandbox.clearml.state;
    state.add_user("admin-id", "queue-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("ADMINKEY", "admin-secret-42", "admin-id");
    let script = format!(
        "let api = clearml_connect(#{{ api_url: \"{}\", key: \"ADMINKEY\", secret: \"admin-secret-42\" }});\n\
         print(api.whoami().name);\n\
         print(api.get_queue(\"promised-q\") == ());\n\
         let id = api.create_queue(\"promised-q\");\n\
         print(api.get_queue(\"promised-q\")?.id == id);\n\
         print(api.create_queue(\"promised-q\") == id);\n\
         print(api.delete_queue(\"promised-q\"));\n\
         print(api.delete_queue(\"promised-q\"));\n\
         print(api.get_queue(\"promised-q\") == ());\n",
        sim.sandbox.clearml.url()
    );
    Test::new()
        .script(&script)
        .run()
        .success()
        .stdout("queue-admin\ntrue\ntrue\ntrue\ntrue\nfalse\ntrue\n")
        .nowhere("admin-secret-42");
}

/// `helm` named with --helm is the one run, over HELM_BIN; a missing one is named.
#[test]
fn the_helm_flag_wins_over_helm_bin() {
    let t = Test::new();
    let fake = t.dir().join("my-helm");
    std::fs::write(&fake, "#!/bin/sh\necho v3.17.3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sim = Sim::start();
    t.script("install_chart(\"r\", \"c\", #{ namespace: \"n\" });")
        .args([
            "--kubeconfig",
            &sim.sandbox.kubeconfig.display().to_string(),
        ])
        .args(["--helm", "/nonexistent/helm"])
        .env("HELM_BIN", &fake.display().to_string())
        .run()
        .code(2)
        .stderr_has("--helm /nonexistent/helm: there is no such file");
}

// ---------------------------------------------------------------------------------------------
// The sandbox command.

#[test]
fn the_sandbox_command_takes_faults_and_counts_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["sandbox", "--dir", &dir.path().display().to_string()])
        .args(["--fault", "POST:/debug.ping:2:503"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut api = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines().take(4) {
        if let Some(u) = line.unwrap().strip_prefix("ClearML API: ") {
            api = u.to_string();
        }
    }
    assert!(!api.is_empty());
    let ping = || {
        crate::common::http(
            "POST",
            &format!("{api}/debug.ping"),
            "application/json",
            b"{}",
        )
        .0
    };
    assert_eq!([ping(), ping(), ping()], [503, 503, 200]);
    // the counts are for the sandbox's own credentials only
    let (code, _) = crate::common::http("GET", &format!("{api}/_sandbox/requests"), "", b"");
    assert_eq!(code, 401);
    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("clearml-credentials.json")).unwrap(),
    )
    .unwrap();
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        creds["access_key"].as_str().unwrap(),
        creds["secret_key"].as_str().unwrap()
    ));
    let (code, body) = crate::common::http_with(
        "GET",
        &format!("{api}/_sandbox/requests"),
        "",
        b"",
        Some(&format!("Basic {basic}")),
    );
    assert_eq!(code, 200);
    let counts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counts["debug.ping"], 3, "{counts}");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    // a bad spec is refused with the form
    Test::new()
        .args(["sandbox", "--fault", "POST:/x"])
        .run()
        .code(2)
        .stderr_has("expected METHOD:PATH:COUNT:STATUS");
}

#[test]
fn the_oci_generation_is_not_rehearsed() {
    Test::new()
        .arg(
            repo()
                .join("scripts/install-control-plane.rhai")
                .display()
                .to_string(),
        )
        .args([
            "--values",
            &repo()
                .join("tests/fixtures/guide-site.yaml")
                .display()
                .to_string(),
            "--set",
            "generation=oci",
            "--sandbox",
        ])
        .helm(4)
        .run()
        .code(2)
        // the sandbox's OCI registry holds no vendor chart: refused before anything runs, with
        // the way on
        .stderr_has("not from an OCI registry: rehearse with generation: repo")
        .stderr_has("no step was started: nothing was changed")
        .nowhere("dckr-test-token-0001");
}

// ---------------------------------------------------------------------------------------------
// Downloads.

fn app_package(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("pkg.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("ok.txt", stored).unwrap();
    z.write_all(b"fine").unwrap();
    z.start_file("assets/blob.bin", stored).unwrap();
    let mut x: u32 = 1;
    for _ in 0..(200 * 1024) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        z.write_all(&[(x >> 16) as u8]).unwrap();
    }
    z.finish().unwrap();
    std::fs::read(&path).unwrap()
}

/// A download that broke off is resumed by the next run with a Range request; progress is
/// given as milestone lines when stderr is not a terminal; the sha256 is checked.
#[test]
fn a_broken_download_is_resumed_with_milestones() {
    let t = Test::new();
    let body = Arc::new(app_package(t.dir()));
    let sha = clearml_script::apps_package::sha256_file(&t.dir().join("pkg.zip")).unwrap();
    let half = body.len() / 2;
    let served = body.clone();
    let server = Scripted::start(move |_, n| {
        let total = served.len();
        if n == 1 {
            // the whole length announced, half sent, then the connection drops
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n")
                    .into_bytes();
            r.extend_from_slice(&served[..half]);
            Answer::Raw(r)
        } else {
            Answer::Raw(Vec::new())
        }
    });
    // the second answer depends on the Range asked for: serve it from a second server
    let url = format!("{}/apps.zip", server.url);
    let t = t.script(&format!(
        "download_apps(\"{url}\", \"apps\", #{{ sha256: \"{sha}\" }});"
    ));
    t.run()
        .code(1)
        .stderr_has("the download broke off")
        .stderr_has("run again to resume");
    let partial = t.dir().join("apps/apps.zip.partial");
    let have = std::fs::metadata(&partial).unwrap().len() as usize;
    assert!(have > 0 && have <= half, "kept {have} bytes");
    let rest = body.clone();
    let server2 = Scripted::start(move |_, _| {
        let mut r = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {have}-{}/{}\r\nConnection: close\r\n\r\n",
            rest.len() - have,
            rest.len() - 1,
            rest.len()
        )
        .into_bytes();
        r.extend_from_slice(&rest[have..]);
        Answer::Raw(r)
    });
    let url2 = format!("{}/apps.zip", server2.url);
    std::fs::write(
        t.dir().join("resume.rhai"),
        format!("download_apps(\"{url2}\", \"apps\", #{{ sha256: \"{sha}\" }});"),
    )
    .unwrap();
    let out = Test::new()
        .arg("resume.rhai")
        .command()
        .current_dir(t.dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("download: resuming at {have} bytes")),
        "{err}"
    );
    let total = body.len();
    assert!(
        err.contains(&format!("download: 100% ({total} of {total} bytes)")),
        "{err}"
    );
    let milestones = err.lines().filter(|l| l.contains("% (")).count();
    assert!(milestones >= 3, "{err}");
    let seen = server2.seen.lock().unwrap().clone();
    assert!(
        seen[0].1.contains(&format!("range: bytes={have}-")),
        "{seen:?}"
    );
    assert_eq!(std::fs::read(t.dir().join("apps/ok.txt")).unwrap(), b"fine");
    assert!(!partial.exists());
}

/// An extraction never overwrites a file that differs from the package's; nothing is written.
#[test]
fn extraction_never_overwrites_a_differing_file() {
    let t = Test::new();
    let pkg = t.dir().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let body = app_package(t.dir());
    std::fs::write(pkg.join("apps.zip"), &body).unwrap();
    let url = format!("{}/apps.zip", crate::common::serve_dir(&pkg));
    let t = t
        .file("apps/ok.txt", "mine, edited")
        .script(&format!("download_apps(\"{url}\", \"apps\");"));
    t.run()
        .code(1)
        .stderr_has("ok.txt exists and differs from the package's `ok.txt`");
    assert_eq!(
        std::fs::read_to_string(t.dir().join("apps/ok.txt")).unwrap(),
        "mine, edited"
    );
    assert!(!t.dir().join("apps/assets/blob.bin").exists());
    // the same file is no conflict
    std::fs::write(t.dir().join("apps/ok.txt"), "fine").unwrap();
    t.run().success();
    assert!(t.dir().join("apps/assets/blob.bin").exists());
}

/// With a checksum given, a package already there is kept only when it matches: a stale or
/// broken one is downloaded again, a matching one is not.
#[test]
fn a_package_there_already_is_kept_only_when_its_checksum_matches() {
    let t = Test::new();
    let pkg = t.dir().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let body = app_package(t.dir());
    std::fs::write(pkg.join("apps.zip"), &body).unwrap();
    let sha = clearml_script::apps_package::sha256_file(&pkg.join("apps.zip")).unwrap();
    let url = format!("{}/apps.zip", crate::common::serve_dir(&pkg));
    let t = t
        .file("apps/apps.zip", "a download cut short long ago")
        .script(&format!(
            "download_apps(\"{url}\", \"apps\", #{{ sha256: \"{sha}\" }});"
        ));
    let first = t.run();
    first.success();
    assert!(
        !first.stderr.contains("is there already"),
        "{}",
        first.stderr
    );
    assert_eq!(std::fs::read(t.dir().join("apps/apps.zip")).unwrap(), body);
    assert_eq!(
        std::fs::read_to_string(t.dir().join("apps/ok.txt")).unwrap(),
        "fine"
    );
    t.run().success().stderr_has("is there already");
}

#[test]
fn a_malformed_checksum_is_refused_before_the_download() {
    let t = Test::new();
    Test::new()
        .script(
            "download_apps(\"http://127.0.0.1:9/apps.zip\", \"apps\", #{ sha256: \"abc123\" });",
        )
        .run()
        .code(2)
        .stderr_has("sha256 `abc123` is not 64 hex digits");
    assert!(!t.dir().join("apps").exists());
}

// ---------------------------------------------------------------------------------------------
// The REPL.

#[test]
fn the_repl_loads_a_file() {
    Test::new()
        .file("lib.rhai", "fn tenfold(x) { x * 10 }\nlet loaded = 7;\n")
        .arg("repl")
        .stdin(":load lib.rhai\ntenfold(loaded)\n:load missing.rhai\n")
        .run()
        .code(2)
        .stdout("70\n")
        .stderr_has("missing.rhai");
}

#[test]
fn the_repl_keeps_a_private_history_in_xdg_state_home() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["repl", "--dry-run"])
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", &state)
        .env_remove("KUBECONFIG")
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.exp_string("\u{1b}[?2004h").unwrap();
    p.send_line("let remembered = 41 + 1").unwrap();
    p.exp_string("\u{1b}[?2004h").unwrap();
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let file = state.join("clearml-script/history");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("let remembered = 41 + 1"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!home.path().join(".local/state").exists());
}

// ---------------------------------------------------------------------------------------------
// Documentation.

/// The key-name rule, through the library: separators and case are ignored, so `private_key`
/// and `Private-Key` hold a secret; a secret's length and emptiness are those of its value.
#[test]
fn secret_rule_ignores_separators_and_case() {
    use clearml_script::secret::is_secret_key;
    for name in ["ssh_private_key", "Private-Key", "DB-PASSWD", "git_Token"] {
        assert!(is_secret_key(name, &[]), "{name}");
    }
    assert!(is_secret_key("api-key", &["api_secret"]));
    assert!(!is_secret_key("private_key_path", &[]));
    let s = Secret::new("åbc");
    assert_eq!((s.len(), s.is_empty()), (3, false));
    let e = Secret::new("");
    assert_eq!((e.len(), e.is_empty()), (0, true));
}

/// A Kubernetes API that answers the connection check and then stalls, before the answer's
/// headers or in the middle of its body: the run ends with an error that names the call (verb,
/// resource, namespace/name, the request) and the server, instead of hanging.
#[test]
fn a_stalled_kubernetes_call_is_named_with_the_server() {
    let version = json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
        "gitCommit": "x", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"})
    .to_string();
    let ok = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{version}",
        version.len()
    )
    .into_bytes();
    let half_a_secret =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"kind\": \"Se"
            .to_vec();
    for (stall, what) in [
        (Vec::new(), "before the headers"),
        (half_a_secret, "in the body"),
    ] {
        let ok = ok.clone();
        let server = Scripted::start(move |path, _| match path {
            "version" => Answer::Raw(ok.clone()),
            _ => Answer::Stall(stall.clone()),
        });
        let t = Test::new()
            .file(
                "kubeconfig",
                &format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n\
                     contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
                     users:\n- name: u\n  user:\n    token: not-a-real-token\n",
                    server.url
                ),
            )
            .script("let s = get_secret(\"clearml\", \"creds\");\nensure_namespace(\"a\");\n")
            .args(["--kubeconfig", "kubeconfig"])
            .env("CLEARML_SCRIPT_KUBE_TIMEOUT", "2");
        let out = t.run();
        assert_eq!(out.code, 1, "{what}:\n{}", out.stderr);
        let expected = format!(
            "cannot read the Secret clearml/creds: the Kubernetes API at {} did not answer \
             `get secrets clearml/creds` (GET /api/v1/namespaces/clearml/secrets/creds) within 2s",
            server.url
        );
        assert!(out.stderr.contains(&expected), "{what}:\n{}", out.stderr);
        assert!(
            out.stderr
                .contains("no step was started: nothing was changed"),
            "{what}:\n{}",
            out.stderr
        );
    }
    // a timeout that is not a number of seconds is refused before anything starts
    Test::new()
        .script("ensure_namespace(\"a\");\n")
        .args(["--kubeconfig", "kubeconfig"])
        .file("kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n    token: t\n")
        .env("CLEARML_SCRIPT_KUBE_TIMEOUT", "1m")
        .run()
        .code(2)
        .stderr_has("CLEARML_SCRIPT_KUBE_TIMEOUT=\"1m\": give the Kubernetes request timeout as a whole number of seconds");
}

// ---------------------------------------------------------------------------------------------
// Review findings (helper-apps): downloads.

/// A run killed after the last byte was written but before the rename (while the sha256 of a
/// package of gigabytes is taken) leaves a complete `.partial`; the re-run asks for the bytes
/// after its end, and a server answers 416 as RFC 9110 says. The download must finish (the file
/// is whole) or start over, not fail on every run.
#[test]
fn a_complete_partial_download_is_finished_not_refused_with_416() {
    let t = Test::new();
    let body = Arc::new(app_package(t.dir()));
    let sha = clearml_script::apps_package::sha256_file(&t.dir().join("pkg.zip")).unwrap();
    std::fs::create_dir_all(t.dir().join("apps")).unwrap();
    std::fs::write(t.dir().join("apps/apps.zip.partial"), body.as_slice()).unwrap();
    let served = body.clone();
    let server = Scripted::start(move |_, n| {
        let total = served.len();
        if n == 1 {
            Answer::Raw(
                format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
            )
        } else {
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n")
                    .into_bytes();
            r.extend_from_slice(&served);
            Answer::Raw(r)
        }
    });
    let url = format!("{}/apps.zip", server.url);
    let t = t.script(&format!(
        "download_apps(\"{url}\", \"apps\", #{{ sha256: \"{sha}\" }});"
    ));
    t.run().success();
    assert_eq!(std::fs::read(t.dir().join("apps/ok.txt")).unwrap(), b"fine");
}

/// The package changed on the server between a broken run and its re-run (a new release under
/// the same URL). Without a checksum, the resume must not glue the new file's tail to the old
/// file's head and keep the result as the package: the first answer's validator (ETag) has to
/// be sent back with If-Range, or the 206's Content-Range checked.
#[test]
fn a_resume_after_the_package_changed_does_not_keep_a_spliced_file() {
    let t = Test::new();
    let old = app_package(t.dir());
    // the new release: the same layout, another blob
    let new = {
        let path = t.dir().join("new.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("ok.txt", stored).unwrap();
        z.write_all(b"new!").unwrap();
        z.start_file("assets/blob.bin", stored).unwrap();
        z.write_all(&vec![9u8; old.len()]).unwrap();
        z.finish().unwrap();
        std::fs::read(&path).unwrap()
    };
    let half = old.len() / 2;
    let (old, new) = (Arc::new(old), Arc::new(new));
    let (o, n2) = (old.clone(), new.clone());
    let server = Scripted::start(move |_, n| {
        if n == 1 {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                o.len()
            )
            .into_bytes();
            r.extend_from_slice(&o[..half]);
            Answer::Raw(r)
        } else {
            // the server now holds v2; the client sent no If-Range, so it answers the range
            let have = half; // what the client kept (asserted below)
            let mut r = format!(
                "HTTP/1.1 206 Partial Content\r\nETag: \"v2\"\r\nContent-Range: bytes {have}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                n2.len() - 1,
                n2.len(),
                n2.len() - have
            )
            .into_bytes();
            r.extend_from_slice(&n2[have..]);
            Answer::Raw(r)
        }
    });
    let url = format!("{}/apps.zip", server.url);
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    t.run().code(1).stderr_has("the download broke off");
    assert_eq!(
        std::fs::metadata(t.dir().join("apps/apps.zip.partial"))
            .unwrap()
            .len() as usize,
        half
    );
    let _ = t.run();
    let seen = server.seen.lock().unwrap().clone();
    let sent_if_range = seen[1].1.contains("if-range:");
    if let Ok(kept) = std::fs::read(t.dir().join("apps/apps.zip")) {
        assert!(
            kept == *old || kept == *new || sent_if_range,
            "apps.zip is neither release: {} bytes of v1 then v2 (request: {:?})",
            half,
            seen[1].1
        );
    }
}

/// A stalled Kubernetes API server holds helm's reads too: helm sets no deadline on its
/// requests, so `helm list` (status, `list_releases`) waited forever. It is stopped after the
/// Kubernetes request timeout, with an error that says what to do.
#[test]
fn a_stalled_kubernetes_api_does_not_hold_helm_s_reads_forever() {
    let version = json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
        "gitCommit": "x", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"})
    .to_string();
    let ok = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{version}",
        version.len()
    )
    .into_bytes();
    let server = Scripted::start(move |path, _| match path {
        "version" => Answer::Raw(ok.clone()),
        _ => Answer::Stall(Vec::new()),
    });
    let t = Test::new()
        .file(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n\
                 contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
                 users:\n- name: u\n  user:\n    token: not-a-real-token\n",
                server.url
            ),
        )
        .script("print(list_releases(\"clearml\"));\n")
        .args(["--kubeconfig", "kubeconfig"])
        .helm(4)
        .env("CLEARML_SCRIPT_KUBE_TIMEOUT", "2");
    let mut child = t
        .command()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // a generous bound that only a hang overruns
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("the run still waits for helm list after 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not answer within 2s and was stopped")
            && stderr.contains("raise CLEARML_SCRIPT_KUBE_TIMEOUT"),
        "{stderr}"
    );
}

/// A ClearML API (or a proxy before it) answering a listing with an envelope of the wrong
/// shape, without its list: status reports the API's failure instead of stopping with a
/// script error ("For loop expects iterable type"), and a queue is not taken for missing and
/// created on such an answer.
#[test]
fn a_listing_without_its_list_is_an_api_error_not_an_empty_list() {
    let sim = Sim::start();
    let server = Scripted::start(|path, _| match path {
        "server.info" => {
            Answer::Envelope(200, 0, json!({"version": "3.22.0", "api_version": "2.31"}))
        }
        "users.get_current_user" => Answer::Envelope(200, 0, json!({"user": {"name": "sup"}})),
        _ => Answer::Envelope(200, 0, json!({"items": []})),
    });
    Test::new()
        .args(["status", "--values"])
        .arg(repo().join("examples/site.yaml").display().to_string())
        .arg("--kubeconfig")
        .arg(sim.sandbox.kubeconfig.display().to_string())
        .helm(4)
        .arg("--set")
        .arg(format!("status.api_url={}", server.url))
        .run()
        .code(1)
        .stdout_has("FAIL  ClearML API")
        .stdout_has("queues.get_all: the server answered no list of queues")
        .nowhere("For loop");
    let c = client(&server.url, 3, Duration::from_secs(10));
    let err = block_on(c.create_queue("q-1", &[], None, None)).unwrap_err();
    assert!(err.message.contains("no list of queues"), "{err}");
    let err = block_on(c.list_queues(None)).unwrap_err();
    assert!(err.message.contains("no list of queues"), "{err}");
    assert_eq!(server.hits("queues.create"), 0);
}
