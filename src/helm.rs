//! The real `helm` CLI, driven with the flags right for its major version (3 or 4), always with
//! the same kubeconfig and context as the Kubernetes client. Passwords go through stdin and
//! values through 0600 temporary files removed afterwards: never through argv.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value as J;

use sha2::{Digest, Sha256};

use crate::action::{ChartInstall, Target};
use crate::helm_repos::{IndexState, Indexes};
use crate::secret::Secret;

/// How long `helm version` may take: it reads no network, so more means a broken helm.
const VERSION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Helm {
    pub bin: PathBuf,
    pub major: u32,
    pub version: String,
    target: Target,
    /// What this run knows of helm's repository indexes ([`crate::helm_repos`]).
    indexes: RefCell<Indexes>,
}

/// Where helm is: `--helm`, then `HELM_BIN`, then `PATH`.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--helm {}: there is no such file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("HELM_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("HELM_BIN={}: there is no such file", p.display()))
        };
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|d| d.join("helm"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "helm was not found: install Helm 3 or 4 (https://helm.sh/docs/intro/install/), \
             or point to it with --helm PATH or HELM_BIN"
                .to_string()
        })
}

/// An argument as a shell would need it written, for `-v` output.
pub fn shell_word(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// A helm binary and what `helm version` says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Probed {
    pub bin: PathBuf,
    pub major: u32,
    pub version: String,
}

/// helm's environment overrides of the cluster connection (`helm --help`): each would make helm
/// talk to another cluster, context or identity than the Kubernetes client of the tool.
const HELM_KUBE_OVERRIDES: &[&str] = &[
    "HELM_KUBECONTEXT",
    "HELM_KUBEAPISERVER",
    "HELM_KUBEASUSER",
    "HELM_KUBEASGROUPS",
    "HELM_KUBECAFILE",
    "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
    "HELM_KUBETLS_SERVER_NAME",
    "HELM_KUBETOKEN",
];

/// helm keeps its release records where the tool reads them (Secrets, its default driver)
/// only without another `HELM_DRIVER`: with ConfigMaps or SQL the tool would see no release,
/// upgrade every run and call each one failed.
pub fn check_storage_driver(driver: Option<&str>) -> Result<(), String> {
    match driver.map(str::trim) {
        None | Some("") | Some("secret") | Some("secrets") => Ok(()),
        Some(other) => Err(format!(
            "HELM_DRIVER={other}: the tool reads helm's release records from Secrets, helm's default \
             storage driver; unset HELM_DRIVER (or set it to secret)"
        )),
    }
}

/// The major version (3 or 4) of a `helm version` answer (`v4.1.4`).
fn major_of(version: &str) -> Option<u32> {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| *m == 3 || *m == 4)
}

/// The identity a version answer is cached under, for a helm that is a compiled program
/// named helm (its canonical path, size and time: [`crate::tool_cache::identity`]). None for a
/// script or a shim (a file starting with `#!`, or a symlink to a version manager such as
/// mise, whose answer depends on where and how it runs): those are asked every time.
fn cacheable_identity(bin: &Path) -> Option<J> {
    let canonical = std::fs::canonicalize(bin).ok()?;
    if !canonical.file_name()?.to_str()?.starts_with("helm") {
        return None;
    }
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open(&canonical).ok()?, &mut magic).ok()?;
    // ELF, or Mach-O (32/64-bit, either byte order, universal)
    let compiled = magic == *b"\x7fELF"
        || matches!(
            u32::from_be_bytes(magic),
            0xfeedface | 0xfeedfacf | 0xcefaedfe | 0xcffaedfe | 0xcafebabe
        );
    if !compiled {
        return None;
    }
    crate::tool_cache::identity(&canonical)
}

/// Find helm and learn its version: from the tool's cache ([`crate::tool_cache`], in `cache`)
/// when it holds the answer for this very binary, else by asking `helm version` (and caching
/// the answer). A cached answer that is not a Helm 3 or 4 version is asked again.
pub fn probe(flag: Option<&Path>, cache: Option<&Path>) -> Result<Probed, String> {
    check_storage_driver(std::env::var("HELM_DRIVER").ok().as_deref())?;
    let bin = locate(flag)?;
    let identity = cache.and_then(|_| cacheable_identity(&bin));
    if let (Some(dir), Some(id)) = (cache, &identity)
        && let Some(J::String(version)) = crate::tool_cache::lookup(dir, "helm-version", id)
        && let Some(major) = major_of(&version)
    {
        return Ok(Probed {
            bin,
            major,
            version,
        });
    }
    let child = crate::process::command(&bin)
        .args(["version", "--template", "{{.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let what = format!("`{} version`", bin.display());
    let out = crate::process::wait(child, &what, Some(VERSION_DEADLINE))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = major_of(&version).ok_or_else(|| {
        format!(
            "{} says its version is {version:?}; Helm 3 or 4 is needed",
            bin.display()
        )
    })?;
    if let (Some(dir), Some(id)) = (cache, &identity) {
        crate::tool_cache::store(dir, "helm-version", id, &J::String(version.clone()));
    }
    Ok(Probed {
        bin,
        major,
        version,
    })
}

impl Helm {
    /// Find helm and learn its version once ([`probe`], through the tool's cache).
    pub fn new(flag: Option<&Path>, target: Target) -> Result<Helm, String> {
        Ok(Helm::with(
            probe(flag, crate::tool_cache::dir().as_deref())?,
            target,
        ))
    }

    /// The helm `probed` found, driven for `target`.
    pub fn with(probed: Probed, target: Target) -> Helm {
        Helm {
            bin: probed.bin,
            major: probed.major,
            version: probed.version,
            target,
            indexes: RefCell::default(),
        }
    }

    /// `helm repo add NAME URL --force-update` (the password on helm's stdin), which also
    /// fetches the index; skipped when helm's repository file holds exactly this entry already,
    /// and then the index is refreshed before a chart from it is first needed. Answers whether
    /// helm ran.
    pub fn repo_add(
        &self,
        name: &str,
        url: &str,
        username: Option<&str>,
        password: Option<&Secret>,
    ) -> Result<bool, String> {
        let password = password.map(Secret::expose);
        let known = crate::helm_repos::repositories_file(self.target.helm_home.as_deref())
            .and_then(|f| std::fs::read_to_string(f).ok())
            .is_some_and(|text| crate::helm_repos::has_entry(&text, name, url, username, password));
        if known {
            let mut indexes = self.indexes.borrow_mut();
            if !matches!(indexes.state(name), IndexState::Fresh(_)) {
                indexes.set(name, IndexState::Stale);
            }
            return Ok(false);
        }
        let mut args = strings(&["repo", "add", name, url, "--force-update"]);
        if let Some(u) = username {
            args.extend(["--username".to_string(), u.to_string()]);
        }
        if password.is_some() {
            args.push("--password-stdin".into());
        }
        let started = SystemTime::now();
        self.run(&args, password)?;
        self.indexes
            .borrow_mut()
            .set(name, IndexState::Fresh(started));
        Ok(true)
    }

    /// `helm repo update NAMES` (every repository when none), deferred: each index is fetched
    /// before a chart from it is first needed, once per run, unless this run fetched it already.
    pub fn repo_update(&self, names: &[String]) {
        self.indexes.borrow_mut().update_asked(names);
    }

    /// Before helm reads chart `chart` from a repository: its index fetched if this run asked
    /// for that and has not done it yet (`helm repo update REPO`). Answers when the index was
    /// fetched in this run, if it was.
    fn fresh_index(&self, chart: &str) -> Result<Option<SystemTime>, String> {
        let Some((repo, _)) = crate::helm_repos::repo_chart(chart) else {
            return Ok(None);
        };
        loop {
            let state = self.indexes.borrow().state(repo);
            match state {
                IndexState::Fresh(at) => return Ok(Some(at)),
                IndexState::Unknown => return Ok(None),
                // another branch of a parallel group fetches it: let the others go on meanwhile
                IndexState::Updating => {
                    crate::parallel::blocking(|| std::thread::sleep(Duration::from_millis(20)))
                }
                IndexState::Stale => {
                    self.indexes.borrow_mut().set(repo, IndexState::Updating);
                    let started = SystemTime::now();
                    let done = self.run(&strings(&["repo", "update", repo]), None);
                    self.indexes.borrow_mut().set(
                        repo,
                        match done {
                            Ok(_) => IndexState::Fresh(started),
                            Err(_) => IndexState::Stale,
                        },
                    );
                    done.map_err(|e| {
                        format!("{e}\n(the index of {repo}, fetched before the chart {chart})")
                    })?;
                }
            }
        }
    }

    /// The chart name and version `helm upgrade --install` would install for this step, when
    /// that is certain without rendering: a pinned exact version, or the highest stable version
    /// in the index fetched in this run. `None` otherwise (then the step is rendered).
    pub fn installing(&self, u: &ChartInstall) -> Result<Option<(String, String)>, String> {
        let Some((repo, name)) = crate::helm_repos::repo_chart(&u.chart) else {
            return Ok(None);
        };
        if let Some(v) = &u.version {
            let exact = crate::helm_repos::exact_version(v);
            return Ok(exact.then(|| (name.to_string(), v.clone())));
        }
        let Some(since) = self.fresh_index(&u.chart)? else {
            return Ok(None);
        };
        let latest = crate::helm_repos::index_file(self.target.helm_home.as_deref(), repo)
            .and_then(|f| crate::helm_repos::read_fresh_index(&f, since))
            .and_then(|text| crate::helm_repos::latest_stable(&text, name));
        Ok(latest.map(|v| (name.to_string(), v)))
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = crate::process::command(&self.bin);
        cmd.args(args);
        // the cluster, context and identity are the kubeconfig's and --context's alone, as for
        // the Kubernetes client: helm's own overrides of them would point it elsewhere
        for var in HELM_KUBE_OVERRIDES {
            cmd.env_remove(var);
        }
        match &self.target.kubeconfig {
            // a list of files: helm merges KUBECONFIG as kubectl does (and as the tool does);
            // its --kubeconfig takes one file only
            Some(k) if crate::kube::is_list(k) => {
                cmd.env("KUBECONFIG", k);
            }
            Some(k) => {
                cmd.arg("--kubeconfig").arg(k);
            }
            None => {}
        }
        if let Some(c) = &self.target.context {
            cmd.arg("--kube-context").arg(c);
        }
        crate::ui::debug(&format!(
            "$ {} {}",
            self.bin.display(),
            cmd.get_args()
                .map(|a| shell_word(&a.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        if let Some(home) = &self.target.helm_home {
            cmd.env("HELM_CONFIG_HOME", home.join("config"))
                .env("HELM_CACHE_HOME", home.join("cache"))
                .env("HELM_DATA_HOME", home.join("data"));
        }
        cmd
    }

    /// Run helm; `stdin` carries a password. The error holds helm's own message.
    pub fn run(&self, args: &[String], stdin: Option<&str>) -> Result<String, String> {
        self.run_with(args, stdin, &[], None)
    }

    /// Run helm for a read of the cluster (`list`, `get`): helm sets no deadline on its
    /// requests, so a stalled API server would hold it forever; it is stopped after the
    /// Kubernetes request timeout (`CLEARML_SCRIPT_KUBE_TIMEOUT`, 60 s), with an error that
    /// says so.
    pub fn read(&self, args: &[String]) -> Result<String, String> {
        self.run_with(args, None, &[], Some(crate::kube::request_timeout()?))
    }

    /// The same, with more environment for helm (its private files) and a deadline.
    fn run_with(
        &self,
        args: &[String],
        stdin: Option<&str>,
        env: &[(&str, &Path)],
        deadline: Option<Duration>,
    ) -> Result<String, String> {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if let Some(input) = stdin {
            crate::ui::debug("  (the password on helm's stdin)");
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(input.as_bytes())
                .map_err(|e| format!("cannot pass the password to helm: {e}"))?;
        }
        let shown: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
        let out = crate::process::wait(child, &format!("helm {}", shown.join(" ")), deadline)
            .map_err(|e| match deadline {
                Some(_) => format!(
                    "{e}: check that the Kubernetes API server is up and not overloaded, or raise \
                     CLEARML_SCRIPT_KUBE_TIMEOUT (seconds)"
                ),
                None => e,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            Err(format!(
                "helm {} failed: {}",
                shown.join(" "),
                if err.is_empty() { "no message" } else { err }
            ))
        }
    }

    /// `helm list -o json`, in a namespace or all.
    pub fn list(&self, namespace: Option<&str>) -> Result<J, String> {
        let mut args = strings(&["list", "-o", "json"]);
        match namespace {
            Some(ns) => args.extend(strings(&["-n", ns])),
            None => args.push("-A".into()),
        }
        if self.major == 3 {
            args.push("-a".into());
        }
        let out = self.read(&args)?;
        serde_json::from_str(&out).map_err(|e| format!("helm list printed no JSON: {e}"))
    }

    /// `helm upgrade --install -o json` with values from a 0600 file: answers the release as
    /// helm printed it. With `dry_run`, helm renders against the cluster (`--dry-run=server`)
    /// and changes nothing: the manifest it would deploy. One helm process either way; whether
    /// a release is pending or ended deployed is read from the release record by the caller
    /// ([`crate::kube::Kube::release_record`]), not by more helm processes.
    pub fn upgrade_install(&self, u: &ChartInstall, dry_run: bool) -> Result<J, String> {
        self.fresh_index(&u.chart)?;
        let file = values_file(u)?;
        let mut args = strings(&["upgrade", "--install"]);
        args.extend(chart_args(u, &file));
        args.extend(strings(&["-o", "json"]));
        if u.create_namespace {
            args.push("--create-namespace".into());
        }
        if dry_run {
            args.push("--dry-run=server".into());
        } else {
            if u.wait {
                args.push("--wait".into());
            }
            if let Some(t) = &u.timeout {
                args.extend(["--timeout".to_string(), t.clone()]);
            }
            if u.rollback_on_failure {
                args.push(if self.major == 3 {
                    "--atomic".into()
                } else {
                    "--rollback-on-failure".into()
                });
            }
        }
        let out = self.run(&args, None)?;
        drop(file);
        serde_json::from_str(&out).map_err(|e| format!("helm upgrade printed no JSON: {e}"))
    }

    /// Render a chart as its chart step would install it: `helm template` with the same
    /// release, namespace, version, values files and values (from a 0600 file), without the
    /// cluster. Answers the rendered objects in helm's order (empty documents left out).
    ///
    /// `repo`: the chart repository a `NAME/chart` reference names, for a chart helm's own
    /// configuration may not know yet. It is added to a private repository configuration of the
    /// run (0700 directory, the password on helm's stdin), so the user's is left untouched.
    /// Without it, helm finds the chart as `helm upgrade` would (its repositories, a registry it
    /// is logged in to, a directory).
    pub fn template(&self, u: &ChartInstall, repo: Option<&RepoSource>) -> Result<Vec<J>, String> {
        let out = self.template_text(u, None, repo)?;
        parse_manifests(&out).map_err(|e| format!("helm template {}: {e}", u.chart))
    }

    /// [`Helm::template`]'s manifest as helm printed it. `archive` replaces the step's chart
    /// by a downloaded chart archive (then no `--version`: the archive is the version).
    pub fn template_text(
        &self,
        u: &ChartInstall,
        archive: Option<&str>,
        repo: Option<&RepoSource>,
    ) -> Result<String, String> {
        let local;
        let u = match archive {
            Some(path) => {
                local = ChartInstall {
                    chart: path.to_string(),
                    version: None,
                    ..u.clone()
                };
                &local
            }
            None => u,
        };
        let private = match repo {
            Some(r) => Some(self.private_repo(r)?),
            None => {
                self.fresh_index(&u.chart)?;
                None
            }
        };
        let env: Vec<(&str, &Path)> = private
            .as_ref()
            .map(|dir| {
                vec![
                    ("HELM_REPOSITORY_CONFIG", dir.config.as_path()),
                    ("HELM_REPOSITORY_CACHE", dir.cache.as_path()),
                ]
            })
            .unwrap_or_default();
        let file = values_file(u)?;
        let mut args = vec!["template".to_string()];
        args.extend(chart_args(u, &file));
        let out = self.run_with(&args, None, &env, None)?;
        drop(file);
        Ok(out)
    }

    /// `helm pull CHART [--version V] --destination DIR`: the chart's archive, from a repository
    /// added before or an OCI registry logged in to (`plain_http`: one over plain HTTP).
    pub fn pull(
        &self,
        chart: &str,
        version: Option<&str>,
        dest: &Path,
        plain_http: bool,
    ) -> Result<(), String> {
        self.fresh_index(chart)?;
        let mut args = strings(&["pull", chart, "--destination"]);
        args.push(dest.display().to_string());
        if let Some(v) = version {
            args.extend(["--version".to_string(), v.to_string()]);
        }
        if plain_http {
            args.push("--plain-http".into());
        }
        self.run(&args, None).map(|_| ())
    }

    /// `helm registry login HOST --username U --password-stdin`: the password on stdin, never
    /// in argv. A registry over plain HTTP: `--plain-http` on helm 4; helm 3's login has no
    /// such flag, and its `--insecure` lets it fall back to plain HTTP.
    pub fn registry_login(
        &self,
        host: &str,
        username: &str,
        password: &Secret,
        plain_http: bool,
    ) -> Result<(), String> {
        let mut args = strings(&[
            "registry",
            "login",
            host,
            "--username",
            username,
            "--password-stdin",
        ]);
        if plain_http {
            args.push(if self.major == 3 {
                "--insecure".into()
            } else {
                "--plain-http".into()
            });
        }
        self.run(&args, Some(password.expose())).map(|_| ())
    }

    /// `helm push ARCHIVE oci://HOST/PATH`: the chart archive into a registry logged in to
    /// before (`--plain-http` for one over plain HTTP, on both helm 3 and 4).
    pub fn push(&self, archive: &Path, registry: &str, plain_http: bool) -> Result<(), String> {
        let mut args = strings(&["push", &archive.display().to_string(), registry]);
        if plain_http {
            args.push("--plain-http".into());
        }
        self.run(&args, None).map(|_| ())
    }

    /// A repository added to a private configuration of the run (`helm repo add`, which also
    /// fetches its index), once per name and URL.
    fn private_repo(&self, r: &RepoSource) -> Result<PrivateRepo, String> {
        let key = format!("{:x}", Sha256::digest(format!("{}\n{}", r.name, r.url)));
        let dir = crate::process::run_dir()?.join(format!("repo-{}", &key[..16]));
        let private = PrivateRepo {
            config: dir.join("repositories.yaml"),
            cache: dir.join("cache"),
        };
        if private.config.is_file() {
            return Ok(private);
        }
        std::fs::create_dir_all(&private.cache)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut args = strings(&["repo", "add", &r.name, &r.url, "--force-update"]);
        if let Some(u) = &r.username {
            args.extend(["--username".to_string(), u.clone()]);
        }
        let password = r.password.as_ref().map(Secret::expose);
        if password.is_some() {
            args.push("--password-stdin".into());
        }
        self.run_with(
            &args,
            password,
            &[
                ("HELM_REPOSITORY_CONFIG", private.config.as_path()),
                ("HELM_REPOSITORY_CACHE", private.cache.as_path()),
            ],
            None,
        )?;
        Ok(private)
    }
}

/// A chart repository for [`Helm::template`]: the name charts are prefixed with, its URL, and
/// its credentials (the password goes to helm on stdin).
#[derive(Clone, Debug)]
pub struct RepoSource {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

struct PrivateRepo {
    config: PathBuf,
    cache: PathBuf,
}

/// A chart step's values in a 0600 file of the run's private directory, removed when dropped.
fn values_file(u: &ChartInstall) -> Result<tempfile::NamedTempFile, String> {
    let mut file = tempfile::Builder::new()
        .prefix("clearml-values-")
        .suffix(".yaml")
        .tempfile_in(crate::process::run_dir()?)
        .map_err(|e| format!("cannot create the values file: {e}"))?;
    let yaml = crate::value::json_to_yaml(&u.values.reveal())?;
    file.write_all(yaml.as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| format!("cannot write the values file: {e}"))?;
    Ok(file)
}

/// The release, chart, namespace, values files (the site's, then `file`) and version of a
/// chart step, as `helm upgrade --install` and `helm template` both take them.
fn chart_args(u: &ChartInstall, file: &tempfile::NamedTempFile) -> Vec<String> {
    let mut args = strings(&[&u.release, &u.chart, "-n", &u.namespace]);
    for f in &u.values_files {
        args.extend(["-f".to_string(), f.clone()]);
    }
    args.extend(["-f".to_string(), file.path().display().to_string()]);
    if let Some(v) = &u.version {
        args.extend(["--version".to_string(), v.clone()]);
    }
    if u.plain_http {
        args.push("--plain-http".into());
    }
    args
}

/// The objects of a multi-document YAML manifest (helm's output), empty documents left out.
pub fn parse_manifests(text: &str) -> Result<Vec<J>, String> {
    let docs: Vec<J> = serde_saphyr::from_str_multiple(text)
        .map_err(|e| format!("the rendered manifest is not YAML: {e}"))?;
    Ok(docs
        .into_iter()
        .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
        .collect())
}

/// What to do about a release left in `state`.
pub fn way_out(release: &str, namespace: &str, state: &str) -> String {
    if state.starts_with("pending-") {
        format!(
            "Wait for it to finish and run again, or clear it: roll it back with \
             `helm rollback {release} -n {namespace}` (an upgrade), or remove an unfinished first \
             install with `helm uninstall {release} -n {namespace}`; then run again"
        )
    } else {
        format!(
            "See `helm history {release} -n {namespace}` and the workloads' events, fix the cause \
             and run again (the next run upgrades over it)"
        )
    }
}

/// After a chart step: it succeeded only when the release's recorded state is `deployed`.
pub fn require_deployed(release: &str, namespace: &str, record: Option<&J>) -> Result<(), String> {
    let state = record
        .and_then(|r| r["info"]["status"].as_str())
        .unwrap_or("missing");
    if state == "deployed" {
        return Ok(());
    }
    if state.starts_with("pending-") {
        // helm has exited: nothing holds the record, which the tool notes on it
        return Err(format!(
            "helm finished, but the release {release} in {namespace} is {state}, not deployed. \
             The next run recovers it (a rollback to the last deployed revision, or the removal \
             of an unfinished first install) and goes on; or clear it yourself: roll it back with \
             `helm rollback {release} -n {namespace}` (an upgrade), or remove an unfinished first \
             install with `helm uninstall {release} -n {namespace}`"
        ));
    }
    Err(format!(
        "helm finished, but the release {release} in {namespace} is {state}, not deployed. {}",
        way_out(release, namespace, state)
    ))
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::{Helm, check_storage_driver, probe, require_deployed, shell_word, way_out};
    use crate::action::{ChartInstall, Target};

    /// helm's release records are read from Secrets: another storage driver is refused with
    /// what to do, helm's default (unset, empty, `secret`, `secrets`) is taken.
    #[test]
    fn only_the_secret_storage_driver_is_taken() {
        for ok in [
            None,
            Some(""),
            Some("secret"),
            Some("secrets"),
            Some(" secret "),
        ] {
            assert_eq!(check_storage_driver(ok), Ok(()), "{ok:?}");
        }
        for bad in ["configmap", "sql", "memory"] {
            let e = check_storage_driver(Some(bad)).unwrap_err();
            assert!(
                e.starts_with(&format!("HELM_DRIVER={bad}: ")) && e.contains("unset HELM_DRIVER"),
                "{e}"
            );
        }
    }

    /// The real helm 3 and 4 (tools/fetch-helm, run once by the tests of this binary).
    fn real_helms() -> Vec<std::path::PathBuf> {
        static HELMS: std::sync::OnceLock<Vec<std::path::PathBuf>> = std::sync::OnceLock::new();
        HELMS.get_or_init(fetch_helms).clone()
    }

    fn fetch_helms() -> Vec<std::path::PathBuf> {
        let fetch =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/fetch-helm"))
                .output()
                .expect("run tools/fetch-helm");
        assert!(
            fetch.status.success(),
            "{}",
            String::from_utf8_lossy(&fetch.stderr)
        );
        let helms: Vec<std::path::PathBuf> = String::from_utf8_lossy(&fetch.stdout)
            .lines()
            .map(std::path::PathBuf::from)
            .collect();
        assert_eq!(helms.len(), 2, "helm 3 and helm 4");
        helms
    }

    /// The cache entries of a directory, by file name.
    fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "json"));
        v.sort();
        v
    }

    /// `helm version` is asked once per helm binary and answered from the cache afterwards; a
    /// wrong entry (another version, not Helm 3 or 4), a corrupt one, or one of another binary
    /// is not believed: helm is asked again and the entry rewritten. A script standing in for
    /// helm is asked every time (its answer may change while the script does not).
    #[test]
    fn the_version_probe_is_cached_per_binary_and_a_bad_entry_is_probed_again() {
        let helms = real_helms();
        let cache = tempfile::tempdir().unwrap();
        let mut asked = Vec::new();
        for bin in &helms {
            let probed = probe(Some(bin), Some(cache.path())).unwrap();
            assert!(probed.version.starts_with(&format!("v{}.", probed.major)));
            asked.push(probed);
        }
        assert_eq!((asked[0].major, asked[1].major), (3, 4));
        let files = entries(cache.path());
        assert_eq!(files.len(), 2, "one entry per binary: {files:?}");
        // answered from the cache: the same answer
        for (bin, first) in helms.iter().zip(&asked) {
            assert_eq!(&probe(Some(bin), Some(cache.path())).unwrap(), first);
        }
        // an entry made to say another version: its digest no longer matches; probed again
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let forged = text.replace("\"v3.", "\"v9.").replace("\"v4.", "\"v9.");
            assert_ne!(forged, text);
            std::fs::write(file, forged).unwrap();
        }
        for (bin, first) in helms.iter().zip(&asked) {
            assert_eq!(&probe(Some(bin), Some(cache.path())).unwrap(), first);
        }
        // a forged entry with a matching digest but no Helm 3 or 4 version (helm 3's), and a
        // corrupt one, cut short (helm 4's): probed again
        let id = super::cacheable_identity(&helms[0]).unwrap();
        crate::tool_cache::store(cache.path(), "helm-version", &id, &"v9.0.0".into());
        let helm4 = std::fs::canonicalize(&helms[1]).unwrap();
        let helm4_entry = files
            .iter()
            .find(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .contains(&format!("{:?}", helm4.display().to_string()))
            })
            .expect("helm 4's entry");
        let text = std::fs::read_to_string(helm4_entry).unwrap();
        std::fs::write(helm4_entry, &text[..text.len() / 3]).unwrap();
        for (bin, first) in helms.iter().zip(&asked) {
            assert_eq!(&probe(Some(bin), Some(cache.path())).unwrap(), first);
        }
        // the entries were written again, whole
        for (bin, first) in helms.iter().zip(&asked) {
            let id = super::cacheable_identity(bin).unwrap();
            assert_eq!(
                crate::tool_cache::lookup(cache.path(), "helm-version", &id),
                Some(serde_json::Value::String(first.version.clone()))
            );
        }
        // a copy of helm 4 is another binary: its own entry
        let bin_dir = tempfile::tempdir().unwrap();
        let copy = bin_dir.path().join("helm");
        std::fs::copy(&helms[1], &copy).unwrap();
        assert_eq!(probe(Some(&copy), Some(cache.path())).unwrap().major, 4);
        assert_eq!(entries(cache.path()).len(), 3);
        // a wrapper script: asked every time, never cached
        let wrapper = bin_dir.path().join("helm-wrapper");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec '{}' \"$@\"\n", helms[0].display()),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(super::cacheable_identity(&wrapper), None);
        assert_eq!(probe(Some(&wrapper), Some(cache.path())).unwrap().major, 3);
        assert_eq!(entries(cache.path()).len(), 3);
    }

    /// An archive renders in place of its chart step's chart after the repository that served
    /// it is gone (an air-gapped site renders the bundle's archives): the step still names the
    /// chart by a repository helm does not know. With the real helm 3 and 4 (tools/fetch-helm).
    #[test]
    fn an_archive_renders_where_no_repository_serves_the_chart() {
        let helms = real_helms();
        let dir = tempfile::tempdir().unwrap();
        let chart = crate::sandbox::charts::package_all()
            .unwrap()
            .into_iter()
            .find(|c| c.name == "clearml-enterprise")
            .expect("the stand-in server chart");
        let archive = dir.path().join(&chart.file);
        std::fs::write(&archive, &chart.bytes).unwrap();
        let spec = ChartInstall {
            release: "clearml".into(),
            chart: "gone-repository/clearml-enterprise".into(),
            namespace: "clearml".into(),
            version: Some(chart.version.clone()),
            create_namespace: false,
            values: crate::value::Value::Map(Default::default()),
            values_files: Vec::new(),
            wait: false,
            timeout: None,
            rollback_on_failure: false,
            plain_http: false,
        };
        for bin in helms {
            let target = Target {
                helm_home: Some(dir.path().join("helm")),
                ..Default::default()
            };
            let helm = Helm::new(Some(&bin), target).unwrap();
            // the chart as the step names it: no repository of that name
            let named = helm.template_text(&spec, None, None);
            assert!(
                named.as_ref().is_err_and(|e| e.contains("gone-repository")),
                "helm {}: {named:?}",
                helm.version
            );
            let rendered = helm
                .template_text(&spec, Some(&archive.display().to_string()), None)
                .unwrap_or_else(|e| panic!("helm {}: {e}", helm.version));
            assert!(
                rendered.contains("kind: Deployment") && rendered.contains("clearml-apiserver"),
                "helm {}: {rendered}",
                helm.version
            );
        }
    }

    #[test]
    fn shell_words_are_quoted_only_where_a_shell_needs_it() {
        // plain words as they are, with the punctuation a shell leaves alone
        assert_eq!(shell_word("upgrade"), "upgrade");
        assert_eq!(
            shell_word("--set=a.b_c-1/2:3,x@y+z%"),
            "--set=a.b_c-1/2:3,x@y+z%"
        );
        // an empty word, a space, a glob or a quote: single-quoted, quotes escaped
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("two words"), "'two words'");
        assert_eq!(shell_word("a*"), "'a*'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
    #[test]
    fn a_release_left_pending_is_cleared_and_any_other_state_is_looked_into() {
        let pending = way_out("clearml", "ns1", "pending-upgrade");
        assert!(
            pending.contains("helm rollback clearml -n ns1"),
            "{pending}"
        );
        assert!(
            pending.contains("helm uninstall clearml -n ns1"),
            "{pending}"
        );
        assert!(!pending.contains("helm history"), "{pending}");
        let failed = way_out("clearml", "ns1", "failed");
        assert!(failed.contains("helm history clearml -n ns1"), "{failed}");
        assert!(!failed.contains("helm rollback"), "{failed}");
    }

    #[test]
    fn only_a_deployed_record_is_success() {
        let record = |status: &str| serde_json::json!({ "info": { "status": status } });
        assert_eq!(
            require_deployed("r", "n", Some(&record("deployed"))),
            Ok(())
        );
        // helm has exited with the record pending: the next run recovers it, and says how
        let pending = require_deployed("r", "n", Some(&record("pending-install"))).unwrap_err();
        assert!(
            pending.contains("r in n is pending-install, not deployed"),
            "{pending}"
        );
        assert!(pending.contains("The next run recovers it"), "{pending}");
        // a failed release: the way out of that state
        let failed = require_deployed("r", "n", Some(&record("failed"))).unwrap_err();
        assert!(failed.contains("is failed, not deployed"), "{failed}");
        assert!(failed.contains(&way_out("r", "n", "failed")), "{failed}");
        // no record at all, or one without a status
        let missing = require_deployed("r", "n", None).unwrap_err();
        assert!(missing.contains("is missing, not deployed"), "{missing}");
        let blank = require_deployed("r", "n", Some(&serde_json::json!({}))).unwrap_err();
        assert!(blank.contains("is missing, not deployed"), "{blank}");
    }
}
