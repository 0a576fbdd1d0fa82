//! The executor of a run or a REPL session, chosen from the command line's flags: the dry run
//! (the plan), live against the kubeconfig's cluster, or live against the simulators of the
//! sandbox (started here).

use std::path::Path;

use crate::action::{DryRunExecutor, Executor};
use crate::live::LiveExecutor;
use crate::site::Site;
use crate::ui;

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
) -> Result<(Box<dyn Executor>, Option<crate::sandbox::Sandbox>), String> {
    if dry_run {
        return Ok((Box::new(DryRunExecutor), None));
    }
    // the live executor for a target, its connection checked when asked
    let start = |mode, target| -> Result<LiveExecutor, String> {
        let live = LiveExecutor::new(mode, target, kube.helm.clone(), needs_helm)?;
        if check_cluster {
            live.check_connection()?;
        }
        Ok(live)
    };
    if !sandbox {
        let target = crate::action::Target {
            kubeconfig: kube.kubeconfig.clone(),
            context: kube.context.clone(),
            clearml_api_url: None,
            chart_repo_url: None,
            oci_registry: None,
            helm_home: None,
            recover_pending: kube.recover_pending,
        };
        return Ok((Box::new(start(crate::action::Mode::Live, target)?), None));
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
        Box::new(start(crate::action::Mode::Sandbox, target)?),
        Some(sb),
    ))
}
