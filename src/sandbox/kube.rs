//! The Kubernetes API simulator's HTTP side: routing of `/api` and `/apis` paths, discovery,
//! OpenAPI, JSON and protobuf bodies, patches, watches, and fault injection. Listens on
//! 127.0.0.1 only, on an ephemeral port.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::faults::{FaultAction, Faults};
use super::protobuf;
use super::resources::{self, Resource};
use super::store::{ApiError, PatchKind, Selector, Store};

/// The largest request body accepted.
const MAX_BODY: usize = 32 * 1024 * 1024;

pub struct KubeServer {
    /// The API over TLS (the kubeconfig's server): Kubernetes clients send a bearer token only
    /// over TLS.
    pub addr: SocketAddr,
    /// The same API over plain HTTP, for tools by hand and tests (the token is required here
    /// too), and the stand-in chart repository (public).
    pub plain_addr: SocketAddr,
    /// The self-signed certificate of the TLS side, PEM (in the kubeconfig as its CA).
    pub ca_pem: String,
    /// The bearer token every API request must carry (random per sandbox, kept in the 0600
    /// kubeconfig): another local user cannot read the cluster's Secrets.
    token: String,
    _plain_shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub store: Arc<Store>,
    pub faults: Faults,
    /// Every request that reached the stand-in chart repository (`GET /charts/index.yaml`).
    chart_requests: Arc<std::sync::Mutex<Vec<String>>>,
    /// How many API requests were answered, by method and path (`GET /api/v1/namespaces`).
    api_requests: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl KubeServer {
    /// The API's URL, as in the kubeconfig (TLS).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The API over plain HTTP; every request needs [`KubeServer::token`] as a bearer token.
    pub fn plain_url(&self) -> String {
        format!("http://{}", self.plain_addr)
    }

    /// The bearer token the API requires.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The stand-in chart repository served beside the API.
    pub fn chart_repo_url(&self) -> String {
        format!("http://{}/charts", self.plain_addr)
    }

    /// The requests that reached the stand-in chart repository, served or refused.
    pub fn chart_requests(&self) -> Vec<String> {
        self.chart_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many API requests were answered so far, by method and path (queries left out).
    pub fn api_requests(&self) -> BTreeMap<String, u64> {
        self.api_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the chart repository is switched off (`--fault remove:chart-repository`).
    pub fn chart_repo_off(&self) -> bool {
        self.faults
            .removals()
            .contains(&super::faults::Removal::ChartRepository)
    }

    /// A kubeconfig that points at this server, with the context `sandbox`.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\n\
             current-context: sandbox\nusers:\n- name: sandbox\n  user:\n    token: {}\n",
            self.url(),
            self.token
        )
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Shared {
    token: String,
    store: Arc<Store>,
    faults: Faults,
    /// The stand-in chart repository: file name → bytes (`index.yaml` included); empty when it
    /// is switched off.
    charts: HashMap<String, Vec<u8>>,
    chart_requests: Arc<std::sync::Mutex<Vec<String>>>,
    api_requests: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
}

/// Start the simulator on 127.0.0.1 with an ephemeral port. Must run inside a tokio runtime.
pub async fn start(faults: Faults) -> std::io::Result<KubeServer> {
    let (listener, addr) = super::bind().await?;
    let (plain, plain_addr) = super::bind().await?;
    let (acceptor, ca_pem) = tls_acceptor()?;
    let store = Arc::new(Store::with_faults(faults.clone()));
    store.set_cluster_ca(&ca_pem);
    super::faults::remove_seeded(&faults, &store);
    {
        // the controllers' later work: workloads become ready once their delay passed (with
        // `ready-after:MS`), deleted namespaces go once their time is up
        let weak = Arc::downgrade(&store);
        let delayed = faults.ready_after().is_some();
        tokio::spawn(async move {
            while let Some(store) = weak.upgrade() {
                if delayed {
                    store.mature_workloads();
                }
                store.finish_terminations();
                drop(store);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
    }
    let packaged = super::charts::package_all().map_err(std::io::Error::other)?;
    let mut charts: HashMap<String, Vec<u8>> = HashMap::new();
    let off = faults
        .removals()
        .contains(&super::faults::Removal::ChartRepository);
    if !off {
        charts.insert(
            "index.yaml".into(),
            super::charts::index(&packaged, &format!("http://{plain_addr}/charts")).into_bytes(),
        );
        for p in packaged {
            charts.insert(p.file, p.bytes);
        }
    }
    let token = super::store::random_hex(32);
    let chart_requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let api_requests = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let shared = Arc::new(Shared {
        token: token.clone(),
        store: store.clone(),
        faults: faults.clone(),
        charts,
        chart_requests: chart_requests.clone(),
        api_requests: api_requests.clone(),
    });
    let app = Router::new().fallback(handle).with_state(shared);
    let tx = super::serve(super::TlsListener::new(listener, acceptor), app.clone());
    let tx_plain = super::serve(plain, app);
    Ok(KubeServer {
        addr,
        plain_addr,
        ca_pem,
        _plain_shutdown: Some(tx_plain),
        token,
        store,
        faults,
        chart_requests,
        api_requests,
        shutdown: Some(tx),
    })
}

/// A self-signed certificate for 127.0.0.1, new for each sandbox, and the acceptor serving it.
fn tls_acceptor() -> std::io::Result<(tokio_rustls::TlsAcceptor, String)> {
    use tokio_rustls::rustls;
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .map_err(std::io::Error::other)?;
    let pem = key.cert.pem();
    let der = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der())
        .map_err(std::io::Error::other)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(vec![der], private)
    .map_err(std::io::Error::other)?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem))
}

/// Does the request carry the sandbox's bearer token? Compared in constant time.
fn authorized(req: &Request, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

fn error(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn not_served() -> Response {
    error(&ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = super::query_of(req.uri());
    // the stand-in charts are public (helm fetches them without the cluster's credentials);
    // every API request needs the sandbox's bearer token
    if !path.starts_with("/charts/") && !authorized(&req, &shared.token) {
        return error(&ApiError::new(
            401,
            "Unauthorized",
            "Unauthorized: the sandbox's API needs the bearer token of its kubeconfig",
        ));
    }
    match shared.faults.take(method.as_str(), &path) {
        Some(FaultAction::Status(code)) => {
            return error(&ApiError::new(
                code,
                reason_for(code),
                format!("injected fault: {method} {path} answers {code}"),
            ));
        }
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if let Some(file) = path.strip_prefix("/charts/") {
        shared
            .chart_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{method} {path}"));
        return match shared.charts.get(file) {
            Some(bytes) => Response::builder()
                .status(200)
                .body(Body::from(bytes.clone()))
                .expect("valid response"),
            None => not_served(),
        };
    }
    *shared
        .api_requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(format!("{method} {path}"))
        .or_default() += 1;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                "request body too large",
            ));
        }
    };
    route(&shared.store, &method, &path, &query, &content_type, body)
}

fn route(
    store: &Arc<Store>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: Bytes,
) -> Response {
    match path {
        "/version" => {
            return json_response(
                200,
                &json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0",
                    "gitCommit": "sandbox", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
                }),
            );
        }
        "/api" => return json_response(200, &resources::api_versions()),
        "/apis" => return json_response(200, &resources::api_group_list()),
        "/openapi/v3" => return json_response(200, &resources::openapi_index()),
        "/healthz" | "/readyz" | "/livez" => {
            return Response::new(Body::from("ok"));
        }
        _ => {}
    }
    if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" && *method == Method::POST {
        // no RBAC in the sandbox: every identity may do everything, as the review says
        let mut review = decode_body(&body, content_type).unwrap_or_else(|_| json!({}));
        review["apiVersion"] = json!("authorization.k8s.io/v1");
        review["kind"] = json!("SelfSubjectAccessReview");
        review["status"] =
            json!({"allowed": true, "reason": "the sandbox has no RBAC: everything is allowed"});
        return json_response(201, &review);
    }
    if let Some(doc) = path.strip_prefix("/openapi/v3/") {
        return match resources::openapi_doc(doc) {
            Some(d) => json_response(200, &d),
            None => not_served(),
        };
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return not_served(),
    };
    if rest.is_empty() {
        return match resources::resource_list(group, version) {
            Some(list) if *method == Method::GET => json_response(200, &list),
            _ => not_served(),
        };
    }
    let namespaced_plural = |p: &str| resources::find(group, version, p).filter(|r| r.namespaced);
    let (res, ns, name, sub): (&'static Resource, Option<&str>, Option<&str>, Option<&str>) =
        match rest {
            ["namespaces", ns, plural, tail @ ..] if namespaced_plural(plural).is_some() => {
                let r = namespaced_plural(plural).expect("checked");
                match tail {
                    [] => (r, Some(*ns), None, None),
                    [name] => (r, Some(*ns), Some(*name), None),
                    [name, sub] => (r, Some(*ns), Some(*name), Some(*sub)),
                    _ => return not_served(),
                }
            }
            [plural, tail @ ..] => {
                let Some(r) = resources::find(group, version, plural) else {
                    return not_served();
                };
                match tail {
                    [] => (r, None, None, None),
                    [name] if !r.namespaced => (r, None, Some(*name), None),
                    [name, sub] if !r.namespaced => (r, None, Some(*name), Some(*sub)),
                    _ => return not_served(),
                }
            }
            [] => return not_served(),
        };
    let status_only = match sub {
        None => false,
        Some("status") => true,
        Some("finalize") if res.kind == "Namespace" => false,
        Some("log") if res.kind == "Pod" && *method == Method::GET => {
            // a faulted pod's log is kept in an annotation; other pods have written nothing
            return match store.get(res, ns.unwrap_or(""), name.unwrap_or("")) {
                Ok(pod) => Response::builder()
                    .status(200)
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Body::from(
                        pod["metadata"]["annotations"][super::faults::LOG_ANNOTATION]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ))
                    .expect("valid response"),
                Err(e) => error(&e),
            };
        }
        Some(_) => return not_served(),
    };
    let call = Call {
        method,
        query,
        content_type,
        body: &body,
        res,
        ns,
        name,
        status_only,
    };
    resource_request(store, &call).unwrap_or_else(|e| error(&e))
}

/// A request on a resource, its collection or its status.
struct Call<'a> {
    method: &'a Method,
    query: &'a HashMap<String, String>,
    content_type: &'a str,
    body: &'a [u8],
    res: &'static Resource,
    ns: Option<&'a str>,
    name: Option<&'a str>,
    status_only: bool,
}

fn resource_request(store: &Arc<Store>, c: &Call) -> Result<Response, ApiError> {
    let (res, ns, query) = (c.res, c.ns, c.query);
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let selectors = || -> Result<(Selector, Selector), ApiError> {
        Ok((
            Selector::parse_labels(query.get("labelSelector").map_or("", String::as_str))?,
            Selector::parse(query.get("fieldSelector").map_or("", String::as_str))?,
        ))
    };
    let ns_str = ns.unwrap_or("");
    match (c.method.clone(), c.name) {
        (Method::GET, None) => {
            let (labels, fields) = selectors()?;
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return Ok(watch(
                    store.clone(),
                    res,
                    ns.map(str::to_string),
                    labels,
                    fields,
                    query,
                ));
            }
            let (items, rv) = store.list(res, ns, &labels, &fields);
            Ok(json_response(200, &list_doc(res, items, rv)))
        }
        (Method::POST, None) => {
            if res.namespaced && ns.is_none() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "POST a namespaced kind under /namespaces/NAME/",
                ));
            }
            let obj = decode_body(c.body, c.content_type)?;
            let created = store.create(res, ns_str, obj, dry_run)?;
            Ok(json_response(201, &created))
        }
        (Method::DELETE, None) => {
            let (labels, fields) = selectors()?;
            let items = store.delete_collection(res, ns, &labels, &fields);
            let rv = store.resource_version();
            Ok(json_response(200, &list_doc(res, items, rv)))
        }
        (Method::GET, Some(name)) => Ok(json_response(200, &store.get(res, ns_str, name)?)),
        (Method::PUT, Some(name)) => {
            let obj = decode_body(c.body, c.content_type)?;
            Ok(json_response(
                200,
                &store.update(res, ns_str, name, obj, c.status_only)?,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let kind = PatchKind::from_content_type(c.content_type).ok_or_else(|| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: \
                         application/json-patch+json, application/merge-patch+json, \
                         application/apply-patch+yaml, application/strategic-merge-patch+json (got {:?})",
                        c.content_type
                    ),
                )
            })?;
            if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let patch = parse_patch(c.body, kind)?;
            let manager = query.get("fieldManager").map_or("", String::as_str);
            let force = query.get("force").is_some_and(|f| f == "true");
            let (obj, created) =
                store.patch(res, ns_str, name, kind, patch, (manager, force), dry_run)?;
            Ok(json_response(if created { 201 } else { 200 }, &obj))
        }
        (Method::DELETE, Some(name)) => {
            let obj = store.delete(res, ns_str, name)?;
            // Most kinds answer a deletion with a Status; these answer with the object, as the
            // real server's storage for them does (ReturnDeletedObject).
            const RETURN_DELETED: &[&str] = &[
                "Namespace",
                "Pod",
                "Service",
                "ServiceAccount",
                "PersistentVolume",
                "PersistentVolumeClaim",
                "ResourceQuota",
                "PodTemplate",
                "StorageClass",
            ];
            if RETURN_DELETED.contains(&res.kind) {
                return Ok(json_response(200, &obj));
            }
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": res.group, "kind": res.plural,
                            "uid": obj["metadata"]["uid"]},
            });
            Ok(json_response(200, &status))
        }
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{m} is not supported here"),
        )),
    }
}

fn list_doc(res: &Resource, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(body).map_err(ApiError::bad_request);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn parse_patch(body: &[u8], kind: PatchKind) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if kind == PatchKind::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the apply body is not UTF-8"))?;
            crate::site::parse_yaml(text)
                .map(|v| v.reveal())
                .map_err(|y| {
                    ApiError::bad_request(format!(
                        "the apply body is neither JSON ({e}) nor YAML ({y})"
                    ))
                })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "the patch is not valid JSON: {e}"
        ))),
    }
}

/// A watch: initial ADDED events (unless resuming from a resourceVersion), the initial-events
/// bookmark when asked for, then changes as they happen, until `timeoutSeconds` or the client
/// goes away.
fn watch(
    store: Arc<Store>,
    res: &'static Resource,
    ns: Option<String>,
    labels: Selector,
    fields: Selector,
    query: &HashMap<String, String>,
) -> Response {
    let since = query.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    // resuming from a resourceVersion: first what happened since, as the real server does
    let resume = since
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0 && !send_initial);
    let (mut rx, missed) = match resume {
        Some(v) => store.watch_from(v),
        None => (store.subscribe(), Some(Vec::new())),
    };
    let (items, rv) = store.list(res, ns.as_deref(), &labels, &fields);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(64);
    let line = |kind: &str, object: &Value| {
        Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
    };
    let same = {
        let ns = ns.clone();
        let (labels, fields) = (labels.clone(), fields.clone());
        move |ev: &super::store::Event| {
            std::ptr::eq(ev.resource, res)
                && ns.as_deref().is_none_or(|n| n == ev.namespace)
                && labels.matches_labels(&ev.object)
                && fields.matches_fields(&ev.object)
        }
    };
    let mut initial: Vec<Bytes> = Vec::new();
    if send_initial || since.is_empty() || since == "0" {
        initial.extend(items.iter().map(|o| line("ADDED", o)));
    }
    match missed {
        Some(events) => {
            initial.extend(
                events
                    .iter()
                    .filter(|e| same(e))
                    .map(|e| line(e.kind, &e.object)),
            );
        }
        None => {
            let gone = ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {since} ({rv})"),
            );
            initial.push(line("ERROR", &gone.status()));
        }
    }
    if send_initial {
        let bookmark = json!({
            "kind": res.kind,
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
        });
        initial.push(line("BOOKMARK", &bookmark));
    }
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if same(&ev) && tx.send(line(ev.kind, &ev.object)).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures_util::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|b| (Ok::<_, Infallible>(b), out))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("valid response")
}
