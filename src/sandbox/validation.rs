//! The part of the real API server's validation the sandbox answers alike (each rule was found
//! by the differential tests against the real kube-apiserver, tests/real_cluster.rs): object
//! names, label selectors, workloads' selectors and containers, Service ports. Every failure is
//! a 422 `Invalid` naming the field, as the real server's is.

use serde_json::Value;

use super::resources::Resource;
use super::store::ApiError;

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// A label value (or a selector's value): at most 63 characters, alphanumerics, `-`, `_`, `.`,
/// starting and ending with an alphanumeric; empty is allowed.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_subdomain) && !name.is_empty() && is_label_value(name)
}

fn invalid(r: &Resource, name: &str, causes: Vec<String>) -> ApiError {
    let group = if r.group.is_empty() {
        String::new()
    } else {
        format!(".{}", r.group)
    };
    let detail = if causes.len() == 1 {
        causes[0].clone()
    } else {
        format!("[{}]", causes.join(", "))
    };
    ApiError::new(
        422,
        "Invalid",
        format!("{}{group} \"{name}\" is invalid: {detail}", r.kind),
    )
}

const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";

/// A ConfigMap's or Secret's data key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The labels (keys and values) and annotation keys of any object.
fn metadata(obj: &Value, causes: &mut Vec<String>) {
    for (k, v) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
        if !is_label_key(k) {
            causes.push(format!(
                "metadata.labels: Invalid value: \"{k}\": {QUALIFIED_NAME}"
            ));
        }
        let v = v.as_str().unwrap_or_default();
        if !is_label_value(v) {
            causes.push(format!(
                "metadata.labels: Invalid value: \"{v}\": {LABEL_VALUE}"
            ));
        }
    }
    for k in obj["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        if !is_label_key(k) {
            causes.push(format!(
                "metadata.annotations: Invalid value: \"{k}\": {QUALIFIED_NAME}"
            ));
        }
    }
}

/// The field types the real server's decoding refuses with a 400 before any validation: a
/// ConfigMap's data, a Secret's stringData and labels and annotations are maps of strings.
pub fn decodable(r: &Resource, obj: &Value) -> Result<(), ApiError> {
    let mut maps = vec![
        ("ObjectMeta.labels", &obj["metadata"]["labels"]),
        ("ObjectMeta.annotations", &obj["metadata"]["annotations"]),
    ];
    match r.kind {
        "ConfigMap" => maps.push(("ConfigMap.data", &obj["data"])),
        "Secret" => maps.push(("Secret.stringData", &obj["stringData"])),
        _ => {}
    }
    for (field, m) in maps {
        if let Some(bad) = m
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .find(|v| !v.is_string())
        {
            let what = match bad {
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                _ => "null",
            };
            if bad.is_null() {
                continue;
            }
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {what} into Go struct field {field} of type string",
                r.kind, r.version, r.kind
            )));
        }
    }
    Ok(())
}

/// What the real server refuses to change in an update (PUT or any patch): workloads'
/// selectors, a StatefulSet's spec but for the fields it lets change, a Job's template, a
/// Service's cluster IP, and the data of a Secret or ConfigMap marked `immutable`.
pub fn validate_update(r: &Resource, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    let (o, n) = (&old["spec"], &new["spec"]);
    match r.kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" if o["selector"] != n["selector"] => {
            causes.push(format!(
                "spec.selector: Invalid value: {}: field is immutable",
                n["selector"]
            ));
        }
        "StatefulSet" => {
            const MUTABLE: &[&str] = &[
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let changed =
                o.as_object().into_iter().flatten().any(|(k, v)| {
                    !MUTABLE.contains(&k.as_str()) && n.get(k).is_some_and(|nv| nv != v)
                });
            if changed {
                causes.push("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into());
            }
        }
        "Job" => {
            // the labels the real Job controller's admission adds to the template are not the user's
            let strip = |t: &Value| {
                let mut t = t.clone();
                if let Some(l) = t["metadata"]["labels"].as_object_mut() {
                    l.retain(|k, _| {
                        !matches!(
                            k.as_str(),
                            "controller-uid"
                                | "job-name"
                                | "batch.kubernetes.io/controller-uid"
                                | "batch.kubernetes.io/job-name"
                        )
                    });
                    if l.is_empty() {
                        t["metadata"].as_object_mut().map(|m| m.remove("labels"));
                    }
                }
                if t["metadata"].as_object().is_some_and(|m| m.is_empty()) {
                    t.as_object_mut().map(|m| m.remove("metadata"));
                }
                t
            };
            if strip(&o["template"]) != strip(&n["template"]) {
                causes.push(format!(
                    "spec.template: Invalid value: {}: field is immutable",
                    n["template"]
                ));
            }
        }
        "Service" => {
            let (oip, nip) = (
                o["clusterIP"].as_str().unwrap_or(""),
                n["clusterIP"].as_str().unwrap_or(""),
            );
            let external = |s: &Value| s["type"].as_str() == Some("ExternalName");
            if !oip.is_empty() && !nip.is_empty() && oip != nip && !external(o) && !external(n) {
                causes.push(format!(
                    "spec.clusterIPs[0]: Invalid value: [\"{nip}\"]: may not change once set"
                ));
            }
        }
        _ => {}
    }
    if matches!(r.kind, "Secret" | "ConfigMap") && old["immutable"] == Value::Bool(true) {
        if new["immutable"] != Value::Bool(true) {
            causes.push("immutable: Forbidden: field is immutable when `immutable` is set".into());
        }
        for field in ["data", "binaryData"] {
            if old[field] != new[field] {
                causes.push(format!(
                    "{field}: Forbidden: field is immutable when `immutable` is set"
                ));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name, causes))
    }
}

/// Validate an object before it is stored (create, update, patch; dry runs too).
pub fn validate(r: &Resource, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    match r.kind {
        "Namespace" | "Service" if !is_label(name) => {
            causes.push(format!("metadata.name: Invalid value: \"{name}\": {LABEL}"));
        }
        "ConfigMap"
        | "Secret"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "Pod"
        | "ServiceAccount"
        | "Ingress"
        | "PersistentVolumeClaim"
            if !is_subdomain(name) =>
        {
            causes.push(format!(
                "metadata.name: Invalid value: \"{name}\": {SUBDOMAIN}"
            ));
        }
        _ => {}
    }
    metadata(obj, &mut causes);
    if matches!(r.kind, "ConfigMap" | "Secret") {
        for field in ["data", "binaryData", "stringData"] {
            for key in obj[field].as_object().into_iter().flat_map(|m| m.keys()) {
                if !is_config_key(key) {
                    causes.push(format!(
                        "{field}[{key}]: Invalid value: \"{key}\": {CONFIG_KEY}"
                    ));
                }
            }
        }
    }
    match r.kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            workload(&obj["spec"], &mut causes);
        }
        "Service" => {
            for (i, p) in obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(format!(
                        "spec.ports[{i}].port: Invalid value: {port}: must be between 1 and 65535, inclusive"
                    ));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name, causes))
    }
}

/// A workload's selector (required, matching the template's labels) and its containers
/// (at least one, each with a name and an image).
fn workload(spec: &Value, causes: &mut Vec<String>) {
    let selector = &spec["selector"];
    let labels = &spec["template"]["metadata"]["labels"];
    let match_labels = selector["matchLabels"].as_object();
    let expressions = selector["matchExpressions"]
        .as_array()
        .is_some_and(|e| !e.is_empty());
    if match_labels.is_none_or(|m| m.is_empty()) && !expressions {
        causes.push("spec.selector: Required value".into());
    }
    let matches = match_labels
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
        || (expressions && match_labels.is_none_or(|m| m.is_empty()));
    if !matches {
        causes.push(format!(
            "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
            labels
        ));
    }
    let containers = spec["template"]["spec"]["containers"].as_array();
    match containers {
        None => causes.push("spec.template.spec.containers: Required value".into()),
        Some(cs) if cs.is_empty() => {
            causes.push("spec.template.spec.containers: Required value".into())
        }
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                for field in ["name", "image"] {
                    if c[field].as_str().unwrap_or("").is_empty() {
                        causes.push(format!(
                            "spec.template.spec.containers[{i}].{field}: Required value"
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_values() {
        assert!(is_subdomain("clearml-apiserver.x"));
        assert!(!is_subdomain("Bad_Name"));
        assert!(is_label("redis-shared"));
        assert!(!is_label("a.b"));
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(!is_label_key("=a"));
        assert!(is_label_value(""));
        assert!(!is_label_value("=x"));
    }
}
