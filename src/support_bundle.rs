//! The tool's last run log and plan (kept in `$XDG_STATE_HOME/clearml-script/`, 0600, redacted),
//! and the support bundle: what a vendor needs to help, every file through the redactor.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value as J, json};

use crate::live::{LiveExecutor, block_on};
use crate::secret::{REDACTED, is_secret_key, redact, register};

static LOG: Mutex<Option<std::fs::File>> = Mutex::new(None);
static NO_LOG: AtomicBool = AtomicBool::new(false);

/// `$XDG_STATE_HOME/clearml-script` (or `~/.local/state/clearml-script`).
pub fn state_dir() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))?;
    Some(state.join("clearml-script"))
}

/// This run keeps no run log (the support bundle's own run, which reads the last one).
pub fn keep_no_log() {
    NO_LOG.store(true, Ordering::SeqCst);
}

/// Start the run log: `last-run.log` in the state directory, 0600, replacing the last one.
/// Everything the tool writes is appended to it, already redacted. Best effort: a run does not
/// fail because its log cannot be kept.
pub fn start_run_log(command: &str) {
    if NO_LOG.load(Ordering::SeqCst) {
        return;
    }
    let Some(dir) = state_dir() else { return };
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join("last-run.log");
    if crate::fsutil::write_private(&path, &redact(&format!("$ {command}\n"))).is_err() {
        return;
    }
    if let Ok(f) = std::fs::OpenOptions::new().append(true).open(&path) {
        *LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }
}

/// Append already-redacted text to the run log, if one is kept.
pub fn log_text(text: &str) {
    use std::io::Write;
    if let Some(f) = LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Keep the run's plan (its JSON, masked) beside the run log.
pub fn keep_plan(plan_json: &crate::secret::Masked) {
    if NO_LOG.load(Ordering::SeqCst) {
        return;
    }
    if let Some(dir) = state_dir() {
        let _ = crate::fsutil::write_private(&dir.join("last-plan.json"), plan_json.as_str());
    }
}

/// Walk a JSON document and register as secrets the values of secret keys (the site-values rule,
/// with the other keys of the map as siblings), of environment entries whose names are secret
/// (`{name, value}` items, the other names of the list as siblings), and, in a text of several
/// lines (a configuration file given as a value, such as the fixed users' `apiserver.conf`),
/// of each `KEY: VALUE` or `KEY = VALUE` line whose key is secret.
pub fn register_secrets(v: &J) {
    match v {
        J::String(text) if text.contains('\n') => register_config_lines(text),
        J::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            for (k, val) in m {
                if is_secret_key(k, &keys) {
                    register_leaves(val);
                } else {
                    register_secrets(val);
                }
            }
        }
        J::Array(items) => {
            let names: Vec<&str> = items
                .iter()
                .filter_map(|i| i.get("name").and_then(J::as_str))
                .collect();
            for i in items {
                if let (Some(n), Some(val)) = (i.get("name").and_then(J::as_str), i.get("value"))
                    && is_secret_key(n, &names)
                {
                    register_leaves(val);
                } else {
                    register_secrets(i);
                }
            }
        }
        _ => {}
    }
}

/// The values of a configuration text's `KEY: VALUE` and `KEY = VALUE` lines whose key is secret
/// (HOCON, YAML, properties), as written between their quotes.
fn register_config_lines(text: &str) {
    for line in text.lines() {
        let Some(at) = line.find([':', '=']) else {
            continue;
        };
        let key = line[..at].trim().trim_matches(['"', '\'']);
        if !is_secret_key(key, &[]) {
            continue;
        }
        let value = line[at + 1..].trim().trim_end_matches(',').trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        register(value);
    }
}

fn register_leaves(v: &J) {
    match v {
        J::String(s) => {
            register(s);
        }
        J::Number(n) => {
            register(&n.to_string());
        }
        J::Object(m) => m.values().for_each(register_leaves),
        J::Array(a) => a.iter().for_each(register_leaves),
        _ => {}
    }
}

/// A Secret object with its data masked.
fn mask_secret_object(v: &mut J) {
    if v["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(J::as_object_mut) {
                for val in m.values_mut() {
                    *val = J::from(REDACTED);
                }
            }
        }
    }
}

/// What to collect.
#[derive(Clone, Debug)]
pub struct BundleSpec {
    pub out: String,
    /// `(release, namespace)`
    pub releases: Vec<(String, String)>,
    pub namespaces: Vec<String>,
    pub api_url: Option<String>,
}

impl LiveExecutor {
    /// Collect the support bundle into `spec.out` (a .tar.gz, 0600); answers the files in it.
    pub(crate) fn support_bundle(&self, spec: &BundleSpec) -> Result<J, String> {
        let mut files: Vec<(String, J)> = Vec::new();
        let mut texts: Vec<(String, String)> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let client = self.kube()?.client().clone();
        // every Secret value of the namespaces is masked wherever it shows up
        for ns in &spec.namespaces {
            let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(client.clone(), ns);
            match block_on(secrets.list(&Default::default())) {
                Ok(list) => {
                    for s in list {
                        for v in s.data.unwrap_or_default().values() {
                            register(&String::from_utf8_lossy(&v.0));
                        }
                    }
                }
                Err(e) => notes.push(format!("secrets of {ns} not read: {e}")),
            }
        }
        for (release, ns) in &spec.releases {
            let dir = format!("releases/{ns}/{release}");
            let helm = self.helm()?;
            let args =
                |what: &str| crate::helm::strings(&["get", what, release, "-n", ns, "-o", "json"]);
            match helm.read(&args("values")) {
                Ok(out) => {
                    let v: J = serde_json::from_str(&out).unwrap_or(J::Null);
                    files.push((format!("{dir}/values.json"), v));
                }
                Err(e) => notes.push(format!("{dir}: values not read: {e}")),
            }
            match helm.read(&crate::helm::strings(&[
                "get", "manifest", release, "-n", ns,
            ])) {
                Ok(text) => {
                    let mut docs = Vec::new();
                    for doc in text.split("\n---") {
                        if let Ok(v) = crate::site::parse_yaml(doc) {
                            let mut j = v.reveal();
                            if j.is_object() {
                                mask_secret_object(&mut j);
                                docs.push(j);
                            }
                        }
                    }
                    files.push((format!("{dir}/manifest.json"), J::Array(docs)));
                }
                Err(e) => notes.push(format!("{dir}: manifest not read: {e}")),
            }
        }
        match block_on(crate::inspect::list(&client, "v1", "Node", None)) {
            Ok(nodes) => files.push(("cluster/nodes.json".into(), J::Array(nodes))),
            Err(e) => notes.push(format!("nodes not read: {e}")),
        }
        for ns in &spec.namespaces {
            for (kind, api_version) in [("Pod", "v1"), ("Event", "v1")] {
                match block_on(crate::inspect::list(&client, api_version, kind, Some(ns))) {
                    Ok(items) => files.push((
                        format!("namespaces/{ns}/{}s.json", kind.to_lowercase()),
                        J::Array(items),
                    )),
                    Err(e) => notes.push(format!("{kind}s of {ns} not read: {e}")),
                }
            }
            match block_on(crate::inspect::workloads(&client, ns)) {
                Ok(ws) => {
                    for w in ws.iter().filter(|w| !w.healthy) {
                        for p in &w.problems {
                            let name = format!("logs/{ns}/{}.log", p.pod);
                            match block_on(crate::inspect::logs(
                                &client,
                                ns,
                                &p.pod,
                                p.container.as_deref(),
                                200,
                            )) {
                                Ok(log) => texts.push((name, log)),
                                Err(e) => notes.push(format!("{name}: not read: {e}")),
                            }
                        }
                    }
                    files.push((
                        format!("namespaces/{ns}/workloads.json"),
                        serde_json::to_value(ws).unwrap_or(J::Null),
                    ));
                }
                Err(e) => notes.push(format!("workloads of {ns} not read: {e}")),
            }
        }
        if let Some(url) = &spec.api_url {
            let base = self.target.clearml_api_url.clone().unwrap_or(url.clone());
            let info = block_on(async {
                let r = reqwest::Client::new()
                    .post(format!("{}/server.info", base.trim_end_matches('/')))
                    .json(&json!({}))
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                r.json::<J>().await.map_err(|e| e.to_string())
            });
            match info {
                Ok(v) => files.push(("clearml/server-info.json".into(), v["data"].clone())),
                Err(e) => notes.push(format!("ClearML API {url}: {e}")),
            }
        }
        if let Some(dir) = state_dir() {
            for name in ["last-run.log", "last-plan.json"] {
                if let Ok(t) = std::fs::read_to_string(dir.join(name)) {
                    texts.push((format!("run/{name}"), t));
                }
            }
        }
        // what the documents hold under secret keys is masked everywhere, then every file
        // goes through the same redactor
        for (_, v) in &files {
            register_secrets(v);
        }
        for (name, v) in files {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            texts.push((name, text));
        }
        texts.push(("NOTES.txt".into(), notes.join("\n") + "\n"));
        write_archive(&spec.out, &texts)?;
        Ok(J::Array(
            texts.into_iter().map(|(n, _)| J::from(n)).collect(),
        ))
    }
}

/// Credentials in `text` that no Secret holds and no site value names (another application's
/// log line, its pod's arguments), found by their shape and masked: a URL's password
/// (`postgres://user:PASSWORD@host`), an `Authorization` header's or a bearer token,
/// and a value given under a secret key name (`password=…`, `--db-password=…`,
/// `"api_key": "…"`, `token: …`, and so in JSON inside a JSON string; the key-name rule of
/// site values). The rest is kept.
fn mask_credential_shapes(text: &str) -> String {
    use regex::{Captures, Regex};
    use std::sync::OnceLock;
    static SHAPES: OnceLock<[Regex; 3]> = OnceLock::new();
    let [url, header, keyed] = SHAPES.get_or_init(|| {
        let re = |r: &str| Regex::new(r).expect("a valid pattern");
        [
            re(r#"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@"'<>]*:)([^\s/@"'<>]+)@"#),
            re(r#"(?i)(authorization\\?["']?\s*[:=]\s*\\?["']?(?:[a-z]+\s+)?|\bbearer\s+)([^\s"'\\,;<>{}\[\]]+)"#),
            re(r#"([A-Za-z0-9_.-]+)(\\?["']?\s*[:=]\s*\\?["']?)([^\s"'\\,;&<>{}\[\]]+)"#),
        ]
    });
    let text = url.replace_all(text, |c: &Captures| format!("{}{REDACTED}@", &c[1]));
    let text = header.replace_all(&text, |c: &Captures| format!("{}{REDACTED}", &c[1]));
    keyed
        .replace_all(&text, |c: &Captures| {
            if is_secret_key(&c[1], &[]) {
                format!("{}{}{REDACTED}", &c[1], &c[2])
            } else {
                c[0].to_string()
            }
        })
        .into_owned()
}

/// A .tar.gz of text files, each redacted, written 0600: built in memory, then a new file (a
/// temporary one beside it, 0600, renamed over `out`), so that a file already at `out` (readable
/// by others, or a symlink) never holds the bundle.
fn write_archive(out: &str, files: &[(String, String)]) -> Result<(), String> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, text) in files {
        let body = redact(&mask_credential_shapes(text));
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("support-bundle/{name}"),
            body.as_bytes(),
        )
        .map_err(|e| format!("cannot write {out}: {e}"))?;
    }
    let bytes = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| format!("cannot write {out}: {e}"))?;
    crate::fsutil::write_atomic(Path::new(out), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_and_secret_env_entries_are_registered() {
        let doc = json!({
            "imageCredentials": {"password": "bundle-canary-pw-1"},
            "clearml": {"apiserverKey": "bundle-canary-key-2", "apiserverSecret": "bundle-canary-sec-3", "cookieDomain": "example.com"},
            "env": [
                {"name": "X__user_key", "value": "bundle-canary-key-4"},
                {"name": "X__user_secret", "value": "bundle-canary-sec-5"},
                {"name": "X__email", "value": "admin@example.com"},
            ],
            // under a secret key, every leaf is secret, however deep: a map, a list, a number
            "tokens": {"primary": "bundle-canary-tok-6", "more": ["bundle-canary-tok-7", 80808080808_u64]},
        });
        register_secrets(&doc);
        let text = redact(&doc.to_string());
        assert!(!text.contains("80808080808"), "{text}");
        for n in 1..=7 {
            assert!(!text.contains(&format!("-{n}\"")), "canary {n} in {text}");
        }
        assert!(text.contains("example.com") && text.contains("admin@example.com"));
        // a configuration file given as a value: its secret keys' values
        let conf = json!({"apiserver.conf": "users: [\n  {\n    username: \"jane\"\n    password: \"bundle-canary-pw-8\"\n  },\n]\n",
                          "app.env": "LOG_LEVEL=debug\nAPI_TOKEN = bundle-canary-tok-9\n"});
        register_secrets(&conf);
        let text = redact(&conf.to_string());
        assert!(
            !text.contains("bundle-canary-pw-8") && !text.contains("bundle-canary-tok-9"),
            "{text}"
        );
        assert!(
            text.contains("jane") && text.contains("LOG_LEVEL=debug"),
            "{text}"
        );
        // credentials by their shape, in JSON inside a JSON string too; the rest is kept
        assert_eq!(
            mask_credential_shapes(
                r#"{"a":"{\"Authorization\":\"Basic dXNlcjpwdw==\",\"secretName\":\"tls\"}","token": 42, "token_url": "x"} a=b"#
            ),
            r#"{"a":"{\"Authorization\":\"Basic <redacted>\",\"secretName\":\"tls\"}","token": <redacted>, "token_url": "x"} a=b"#
        );
        let mut s = json!({"kind": "Secret", "data": {"a": "c2VjcmV0"}});
        mask_secret_object(&mut s);
        assert_eq!(s["data"]["a"], REDACTED);
    }
}
