//! The tool's own small cache (`$XDG_CACHE_HOME/clearml-script`, else `~/.cache/clearml-script`):
//! answers that cost a process or a pass over the stdlib at every start and that only change
//! when a file changes, each stored with the identity of what it was computed from (a binary's
//! canonical path, device, inode, size and modification time) and a digest of its own text.
//! An entry that does not match, does not parse or fails its digest is ignored and computed
//! again; a cache that cannot be written is not an error (the answer is computed every time).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value as J, json};
use sha2::{Digest, Sha256};

/// The cache directory, from the environment: `XDG_CACHE_HOME`, else `HOME/.cache`.
pub fn dir() -> Option<PathBuf> {
    let get = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let base = match get("XDG_CACHE_HOME") {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(get("HOME")?).join(".cache"),
    };
    Some(base.join("clearml-script"))
}

/// What identifies a file's content without reading it: its canonical path, device, inode,
/// size and modification time (to the nanosecond). A file replaced, rebuilt or touched has
/// another identity.
pub fn identity(path: &Path) -> Option<J> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&canonical).ok()?;
    Some(json!({
        "path": canonical.to_str()?,
        "dev": m.dev(),
        "ino": m.ino(),
        "size": m.size(),
        "mtime": [m.mtime(), m.mtime_nsec()],
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file of an entry: `KIND-<digest of the file's path>.json` (of the whole identity when it
/// names no path). One entry a file and kind: a file rebuilt or upgraded in place replaces its
/// entry rather than adding one, so the cache stays as small as the set of binaries run.
fn entry_path(dir: &Path, kind: &str, identity: &J) -> PathBuf {
    let key = identity.get("path").unwrap_or(identity);
    let digest = Sha256::digest(key.to_string().as_bytes());
    dir.join(format!("{kind}-{}.json", &hex(&digest)[..32]))
}

/// The value stored for `identity`, if an entry holds it whole: the entry parses, names the
/// same identity, and its value's digest is the one stored beside it.
pub fn lookup(dir: &Path, kind: &str, identity: &J) -> Option<J> {
    let text = std::fs::read_to_string(entry_path(dir, kind, identity)).ok()?;
    let mut entry: J = serde_json::from_str(&text).ok()?;
    if entry.get("identity") != Some(identity) {
        return None;
    }
    let value = entry.get_mut("value")?.take();
    let digest = hex(&Sha256::digest(value.to_string().as_bytes()));
    (entry.get("sha256").and_then(J::as_str) == Some(digest.as_str())).then_some(value)
}

/// Store `value` for `identity`: written beside and renamed over the entry, so a reader sees
/// the old entry or the new one, never a part. Failures are only said with `-v`.
pub fn store(dir: &Path, kind: &str, identity: &J, value: &J) {
    let path = entry_path(dir, kind, identity);
    let entry = json!({
        "identity": identity,
        "sha256": hex(&Sha256::digest(value.to_string().as_bytes())),
        "value": value,
    });
    let written = std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            let mut tmp = tempfile::Builder::new()
                .prefix(".entry-")
                .tempfile_in(dir)
                .map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut tmp, entry.to_string().as_bytes())
                .map_err(|e| e.to_string())?;
            tmp.persist(&path).map_err(|e| e.error.to_string())?;
            Ok(())
        });
    if let Err(e) = written {
        crate::ui::debug(&format!(
            "the cache entry {} was not written: {e}",
            path.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_found_only_for_its_identity_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bin");
        std::fs::write(&file, "one").unwrap();
        let id = identity(&file).unwrap();
        assert_eq!(lookup(dir.path(), "t", &id), None);
        store(dir.path(), "t", &id, &json!({"v": 1}));
        assert_eq!(lookup(dir.path(), "t", &id), Some(json!({"v": 1})));
        // another kind, or the file changed (size and time): no entry
        assert_eq!(lookup(dir.path(), "u", &id), None);
        std::fs::write(&file, "other").unwrap();
        let changed = identity(&file).unwrap();
        assert_ne!(changed, id);
        assert_eq!(lookup(dir.path(), "t", &changed), None);
        // an entry edited (its value no longer matches its digest), or cut short: ignored
        let path = entry_path(dir.path(), "t", &id);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"v\":1", "\"v\":2")).unwrap();
        assert_eq!(lookup(dir.path(), "t", &id), None);
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert_eq!(lookup(dir.path(), "t", &id), None);
        // an entry naming another identity under this one's name: ignored
        let other = json!({"path": "/elsewhere"});
        let moved = text.replace(&id.to_string(), &other.to_string());
        std::fs::write(&path, moved).unwrap();
        assert_eq!(lookup(dir.path(), "t", &id), None);
        // the file changed in place: its new entry replaces the old, one file in all
        store(dir.path(), "t", &changed, &json!({"v": 3}));
        assert_eq!(lookup(dir.path(), "t", &changed), Some(json!({"v": 3})));
        assert_eq!(lookup(dir.path(), "t", &id), None);
        let other_file = dir.path().join("other-bin");
        std::fs::write(&other_file, "x").unwrap();
        let other_id = identity(&other_file).unwrap();
        store(dir.path(), "t", &other_id, &json!(4));
        let entries = |kind: &str| {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_str().unwrap().starts_with(&format!("{kind}-"))
                })
                .count()
        };
        assert_eq!(entries("t"), 2, "one entry for each file");
        assert_eq!(lookup(dir.path(), "t", &changed), Some(json!({"v": 3})));
        // a directory that cannot be written: no error, no entry
        store(&file.join("sub"), "t", &id, &json!(1));
        assert_eq!(lookup(&file.join("sub"), "t", &id), None);
    }
}
