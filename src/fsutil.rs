//! Files written so that a kill at any moment leaves the old content or the new, never a part;
//! and files only their owner can read (`write_private`).

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Sync a directory, so that the renames in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// Write a file atomically: a temporary file in the same directory, synced, renamed over the
/// target, the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".clearml-script-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("cannot write {}: {}", path.display(), e.error))?;
    sync_dir(dir)
}

/// Create an empty file only its owner can read, unless it exists; make an existing one so too.
pub fn write_private_if_missing(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        return std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    write_private(path, "")
}

/// Write a file only its owner can read; an existing file is made so before it is written.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        // emptied below, once only the owner can read it
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    // the mode of `open` applies to a new file only: an existing 0644 file is narrowed first,
    // before the secret is written into it
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.set_len(0)?;
    f.write_all(text.as_bytes())
}
