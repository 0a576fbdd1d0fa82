//! The tool's children and its own temporary files.
//!
//! - Children (helm, python) run in a process group of their own, so the terminal's Ctrl-C
//!   (sent to the whole foreground group) reaches the tool only: the tool then stops between
//!   steps and lets the current child finish. A second Ctrl-C is forwarded to the child.
//! - Children get the environment without secrets: variables named like a secret
//!   (`*_TOKEN`, `*PASSWORD*`, …) and variables holding a known secret value are removed.
//! - Files that hold secrets for a child live in a directory of the run, readable by its owner
//!   only (0700), removed on every exit the process sees; the directories of runs that were
//!   killed (SIGKILL) are removed by the next run.
//! - A child that must answer quickly (`helm version`) is given a deadline.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The signal that asked the run to stop (SIGINT or SIGTERM), 0 while none did.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The process groups of the children running now (several in a parallel group).
static CHILD_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Record the signal that asked the run to stop. Answers whether one had already come.
pub fn note_signal(sig: i32) -> bool {
    SIGNAL.swap(sig, Ordering::SeqCst) != 0
}

/// The exit code of a run stopped by a signal: 128 + its number (130 for Ctrl-C, 143 for
/// SIGTERM), as shells report it.
pub fn interrupted_exit_code() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 130,
        s => 128 + s,
    }
}

/// Set while the site values are read: nothing has started then, and the read may wait for
/// ever (a FIFO no one writes to, `--values -` on a terminal), so a signal stops the tool at
/// once instead of after a step that will not come.
static READING_VALUES: AtomicBool = AtomicBool::new(false);

/// Marks the reading of the site values until it is dropped.
pub struct ReadingValues(());

impl ReadingValues {
    pub fn start() -> ReadingValues {
        READING_VALUES.store(true, Ordering::SeqCst);
        ReadingValues(())
    }
}

impl Drop for ReadingValues {
    fn drop(&mut self) {
        READING_VALUES.store(false, Ordering::SeqCst);
    }
}

/// Whether the site values are being read (see [`ReadingValues`]).
pub fn reading_values() -> bool {
    READING_VALUES.load(Ordering::SeqCst)
}

/// Send SIGINT to the process group of every running child (one, or the waits of a parallel
/// group), if a child runs.
pub fn interrupt_child() -> bool {
    let groups = CHILD_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for group in &groups {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
        unsafe { libc::kill(-group, libc::SIGINT) };
    }
    !groups.is_empty()
}

/// A command for a child: in a process group of its own, with a scrubbed environment.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.process_group(0);
    scrub_env(&mut cmd, std::env::vars_os());
    cmd
}

/// Remove from a child's environment every variable (of `vars`, the tool's own) named like a
/// secret, and every variable whose value is a known secret (or holds one).
fn scrub_env(
    cmd: &mut Command,
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) {
    for (name, value) in vars {
        let name_s = name.to_string_lossy();
        let value_s = value.to_string_lossy();
        if is_secret_env(&name_s, &value_s) {
            cmd.env_remove(&name);
        }
    }
}

/// Is an environment variable one a child must not inherit?
pub fn is_secret_env(name: &str, value: &str) -> bool {
    // where the cluster and helm are: never secrets themselves
    const KEEP: &[&str] = &["KUBECONFIG", "PATH", "HOME", "TMPDIR"];
    if KEEP.contains(&name) {
        return false;
    }
    crate::secret::is_secret_key(name, &[]) || crate::secret::redact(value) != value
}

/// Wait for a spawned child, with its process group marked as a running one so a second
/// Ctrl-C reaches it; with a deadline, a child that overruns it is killed and an error says
/// which command it was. In a branch of a parallel group, the other branches go on meanwhile.
pub fn wait(
    child: Child,
    what: &str,
    deadline: Option<Duration>,
) -> Result<std::process::Output, String> {
    let what = what.to_string();
    crate::parallel::blocking(move || wait_here(child, &what, deadline))
}

fn wait_here(
    mut child: Child,
    what: &str,
    deadline: Option<Duration>,
) -> Result<std::process::Output, String> {
    let _current = Current::new(child.id() as i32);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // read both pipes on threads so a chatty child never blocks on a full pipe
    let out_t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let status = match deadline {
        None => child
            .wait()
            .map_err(|e| format!("{what} did not finish: {e}"))?,
        Some(limit) => wait_until(&mut child, what, limit)?,
    };
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

fn wait_until(child: &mut Child, what: &str, limit: Duration) -> Result<ExitStatus, String> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() >= limit => {
                // SAFETY: as in interrupt_child; the group is the child's own.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!(
                    "{what} did not answer within {}s and was stopped",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what} did not finish: {e}")),
        }
    }
}

/// Marks a child's process group as a running one while it lives.
struct Current(i32);

impl Current {
    fn new(group: i32) -> Current {
        CHILD_GROUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(group);
        Current(group)
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        CHILD_GROUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g| *g != self.0);
    }
}

/// The run's private directory, once made.
struct RunDir(Mutex<Option<PathBuf>>);

static RUN_DIR: RunDir = RunDir(Mutex::new(None));

/// Where this user's runs keep their private directories: `$TMPDIR/clearml-script-UID`, 0700.
fn runs_root() -> PathBuf {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("clearml-script-{uid}"))
}

/// The run's private directory (0700), created on first use. Holds the files that carry secrets
/// to a child (helm's values); removed by [`cleanup`]. Directories left by killed runs are
/// removed first.
pub fn run_dir() -> Result<PathBuf, String> {
    RUN_DIR.get(&runs_root())
}

impl RunDir {
    /// The directory of this run under `root`, made (and the root checked) on first use.
    fn get(&self, root: &Path) -> Result<PathBuf, String> {
        use std::os::unix::fs::DirBuilderExt;
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        private_root(root)?;
        remove_stale(root);
        let dir = root.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        *guard = Some(dir.clone());
        Ok(dir)
    }

    /// Remove the directory, if one was made; the next use makes a new one.
    fn remove(&self) {
        let dir = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(d) = dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Make `root` (0700) if it is missing, and check that it is a directory of this user, readable
/// by nobody else: another user could otherwise read or plant files.
fn private_root(root: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let made = std::fs::DirBuilder::new().mode(0o700).create(root);
    if let Err(e) = made
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(format!("cannot create {}: {e}", root.display()));
    }
    let meta = std::fs::symlink_metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    // SAFETY: as in runs_root.
    if !meta.is_dir() || meta.uid() != unsafe { libc::getuid() } {
        return Err(format!(
            "{} is not a directory of this user: remove it and run again",
            root.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", root.display()))?;
    }
    Ok(())
}

/// Remove the directories of runs whose process is gone.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Remove the run's private directory. Called on every way out of the process it controls.
pub fn cleanup() {
    RUN_DIR.remove();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_variables_are_not_inherited() {
        assert!(is_secret_env("CLEARML_GITHUB_TOKEN", "x"));
        assert!(is_secret_env("DOCKERHUB_PASSWORD", "x"));
        assert!(!is_secret_env("KUBECONFIG", "/home/u/.kube/config"));
        assert!(!is_secret_env("LANG", "C.UTF-8"));
        crate::secret::register("value-of-a-secret-xyz");
        assert!(is_secret_env("SOMETHING", "a value-of-a-secret-xyz b"));
    }

    /// Whether a process of the group `group` (not a zombie) is still running.
    fn group_alive(group: i32) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            // `PID (COMM) STATE PPID PGRP ...`; COMM may hold spaces and parentheses
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
        })
    }

    #[test]
    fn the_signal_decides_the_exit_code() {
        // the only test that touches the signal record
        SIGNAL.store(0, Ordering::SeqCst);
        assert_eq!(
            interrupted_exit_code(),
            130,
            "no signal recorded: Ctrl-C's code"
        );
        assert!(!note_signal(libc::SIGTERM), "the first signal");
        assert_eq!(interrupted_exit_code(), 143);
        assert!(note_signal(libc::SIGINT), "a second signal");
        assert_eq!(interrupted_exit_code(), 130);
        SIGNAL.store(0, Ordering::SeqCst);
    }

    #[test]
    fn a_child_runs_in_a_group_of_its_own_without_secret_variables() {
        let child = command("sleep").arg("5").spawn().unwrap();
        let pid = child.id() as i32;
        // SAFETY: getpgid(2) reads a process's group; no memory is shared.
        let group = unsafe { libc::getpgid(pid) };
        // SAFETY: the group is the child's own (checked just above by the assertion's values).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = wait(child, "sleep", None);
        assert_eq!(group, pid, "the child leads a process group of its own");

        let mut cmd = Command::new("env");
        let var = |n: &str, v: &str| (n.into(), v.into());
        scrub_env(
            &mut cmd,
            [
                var("A_TOKEN", "t"),
                var("LANG", "C.UTF-8"),
                var("KUBECONFIG", "/k"),
                var("DB_PASSWORD", "p"),
            ],
        );
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(removed, ["A_TOKEN", "DB_PASSWORD"]);
    }

    #[test]
    fn a_child_answers_its_output_and_leaves_the_running_groups() {
        let child = command("sh")
            .args(["-c", "sleep 0.2; echo out; echo err >&2"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // a deadline far off: the child is waited for, not stopped
        let out = wait(child, "sh", Some(Duration::from_secs(60))).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let groups = CHILD_GROUPS.lock().unwrap().clone();
        assert!(!groups.contains(&pid), "{groups:?}");
        // each child leaves the running groups alone, the others stay (no process has these)
        let running = || CHILD_GROUPS.lock().unwrap().clone();
        let (a, b) = (Current::new(i32::MAX - 1), Current::new(i32::MAX - 2));
        drop(a);
        assert!(!running().contains(&(i32::MAX - 1)) && running().contains(&(i32::MAX - 2)));
        drop(b);
        assert!(!running().contains(&(i32::MAX - 2)));
    }

    #[test]
    fn the_run_directory_is_the_users_own_under_the_temporary_directory() {
        // SAFETY: as in runs_root.
        let uid = unsafe { libc::getuid() };
        let root = std::env::temp_dir().join(format!("clearml-script-{uid}"));
        assert_eq!(runs_root(), root);
        let dir = run_dir().unwrap();
        assert_eq!(dir, root.join(format!("run-{}", std::process::id())));
        assert!(dir.is_dir());
    }

    #[test]
    fn a_child_over_its_deadline_is_stopped_with_its_whole_group() {
        let child = command("sh")
            .args(["-c", "sleep 30; :"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let group = child.id() as i32;
        let err = wait(child, "sh", Some(Duration::from_millis(300))).unwrap_err();
        assert!(err.contains("sh did not answer within 0s"), "{err}");
        // the shell's own child too: helm's plugins run as its children
        let mut alive = group_alive(group);
        for _ in 0..100 {
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            alive = group_alive(group);
        }
        if alive {
            // SAFETY: as above; the test's own child's group.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        assert!(!alive, "a process of the stopped child's group still runs");
    }

    #[test]
    fn the_run_directory_is_private_made_once_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // a root another run made too open is closed; a missing one is made private
        let root = base.path().join("open");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_root(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        let root = base.path().join("missing");
        private_root(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        // a file where the root should be is refused, and so is a root that cannot be made
        let file = base.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = private_root(&file).unwrap_err();
        assert!(err.contains("is not a directory of this user"), "{err}");
        let err = private_root(&file.join("below")).unwrap_err();
        assert!(err.starts_with("cannot create"), "{err}");

        // the directories of runs that are gone are removed; live runs' and others are kept
        let dead = {
            let mut c = Command::new("true").spawn().unwrap();
            c.wait().unwrap();
            c.id()
        };
        for d in [
            format!("run-{dead}"),
            format!("run-{}", std::process::id()),
            "run-1".into(),
            "notes".into(),
        ] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        let dirs = RunDir(Mutex::new(None));
        let dir = dirs.get(&root).unwrap();
        assert_eq!(dir, root.join(format!("run-{}", std::process::id())));
        assert_eq!(mode(&dir), 0o700);
        assert!(
            !root.join(format!("run-{dead}")).exists(),
            "a dead run's directory"
        );
        assert!(root.join("run-1").exists() && root.join("notes").exists());
        std::fs::write(dir.join("values.yaml"), "x").unwrap();
        assert_eq!(dirs.get(&root).unwrap(), dir, "made once");
        assert!(dir.join("values.yaml").exists());
        dirs.remove();
        assert!(!dir.exists());
        dirs.remove();
    }
}
