//! Files written so that a kill at any moment leaves the old content or the new, never a part.

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
