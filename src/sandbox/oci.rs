//! An OCI registry inside the sandbox (the distribution API's part that `helm push`, `helm pull`,
//! `helm registry login` and `helm upgrade --install oci://…` use, with helm 3 and helm 4), so
//! that an air-gapped site's own chart registry (`airgap.chart_registry`) is rehearsed offline.
//!
//! Served over plain HTTP on 127.0.0.1 (helm needs `--plain-http`, which the tool gives in the
//! sandbox). Content-addressed: a blob or manifest is stored under the sha256 of its bytes, and
//! an upload whose bytes do not match the digest it names is refused (`DIGEST_INVALID`), as a
//! manifest naming a blob the registry does not hold is (`MANIFEST_BLOB_UNKNOWN`). With
//! credentials seeded ([`OciServer::add_credentials`]), every request needs one of them as basic
//! auth, and is otherwise answered 401 with the `WWW-Authenticate: Basic` challenge helm answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::faults::{FaultAction, Faults};

/// The largest blob or manifest accepted in one request.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub struct OciServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for OciServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Default)]
struct Registry {
    /// digest → bytes (blobs and manifests alike: both are content)
    blobs: HashMap<String, Vec<u8>>,
    /// (repository, digest) → the manifest's media type
    manifests: HashMap<(String, String), String>,
    /// repository → tag → digest
    tags: BTreeMap<String, BTreeMap<String, String>>,
    /// upload id → (repository, the bytes so far)
    uploads: HashMap<String, (String, Vec<u8>)>,
}

struct Shared {
    faults: Faults,
    registry: Mutex<Registry>,
    /// user → password; empty: the registry is open
    credentials: Mutex<BTreeMap<String, String>>,
    /// every request, as `METHOD /path` (no query, no credentials)
    requests: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl OciServer {
    /// The registry's host and port, as a chart reference names it (`oci://HOST:PORT/path`).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Require basic auth with this user and password (another user may be added).
    pub fn add_credentials(&self, user: &str, password: &str) {
        lock(&self.shared.credentials).insert(user.to_string(), password.to_string());
    }

    /// Every request that reached the registry: `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }

    /// What the registry holds: `repository:tag` of every tagged manifest.
    pub fn tagged(&self) -> Vec<String> {
        let r = lock(&self.shared.registry);
        r.tags
            .iter()
            .flat_map(|(repo, tags)| tags.keys().map(move |t| format!("{repo}:{t}")))
            .collect()
    }
}

/// Start the registry on 127.0.0.1 with an ephemeral port. Must run inside a tokio runtime.
pub async fn start(faults: Faults) -> std::io::Result<OciServer> {
    let (listener, addr) = super::bind().await?;
    let shared = Arc::new(Shared {
        faults,
        registry: Mutex::new(Registry::default()),
        credentials: Mutex::new(BTreeMap::new()),
        requests: Mutex::new(Vec::new()),
    });
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let tx = super::serve(listener, app);
    Ok(OciServer {
        addr,
        shared,
        shutdown: Some(tx),
    })
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// An error in the distribution API's format.
fn oci_error(status: u16, code: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"errors": [{"code": code, "message": message}]}).to_string(),
        ))
        .expect("valid response")
}

fn unauthorized() -> Response {
    let mut r = oci_error(
        401,
        "UNAUTHORIZED",
        "authentication required: log in with the registry's credentials",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"clearml-script sandbox registry\""),
    );
    r
}

/// Does the request carry credentials the registry knows (or does it need none)? The password
/// is compared in constant time.
fn authorized(req: &Request, credentials: &BTreeMap<String, String>) -> bool {
    if credentials.is_empty() {
        return true;
    }
    use base64::Engine as _;
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    let Some((user, password)) = given.split_once(':') else {
        return false;
    };
    credentials.get(user).is_some_and(|want| {
        want.len() == password.len()
            && want
                .bytes()
                .zip(password.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// A repository name of the distribution spec: lowercase path components.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The request's route: the repository and what of it.
enum Route {
    Ping,
    Blob(String, String),
    StartUpload(String),
    Upload(String, String),
    Manifest(String, String),
    Tags(String),
}

fn route(path: &str) -> Option<Route> {
    if path == "/v2/" || path == "/v2" {
        return Some(Route::Ping);
    }
    let rest = path.strip_prefix("/v2/")?;
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::StartUpload(name.to_string()));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Route::Upload(name.to_string(), id.to_string()));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Route::Blob(name.to_string(), digest.to_string()));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Route::Manifest(name.to_string(), reference.to_string()));
    }
    rest.strip_suffix("/tags/list")
        .map(|name| Route::Tags(name.to_string()))
}

fn response(status: u16) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header("Docker-Distribution-API-Version", "registry/2.0")
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    lock(&shared.requests).push(format!("{method} {path}"));
    let query = super::query_of(req.uri());
    if !authorized(&req, &lock(&shared.credentials)) {
        return unauthorized();
    }
    match shared.faults.take(method.as_str(), &path) {
        Some(FaultAction::Status(code)) => {
            return oci_error(
                code,
                "UNKNOWN",
                &format!("injected fault: {method} {path} answers {code}"),
            );
        }
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let Some(route) = route(&path) else {
        return oci_error(404, "NOT_FOUND", "no such endpoint of the distribution API");
    };
    let name = match &route {
        Route::Ping => String::new(),
        Route::Blob(n, _)
        | Route::StartUpload(n)
        | Route::Upload(n, _)
        | Route::Manifest(n, _)
        | Route::Tags(n) => n.clone(),
    };
    if !matches!(route, Route::Ping) && !valid_name(&name) {
        return oci_error(
            400,
            "NAME_INVALID",
            &format!("invalid repository name {name}"),
        );
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b.to_vec(),
        Err(_) => return oci_error(413, "SIZE_INVALID", "the body is too large"),
    };
    let mut reg = lock(&shared.registry);
    match (method, route) {
        (Method::GET | Method::HEAD, Route::Ping) => response(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .expect("valid response"),
        (m @ (Method::GET | Method::HEAD), Route::Blob(_, digest)) => {
            match reg.blobs.get(&digest) {
                Some(bytes) => {
                    let b = response(200)
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, bytes.len())
                        .header("Docker-Content-Digest", &digest);
                    if m == Method::HEAD {
                        b.body(Body::empty())
                    } else {
                        b.body(Body::from(bytes.clone()))
                    }
                    .expect("valid response")
                }
                None => oci_error(404, "BLOB_UNKNOWN", &format!("blob {digest} unknown")),
            }
        }
        (Method::POST, Route::StartUpload(name)) => {
            // a cross-repository mount (`?mount=&from=`): the blob is content-addressed, so one
            // this registry holds is mounted at once
            if let Some(digest) = query.get("mount")
                && reg.blobs.contains_key(digest)
            {
                return response(201)
                    .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
                    .header("Docker-Content-Digest", digest)
                    .body(Body::empty())
                    .expect("valid response");
            }
            // a monolithic upload: POST with `?digest=` and the bytes
            if let Some(digest) = query.get("digest") {
                return finish_blob(&mut reg, &name, digest, body);
            }
            let id = super::store::random_hex(16);
            reg.uploads.insert(id.clone(), (name.clone(), body));
            upload_status(&name, &id, 0, 202)
        }
        (Method::PATCH, Route::Upload(name, id)) => {
            let Some((repo, bytes)) = reg.uploads.get_mut(&id) else {
                return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            };
            if *repo != name {
                return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            }
            bytes.extend_from_slice(&body);
            let n = bytes.len();
            upload_status(&name, &id, n, 202)
        }
        (Method::GET, Route::Upload(name, id)) => match reg.uploads.get(&id) {
            Some((repo, bytes)) if *repo == name => upload_status(&name, &id, bytes.len(), 204),
            _ => oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown"),
        },
        (Method::PUT, Route::Upload(name, id)) => {
            let Some((repo, mut bytes)) = reg.uploads.remove(&id) else {
                return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            };
            if repo != name {
                return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            }
            bytes.extend_from_slice(&body);
            let Some(digest) = query.get("digest") else {
                return oci_error(400, "DIGEST_INVALID", "the upload names no digest");
            };
            finish_blob(&mut reg, &name, digest, bytes)
        }
        (Method::DELETE, Route::Upload(_, id)) => {
            reg.uploads.remove(&id);
            response(204).body(Body::empty()).expect("valid response")
        }
        (Method::PUT, Route::Manifest(name, reference)) => {
            put_manifest(&mut reg, &name, &reference, &content_type, body)
        }
        (m @ (Method::GET | Method::HEAD), Route::Manifest(name, reference)) => {
            let digest = if valid_digest(&reference) {
                Some(reference.clone())
            } else {
                reg.tags.get(&name).and_then(|t| t.get(&reference)).cloned()
            };
            let found = digest.and_then(|d| {
                let media = reg.manifests.get(&(name.clone(), d.clone()))?.clone();
                Some((d.clone(), media, reg.blobs.get(&d)?.clone()))
            });
            match found {
                Some((digest, media, bytes)) => {
                    let b = response(200)
                        .header(header::CONTENT_TYPE, media)
                        .header(header::CONTENT_LENGTH, bytes.len())
                        .header("Docker-Content-Digest", digest);
                    if m == Method::HEAD {
                        b.body(Body::empty())
                    } else {
                        b.body(Body::from(bytes))
                    }
                    .expect("valid response")
                }
                None => oci_error(
                    404,
                    "MANIFEST_UNKNOWN",
                    &format!("manifest {name}:{reference} unknown"),
                ),
            }
        }
        (Method::GET, Route::Tags(name)) => match reg.tags.get(&name) {
            Some(tags) => {
                let mut list: Vec<&String> = tags.keys().collect();
                // `?last=` pages on: the tags after it, in order
                if let Some(last) = query.get("last") {
                    list.retain(|t| t.as_str() > last.as_str());
                }
                if let Some(n) = query.get("n").and_then(|n| n.parse::<usize>().ok()) {
                    list.truncate(n);
                }
                response(200)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(json!({"name": name, "tags": list}).to_string()))
                    .expect("valid response")
            }
            None => oci_error(404, "NAME_UNKNOWN", &format!("repository {name} unknown")),
        },
        _ => oci_error(
            405,
            "UNSUPPORTED",
            "the operation is unsupported by the sandbox's registry",
        ),
    }
}

fn upload_status(name: &str, id: &str, n: usize, status: u16) -> Response {
    response(status)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header("Docker-Upload-UUID", id)
        .header(header::RANGE, format!("0-{}", n.saturating_sub(1)))
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

/// Store an uploaded blob, if its bytes have the digest it names.
fn finish_blob(reg: &mut Registry, name: &str, digest: &str, bytes: Vec<u8>) -> Response {
    if !valid_digest(digest) {
        return oci_error(
            400,
            "DIGEST_INVALID",
            &format!("{digest} is not a sha256 digest"),
        );
    }
    let got = sha256(&bytes);
    if got != digest {
        return oci_error(
            400,
            "DIGEST_INVALID",
            &format!("the upload's bytes have the digest {got}, not {digest}"),
        );
    }
    reg.blobs.insert(got.clone(), bytes);
    response(201)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{got}"))
        .header("Docker-Content-Digest", got)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

/// Store a manifest: its config and layers must be blobs the registry holds; a reference that
/// is a digest must be the manifest's own; a tag is pointed at it.
fn put_manifest(
    reg: &mut Registry,
    name: &str,
    reference: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> Response {
    let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
        return oci_error(400, "MANIFEST_INVALID", "the manifest is not JSON");
    };
    let media = doc["mediaType"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or(content_type)
        .to_string();
    if media.is_empty() {
        return oci_error(400, "MANIFEST_INVALID", "the manifest has no media type");
    }
    let mut needed: BTreeSet<String> = BTreeSet::new();
    if let Some(d) = doc["config"]["digest"].as_str() {
        needed.insert(d.to_string());
    }
    for l in doc["layers"].as_array().into_iter().flatten() {
        match l["digest"].as_str() {
            Some(d) => {
                needed.insert(d.to_string());
            }
            None => return oci_error(400, "MANIFEST_INVALID", "a layer has no digest"),
        }
    }
    if let Some(missing) = needed.iter().find(|d| !reg.blobs.contains_key(*d)) {
        return oci_error(
            400,
            "MANIFEST_BLOB_UNKNOWN",
            &format!("the manifest names the blob {missing}, which was not uploaded"),
        );
    }
    let digest = sha256(&bytes);
    if valid_digest(reference) {
        if reference != digest {
            return oci_error(
                400,
                "DIGEST_INVALID",
                &format!("the manifest's digest is {digest}, not {reference}"),
            );
        }
    } else if reference.is_empty()
        || reference.len() > 128
        || !reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return oci_error(
            400,
            "TAG_INVALID",
            &format!("{reference} is not a valid tag"),
        );
    } else {
        reg.tags
            .entry(name.to_string())
            .or_default()
            .insert(reference.to_string(), digest.clone());
    }
    reg.blobs.insert(digest.clone(), bytes);
    reg.manifests
        .insert((name.to_string(), digest.clone()), media);
    response(201)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_the_path() {
        assert!(matches!(route("/v2/"), Some(Route::Ping)));
        assert!(
            matches!(route("/v2/charts/clearml/blobs/uploads/"), Some(Route::StartUpload(n)) if n == "charts/clearml")
        );
        assert!(
            matches!(route("/v2/a/b/blobs/uploads/xyz"), Some(Route::Upload(n, i)) if n == "a/b" && i == "xyz")
        );
        assert!(
            matches!(route("/v2/a/blobs/sha256:00"), Some(Route::Blob(n, d)) if n == "a" && d == "sha256:00")
        );
        assert!(
            matches!(route("/v2/a/b/manifests/1.2.3"), Some(Route::Manifest(n, r)) if n == "a/b" && r == "1.2.3")
        );
        assert!(matches!(route("/v2/a/tags/list"), Some(Route::Tags(n)) if n == "a"));
        assert!(route("/charts/index.yaml").is_none());
        assert!(valid_name("charts/clearml-enterprise"));
        assert!(!valid_name("Charts/x") && !valid_name("a//b"));
    }

    /// Basic auth with the seeded credentials, and content checked against its digest: a
    /// blob whose bytes do not match is refused, a manifest naming a missing blob too.
    #[test]
    fn credentials_and_digests_are_checked() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = start(Faults::default()).await.unwrap();
            server.add_credentials("pusher", "right-password");
            let base = format!("http://{}", server.host());
            let http = reqwest::Client::new();
            let ping = |user: &'static str, pw: &'static str| {
                http.get(format!("{base}/v2/"))
                    .basic_auth(user, Some(pw))
                    .send()
            };
            let none = http.get(format!("{base}/v2/")).send().await.unwrap();
            assert_eq!(none.status(), 401);
            assert!(
                none.headers()[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Basic ")
            );
            assert_eq!(ping("pusher", "wrong").await.unwrap().status(), 401);
            assert_eq!(ping("other", "right-password").await.unwrap().status(), 401);
            assert_eq!(ping("pusher", "right-password").await.unwrap().status(), 200);
            let auth = |r: reqwest::RequestBuilder| r.basic_auth("pusher", Some("right-password"));
            // a monolithic upload with the wrong digest, then the right one
            let blob = b"chart bytes".to_vec();
            let digest = sha256(&blob);
            let wrong = sha256(b"other bytes");
            let r = auth(http.post(format!("{base}/v2/charts/x/blobs/uploads/?digest={wrong}")))
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            assert!(r.text().await.unwrap().contains("DIGEST_INVALID"));
            // a chunked upload: POST, PATCH, PUT with the digest
            let r = auth(http.post(format!("{base}/v2/charts/x/blobs/uploads/")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let at = r.headers()[header::LOCATION].to_str().unwrap().to_string();
            let r = auth(http.patch(format!("{base}{at}")))
                .body(blob[..5].to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            assert_eq!(r.headers()[header::RANGE], "0-4");
            let r = auth(http.put(format!("{base}{at}?digest={digest}")))
                .body(blob[5..].to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let got = auth(http.get(format!("{base}/v2/charts/x/blobs/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
            // a manifest naming a blob never uploaded, then one naming the uploaded one
            let manifest = |layer: &str| {
                json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": digest, "size": 11},
                    "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": layer, "size": 11}]})
                .to_string()
            };
            let r = auth(http.put(format!("{base}/v2/charts/x/manifests/1.0.0")))
                .body(manifest(&wrong))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            assert!(r.text().await.unwrap().contains("MANIFEST_BLOB_UNKNOWN"));
            let text = manifest(&digest);
            let r = auth(http.put(format!("{base}/v2/charts/x/manifests/1.0.0")))
                .body(text.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            assert_eq!(r.headers()["Docker-Content-Digest"], sha256(text.as_bytes()).as_str());
            assert_eq!(server.tagged(), ["charts/x:1.0.0"]);
            let tags = auth(http.get(format!("{base}/v2/charts/x/tags/list")))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(tags, r#"{"name":"charts/x","tags":["1.0.0"]}"#);
        });
    }
}
