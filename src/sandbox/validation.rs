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
