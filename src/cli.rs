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
        /// Show one built-in only
        function: Option<String>,
        #[arg(long, value_enum, default_value_t = DocsFormat::Md)]
        format: DocsFormat,
    },
    /// Write `.d.rhai` definition files for editors
    Defs {
        #[arg(long, default_value = "defs")]
        out: PathBuf,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// An interactive session: every built-in at hand, `site` loaded as for a run
    Repl {
        #[command(flatten)]
        site: SiteArgs,
        /// Record actions instead of doing them (see them with :plan)
        #[arg(long, conflicts_with = "sandbox")]
        dry_run: bool,
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
        /// Make requests fail or wait: METHOD:PATH:COUNT:STATUS or METHOD:PATH:COUNT:delay=MS
        #[arg(long = "fault", value_name = "SPEC")]
        faults: Vec<String>,
    },
    /// List the standard playbooks built into the binary, or export them for customization
    Scripts {
        #[command(subcommand)]
        action: Option<ScriptsAction>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScriptsAction {
    /// Write the standard playbooks and the example site files into DIR
    Export {
        dir: PathBuf,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The playbook: a file, or the name of a standard playbook such as install.rhai
    #[arg(required = true)]
    pub script: Option<String>,

    #[command(flatten)]
    pub site: SiteArgs,

    /// Print the plan instead of doing anything; touches nothing outside the process
    #[arg(long, conflicts_with = "sandbox")]
    pub dry_run: bool,

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
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Site values: shared by `run` and `repl`.
#[derive(Args, Debug, Clone, Default)]
pub struct SiteArgs {
    /// A site values file (YAML); several are deep-merged left to right
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<PathBuf>,

    /// Set one value after the files: dotted key, `3` is an int, `true` a bool, else a string
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// The cluster to talk to: helm and the Kubernetes client always use the same two.
#[derive(Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// The kubeconfig file
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The helm binary (otherwise HELM_BIN, then PATH)
    #[arg(long, value_name = "PATH")]
    pub helm: Option<PathBuf>,
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
