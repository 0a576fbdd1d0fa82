//! The sandbox: simulators embedded in the binary, so that the live code paths (real helm,
//! kube-rs, the ClearML API client) run end to end offline, in the project's tests and for
//! users as `--sandbox` and `clearml-script sandbox`.

pub mod clearml;
pub mod faults;
pub mod kube;
pub mod protobuf;
pub mod resources;
pub mod store;

use std::path::PathBuf;

/// Both simulators, running, with the kubeconfig written for them.
pub struct Sandbox {
    pub kube: kube::KubeServer,
    pub clearml: clearml::ClearmlServer,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Sandbox {
    /// Start both simulators on 127.0.0.1 and write the kubeconfig into `dir` (a new temporary
    /// directory when `None`). One set of faults serves both: a fault's path names the
    /// simulator it hits (`/api/...` or `/queues.create`). Must run inside a tokio runtime.
    pub async fn start(dir: Option<PathBuf>, faults: faults::Faults) -> std::io::Result<Sandbox> {
        let kube = kube::start(faults.clone()).await?;
        let clearml = clearml::start(clearml::ClearmlState::new(faults)).await?;
        let (dir_path, guard) = match dir {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("clearml-sandbox-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let kubeconfig = dir_path.join("kubeconfig");
        std::fs::write(&kubeconfig, kube.kubeconfig())?;
        Ok(Sandbox {
            kube,
            clearml,
            kubeconfig,
            dir: dir_path,
            _dir: guard,
        })
    }
}
