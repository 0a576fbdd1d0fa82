//! The ClearML API simulator: the server's envelope and error codes, authentication by key and
//! secret, fixed-user password and login token, tenants (companies), impersonation and act-as
//! with their role rules, queues, users and credentials, and fault injection. Listens on
//! 127.0.0.1 only, on an ephemeral port. Facts: shared/reference/clearml-facts.md §6.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::faults::{FaultAction, Faults};

pub const DEFAULT_COMPANY: &str = "d1bd92a3b039400cbafc60a7a5b1e52b";
const API_VERSION: &str = "2.31";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Root,
    System,
    Admin,
    User,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::System => "system",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    fn may_impersonate(&self) -> bool {
        matches!(self, Role::Root | Role::System | Role::Admin)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub company: String,
    pub role: Role,
    pub email: String,
    /// A system identity has credentials but no user record.
    pub has_record: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Queue {
    pub id: String,
    pub name: String,
    pub company: String,
    pub tags: Vec<Value>,
    pub system_tags: Vec<Value>,
    pub created: String,
}

impl Queue {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "company": self.company,
            "tags": self.tags, "system_tags": self.system_tags,
            "created": self.created, "entries": [], "metadata": {},
        })
    }
}

#[derive(Default)]
struct Data {
    companies: BTreeMap<String, String>,
    users: HashMap<String, User>,
    /// access key → (secret, user id)
    credentials: HashMap<String, (String, String)>,
    /// username → (password, user id)
    fixed_users: HashMap<String, (String, String)>,
    tokens: HashMap<String, String>,
    queues: BTreeMap<String, Queue>,
    /// workers by id: (company, the names of the queues they serve)
    workers: BTreeMap<String, (String, Vec<String>)>,
    /// requests served, by endpoint
    requests: BTreeMap<String, u64>,
}

/// The simulator's state, shared with its server; tests and `--sandbox` seed it.
#[derive(Clone)]
pub struct ClearmlState {
    data: Arc<Mutex<Data>>,
    pub faults: Faults,
}

impl Default for ClearmlState {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

pub fn fixed_user_id(company: &str, username: &str) -> String {
    let mut h = Md5::new();
    h.update(format!("{company}:{username}").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn new_id() -> String {
    super::store::random_hex(16)
}

impl ClearmlState {
    /// A fresh server: the default company with its `default` queue.
    pub fn new(faults: Faults) -> ClearmlState {
        let s = ClearmlState {
            data: Arc::new(Mutex::new(Data::default())),
            faults,
        };
        s.add_company(DEFAULT_COMPANY, "clearml");
        s
    }

    /// A worker of a company serving the queues named, as an agent registers one.
    pub fn add_worker(&self, id: &str, company: &str, queues: &[&str]) {
        self.lock().workers.insert(
            id.to_string(),
            (
                company.to_string(),
                queues.iter().map(|q| q.to_string()).collect(),
            ),
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A tenant, with its `default` queue.
    pub fn add_company(&self, id: &str, name: &str) {
        let mut d = self.lock();
        d.companies.insert(id.to_string(), name.to_string());
        let qid = new_id();
        d.queues.insert(
            qid.clone(),
            Queue {
                id: qid,
                name: "default".into(),
                company: id.to_string(),
                tags: vec![],
                system_tags: vec![json!("default")],
                created: super::store::now_rfc3339(),
            },
        );
    }

    pub fn add_user(&self, id: &str, name: &str, company: &str, role: Role) {
        let has_record = role != Role::System;
        self.lock().users.insert(
            id.to_string(),
            User {
                id: id.to_string(),
                name: name.to_string(),
                company: company.to_string(),
                role,
                email: format!("{name}@example.com"),
                has_record,
            },
        );
    }

    /// The id of the user of a company with this name, if there is one.
    pub fn user_named(&self, name: &str, company: &str) -> Option<String> {
        self.lock()
            .users
            .values()
            .find(|u| u.name == name && u.company == company)
            .map(|u| u.id.clone())
    }

    pub fn add_credentials(&self, key: &str, secret: &str, user_id: &str) {
        self.lock()
            .credentials
            .insert(key.to_string(), (secret.to_string(), user_id.to_string()));
    }

    /// A fixed user (`auth.fixed_users`), whose id is md5 of `company:username`.
    pub fn add_fixed_user(
        &self,
        username: &str,
        password: &str,
        company: &str,
        admin: bool,
    ) -> String {
        let id = fixed_user_id(company, username);
        let role = if admin { Role::Admin } else { Role::User };
        self.add_user(&id, username, company, role);
        self.lock()
            .fixed_users
            .insert(username.to_string(), (password.to_string(), id.clone()));
        id
    }

    /// The queues of a company.
    pub fn queues(&self, company: &str) -> Vec<Queue> {
        self.lock()
            .queues
            .values()
            .filter(|q| q.company == company)
            .cloned()
            .collect()
    }

    /// Tenants, users and queues, for `--sandbox-state`. Credentials, passwords and tokens are
    /// left out: they are seeded again from the site values on every run.
    pub fn snapshot(&self) -> Value {
        let d = self.lock();
        json!({"companies": d.companies, "users": d.users, "queues": d.queues})
    }

    /// Put back what [`ClearmlState::snapshot`] took.
    pub fn restore(&self, snap: &Value) -> Result<(), String> {
        let mut d = self.lock();
        d.companies =
            serde_json::from_value(snap["companies"].clone()).map_err(|e| e.to_string())?;
        d.users = serde_json::from_value(snap["users"].clone()).map_err(|e| e.to_string())?;
        d.queues = serde_json::from_value(snap["queues"].clone()).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Requests served so far, by endpoint.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.lock().requests.clone()
    }

    pub fn fixed_users_enabled(&self) -> bool {
        !self.lock().fixed_users.is_empty()
    }
}

pub struct ClearmlServer {
    pub addr: SocketAddr,
    pub state: ClearmlState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ClearmlServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ClearmlServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Start the simulator on 127.0.0.1 with an ephemeral port. Must run inside a tokio runtime.
pub async fn start(state: ClearmlState) -> std::io::Result<ClearmlServer> {
    let (listener, addr) = super::bind().await?;
    let app = Router::new().fallback(handle).with_state(state.clone());
    let tx = super::serve(listener, app);
    Ok(ClearmlServer {
        addr,
        state,
        shutdown: Some(tx),
    })
}

/// An API error: HTTP status = result_code, plus the subcode and message.
struct ApiErr(u16, u16, String);

fn envelope(
    endpoint: &str,
    requested: &str,
    code: u16,
    subcode: u16,
    msg: &str,
    data: Value,
) -> Response {
    let id = new_id();
    let ok = code == 200;
    let body = json!({
        "meta": {
            "id": id,
            "trx": id,
            "endpoint": {"name": endpoint, "requested_version": requested, "actual_version": API_VERSION},
            "result_code": code,
            "result_subcode": subcode,
            "result_msg": msg,
            "error_stack": if ok { Value::from("") } else { Value::Null },
            "error_data": {},
        },
        "data": data,
    });
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

async fn handle(State(state): State<ClearmlState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();

    // the sandbox's own introspection, not part of the API: requests served by endpoint
    if path == "/_sandbox/requests" {
        // like every endpoint, only for valid credentials
        if let Err(ApiErr(code, sub, msg)) = authenticate(&state, &headers) {
            return envelope("", "", code, sub, &msg, json!({}));
        }
        let counts = state.requests();
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::to_string(&counts).unwrap_or_default(),
            ))
            .expect("valid response");
    }
    // 1. path: /[vX.Y/]service.action
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (requested, endpoint) = match segs.as_slice() {
        [e] => (API_VERSION.to_string(), e.to_string()),
        [v, e] => match v.strip_prefix('v').filter(|n| n.parse::<f64>().is_ok()) {
            Some(n) => (n.to_string(), e.to_string()),
            None => {
                return envelope(
                    "",
                    "",
                    400,
                    2,
                    &format!("Invalid version prefix in path: {v}"),
                    json!({}),
                );
            }
        },
        _ => return envelope("", "", 400, 0, &format!("Invalid path: {path}"), json!({})),
    };
    if !endpoint.contains('.') || endpoint.starts_with('.') || endpoint.ends_with('.') {
        return envelope(
            &endpoint,
            &requested,
            400,
            0,
            &format!("Invalid path: {path}"),
            json!({}),
        );
    }
    state
        .lock()
        .requests
        .entry(endpoint.clone())
        .and_modify(|n| *n += 1)
        .or_insert(1);
    match state.faults.take(&method, &path) {
        Some(FaultAction::Status(code)) => {
            return envelope(
                &endpoint,
                &requested,
                code,
                0,
                &format!("injected fault: {endpoint} answers {code}"),
                json!({}),
            );
        }
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    match serve(&state, &endpoint, &headers, &body) {
        Ok(data) => envelope(&endpoint, &requested, 200, 0, "OK", data),
        Err(ApiErr(code, sub, msg)) => envelope(&endpoint, &requested, code, sub, &msg, json!({})),
    }
}

const NO_AUTH: &[&str] = &["debug.ping", "server.info", "login.supported_modes"];
const KNOWN: &[&str] = &[
    "debug.ping",
    "server.info",
    "login.supported_modes",
    "users.get_current_user",
    "auth.login",
    "auth.create_user",
    "auth.create_credentials",
    "queues.create",
    "queues.get_all",
    "queues.get_by_id",
    "queues.delete",
    "queues.get_default",
    "workers.get_all",
];

/// The identity a call runs as: the user whose company and role apply.
struct Identity {
    user: User,
}

fn serve(
    state: &ClearmlState,
    endpoint: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiErr> {
    // 2. endpoint
    if !KNOWN.contains(&endpoint) {
        return Err(ApiErr(
            404,
            0,
            format!("Unable to find endpoint for name {endpoint} and version {API_VERSION}"),
        ));
    }
    if NO_AUTH.contains(&endpoint) {
        return Ok(match endpoint {
            "debug.ping" => json!({"msg": "ClearML server"}),
            "server.info" => {
                json!({"version": "3.22.0", "api_version": API_VERSION, "build": "sandbox", "commit": "sandbox"})
            }
            _ => {
                json!({"basic": {"enabled": state.fixed_users_enabled(), "guest": {"enabled": false}}, "sso": {}, "sso_providers": []})
            }
        });
    }
    // 3. auth
    let caller = authenticate(state, headers)?;
    // 4. role
    if endpoint == "auth.create_user" && !caller.user.role.may_impersonate() {
        return Err(ApiErr(
            403,
            20,
            format!(
                "Role not allowed: {} cannot call {endpoint}",
                caller.user.role.as_str()
            ),
        ));
    }
    // 5. impersonation
    let who = impersonate(state, &caller, headers)?;
    // 6. body
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiErr(400, 0, format!("Invalid JSON body: {e}")))?
    };
    if !body.is_object() {
        return Err(ApiErr(
            400,
            0,
            "Invalid JSON body: expected an object".into(),
        ));
    }
    // 7. validation and the call itself
    call(state, endpoint, &who, &body)
}

fn authenticate(state: &ClearmlState, headers: &HeaderMap) -> Result<Identity, ApiErr> {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiErr(401, 20, "Unauthorized (missing credentials)".into()));
    };
    let d = state.lock();
    let user_id = if let Some(b64) = auth.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiErr(401, 21, "Unauthorized (malformed credentials)".into()))?;
        let (key, secret) = decoded
            .split_once(':')
            .ok_or_else(|| ApiErr(401, 21, "Unauthorized (malformed credentials)".into()))?;
        match (d.credentials.get(key), d.fixed_users.get(key)) {
            (Some((s, uid)), _) if s == secret => uid.clone(),
            (_, Some((p, uid))) if p == secret => uid.clone(),
            _ => return Err(ApiErr(401, 22, "Unauthorized (invalid credentials)".into())),
        }
    } else if let Some(token) = auth.strip_prefix("Bearer ") {
        d.tokens
            .get(token.trim())
            .cloned()
            .ok_or_else(|| ApiErr(401, 30, "Unauthorized (invalid token)".into()))?
    } else {
        return Err(ApiErr(
            401,
            10,
            "Unauthorized (unsupported authorization scheme)".into(),
        ));
    };
    let user = d
        .users
        .get(&user_id)
        .cloned()
        .ok_or_else(|| ApiErr(401, 22, "Unauthorized (invalid credentials)".into()))?;
    Ok(Identity { user })
}

fn impersonate(
    state: &ClearmlState,
    caller: &Identity,
    headers: &HeaderMap,
) -> Result<Identity, ApiErr> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(str::trim);
    let imp = get("x-clearml-impersonate-as");
    let act = get("x-clearml-act-as");
    let (target, keep_role) = match (imp, act) {
        (None, None) => {
            return Ok(Identity {
                user: caller.user.clone(),
            });
        }
        (Some(_), Some(_)) => {
            return Err(ApiErr(400, 5, "Invalid headers: X-Clearml-Impersonate-As and X-Clearml-Act-As cannot be used together".into()));
        }
        (Some(t), None) => (t, false),
        (None, Some(t)) => (t, true),
    };
    if !caller.user.role.may_impersonate() {
        return Err(ApiErr(
            400,
            6,
            format!(
                "Impersonation error: a {} may not impersonate",
                caller.user.role.as_str()
            ),
        ));
    }
    let d = state.lock();
    let Some(user) = d.users.get(target).cloned() else {
        return Err(ApiErr(
            400,
            6,
            format!("Impersonation error: no user with id {target}"),
        ));
    };
    if caller.user.role == Role::Admin && user.company != caller.user.company {
        return Err(ApiErr(
            400,
            6,
            "Impersonation error: an admin may only impersonate users of its own company".into(),
        ));
    }
    let mut effective = user;
    if keep_role {
        effective.role = caller.user.role.clone();
    }
    Ok(Identity { user: effective })
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn call(
    state: &ClearmlState,
    endpoint: &str,
    who: &Identity,
    body: &Value,
) -> Result<Value, ApiErr> {
    let company = who.user.company.clone();
    let mut d = state.lock();
    match endpoint {
        "users.get_current_user" => {
            if !who.user.has_record {
                return Err(ApiErr(
                    400,
                    300,
                    format!(
                        "Invalid user id: {} is a system identity without a user record",
                        who.user.id
                    ),
                ));
            }
            let cname = d.companies.get(&company).cloned().unwrap_or_default();
            Ok(json!({"user": {
                "id": who.user.id, "name": who.user.name, "role": who.user.role.as_str(),
                "email": who.user.email, "company": {"id": company, "name": cname},
            }}))
        }
        "auth.login" => {
            let token = format!("{}.{}", new_id(), new_id());
            d.tokens.insert(token.clone(), who.user.id.clone());
            let exp = body["expiration_sec"].as_i64().unwrap_or(3600 * 24 * 30);
            Ok(json!({"token": token, "expiration_sec": exp}))
        }
        "auth.create_user" => {
            let name = field(body, "name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiErr(400, 11, "Missing required fields: name".into()))?;
            let target_company = field(body, "company")
                .and_then(Value::as_str)
                .unwrap_or(&company)
                .to_string();
            if !d.companies.contains_key(&target_company) {
                return Err(ApiErr(
                    400,
                    12,
                    format!("Validation error: unknown company {target_company}"),
                ));
            }
            let role = match field(body, "role")
                .and_then(Value::as_str)
                .unwrap_or("user")
            {
                "admin" => Role::Admin,
                "user" => Role::User,
                other => {
                    return Err(ApiErr(
                        400,
                        12,
                        format!("Validation error: role {other} cannot be given"),
                    ));
                }
            };
            let id = new_id();
            d.users.insert(
                id.clone(),
                User {
                    id: id.clone(),
                    name: name.to_string(),
                    company: target_company,
                    role,
                    email: field(body, "email")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    has_record: true,
                },
            );
            Ok(json!({"id": id}))
        }
        "auth.create_credentials" => {
            let key = new_id()[..20].to_uppercase();
            let secret = format!("{}{}", new_id(), new_id());
            d.credentials
                .insert(key.clone(), (secret.clone(), who.user.id.clone()));
            Ok(
                json!({"credentials": {"access_key": key, "secret_key": secret, "label": body["label"]}}),
            )
        }
        "queues.create" => {
            let name = match field(body, "name") {
                None => return Err(ApiErr(400, 12, "Validation error: name is required".into())),
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(ApiErr(
                        400,
                        12,
                        "Validation error: name must be a string".into(),
                    ));
                }
            };
            if name.chars().count() < 3 {
                return Err(ApiErr(
                    400,
                    800,
                    format!(
                        "Data validation error: name must be at least 3 characters long: name={name}"
                    ),
                ));
            }
            if d.queues
                .values()
                .any(|q| q.company == company && q.name == name)
            {
                return Err(ApiErr(
                    400,
                    801,
                    format!(
                        "Value combination already exists (unique): name={name}, company={company}"
                    ),
                ));
            }
            let list = |k: &str| body[k].as_array().cloned().unwrap_or_default();
            let id = new_id();
            d.queues.insert(
                id.clone(),
                Queue {
                    id: id.clone(),
                    name,
                    company,
                    tags: list("tags"),
                    system_tags: list("system_tags"),
                    created: super::store::now_rfc3339(),
                },
            );
            Ok(json!({"id": id}))
        }
        "queues.get_all" => {
            let name_re = match field(body, "name").and_then(Value::as_str) {
                Some(p) => Some(regex::Regex::new(p).map_err(|e| {
                    ApiErr(
                        400,
                        12,
                        format!("Validation error: invalid name pattern: {e}"),
                    )
                })?),
                None => None,
            };
            let ids: Option<Vec<&str>> = field(body, "id")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect());
            let tags: Option<Vec<&Value>> = field(body, "tags")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect());
            let hidden_ok = body["search_hidden"].as_bool().unwrap_or(false);
            let queues: Vec<Value> = d
                .queues
                .values()
                .filter(|q| q.company == company)
                .filter(|q| hidden_ok || !q.system_tags.iter().any(|t| t == "k8s-glue"))
                .filter(|q| name_re.as_ref().is_none_or(|re| re.is_match(&q.name)))
                .filter(|q| ids.as_ref().is_none_or(|ids| ids.contains(&q.id.as_str())))
                .filter(|q| {
                    tags.as_ref()
                        .is_none_or(|t| t.iter().all(|t| q.tags.contains(t)))
                })
                .map(Queue::to_json)
                .collect();
            // paging (`page` from 0, `page_size`) and `only_fields`, as the server has them
            let queues: Vec<Value> = match (body["page"].as_u64(), body["page_size"].as_u64()) {
                (Some(page), Some(size)) if size > 0 => queues
                    .into_iter()
                    .skip((page * size) as usize)
                    .take(size as usize)
                    .collect(),
                _ => queues,
            };
            let queues = match body["only_fields"].as_array() {
                Some(fields) => queues
                    .into_iter()
                    .map(|q| {
                        let mut out = serde_json::Map::new();
                        for f in fields.iter().filter_map(Value::as_str) {
                            if let Some(v) = q.get(f) {
                                out.insert(f.to_string(), v.clone());
                            }
                        }
                        Value::Object(out)
                    })
                    .collect(),
                None => queues,
            };
            Ok(json!({"queues": queues}))
        }
        "workers.get_all" => {
            let workers: Vec<Value> = d
                .workers
                .iter()
                .filter(|(_, (c, _))| *c == company)
                .map(|(id, (_, queues))| {
                    let queues: Vec<Value> = queues
                        .iter()
                        .filter_map(|name| {
                            d.queues
                                .values()
                                .find(|q| q.company == company && &q.name == name)
                                .map(|q| json!({"id": q.id, "name": q.name}))
                        })
                        .collect();
                    json!({"id": id, "key": id, "company": {"id": company}, "queues": queues})
                })
                .collect();
            Ok(json!({"workers": workers}))
        }
        "queues.get_by_id" => {
            let q = queue_of(&d, body, &company)?;
            Ok(json!({"queue": q.to_json()}))
        }
        "queues.delete" => {
            let id = queue_of(&d, body, &company)?.id.clone();
            d.queues.remove(&id);
            Ok(json!({"deleted": 1}))
        }
        "queues.get_default" => d
            .queues
            .values()
            .find(|q| q.company == company && q.system_tags.iter().any(|t| t == "default"))
            .map(|q| json!({"id": q.id, "name": q.name}))
            .ok_or_else(|| ApiErr(400, 707, "No default queue found".into())),
        _ => Err(ApiErr(
            404,
            0,
            format!("Unable to find endpoint for name {endpoint}"),
        )),
    }
}

fn queue_of<'a>(d: &'a Data, body: &Value, company: &str) -> Result<&'a Queue, ApiErr> {
    let id = field(body, "queue")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiErr(400, 11, "Missing required fields: queue".into()))?;
    d.queues
        .get(id)
        .filter(|q| q.company == company)
        .ok_or_else(|| ApiErr(400, 701, format!("Invalid queue id: id={id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_user_ids_are_md5_of_company_and_name() {
        assert_eq!(fixed_user_id("c", "u").len(), 32);
        assert_eq!(fixed_user_id("c", "u"), fixed_user_id("c", "u"));
        assert_ne!(fixed_user_id("c", "u"), fixed_user_id("d", "u"));
    }
}
