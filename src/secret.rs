//! Secrets as a type, plus a process-wide redactor as a second line of defence.
//!
//! A [`Secret`] prints as `<redacted>` through every formatting path (Display, Debug, serde, Rhai's
//! `to_string`/`to_debug`). Concatenating a secret with a string gives a secret. The only way to
//! see the value is [`Secret::expose`], which the live executors call at the boundary (a 0600
//! file or a child's stdin), never for output.
//!
//! Every secret value is also registered with the [`redactor`]; everything the tool writes to
//! stdout and stderr passes through [`redact`], so a secret that reached a plain string anyway
//! (string interpolation, an error message from a child process) is still masked.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// What a secret shows as, everywhere.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are masked by type only: masking every occurrence of a two-letter
/// string in all output would garble it.
const MIN_REDACT_LEN: usize = 4;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value: String = value.into();
        register(&value);
        Secret(Arc::from(value))
    }

    /// The real value. Only for the boundary where it leaves the process in a safe channel.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if SENTINEL.with(std::cell::Cell::get) {
            // a secret made from a string that already held the mask (an interpolated secret
            // passed where a secret is expected) shows the mask, so the guard sees it
            s.serialize_str(if self.0.contains(REDACTED) {
                REDACTED
            } else {
                SENTINEL_TEXT
            })
        } else {
            s.serialize_str(REDACTED)
        }
    }
}

thread_local! {
    static SENTINEL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a secret serializes as inside [`with_sentinel`]: never shown, used only to tell a real
/// secret from a plain string that merely holds the text `<redacted>`.
pub const SENTINEL_TEXT: &str = "\u{1}secret\u{1}";

/// Serialize inside `f` with secrets as [`SENTINEL_TEXT`] instead of [`REDACTED`].
pub fn with_sentinel<R>(f: impl FnOnce() -> R) -> R {
    SENTINEL.with(|c| c.set(true));
    let r = f();
    SENTINEL.with(|c| c.set(false));
    r
}

fn registry() -> &'static Mutex<BTreeSet<String>> {
    static SECRETS: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Remember a secret value so that [`redact`] masks it in any text.
pub fn register(value: &str) {
    if value.chars().count() >= MIN_REDACT_LEN {
        registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(value.to_string());
    }
}

/// Mask every registered secret value in `text`. Longer secrets first, so a secret that contains
/// another is masked whole.
pub fn redact(text: &str) -> String {
    let secrets = registry().lock().unwrap_or_else(|e| e.into_inner());
    if secrets.is_empty() {
        return text.to_string();
    }
    let mut ordered: Vec<&String> = secrets.iter().collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in ordered {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// Generate `bytes` random bytes from the operating system's RNG, hex-encoded.
pub fn generate_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The rule that marks site values secret when they are loaded, by key name. Documented in the
/// README ("Secrets"); `siblings` are the other key names of the same map.
///
/// - a name containing `password`, `passwd`, `secret`, `token` or `private_key` is secret, unless
///   it names where a secret lives rather than holding one (ends in `url`, `uri`, `name`, `file`,
///   `path`, `ref`, `enabled`);
/// - a name ending in `key` is secret when the same map also has the matching `…secret` name
///   (`apiserverKey`/`apiserverSecret`, `key`/`secret`, `user_key`/`user_secret`).
pub fn is_secret_key(name: &str, siblings: &[&str]) -> bool {
    let norm = normalize(name);
    const NOT_A_VALUE: [&str; 7] = ["url", "uri", "name", "file", "path", "ref", "enabled"];
    if NOT_A_VALUE.iter().any(|s| norm.ends_with(s)) {
        return false;
    }
    if ["password", "passwd", "secret", "token", "privatekey"]
        .iter()
        .any(|w| norm.contains(w))
    {
        return true;
    }
    if let Some(prefix) = norm.strip_suffix("key") {
        let wanted = format!("{prefix}secret");
        return siblings.iter().any(|s| normalize(s) == wanted);
    }
    false
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redactor_masks_registered_values() {
        register("abcd-1234-token");
        register("abcd-1234-token-longer");
        assert_eq!(
            redact("a abcd-1234-token-longer b abcd-1234-token"),
            "a <redacted> b <redacted>"
        );
        register("xy");
        assert_eq!(redact("xy"), "xy");
    }

    #[test]
    fn key_rule() {
        assert!(is_secret_key("dockerhub_token", &[]));
        assert!(is_secret_key("password", &[]));
        assert!(is_secret_key("client_secret", &[]));
        assert!(is_secret_key("secureAuthTokenSecret", &[]));
        assert!(is_secret_key("apiserverKey", &["apiserverSecret"]));
        assert!(is_secret_key("key", &["secret"]));
        assert!(is_secret_key("user_key", &["user_secret", "email"]));
        assert!(!is_secret_key("key", &["name"]));
        assert!(!is_secret_key("access_token_url", &[]));
        assert!(!is_secret_key("secret_name", &[]));
        assert!(!is_secret_key("base_domain", &[]));
    }

    #[test]
    fn generated_hex_has_requested_size() {
        let a = generate_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, generate_hex(16).unwrap());
    }
}
