//! The ClearML API client (reqwest with rustls): the envelope, errors that name the endpoint,
//! result code, subcode and message, retries with backoff and jitter where a call certainly did
//! not take effect, and idempotent queue creation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value as J, json};

use crate::secret::Secret;

/// How to reach the API and as whom.
#[derive(Clone, Debug)]
pub struct Connection {
    pub api_url: String,
    pub key: String,
    pub secret: Secret,
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure: bool,
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, with jitter.
    pub retry_base: Duration,
    pub attempts: u32,
}

/// An error from the API or on the way to it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub endpoint: String,
    /// HTTP status and the envelope's result code/subcode, when the server answered.
    pub code: Option<(u16, u64)>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some((code, sub)) => write!(f, "{}: {code}/{sub} {}", self.endpoint, self.message),
            None => write!(f, "{}: {}", self.endpoint, self.message),
        }
    }
}

impl ApiError {
    pub fn is(&self, code: u16, sub: u64) -> bool {
        self.code == Some((code, sub))
    }
}

pub struct Client {
    conn: Connection,
    http: reqwest::Client,
    /// Requests sent, for the benchmark and the tests.
    pub requests: std::sync::atomic::AtomicU64,
}

/// Whether a failed call may be sent again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads: any transient failure.
    Safe,
    /// Writes: only when the call certainly did not take effect (no connection, 429, 503).
    IfNotApplied,
}

impl Client {
    pub fn new(conn: Connection) -> Result<Client, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(conn.timeout)
            .connect_timeout(conn.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("clearml-script/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &conn.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                format!("the CA file {} is not a PEM certificate: {e}", ca.display())
            })?;
            builder = builder.add_root_certificate(cert);
        }
        if conn.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(Client {
            conn,
            http,
            requests: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn api_url(&self) -> &str {
        &self.conn.api_url
    }

    /// Call `service.action` with a JSON body, as the connection's identity or impersonating a
    /// user; answers the envelope's `data`.
    pub async fn call(
        &self,
        endpoint: &str,
        body: &J,
        impersonate_as: Option<&str>,
        retry: Retry,
    ) -> Result<J, ApiError> {
        let url = format!("{}/{endpoint}", self.conn.api_url.trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .post(&url)
                .basic_auth(&self.conn.key, Some(self.conn.secret.expose()))
                .json(body);
            if let Some(user) = impersonate_as {
                req = req.header("X-Clearml-Impersonate-As", user);
            }
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::ui::debug(&format!(
                "POST {url} as {}{} {body}",
                self.conn.key,
                impersonate_as.map_or(String::new(), |u| format!(", impersonating {u},"))
            ));
            // a read-only call is asked again whatever the transport did (a timeout, a dropped
            // connection, an answer cut off); a write only when it never connected, since it
            // may have taken effect
            let safe = retry == Retry::Safe;
            let outcome = match req.send().await {
                Ok(resp) => Self::envelope(endpoint, resp, safe).await,
                Err(e) => Err((
                    ApiError {
                        endpoint: endpoint.to_string(),
                        code: None,
                        message: describe(&e, &self.conn.api_url),
                    },
                    e.is_connect() || safe,
                    None,
                )),
            };
            match outcome {
                Ok(data) => return Ok(data),
                Err((err, transient, retry_after)) => {
                    let retry_status = match err.code {
                        Some((429 | 503, _)) => true,
                        Some((502 | 504, _)) => retry == Retry::Safe,
                        _ => false,
                    };
                    if attempt >= self.conn.attempts || !(transient || retry_status) {
                        return Err(err);
                    }
                    // the server's Retry-After (429, 503) when longer than our own backoff
                    let wait = backoff(self.conn.retry_base, attempt)
                        .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn envelope(
        endpoint: &str,
        resp: reqwest::Response,
        safe: bool,
    ) -> Result<J, (ApiError, bool, Option<Duration>)> {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| {
            let err = ApiError {
                endpoint: endpoint.to_string(),
                code: None,
                message: format!("the answer was cut off: {e}"),
            };
            (err, safe, None)
        })?;
        let parsed: Option<J> = serde_json::from_str(&text).ok();
        let meta = parsed
            .as_ref()
            .map(|v| &v["meta"])
            .filter(|m| m.is_object());
        // the envelope's own code: a server (or a proxy before it) may answer HTTP 200 with
        // an error envelope
        let result_code = meta
            .and_then(|m| m["result_code"].as_u64())
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (100..600).contains(c));
        if status == StatusCode::OK
            && let (Some(v), Some(_)) = (&parsed, meta)
            && result_code.is_none_or(|c| c == 200)
        {
            return Ok(v["data"].clone());
        }
        let code = match result_code {
            Some(c) if status == StatusCode::OK => c,
            _ => status.as_u16(),
        };
        let sub = meta.and_then(|m| m["result_subcode"].as_u64()).unwrap_or(0);
        let msg = meta
            .and_then(|m| m["result_msg"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                let snippet: String = text.chars().take(200).collect();
                format!(
                    "the server answered HTTP {status} without a ClearML envelope{}",
                    if snippet.is_empty() {
                        String::new()
                    } else {
                        format!(": {snippet}")
                    }
                )
            });
        Err((
            ApiError {
                endpoint: endpoint.to_string(),
                code: Some((code, sub)),
                message: msg,
            },
            false,
            retry_after,
        ))
    }

    pub async fn ping(&self) -> Result<J, ApiError> {
        self.call("debug.ping", &json!({}), None, Retry::Safe).await
    }

    /// The server's version (`server.info`).
    pub async fn server_info(&self) -> Result<J, ApiError> {
        self.call("server.info", &json!({}), None, Retry::Safe)
            .await
    }

    /// Every queue of the identity's company.
    pub async fn queues(&self) -> Result<J, ApiError> {
        let body = json!({"only_fields": ["id", "name"], "search_hidden": true});
        let data = self
            .call("queues.get_all", &body, None, Retry::Safe)
            .await?;
        listed("queues.get_all", &data, "queues").map(|q| J::Array(q.clone()))
    }

    /// The registered workers, with the queues each serves.
    pub async fn workers(&self) -> Result<J, ApiError> {
        let data = self
            .call("workers.get_all", &json!({}), None, Retry::Safe)
            .await?;
        listed("workers.get_all", &data, "workers").map(|w| J::Array(w.clone()))
    }

    pub async fn whoami(&self) -> Result<J, ApiError> {
        self.call("users.get_current_user", &json!({}), None, Retry::Safe)
            .await
            .map(|d| d["user"].clone())
    }

    /// The queue of exactly this name (the API's `name` is a regular expression: it is anchored
    /// and escaped here, and the answer compared exactly).
    pub async fn find_queue(
        &self,
        name: &str,
        impersonate_as: Option<&str>,
    ) -> Result<Option<J>, ApiError> {
        let body = json!({
            "name": format!("^{}$", regex::escape(name)),
            "only_fields": ["id", "name", "tags", "system_tags"],
            "search_hidden": true,
        });
        let data = self
            .call("queues.get_all", &body, impersonate_as, Retry::Safe)
            .await?;
        Ok(listed("queues.get_all", &data, "queues")?
            .iter()
            .find(|q| q["name"] == name)
            .cloned())
    }

    /// Every queue this identity sees, by name: listed once, paged, only the name and id.
    pub async fn list_queues(
        &self,
        impersonate_as: Option<&str>,
    ) -> Result<std::collections::HashMap<String, String>, ApiError> {
        let mut out = std::collections::HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for page in 0..MAX_QUEUE_PAGES {
            let body = json!({
                "only_fields": ["id", "name"],
                "search_hidden": true,
                "order_by": ["id"],
                "page": page,
                "page_size": QUEUE_PAGE,
            });
            let data = self
                .call("queues.get_all", &body, impersonate_as, Retry::Safe)
                .await?;
            let queues = listed("queues.get_all", &data, "queues")?;
            let mut fresh = false;
            for q in queues {
                if let (Some(name), Some(id)) = (q["name"].as_str(), q["id"].as_str()) {
                    fresh |= ids.insert(id.to_string());
                    out.insert(name.to_string(), id.to_string());
                }
            }
            // a short page is the last; a page with nothing new is a server that ignores
            // `page` (what it did not list is looked up after a duplicate's 400/801)
            if queues.len() < QUEUE_PAGE || !fresh {
                break;
            }
        }
        Ok(out)
    }

    /// Create the queue unless it exists; answers `(id, created)`. `known` is its id when a
    /// listing found it; without a listing the name is looked up exactly first.
    pub async fn create_queue(
        &self,
        name: &str,
        tags: &[String],
        impersonate_as: Option<&str>,
        known: Option<Option<&str>>,
    ) -> Result<(String, bool), ApiError> {
        match known {
            Some(Some(id)) => return Ok((id.to_string(), false)),
            Some(None) => {}
            None => {
                if let Some(q) = self.find_queue(name, impersonate_as).await? {
                    return Ok((q["id"].as_str().unwrap_or_default().to_string(), false));
                }
            }
        }
        let body = json!({"name": name, "tags": tags});
        match self
            .call("queues.create", &body, impersonate_as, Retry::IfNotApplied)
            .await
        {
            Ok(data) => match data["id"].as_str().filter(|id| !id.is_empty()) {
                Some(id) => Ok((id.to_string(), true)),
                None => Err(ApiError {
                    endpoint: "queues.create".to_string(),
                    code: None,
                    message: format!("the server answered no queue id for `{name}`: {data}"),
                }),
            },
            // created meanwhile, or by an earlier attempt whose answer was lost
            Err(e) if e.is(400, 801) || matches!(e.code, Some((502 | 504, _))) => {
                match self.find_queue(name, impersonate_as).await? {
                    Some(q) => Ok((q["id"].as_str().unwrap_or_default().to_string(), false)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn delete_queue(
        &self,
        name: &str,
        impersonate_as: Option<&str>,
    ) -> Result<bool, ApiError> {
        let Some(q) = self.find_queue(name, impersonate_as).await? else {
            return Ok(false);
        };
        self.call(
            "queues.delete",
            &json!({"queue": q["id"], "force": true}),
            impersonate_as,
            Retry::IfNotApplied,
        )
        .await
        .map(|_| true)
    }
}

/// The list under `key` of an answer's data: an answer without it (a proxy's or another
/// server's JSON) is an error, not an empty list, which would read as "nothing there".
fn listed<'a>(endpoint: &str, data: &'a J, key: &str) -> Result<&'a Vec<J>, ApiError> {
    data[key].as_array().ok_or_else(|| {
        let shown: String = data.to_string().chars().take(200).collect();
        ApiError {
            endpoint: endpoint.to_string(),
            code: None,
            message: format!(
                "the server answered no list of {key} (is the URL a ClearML API server?): {shown}"
            ),
        }
    })
}

/// Queues per page of a listing.
pub const QUEUE_PAGE: usize = 500;

/// Pages of a listing at most (a server that answers new queues forever is not asked forever).
pub const MAX_QUEUE_PAGES: usize = 2000;

/// The longest Retry-After honoured (a longer one is a wait of this long).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A Retry-After of whole seconds (an HTTP date, a negative or a malformed value: none).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Queue creations in flight at once.
pub const QUEUE_CONCURRENCY: usize = 8;

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << attempt.min(8).saturating_sub(1));
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let jitter = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    exp.mul_f64(0.5 + jitter * 0.5)
}

fn describe(e: &reqwest::Error, url: &str) -> String {
    if e.is_connect() {
        format!("cannot connect to {url} (is the API server reachable from here?)")
    } else if e.is_timeout() {
        format!("no answer from {url} in time")
    } else {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    //! The client against the embedded ClearML simulator, with injected faults; what is judged
    //! is what the client sends (its own request count, and the simulator's count by endpoint)
    //! and what it answers.

    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::sandbox::clearml::{self as sim, ClearmlState, DEFAULT_COMPANY, Role};
    use crate::sandbox::faults::Faults;

    /// An answer as `envelope` reads it: HTTP `status`, `Retry-After` when given, the body.
    fn read(
        status: u16,
        retry: Option<&str>,
        body: &str,
    ) -> Result<J, (ApiError, bool, Option<Duration>)> {
        let mut r = http::Response::builder().status(status);
        if let Some(v) = retry {
            r = r.header("Retry-After", v);
        }
        let resp = reqwest::Response::from(r.body(body.to_string()).unwrap());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(Client::envelope("queues.create", resp, false))
    }

    /// The envelope's own code counts at HTTP 200 (a proxy's 200 with an error envelope is
    /// that error); at any other status, the HTTP status is the code; a 200 without an
    /// envelope is an error too. `Retry-After` of whole seconds is read, anything else is none.
    #[test]
    fn the_envelope_and_the_status_give_the_code() {
        let env = |code: u16, sub: u16| {
            format!(
                r#"{{"meta": {{"result_code": {code}, "result_subcode": {sub}, "result_msg": "m"}}, "data": {{"id": "q1"}}}}"#
            )
        };
        assert_eq!(read(200, None, &env(200, 0)).unwrap(), json!({"id": "q1"}));
        let (e, _, _) = read(200, None, &env(400, 801)).unwrap_err();
        assert!(e.is(400, 801), "{e:?}");
        let (e, _, _) = read(503, None, &env(200, 0)).unwrap_err();
        assert_eq!(e.code, Some((503, 0)));
        let (e, _, _) = read(200, None, "{}").unwrap_err();
        assert!(e.message.contains("without a ClearML envelope"), "{e:?}");
        let wait = |v: Option<&str>| read(429, v, &env(429, 0)).unwrap_err().2;
        assert_eq!(wait(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(wait(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(wait(Some("-1")), None);
        assert_eq!(wait(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(wait(None), None);
    }

    struct Api {
        rt: tokio::runtime::Runtime,
        server: sim::ClearmlServer,
        faults: Faults,
    }

    /// The simulator, with an administrator whose credentials the clients use.
    fn sim_api() -> Api {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let faults = Faults::default();
        let state = ClearmlState::new(faults.clone());
        state.add_user("admin-id", "admin", DEFAULT_COMPANY, Role::Admin);
        state.add_credentials("KEY", "unit-secret-1", "admin-id");
        let server = rt.block_on(sim::start(state)).unwrap();
        Api { rt, server, faults }
    }

    fn client(url: &str, attempts: u32, timeout: Duration) -> Client {
        Client::new(Connection {
            api_url: url.to_string(),
            key: "KEY".into(),
            secret: Secret::new("unit-secret-1"),
            ca_file: None,
            insecure: false,
            timeout,
            retry_base: Duration::from_millis(1),
            attempts,
        })
        .unwrap()
    }

    impl Api {
        fn client(&self, attempts: u32, timeout: Duration) -> Client {
            client(&self.server.url(), attempts, timeout)
        }

        fn run<F: std::future::Future>(&self, f: F) -> F::Output {
            self.rt.block_on(f)
        }

        /// Requests the simulator was sent for `endpoint`.
        fn hits(&self, endpoint: &str) -> u64 {
            self.server
                .state
                .requests()
                .get(endpoint)
                .copied()
                .unwrap_or(0)
        }
    }

    const TEN_SECONDS: Duration = Duration::from_secs(10);

    /// A read failing with 429, 503, 502 or 504 is sent `attempts` times, no more; on 500 once.
    /// (The fault lasts ten requests: a client that retried without bound would get through.)
    #[test]
    fn reads_are_retried_on_transient_errors_up_to_the_attempts() {
        for status in [429, 503, 502, 504] {
            let api = sim_api();
            api.faults.fail("POST", "/debug.ping", 10, status);
            let c = api.client(3, TEN_SECONDS);
            let err = api.run(c.ping()).unwrap_err();
            assert_eq!(err.code, Some((status, 0)), "{err}");
            assert_eq!(c.requests.load(Relaxed), 3, "attempts on {status}");
            assert_eq!(api.hits("debug.ping"), 3);
        }
        let api = sim_api();
        api.faults.fail("POST", "/debug.ping", 10, 500);
        let c = api.client(3, TEN_SECONDS);
        assert_eq!(api.run(c.ping()).unwrap_err().code, Some((500, 0)));
        assert_eq!(c.requests.load(Relaxed), 1);
        // once the fault is over, the read answers
        let api = sim_api();
        api.faults.fail("POST", "/debug.ping", 2, 503);
        let c = api.client(3, TEN_SECONDS);
        api.run(c.ping()).unwrap();
        assert_eq!(c.requests.load(Relaxed), 3);
    }

    /// A write is sent again only when it certainly did not take effect: 429 and 503; on 500,
    /// 502 and 504 it is sent once.
    #[test]
    fn writes_are_retried_only_when_they_did_not_take_effect() {
        for status in [429, 503] {
            let api = sim_api();
            api.faults.fail("POST", "/queues.create", 1, status);
            let c = api.client(3, TEN_SECONDS);
            let (id, created) = api
                .run(c.create_queue("write-q", &[], None, Some(None)))
                .unwrap();
            assert!(created && !id.is_empty());
            assert_eq!(api.hits("queues.create"), 2, "after {status}");
        }
        for status in [500, 502, 504] {
            let api = sim_api();
            api.faults.fail("POST", "/queues.create", 10, status);
            let c = api.client(3, TEN_SECONDS);
            let err = api
                .run(c.create_queue("write-q", &[], None, Some(None)))
                .unwrap_err();
            assert_eq!(err.code, Some((status, 0)), "{err}");
            assert_eq!(api.hits("queues.create"), 1, "after {status}");
        }
    }

    /// A read that timed out is sent again; a write that timed out may have taken effect, and
    /// is not.
    #[test]
    fn a_timeout_is_retried_for_a_read_only() {
        let api = sim_api();
        api.faults
            .delay("POST", "/debug.ping", 3, Duration::from_millis(1500));
        let c = api.client(3, Duration::from_millis(300));
        let err = api.run(c.ping()).unwrap_err();
        assert_eq!(err.code, None);
        assert!(err.message.starts_with("no answer from"), "{err}");
        assert_eq!(c.requests.load(Relaxed), 3);
        let api = sim_api();
        api.faults
            .delay("POST", "/queues.create", 3, Duration::from_millis(1500));
        let c = api.client(3, Duration::from_millis(300));
        let err = api
            .run(c.create_queue("timed-q", &[], None, Some(None)))
            .unwrap_err();
        assert_eq!(err.code, None, "{err}");
        assert_eq!(c.requests.load(Relaxed), 1);
    }

    /// A call that never connected did not take effect: a read and a write are both sent
    /// `attempts` times, and the error names the server.
    #[test]
    fn a_refused_connection_is_retried_for_reads_and_writes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = client(&url, 3, TEN_SECONDS);
        let err = rt.block_on(c.ping()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("debug.ping: cannot connect to {url} (is the API server reachable from here?)")
        );
        assert_eq!(c.requests.load(Relaxed), 3);
        let c = client(&url, 3, TEN_SECONDS);
        let err = rt
            .block_on(c.create_queue("refused-q", &[], None, Some(None)))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("queues.create: cannot connect to")
        );
        assert_eq!(c.requests.load(Relaxed), 3);
    }

    /// Reads answer their part of the envelope's data; errors name endpoint, status, subcode.
    #[test]
    fn reads_answer_their_data_and_errors_their_codes() {
        let api = sim_api();
        api.server
            .state
            .add_worker("w-1", DEFAULT_COMPANY, &["default"]);
        let c = api.client(1, TEN_SECONDS);
        assert_eq!(c.api_url(), api.server.url());
        assert!(api.run(c.ping()).unwrap().is_object());
        assert!(api.run(c.server_info()).unwrap()["version"].is_string());
        assert_eq!(api.run(c.whoami()).unwrap()["name"], "admin");
        let queues = api.run(c.queues()).unwrap();
        assert!(
            queues
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q["name"] == "default")
        );
        let workers = api.run(c.workers()).unwrap();
        assert_eq!(workers[0]["id"], "w-1");
        api.faults.fail("POST", "/debug.ping", 1, 500);
        let err = api.run(c.ping()).unwrap_err();
        assert!(err.is(500, 0) && !err.is(500, 1) && !err.is(501, 0));
        assert!(err.to_string().starts_with("debug.ping: 500/0 "), "{err}");
    }

    /// Queue creation is idempotent: a queue already there is answered, not created again,
    /// looked up exactly by name (the API's `name` is a pattern).
    #[test]
    fn queues_are_found_by_exact_name_created_once_and_deleted() {
        let api = sim_api();
        let c = api.client(3, TEN_SECONDS);
        let default = api.run(c.find_queue("default", None)).unwrap().unwrap();
        assert!(default["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(api.run(c.find_queue("defaul", None)).unwrap(), None);
        let (x, created) = api
            .run(c.create_queue("gpuxlarge", &[], None, None))
            .unwrap();
        assert!(created);
        assert_eq!(api.run(c.find_queue("gpu.large", None)).unwrap(), None);
        let (id, created) = api
            .run(c.create_queue("gpu.large", &[], None, None))
            .unwrap();
        assert!(created && id != x);
        let creates = api.hits("queues.create");
        let again = api
            .run(c.create_queue("gpu.large", &[], None, None))
            .unwrap();
        assert_eq!(again, (id.clone(), false));
        // a queue the listing found is answered without a request
        let requests = c.requests.load(Relaxed);
        let known = api
            .run(c.create_queue("gpu.large", &[], None, Some(Some(&id))))
            .unwrap();
        assert_eq!(known, (id.clone(), false));
        assert_eq!(c.requests.load(Relaxed), requests);
        assert_eq!(api.hits("queues.create"), creates);
        assert!(api.run(c.delete_queue("gpu.large", None)).unwrap());
        assert!(!api.run(c.delete_queue("gpu.large", None)).unwrap());
        assert_eq!(api.hits("queues.delete"), 1);
        assert_eq!(api.run(c.find_queue("gpu.large", None)).unwrap(), None);
    }

    /// A creation the listing missed: refused as a duplicate, or answered 502/504 (it may have
    /// taken effect), it answers the queue that is there; after any other error the queue found
    /// is not taken for ours.
    #[test]
    fn a_failed_creation_takes_the_queue_there_only_after_a_duplicate_or_a_gateway_error() {
        let api = sim_api();
        let c = api.client(3, TEN_SECONDS);
        let (id, _) = api.run(c.create_queue("dup", &[], None, None)).unwrap();
        // as from a listing made before the queue was there: 400/801 from the server
        let got = api
            .run(c.create_queue("dup", &[], None, Some(None)))
            .unwrap();
        assert_eq!(got, (id.clone(), false));
        for status in [502, 504] {
            api.faults.fail("POST", "/queues.create", 1, status);
            let got = api
                .run(c.create_queue("dup", &[], None, Some(None)))
                .unwrap();
            assert_eq!(got, (id.clone(), false), "after {status}");
        }
        let lookups = api.hits("queues.get_all");
        api.faults.fail("POST", "/queues.create", 1, 500);
        let err = api
            .run(c.create_queue("dup", &[], None, Some(None)))
            .unwrap_err();
        assert!(err.is(500, 0), "{err}");
        assert_eq!(
            api.hits("queues.get_all"),
            lookups,
            "no look-up after a 500"
        );
        // nothing there after a 502: the error stands
        api.faults.fail("POST", "/queues.create", 1, 502);
        let err = api
            .run(c.create_queue("none", &[], None, Some(None)))
            .unwrap_err();
        assert!(err.is(502, 0), "{err}");
    }

    /// A listing reads every page: one more queue than a page holds takes two requests.
    #[test]
    fn a_listing_reads_every_page() {
        let api = sim_api();
        let c = api.client(3, TEN_SECONDS);
        // `default` and QUEUE_PAGE more
        api.run(async {
            for i in 0..QUEUE_PAGE {
                c.create_queue(&format!("p-{i:03}"), &[], None, Some(None))
                    .await
                    .unwrap();
            }
        });
        let before = api.hits("queues.get_all");
        let listed = api.run(c.list_queues(None)).unwrap();
        assert_eq!(api.hits("queues.get_all") - before, 2);
        assert_eq!(listed.len(), QUEUE_PAGE + 1);
        assert!(listed.contains_key("default") && listed.contains_key("p-499"));
        let ids: std::collections::HashSet<&String> = listed.values().collect();
        assert_eq!(ids.len(), listed.len());
    }
}
