//! The `Test` builder: a temporary directory as the working directory, files written into it,
//! the binary run with arguments, and assertions on whole outputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_clearml-script");

/// The repository root, for the standard playbooks and example sites.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of the tests' demo chart (one Deployment), as a playbook names it.
pub fn demo_chart() -> String {
    repo()
        .join("tests/fixtures/charts/demo")
        .display()
        .to_string()
}

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file into the test directory.
    pub fn file(self, name: &str, text: &str) -> Test {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
        self
    }

    /// Write `playbook.rhai` and make it the script to run.
    pub fn script(self, text: &str) -> Test {
        self.file("playbook.rhai", text).arg("playbook.rhai")
    }

    pub fn arg(mut self, a: impl AsRef<str>) -> Test {
        self.args.push(a.as_ref().to_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Test {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Text for the binary's stdin (otherwise stdin is empty and not a terminal).
    pub fn stdin(mut self, text: &str) -> Test {
        self.stdin = Some(text.to_string());
        self
    }

    /// Give the binary the project's Helm `major` (3 or 4) through HELM_BIN, with helm's own
    /// configuration kept inside the test directory.
    pub fn helm(self, major: u32) -> Test {
        let path = helm_binaries()
            .into_iter()
            .find(|(m, _)| *m == major)
            .expect("helm 3 and 4")
            .1;
        let dir = self.dir.path().to_path_buf();
        self.env("HELM_BIN", &path.display().to_string())
            .helm_homes(&dir)
    }

    /// helm's own files (cache, configuration, data) under `dir/.helm`.
    pub fn helm_homes(self, dir: &Path) -> Test {
        self.env(
            "HELM_CACHE_HOME",
            &dir.join(".helm/cache").display().to_string(),
        )
        .env(
            "HELM_CONFIG_HOME",
            &dir.join(".helm/config").display().to_string(),
        )
        .env(
            "HELM_DATA_HOME",
            &dir.join(".helm/data").display().to_string(),
        )
    }

    pub fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("KUBECONFIG")
            // the live tests run against test doubles with the example sites' credentials; a
            // test of the refusal sets it to 0
            .env("CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn run(&self) -> Output {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run clearml-script");
        let input = self.stdin.clone().unwrap_or_default();
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Output {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Output {
        self.code(0)
    }

    #[track_caller]
    pub fn stdout(&self, expected: &str) -> &Output {
        assert_eq!(
            self.stdout, expected,
            "stdout; stderr was:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr(&self, expected: &str) -> &Output {
        assert_eq!(
            self.stderr, expected,
            "stderr; stdout was:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, part: &str) -> &Output {
        assert!(
            self.stdout.contains(part),
            "stdout lacks {part:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, part: &str) -> &Output {
        assert!(
            self.stderr.contains(part),
            "stderr lacks {part:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn nowhere(&self, part: &str) -> &Output {
        assert!(
            !self.stdout.contains(part) && !self.stderr.contains(part),
            "{part:?} leaked\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The real helm binaries, 3 and 4, fetched (pinned and checksum-checked) by the project's own
/// `tools/fetch-helm` when missing: `(major version, path)`.
pub fn helm_binaries() -> Vec<(u32, PathBuf)> {
    static HELMS: std::sync::OnceLock<Vec<(u32, PathBuf)>> = std::sync::OnceLock::new();
    HELMS
        .get_or_init(|| {
            let out = Command::new(repo().join("tools/fetch-helm"))
                .output()
                .expect("run tools/fetch-helm");
            assert!(
                out.status.success(),
                "tools/fetch-helm failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let paths: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .collect();
            assert_eq!(paths.len(), 2, "expected helm 3 and helm 4");
            vec![(3, paths[0].clone()), (4, paths[1].clone())]
        })
        .clone()
}

/// A plain HTTP request to a server on 127.0.0.1: `(status, body)`.
pub fn http(method: &str, url: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    http_with(method, url, content_type, body, None)
}

/// [`http`] with an `Authorization` header.
pub fn http_with(
    method: &str,
    url: &str,
    content_type: &str,
    body: &[u8],
    authorization: Option<&str>,
) -> (u16, String) {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Both simulators, in this test process, with a tokio runtime serving them.
pub struct Sim {
    pub rt: tokio::runtime::Runtime,
    pub sandbox: clearml_script::sandbox::Sandbox,
    pub faults: clearml_script::sandbox::faults::Faults,
}

impl Sim {
    pub fn start() -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let faults = clearml_script::sandbox::faults::Faults::default();
        let sandbox = rt
            .block_on(clearml_script::sandbox::Sandbox::start(
                None,
                faults.clone(),
            ))
            .expect("start the sandbox");
        Sim {
            rt,
            sandbox,
            faults,
        }
    }

    /// Run helm against the simulator.
    pub fn helm(&self, helm: &Path, args: &[&str]) -> Output {
        let out = Command::new(helm)
            .args(args)
            .env("KUBECONFIG", &self.sandbox.kubeconfig)
            .env("HELM_CACHE_HOME", self.sandbox.dir.join("helm-cache"))
            .env("HELM_CONFIG_HOME", self.sandbox.dir.join("helm-config"))
            .env("HELM_DATA_HOME", self.sandbox.dir.join("helm-data"))
            .output()
            .expect("run helm");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn kube_get(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.kube_http("GET", path, "application/json", b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Sim {
    /// A request to the Kubernetes API simulator, with its bearer token.
    pub fn kube_http(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String) {
        let kube = &self.sandbox.kube;
        http_with(
            method,
            &format!("{}{path}", kube.plain_url()),
            content_type,
            body,
            Some(&format!("Bearer {}", kube.token())),
        )
    }
}

/// Serve the files of `dir` over HTTP on 127.0.0.1 (a local chart repository); answers the URL.
/// The server thread ends with the test process.
pub fn serve_dir(dir: &Path) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let root = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let file = root.join(path.trim_start_matches('/'));
                let mut stream = stream;
                match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    _ => {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            });
        }
    });
    url
}

/// Package the stand-in charts (shaped like the ClearML Enterprise charts) into a local chart
/// repository and serve it.
pub fn chart_repo(helm: &Path, dir: &Path) -> String {
    let repo_dir = dir.join("chart-repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let url = serve_dir(&repo_dir);
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // every stand-in chart shaped like the ClearML Enterprise charts
    for chart in std::fs::read_dir(repo().join("src/sandbox/charts")).unwrap() {
        let chart = chart.unwrap().path();
        ok(Command::new(helm)
            .args([
                "package",
                &chart.display().to_string(),
                "-d",
                &repo_dir.display().to_string(),
            ])
            .output()
            .unwrap());
    }
    ok(Command::new(helm)
        .args([
            "repo",
            "index",
            &repo_dir.display().to_string(),
            "--url",
            &url,
        ])
        .output()
        .unwrap());
    url
}

/// A simulated cluster to run playbooks against live: the simulators, a chart repository of
/// the stand-in charts, and helm's own files kept for the cluster's lifetime.
pub struct Cluster {
    pub sim: Sim,
    pub home: tempfile::TempDir,
    pub repo_url: String,
    pub major: u32,
}

impl Cluster {
    pub fn new(major: u32) -> Cluster {
        let sim = Sim::start();
        let home = tempfile::tempdir().unwrap();
        let helm = helm_binaries()
            .into_iter()
            .find(|(m, _)| *m == major)
            .unwrap()
            .1;
        let repo_url = chart_repo(&helm, home.path());
        Cluster {
            sim,
            home,
            repo_url,
            major,
        }
    }

    /// A run of the binary against this cluster: its kubeconfig, the helm `major`, the chart
    /// repository in place of the site's, and a short helm timeout.
    pub fn test(&self) -> Test {
        self.test_on(&self.sim.sandbox.kubeconfig)
    }

    /// The same, against another Kubernetes API (the real control plane of tools/real-cluster),
    /// with this cluster's chart repository and ClearML API.
    pub fn test_on(&self, kubeconfig: &Path) -> Test {
        let home = self.home.path();
        Test::new()
            .arg("--kubeconfig")
            .arg(kubeconfig.display().to_string())
            .arg("--set")
            .arg(format!("chart_repo_url={}", self.repo_url))
            .args(["--set", "timeout=60s"])
            // the preflight's DNS and image-registry checks would leave 127.0.0.1
            .args(["--set", "preflight.skip={hosts,sources}"])
            .helm(self.major)
            .env(
                "HELM_CONFIG_HOME",
                &home.join("config").display().to_string(),
            )
            .env("HELM_CACHE_HOME", &home.join("cache").display().to_string())
            .env("HELM_DATA_HOME", &home.join("data").display().to_string())
    }
}
