//! Command-line definitions only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "clearml-script",
    version,
    about = "Install and operate ClearML Enterprise on Kubernetes with checked, repeatable playbooks",
    long_about = "Runs Rhai playbooks that install and operate ClearML Enterprise on Kubernetes.\n\n\
        Start with a dry run of the standard install and your site values:\n  \
        clearml-script install.rhai --values site.yaml --dry-run",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    /// Print each helm command and ClearML API call as it runs (secrets masked)
    #[arg(short = 'v', long = "debug", global = true)]
    pub debug: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a playbook (the default: `clearml-script SCRIPT` is `clearml-script run SCRIPT`)
    Run(RunArgs),
    /// Compile playbooks with strict variables and report unknown functions; runs nothing
    Check {
        /// The playbooks to check
        #[arg(required = true)]
        scripts: Vec<PathBuf>,
    },
    /// The reference of every built-in, from the built-ins' own documentation
    Docs {
        /// Show one built-in or stdlib function only (`require`, `values::check`)
        #[arg(value_parser = Named(crate::docs::all_names), hide_possible_values = true)]
        function: Option<String>,
        #[arg(long, value_enum, default_value_t = DocsFormat::Md)]
        format: DocsFormat,
    },
    /// Print a JSON Schema of the site values, for editors (yaml-language-server)
    Schema {
        /// The schema of a layer over a base site file (no top-level required keys)
        #[arg(long)]
        layer: bool,
    },
    /// Write `.d.rhai` definition files for editors
    Defs {
        #[arg(long, default_value = "defs")]
        out: PathBuf,
    },
    /// Print the man page (roff), or write a page per command with --out DIR
    ///
    /// Read it with `clearml-script man | man -l -`, or install the pages with
    /// `clearml-script man --out ~/.local/share/man/man1`.
    Man {
        /// Write clearml-script.1 and a page per subcommand into DIR
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// An interactive session: every built-in at hand, `site` loaded as for a run; a dry run
    /// unless --live or --sandbox is given
    Repl {
        #[command(flatten)]
        site: SiteArgs,
        /// Record actions instead of doing them (see them with :plan): the default
        #[arg(long, conflicts_with_all = ["sandbox", "live"])]
        dry_run: bool,
        /// Do the actions, against the kubeconfig's cluster
        #[arg(long, conflicts_with = "sandbox")]
        live: bool,
        /// Work against the simulators built into the binary
        #[arg(long)]
        sandbox: bool,
        /// With --sandbox: keep the simulated cluster in DIR between sessions and runs
        #[arg(long, value_name = "DIR", requires = "sandbox")]
        sandbox_state: Option<PathBuf>,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Run the Kubernetes and ClearML API simulators in the foreground, for helm and kubectl by hand
    Sandbox {
        /// Where to write the kubeconfig (a temporary directory by default)
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Make requests fail or wait (METHOD:PATH:COUNT:STATUS, METHOD:PATH:COUNT:delay=MS), keep a
        /// workload from becoming ready (workload:NAME:Pending|ImagePullBackOff|CrashLoopBackOff|
        /// ProbeFailure), start without a seeded class (remove:storageclass|ingressclass), or with the
        /// chart repository switched off (remove:chart-repository)
        #[arg(long = "fault", value_name = "SPEC")]
        faults: Vec<String>,
    },
    /// The health of an install: releases, workloads, ingress hosts, the ClearML API, queues and
    /// workers, the gateway (runs the standard status.rhai; exit 1 when anything is unhealthy)
    Status(OpsArgs),
    /// Collect what a vendor needs to help into OUT.tar.gz, secrets masked (runs the standard
    /// support-bundle.rhai)
    SupportBundle {
        /// The archive to write
        out: PathBuf,
        #[command(flatten)]
        args: OpsArgs,
    },
    /// Air-gapped installs: make the bundle (charts, applications package, images to mirror),
    /// verify it, and prove that a site's install pulls only from the mirror
    Bundle {
        #[command(subcommand)]
        action: BundleAction,
    },
    /// List the standard playbooks built into the binary, or export them for customization
    Scripts {
        #[command(subcommand)]
        action: Option<ScriptsAction>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScriptsAction {
    /// Write the standard playbooks, the example site files and the site schema into DIR
    Export {
        dir: PathBuf,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
        /// Also write the library modules' sources (stdlib/clearml/*.rhai), to read or fork
        #[arg(long)]
        with_stdlib: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BundleAction {
    /// Where the internet is reachable: plan the site's install, pull each chart at its version,
    /// download the applications package, list every image the charts and apps use, and write
    /// OUT (a .tar.gz with a manifest of every file's sha256, secrets never included). The
    /// site's `airgap.registry` names the mirror
    Create {
        /// The archive to write
        out: PathBuf,
        #[command(flatten)]
        site: SiteArgs,
        /// Pull the charts from the sandbox's stand-in chart repository (a rehearsal)
        #[arg(long)]
        sandbox: bool,
        /// The helm binary (otherwise HELM_BIN, then PATH)
        #[arg(long, value_name = "PATH")]
        helm: Option<PathBuf>,
    },
    /// Push the bundle's charts into the site's own OCI registry (`airgap.chart_registry`,
    /// with `airgap.chart_registry_username` and `airgap.chart_registry_password`): `helm
    /// registry login` (the password on stdin), then `helm push` of each chart archive
    Push {
        /// The bundle (otherwise the site's `airgap.bundle`)
        bundle: Option<PathBuf>,
        #[command(flatten)]
        site: SiteArgs,
        /// Print the steps instead of doing anything
        #[arg(long, conflicts_with = "sandbox")]
        dry_run: bool,
        /// Push into the sandbox's OCI registry instead (a rehearsal)
        #[arg(long)]
        sandbox: bool,
        /// The helm binary (otherwise HELM_BIN, then PATH)
        #[arg(long, value_name = "PATH")]
        helm: Option<PathBuf>,
    },
    /// Check a bundle: every file there, none more, each with its sha256 (exit 2 otherwise)
    Verify {
        /// The bundle
        bundle: PathBuf,
    },
    /// The closure proof of a site with `airgap.bundle` and `airgap.registry`: render every
    /// chart with its final values; exit 2 naming chart, object and image for any image that
    /// does not point at the mirror or is not in the bundle
    Check {
        #[command(flatten)]
        site: SiteArgs,
        /// The helm binary (otherwise HELM_BIN, then PATH)
        #[arg(long, value_name = "PATH")]
        helm: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The playbook: a file, or the name of a standard playbook such as install.rhai
    #[arg(required = true, value_parser = Named(crate::playbook::names), hide_possible_values = true)]
    pub script: Option<String>,

    #[command(flatten)]
    pub site: SiteArgs,

    /// Print the plan instead of doing anything; touches nothing outside the process
    #[arg(long, conflicts_with = "sandbox")]
    pub dry_run: bool,

    /// Show what each chart step would change against the deployed release (values and
    /// rendered manifests, secrets masked, unified diff); with --dry-run the cluster is read
    /// and nothing is changed
    #[arg(long)]
    pub diff: bool,

    /// Rehearse against simulators built into the binary (a Kubernetes API that real helm and
    /// kube-rs accept, and a ClearML API), then show what the cluster holds
    #[arg(long)]
    pub sandbox: bool,

    /// With --sandbox: keep the simulated cluster in DIR, so that a next run continues from it
    #[arg(long, value_name = "DIR", requires = "sandbox")]
    pub sandbox_state: Option<PathBuf>,

    /// With --sandbox: make requests fail or wait, to rehearse failures
    /// (METHOD:PATH:COUNT:STATUS or METHOD:PATH:COUNT:delay=MS, as for `sandbox --fault`)
    #[arg(long = "fault", value_name = "SPEC", requires = "sandbox")]
    pub faults: Vec<String>,

    /// How to print the plan or result
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    #[command(flatten)]
    pub kube: KubeArgs,

    /// Do not run the preflight checks before the install
    #[arg(long)]
    pub skip_preflight: bool,

    /// Answer yes to confirmations (such as the uninstall's)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The arguments of the shortcuts for standard playbooks (`status`).
#[derive(Args, Debug, Clone)]
pub struct OpsArgs {
    #[command(flatten)]
    pub site: SiteArgs,

    /// How to print the result
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    #[command(flatten)]
    pub kube: KubeArgs,
}

impl OpsArgs {
    /// The run of the standard playbook `script` with these arguments.
    pub fn run_args(self, script: &str) -> RunArgs {
        RunArgs {
            script: Some(script.to_string()),
            site: self.site,
            dry_run: false,
            sandbox: false,
            sandbox_state: None,
            output: self.output,
            kube: self.kube,
            skip_preflight: false,
            yes: false,
            diff: false,
            faults: Vec::new(),
        }
    }
}

/// Site values: shared by `run` and `repl`.
#[derive(Args, Debug, Clone, Default)]
pub struct SiteArgs {
    /// A site values file (YAML), `-` for stdin; several are deep-merged left to right
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<PathBuf>,

    /// Set values after the files, as helm does: `a.b=1,c={x,y},d[0].e=true` (`\,` and `\.`
    /// escape); `3` is an int, `true` a bool, `00123` a string. Not for secrets: every user of the
    /// machine can read a command line; use `{env: NAME}` or `{file: PATH}` in the site file
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// As --set, but every value stays a string (`tenant_id=00123`)
    #[arg(long = "set-string", value_name = "KEY=VALUE")]
    pub set_string: Vec<String>,

    /// As --set, each value read from a file (a secret, whatever its key; one final newline dropped)
    #[arg(long = "set-file", value_name = "KEY=PATH")]
    pub set_file: Vec<String>,

    /// As --set, each value a JSON value: `a={"b":[1,2]}`
    #[arg(long = "set-json", value_name = "KEY=JSON")]
    pub set_json: Vec<String>,
}

impl SiteArgs {
    /// Every `--set…` flag with how its values are read.
    pub fn sets(&self) -> Vec<(crate::strvals::Mode, String)> {
        use crate::strvals::Mode;
        let tagged = |mode: Mode, v: &Vec<String>| {
            v.iter().map(move |s| (mode, s.clone())).collect::<Vec<_>>()
        };
        [
            tagged(Mode::Json, &self.set_json),
            tagged(Mode::Typed, &self.set),
            tagged(Mode::Str, &self.set_string),
            tagged(Mode::File, &self.set_file),
        ]
        .concat()
    }
}

/// The cluster to talk to: helm and the Kubernetes client always use the same two.
#[derive(Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// The kubeconfig file
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context
    #[arg(long, visible_alias = "kube-context", value_name = "NAME")]
    pub context: Option<String>,

    /// The helm binary (otherwise HELM_BIN, then PATH)
    #[arg(long, value_name = "PATH")]
    pub helm: Option<PathBuf>,

    /// A release left pending-install/-upgrade/-rollback by a helm this tool did not see exit:
    /// no helm operation runs on it, so roll it back to its last deployed revision (or uninstall
    /// a first install that never deployed) before the chart step
    #[arg(long)]
    pub recover_pending: bool,
}

/// Any text is accepted; the names it lists (standard playbooks, documented functions) are
/// what shell completions offer.
#[derive(Clone)]
pub struct Named(pub fn() -> Vec<String>);

impl clap::builder::TypedValueParser for Named {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        Ok(value.to_string_lossy().into_owned())
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        // clap keeps names as 'static strings; these are made once per completion script
        Some(Box::new((self.0)().into_iter().map(|n| {
            clap::builder::PossibleValue::new(&*Box::leak(n.into_boxed_str()))
        })))
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocsFormat {
    Md,
    Json,
}
