//! What a chart step would change against the deployed release: the values and the rendered
//! manifest. Built once per step and used twice: to skip a step that changes nothing (no new
//! revision, no restarts) and to show the change (`--diff`), secrets masked.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value as J;

use crate::action::{Action, ChartInstall, Executor, Mode, Query};
use crate::value::Value;

static SHOW: AtomicBool = AtomicBool::new(false);

/// `--diff`: each chart step shows what it would change against the deployed release.
pub fn set_show(on: bool) {
    SHOW.store(on, Ordering::SeqCst);
}

pub fn showing() -> bool {
    SHOW.load(Ordering::SeqCst)
}

/// `--dry-run --diff`: a plan, like the dry run's, for which the cluster is read (queries
/// answered live, each chart rendered by helm with `--dry-run=server` and compared with its
/// deployed release); nothing is changed.
pub struct DiffPlanner {
    live: crate::live::LiveExecutor,
}

impl DiffPlanner {
    pub fn new(live: crate::live::LiveExecutor) -> DiffPlanner {
        DiffPlanner { live }
    }
}

impl Executor for DiffPlanner {
    fn mode(&self) -> Mode {
        Mode::DryRun
    }
    fn execute(&self, action: &Action) -> Result<Value, String> {
        if let Action::HelmUpgradeInstall(spec) = action {
            self.live.show_diff(spec)?;
        }
        Ok(action.planned_result())
    }
    fn query(&self, query: &Query) -> Result<Value, String> {
        self.live.query(query)
    }
}

pub struct Comparison {
    /// The deployed release's record (`helm status -o json`'s shape), if there is one.
    pub before: Option<J>,
    /// The values the step gives helm (secrets revealed: compared, never shown unmasked).
    pub desired: J,
    /// Whether `desired` is all the values (no `-f` files of the site, which helm merges).
    complete: bool,
    /// The release helm rendered (`upgrade --install --dry-run=server -o json`).
    pub rendered: Option<J>,
}

impl Comparison {
    pub fn new(spec: &ChartInstall, before: Option<J>) -> Comparison {
        // the deployed values' secrets are masked too: where this run has a secret, under a
        // key that names one, and in an environment entry whose name names one (a credential
        // the site no longer gives is still in the deployed release)
        if let Some(b) = &before {
            register_old_secrets(&spec.values, &b["config"]);
            crate::support_bundle::register_secrets(&b["config"]);
        }
        Comparison {
            before,
            desired: spec.values.reveal(),
            complete: spec.values_files.is_empty(),
            rendered: None,
        }
    }

    pub fn with_rendered(mut self, rendered: J) -> Comparison {
        self.rendered = Some(rendered);
        self
    }

    fn deployed(&self) -> Option<&J> {
        self.before
            .as_ref()
            .filter(|b| b["info"]["status"] == "deployed")
    }

    /// The deployed release has exactly these values.
    pub fn values_unchanged(&self) -> bool {
        self.complete
            && self
                .deployed()
                .is_some_and(|b| same_values(&b["config"], &self.desired))
    }

    /// The deployed release is of chart `name` at `version`.
    pub fn deployed_chart_is(&self, name: &str, version: &str) -> bool {
        self.deployed().is_some_and(|b| {
            let meta = &b["chart"]["metadata"];
            meta["name"] == name && meta["version"] == version
        })
    }

    /// Neither the values, nor the chart, nor the rendered manifest would change.
    pub fn unchanged(&self) -> bool {
        let (Some(before), Some(after)) = (self.deployed(), &self.rendered) else {
            return false;
        };
        self.values_unchanged()
            && before["chart"]["metadata"]["version"] == after["chart"]["metadata"]["version"]
            && before["chart"]["metadata"]["appVersion"] == after["chart"]["metadata"]["appVersion"]
            && before["manifest"].as_str().map(str::trim)
                == after["manifest"].as_str().map(str::trim)
    }

    /// The change as unified diffs of the values and of the rendered manifests, every secret
    /// masked; empty when nothing would change.
    pub fn diff(&self, release: &str, namespace: &str) -> String {
        let empty = J::Null;
        let before = self.before.as_ref().unwrap_or(&empty);
        let old_values = yaml_of(&before["config"]);
        let new_values = yaml_of(
            self.rendered
                .as_ref()
                .map(|r| &r["config"])
                .filter(|c| !c.is_null())
                .unwrap_or(&self.desired),
        );
        let old_manifest = before["manifest"].as_str().unwrap_or_default();
        let new_manifest = self
            .rendered
            .as_ref()
            .and_then(|r| r["manifest"].as_str())
            .unwrap_or_default();
        // a Secret's data is secret whatever its key is called and wherever the chart took it
        // from (a generated password, a TLS key): each value, as written and decoded, is masked
        register_manifest_secrets(old_manifest);
        register_manifest_secrets(new_manifest);
        let label = |what: &str, side: &str| format!("{namespace}/{release} {what} ({side})");
        let old_side = match before["version"].as_i64() {
            Some(rev) => format!("revision {rev}"),
            None => "not installed".to_string(),
        };
        let mut out = String::new();
        for (what, old, new) in [
            ("values", old_values.as_str(), new_values.as_str()),
            ("manifest", old_manifest, new_manifest),
        ] {
            if old.trim() == new.trim() {
                continue;
            }
            let d = similar::TextDiff::from_lines(old, new);
            out.push_str(
                &d.unified_diff()
                    .context_radius(3)
                    .header(&label(what, &old_side), &label(what, "this run"))
                    .to_string(),
            );
        }
        // whatever reached the text as plain strings (values, Secret data in base64) is masked
        crate::secret::redact(&out)
    }
}

/// Register with the redactor each deployed value that stands where this run has a secret.
fn register_old_secrets(new: &Value, old: &J) {
    match (new, old) {
        (Value::Secret(_), J::String(s)) => {
            crate::secret::register(s);
        }
        (_, J::Object(m)) => {
            for (k, v) in m {
                let child = match new {
                    Value::Map(n) => n.get(k).unwrap_or(&Value::Null),
                    _ => &Value::Null,
                };
                register_old_secrets(child, v);
            }
        }
        (_, J::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let child = match new {
                    Value::List(n) => n.get(i).unwrap_or(&Value::Null),
                    _ => &Value::Null,
                };
                register_old_secrets(child, v);
            }
        }
        _ => {}
    }
}

/// Register with the redactor every value of the Secrets of a rendered manifest: `data` as
/// written (base64) and decoded, `stringData` as written; in the other objects, the values of
/// secret keys and of environment entries whose names are secret (a container's `env`).
fn register_manifest_secrets(manifest: &str) {
    use base64::Engine as _;
    for doc in manifest.split("\n---") {
        let Ok(v) = crate::site::parse_yaml(doc) else {
            continue;
        };
        let j = v.reveal();
        if j["kind"] != "Secret" {
            crate::support_bundle::register_secrets(&j);
            continue;
        }
        for field in ["data", "stringData"] {
            for val in j[field].as_object().into_iter().flat_map(|m| m.values()) {
                let Some(text) = val.as_str() else { continue };
                crate::secret::register(text);
                if field == "data"
                    && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(text.trim())
                {
                    crate::secret::register(&String::from_utf8_lossy(&raw));
                }
            }
        }
    }
}

/// Values as helm stored them and as the step gives them: equal as data (helm drops nothing
/// the tool writes; numbers compared by value).
fn same_values(stored: &J, desired: &J) -> bool {
    let stored_empty = stored.is_null() || stored.as_object().is_some_and(|m| m.is_empty());
    let desired_empty = desired.is_null() || desired.as_object().is_some_and(|m| m.is_empty());
    // null and {} are the same; one empty and the other not differ below
    if stored_empty && desired_empty {
        return true;
    }
    match (stored, desired) {
        (J::Object(a), J::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_values_leaf(v, w)))
        }
        _ => same_values_leaf(stored, desired),
    }
}

fn same_values_leaf(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Object(_), J::Object(_)) => same_values(a, b),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_values_leaf(p, q))
        }
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Values as the diff shows them: none (null, as helm stores a release installed without
/// values, or `{}`) is no text, so that the two forms of none show no change.
fn yaml_of(v: &J) -> String {
    if v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) {
        return String::new();
    }
    crate::value::json_to_yaml(v).unwrap_or_else(|e| format!("<{e}>\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_with(values: Value) -> ChartInstall {
        ChartInstall {
            release: "r".into(),
            chart: "repo/c".into(),
            namespace: "ns".into(),
            version: None,
            create_namespace: false,
            values,
            values_files: vec![],
            wait: false,
            timeout: None,
            rollback_on_failure: false,
            plain_http: false,
        }
    }

    #[test]
    fn deployed_values_where_this_run_has_a_secret_are_registered_however_nested() {
        use crate::secret::Secret;
        let new = Value::Map(std::collections::BTreeMap::from([(
            "env".to_string(),
            Value::List(vec![
                Value::Str("plain".into()),
                Value::Secret(Secret::new("new-secret-in-list-1")),
            ]),
        )]));
        // and, wherever this run has none, under a secret key or a secret environment name
        let old = json!({"env": ["plain", "old-secret-in-list-2"], "apiToken": "old-token-value-3",
                         "extraEnvs": [{"name": "DROPPED_TOKEN", "value": "old-env-value-4"}]});
        Comparison::new(&spec_with(new), Some(json!({"config": old})));
        let text = crate::secret::redact(&old.to_string());
        assert!(!text.contains("old-secret-in-list-2"), "{text}");
        assert!(!text.contains("old-token-value-3"), "{text}");
        assert!(!text.contains("old-env-value-4"), "{text}");
        assert!(
            text.contains("plain") && text.contains("DROPPED_TOKEN"),
            "{text}"
        );
    }

    #[test]
    fn no_values_show_as_no_text() {
        assert_eq!(yaml_of(&J::Null), "");
        assert_eq!(yaml_of(&json!({})), "");
        assert_eq!(yaml_of(&json!({"a": 1})), "a: 1\n");
    }

    #[test]
    fn values_compare_as_data() {
        assert!(same_values(
            &json!({"a": 1, "b": {"c": [1, "x"]}}),
            &json!({"b": {"c": [1.0, "x"]}, "a": 1})
        ));
        assert!(!same_values(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!same_values(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        // a list that only begins like the other is not the same
        assert!(!same_values(&json!({"a": [1]}), &json!({"a": [1, 2]})));
        assert!(!same_values(&json!({"a": [1, 2]}), &json!({"a": [1]})));
        assert!(same_values(&J::Null, &json!({})));
        assert!(same_values(&json!({}), &J::Null));
        assert!(!same_values(&J::Null, &json!({"a": 1})));
        assert!(!same_values(&json!({"a": 1}), &json!({})));
    }

    #[test]
    fn the_deployed_chart_is_compared_by_name_and_version() {
        let spec = spec_with(Value::Null);
        let record = |status: &str| {
            json!({"info": {"status": status}, "config": {},
                   "chart": {"metadata": {"name": "c", "version": "1.2.3"}}})
        };
        let deployed = Comparison::new(&spec, Some(record("deployed")));
        assert!(deployed.deployed_chart_is("c", "1.2.3"));
        assert!(!deployed.deployed_chart_is("c", "1.2.4"));
        assert!(!deployed.deployed_chart_is("other", "1.2.3"));
        // a failed release is never the deployed one, whatever its chart
        let failed = Comparison::new(&spec, Some(record("failed")));
        assert!(!failed.deployed_chart_is("c", "1.2.3"));
        assert!(!Comparison::new(&spec, None).deployed_chart_is("c", "1.2.3"));
    }
}
