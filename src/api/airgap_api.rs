//! Air-gapped built-ins: the charts and the applications package of a bundle made by
//! `clearml-script bundle create`, and image references in the mirror.

use rhai::plugin::*;

#[export_module]
pub mod airgap_api {
    use crate::failure::invalid;
    use crate::runtime;
    use rhai::{Dynamic, EvalAltResult, Map};

    type R<T> = Result<T, Box<EvalAltResult>>;

    fn opened(builtin: &str, bundle: &str) -> R<std::sync::Arc<crate::airgap::Opened>> {
        let path = runtime::with(|rt| rt.base_dir.join(bundle));
        crate::airgap::open(&path).map_err(|e| invalid(builtin, e))
    }

    /// A chart from the bundle instead of its repository or registry: the bundle is verified
    /// (every file's sha256) once per run, and the chart's archive extracted into the run's
    /// private directory. `chart` is the chart as the connected install names it
    /// (`clearml-enterprise/clearml-enterprise`, `oci://docker.io/clearml/clearml-enterprise`):
    /// its last part names the chart. Answers `#{ chart: PATH, version: VERSION }`.
    ///
    /// # Example
    /// ```rhai
    /// let c = bundle_chart(site.airgap.bundle, "clearml-enterprise/clearml-enterprise");
    /// install_chart("clearml", c.chart, #{ namespace: "clearml", version: c.version });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn bundle_chart(bundle: &str, chart: &str) -> R<Map> {
        const B: &str = "bundle_chart";
        let (path, version) = opened(B, bundle)?.chart(chart).map_err(|e| invalid(B, e))?;
        let name = chart
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(chart);
        let mut m = Map::new();
        m.insert("chart".into(), Dynamic::from(path.display().to_string()));
        m.insert("name".into(), Dynamic::from(name.to_string()));
        m.insert("version".into(), Dynamic::from(version));
        Ok(m)
    }

    /// Put the bundle's charts into the site's own OCI registry (`oci://HOST[:PORT]/PATH`):
    /// `helm registry login` (the password on helm's stdin, never in argv), then `helm push` of
    /// each chart archive, which is then `oci://HOST/PATH/NAME` at the bundle's version.
    /// Answers how many charts were pushed.
    ///
    /// # Options
    /// - `username` (required): a plain string
    /// - `password` (required): a string or secret
    /// - `plain_http`: the registry answers plain HTTP, not HTTPS (default false)
    ///
    /// # Example
    /// ```rhai
    /// bundle_push(site.airgap.bundle, "oci://registry.local:5000/charts",
    ///     #{ username: "ci", password: site.airgap.chart_registry_password });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn bundle_push(bundle: &str, registry: &str, opts: Map) -> R<i64> {
        const B: &str = "bundle_push";
        let (username, password, plain_http) = crate::api::options::registry_login(B, opts)?;
        crate::airgap::check_chart_registry(registry).map_err(|e| invalid(B, e))?;
        let opened = opened(B, bundle)?;
        let actions =
            crate::airgap::push_actions(&opened, registry, username, password, plain_http)
                .map_err(|e| invalid(B, e))?;
        let pushed = actions.len() as i64 - 1;
        for action in actions {
            let _ = runtime::with(|rt| rt.perform(B, action))?;
        }
        Ok(pushed)
    }

    /// What is wrong with a chart registry's reference (`oci://HOST[:PORT]/PATH`), or `""`.
    ///
    /// # Example
    /// ```rhai
    /// let problem = chart_registry_problem("oci://registry.local:5000/charts");
    /// ```
    pub fn chart_registry_problem(registry: &str) -> String {
        crate::airgap::check_chart_registry(registry)
            .err()
            .unwrap_or_default()
    }

    /// What is wrong with a mirror registry (`host[:port][/path]`, the host one a container
    /// runtime does not read as Docker Hub's), or `""`.
    ///
    /// # Example
    /// ```rhai
    /// let problem = mirror_registry_problem("registry.local:5000");
    /// ```
    pub fn mirror_registry_problem(registry: &str) -> String {
        crate::airgap::registry_problem(registry).unwrap_or_default()
    }

    /// The applications package of the bundle, extracted into the run's private directory:
    /// `#{ url: "file://…", sha256: HEX }`, for `download_apps`.
    ///
    /// # Example
    /// ```rhai
    /// let p = bundle_apps(site.airgap.bundle);
    /// download_apps(p.url, "apps", #{ sha256: p.sha256 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn bundle_apps(bundle: &str) -> R<Map> {
        const B: &str = "bundle_apps";
        let (path, sha) = opened(B, bundle)?.apps().map_err(|e| invalid(B, e))?;
        let mut m = Map::new();
        m.insert(
            "url".into(),
            Dynamic::from(format!("file://{}", path.display())),
        );
        m.insert("sha256".into(), Dynamic::from(sha));
        Ok(m)
    }

    /// An image reference in the mirror registry: the registry (`host[:port][/path]`) in front
    /// of the image's repository path, tag and digest kept (`python:3.9` in
    /// `registry.local:5000` is `registry.local:5000/library/python:3.9`).
    ///
    /// # Example
    /// ```rhai
    /// let image = mirror_image("registry.local:5000", "python:3.9");
    /// ```
    pub fn mirror_image(registry: &str, image: &str) -> String {
        crate::airgap::mirror(image, registry)
    }
}
