//! The ClearML API simulator through reqwest: the envelope and every error code a client must
//! handle, tenants and impersonation.

use base64::Engine as _;
use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
use serde_json::{Value, json};

use crate::common::Sim;

struct Api<'a> {
    sim: &'a Sim,
    client: reqwest::Client,
}

impl Api<'_> {
    fn call(
        &self,
        endpoint: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let url = format!("{}/{endpoint}", self.sim.sandbox.clearml.url());
        self.sim.rt.block_on(async {
            let mut req = self
                .client
                .post(url)
                .body(body.to_string())
                .header("Content-Type", "application/json");
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap();
            assert_eq!(
                v["meta"]["result_code"], status,
                "HTTP status equals result_code"
            );
            (status, v)
        })
    }
}

fn basic(key: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
    )
}

fn code(v: &Value) -> (u64, u64) {
    (
        v["meta"]["result_code"].as_u64().unwrap(),
        v["meta"]["result_subcode"].as_u64().unwrap(),
    )
}

const TENANT: &str = "0000000000000000000000000000tenant";

fn seeded() -> Sim {
    let sim = Sim::start();
    let s = &sim.sandbox.clearml.state;
    s.add_company(TENANT, "tenant-b");
    s.add_user("system-id", "supervisor", DEFAULT_COMPANY, Role::System);
    s.add_credentials("SYSKEY", "syssecret", "system-id");
    s.add_user("admin-id", "admin", DEFAULT_COMPANY, Role::Admin);
    s.add_credentials("ADMINKEY", "adminsecret", "admin-id");
    s.add_user("user-id", "plain", DEFAULT_COMPANY, Role::User);
    s.add_credentials("USERKEY", "usersecret", "user-id");
    s.add_user("tenant-user", "bob", TENANT, Role::User);
    s.add_fixed_user("alice", "wonderland", DEFAULT_COMPANY, true);
    sim
}

#[test]
fn simulator_envelope_health_and_auth_errors() {
    let sim = seeded();
    let api = Api {
        sim: &sim,
        client: reqwest::Client::new(),
    };
    let (status, v) = api.call("debug.ping", None, &[], "");
    assert_eq!(status, 200);
    assert_eq!(v["meta"]["error_stack"], "");
    assert_eq!(v["meta"]["endpoint"]["name"], "debug.ping");
    let (_, v) = api.call("server.info", None, &[], "{}");
    assert_eq!(v["data"]["api_version"], "2.31");
    let (_, v) = api.call("login.supported_modes", None, &[], "{}");
    assert_eq!(v["data"]["basic"]["enabled"], true);

    let (_, v) = api.call("queues.get_all", None, &[], "{}");
    assert_eq!(code(&v), (401, 20));
    assert_eq!(v["meta"]["error_stack"], Value::Null);
    let (_, v) = api.call("queues.get_all", Some("Digest abc"), &[], "{}");
    assert_eq!(code(&v), (401, 10));
    let (_, v) = api.call("queues.get_all", Some("Basic !!!"), &[], "{}");
    assert_eq!(code(&v), (401, 21));
    let (_, v) = api.call(
        "queues.get_all",
        Some(&basic("ADMINKEY", "wrong")),
        &[],
        "{}",
    );
    assert_eq!(code(&v), (401, 22));
    let (_, v) = api.call("queues.get_all", Some("Bearer nope"), &[], "{}");
    assert_eq!(code(&v), (401, 30));

    // fixed user by username:password, then a token from auth.login
    let (_, v) = api.call("auth.login", Some(&basic("alice", "wonderland")), &[], "{}");
    let token = v["data"]["token"].as_str().unwrap().to_string();
    let (status, v) = api.call(
        "users.get_current_user",
        Some(&format!("Bearer {token}")),
        &[],
        "{}",
    );
    assert_eq!(status, 200);
    assert_eq!(v["data"]["user"]["name"], "alice");
    assert_eq!(
        v["data"]["user"]["id"],
        clearml_script::sandbox::clearml::fixed_user_id(DEFAULT_COMPANY, "alice")
    );
    // a system identity has no user record
    let (_, v) = api.call(
        "users.get_current_user",
        Some(&basic("SYSKEY", "syssecret")),
        &[],
        "{}",
    );
    assert_eq!(code(&v), (400, 300));

    // path, version and endpoint errors
    let (_, v) = api.call("nodots", None, &[], "{}");
    assert_eq!(code(&v), (400, 0));
    let (_, v) = api.call("vX/queues.get_all", None, &[], "{}");
    assert_eq!(code(&v), (400, 2));
    let (_, v) = api.call(
        "v2.31/queues.nope",
        Some(&basic("ADMINKEY", "adminsecret")),
        &[],
        "{}",
    );
    assert_eq!(code(&v), (404, 0));
    let (_, v) = api.call(
        "queues.get_all",
        Some(&basic("ADMINKEY", "adminsecret")),
        &[],
        "{bad json",
    );
    assert_eq!(code(&v), (400, 0));
}

#[test]
fn simulator_queues_and_their_errors() {
    let sim = seeded();
    let api = Api {
        sim: &sim,
        client: reqwest::Client::new(),
    };
    let admin = basic("ADMINKEY", "adminsecret");
    let (status, v) = api.call(
        "queues.create",
        Some(&admin),
        &[],
        r#"{"name": "gpu", "tags": ["x"]}"#,
    );
    assert_eq!(status, 200);
    let id = v["data"]["id"].as_str().unwrap().to_string();
    api.call(
        "queues.create",
        Some(&admin),
        &[],
        r#"{"name": "gpu-large"}"#,
    );
    let (_, v) = api.call("queues.create", Some(&admin), &[], r#"{"name": "gpu"}"#);
    assert_eq!(code(&v), (400, 801));
    assert!(
        v["meta"]["result_msg"]
            .as_str()
            .unwrap()
            .ends_with(&format!(": name=gpu, company={DEFAULT_COMPANY}"))
    );
    let (_, v) = api.call("queues.create", Some(&admin), &[], r#"{"name": "ab"}"#);
    assert_eq!(code(&v), (400, 800));
    let (_, v) = api.call("queues.create", Some(&admin), &[], r#"{}"#);
    assert_eq!(code(&v), (400, 12));

    // the name is an unanchored regular expression
    let (_, v) = api.call("queues.get_all", Some(&admin), &[], r#"{"name": "gpu"}"#);
    assert_eq!(v["data"]["queues"].as_array().unwrap().len(), 2);
    let (_, v) = api.call("queues.get_all", Some(&admin), &[], r#"{"name": "^gpu$"}"#);
    assert_eq!(v["data"]["queues"].as_array().unwrap().len(), 1);

    let (_, v) = api.call(
        "queues.get_by_id",
        Some(&admin),
        &[],
        &json!({"queue": id}).to_string(),
    );
    assert_eq!(v["data"]["queue"]["name"], "gpu");
    let (_, v) = api.call(
        "queues.get_by_id",
        Some(&admin),
        &[],
        r#"{"queue": "nope"}"#,
    );
    assert_eq!(code(&v), (400, 701));
    let (_, v) = api.call("queues.get_default", Some(&admin), &[], "{}");
    let default_id = v["data"]["id"].as_str().unwrap().to_string();
    api.call(
        "queues.delete",
        Some(&admin),
        &[],
        &json!({"queue": default_id}).to_string(),
    );
    let (_, v) = api.call("queues.get_default", Some(&admin), &[], "{}");
    assert_eq!(code(&v), (400, 707));

    // injected faults: 503 once, then success
    sim.faults.fail("POST", "/queues.get_all", 1, 503);
    let (status, _) = api.call("queues.get_all", Some(&admin), &[], "{}");
    assert_eq!(status, 503);
    let (status, _) = api.call("queues.get_all", Some(&admin), &[], "{}");
    assert_eq!(status, 200);
}

#[test]
fn simulator_impersonation_rules_and_tenants() {
    let sim = seeded();
    let api = Api {
        sim: &sim,
        client: reqwest::Client::new(),
    };
    let system = basic("SYSKEY", "syssecret");
    let (status, _) = api.call(
        "queues.create",
        Some(&system),
        &[("X-Clearml-Impersonate-As", "tenant-user")],
        r#"{"name": "tenant-q"}"#,
    );
    assert_eq!(status, 200);
    let tenant_queues = sim.sandbox.clearml.state.queues(TENANT);
    assert!(
        tenant_queues.iter().any(|q| q.name == "tenant-q"),
        "the queue lands in the tenant"
    );
    assert!(
        !sim.sandbox
            .clearml
            .state
            .queues(DEFAULT_COMPANY)
            .iter()
            .any(|q| q.name == "tenant-q")
    );

    let user = basic("USERKEY", "usersecret");
    let (_, v) = api.call(
        "queues.create",
        Some(&user),
        &[("X-Clearml-Impersonate-As", "admin-id")],
        r#"{"name": "nope"}"#,
    );
    assert_eq!(code(&v), (400, 6));
    let (_, v) = api.call(
        "queues.get_all",
        Some(&system),
        &[
            ("X-Clearml-Impersonate-As", "user-id"),
            ("X-Clearml-Act-As", "user-id"),
        ],
        "{}",
    );
    assert_eq!(code(&v), (400, 5));
    let admin = basic("ADMINKEY", "adminsecret");
    let (_, v) = api.call(
        "queues.get_all",
        Some(&admin),
        &[("X-Clearml-Impersonate-As", "tenant-user")],
        "{}",
    );
    assert_eq!(code(&v), (400, 6), "an admin stays in its own company");
    let (_, v) = api.call("auth.create_user", Some(&user), &[], r#"{"name": "x"}"#);
    assert_eq!(code(&v), (403, 20));

    // a tenant admin's credentials, created while impersonating
    let (_, v) = api.call(
        "auth.create_user",
        Some(&system),
        &[],
        &json!({"name": "carol", "company": TENANT, "role": "admin"}).to_string(),
    );
    let carol = v["data"]["id"].as_str().unwrap().to_string();
    let (_, v) = api.call(
        "auth.create_credentials",
        Some(&system),
        &[("X-Clearml-Impersonate-As", &carol)],
        r#"{"label": "agent"}"#,
    );
    let key = v["data"]["credentials"]["access_key"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = v["data"]["credentials"]["secret_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = api.call(
        "users.get_current_user",
        Some(&basic(&key, &secret)),
        &[],
        "{}",
    );
    assert_eq!(v["data"]["user"]["company"]["id"], TENANT);
    assert_eq!(v["data"]["user"]["role"], "admin");
}

#[test]
fn simulator_is_seeded_from_the_site_credentials() {
    let sim = Sim::start();
    let mut site = clearml_script::site::parse_yaml(
        "supervisor:\n  user_key: SUPKEY\n  user_secret: supsecret\nagent:\n  apiKey: AGENTKEY\n  apiSecret: agentsecret\nfixed_users:\n  - {username: dana, password: pw-dana-1, admin: true}\n",
    )
    .unwrap();
    clearml_script::site::mark_secrets(&mut site);
    let seeded = sim.sandbox.seed_from_site(&site);
    assert_eq!(seeded.len(), 3, "{seeded:?}");
    let api = Api {
        sim: &sim,
        client: reqwest::Client::new(),
    };
    let (_, v) = api.call(
        "users.get_current_user",
        Some(&basic("SUPKEY", "supsecret")),
        &[],
        "{}",
    );
    assert_eq!(code(&v), (400, 300), "the supervisor is a system identity");
    let (status, v) = api.call(
        "users.get_current_user",
        Some(&basic("AGENTKEY", "agentsecret")),
        &[],
        "{}",
    );
    assert_eq!(status, 200);
    assert_eq!(v["data"]["user"]["role"], "admin");
    let (status, _) = api.call("auth.login", Some(&basic("dana", "pw-dana-1")), &[], "{}");
    assert_eq!(status, 200);
}

#[test]
fn create_queue_is_idempotent_even_when_racing() {
    let sim = seeded();
    let conn = clearml_script::clearml::Connection {
        api_url: sim.sandbox.clearml.url(),
        key: "ADMINKEY".into(),
        secret: clearml_script::secret::Secret::new("adminsecret"),
        ca_file: None,
        insecure: false,
        timeout: std::time::Duration::from_secs(10),
        retry_base: std::time::Duration::from_millis(10),
        attempts: 3,
    };
    let a = clearml_script::clearml::Client::new(conn.clone()).unwrap();
    let b = clearml_script::clearml::Client::new(conn).unwrap();
    let (ra, rb) = sim.rt.block_on(async {
        tokio::join!(
            a.create_queue("race-q", &[], None, None),
            b.create_queue("race-q", &[], None, None)
        )
    });
    let (ida, ca) = ra.unwrap();
    let (idb, cb) = rb.unwrap();
    assert_eq!(ida, idb, "both answer the one queue");
    assert!(ca ^ cb, "exactly one of them created it ({ca}, {cb})");
    let named: Vec<_> = sim
        .sandbox
        .clearml
        .state
        .queues(DEFAULT_COMPANY)
        .into_iter()
        .filter(|q| q.name == "race-q")
        .collect();
    assert_eq!(named.len(), 1);
    // a name with regular-expression characters is matched exactly
    let (other, created) = sim
        .rt
        .block_on(a.create_queue("gpuxlarge", &[], None, None))
        .unwrap();
    assert!(created);
    let (dot, created) = sim
        .rt
        .block_on(a.create_queue("gpu.large", &[], None, None))
        .unwrap();
    assert!(created, "`gpu.large` must not match gpuxlarge");
    assert_ne!(dot, other);
}

#[test]
fn queues_are_listed_once_across_several_pages_then_only_the_missing_created() {
    use clearml_script::clearml::QUEUE_PAGE;
    let sim = seeded();
    let conn = clearml_script::clearml::Connection {
        api_url: sim.sandbox.clearml.url(),
        key: "ADMINKEY".into(),
        secret: clearml_script::secret::Secret::new("adminsecret"),
        ca_file: None,
        insecure: false,
        timeout: std::time::Duration::from_secs(10),
        retry_base: std::time::Duration::from_millis(10),
        attempts: 3,
    };
    let client = clearml_script::clearml::Client::new(conn).unwrap();
    // more than two pages of queues
    let n = QUEUE_PAGE * 2 + 17;
    let names: Vec<String> = (0..n).map(|i| format!("paged-{i:05}")).collect();
    sim.rt.block_on(async {
        for name in &names {
            client
                .create_queue(name, &[], None, Some(None))
                .await
                .unwrap();
        }
    });
    let state = &sim.sandbox.clearml.state;
    let get_all = |s: &clearml_script::sandbox::clearml::ClearmlState| {
        s.requests().get("queues.get_all").copied().unwrap_or(0)
    };
    let before = get_all(state);
    let listed = sim.rt.block_on(client.list_queues(None)).unwrap();
    assert_eq!(get_all(state) - before, 3, "three pages, one request each");
    for name in &names {
        assert!(listed.contains_key(name), "{name} listed");
    }
    let ids: std::collections::HashSet<&String> = listed.values().collect();
    assert_eq!(ids.len(), listed.len(), "each queue once");
    // a known queue is answered from the listing; a missing one is created without a look-up
    let creates = state.requests().get("queues.create").copied().unwrap_or(0);
    let (id, created) = sim
        .rt
        .block_on(client.create_queue(
            &names[700],
            &[],
            None,
            Some(listed.get(&names[700]).map(String::as_str)),
        ))
        .unwrap();
    assert!(!created);
    assert_eq!(&id, &listed[&names[700]]);
    let (_, created) = sim
        .rt
        .block_on(client.create_queue("paged-new", &[], None, Some(None)))
        .unwrap();
    assert!(created);
    assert_eq!(
        state.requests().get("queues.create").copied().unwrap_or(0),
        creates + 1
    );
    assert_eq!(get_all(state) - before, 3, "no look-up per queue");
}

/// A list option takes a list of strings or one string, and nothing else (the plan shows each).
#[test]
fn tags_are_a_list_of_strings_or_one_string() {
    let connect = "let api = clearml_connect(#{ api_url: \"https://api.example.com\", key: \"KEY12345\", secret: \"secret-12345678\" });\n";
    crate::common::Test::new()
        .script(&format!(
            "{connect}api.create_queue(\"queue-one\", #{{ tags: [\"a\", \"b\"] }});\napi.create_queue(\"queue-two\", #{{ tags: \"c\" }});\n"
        ))
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("1. clearml.create_queue name=queue-one tags=[a,b] ")
        .stdout_has("2. clearml.create_queue name=queue-two tags=[c] ");
    crate::common::Test::new()
        .script(&format!(
            "{connect}api.create_queue(\"queue-one\", #{{ tags: 5 }});\n"
        ))
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("create_queue: option `tags` must be a list of strings, not i64");
}

// ---- review: the client against a server that misbehaves ----

/// A ClearML API stand-in on 127.0.0.1: `answer(n, endpoint, body)` gives the status, extra
/// headers and body of the n-th request (from 0). Answers the URL and the request counter.
fn canned(
    answer: impl Fn(usize, &str, &Value) -> (u16, Vec<(String, String)>, String) + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (answer, counter) = (answer.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let endpoint = path.trim_start_matches('/');
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (status, headers, text) = answer(n, endpoint, &body);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    text.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&text);
                let mut stream = stream;
                let _ = stream.write_all(out.as_bytes());
            });
        }
    });
    (url, count)
}

fn client_for(url: &str, attempts: u32) -> clearml_script::clearml::Client {
    clearml_script::clearml::Client::new(clearml_script::clearml::Connection {
        api_url: url.to_string(),
        key: "ADMINKEY".into(),
        secret: clearml_script::secret::Secret::new("adminsecret"),
        ca_file: None,
        insecure: false,
        timeout: std::time::Duration::from_secs(5),
        retry_base: std::time::Duration::from_millis(10),
        attempts,
    })
    .unwrap()
}

fn envelope(code: u64, sub: u64, msg: &str, data: Value) -> String {
    json!({"meta": {"result_code": code, "result_subcode": sub, "result_msg": msg}, "data": data})
        .to_string()
}

/// A server that ignores `page` (an older server, a proxy that drops the field) answers the
/// same full page every time: the listing must end, not ask forever.
#[test]
fn a_listing_ends_when_the_server_answers_the_same_page_again() {
    use clearml_script::clearml::QUEUE_PAGE;
    let (url, count) = canned(|_, _, _| {
        let queues: Vec<Value> = (0..QUEUE_PAGE)
            .map(|i| json!({"id": format!("id-{i}"), "name": format!("q-{i:04}")}))
            .collect();
        (
            200,
            vec![],
            envelope(200, 0, "OK", json!({"queues": queues})),
        )
    });
    let client = client_for(&url, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(20), client.list_queues(None)).await
    });
    let sent = count.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        listed.is_ok(),
        "the listing did not end in 20 s: {sent} requests for the same page"
    );
    assert!(sent <= 3, "{sent} requests for one page of queues");
}

/// HTTP 200 whose envelope says an error (`meta.result_code` 400/801, 401/22): the call failed,
/// it did not answer data. A create must not say "created" with an empty id, and a whoami must
/// not answer as if the credentials had logged in.
#[test]
fn an_error_envelope_under_http_200_is_an_error() {
    let (url, _) = canned(|_, endpoint, _| {
        let text = match endpoint {
            "queues.create" => envelope(
                400,
                801,
                "Queue with this name already exists: name=gpu-q, company=c",
                Value::Null,
            ),
            _ => envelope(401, 22, "Unauthorized (invalid credentials)", Value::Null),
        };
        (200, vec![], text)
    });
    let client = client_for(&url, 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt.block_on(client.create_queue("gpu-q", &[], None, Some(None)));
    assert!(
        !matches!(&created, Ok((id, true)) if id.is_empty()),
        "answered created with an empty id: {created:?}"
    );
    let who = rt.block_on(client.whoami());
    assert!(who.is_err(), "a 401 envelope answered as a login: {who:?}");
}

/// A 200 answer that is JSON but no envelope (no `meta`, no `data.id`): not a created queue.
#[test]
fn a_create_answered_without_an_id_is_an_error() {
    let (url, _) = canned(|_, _, _| (200, vec![], "{}".to_string()));
    let client = client_for(&url, 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt.block_on(client.create_queue("gpu-q", &[], None, Some(None)));
    assert!(created.is_err(), "{created:?}");
}

/// 429 with `Retry-After: 3` for the first 3 seconds: a client that waits as asked gets
/// through within its attempts; one that retries after milliseconds spends them all.
#[test]
fn a_429_waits_as_long_as_retry_after_says() {
    let start = std::time::Instant::now();
    let (url, count) = canned(move |_, _, _| {
        if start.elapsed() < std::time::Duration::from_secs(3) {
            (
                429,
                vec![("Retry-After".into(), "3".into())],
                envelope(429, 0, "Too Many Requests", Value::Null),
            )
        } else {
            (200, vec![], envelope(200, 0, "OK", json!({"id": "new-id"})))
        }
    });
    let client = client_for(&url, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt.block_on(client.create_queue("gpu-q", &[], None, Some(None)));
    assert!(
        created.is_ok(),
        "{created:?} after {} requests in {:?}",
        count.load(std::sync::atomic::Ordering::SeqCst),
        start.elapsed()
    );
}
