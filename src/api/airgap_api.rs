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
        let mut m = Map::new();
        m.insert("chart".into(), Dynamic::from(path.display().to_string()));
        m.insert("version".into(), Dynamic::from(version));
        Ok(m)
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
