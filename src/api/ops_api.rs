//! Built-ins of operations around the install: reads of the cluster and of the world for
//! preflight, status and diagnosis (queries, never in the plan), deleting objects (an action),
//! asking for confirmation, and the report of checks.

use rhai::plugin::*;

#[export_module]
pub mod ops_api {
    use crate::action::{Action, Query};
    use crate::api::clearml_api::ClearmlSession;
    use crate::api::options::{Opts, check_name};
    use crate::failure::{failed, invalid};
    use crate::ops::{Check, OpsQuery};
    use crate::runtime;
    use rhai::{Array, Dynamic, EvalAltResult, Map};

    type R<T> = Result<T, Box<EvalAltResult>>;

    fn ask(builtin: &str, q: OpsQuery) -> R<Dynamic> {
        runtime::with(|rt| rt.query(builtin, Query::Ops(q)))
    }

    /// Was `--skip-preflight` given? `install.rhai` runs the preflight unless it was.
    ///
    /// # Example
    /// ```rhai
    /// import "clearml/preflight" as preflight;
    /// if !skip_preflight() { preflight::run(site); }
    /// ```
    pub fn skip_preflight() -> bool {
        crate::ops::skip_preflight()
    }

    /// Ask a yes/no question on the terminal; `true` without asking with `--yes`, and in a dry
    /// run (which changes nothing). Without a terminal and without `--yes`, the run stops with an
    /// error that says to pass `--yes`.
    ///
    /// # Example
    /// ```rhai
    /// if !confirm("Remove ClearML from the cluster?") { return; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn confirm(question: &str) -> R<bool> {
        if runtime::with(|rt| rt.mode() == crate::action::Mode::DryRun) {
            return Ok(true);
        }
        crate::ops::confirm(question).map_err(|e| invalid("confirm", e))
    }

    fn list(api_version: &str, kind: &str, namespace: Option<String>) -> R<Dynamic> {
        const B: &str = "kube_list";
        if kind == "Secret" {
            return Err(invalid(
                B,
                "Secrets are not listed (their data is secret): read one with get_secret(namespace, name)",
            ));
        }
        ask(
            B,
            OpsQuery::KubeList {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace,
            },
        )
    }

    /// Every object of a kind in every namespace (or a cluster-scoped kind), as maps. A dry run
    /// answers `[]`. Secrets are refused: read one with `get_secret`.
    ///
    /// # Example
    /// ```rhai
    /// let classes = kube_list("storage.k8s.io/v1", "StorageClass");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn kube_list(api_version: &str, kind: &str) -> R<Dynamic> {
        list(api_version, kind, None)
    }

    /// Every object of a kind in one namespace.
    ///
    /// # Example
    /// ```rhai
    /// let ingresses = kube_list("networking.k8s.io/v1", "Ingress", "clearml");
    /// ```
    #[rhai_fn(name = "kube_list", return_raw)]
    pub fn kube_list_in(api_version: &str, kind: &str, namespace: &str) -> R<Dynamic> {
        list(api_version, kind, Some(namespace.to_string()))
    }

    /// The Deployments, StatefulSets and DaemonSets of a namespace: `#{kind, namespace, name,
    /// ready, desired, healthy, problems}`, where each problem says why a pod is not ready
    /// (`#{pod, reason, message, container, restarts}`: Pending/Unschedulable with the
    /// scheduler's message, ImagePullBackOff, CrashLoopBackOff, ProbeFailure, …).
    ///
    /// # Example
    /// ```rhai
    /// for w in workloads("clearml") { if !w.healthy { print(w.name); } }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn workloads(namespace: &str) -> R<Dynamic> {
        check_name("workloads", "the namespace", namespace, 63)?;
        ask(
            "workloads",
            OpsQuery::Workloads {
                namespace: namespace.to_string(),
            },
        )
    }

    /// May the cluster identity do `verb` on `resource`? A SelfSubjectAccessReview; answers
    /// `#{allowed, reason}`.
    ///
    /// # Options
    /// - `group`: the API group (`""` for the core group, the default)
    /// - `namespace`: where (cluster-wide when missing)
    ///
    /// # Example
    /// ```rhai
    /// let r = can_i("create", "deployments", #{ group: "apps", namespace: "clearml" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn can_i(verb: &str, resource: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "can_i";
        let mut o = Opts::new(B, opts);
        let group = o.string("group")?.unwrap_or_default();
        let namespace = o.string("namespace")?;
        o.finish()?;
        ask(
            B,
            OpsQuery::CanI {
                verb: verb.to_string(),
                group,
                resource: resource.to_string(),
                namespace,
            },
        )
    }

    /// The addresses a host name resolves to (`[]` when it does not). The sandbox has no DNS:
    /// there it is an error.
    ///
    /// # Example
    /// ```rhai
    /// let ips = resolve_host("api." + site.base_domain);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn resolve_host(host: &str) -> R<Dynamic> {
        ask(
            "resolve_host",
            OpsQuery::ResolveHost {
                host: host.to_string(),
            },
        )
    }

    fn reach(url: &str, chart_repo: bool) -> R<Dynamic> {
        crate::validate::url(url).map_err(|e| invalid("reachable", e))?;
        ask(
            "reachable",
            OpsQuery::Reachable {
                url: url.to_string(),
                chart_repo,
            },
        )
    }

    /// Does anything answer HTTP at the URL? `#{ok, detail}`: any HTTP answer (even 401) is
    /// reachable; `detail` says the status or the error.
    ///
    /// # Example
    /// ```rhai
    /// let r = reachable("https://registry-1.docker.io/v2/");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn reachable(url: &str) -> R<Dynamic> {
        reach(url, false)
    }

    /// As `reachable(url)`; with `chart_repo: true` the URL is a chart repository's (in the
    /// sandbox its stand-in repository answers).
    ///
    /// # Example
    /// ```rhai
    /// let r = reachable(site.chart_repo_url, #{ chart_repo: true });
    /// ```
    #[rhai_fn(name = "reachable", return_raw)]
    pub fn reachable_with(url: &str, opts: Map) -> R<Dynamic> {
        let mut o = Opts::new("reachable", opts);
        let chart_repo = o.bool("chart_repo")?.unwrap_or(false);
        o.finish()?;
        reach(url, chart_repo)
    }

    /// The last lines of a pod's log.
    ///
    /// # Options
    /// - `container`: which container (the first by default)
    /// - `lines`: how many (default 20)
    ///
    /// # Example
    /// ```rhai
    /// print(pod_logs("clearml", "clearml-apiserver-0", #{ lines: 50 }));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn pod_logs(namespace: &str, pod: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "pod_logs";
        let mut o = Opts::new(B, opts);
        let container = o.string("container")?;
        let lines = match o.value("lines")? {
            None => 20,
            Some(crate::value::Value::Int(n)) if (1..=10_000).contains(&n) => n,
            Some(_) => return Err(invalid(B, "`lines` must be a whole number from 1 to 10000")),
        };
        o.finish()?;
        ask(
            B,
            OpsQuery::PodLogs {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container,
                lines,
            },
        )
    }

    /// The ClearML server as the session's identity: its `version` and `api_version`, whether
    /// the credentials log in (`login: #{ok, detail}`), its `queues` and its registered
    /// `workers` (each with the `queues` it serves). An API that does not answer is an error.
    ///
    /// # Example
    /// ```rhai
    /// let api = clearml_connect(#{ api_url: "https://api." + site.base_domain, key: site.agent.key, secret: site.agent.secret });
    /// let s = api.server_state();
    /// log(`ClearML ${s.version}: ${s.queues.len()} queues, ${s.workers.len()} workers`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn server_state(session: &mut ClearmlSession) -> R<Dynamic> {
        ask("server_state", OpsQuery::ClearmlServer(session.0.clone()))
    }

    fn delete(api_version: &str, kind: &str, namespace: Option<String>, name: &str) -> R<Dynamic> {
        const B: &str = "delete_object";
        check_name(B, "the name", name, 253)?;
        if let Some(ns) = &namespace {
            check_name(B, "the namespace", ns, 63)?;
        }
        runtime::with(|rt| {
            rt.perform(
                B,
                Action::KubeDelete {
                    api_version: api_version.to_string(),
                    object_kind: kind.to_string(),
                    namespace,
                    name: name.to_string(),
                },
            )
        })
    }

    /// Delete one object of a namespace; answers whether it was there (a re-run is a no-op).
    ///
    /// # Example
    /// ```rhai
    /// delete_object("v1", "PersistentVolumeClaim", "clearml", "data-mongodb-0");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn delete_object(api_version: &str, kind: &str, namespace: &str, name: &str) -> R<Dynamic> {
        delete(api_version, kind, Some(namespace.to_string()), name)
    }

    /// Collect a support bundle into `out` (a .tar.gz, readable by its owner only): the tool's
    /// last run log and plan, each release's values (secrets masked), its rendered manifests,
    /// the nodes, the pods, events and workloads of each namespace, the logs of pods that are not
    /// ready, and the ClearML API's version. Every file goes through the redactor, and every
    /// value of the namespaces' Secrets is masked wherever it shows up. Answers the file names.
    ///
    /// # Options
    /// - `releases`: a list of `#{release, namespace}`
    /// - `namespaces`: a list of namespaces
    /// - `api_url`: the ClearML API, for its version
    ///
    /// # Example
    /// ```rhai
    /// support_bundle("bundle.tar.gz", #{ releases: [#{ release: "clearml", namespace: "clearml" }], namespaces: ["clearml"] });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn support_bundle(out: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "support_bundle";
        let mut o = Opts::new(B, opts);
        let releases = o.value("releases")?;
        let namespaces = o.strings("namespaces")?;
        let api_url = o.string("api_url")?;
        o.finish()?;
        let mut pairs = Vec::new();
        if let Some(crate::value::Value::List(items)) = releases {
            for i in items {
                match (i.at_path("release"), i.at_path("namespace")) {
                    (Some(crate::value::Value::Str(r)), Some(crate::value::Value::Str(n))) => {
                        pairs.push((r.clone(), n.clone()))
                    }
                    _ => return Err(invalid(B, "each of `releases` is #{release, namespace}")),
                }
            }
        }
        for ns in &namespaces {
            check_name(B, "the namespace", ns, 63)?;
        }
        let base = runtime::with(|rt| rt.base_dir.clone());
        let out = base.join(out).display().to_string();
        ask(
            B,
            OpsQuery::SupportBundle(crate::support_bundle::BundleSpec {
                out,
                releases: pairs,
                namespaces,
                api_url,
            }),
        )
    }

    /// One check of a report: `status` is `pass`, `warn` or `fail`; `fix` says in one line
    /// what to do (shown unless it passed). A `details` list of strings set on the answer (what
    /// the check looked at, item by item) goes into the JSON report, not the table.
    ///
    /// # Example
    /// ```rhai
    /// check("storage class", "fail", "no default StorageClass", "mark one default: kubectl annotate storageclass NAME storageclass.kubernetes.io/is-default-class=true");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn check(name: &str, status: &str, message: Dynamic, fix: &str) -> R<Map> {
        if !matches!(status, "pass" | "warn" | "fail") {
            return Err(invalid(
                "check",
                format!("the status `{status}` is not pass, warn or fail"),
            ));
        }
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("status".into(), status.into());
        m.insert("message".into(), crate::api::display(&message).into());
        m.insert("fix".into(), fix.into());
        Ok(m)
    }

    /// Show a report of checks: a table on stdout, or with `--output json` one JSON document
    /// `{title, checks, passed, warnings, failed}`. When any check failed the run stops with
    /// exit code 1 after the report (in a dry run it goes on). Answers the counts.
    ///
    /// # Example
    /// ```rhai
    /// report_checks("Preflight", [check("cluster", "pass", "v1.33.0", "")]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn report_checks(title: &str, checks: Array) -> R<Map> {
        const B: &str = "report_checks";
        let mut list = Vec::new();
        for (i, c) in checks.iter().enumerate() {
            let v = crate::api::to_value(B, c)?;
            let parsed: Check = serde_json::from_value(v.reveal()).map_err(|e| {
                invalid(
                    B,
                    format!("checks[{i}] is not a check (make it with check(name, status, message, fix)): {e}"),
                )
            })?;
            list.push(parsed);
        }
        let count = |s: &str| list.iter().filter(|c| c.status == s).count() as i64;
        let (passed, warnings, failed_n) = (count("pass"), count("warn"), count("fail"));
        if !crate::ui::is_quiet() {
            if crate::ui::is_json_stdout() {
                crate::ops::keep_report(serde_json::json!({
                    "title": title, "checks": list,
                    "passed": passed, "warnings": warnings, "failed": failed_n,
                }));
            } else {
                crate::ui::out(&crate::ops::render_table(title, &list));
            }
        }
        let dry = runtime::with(|rt| rt.mode() == crate::action::Mode::DryRun);
        if failed_n > 0 && !dry {
            return Err(failed(
                B,
                format!(
                    "{title}: {failed_n} of {} checks failed (see the report above)",
                    list.len()
                ),
            ));
        }
        let mut m = Map::new();
        m.insert("passed".into(), passed.into());
        m.insert("warnings".into(), warnings.into());
        m.insert("failed".into(), failed_n.into());
        Ok(m)
    }
}
