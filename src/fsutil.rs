//! Files written so that a kill at any moment leaves the old content or the new, never a part;
//! files only their owner can read (`write_private`); and input read up to a size
//! (`read_capped`).

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
    let dir = dir_of(path);
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

/// The directory a path's file is in: `.` for a bare file name.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
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

/// The most a values file (or a playbook's `read_yaml`) may hold: a site with a hundred
/// thousand queues is a few megabytes.
pub const VALUES_LIMIT: u64 = 64 << 20;

/// The most a playbook (run, or `:load`ed in the REPL) may hold: the standard install with its
/// whole stdlib is about 150 kB.
pub const PLAYBOOK_LIMIT: u64 = 16 << 20;

/// The most a secret file (`{file: PATH}`, `--set-file`) may hold: a token, a password, a key
/// or a certificate bundle is kilobytes.
pub const SECRET_FILE_LIMIT: u64 = 1 << 20;

/// The text `reader` gives, if it is at most `limit` bytes: an endless file (`/dev/zero`), or
/// a huge one named by mistake, is refused once the limit is passed instead of filling the
/// memory.
pub fn read_capped(reader: impl std::io::Read, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    reader.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it holds more than {} MiB", limit >> 20),
        ));
    }
    Ok(text)
}

/// [`read_capped`] of a file.
pub fn read_file_capped(path: &Path, limit: u64) -> std::io::Result<String> {
    read_capped(File::open(path)?, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_written_whole_over_the_old_one_with_nothing_left_beside() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("state.json");
        write_atomic(&f, b"first").unwrap();
        write_atomic(&f, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // a directory that is not there: an error naming the file
        let e = write_atomic(&d.path().join("no/such/dir/x"), b"x").unwrap_err();
        assert!(
            e.starts_with("cannot write ") && e.contains("no/such/dir/x"),
            "{e}"
        );
        let e = sync_dir(&d.path().join("gone")).unwrap_err();
        assert!(e.starts_with("cannot sync ") && e.contains("gone"), "{e}");
    }

    #[test]
    fn private_files_are_the_owners_alone_new_or_existing() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let d = tempfile::tempdir().unwrap();
        let open = |name: &str, text: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            p
        };
        // written: new, and over a longer world-readable file (narrowed, then emptied)
        let new = d.path().join("new");
        write_private(&new, "s3cr3t").unwrap();
        assert_eq!(
            (mode(&new), std::fs::read_to_string(&new).unwrap()),
            (0o600, "s3cr3t".into())
        );
        let old = open("old", "a much longer old text");
        write_private(&old, "s3cr3t").unwrap();
        assert_eq!(
            (mode(&old), std::fs::read_to_string(&old).unwrap()),
            (0o600, "s3cr3t".into())
        );
        // if missing: made empty; an existing one keeps its text and is narrowed
        let missing = d.path().join("missing");
        write_private_if_missing(&missing).unwrap();
        assert_eq!(
            (mode(&missing), std::fs::metadata(&missing).unwrap().len()),
            (0o600, 0)
        );
        let kept = open("kept", "kept text");
        write_private_if_missing(&kept).unwrap();
        assert_eq!(
            (mode(&kept), std::fs::read_to_string(&kept).unwrap()),
            (0o600, "kept text".into())
        );
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("state.json")), Path::new("."));
        assert_eq!(dir_of(Path::new("a/state.json")), Path::new("a"));
        assert_eq!(dir_of(Path::new("/a/b/state.json")), Path::new("/a/b"));
    }

    #[test]
    fn a_secret_file_holds_up_to_a_mib_and_a_values_file_up_to_64() {
        let exactly = |limit: u64| vec![b'a'; limit as usize];
        assert!(read_capped(&exactly(SECRET_FILE_LIMIT)[..], SECRET_FILE_LIMIT).is_ok());
        let more = exactly(SECRET_FILE_LIMIT + 1);
        let e = read_capped(&more[..], SECRET_FILE_LIMIT).unwrap_err();
        assert_eq!(e.to_string(), "it holds more than 1 MiB");
        assert!(read_capped(&exactly(VALUES_LIMIT)[..], VALUES_LIMIT).is_ok());
        let more = exactly(VALUES_LIMIT + 1);
        let e = read_capped(&more[..], VALUES_LIMIT).unwrap_err();
        assert_eq!(e.to_string(), "it holds more than 64 MiB");
    }

    #[test]
    fn a_read_stops_past_its_limit() {
        assert_eq!(read_capped(&b"abc"[..], 3).unwrap(), "abc");
        let e = read_capped(&b"abcd"[..], 3).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        // an endless file: refused after the limit, not read to the end
        let e = read_file_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "it holds more than 1 MiB");
    }
}
