//! An object's type and metadata as the server checks, fills in and keeps them: apiVersion,
//! kind and namespace, labels and annotations, uid, creationTimestamp and generation; and the
//! random hex and RFC 3339 timestamps the sandbox uses for names and times.

use serde_json::{Map, Value};

use super::{ApiError, Result};
use crate::sandbox::resources::Resource;

/// Check and complete the object's type and metadata for storing under `r` in `ns`.
pub(super) fn prepare(r: &'static Resource, ns: &str, obj: Value) -> Result<Value> {
    let Value::Object(mut map) = obj else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let api_version = r.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), api_version.clone().into());
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), r.kind.into());
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                r.kind
            )));
        }
    }
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    if r.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), ns.into());
            }
        }
    } else {
        meta.remove("namespace");
    }
    for field in ["labels", "annotations"] {
        if let Some(v) = meta.get(field)
            && !v.is_null()
            && !v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string))
        {
            return Err(ApiError::bad_request(format!(
                "metadata.{field} must map strings to strings"
            )));
        }
    }
    if let Some(name) = meta.get("name")
        && !name.is_null()
        && !name.is_string()
    {
        return Err(ApiError::bad_request("metadata.name must be a string"));
    }
    Ok(Value::Object(map))
}

/// Keep what the server owns across an update, and bump the generation on a spec change.
pub(super) fn carry_over(r: &'static Resource, old: &Value, mut new: Value) -> Value {
    for field in ["uid", "creationTimestamp"] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    // a deletion once begun is the server's to keep (a client cannot set or clear it)
    for field in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
        match &old["metadata"][field] {
            Value::Null => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
            v => new["metadata"][field] = v.clone(),
        }
    }
    // an update that does not send the field managers keeps them
    if new["metadata"]["managedFields"].is_null() && !old["metadata"]["managedFields"].is_null() {
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    }
    if r.has_generation() {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = strip(old) != strip(&new);
        new["metadata"]["generation"] = Value::from(if changed { g + 1 } else { g });
    }
    new
}

pub fn random_hex(bytes: usize) -> String {
    crate::secret::generate_hex(bytes).unwrap_or_else(|_| "0".repeat(bytes * 2))
}

pub(super) fn uid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The current time as RFC 3339 in UTC, second precision.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
