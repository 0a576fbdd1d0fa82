//! The sandbox held to the real server by replay. The requests that helm 3, helm 4 and the
//! tool's own kube-rs send during the standard install, an upgrade and the uninstall are
//! recorded by a proxy in front of the sandbox. They are then sent again, in the order they
//! were sent, to a fresh sandbox and to the real control plane of `tools/real-cluster`, and the
//! significant parts of the two answers are compared request by request.
//!
//! Replaying needs two rewrites, the same on both sides. The namespaces get a prefix, so the
//! replay never meets the other tests' objects on the shared real cluster. A resourceVersion
//! the recording saw is replaced by the one the replay's server gave at the same place, since
//! each server numbers its own. A watch is replayed with a one-second timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{Cluster, Sim};
use crate::real_cluster::{client_for, real, rt, significant, standard_run};

/// One request as its client sent it, and the sandbox's answer to it.
#[derive(Clone, Debug, Default)]
struct Exchange {
    /// what the recording was doing: install, upgrade or uninstall, and the helm
    phase: String,
    method: String,
    /// path and query
    uri: String,
    content_type: String,
    accept: String,
    body: Vec<u8>,
    code: u16,
    answer: Vec<u8>,
}

/// The recording proxy: every request is logged when it arrives (the order the clients sent
/// them), forwarded with the sandbox's token, and the answer streamed back (watches included)
/// while it is logged too.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    token: String,
    client: reqwest::Client,
    phase: Arc<Mutex<String>>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let (content_type, accept) = {
        let header_of = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        (header_of(header::CONTENT_TYPE), header_of(header::ACCEPT))
    };
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let idx = {
        let mut log = p.log.lock().unwrap();
        log.push(Exchange {
            phase: p.phase.lock().unwrap().clone(),
            method: method.to_string(),
            uri: uri.clone(),
            content_type: content_type.clone(),
            accept: accept.clone(),
            body: body.to_vec(),
            ..Exchange::default()
        });
        log.len() - 1
    };
    let mut up = p
        .client
        .request(method, format!("{}{uri}", p.upstream))
        .bearer_auth(&p.token)
        .body(body.to_vec());
    if !content_type.is_empty() {
        up = up.header(header::CONTENT_TYPE, content_type);
    }
    if !accept.is_empty() {
        up = up.header(header::ACCEPT, accept);
    }
    let res = match up.send().await {
        Ok(res) => res,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    let code = res.status().as_u16();
    p.log.lock().unwrap()[idx].code = code;
    let mut answer = Response::builder().status(code);
    if let Some(ct) = res.headers().get(header::CONTENT_TYPE) {
        answer = answer.header(header::CONTENT_TYPE, ct.clone());
    }
    let log = p.log.clone();
    let stream = res.bytes_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            log.lock().unwrap()[idx].answer.extend_from_slice(bytes);
        }
        chunk
    });
    answer.body(Body::from_stream(stream)).unwrap()
}

/// Start the recording proxy in front of the cluster's sandbox; answers the proxy, and the
/// kubeconfig that points at it (plain HTTP on 127.0.0.1: the proxy adds the token).
fn record(live: &Cluster) -> (Proxy, std::path::PathBuf) {
    let kube = &live.sim.sandbox.kube;
    let proxy = Proxy {
        upstream: kube.plain_url(),
        token: kube.token().to_string(),
        client: reqwest::Client::new(),
        phase: Arc::default(),
        log: Arc::default(),
    };
    let listener = live
        .sim
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    live.sim.rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let kubeconfig = live.home.path().join("recorded-kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: rec\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: rec\n  user: {{}}\ncontexts:\n- name: rec\n  context:\n    cluster: rec\n    user: rec\n\
             current-context: rec\n"
        ),
    )
    .unwrap();
    (proxy, kubeconfig)
}

/// The namespaces of the standard install.
const NAMESPACES: &[&str] = &["clearml", "clearml-agents", "redis-shared"];

/// Record the standard install with helm `major`, an upgrade (a changed value) and the
/// uninstall through the proxy.
fn recording(major: u32) -> Vec<Exchange> {
    use clearml_script::sandbox::clearml::{DEFAULT_COMPANY, Role};
    let live = Cluster::new(major);
    let state = &live.sim.sandbox.clearml.state;
    state.add_user("agent-admin", "agent-admin", DEFAULT_COMPANY, Role::Admin);
    state.add_credentials("AGENTKEY", "agent-secret-1", "agent-admin");
    let (proxy, kubeconfig) = record(&live);
    let phase = |name: &str| *proxy.phase.lock().unwrap() = format!("helm {major} {name}");
    phase("install");
    standard_run(&live, &kubeconfig, "install.rhai", &[]).success();
    phase("upgrade");
    standard_run(
        &live,
        &kubeconfig,
        "install.rhai",
        &["--set", "extra_values.replay=upgrade"],
    )
    .success()
    .stderr_has("control plane: release clearml in clearml: deployed");
    phase("uninstall");
    standard_run(&live, &kubeconfig, "uninstall.rhai", &["--yes"]).success();
    proxy.log.lock().unwrap().clone()
}

fn is_watch(uri: &str) -> bool {
    uri.split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

/// The request's path with its namespaces renamed, its resourceVersions mapped, and a watch
/// cut to one second.
fn rewrite_uri(uri: &str, prefix: &str, rvs: &HashMap<String, String>) -> String {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let segs: Vec<String> = path
        .split('/')
        .scan(false, |after_namespaces, seg| {
            let renamed = if *after_namespaces && NAMESPACES.contains(&seg) {
                format!("{prefix}{seg}")
            } else {
                seg.to_string()
            };
            *after_namespaces = seg == "namespaces";
            Some(renamed)
        })
        .collect();
    let watch = is_watch(uri);
    let mut params: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| !(watch && kv.starts_with("timeoutSeconds=")))
        .map(|kv| match kv.split_once('=') {
            Some(("resourceVersion", rv)) if rvs.contains_key(rv) => {
                format!("resourceVersion={}", rvs[rv])
            }
            _ => kv.to_string(),
        })
        .collect();
    if watch {
        params.push("timeoutSeconds=1".to_string());
    }
    let path = segs.join("/");
    if params.is_empty() {
        path
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// The body with its namespaces renamed and its resourceVersion mapped; a body that is not
/// JSON or YAML (protobuf) is sent as recorded.
fn rewrite_body(body: &[u8], prefix: &str, rvs: &HashMap<String, String>) -> Vec<u8> {
    if body.is_empty() {
        return Vec::new();
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let Ok(mut v) = serde_json::from_str::<Value>(text)
        .or_else(|_| serde_saphyr::from_str::<Value>(text).map_err(|_| ()))
    else {
        return body.to_vec();
    };
    let rename = |s: &mut Value| {
        if let Some(ns) = s.as_str().filter(|n| NAMESPACES.contains(n)) {
            *s = json!(format!("{prefix}{ns}"));
        }
    };
    let kind = v["kind"].clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(ns) = meta.get_mut("namespace") {
            rename(ns);
        }
        if kind == "Namespace"
            && let Some(name) = meta.get_mut("name")
        {
            rename(name);
        }
        if let Some(rv) = meta.get_mut("resourceVersion")
            && let Some(mapped) = rv.as_str().and_then(|r| rvs.get(r))
        {
            *rv = json!(mapped);
        }
    }
    serde_json::to_vec(&v).unwrap()
}

/// The request's Accept header without protobuf where JSON is accepted too: the sandbox
/// answers such a request in JSON, which content negotiation allows (README, "Not
/// simulated"), so both servers are asked for JSON and their answers compared field by field.
fn json_accept(accept: &str) -> String {
    let kinds: Vec<&str> = accept.split(',').map(str::trim).collect();
    if !kinds.iter().any(|k| k.starts_with("application/json")) {
        return accept.to_string();
    }
    kinds
        .into_iter()
        .filter(|k| !k.starts_with("application/vnd.kubernetes.protobuf"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every resourceVersion an answer carries, in order: the object's or list's own, then its
/// items' or its watch events' objects'.
fn resource_versions(answer: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(answer);
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let object = if v.get("object").is_some() && v.get("type").is_some() {
            &v["object"]
        } else {
            &v
        };
        if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
            out.push(rv.to_string());
        }
        for item in object["items"].as_array().into_iter().flatten() {
            if let Some(rv) = item["metadata"]["resourceVersion"].as_str() {
                out.push(rv.to_string());
            }
        }
    }
    out
}

/// The kinds whose objects the servers' controllers make and name on their own, at their own
/// pace: lists and watches of them are compared by their status code and kind only.
const CONTROLLED: &[&str] = &[
    "pods",
    "replicasets",
    "events",
    "endpoints",
    "endpointslices",
    "controllerrevisions",
    "leases",
];

/// The significant part of one answer for this comparison: [`significant`], narrowed where the
/// two clusters hold different things for reasons other than the API (discovery documents, the
/// other tests' objects on the shared real cluster, controller-made objects), and with the
/// events of a watch reduced to the objects added and deleted.
fn compared(method: &str, uri: &str, prefix: &str, code: u16, body: &[u8]) -> Value {
    let path = uri.split('?').next().unwrap_or(uri);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let discovery = matches!(
        segs.as_slice(),
        ["api"] | ["apis"] | ["version"] | ["api", _]
    ) || matches!(segs.as_slice(), ["apis", _] | ["apis", _, _])
        || segs.first() == Some(&"openapi");
    if discovery {
        return json!({"code": code, "discovery": true});
    }
    let in_our_namespace = segs
        .windows(2)
        .any(|w| w[0] == "namespaces" && w[1].starts_with(prefix));
    let resource = segs
        .iter()
        .rposition(|s| *s == "namespaces")
        .and_then(|i| segs.get(i + 2))
        .or_else(|| segs.last())
        .copied()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(body);
    let s = significant(code, &text);
    let is_list = s.get("items").is_some();
    if method == "GET" && (CONTROLLED.contains(&resource) && (is_list || is_watch(uri))) {
        return json!({"code": code, "kind": s["kind"]});
    }
    if is_list && !in_our_namespace {
        return json!({"code": code, "kind": s["kind"]});
    }
    if let Some(events) = s["events"].as_array() {
        let mut kept: Vec<Value> = events
            .iter()
            .filter(|e| e[0] == "ADDED" || e[0] == "DELETED")
            .cloned()
            .collect();
        kept.sort_by_key(|e| e.to_string());
        kept.dedup();
        return json!({"code": code, "events": kept});
    }
    if text.starts_with("k8s\0") {
        return json!({"code": code, "protobuf": true});
    }
    s
}

/// Send the recording again, in order, to one cluster: the compared part of every answer.
async fn replay(c: &kube::Client, log: &[Exchange], prefix: &str) -> Vec<Value> {
    let mut rvs: HashMap<String, String> = HashMap::new();
    // the OpenAPI v3 documents' URLs, recorded → replayed: their `hash` is of the content
    let mut urls: HashMap<String, String> = HashMap::new();
    let mut answers = Vec::new();
    for x in log {
        // client-go adds its own parameters after the document's URL
        let uri = urls
            .iter()
            .find_map(|(from, to)| {
                x.uri
                    .strip_prefix(from.as_str())
                    .map(|rest| format!("{to}{rest}"))
            })
            .unwrap_or_else(|| x.uri.clone());
        let uri = rewrite_uri(&uri, prefix, &rvs);
        let mut req = http::Request::builder().method(x.method.as_str()).uri(&uri);
        if !x.content_type.is_empty() {
            req = req.header("Content-Type", &x.content_type);
        }
        let accept = json_accept(&x.accept);
        if !accept.is_empty() {
            req = req.header("Accept", accept);
        }
        let body = rewrite_body(&x.body, prefix, &rvs);
        let req = req.body(kube::client::Body::from(body)).unwrap();
        let res = c.send(req).await.unwrap();
        let code = res.status().as_u16();
        let body = res.into_body().collect_bytes().await.unwrap();
        for (recorded, replayed) in resource_versions(&x.answer)
            .into_iter()
            .zip(resource_versions(&body))
        {
            rvs.insert(recorded, replayed);
        }
        if x.uri.split('?').next() == Some("/openapi/v3") {
            let paths =
                |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap_or_default()["paths"].clone();
            let (recorded, replayed) = (paths(&x.answer), paths(&body));
            for (key, doc) in recorded.as_object().into_iter().flatten() {
                if let (Some(from), Some(to)) = (
                    doc["serverRelativeURL"].as_str(),
                    replayed[key]["serverRelativeURL"].as_str(),
                ) {
                    urls.insert(from.to_string(), to.to_string());
                }
            }
        }
        answers.push(compared(&x.method, &uri, prefix, code, &body));
    }
    answers
}

/// Delete the replay's namespaces from a cluster (their objects go with them).
async fn clean(c: &kube::Client, prefix: &str) {
    for ns in NAMESPACES {
        let req = http::Request::delete(format!("/api/v1/namespaces/{prefix}{ns}"))
            .body(kube::client::Body::from(Vec::new()))
            .unwrap();
        let _ = c.send(req).await;
    }
}

/// What the sandbox does not simulate, as `METHOD path-pattern`, with the reason in the README
/// ("Not simulated").
const NOT_SIMULATED: &[&str] = &[];

/// A request's shape, for grouping divergences: its method and its path with the names after
/// `namespaces/` and the last segment of an object's path generalised.
fn shape(method: &str, uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or(uri);
    let segs: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    let mut prev = "";
    for s in &segs {
        out.push(if prev == "namespaces" { "{ns}" } else { s });
        prev = s;
    }
    format!("{method} {}", out.join("/"))
}

/// The keys on which two compared answers differ, `key: sandbox X ≠ real Y`.
fn difference(sandbox: &Value, real: &Value) -> String {
    let (Some(a), Some(b)) = (sandbox.as_object(), real.as_object()) else {
        return format!("sandbox {sandbox} ≠ real {real}");
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("(none)".to_string(), Value::to_string);
            format!("{k}: sandbox {} ≠ real {}", show(a.get(k)), show(b.get(k)))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_sandbox_answers_helm_and_the_tools_recorded_requests_as_the_real_server_does() {
    let real_cluster = real();
    let mut divergences: Vec<String> = Vec::new();
    let mut replayed = 0;
    for (major, _) in crate::common::helm_binaries() {
        let log = recording(major);
        if let Ok(dir) = std::env::var("REPLAY_DUMP") {
            let dump: Vec<Value> = log
                .iter()
                .map(|x| {
                    json!({"phase": x.phase, "method": x.method, "uri": x.uri,
                           "content_type": x.content_type, "accept": x.accept,
                           "body": String::from_utf8_lossy(&x.body), "code": x.code,
                           "answer": String::from_utf8_lossy(&x.answer)})
                })
                .collect();
            std::fs::write(
                format!("{dir}/helm{major}.json"),
                serde_json::to_string_pretty(&dump).unwrap(),
            )
            .unwrap();
        }
        assert!(
            log.iter()
                .any(|x| x.method == "POST" || x.method == "PATCH"),
            "the recording holds no write: {} requests",
            log.len()
        );
        let prefix = format!("rp{major}-");
        let on_real = rt().block_on(async {
            let c = client_for(&real_cluster.kubeconfig).await;
            let answers = replay(&c, &log, &prefix).await;
            clean(&c, &prefix).await;
            answers
        });
        let sim = Sim::start();
        let kubeconfig = sim.sandbox.kubeconfig.clone();
        let on_sandbox = sim.rt.block_on(async {
            let c = client_for(&kubeconfig).await;
            replay(&c, &log, &prefix).await
        });
        replayed += log.len();
        let mut seen = std::collections::HashSet::new();
        for ((x, s), r) in log.iter().zip(&on_sandbox).zip(&on_real) {
            let shape = shape(&x.method, &x.uri);
            if s != r
                && !NOT_SIMULATED.contains(&shape.as_str())
                && seen.insert((shape.clone(), s.clone(), r.clone()))
            {
                divergences.push(format!(
                    "{}: {} {}: {}",
                    x.phase,
                    x.method,
                    x.uri,
                    difference(s, r)
                ));
            }
        }
    }
    assert!(replayed > 100, "only {replayed} requests recorded");
    assert!(
        divergences.is_empty(),
        "{} divergences:\n{}",
        divergences.len(),
        divergences.join("\n")
    );
}
