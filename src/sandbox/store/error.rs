//! The API error: a code, a reason and a message, answered to clients as a `Status` object.

use serde_json::{Value, json};

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub name: String,
    pub kind: String,
    /// The `details.causes`: reason, message and field of each.
    pub causes: Vec<(&'static str, String, &'static str)>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: String::new(),
            kind: String::new(),
            causes: Vec::new(),
        }
    }

    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{plural} \"{name}\" not found"),
            name: name.to_string(),
            kind: plural.to_string(),
            causes: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.name.is_empty() || !self.kind.is_empty() {
            s["details"] = json!({"name": self.name, "kind": self.kind});
        }
        if !self.causes.is_empty() {
            s["details"]["causes"] = self
                .causes
                .iter()
                .map(|(reason, message, field)| {
                    json!({"reason": reason, "message": message, "field": field})
                })
                .collect();
        }
        s
    }
}

pub type Result<T> = std::result::Result<T, ApiError>;
