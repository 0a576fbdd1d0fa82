//! The executor of a run or a REPL session, chosen from the command line's flags: the dry run
//! (the plan), live against the kubeconfig's cluster, or live against the simulators of the
//! sandbox (started here).

use std::path::Path;

use crate::action::{DryRunExecutor, Executor};
use crate::live::LiveExecutor;
use crate::site::Site;
use crate::ui;

/// What a live or sandbox run finds out while its silent plan pass runs, none of which
/// changes anything: helm's version ([`crate::helm::probe`]), the Kubernetes client with its
/// connection check (`/version`; only for a kubeconfig that runs no credential plugin), and
/// the TLS library's random generator, whose first use gathers entropy for tens of
/// milliseconds. Each answer is taken (and an error reported) only where the run would have
/// asked it, after every value is validated; an answer the plan does not need is dropped.
pub struct Early {
    helm: std::thread::JoinHandle<Result<crate::helm::Probed, String>>,
    kube: Option<tokio::task::JoinHandle<Result<Connected, String>>>,
}

/// A Kubernetes client and its connection check's answer (the server's version).
type Connected = (crate::kube::Kube, Result<String, String>);

impl Early {
    /// Start the work; `sandbox`: the cluster is the sandbox's, started later (no check ahead).
    pub fn start(kube: &crate::cli::KubeArgs, sandbox: bool) -> Early {
        std::thread::spawn(|| {
            let mut seed = [0u8; 16];
            let _ = aws_lc_rs::rand::fill(&mut seed);
        });
        let flag = kube.helm.clone();
        let helm = std::thread::spawn(move || {
            crate::helm::probe(flag.as_deref(), crate::tool_cache::dir().as_deref())
        });
        let target = live_target(kube);
        let kube = match crate::runtime::tokio_handle() {
            Some(handle) if !sandbox && crate::kube::Kube::connects_without_plugins(&target) => {
                Some(handle.spawn(async move {
                    let kube = crate::kube::Kube::connect(&target).await?;
                    let checked = kube.check().await;
                    Ok((kube, checked))
                }))
            }
            _ => None,
        };
        Early { helm, kube }
    }

    /// Give the live executor what was found (a failure is found again, and reported, where
    /// the run asks for it).
    fn hand_to(self, live: &LiveExecutor) {
        let helm = self.helm.join().ok().and_then(Result::ok);
        let kube = self
            .kube
            .and_then(|task| crate::live::block_on(task).ok())
            .and_then(Result::ok);
        live.adopt(helm, kube);
    }
}

/// The target of a live run against the kubeconfig's cluster.
fn live_target(kube: &crate::cli::KubeArgs) -> crate::action::Target {
    crate::action::Target {
        kubeconfig: kube.kubeconfig.clone(),
        context: kube.context.clone(),
        clearml_api_url: None,
        chart_repo_url: None,
        oci_registry: None,
        helm_home: None,
        recover_pending: kube.recover_pending,
    }
}

/// The executor for a run or a REPL session: dry-run, live against the kubeconfig's cluster,
/// or live against the simulators (started here, seeded from the site's credentials, and kept
/// running as long as the returned sandbox lives).
#[allow(clippy::too_many_arguments)] // each is one choice of the command line, named at the call
pub fn executor_for(
    dry_run: bool,
    sandbox: bool,
    sandbox_state: Option<&Path>,
    kube: &crate::cli::KubeArgs,
    site: &Site,
    needs_helm: bool,
    check_cluster: bool,
    fault_specs: &[String],
    early: Option<Early>,
) -> Result<(Box<dyn Executor>, Option<crate::sandbox::Sandbox>), String> {
    if dry_run {
        return Ok((Box::new(DryRunExecutor), None));
    }
    // the live executor for a target, its connection checked when asked
    let start = |mode, target, early: Option<Early>| -> Result<LiveExecutor, String> {
        let live = LiveExecutor::new(mode, target, kube.helm.clone(), false)?;
        if let Some(early) = early {
            early.hand_to(&live);
        }
        if needs_helm {
            live.helm()?;
        }
        if check_cluster {
            live.check_connection()?;
        }
        Ok(live)
    };
    if !sandbox {
        let target = live_target(kube);
        return Ok((
            Box::new(start(crate::action::Mode::Live, target, early)?),
            None,
        ));
    }
    // helm first: a missing helm is reported before anything starts
    if needs_helm {
        crate::helm::locate(kube.helm.as_deref())?;
    }
    let handle = crate::runtime::tokio_handle().ok_or("no async runtime")?;
    let faults = crate::sandbox::faults::Faults::default();
    for spec in fault_specs {
        faults.add_spec(spec)?;
    }
    let mut sb = handle
        .block_on(crate::sandbox::Sandbox::start(None, faults))
        .map_err(|e| format!("cannot start the sandbox: {e}"))?;
    if let Some(dir) = sandbox_state {
        if sb.keep_state(dir)? {
            ui::info(&format!(
                "sandbox: continuing the cluster kept in {}",
                dir.display()
            ));
        } else {
            ui::info(&format!(
                "sandbox: a new cluster, kept in {} afterwards",
                dir.display()
            ));
        }
    }
    for line in sb.seed_from_site(&site.values) {
        match line.strip_prefix("registry ") {
            Some(user) => ui::info(&format!(
                "sandbox: the OCI registry {} requires the {user}",
                sb.registry.host()
            )),
            None => ui::info(&format!("sandbox: ClearML API seeded with {line}")),
        }
    }
    ui::info(&format!(
        "sandbox: Kubernetes API {}, ClearML API {}",
        sb.kube.url(),
        sb.clearml.url()
    ));
    let target = crate::action::Target {
        kubeconfig: Some(sb.kubeconfig.clone()),
        context: Some("sandbox".into()),
        clearml_api_url: Some(sb.clearml.url()),
        chart_repo_url: Some(sb.kube.chart_repo_url()),
        oci_registry: Some(sb.registry.host()),
        helm_home: Some(sb.dir.join("helm")),
        recover_pending: kube.recover_pending,
    };
    Ok((
        Box::new(start(crate::action::Mode::Sandbox, target, early)?),
        Some(sb),
    ))
}
