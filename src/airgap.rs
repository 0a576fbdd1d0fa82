//! Air-gapped installs as one piece: the bundle (`clearml-script bundle create`) carries the
//! charts at their versions, the applications package and the list of images to mirror, with a
//! manifest of every file's sha256; `bundle verify` checks it; an install with `airgap.bundle`
//! takes its charts from it; and the closure proof (`bundle check`, and before the first action
//! of such an install) renders every chart with its final values and refuses any image that does
//! not point at the mirror or is not in the bundle.
//!
//! Not to be confused with `bundle.rs`, the support bundle for the vendor.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as J;

use crate::action::{Action, ChartInstall};

/// The manifest's name inside the archive: always its first entry.
pub const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;

/// What a bundle holds, and the sha256 of each of its other files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The tool that made it (`clearml-script 0.1.0`).
    pub tool: String,
    /// The mirror registry the images are copied to.
    pub registry: String,
    /// The site values the bundle was made from, every secret removed.
    pub site: J,
    pub charts: Vec<ChartEntry>,
    pub images: Vec<ImageEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<AppsEntry>,
    /// Every other file of the archive: path to sha256.
    pub files: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChartEntry {
    pub release: String,
    pub namespace: String,
    /// The chart as the plan names it (`clearml-enterprise/clearml-enterprise`, `oci://…`).
    pub source: String,
    pub name: String,
    pub version: String,
    /// The archive's path inside the bundle (`charts/NAME-VERSION.tgz`).
    pub file: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageEntry {
    /// The image where the vendor publishes it, fully qualified (`docker.io/allegroai/x:1`).
    pub source: String,
    /// Where it is in the mirror.
    pub target: String,
    /// What uses it: `chart clearml: Deployment clearml-apiserver`, `apps: hpo.zip`.
    pub used_by: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppsEntry {
    /// Where it was downloaded from (secrets removed).
    pub url: J,
    pub sha256: String,
    pub file: String,
}

// ---------------------------------------------------------------------------------------------
// image references

/// An image reference fully qualified as a container runtime reads it: `python:3.9` is
/// `docker.io/library/python:3.9`, `allegroai/x:1` is `docker.io/allegroai/x:1`.
pub fn normalize(image: &str) -> String {
    let image = image.trim();
    let (first, rest) = match image.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (image, None),
    };
    let is_domain =
        rest.is_some() && (first.contains('.') || first.contains(':') || first == "localhost");
    match (is_domain, rest) {
        (true, Some(r)) => format!(
            "{}/{r}",
            if first == "index.docker.io" {
                "docker.io"
            } else {
                first
            }
        ),
        (false, Some(_)) => format!("docker.io/{image}"),
        _ => format!("docker.io/library/{image}"),
    }
}

/// The image's place in the mirror: the registry (a host, optionally with a path) in front of
/// the repository path, tag and digest kept. `docker.io/allegroai/x:1` in `registry.local:5000`
/// is `registry.local:5000/allegroai/x:1`.
pub fn mirror(image: &str, registry: &str) -> String {
    let full = normalize(image);
    let path = full.split_once('/').map_or(full.as_str(), |(_, p)| p);
    format!("{}/{path}", registry.trim_end_matches('/'))
}

/// Every image of a rendered manifest (`helm template`'s multi-document YAML): the `image` of
/// each container, init container and ephemeral container of every object, whatever its kind
/// (pods, the workloads' pod templates, CronJobs' job templates, custom resources), each with
/// `Kind name` and the container's name.
pub fn images_in_manifest(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    // a document of comments only (a template that renders nothing) parses as null
    for doc in split_documents(text) {
        let value = crate::site::parse_yaml(&doc)
            .map_err(|e| format!("the rendered manifest is not YAML: {e}"))?;
        let j = value.reveal();
        let object = format!(
            "{} {}",
            j["kind"].as_str().unwrap_or("object"),
            j["metadata"]["name"].as_str().unwrap_or("(no name)")
        );
        containers(&j, &object, &mut out);
    }
    Ok(out)
}

fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().expect("one at least");
            d.push_str(line);
            d.push('\n');
        }
    }
    docs
}

fn containers(j: &J, object: &str, out: &mut Vec<(String, String)>) {
    match j {
        J::Object(m) => {
            for (k, v) in m {
                if matches!(
                    k.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                ) && let J::Array(items) = v
                {
                    for c in items {
                        if let Some(image) = c["image"].as_str() {
                            let name = c["name"].as_str().unwrap_or("?");
                            out.push((format!("{object}, container {name}"), image.to_string()));
                        }
                    }
                }
                containers(v, object, out);
            }
        }
        J::Array(items) => items.iter().for_each(|i| containers(i, object, out)),
        _ => {}
    }
}

/// The images a chart's values set outside its templates' containers: a string under a key
/// `image` or ending in `Image` (`agentk8sglue.defaultContainerImage`, a queue's
/// `defaultImage`), and `image: {registry, repository, tag}` maps. Each with its key path.
pub fn images_in_values(values: &J) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // an `image: {registry, repository, tag}` map is rendered under `global.imageRegistry` when
    // the values set it (the ClearML and Bitnami charts' rule; a chart that ignores it shows in
    // its rendered containers)
    let global = values["global"]["imageRegistry"]
        .as_str()
        .filter(|g| !g.is_empty());
    walk_values(values, "", global, &mut out);
    out
}

fn walk_values(j: &J, path: &str, global: Option<&str>, out: &mut Vec<(String, String)>) {
    match j {
        J::Object(m) => {
            for (k, v) in m {
                let at = crate::value::join_path(path, k);
                let image_key = k == "image" || k.ends_with("Image");
                match v {
                    J::String(s)
                        if image_key && !s.is_empty() && !s.contains(char::is_whitespace) =>
                    {
                        out.push((at, s.clone()))
                    }
                    J::Object(parts)
                        if image_key && parts.get("repository").is_some_and(J::is_string) =>
                    {
                        let repo = parts["repository"].as_str().unwrap_or_default();
                        let mut image = match global.or(parts.get("registry").and_then(J::as_str)) {
                            Some(r) if !r.is_empty() => format!("{r}/{repo}"),
                            _ => repo.to_string(),
                        };
                        if let Some(t) = parts
                            .get("tag")
                            .and_then(J::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            image = format!("{image}:{t}");
                        }
                        out.push((at, image));
                    }
                    _ => walk_values(v, &at, global, out),
                }
            }
        }
        J::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk_values(v, &format!("{path}[{i}]"), global, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// the archive

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A safe path inside a bundle: relative, no `..`, no empty parts.
fn safe_entry(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

/// Read a bundle: its manifest (the first entry), then every other entry hashed as it streams
/// by, and compared with the manifest. `keep` is called with each verified entry's path and
/// bytes' location when the caller wants an entry extracted: it answers where to write it.
fn read_bundle(
    path: &Path,
    mut keep: impl FnMut(&Manifest, &str) -> Option<PathBuf>,
) -> Result<Manifest, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("the bundle {shown}: {e}"))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = archive
        .entries()
        .map_err(|e| format!("the bundle {shown} is not a .tar.gz archive: {e}"))?;
    let broken = |e: std::io::Error| format!("the bundle {shown} is damaged: {e}; copy it again");
    let mut first = entries
        .next()
        .ok_or_else(|| format!("the bundle {shown} is empty"))?
        .map_err(broken)?;
    let name = first.path().map_err(broken)?.display().to_string();
    if name != MANIFEST {
        return Err(format!(
            "the bundle {shown} does not start with {MANIFEST} (it starts with {name}): it was not made by `clearml-script bundle create`"
        ));
    }
    let mut text = String::new();
    first.read_to_string(&mut text).map_err(broken)?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| format!("the bundle {shown}: {MANIFEST} cannot be read: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "the bundle {shown} has format {}, this tool reads format {FORMAT}: make it again with this version",
            manifest.format
        ));
    }
    // the manifest's own references: every chart archive and the applications package must be
    // one of the files it covers, inside the bundle, and agree with it
    for (file, dir, what) in manifest
        .charts
        .iter()
        .map(|c| {
            (
                &c.file,
                "charts/",
                format!("chart {} {}", c.name, c.version),
            )
        })
        .chain(
            manifest
                .apps
                .iter()
                .map(|a| (&a.file, "apps/", "the applications package".to_string())),
        )
    {
        if !safe_entry(file) || !file.starts_with(dir) || !manifest.files.contains_key(file) {
            return Err(format!(
                "the bundle {shown}: {MANIFEST} names {file} for {what}, which is not one of its files: it was changed after it was made; make it again"
            ));
        }
    }
    if let Some(a) = &manifest.apps
        && !manifest.files[&a.file].eq_ignore_ascii_case(&a.sha256)
    {
        return Err(format!(
            "the bundle {shown}: {MANIFEST} gives the applications package two sha256s ({} and {}): it was changed after it was made; make it again",
            a.sha256, manifest.files[&a.file]
        ));
    }
    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(broken)?;
        let name = entry.path().map_err(broken)?.display().to_string();
        if entry.header().entry_type().is_dir() && safe_entry(name.trim_end_matches('/')) {
            // a bundle packed again by hand holds its directories: they carry nothing
            continue;
        }
        if !entry.header().entry_type().is_file() || !safe_entry(&name) {
            return Err(format!(
                "the bundle {shown} holds {name}, which is not a plain file inside it: refused"
            ));
        }
        let Some(want) = manifest.files.get(&name) else {
            return Err(format!(
                "the bundle {shown} holds {name}, which its manifest does not list: it was changed after it was made; make it again"
            ));
        };
        if !seen.insert(name.clone()) {
            return Err(format!("the bundle {shown} holds {name} twice: refused"));
        }
        let dest = keep(&manifest, &name);
        let mut out = match &dest {
            Some(d) => Some(
                tempfile::NamedTempFile::new_in(d.parent().unwrap_or(Path::new(".")))
                    .map_err(|e| format!("{}: {e}", d.display()))?,
            ),
            None => None,
        };
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(broken)?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            if let Some(f) = out.as_mut() {
                f.write_all(&buf[..n]).map_err(|e| e.to_string())?;
            }
        }
        let got = hex(&sha2::Digest::finalize(hasher));
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!(
                "the bundle {shown}: {name} was changed after the bundle was made (its sha256 is {got}, the manifest says {want}): copy the bundle again, or make it again"
            ));
        }
        if let (Some(f), Some(d)) = (out, dest) {
            f.persist(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    if let Some(missing) = manifest.files.keys().find(|f| !seen.contains(*f)) {
        return Err(format!(
            "the bundle {shown} lacks {missing}, which its manifest lists: copy it again, or make it again"
        ));
    }
    Ok(manifest)
}

/// Check a bundle: every file listed, none more, each with the sha256 the manifest says.
pub fn verify(path: &Path) -> Result<Manifest, String> {
    read_bundle(path, |_, _| None)
}

/// The bundle a run uses, verified once per process and its charts and applications package
/// extracted into the run's private directory.
pub struct Opened {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

fn opened() -> &'static std::sync::Mutex<BTreeMap<PathBuf, std::sync::Arc<Opened>>> {
    static OPENED: std::sync::OnceLock<
        std::sync::Mutex<BTreeMap<PathBuf, std::sync::Arc<Opened>>>,
    > = std::sync::OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Open (verify and extract) the bundle at `path`, once per process.
pub fn open(path: &Path) -> Result<std::sync::Arc<Opened>, String> {
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut cache = opened().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(o) = cache.get(&key) {
        return Ok(o.clone());
    }
    let dir = crate::process::run_dir()?.join(format!("airgap-{}", cache.len()));
    for sub in ["charts", "apps"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let manifest = read_bundle(&key, |_, name| {
        (name.starts_with("charts/") || name.starts_with("apps/")).then(|| dir.join(name))
    })?;
    let o = std::sync::Arc::new(Opened { manifest, dir });
    cache.insert(key, o.clone());
    Ok(o)
}

impl Opened {
    /// The bundle's archive of a chart, by the chart's name (the last part of `repo/name` or
    /// `oci://host/path/name`): its local path and version.
    pub fn chart(&self, chart: &str) -> Result<(PathBuf, String), String> {
        let name = chart
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(chart);
        let found = self.manifest.charts.iter().find(|c| c.name == name).ok_or_else(|| {
            let have: Vec<&str> = self.manifest.charts.iter().map(|c| c.name.as_str()).collect();
            format!(
                "the bundle has no chart {name} (it has {}): make the bundle with the same site values as the install",
                if have.is_empty() { "none".into() } else { have.join(", ") }
            )
        })?;
        Ok((self.dir.join(&found.file), found.version.clone()))
    }

    /// The bundle's chart of an `oci://…/NAME` chart step at VERSION (the site's chart
    /// registry, which holds the bundle's charts): its archive, to render offline.
    fn archive_of(&self, chart: &str, version: Option<&str>) -> Option<PathBuf> {
        let name = chart.strip_prefix("oci://")?.rsplit('/').next()?;
        self.manifest
            .charts
            .iter()
            .find(|c| c.name == name && version.is_none_or(|v| v == c.version))
            .map(|c| self.dir.join(&c.file))
    }

    /// The applications package in the bundle, with its sha256.
    pub fn apps(&self) -> Result<(PathBuf, String), String> {
        let a = self.manifest.apps.as_ref().ok_or(
            "the bundle has no applications package: make it with apps.enabled and apps.url set",
        )?;
        Ok((self.dir.join(&a.file), a.sha256.clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// create

/// A mirror registry: `host[:port]` with an optional path, no scheme, no tag; the host one a
/// container runtime takes for a host (a dot, a port or `localhost`), not Docker Hub's. The
/// error names `airgap.registry`.
pub fn check_registry(registry: &str) -> Result<(), String> {
    registry_problem(registry).map_or(Ok(()), |e| Err(format!("airgap.registry {e}")))
}

/// What is wrong with a mirror registry, for [`check_registry`] and the site's rules.
pub fn registry_problem(registry: &str) -> Option<String> {
    let host = registry.split('/').next().unwrap_or_default();
    let is_host = (host.contains('.') || host.contains(':') || host == "localhost")
        && !["docker.io", "index.docker.io", "registry-1.docker.io"].contains(&host);
    if !is_host {
        return Some(format!(
            "`{registry}` does not start with a registry host: a container runtime reads `{host}/…` as Docker Hub's; write host[:port] with a dot, a port or localhost, such as registry.local:5000"
        ));
    }
    crate::apps_package::check_target_repo(&format!("{}/x", registry.trim_end_matches('/')))
        .err()
        .map(|_| {
            format!(
                "`{registry}` is not a registry: write host[:port] with an optional path, without a scheme or tag, such as registry.local:5000"
            )
        })
}

/// The site's own chart registry (`airgap.chart_registry`): `oci://HOST[:PORT][/PATH]`, the
/// path lowercase (a repository name of the distribution spec), no tag. Answers the host (for
/// `helm registry login`) and the reference without a trailing `/`.
pub fn check_chart_registry(url: &str) -> Result<(String, String), String> {
    let bad = || {
        format!(
            "`{url}` is not an OCI registry for charts: write oci://HOST[:PORT]/PATH, such as oci://registry.local:5000/charts"
        )
    };
    let rest = url.trim().strip_prefix("oci://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
        && host.split(':').count() <= 2
        && host
            .split_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
    let path_ok = path.is_empty()
        || path.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if !host_ok || !path_ok {
        return Err(bad());
    }
    Ok((host.to_string(), format!("oci://{rest}")))
}

/// The steps that put the bundle's charts into the site's chart registry: `helm registry
/// login` (the password on helm's stdin), then one `helm push` per chart archive of the
/// verified bundle (`oci://HOST/PATH/NAME:VERSION` afterwards). The same steps for
/// `clearml-script bundle push` and an air-gapped install's `bundle_push`.
pub fn push_actions(
    opened: &Opened,
    registry: &str,
    username: crate::value::Value,
    password: crate::secret::Secret,
    plain_http: bool,
) -> Result<Vec<Action>, String> {
    let (host, registry) = check_chart_registry(registry)?;
    if matches!(username, crate::value::Value::Secret(_)) {
        return Err(
            "the registry's username is a secret, and helm takes it on its command line: give a plain username".into(),
        );
    }
    let mut actions = vec![Action::HelmRegistryLogin {
        host,
        username,
        password,
        plain_http,
    }];
    actions.extend(opened.manifest.charts.iter().map(|c| Action::HelmPush {
        archive: opened.dir.join(&c.file).display().to_string(),
        name: c.name.clone(),
        version: c.version.clone(),
        registry: registry.clone(),
        plain_http,
    }));
    Ok(actions)
}

/// What `bundle create` needs besides the plan.
pub struct CreateOptions<'a> {
    pub out: &'a Path,
    pub registry: &'a str,
    pub site: &'a crate::value::Value,
    pub helm: Option<&'a Path>,
    /// In the sandbox: its stand-in chart repository answers every `helm repo add`.
    pub chart_repo_url: Option<String>,
    /// Set by Ctrl-C or SIGTERM: stop after the current step, no bundle written.
    pub interrupted: Option<&'a std::sync::atomic::AtomicBool>,
}

/// Make the bundle from the plan of a site's install (made without `airgap`): pull each chart
/// at its version, download the applications package, render each chart with its values and
/// list every image, then write the archive with its manifest. Answers the manifest.
pub fn create(actions: &[Action], opts: &CreateOptions) -> Result<Manifest, String> {
    let staging = tempfile::Builder::new()
        .prefix("bundle-")
        .tempdir_in(crate::process::run_dir()?)
        .map_err(|e| format!("cannot create a staging directory: {e}"))?;
    let root = staging.path();
    let target = crate::action::Target {
        chart_repo_url: opts.chart_repo_url.clone(),
        helm_home: Some(root.join("helm")),
        ..Default::default()
    };
    let mode = if opts.chart_repo_url.is_some() {
        crate::action::Mode::Sandbox
    } else {
        crate::action::Mode::Live
    };
    let live =
        crate::live::LiveExecutor::new(mode, target, opts.helm.map(Path::to_path_buf), true)?;
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut charts = Vec::new();
    let mut images: BTreeMap<(String, String), ImageEntry> = BTreeMap::new();
    let mut apps = None;
    let probe = normalize(&format!("{}/x", opts.registry.trim_end_matches('/')));
    let in_mirror = probe.strip_suffix('x').unwrap_or(&probe).to_string();
    let mut add_image = |source: &str, target: String, by: String| -> Result<(), String> {
        if normalize(source).starts_with(&in_mirror) {
            return Err(format!(
                "{by}: the image {source} is already in the mirror {}: the bundle cannot copy it from there; give the public image in the site values (the install points it at the mirror)",
                opts.registry
            ));
        }
        let e = images
            .entry((normalize(source), normalize(&target)))
            .or_insert_with(|| ImageEntry {
                source: normalize(source),
                target,
                used_by: Vec::new(),
            });
        if !e.used_by.contains(&by) {
            e.used_by.push(by);
        }
        Ok(())
    };
    for action in actions {
        stopped(opts)?;
        match action {
            Action::HelmRepoAdd { .. }
            | Action::HelmRepoUpdate { .. }
            | Action::HelmRegistryLogin { .. } => {
                crate::action::Executor::execute(&live, action)?;
            }
            Action::HelmUpgradeInstall(spec) => {
                let (entry, path) = pull(&live, spec, root, charts.len())?;
                let rendered =
                    live.helm()?
                        .template_text(spec, Some(&path.display().to_string()), None)?;
                for (object, image) in images_in_manifest(&rendered)
                    .map_err(|e| format!("chart {}: {e}", spec.chart))?
                {
                    add_image(
                        &image,
                        mirror(&image, opts.registry),
                        format!("chart {}: {object}", spec.release),
                    )?;
                }
                for (key, image) in images_in_values(&spec.values.reveal()) {
                    add_image(
                        &image,
                        mirror(&image, opts.registry),
                        format!("chart {}: values {key}", spec.release),
                    )?;
                }
                files.insert(entry.file.clone(), path);
                charts.push(entry);
            }
            Action::AppsDownload { url, sha256, .. } => {
                let zip = root.join("apps.zip");
                let shown = url.redacted();
                crate::live::block_on(crate::apps_package::download(
                    &expose(url),
                    &zip,
                    sha256.as_deref(),
                ))?;
                let sha = crate::apps_package::sha256_file(&zip)?;
                let repo = actions.iter().find_map(|a| match a {
                    Action::AppsConvertRegistry { target_repo, .. } => Some(target_repo.clone()),
                    _ => None,
                });
                let repo = repo.unwrap_or_else(|| {
                    format!("{}/clearml-apps", opts.registry.trim_end_matches('/'))
                });
                let dir = root.join("apps-scan");
                crate::apps_package::extract(&zip, &dir)?;
                let moves = crate::apps_package::convert_native(
                    &dir,
                    &repo,
                    &crate::apps_package::default_image_pattern(),
                )?;
                for m in moves {
                    add_image(
                        &m.image,
                        m.target.clone(),
                        "apps: the applications package".into(),
                    )?;
                }
                let file = "apps/apps.zip".to_string();
                files.insert(file.clone(), zip);
                apps = Some(AppsEntry {
                    url: shown,
                    sha256: sha,
                    file,
                });
            }
            _ => {}
        }
    }
    if charts.is_empty() && apps.is_none() {
        return Err(
            "the site's install has no chart and no applications package: nothing to bundle".into(),
        );
    }
    let images: Vec<ImageEntry> = images.into_values().collect();
    let lists = image_lists(&images, opts.registry);
    for (name, text) in &lists {
        let p = root.join("lists").join(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        files.insert(name.clone(), p);
    }
    let mut sums = BTreeMap::new();
    for (name, p) in &files {
        sums.insert(name.clone(), crate::apps_package::sha256_file(p)?);
    }
    let manifest = Manifest {
        format: FORMAT,
        tool: format!("clearml-script {}", env!("CARGO_PKG_VERSION")),
        registry: opts.registry.to_string(),
        site: opts.site.redacted(),
        charts,
        images,
        apps,
        files: sums,
    };
    stopped(opts)?;
    write_archive(opts.out, &manifest, &files)?;
    Ok(manifest)
}

/// An error once Ctrl-C or SIGTERM came: `create` stops between its steps.
fn stopped(opts: &CreateOptions) -> Result<(), String> {
    match opts.interrupted {
        Some(i) if i.load(std::sync::atomic::Ordering::SeqCst) => Err("interrupted".into()),
        _ => Ok(()),
    }
}

fn expose(v: &crate::value::Value) -> String {
    match v {
        crate::value::Value::Secret(s) => s.expose().to_string(),
        crate::value::Value::Str(s) => s.clone(),
        other => other.reveal().to_string(),
    }
}

/// `helm pull` a chart step's chart at its version into the staging directory.
fn pull(
    live: &crate::live::LiveExecutor,
    spec: &ChartInstall,
    root: &Path,
    n: usize,
) -> Result<(ChartEntry, PathBuf), String> {
    let dest = root.join(format!("pull-{n}"));
    std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    live.helm()?
        .pull(&spec.chart, spec.version.as_deref(), &dest, spec.plain_http)?;
    let tgz = std::fs::read_dir(&dest)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| format!("helm pull {} wrote no chart archive", spec.chart))?;
    let (name, version) = chart_meta(&tgz)?;
    let file = format!("charts/{name}-{version}.tgz");
    Ok((
        ChartEntry {
            release: spec.release.clone(),
            namespace: spec.namespace.clone(),
            source: spec.chart.clone(),
            name,
            version,
            file,
        },
        tgz,
    ))
}

/// The name and version of a chart archive, from its `Chart.yaml`.
fn chart_meta(tgz: &Path) -> Result<(String, String), String> {
    let f = std::fs::File::open(tgz).map_err(|e| format!("{}: {e}", tgz.display()))?;
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    for e in a.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let p = e.path().map_err(|e| e.to_string())?.display().to_string();
        if p.split('/').count() == 2 && p.ends_with("/Chart.yaml") {
            let mut text = String::new();
            e.read_to_string(&mut text).map_err(|e| e.to_string())?;
            let meta = crate::site::parse_yaml(&text)?.reveal();
            let field = |k: &str| {
                meta[k]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{}: Chart.yaml has no {k}", tgz.display()))
            };
            return Ok((field("name")?, field("version")?));
        }
    }
    Err(format!("{} holds no Chart.yaml", tgz.display()))
}

/// The image lists: the sources one a line, the `skopeo copy` commands, and skopeo sync's
/// YAML. `skopeo sync --dest docker` puts each image at DEST/BASENAME:TAG (the repository's
/// last part only), so the images that keep their repository path in the mirror are grouped by
/// the mirror's directory they go to, one YAML file each (`skopeo-sync/DIR.yaml`), with
/// `skopeo-sync.sh` giving each its destination. The applications' images are renamed into one
/// repository (`apps.registry`, the name in the tag), which skopeo sync cannot do: they are in
/// the copy commands only, and the sync script says so.
fn image_lists(images: &[ImageEntry], registry: &str) -> Vec<(String, String)> {
    let mut list = String::new();
    let mut copy = String::from(
        "#!/bin/sh\n# Copy every image of the bundle into the mirror (run where both are reachable).\nset -e\n",
    );
    // the mirror's directory → source domain → repository → tags
    type Sync = BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<String>>>>;
    let mut sync: Sync = BTreeMap::new();
    let mut renamed = Vec::new();
    let registry = registry.trim_end_matches('/');
    let mut listed = BTreeSet::new();
    for i in images {
        if listed.insert(i.source.as_str()) {
            list.push_str(&format!("{}\n", i.source));
        }
        copy.push_str(&format!(
            "skopeo copy --all docker://{} docker://{}\n",
            i.source, i.target
        ));
        if i.target != mirror(&i.source, registry) {
            renamed.push(i);
            continue;
        }
        let (domain, rest) = i.source.split_once('/').unwrap_or(("docker.io", &i.source));
        let (repo, tag) = match rest.split_once('@') {
            Some((r, d)) => (r.split(':').next().unwrap_or(r).to_string(), d.to_string()),
            // `rest` is past the registry host (a normalized reference always has one), so a
            // `:` in it is the tag's
            None => match rest.rsplit_once(':') {
                Some((r, t)) => (r.to_string(), t.to_string()),
                None => (rest.to_string(), "latest".to_string()),
            },
        };
        let dir = repo.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        sync.entry(dir)
            .or_default()
            .entry(domain.to_string())
            .or_default()
            .entry(repo)
            .or_default()
            .push(tag);
    }
    let mut out = vec![
        ("images.txt".to_string(), list),
        ("mirror-images.sh".to_string(), copy),
    ];
    let mut script = String::from(
        "#!/bin/sh\n# Sync the images that keep their repository path into the mirror, one destination\n# directory at a time (skopeo sync puts each image at DEST/NAME:TAG).\nset -e\ncd \"$(dirname \"$0\")\"\n",
    );
    for (dir, domains) in &sync {
        let file = format!(
            "skopeo-sync/{}.yaml",
            if dir.is_empty() {
                "_top".to_string()
            } else {
                dir.replace('/', "_")
            }
        );
        let dest = if dir.is_empty() {
            registry.to_string()
        } else {
            format!("{registry}/{dir}")
        };
        script.push_str(&format!(
            "skopeo sync --all --src yaml --dest docker {file} {dest}\n"
        ));
        let mut yaml = format!("# skopeo sync --all --src yaml --dest docker {file} {dest}\n");
        for (domain, repos) in domains {
            yaml.push_str(&format!("{domain}:\n  images:\n"));
            for (repo, tags) in repos {
                yaml.push_str(&format!("    {repo}:\n"));
                for t in tags {
                    yaml.push_str(&format!("      - \"{t}\"\n"));
                }
            }
        }
        out.push((file, yaml));
    }
    if !renamed.is_empty() {
        script.push_str(
            "# Renamed in the mirror, which skopeo sync cannot do: copied by mirror-images.sh\n",
        );
        for i in renamed {
            script.push_str(&format!("#   {} -> {}\n", i.source, i.target));
        }
    }
    out.push(("skopeo-sync.sh".to_string(), script));
    out
}

/// Write the archive: the manifest first, then every file, into a temporary file beside `out`
/// renamed over it at the end (a failure leaves no half bundle).
fn write_archive(
    out: &Path,
    manifest: &Manifest,
    files: &BTreeMap<String, PathBuf>,
) -> Result<(), String> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let gz = flate2::write::GzEncoder::new(tmp.as_file(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?;
    let append = |tar: &mut tar::Builder<_>, name: &str, size: u64, data: &mut dyn Read| {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))
    };
    append(&mut tar, MANIFEST, text.len() as u64, &mut text.as_slice())?;
    for (name, p) in files {
        let mut f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let size = f.metadata().map_err(|e| e.to_string())?.len();
        append(&mut tar, name, size, &mut f)?;
    }
    let gz = tar.into_inner().map_err(|e| e.to_string())?;
    gz.finish().map_err(|e| e.to_string())?;
    tmp.as_file().sync_all().map_err(|e| e.to_string())?;
    tmp.persist(out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the closure proof

/// One image that breaks the closure.
#[derive(Debug, Clone)]
pub struct Escape {
    pub chart: String,
    pub object: String,
    pub image: String,
    pub why: String,
}

/// Render every chart step of the plan with its final values (`helm template`, offline) and
/// check every image reference, and every image the values set: each must point at the mirror
/// and be in the bundle's image list. Answers how many references were checked, or every one
/// that escapes.
pub fn prove_closure(
    actions: &[Action],
    opened: &Opened,
    registry: &str,
    helm: Option<&Path>,
) -> Result<usize, Result<Vec<Escape>, String>> {
    let manifest = &opened.manifest;
    let known: BTreeSet<String> = manifest
        .images
        .iter()
        .map(|i| normalize(&i.target))
        .collect();
    let probe = normalize(&format!("{}/x", registry.trim_end_matches('/')));
    let prefix = probe.strip_suffix('x').unwrap_or(&probe).to_string();
    let helm = crate::helm::Helm::new(helm, Default::default()).map_err(Err)?;
    let mut checked = 0;
    let mut escapes = Vec::new();
    for action in actions {
        let Action::HelmUpgradeInstall(spec) = action else {
            continue;
        };
        // a chart of the site's chart registry is the bundle's archive pushed there: rendered
        // from the archive, before anything is pushed
        let archive = opened.archive_of(&spec.chart, spec.version.as_deref());
        let file = archive
            .as_deref()
            .unwrap_or(Path::new(&spec.chart))
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        let named = manifest
            .charts
            .iter()
            .find(|c| file.as_deref() == Path::new(&c.file).file_name().and_then(|f| f.to_str()))
            .map_or(spec.chart.clone(), |c| format!("{} {}", c.name, c.version));
        let chart = format!("{named} (release {} in {})", spec.release, spec.namespace);
        let archive = archive.map(|a| a.display().to_string());
        let rendered = helm
            .template_text(spec, archive.as_deref(), None)
            .map_err(Err)?;
        let mut refs = images_in_manifest(&rendered).map_err(|e| Err(format!("{chart}: {e}")))?;
        refs.extend(
            images_in_values(&spec.values.reveal())
                .into_iter()
                .map(|(k, i)| (format!("values {k}"), i)),
        );
        for (object, image) in refs {
            checked += 1;
            let full = normalize(&image);
            let why = if !full.starts_with(&prefix) {
                format!("does not point at the mirror {registry}")
            } else if !known.contains(&full) {
                "is not in the bundle's image list".to_string()
            } else {
                continue;
            };
            escapes.push(Escape {
                chart: chart.clone(),
                object,
                image,
                why,
            });
        }
    }
    if escapes.is_empty() {
        Ok(checked)
    } else {
        Err(Ok(escapes))
    }
}

/// The closure's failure as the user reads it.
pub fn describe(escapes: &[Escape]) -> String {
    let mut out = format!(
        "error: the closure proof found {} image reference(s) the air-gapped cluster could not pull; nothing was changed\n",
        escapes.len()
    );
    for e in escapes {
        out.push_str(&format!(
            "  - chart {}: {}: image {} {}\n",
            e.chart, e.object, e.image, e.why
        ));
    }
    out.push_str(
        "  Point the image at the mirror through the chart's values (extra_values), or make the bundle again so that it lists it\n",
    );
    out
}

// ---------------------------------------------------------------------------------------------
// the commands

fn site_text(site: &crate::value::Value, key: &str) -> Option<String> {
    match site.at_path(key) {
        Some(crate::value::Value::Str(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn load_site(args: &crate::cli::SiteArgs) -> Result<crate::site::Site, i32> {
    let site = crate::site::Site::load(&args.values, &args.sets()).map_err(|e| {
        crate::ui::err(&format!("error: {e}\n"));
        2
    })?;
    if let Some(code) = crate::site_keys::refuse_unknown(&site, None) {
        return Err(code);
    }
    Ok(site)
}

/// `clearml-script bundle …`.
pub fn command(
    action: crate::cli::BundleAction,
    interrupted: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> i32 {
    use crate::cli::BundleAction;
    use crate::ui;
    match action {
        BundleAction::Verify { bundle } => match verify(&bundle) {
            Ok(m) => {
                ui::err(&format!(
                    "{}: verified: {} files, {} charts, {} images{} (made by {})\n",
                    bundle.display(),
                    m.files.len(),
                    m.charts.len(),
                    m.images.len(),
                    if m.apps.is_some() {
                        ", the applications package"
                    } else {
                        ""
                    },
                    m.tool
                ));
                0
            }
            Err(e) => {
                ui::err(&format!("error: {e}\n"));
                2
            }
        },
        BundleAction::Create {
            out,
            site,
            sandbox,
            helm,
        } => {
            let site = match load_site(&site) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let Some(registry) = site_text(&site.values, "airgap.registry") else {
                ui::err(
                    "error: `bundle create` needs `airgap.registry`, the mirror registry the images are copied to (host[:port][/path]): add it to the site values, or pass --set airgap.registry=HOST\n",
                );
                return 2;
            };
            if let Err(e) = check_registry(&registry) {
                ui::err(&format!("error: {e}\n"));
                return 2;
            }
            // the install as planned where the internet is reachable: the vendor's charts
            let mut connected = site.clone();
            if let crate::value::Value::Map(m) = &mut connected.values {
                m.remove("airgap");
            }
            let actions =
                match crate::execute::plan_actions("install.rhai", &connected, interrupted.clone())
                {
                    Ok(a) => a,
                    Err((text, code)) => {
                        ui::err(&text);
                        return code;
                    }
                };
            let sb = if sandbox {
                let Some(handle) = crate::runtime::tokio_handle() else {
                    ui::err("error: no async runtime\n");
                    return 1;
                };
                match handle.block_on(crate::sandbox::Sandbox::start(None, Default::default())) {
                    Ok(sb) => Some(sb),
                    Err(e) => {
                        ui::err(&format!("error: cannot start the sandbox: {e}\n"));
                        return 1;
                    }
                }
            } else {
                None
            };
            let opts = CreateOptions {
                out: &out,
                registry: &registry,
                site: &site.values,
                helm: helm.as_deref(),
                chart_repo_url: sb.as_ref().map(|s| s.kube.chart_repo_url()),
                interrupted: Some(&interrupted),
            };
            match create(&actions, &opts) {
                Ok(m) => {
                    for c in &m.charts {
                        ui::err(&format!(
                            "chart {} {} (release {} in {})\n",
                            c.name, c.version, c.release, c.namespace
                        ));
                    }
                    ui::err(&format!(
                        "wrote {}: {} charts, {} images to mirror into {}{}; the list, the skopeo copy commands and skopeo sync's files are inside (images.txt, mirror-images.sh, skopeo-sync.sh with skopeo-sync/*.yaml)\n",
                        out.display(),
                        m.charts.len(),
                        m.images.len(),
                        m.registry,
                        if m.apps.is_some() {
                            ", the applications package"
                        } else {
                            ""
                        },
                    ));
                    0
                }
                Err(e) => {
                    ui::err(&format!("error: {e}; no bundle was written\n"));
                    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                        crate::process::interrupted_exit_code()
                    } else {
                        1
                    }
                }
            }
        }
        BundleAction::Push {
            bundle,
            site,
            dry_run,
            sandbox,
            helm,
        } => {
            let site = match load_site(&site) {
                Ok(s) => s,
                Err(code) => return code,
            };
            push_command(&site, bundle.as_deref(), dry_run, sandbox, helm.as_deref())
        }
        BundleAction::Check { site, helm } => {
            let site = match load_site(&site) {
                Ok(s) => s,
                Err(code) => return code,
            };
            if site_text(&site.values, "airgap.bundle").is_none()
                || site_text(&site.values, "airgap.registry").is_none()
            {
                ui::err(
                    "error: `bundle check` needs `airgap.bundle` (the bundle made by `bundle create`) and `airgap.registry` (the mirror) in the site values\n",
                );
                return 2;
            }
            let actions = match crate::execute::plan_actions("install.rhai", &site, interrupted) {
                Ok(a) => a,
                Err((text, code)) => {
                    ui::err(&text);
                    return code;
                }
            };
            match closure(&site, &actions, helm.as_deref(), Path::new(".")) {
                Ok(Some(text)) => {
                    ui::err(&text);
                    0
                }
                Ok(None) => 0,
                Err(code) => code,
            }
        }
    }
}

/// `clearml-script bundle push`: the site's chart registry and its credentials checked (exit 2
/// naming the value and where it was given), the bundle verified, then the login and the pushes
/// (or their plan).
fn push_command(
    site: &crate::site::Site,
    bundle: Option<&Path>,
    dry_run: bool,
    sandbox: bool,
    helm: Option<&Path>,
) -> i32 {
    use crate::ui;
    let refuse = |text: String| {
        ui::err(&format!("error: {text}; nothing was pushed\n"));
        2
    };
    const REG: &str = "airgap.chart_registry";
    let Some(registry) = site_text(&site.values, REG) else {
        return refuse(format!(
            "`bundle push` needs `{REG}`, the site's OCI registry for charts (oci://HOST[:PORT]/PATH): add it to the site values"
        ));
    };
    if let Err(e) = check_chart_registry(&registry) {
        return refuse(format!("{}: {e}", site.describe(REG)));
    }
    let username = site
        .values
        .at_path("airgap.chart_registry_username")
        .cloned();
    let password = match site.values.at_path("airgap.chart_registry_password") {
        Some(crate::value::Value::Secret(s)) => Some(s.clone()),
        Some(crate::value::Value::Str(s)) if !s.is_empty() => Some(crate::secret::Secret::new(s)),
        _ => None,
    };
    let (Some(username), Some(password)) = (username, password) else {
        return refuse(format!(
            "{} needs `airgap.chart_registry_username` and `airgap.chart_registry_password`, the credentials the charts are pushed with (the password may be {{env: NAME}} or {{file: PATH}})",
            site.describe(REG)
        ));
    };
    let plain_http = matches!(
        site.values.at_path("airgap.chart_registry_plain_http"),
        Some(crate::value::Value::Bool(true))
    );
    let bundle = match bundle {
        Some(b) => b.to_path_buf(),
        None => match site_text(&site.values, "airgap.bundle") {
            Some(b) => PathBuf::from(b),
            None => {
                return refuse(
                    "name the bundle: `bundle push BUNDLE`, or `airgap.bundle` in the site values"
                        .into(),
                );
            }
        },
    };
    let opened = match open(&bundle) {
        Ok(o) => o,
        Err(e) => return refuse(e),
    };
    let actions = match push_actions(&opened, &registry, username, password, plain_http) {
        Ok(a) => a,
        Err(e) => {
            return refuse(format!(
                "{}: {e}",
                site.describe("airgap.chart_registry_username")
            ));
        }
    };
    if dry_run {
        print!("{}", crate::action::render_text(&actions, &[], true));
        return 0;
    }
    let sb = if sandbox {
        let Some(handle) = crate::runtime::tokio_handle() else {
            ui::err("error: no async runtime\n");
            return 1;
        };
        match handle.block_on(crate::sandbox::Sandbox::start(None, Default::default())) {
            Ok(sb) => {
                sb.seed_from_site(&site.values);
                Some(sb)
            }
            Err(e) => {
                ui::err(&format!("error: cannot start the sandbox: {e}\n"));
                return 1;
            }
        }
    } else {
        None
    };
    let target = crate::action::Target {
        oci_registry: sb.as_ref().map(|s| s.registry.host()),
        helm_home: sb.as_ref().map(|s| s.dir.join("helm")),
        ..Default::default()
    };
    let mode = if sb.is_some() {
        crate::action::Mode::Sandbox
    } else {
        crate::action::Mode::Live
    };
    let live = match crate::live::LiveExecutor::new(mode, target, helm.map(Path::to_path_buf), true)
    {
        Ok(l) => l,
        Err(e) => {
            ui::err(&format!("error: {e}\n"));
            return 1;
        }
    };
    for action in &actions {
        if let Err(e) = crate::action::Executor::execute(&live, action) {
            ui::err(&format!("error: {e}\n"));
            return 1;
        }
        if let Action::HelmPush {
            name,
            version,
            registry,
            ..
        } = action
        {
            ui::err(&format!(
                "pushed {name} {version}: {registry}/{name}:{version}\n"
            ));
        }
    }
    if let Some(sb) = &sb {
        ui::err(&format!(
            "sandbox: the OCI registry now holds {}\n",
            sb.registry.tagged().join(", ")
        ));
    }
    0
}

/// The closure proof of a run whose site has `airgap.bundle`: answers what it proved (or
/// `None` for a site without a bundle); on a failure the error is printed and the exit code
/// answered (2: nothing was changed).
pub fn closure(
    site: &crate::site::Site,
    actions: &[Action],
    helm: Option<&Path>,
    base_dir: &Path,
) -> Result<Option<String>, i32> {
    let Some(bundle) = site_text(&site.values, "airgap.bundle") else {
        return Ok(None);
    };
    // a playbook that installs no chart (preflight, status) has nothing to prove
    if !actions
        .iter()
        .any(|a| matches!(a, Action::HelmUpgradeInstall(_)))
    {
        return Ok(None);
    }
    let fail = |e: String| {
        crate::ui::err(&format!("error: {e}; nothing was changed\n"));
        2
    };
    let Some(registry) = site_text(&site.values, "airgap.registry") else {
        return Err(fail(
            "`airgap.bundle` needs `airgap.registry`, the mirror the images were copied to".into(),
        ));
    };
    check_registry(&registry).map_err(fail)?;
    let opened = open(&base_dir.join(&bundle)).map_err(fail)?;
    if normalize(&format!("{}/x", opened.manifest.registry)) != normalize(&format!("{registry}/x"))
    {
        return Err(fail(format!(
            "the bundle {bundle} lists its images in the mirror {}, the site's airgap.registry is {registry}: make the bundle again for this mirror",
            opened.manifest.registry
        )));
    }
    let charts = actions
        .iter()
        .filter(|a| matches!(a, Action::HelmUpgradeInstall(_)))
        .count();
    match prove_closure(actions, &opened, &registry, helm) {
        Ok(n) => Ok(Some(format!(
            "closure: {n} image references of {charts} chart(s) rendered with their final values, all in the mirror {registry} and in the bundle\n"
        ))),
        Err(Ok(escapes)) => {
            crate::ui::err(&describe(&escapes));
            Err(2)
        }
        Err(Err(e)) => Err(fail(format!(
            "the closure proof could not render the charts: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle whose entry after the manifest is a symbolic link, or a file named outside it,
    /// is refused by name before anything is read from it.
    #[test]
    fn a_bundle_with_a_link_or_an_escaping_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = serde_json::json!({"format": FORMAT, "tool": "t", "registry": "r",
            "site": {}, "charts": [], "images": [], "files": {}});
        let bundle = |name: &str, link: bool| {
            let path = dir.path().join("b.tar.gz");
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&path).unwrap(),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            let text = manifest.to_string();
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, MANIFEST, text.as_bytes()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            if link {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, name, "/etc/passwd").unwrap();
            } else {
                h.set_size(1);
                h.set_path("x").unwrap();
                // written raw: the tar crate refuses to write a `..` path itself
                let bytes = h.as_old_mut();
                bytes.name[..name.len()].copy_from_slice(name.as_bytes());
                bytes.name[name.len()..].fill(0);
                h.set_cksum();
                tar.append(&h, &b"x"[..]).unwrap();
            }
            tar.into_inner().unwrap().finish().unwrap();
            path
        };
        for (name, link) in [("charts/a.tgz", true), ("../escape", false)] {
            let e = read_bundle(&bundle(name, link), |_, _| None).expect_err(name);
            assert!(
                e.ends_with(&format!(
                    "holds {name}, which is not a plain file inside it: refused"
                )),
                "{name}: {e}"
            );
        }
    }

    #[test]
    fn a_bundle_entry_stays_inside_the_bundle() {
        for ok in ["manifest.json", "charts/clearml-7.14.1.tgz", "a/b/c"] {
            assert!(safe_entry(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".",
            "..",
        ] {
            assert!(!safe_entry(bad), "{bad}");
        }
    }

    #[test]
    fn a_chart_registry_is_oci_with_a_host_an_optional_port_and_a_lowercase_path() {
        for (url, host, registry) in [
            (
                "oci://registry.local:5000/charts/",
                "registry.local:5000",
                "oci://registry.local:5000/charts",
            ),
            ("oci://r.example", "r.example", "oci://r.example"),
            (
                "oci://r:65535/a/b-c_d.e",
                "r:65535",
                "oci://r:65535/a/b-c_d.e",
            ),
        ] {
            assert_eq!(
                check_chart_registry(url),
                Ok((host.to_string(), registry.to_string())),
                "{url}"
            );
        }
        for url in [
            "registry.local/charts",
            "oci://",
            "oci://r:0/charts",
            "oci://r:65536",
            "oci://r:1:2",
            "oci://r/Charts",
            "oci://r//charts",
            "oci://r_x/charts",
        ] {
            let e = check_chart_registry(url).expect_err(url);
            assert!(
                e.contains("is not an OCI registry for charts"),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn references_are_qualified_and_mirrored() {
        assert_eq!(normalize("python:3.9"), "docker.io/library/python:3.9");
        assert_eq!(normalize("allegroai/x:1"), "docker.io/allegroai/x:1");
        assert_eq!(
            normalize("registry.local:5000/a/b@sha256:ab"),
            "registry.local:5000/a/b@sha256:ab"
        );
        assert_eq!(normalize("localhost/a"), "localhost/a");
        assert_eq!(
            mirror("allegroai/x:1", "registry.local:5000/"),
            "registry.local:5000/allegroai/x:1"
        );
        assert_eq!(
            mirror("python:3.9", "m.example/mirror"),
            "m.example/mirror/library/python:3.9"
        );
    }

    #[test]
    fn images_of_every_container_kind_are_found() {
        // a template that renders nothing leaves a document of comments only, or an empty one
        let text = "---\n# Source: empty.yaml\n# nothing\n---\n\n---\n# Source: x\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: i, image: a/i:1}]\n          containers: [{name: m, image: a/m:1}]\n---\nkind: Pod\nmetadata: {name: p}\nspec:\n  ephemeralContainers: [{name: e, image: a/e:1}]\n  containers: [{name: c, image: a/c:1}]\n";
        let found = images_in_manifest(text).unwrap();
        let mut images: Vec<(&str, &str)> = found
            .iter()
            .map(|(o, i)| (o.as_str(), i.as_str()))
            .collect();
        images.sort();
        assert_eq!(
            images,
            [
                ("CronJob c, container i", "a/i:1"),
                ("CronJob c, container m", "a/m:1"),
                ("Pod p, container c", "a/c:1"),
                ("Pod p, container e", "a/e:1"),
            ]
        );
    }

    #[test]
    fn images_the_values_set_are_found() {
        let v = serde_json::json!({"agentk8sglue": {"defaultContainerImage": "python:3.9",
            "image": {"registry": "docker.io", "repository": "allegroai/glue", "tag": "1"}},
            "queues": [{"defaultImage": "a/b:2"}], "imageCredentials": {"password": "x"}});
        let found = images_in_values(&v);
        assert_eq!(
            found,
            vec![
                (
                    "agentk8sglue.defaultContainerImage".to_string(),
                    "python:3.9".to_string()
                ),
                (
                    "agentk8sglue.image".to_string(),
                    "docker.io/allegroai/glue:1".to_string()
                ),
                ("queues[0].defaultImage".to_string(), "a/b:2".to_string()),
            ]
        );
    }
}
