//! Helm and Kubernetes built-ins. Each checks its input first (a bad name is exit 2 before any
//! action) and hands an action to the executor: helm in the live executor, recorded in a dry run.

use rhai::plugin::*;

use crate::api::options::{Opts, check_duration, check_name};
use crate::failure::invalid;
use crate::runtime;
use crate::value::Value;

#[export_module]
pub mod cluster_api {
    use crate::action::{Action, Query};
    use crate::api::options::{Opts, check_name};
    use crate::failure::invalid;
    use crate::runtime;
    use crate::secret::Secret;
    use crate::value::Value;
    use rhai::{Dynamic, EvalAltResult, Map};

    type R<T> = Result<T, Box<EvalAltResult>>;

    fn perform(builtin: &str, action: Action) -> R<Dynamic> {
        runtime::with(|rt| rt.perform(builtin, action))
    }

    fn query(builtin: &str, q: Query) -> R<Dynamic> {
        runtime::with(|rt| rt.query(builtin, q))
    }

    fn repo_add(name: &str, url: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "helm_repo_add";
        check_name(B, "the repository name", name, 63)?;
        crate::validate::url(url).map_err(|e| invalid(B, e))?;
        let mut o = Opts::new(B, opts);
        let username = o.value("username")?;
        let password = o.secret("password")?;
        o.finish()?;
        if let Some(Value::Secret(_)) = username {
            return Err(invalid(
                B,
                "the username is a secret, and helm takes the username on its command line, where \
                 other users of the machine can see it: pass a plain username (for a GitHub token, \
                 any name works) and the token as `password`, which goes to helm on stdin",
            ));
        }
        if username.is_some() != password.is_some() {
            return Err(invalid(
                B,
                "give both `username` and `password`, or neither",
            ));
        }
        perform(
            B,
            Action::HelmRepoAdd {
                name: name.to_string(),
                url: url.to_string(),
                username,
                password,
            },
        )
    }

    /// Add a Helm chart repository (`helm repo add --force-update`, so a re-run converges). The
    /// password goes to helm on stdin, never on its command line. Skipped when helm's
    /// repository file holds exactly this entry already (its index is then fetched before a
    /// chart from it is first needed).
    ///
    /// # Options
    /// - `username`: a plain string (not a secret: helm takes it on its command line)
    /// - `password`: a string or secret, such as the GitHub token of the install guide
    ///
    /// # Example
    /// ```rhai
    /// helm_repo_add("clearml-enterprise",
    ///     "https://raw.githubusercontent.com/clearml/clearml-enterprise-helm-charts/gh-pages",
    ///     #{ username: "clearml", password: site.github_token });
    /// ```
    #[rhai_fn(name = "helm_repo_add", return_raw)]
    pub fn helm_repo_add_with(name: &str, url: &str, opts: Map) -> R<Dynamic> {
        repo_add(name, url, opts)
    }

    /// Add a public Helm chart repository.
    ///
    /// # Example
    /// ```rhai
    /// helm_repo_add("bitnami", "https://charts.bitnami.com/bitnami");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn helm_repo_add(name: &str, url: &str) -> R<Dynamic> {
        repo_add(name, url, Map::new())
    }

    /// Refresh the local index of the chart repositories this playbook added (`helm repo update
    /// NAME...`): a repository of the user's that is down does not fail the install (helm 4 fails
    /// an update when any repository fails). With none added, every repository is refreshed.
    /// Live, each index is fetched just before a chart from it is first needed, once per run,
    /// and not again when this run's `helm_repo_add` fetched it.
    ///
    /// # Example
    /// ```rhai
    /// helm_repo_update();
    /// ```
    #[rhai_fn(return_raw)]
    pub fn helm_repo_update() -> R<Dynamic> {
        let mut names: Vec<String> = crate::runtime::with(|rt| {
            rt.actions()
                .into_iter()
                .filter_map(|a| match a {
                    Action::HelmRepoAdd { name, .. } => Some(name),
                    _ => None,
                })
                .collect()
        });
        names.sort();
        names.dedup();
        perform("helm_repo_update", Action::HelmRepoUpdate { names })
    }

    /// Log in to an OCI registry for charts (`helm registry login`), the password on stdin.
    ///
    /// # Options
    /// - `username`: a plain string
    /// - `password`: a string or secret
    /// - `plain_http`: the registry answers plain HTTP, not HTTPS (default false)
    ///
    /// # Example
    /// ```rhai
    /// helm_registry_login("docker.io", #{ username: "allegroaienterprise", password: site.dockerhub_token });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn helm_registry_login(host: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "helm_registry_login";
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            return Err(invalid(
                B,
                format!("`{host}` is not a registry host; write one such as docker.io"),
            ));
        }
        let (username, password, plain_http) = crate::api::options::registry_login(B, opts)?;
        perform(
            B,
            Action::HelmRegistryLogin {
                host: host.to_string(),
                username,
                password,
                plain_http,
            },
        )
    }

    /// Install or upgrade a release (`helm upgrade --install`) with the flags right for the helm
    /// found (3 or 4). Values go to helm through a 0600 temporary file, removed afterwards. A
    /// release stuck in a pending state is reported with the choices, not forced. Answers
    /// `#{release, namespace, revision, status}`.
    ///
    /// # Options
    /// - `namespace` (required): where the release lives
    /// - `values`: a map of values (secrets allowed)
    /// - `values_files`: more values files, before `values`
    /// - `version`: the chart version
    /// - `create_namespace`: create the namespace if missing (default true)
    /// - `wait`: wait for the workloads to be ready (default false)
    /// - `timeout`: such as `10m` (helm's default is 5m)
    /// - `rollback_on_failure`: roll back a failed upgrade (`--atomic` on helm 3)
    /// - `plain_http`: an `oci://` chart from a registry that answers plain HTTP
    ///
    /// # Example
    /// ```rhai
    /// let overrides = #{ imageCredentials: #{ password: site.dockerhub_token } };
    /// install_chart("clearml", "clearml-enterprise/clearml-enterprise",
    ///     #{ namespace: "clearml", values: overrides, wait: true, timeout: "15m" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn install_chart(release: &str, chart: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "install_chart";
        let mut o = Opts::new(B, opts);
        let spec = super::chart_spec(B, release, chart, &mut o)?;
        o.finish()?;
        perform(B, Action::HelmUpgradeInstall(spec))
    }

    /// What a chart step would ask of the cluster: the chart rendered as `install_chart` with
    /// the same options would install it (`helm template`, which changes nothing), the CPU
    /// and memory its workloads request, and the resources its objects are. Answers
    /// `#{workloads: [...], resources: [...], unserved: [...]}`:
    /// - each workload `#{kind, name, replicas, per_node, cpu, memory, unrequested}`: `cpu` in
    ///   cores and `memory` in bytes for one pod, `per_node` for a DaemonSet (one pod per node),
    ///   `unrequested` the containers that request no CPU or no memory;
    /// - each resource `#{group, resource, api_version, kind, namespace}`, once per namespace:
    ///   the kind's group and plural as the cluster's discovery serves it (or as a rendered
    ///   CustomResourceDefinition defines it), `namespace` the one an object names, else the
    ///   release's, and `()` for a cluster-scoped kind;
    /// - each `unserved` kind `#{api_version, kind, reason}`: rendered, but neither served by the
    ///   cluster nor defined by the chart.
    ///
    /// In a dry run: all three empty.
    ///
    /// # Options
    /// Those of `install_chart`, and:
    /// - `repo`: `#{name, url, username, password}`, the chart repository that `NAME/chart`
    ///   names, for a chart helm does not know yet. It is added to a private configuration of
    ///   the run (the password on helm's stdin); helm's own is left untouched.
    ///
    /// # Example
    /// ```rhai
    /// let r = chart_requests("clearml", "clearml-enterprise/clearml-enterprise", #{
    ///     namespace: "clearml",
    ///     values: #{ apiserver: #{ replicaCount: 2 } },
    ///     repo: #{ name: "clearml-enterprise", url: "https://charts.example.com" },
    /// });
    /// for w in r.workloads { print(`${w.kind} ${w.name}: ${w.replicas} x ${w.cpu} CPUs`); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn chart_requests(release: &str, chart: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "chart_requests";
        let mut o = Opts::new(B, opts);
        let repo = match o.map("repo")? {
            None => None,
            Some(m) => {
                let mut r = Opts::new(B, m);
                let name = r
                    .string("name")?
                    .ok_or_else(|| invalid(B, "`repo` needs a `name`"))?;
                check_name(B, "the repository name", &name, 63)?;
                let url = r
                    .string("url")?
                    .ok_or_else(|| invalid(B, "`repo` needs a `url`"))?;
                crate::validate::url(&url).map_err(|e| invalid(B, e))?;
                let username = r.string("username")?;
                let password = r.secret("password")?;
                r.finish()?;
                if username.is_some() != password.is_some() {
                    return Err(invalid(
                        B,
                        "give the repository's `username` and `password` both, or neither",
                    ));
                }
                Some(crate::helm::RepoSource {
                    name,
                    url,
                    username,
                    password,
                })
            }
        };
        let spec = super::chart_spec(B, release, chart, &mut o)?;
        o.finish()?;
        query(
            B,
            Query::Ops(crate::ops::OpsQuery::ChartRequests { chart: spec, repo }),
        )
    }

    /// Uninstall a release; answers whether there was one (a re-run is a no-op).
    ///
    /// # Options
    /// - `namespace` (required)
    /// - `wait`: wait until its objects are gone
    ///
    /// # Example
    /// ```rhai
    /// uninstall_chart("clearml-agent", #{ namespace: "clearml-agents" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn uninstall_chart(release: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "uninstall_chart";
        check_name(B, "the release name", release, 53)?;
        let mut o = Opts::new(B, opts);
        let namespace = o
            .string("namespace")?
            .ok_or_else(|| invalid(B, "the option `namespace` is required"))?;
        let wait = o.bool("wait")?.unwrap_or(false);
        o.finish()?;
        perform(
            B,
            Action::HelmUninstall {
                release: release.to_string(),
                namespace,
                wait,
            },
        )
    }

    /// A release's status, as `helm status -o json` shows it (`info.status`, `version`,
    /// `config`, `manifest`), read from helm's release record through the Kubernetes API, or
    /// `()` when there is none. In a dry run: `()`.
    ///
    /// # Options
    /// - `namespace` (required)
    ///
    /// # Example
    /// ```rhai
    /// let s = chart_status("clearml", #{ namespace: "clearml" });
    /// if s != () { print(s.info.status); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn chart_status(release: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "chart_status";
        let mut o = Opts::new(B, opts);
        let namespace = o
            .string("namespace")?
            .ok_or_else(|| invalid(B, "the option `namespace` is required"))?;
        o.finish()?;
        query(
            B,
            Query::HelmStatus {
                release: release.to_string(),
                namespace,
            },
        )
    }

    /// The releases in every namespace (`helm list -o json`, all states).
    ///
    /// # Example
    /// ```rhai
    /// for r in list_releases() { print(`${r.namespace}/${r.name}: ${r.status}`); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn list_releases() -> R<Dynamic> {
        query("list_releases", Query::HelmList { namespace: None })
    }

    /// The releases in one namespace.
    ///
    /// # Example
    /// ```rhai
    /// let rs = list_releases("clearml");
    /// ```
    #[rhai_fn(name = "list_releases", return_raw)]
    pub fn list_releases_in(namespace: &str) -> R<Dynamic> {
        query(
            "list_releases",
            Query::HelmList {
                namespace: Some(namespace.to_string()),
            },
        )
    }

    /// Create a namespace if it is missing (server-side apply; a re-run changes nothing).
    ///
    /// # Example
    /// ```rhai
    /// ensure_namespace("clearml");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn ensure_namespace(name: &str) -> R<Dynamic> {
        check_name("ensure_namespace", "the namespace", name, 63)?;
        perform(
            "ensure_namespace",
            Action::KubeEnsureNamespace {
                name: name.to_string(),
            },
        )
    }

    /// Create or update an Opaque Secret owned by the tool; every value is sent as a secret.
    ///
    /// # Example
    /// ```rhai
    /// apply_secret("clearml", "site-credentials", #{ token: site.dockerhub_token });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn apply_secret(namespace: &str, name: &str, data: Map) -> R<Dynamic> {
        const B: &str = "apply_secret";
        check_name(B, "the namespace", namespace, 63)?;
        check_name(B, "the Secret name", name, 253)?;
        let mut string_data = std::collections::BTreeMap::new();
        for (k, v) in data {
            // as the API server validates a Secret's keys, so a bad one stops the plan pass
            let valid_key = !k.is_empty()
                && k.len() <= 253
                && k.as_str() != "."
                && k.as_str() != ".."
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if !valid_key {
                return Err(invalid(
                    B,
                    format!(
                        "the key `{k}` is not a valid Secret key: use at most 253 letters, digits, `-`, `_` and `.`"
                    ),
                ));
            }
            let s = match v.clone().try_cast::<Secret>() {
                Some(s) => s,
                None if v.is_string() || v.is_int() || v.is_bool() => Secret::new(v.to_string()),
                None => {
                    return Err(invalid(
                        B,
                        format!(
                            "the value of `{k}` must be a string or a secret, not {}",
                            v.type_name()
                        ),
                    ));
                }
            };
            string_data.insert(k.to_string(), Value::Secret(s));
        }
        let manifest = Value::from_json(&serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": crate::kube::MANAGER},
            },
            "type": "Opaque",
        }));
        let Value::Map(mut m) = manifest else {
            unreachable!("a map")
        };
        m.insert("stringData".into(), Value::Map(string_data));
        perform(
            B,
            Action::KubeApply {
                namespace: Some(namespace.to_string()),
                manifest: Value::Map(m),
            },
        )
    }

    /// A Secret's data as a map of secrets, or `()` when it does not exist (always `()` in a dry
    /// run).
    ///
    /// # Example
    /// ```rhai
    /// let creds = get_secret("clearml", "clearml-script-internal-credentials");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn get_secret(namespace: &str, name: &str) -> R<Dynamic> {
        query(
            "get_secret",
            Query::GetSecret {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
        )
    }

    /// Where a router is reached from outside, as `#{address, source}`: a LoadBalancer
    /// Service's ingress hostname or IP, else a node's ExternalIP, else its InternalIP.
    ///
    /// # Example
    /// ```rhai
    /// let r = discover_router_address();
    /// log(`routerAddress ${r.address} (${r.source})`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn discover_router_address() -> R<Dynamic> {
        query("discover_router_address", Query::RouterAddress)
    }

    /// The Kubernetes version of the cluster (`gitVersion`, such as `v1.33.0`).
    ///
    /// # Example
    /// ```rhai
    /// log("cluster " + kube_version());
    /// ```
    #[rhai_fn(return_raw)]
    pub fn kube_version() -> R<Dynamic> {
        query("kube_version", Query::KubeVersion)
    }
}

/// A chart step's options (those of `install_chart`), checked.
pub(crate) fn chart_spec(
    b: &'static str,
    release: &str,
    chart: &str,
    o: &mut Opts,
) -> Result<crate::action::ChartInstall, Box<rhai::EvalAltResult>> {
    check_name(b, "the release name", release, 53)?;
    if chart.trim().is_empty() {
        return Err(invalid(
            b,
            "the chart is empty; write a chart such as repo/name, oci://host/path or a directory",
        ));
    }
    let namespace = o
        .string("namespace")?
        .ok_or_else(|| invalid(b, "the option `namespace` is required"))?;
    check_name(b, "the namespace", &namespace, 63)?;
    let values = o.value("values")?.unwrap_or(Value::Map(Default::default()));
    if !matches!(values, Value::Map(_)) {
        return Err(invalid(
            b,
            format!("option `values` must be a map, not {}", values.type_name()),
        ));
    }
    let values_files = o.strings("values_files")?;
    let version = o.string("version")?;
    let create_namespace = o.bool("create_namespace")?.unwrap_or(true);
    let wait = o.bool("wait")?.unwrap_or(false);
    let timeout = o.string("timeout")?;
    if let Some(t) = &timeout {
        check_duration(b, t)?;
    }
    let rollback_on_failure = o.bool("rollback_on_failure")?.unwrap_or(false);
    let plain_http = o.bool("plain_http")?.unwrap_or(false);
    if plain_http && !chart.starts_with("oci://") {
        return Err(invalid(
            b,
            format!("`plain_http` is for an oci:// chart; {chart} is not one"),
        ));
    }
    let base = runtime::with(|rt| rt.base_dir.clone());
    let values_files = values_files
        .into_iter()
        .map(|f| {
            let p = base.join(&f);
            if p.is_file() {
                Ok(p.display().to_string())
            } else {
                Err(invalid(
                    b,
                    format!("the values file {} does not exist", p.display()),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::action::ChartInstall {
        release: release.to_string(),
        chart: chart.to_string(),
        namespace,
        version,
        create_namespace,
        values,
        values_files,
        wait,
        timeout,
        rollback_on_failure,
        plain_http,
    })
}
