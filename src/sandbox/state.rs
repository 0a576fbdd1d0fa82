//! The kept sandbox cluster (`--sandbox-state DIR`), encrypted at rest.
//!
//! The state holds what the cluster holds, as a real cluster's store does: Secrets, helm's
//! release records (the values, credentials included), and the Deployments whose environment
//! the guide's overrides fill with the supervisor's and SSO credentials. A Kubernetes
//! encryption configuration for Secrets alone would leave those environments in plain text, so
//! the whole snapshot is encrypted, as an `EncryptionConfiguration` for every resource would:
//! AES-256-GCM with a key of the sandbox's own, kept apart in `sandbox-state.key` (0600, made
//! once, never rewritten). `sandbox-state.json` alone then holds no secret: it may be copied,
//! backed up or attached to a report; the key is what to keep private.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use serde_json::{Value as J, json};

pub const STATE_FILE: &str = "sandbox-state.json";
pub const KEY_FILE: &str = "sandbox-state.key";
const FORMAT: &str = "clearml-script sandbox state";
const CIPHER: &str = "AES-256-GCM";
/// Bound to the ciphertext: a state is opened only as what it was sealed as.
const AAD: &[u8] = b"clearml-script sandbox state v2";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

/// The sandbox's key, made (0600, created exclusively) when it has none yet.
fn key(dir: &Path, create: bool) -> Result<Option<LessSafeKey>, String> {
    let path = key_path(dir);
    let raw = match std::fs::read_to_string(&path) {
        Ok(text) => b64()
            .decode(text.trim())
            .map_err(|e| format!("the sandbox key {} is not base64: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a key: {e}"))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("cannot create the sandbox key {}: {e}", path.display()))?;
            f.write_all(format!("{}\n", b64().encode(bytes)).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write the sandbox key {}: {e}", path.display()))?;
            crate::fsutil::sync_dir(dir)?;
            bytes.to_vec()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the sandbox key {}: {e}",
                path.display()
            ));
        }
    };
    let unbound = UnboundKey::new(&AES_256_GCM, &raw)
        .map_err(|_| format!("the sandbox key {} is not a 256-bit key", path.display()))?;
    Ok(Some(LessSafeKey::new(unbound)))
}

/// The kept snapshot in `dir` (`{"kubernetes": …, "clearml": …}`), decrypted; `None` when
/// there is none yet. A state written before encryption (plain JSON) is read as it is, and
/// encrypted when it is saved next.
pub fn read(dir: &Path) -> Result<Option<J>, String> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let doc: J = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e})"))?;
    if doc.get("kubernetes").is_some() && doc.get("ciphertext").is_none() {
        return Ok(Some(doc));
    }
    if doc["format"] != FORMAT || doc["cipher"] != CIPHER {
        return Err(format!(
            "not a sandbox state of this tool (format {}, cipher {})",
            doc["format"], doc["cipher"]
        ));
    }
    let Some(key) = key(dir, false)? else {
        return Err(format!(
            "it is encrypted and its key {} is missing",
            key_path(dir).display()
        ));
    };
    let field = |name: &str| {
        doc[name]
            .as_str()
            .and_then(|s| b64().decode(s).ok())
            .ok_or_else(|| format!("its `{name}` is missing or not base64"))
    };
    let nonce: [u8; NONCE_LEN] = field("nonce")?
        .try_into()
        .map_err(|_| "its nonce has the wrong length".to_string())?;
    let mut sealed = field("ciphertext")?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(AAD),
            &mut sealed,
        )
        .map_err(|_| {
            format!(
                "it does not decrypt with the key {} (another sandbox's key, or a damaged file)",
                key_path(dir).display()
            )
        })?;
    serde_json::from_slice(plain)
        .map(Some)
        .map_err(|e| format!("its decrypted content is not JSON ({e})"))
}

/// Seal `snapshot` with the sandbox's key (made on the first save) and write it atomically.
pub fn write(dir: &Path, snapshot: &J) -> Result<(), String> {
    let key = key(dir, true)?.expect("made when missing");
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
    let mut sealed = snapshot.to_string().into_bytes();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(AAD),
        &mut sealed,
    )
    .map_err(|_| "cannot encrypt the sandbox state".to_string())?;
    let doc = json!({
        "format": FORMAT,
        "cipher": CIPHER,
        "key": KEY_FILE,
        "nonce": b64().encode(nonce),
        "ciphertext": b64().encode(&sealed),
    });
    crate::fsutil::write_atomic(&dir.join(STATE_FILE), doc.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_sealed_with_its_own_key_and_opened_only_with_it() {
        let a = tempfile::tempdir().unwrap();
        let snap = json!({"kubernetes": {"s": "canary-4711"}, "clearml": {}});
        write(a.path(), &snap).unwrap();
        let text = std::fs::read_to_string(a.path().join(STATE_FILE)).unwrap();
        assert!(!text.contains("canary-4711"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        for f in [STATE_FILE, KEY_FILE] {
            let mode = std::fs::metadata(a.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        assert_eq!(read(a.path()).unwrap(), Some(snap.clone()));
        // the key stays the same across saves
        let key_before = std::fs::read(a.path().join(KEY_FILE)).unwrap();
        write(a.path(), &snap).unwrap();
        assert_eq!(std::fs::read(a.path().join(KEY_FILE)).unwrap(), key_before);
        // another sandbox's key does not open it
        let b = tempfile::tempdir().unwrap();
        write(b.path(), &snap).unwrap();
        std::fs::copy(a.path().join(STATE_FILE), b.path().join(STATE_FILE)).unwrap();
        let e = read(b.path()).unwrap_err();
        assert!(e.contains("does not decrypt with the key"), "{e}");
        // without its key it cannot be read, and says which file is missing
        std::fs::remove_file(a.path().join(KEY_FILE)).unwrap();
        let e = read(a.path()).unwrap_err();
        assert!(e.contains("sandbox-state.key is missing"), "{e}");
    }

    #[test]
    fn a_plain_state_of_an_earlier_version_is_read() {
        let a = tempfile::tempdir().unwrap();
        let snap = json!({"kubernetes": {}, "clearml": {"queues": {}}});
        std::fs::write(a.path().join(STATE_FILE), snap.to_string()).unwrap();
        assert_eq!(read(a.path()).unwrap(), Some(snap));
    }
}
