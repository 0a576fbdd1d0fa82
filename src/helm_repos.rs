//! helm's chart repositories as a run leaves them, so that a re-run that changes nothing starts
//! no helm process it does not need:
//!
//! - `helm repo add` is skipped when helm's repository file already holds exactly that entry
//!   (name, URL, username, password, nothing else set); its index is then refreshed before a
//!   chart from it is first needed;
//! - `helm repo update` is deferred to the first chart step, pull or render that needs the
//!   repository, once per repository and run; a repository added in this run is fresh already;
//! - the version a chart step without `--version` would install is read from the index fetched
//!   in this run, so an unchanged release needs no render to be known unchanged.
//!
//! helm's own files are found as helm finds them (`helm env`): `HELM_REPOSITORY_CONFIG`, else
//! `repositories.yaml` in `HELM_CONFIG_HOME`, `$XDG_CONFIG_HOME/helm` or `~/.config/helm`; the
//! indexes in `HELM_REPOSITORY_CACHE`, else `repository/` in `HELM_CACHE_HOME`,
//! `$XDG_CACHE_HOME/helm` or `~/.cache/helm`. Whatever cannot be read for sure (no file, an
//! index older than this run's fetch, a version that is not plain semver) falls back to what
//! helm does: add, update, render.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

/// A variable of the environment helm is run with (an empty one is unset, as helm reads it).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Where helm keeps its configuration (`sub` = "config") or cache ("cache"): `helm_home` is the
/// run's own helm home (the sandbox's), which the tool gives helm as `HELM_CONFIG_HOME` and
/// `HELM_CACHE_HOME`.
fn helm_dir(helm_home: Option<&Path>, sub: &str, env: Env) -> Option<PathBuf> {
    if let Some(home) = helm_home {
        return Some(home.join(sub));
    }
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let (helm_var, xdg_var, default) = match sub {
        "config" => ("HELM_CONFIG_HOME", "XDG_CONFIG_HOME", ".config"),
        _ => ("HELM_CACHE_HOME", "XDG_CACHE_HOME", ".cache"),
    };
    if let Some(dir) = get(helm_var) {
        return Some(PathBuf::from(dir));
    }
    let base = match get(xdg_var) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(get("HOME")?).join(default),
    };
    Some(base.join("helm"))
}

fn repositories_file_in(helm_home: Option<&Path>, env: Env) -> Option<PathBuf> {
    match env("HELM_REPOSITORY_CONFIG").filter(|v| !v.is_empty()) {
        Some(f) => Some(PathBuf::from(f)),
        None => helm_dir(helm_home, "config", env).map(|d| d.join("repositories.yaml")),
    }
}

fn index_file_in(helm_home: Option<&Path>, name: &str, env: Env) -> Option<PathBuf> {
    let cache = match env("HELM_REPOSITORY_CACHE").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => helm_dir(helm_home, "cache", env)?.join("repository"),
    };
    Some(cache.join(format!("{name}-index.yaml")))
}

/// helm's `repositories.yaml`.
pub fn repositories_file(helm_home: Option<&Path>) -> Option<PathBuf> {
    repositories_file_in(helm_home, &process_env)
}

/// The index helm keeps for repository `name`.
pub fn index_file(helm_home: Option<&Path>, name: &str) -> Option<PathBuf> {
    index_file_in(helm_home, name, &process_env)
}

#[derive(Deserialize)]
struct RepoFile {
    #[serde(default)]
    repositories: Vec<RepoEntry>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RepoEntry {
    name: String,
    url: String,
    username: String,
    password: String,
    #[serde(rename = "certFile")]
    cert_file: String,
    #[serde(rename = "keyFile")]
    key_file: String,
    #[serde(rename = "caFile")]
    ca_file: String,
    insecure_skip_tls_verify: bool,
    pass_credentials_all: bool,
}

/// Does helm's repository file `text` hold exactly the entry `helm repo add NAME URL
/// [--username U --password-stdin]` would write? Anything else set on it (a CA file, a client
/// certificate, TLS checks off, credentials passed to every domain), or a file that cannot be
/// read: no, so the entry is added again.
pub fn has_entry(
    text: &str,
    name: &str,
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> bool {
    let Ok(file) = serde_saphyr::from_str::<RepoFile>(text) else {
        return false;
    };
    file.repositories.iter().any(|e| {
        e.name == name
            && e.url == url
            && e.username == username.unwrap_or_default()
            && e.password == password.unwrap_or_default()
            && e.cert_file.is_empty()
            && e.key_file.is_empty()
            && e.ca_file.is_empty()
            && !e.insecure_skip_tls_verify
            && !e.pass_credentials_all
    })
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    entries: HashMap<String, Vec<IndexEntry>>,
}

#[derive(Deserialize)]
struct IndexEntry {
    version: String,
}

/// The version helm installs for chart `name` from index `text` when no `--version` is given:
/// the highest that is not a pre-release. `None` when that is not certain: the chart is not
/// there, or one of its versions is not plain semver (helm reads those more leniently than
/// this does), or two versions differ only in build metadata.
pub fn latest_stable(text: &str, name: &str) -> Option<String> {
    let index: Index = serde_saphyr::from_str(text).ok()?;
    let mut best: Option<(semver::Version, &str)> = None;
    let mut seen = HashSet::new();
    for entry in index.entries.get(name)? {
        let v = semver::Version::parse(&entry.version).ok()?;
        let core = (v.major, v.minor, v.patch, v.pre.clone());
        if !seen.insert(core) {
            return None;
        }
        if !v.pre.is_empty() {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, &entry.version));
        }
    }
    best.map(|(_, s)| s.to_string())
}

/// An exact version as a chart step may pin it (`7.14.0`): one that names a single version.
/// A range or a `v` prefix (which helm reads as a constraint) is not.
pub fn exact_version(v: &str) -> bool {
    semver::Version::parse(v).is_ok()
}

/// The repository a chart reference `REPO/NAME` names, with the chart's name; `None` for an
/// `oci://` reference, a path that exists (helm takes a directory or archive before a
/// repository), or anything else.
pub fn repo_chart(chart: &str) -> Option<(&str, &str)> {
    if chart.contains("://") || Path::new(chart).exists() {
        return None;
    }
    let (repo, name) = chart.split_once('/')?;
    (!repo.is_empty() && !name.is_empty() && !name.contains('/')).then_some((repo, name))
}

/// What this run knows of a repository's index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IndexState {
    /// Fetched in this run (by `repo add` or `repo update`), from the given moment on.
    Fresh(SystemTime),
    /// To be fetched before a chart from it is needed.
    Stale,
    /// Being fetched by another branch of a parallel group.
    Updating,
    /// Neither added nor updated in this run: as the user left it.
    Unknown,
}

/// The indexes of one run.
#[derive(Default)]
pub struct Indexes {
    states: HashMap<String, IndexState>,
    /// `helm_repo_update()` with no repository added: every repository is to be refreshed.
    all_stale: bool,
}

impl Indexes {
    pub fn state(&self, repo: &str) -> IndexState {
        match self.states.get(repo) {
            Some(s) => *s,
            None if self.all_stale => IndexState::Stale,
            None => IndexState::Unknown,
        }
    }

    pub fn set(&mut self, repo: &str, state: IndexState) {
        self.states.insert(repo.to_string(), state);
    }

    /// `helm repo update NAMES` (every repository when none): what was not fetched in this
    /// run is to be fetched before its first use.
    pub fn update_asked(&mut self, names: &[String]) {
        if names.is_empty() {
            self.all_stale = true;
            self.states.retain(|_, s| matches!(s, IndexState::Fresh(_)));
            return;
        }
        for n in names {
            if !matches!(self.state(n), IndexState::Fresh(_)) {
                self.set(n, IndexState::Stale);
            }
        }
    }
}

/// The index file of `repo` if it was written by this run's fetch, which began at `since`
/// (with two seconds for file systems that keep coarse times); `None` otherwise.
pub fn read_fresh_index(path: &Path, since: SystemTime) -> Option<String> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    if modified + std::time::Duration::from_secs(2) < since {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_stable_version_is_the_highest_without_a_pre_release() {
        let index = "apiVersion: v1\nentries:\n  clearml:\n  - version: 7.9.0\n  - version: 7.14.1\n  - version: 7.14.0\n  - version: 8.0.0-rc.1\n  other:\n  - version: 9.0.0\n";
        assert_eq!(latest_stable(index, "clearml").as_deref(), Some("7.14.1"));
        assert_eq!(latest_stable(index, "other").as_deref(), Some("9.0.0"));
        assert_eq!(latest_stable(index, "missing"), None);
        // only pre-releases: helm installs none of them without --devel
        assert_eq!(
            latest_stable("entries:\n  c:\n  - version: 1.0.0-beta\n", "c"),
            None
        );
        // a version helm reads leniently (v prefix, two parts): not certain, so none
        for odd in ["v7.15.0", "7.15", "not-a-version"] {
            let text = format!("entries:\n  c:\n  - version: 7.14.0\n  - version: {odd}\n");
            assert_eq!(latest_stable(&text, "c"), None, "{odd}");
        }
        // two versions equal but for build metadata: which one helm picks is not certain
        assert_eq!(
            latest_stable(
                "entries:\n  c:\n  - version: 1.0.0+a\n  - version: 1.0.0+b\n",
                "c"
            ),
            None
        );
        assert_eq!(latest_stable("not: [an index", "c"), None);
    }

    #[test]
    fn an_entry_matches_only_when_everything_is_the_same() {
        let file = "apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n- caFile: \"\"\n  certFile: \"\"\n  insecure_skip_tls_verify: false\n  keyFile: \"\"\n  name: ce\n  pass_credentials_all: false\n  password: tok\n  url: https://charts.example\n  username: clearml\n- name: pub\n  url: https://pub.example\n";
        assert!(has_entry(
            file,
            "ce",
            "https://charts.example",
            Some("clearml"),
            Some("tok")
        ));
        assert!(has_entry(file, "pub", "https://pub.example", None, None));
        assert!(!has_entry(
            file,
            "ce",
            "https://charts.example",
            Some("clearml"),
            Some("new")
        ));
        assert!(!has_entry(
            file,
            "ce",
            "https://charts.example",
            Some("other"),
            Some("tok")
        ));
        assert!(!has_entry(file, "ce", "https://charts.example", None, None));
        assert!(!has_entry(
            file,
            "ce",
            "https://moved.example",
            Some("clearml"),
            Some("tok")
        ));
        assert!(!has_entry(
            file,
            "pub",
            "https://pub.example",
            Some("u"),
            Some("p")
        ));
        assert!(!has_entry(
            file,
            "absent",
            "https://pub.example",
            None,
            None
        ));
        for extra in [
            "  caFile: /ca.pem\n",
            "  certFile: /c.pem\n",
            "  keyFile: /k.pem\n",
            "  insecure_skip_tls_verify: true\n",
            "  pass_credentials_all: true\n",
        ] {
            let f = format!("repositories:\n- name: pub\n  url: https://pub.example\n{extra}");
            assert!(
                !has_entry(&f, "pub", "https://pub.example", None, None),
                "{extra}"
            );
        }
        assert!(!has_entry(
            "{{ not yaml",
            "pub",
            "https://pub.example",
            None,
            None
        ));
    }

    #[test]
    fn chart_references_name_a_repository_only_when_helm_would_read_one() {
        assert_eq!(
            repo_chart("clearml-enterprise/clearml-enterprise"),
            Some(("clearml-enterprise", "clearml-enterprise"))
        );
        assert_eq!(repo_chart("oci://registry/charts/x"), None);
        assert_eq!(repo_chart("a/b/c"), None);
        assert_eq!(repo_chart("/b"), None);
        assert_eq!(repo_chart("a/"), None);
        assert_eq!(repo_chart("plain"), None);
        // a directory that exists is a local chart, whatever its name looks like
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("charts")).unwrap();
        let local = d.path().join("charts");
        assert_eq!(repo_chart(local.to_str().unwrap()), None);
        // a relative one too (the tests run in the crate's directory), which looks like
        // `REPO/NAME`
        assert!(Path::new("src/sandbox").is_dir());
        assert_eq!(repo_chart("src/sandbox"), None);
        assert!(exact_version("7.14.0"));
        assert!(!exact_version("v7.14.0"));
        assert!(!exact_version("~7.14"));
        assert!(!exact_version(">=7.0.0"));
    }

    #[test]
    fn an_update_marks_only_what_was_not_fetched_in_this_run() {
        let t = SystemTime::now();
        let mut ix = Indexes::default();
        assert_eq!(ix.state("a"), IndexState::Unknown);
        ix.set("a", IndexState::Fresh(t));
        ix.update_asked(&["a".into(), "b".into()]);
        assert_eq!(ix.state("a"), IndexState::Fresh(t));
        assert_eq!(ix.state("b"), IndexState::Stale);
        assert_eq!(ix.state("c"), IndexState::Unknown);
        ix.update_asked(&[]);
        assert_eq!(ix.state("a"), IndexState::Fresh(t));
        assert_eq!(ix.state("c"), IndexState::Stale);
    }

    #[test]
    fn an_index_older_than_the_fetch_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x-index.yaml");
        std::fs::write(&f, "entries: {}\n").unwrap();
        let now = SystemTime::now();
        assert!(read_fresh_index(&f, now).is_some());
        let later = now + std::time::Duration::from_secs(60);
        assert!(read_fresh_index(&f, later).is_none());
        assert!(read_fresh_index(&d.path().join("none"), now).is_none());
    }

    #[test]
    fn helm_files_are_where_helm_looks() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let home = Path::new("/run/helm-home");
        let plain = env(&[("HOME", "/home/u")]);
        assert_eq!(
            repositories_file_in(None, &plain),
            Some(PathBuf::from("/home/u/.config/helm/repositories.yaml"))
        );
        assert_eq!(
            index_file_in(None, "ce", &plain),
            Some(PathBuf::from(
                "/home/u/.cache/helm/repository/ce-index.yaml"
            ))
        );
        // the run's own helm home wins over the user's
        assert_eq!(
            repositories_file_in(Some(home), &plain),
            Some(home.join("config/repositories.yaml"))
        );
        assert_eq!(
            index_file_in(Some(home), "ce", &plain),
            Some(home.join("cache/repository/ce-index.yaml"))
        );
        let xdg = env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/x/conf"),
            ("XDG_CACHE_HOME", "/x/cache"),
        ]);
        assert_eq!(
            repositories_file_in(None, &xdg),
            Some(PathBuf::from("/x/conf/helm/repositories.yaml"))
        );
        assert_eq!(
            index_file_in(None, "ce", &xdg),
            Some(PathBuf::from("/x/cache/helm/repository/ce-index.yaml"))
        );
        let helm_vars = env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/x/conf"),
            ("HELM_CONFIG_HOME", "/h/conf"),
            ("HELM_CACHE_HOME", "/h/cache"),
        ]);
        assert_eq!(
            repositories_file_in(None, &helm_vars),
            Some(PathBuf::from("/h/conf/repositories.yaml"))
        );
        assert_eq!(
            index_file_in(None, "ce", &helm_vars),
            Some(PathBuf::from("/h/cache/repository/ce-index.yaml"))
        );
        // the files named outright win over every home, the run's own included
        let files = env(&[
            ("HELM_REPOSITORY_CONFIG", "/f/repos.yaml"),
            ("HELM_REPOSITORY_CACHE", "/f/cache"),
            ("HELM_CONFIG_HOME", "/h/conf"),
        ]);
        assert_eq!(
            repositories_file_in(Some(home), &files),
            Some(PathBuf::from("/f/repos.yaml"))
        );
        assert_eq!(
            index_file_in(Some(home), "ce", &files),
            Some(PathBuf::from("/f/cache/ce-index.yaml"))
        );
        // empty is unset, and without HOME nothing is known
        let empty = env(&[("HELM_CONFIG_HOME", ""), ("HOME", "/home/u")]);
        assert_eq!(
            repositories_file_in(None, &empty),
            Some(PathBuf::from("/home/u/.config/helm/repositories.yaml"))
        );
        assert_eq!(repositories_file_in(None, &env(&[])), None);
    }
}
