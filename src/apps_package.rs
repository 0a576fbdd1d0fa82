//! The applications package: download (streaming, resumable, checksummed) and safe extraction,
//! image registry conversion (the vendor's script, or natively: image strings rewritten in the
//! text entries of each app zip, every other entry copied raw, each zip replaced atomically),
//! and upload through the vendor's script. Secrets given to the vendor's scripts never appear in
//! their process arguments.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::zip_rewrite;

/// The largest text entry searched for image references.
const MAX_TEXT_ENTRY: u64 = 8 << 20;

/// An image to mirror: where it is now, and where the converted apps expect it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageMove {
    pub image: String,
    pub target: String,
}

/// The ClearML images inside app packages: `allegroai/<name>[:tag][@digest]`, optionally with
/// the `docker.io/` registry in front.
pub fn default_image_pattern() -> Regex {
    Regex::new(r"(?:docker\.io/)?allegroai/[a-z0-9][a-z0-9._-]*(?::[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?)?(?:@sha256:[0-9a-f]{64})?")
        .expect("a valid pattern")
}

/// The image moved to the target repository: the repository part replaced, tag and digest kept.
/// `allegroai/clearml-apps:hpo-1.10.0-1062` into `local_registry/clearml-apps` gives
/// `local_registry/clearml-apps:hpo-1.10.0-1062`.
pub fn retarget(image: &str, target_repo: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let tag = name[last_slash..].split_once(':').map(|(_, t)| t);
    let mut out = target_repo.trim_end_matches('/').to_string();
    if let Some(t) = tag {
        out.push(':');
        out.push_str(t);
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// A target repository: `host[:port]/path` of lowercase names, no scheme, no tag.
pub fn check_target_repo(repo: &str) -> Result<(), String> {
    let ok = !repo.is_empty()
        && !repo.contains("://")
        && !repo.contains('@')
        && !repo.rsplit('/').next().unwrap_or("").contains(':')
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-:".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{repo}` is not a target repository: write registry/path without a scheme or tag, such as registry.local:5000/clearml-apps"
        ))
    }
}

fn is_text_entry(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".conf", ".json", ".yaml", ".yml", ".txt", ".py", ".sh", ".hocon", ".cfg", ".ini", ".md",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// The package `download_apps` keeps in the directory it extracts into: not an app.
pub const PACKAGE: &str = "apps.zip";

/// The app zips of a directory (not recursive), sorted; the package itself is not one.
pub fn app_zips(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        return Err(format!(
            "the apps directory {} does not exist: download and extract the applications package first",
            dir.display()
        ));
    }
    let mut zips: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("zip")))
        .filter(|p| p.file_name().is_none_or(|n| n != PACKAGE))
        .collect();
    zips.sort();
    Ok(zips)
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    zip::ZipArchive::new(BufReader::with_capacity(1 << 20, f))
        .map_err(|e| format!("{} is not a readable zip archive: {e}", path.display()))
}

/// The record of a conversion, kept in the apps directory: for each converted zip, the sha256 of
/// the package's original and of the converted zip and the images it moved. It lets a re-run
/// recognise a converted zip (conversion and extraction are then no-ops) and still answer the
/// complete list of images.
pub const MANIFEST: &str = ".clearml-script-convert.json";
/// The journal of a replacement in progress: every converted zip is staged and synced before it
/// is written; a run that finds it finishes the replacement (see [`recover`]).
pub const JOURNAL: &str = ".clearml-script-convert.journal";

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZipRecord {
    pub original: String,
    pub converted: String,
    pub moves: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub target_repo: String,
    pub zips: std::collections::BTreeMap<String, ZipRecord>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Journal {
    /// (staged file, zip) names in the apps directory
    staged: Vec<(String, String)>,
    manifest: Manifest,
}

/// A test hook for the kill matrix: with `CLEARML_SCRIPT_TEST_STOP_AT=N`, the N-th checkpoint of
/// the conversion prints `test-stop: N LABEL` to stderr and waits there to be killed, so every
/// kill point is reached deterministically.
pub(crate) fn checkpoint(label: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(stop) = std::env::var("CLEARML_SCRIPT_TEST_STOP_AT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if n == stop {
        eprintln!("test-stop: {n} {label}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// The conversion record of `dir`, after finishing a replacement a killed run left.
pub fn manifest(dir: &Path) -> Result<Option<Manifest>, String> {
    recover(dir)?;
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "{} is not a conversion record ({e}): remove it and extract the package again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Finish what a killed conversion left: with a journal, every zip it names is staged complete,
/// so the replacement is rolled forward; without one, staged files are half-written and removed.
/// Either way the zips end all converted or all original.
pub fn recover(dir: &Path) -> Result<(), String> {
    if roll_forward(dir)? {
        crate::ui::info(&format!(
            "convert: finished the replacement an interrupted run left in {}",
            dir.display()
        ));
    }
    Ok(())
}

/// [`recover`]'s work, saying nothing: answers whether a journal was there and rolled forward
/// (the end of every conversion that replaced a zip, as well as a killed run's leftovers).
fn roll_forward(dir: &Path) -> Result<bool, String> {
    let journal = dir.join(JOURNAL);
    let rolled = match std::fs::read(&journal) {
        Ok(bytes) => {
            let j: Journal = serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is damaged ({e}): extract the package again into a new directory",
                    journal.display()
                )
            })?;
            // only names this tool stages: `.convert-NAME.partial` beside `NAME`, both plain
            // file names of this directory (a journal from elsewhere must not rename files
            // outside it)
            for (staged, zip) in &j.staged {
                let plain = |n: &str| {
                    let mut c = Path::new(n).components();
                    matches!((c.next(), c.next()), (Some(Component::Normal(x)), None) if x == n)
                };
                if !plain(zip) || *staged != format!(".convert-{zip}.partial") {
                    return Err(format!(
                        "{} names `{staged}` and `{zip}`, not a zip this tool staged: remove it and extract the package again into a new directory",
                        journal.display()
                    ));
                }
            }
            for (staged, zip) in &j.staged {
                let staged = dir.join(staged);
                if staged.exists() {
                    std::fs::rename(&staged, dir.join(zip))
                        .map_err(|e| format!("cannot replace {}: {e}", dir.join(zip).display()))?;
                }
            }
            crate::fsutil::sync_dir(dir)?;
            let text = serde_json::to_vec_pretty(&j.manifest).map_err(|e| e.to_string())?;
            crate::fsutil::write_atomic(&dir.join(MANIFEST), &text)?;
            std::fs::remove_file(&journal)
                .map_err(|e| format!("cannot remove {}: {e}", journal.display()))?;
            crate::fsutil::sync_dir(dir)?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("cannot read {}: {e}", journal.display())),
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(".convert-") && n.ends_with(".zip.partial") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(rolled)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Refuse two different source images that would become one target.
fn check_collisions<'a>(
    moves: impl IntoIterator<Item = (&'a ImageMove, &'a str)>,
) -> Result<(), String> {
    let mut by_target: std::collections::BTreeMap<&str, (&str, &str)> = Default::default();
    for (m, zip) in moves {
        if let Some((other, other_zip)) = by_target.insert(&m.target, (&m.image, zip))
            && other != m.image
        {
            return Err(format!(
                "`{other}` ({other_zip}) and `{}` ({zip}) would both become `{}` in the target repository: refused, nothing was converted; mirror them through the package's convert_image_registry.py or convert the apps that hold them into separate repositories",
                m.image, m.target
            ));
        }
    }
    Ok(())
}

/// Convert the image references of every app zip in `dir` natively. Every zip is converted into
/// a staged file beside it first; only when all are staged and synced is a journal written and
/// the staged files renamed over the originals (permissions and timestamps kept), so a failure
/// replaces nothing and a kill is finished by the next run. Entries without an image reference
/// are copied raw, their compressed bytes untouched. A zip this conversion already converted to
/// the same repository is recognised and its images are answered again, so the list is always
/// complete.
pub fn convert_native(
    dir: &Path,
    target_repo: &str,
    pattern: &Regex,
) -> Result<Vec<ImageMove>, String> {
    check_target_repo(target_repo)?;
    let zips = app_zips(dir)?;
    let previous = manifest(dir)?.unwrap_or_default();
    let mut record = Manifest {
        target_repo: target_repo.to_string(),
        zips: Default::default(),
    };
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        // the hashes of each staged zip and of its original are taken by a second thread while
        // the next zip is converted; the first sends the writeback of the staged zip on its way
        std::thread::scope(|scope| -> Result<(), String> {
            let (jobs, queue) = std::sync::mpsc::channel::<(&Path, PathBuf, Option<String>)>();
            let hasher = scope.spawn(move || {
                queue
                    .into_iter()
                    .map(|(zip, stage, original)| {
                        let staged =
                            File::open(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;
                        start_writeback(&staged);
                        let original = match original {
                            Some(sha) => sha,
                            None => sha256_file(zip)?,
                        };
                        let converted = sha256_reader(&staged)
                            .map_err(|e| format!("{}: {e}", stage.display()))?;
                        Ok((original, converted))
                    })
                    .collect::<Result<Vec<_>, String>>()
            });
            let mut pending = Vec::new();
            for path in &zips {
                let name = file_name(path);
                // a zip this conversion may have written is recognised by its hash first
                let sha = match previous.zips.get(&name) {
                    Some(r) => {
                        let sha = sha256_file(path)?;
                        if r.converted == sha {
                            if previous.target_repo != target_repo {
                                return Err(format!(
                                    "{} was converted to {} already: extract the package again to convert it to {target_repo}",
                                    path.display(),
                                    previous.target_repo
                                ));
                            }
                            record.zips.insert(name, r.clone());
                            continue;
                        }
                        Some(sha)
                    }
                    None => None,
                };
                let mut moves = BTreeSet::new();
                let stage = dir.join(format!(".convert-{name}.partial"));
                if convert_zip(path, &stage, target_repo, pattern, &mut moves)? {
                    staged.push((stage.clone(), path.clone()));
                    checkpoint("staged");
                    pending.push((name, moves));
                    if jobs.send((path.as_path(), stage, sha)).is_err() {
                        break; // the hashing thread stopped on an error: its join answers it
                    }
                }
            }
            drop(jobs);
            let hashes = hasher
                .join()
                .map_err(|_| "the hashing thread failed".to_string())??;
            for ((name, moves), (original, converted)) in pending.into_iter().zip(hashes) {
                record.zips.insert(
                    name,
                    ZipRecord {
                        original,
                        converted,
                        moves: moves.into_iter().map(|m| (m.image, m.target)).collect(),
                    },
                );
            }
            Ok(())
        })?;
        let all: Vec<(ImageMove, String)> = record
            .zips
            .iter()
            .flat_map(|(zip, r)| {
                r.moves.iter().map(move |(image, target)| {
                    (
                        ImageMove {
                            image: image.clone(),
                            target: target.clone(),
                        },
                        zip.clone(),
                    )
                })
            })
            .collect();
        check_collisions(all.iter().map(|(m, z)| (m, z.as_str())))?;
        // every staged zip on disk before the journal names it (their writeback started as each
        // was staged, so this mostly waits for the last one)
        for (stage, _) in &staged {
            File::open(stage)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", stage.display()))?;
        }
        Ok(all.into_iter().map(|(m, _)| m).collect::<BTreeSet<_>>())
    })();
    let moves = match result {
        Ok(m) => m,
        Err(e) => {
            for (stage, _) in &staged {
                let _ = std::fs::remove_file(stage);
            }
            recover(dir)?;
            return Err(e);
        }
    };
    if !staged.is_empty() || previous != record {
        crate::fsutil::sync_dir(dir)?;
        let journal = Journal {
            staged: staged
                .iter()
                .map(|(s, z)| (file_name(s), file_name(z)))
                .collect(),
            manifest: record,
        };
        crate::fsutil::write_atomic(
            &dir.join(JOURNAL),
            &serde_json::to_vec_pretty(&journal).map_err(|e| e.to_string())?,
        )?;
        checkpoint("journal written");
        for (stage, zip) in &staged {
            std::fs::rename(stage, zip)
                .map_err(|e| format!("cannot replace {}: {e}", zip.display()))?;
            checkpoint("zip replaced");
        }
        // this run's own journal: finished here, not an interrupted run's
        roll_forward(dir)?;
        checkpoint("journal done");
    }
    Ok(moves.into_iter().collect())
}

/// Run the package's own conversion and keep the same record as the native one: a zip the script
/// rewrote is recognised by the next extraction, and the images of zips converted by an earlier
/// run are answered again, so the list is always complete.
pub fn convert_with_vendor(
    dir: &Path,
    target_repo: &str,
    run: impl FnOnce() -> Result<Vec<ImageMove>, String>,
) -> Result<Vec<ImageMove>, String> {
    let previous = manifest(dir)?.unwrap_or_default();
    let hashes = |zips: &[PathBuf]| -> Result<std::collections::BTreeMap<String, String>, String> {
        zips.iter()
            .map(|p| Ok((file_name(p), sha256_file(p)?)))
            .collect()
    };
    let before = hashes(&app_zips(dir)?)?;
    let fresh = run()?;
    let after = hashes(&app_zips(dir)?)?;
    let pairs: Vec<(String, String)> = fresh
        .iter()
        .map(|m| (m.image.clone(), m.target.clone()))
        .collect();
    let mut record = Manifest {
        target_repo: target_repo.to_string(),
        zips: Default::default(),
    };
    for (name, sha) in &after {
        match previous.zips.get(name) {
            Some(r) if &r.converted == sha && previous.target_repo == target_repo => {
                record.zips.insert(name.clone(), r.clone());
            }
            _ if before.get(name) != Some(sha) => {
                record.zips.insert(
                    name.clone(),
                    ZipRecord {
                        original: before.get(name).cloned().unwrap_or_default(),
                        converted: sha.clone(),
                        moves: pairs.clone(),
                    },
                );
            }
            _ => {}
        }
    }
    if record != previous {
        crate::fsutil::write_atomic(
            &dir.join(MANIFEST),
            &serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?,
        )?;
    }
    let mut all: BTreeSet<ImageMove> = fresh.into_iter().collect();
    for r in record.zips.values() {
        all.extend(r.moves.iter().map(|(image, target)| ImageMove {
            image: image.clone(),
            target: target.clone(),
        }));
    }
    Ok(all.into_iter().collect())
}

/// An entry's reader that fails once it inflates past its declared size, so the sizes checked
/// before reading are the sizes read: a zip bomb that lies in its headers stops there.
struct Declared<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> Read for Declared<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "{} inflates past the size its header declares: the zip is damaged or malicious; nothing was written",
                self.what
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn declared<R: Read>(inner: R, size: u64, zip: &Path, entry: &str) -> Declared<R> {
    Declared {
        inner,
        left: size,
        what: format!("{}: the entry `{entry}`", zip.display()),
    }
}

fn refuse_symlink(zip: &Path, entry: &zip::read::ZipFile<'_, impl Read>) -> Result<(), String> {
    if entry.is_symlink() {
        return Err(format!(
            "{}: the entry `{}` is a symbolic link; application packages hold regular files only: refused, nothing was written",
            zip.display(),
            entry.name()
        ));
    }
    Ok(())
}

/// Every entry of `archive` into `out` through the zip crate: unchanged ones with
/// `raw_copy_file` (their compressed bytes read and written back), the `changed` ones with their
/// new text, compressed with their own method. The path for zips [`zip_rewrite`] does not handle.
fn copy_through_zip_crate(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    changed: &[Option<String>],
    out: &File,
    mut each: impl FnMut(),
) -> Result<(), String> {
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 20, out));
    for (i, new_text) in changed.iter().enumerate() {
        match new_text {
            None => {
                let raw = archive
                    .by_index_raw(i)
                    .map_err(|e| format!("entry {i} is unreadable: {e}"))?;
                writer
                    .raw_copy_file(raw)
                    .map_err(|e| format!("cannot copy entry {i}: {e}"))?;
            }
            Some(text) => {
                let entry = archive
                    .by_index(i)
                    .map_err(|e| format!("entry {i} is unreadable: {e}"))?;
                let mut options = zip::write::SimpleFileOptions::default()
                    .compression_method(entry.compression());
                if let Some(t) = entry.last_modified() {
                    options = options.last_modified_time(t);
                }
                if let Some(mode) = entry.unix_mode() {
                    options = options.unix_permissions(mode);
                }
                let entry_name = entry.name().to_string();
                drop(entry);
                writer
                    .start_file(entry_name, options)
                    .and_then(|_| writer.write_all(text.as_bytes()).map_err(Into::into))
                    .map_err(|e| format!("cannot write entry {i}: {e}"))?;
            }
        }
        each();
    }
    writer
        .finish()
        .map_err(|e| format!("cannot finish the converted zip: {e}"))?
        .into_inner()
        .map_err(|e| e.error().to_string())?;
    Ok(())
}

/// Start writing a staged zip to disk without waiting for it (the hashing thread calls it, so the
/// conversion does not wait while the request is queued): the sync before the journal then finds
/// most of it written, and the disk works while the next zip is converted.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the call only schedules writeback of its pages
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// One zip into `stage` beside it; `false` (and nothing written) when it holds no image
/// reference. The staged file is not synced here: [`convert_native`] syncs every staged zip
/// before it writes the journal.
fn convert_zip(
    path: &Path,
    stage: &Path,
    target_repo: &str,
    pattern: &Regex,
    moves: &mut BTreeSet<ImageMove>,
) -> Result<bool, String> {
    let name = path.display();
    let mut archive = open_zip(path)?;
    // find the entries to rewrite first: most zips need no change at all
    let mut changed: Vec<Option<String>> = Vec::with_capacity(archive.len());
    let mut header_starts = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        // the raw entry first: an entry that is only copied (encrypted, or compressed with a
        // method this build cannot inflate) is never opened for reading
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| format!("{name}: entry {i} is unreadable: {e}"))?;
        header_starts.push(entry.header_start());
        if entry.enclosed_name().is_none() {
            return Err(format!(
                "{name}: the entry {} points outside the archive",
                entry.name()
            ));
        }
        refuse_symlink(path, &entry)?;
        if entry.is_dir() || !is_text_entry(entry.name()) {
            changed.push(None);
            continue;
        }
        // text entries are rewritten in memory: the cap keeps the peak memory bounded whatever
        // the package holds
        let size = entry.size();
        if size > MAX_TEXT_ENTRY {
            crate::ui::warn(&format!(
                "{name}: `{}` is larger than {} MiB and was not searched for images",
                entry.name(),
                MAX_TEXT_ENTRY >> 20
            ));
            changed.push(None);
            continue;
        }
        let entry_name = entry.name().to_string();
        drop(entry);
        let entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                crate::ui::warn(&format!(
                    "{name}: `{entry_name}` cannot be read ({e}) and was not searched for images; it is copied as it is"
                ));
                changed.push(None);
                continue;
            }
        };
        let mut bytes = Vec::new();
        declared(entry, size, path, &entry_name)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        let Ok(text) = String::from_utf8(bytes) else {
            changed.push(None);
            continue;
        };
        let mut hit = false;
        let new = pattern.replace_all(&text, |c: &regex::Captures| {
            let image = c[0].to_string();
            let target = retarget(&image, target_repo);
            hit = true;
            moves.insert(ImageMove {
                image: image.trim_start_matches("docker.io/").to_string(),
                target: target.clone(),
            });
            target
        });
        changed.push(hit.then(|| new.into_owned()));
    }
    if changed.iter().all(Option::is_none) {
        return Ok(false);
    }
    let mut write = || -> Result<(), String> {
        let file =
            File::create(stage).map_err(|e| format!("cannot create {}: {e}", stage.display()))?;
        let src = File::open(path).map_err(|e| format!("cannot open {name}: {e}"))?;
        // a plain zip is rewritten by our own writer, its unchanged entries copied in the kernel;
        // Zip64, encrypted or otherwise unusual zips go through the zip crate (every entry read
        // and written back by this process)
        let plain = zip_rewrite::Layout::read(&src, &header_starts).and_then(|mut layout| {
            for (i, text) in changed.iter().enumerate() {
                if let Some(text) = text {
                    layout.replace(&src, i, text.as_bytes())?;
                }
            }
            layout.place()?;
            Ok(layout)
        });
        match plain {
            Ok(layout) => layout
                .write(&src, &file, || checkpoint("entry staged"))
                .map_err(|e| format!("{name}: cannot write the converted zip: {e}"))?,
            Err(why) => {
                crate::ui::debug(&format!(
                    "convert: {name}: {why}: copied through the zip crate"
                ));
                copy_through_zip_crate(&mut archive, &changed, &file, || {
                    checkpoint("entry staged")
                })
                .map_err(|e| format!("{name}: {e}"))?;
            }
        }
        let meta = std::fs::metadata(path).map_err(|e| format!("{name}: {e}"))?;
        file.set_permissions(meta.permissions())
            .map_err(|e| format!("{name}: {e}"))?;
        if let Ok(modified) = meta.modified() {
            let _ = file.set_times(std::fs::FileTimes::new().set_modified(modified));
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(stage);
    })?;
    Ok(true)
}

/// The vendor's conversion output: `make sure IMAGE was added to REPO`, one line per image.
pub fn parse_vendor_output(text: &str) -> Vec<ImageMove> {
    let re = Regex::new(r"make sure (\S+) was added to (\S+)").expect("a valid pattern");
    let mut out: Vec<ImageMove> = text
        .lines()
        .filter_map(|l| re.captures(l))
        .map(|c| ImageMove {
            image: c[1].to_string(),
            target: retarget(&c[1], &c[2]),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The operator's mirror commands: one `skopeo copy` per image.
pub fn mirror_commands(moves: &[ImageMove]) -> String {
    let mut out = String::from(
        "#!/bin/sh\n# Copy the ClearML application images into the local registry.\nset -e\n",
    );
    for m in moves {
        out.push_str(&format!(
            "skopeo copy {} {}\n",
            crate::helm::shell_word(&format!("docker://docker.io/{}", m.image)),
            crate::helm::shell_word(&format!("docker://{}", m.target))
        ));
    }
    out
}

/// An entry larger than this must not inflate more than [`MAX_RATIO`] times its compressed size.
const RATIO_FLOOR: u64 = 1 << 20;
/// The largest expansion of an entry over [`RATIO_FLOOR`]: packages of apps (zips, images,
/// weights) barely compress; a zip bomb inflates a thousandfold.
const MAX_RATIO: u64 = 200;
/// The most a package may extract to.
const MAX_EXTRACTED: u64 = 64 << 30;

/// An entry of `size` bytes stored in `packed` that expands like a zip bomb.
fn inflates_too_much(size: u64, packed: u64) -> bool {
    size > RATIO_FLOOR && size / packed.max(1) > MAX_RATIO
}

/// A package whose entries so far add up to `total` bytes, more than any may extract to.
fn past_extraction_limit(total: u64) -> bool {
    total > MAX_EXTRACTED
}

fn sha256_reader(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Why an entry may not be extracted under its name: the files this tool keeps beside the
/// extracted ones (its conversion record and journal, staged zips, half-extracted files, the
/// package itself and its partial download) are never taken from a package.
fn reserved(rel: &Path, zip_path: &Path, dest: &Path) -> Option<&'static str> {
    let name = rel.file_name()?.to_string_lossy();
    let top = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
        == 1;
    let package = zip_path
        .strip_prefix(dest)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    if name.ends_with(PARTIAL_EXTRACT) {
        return Some("taken for a half-extracted file");
    }
    if !top {
        return None;
    }
    if name == MANIFEST || name == JOURNAL {
        Some("this tool's conversion record")
    } else if name.starts_with(".convert-") && name.ends_with(".partial") {
        Some("taken for a zip the conversion stages")
    } else if package.is_some_and(|p| {
        name == p || name == format!("{p}.partial") || name == format!("{p}.partial.validator")
    }) {
        Some("the package itself")
    } else {
        None
    }
}

/// The suffix of a file being extracted, renamed to its place when whole.
const PARTIAL_EXTRACT: &str = ".partial-extract";

/// Check that every entry of a zip stays inside `dest`, is a regular file or directory, inflates
/// within the size and ratio limits, and that nothing would be overwritten with different content
/// (a zip the conversion rewrote from this package's entry counts as the same); answers the
/// entries to write as `(index, path)`.
pub fn plan_extraction(zip_path: &Path, dest: &Path) -> Result<Vec<(usize, PathBuf)>, String> {
    let mut archive = open_zip(zip_path)?;
    let converted = if dest.is_dir() {
        manifest(dest)?.unwrap_or_default()
    } else {
        Manifest::default()
    };
    let mut out = Vec::new();
    let mut total: u64 = 0;
    // every path the package writes, as a file or as a directory, by the entry that names it
    // first: two entries naming one file (`a.txt`, `./a.txt`) or a file where another entry
    // needs a directory are refused before anything is written
    let mut files: std::collections::HashMap<PathBuf, String> = Default::default();
    let mut dirs: std::collections::HashMap<PathBuf, String> = Default::default();
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| format!("{}: entry {i} is unreadable: {e}", zip_path.display()))?;
        let raw = entry.name().to_string();
        let is_dir = entry.is_dir();
        refuse_symlink(zip_path, &entry)?;
        let (size, packed) = (entry.size(), entry.compressed_size());
        let rel = entry.enclosed_name().filter(|p| {
            p.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        });
        drop(entry);
        let Some(rel) = rel else {
            return Err(format!(
                "{}: the entry `{raw}` would be written outside {}; nothing was extracted",
                zip_path.display(),
                dest.display()
            ));
        };
        let norm: PathBuf = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let clash = |other: &str, at: &Path| {
            format!(
                "{}: the entries `{other}` and `{raw}` both need {}: refused, nothing was extracted; the package is damaged",
                zip_path.display(),
                dest.join(at).display()
            )
        };
        if let Some(other) = files.get(&norm) {
            return Err(clash(other, &norm));
        }
        if !is_dir && let Some(other) = dirs.get(&norm) {
            return Err(clash(other, &norm));
        }
        for parent in norm
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
        {
            if let Some(other) = files.get(parent) {
                return Err(clash(other, parent));
            }
            dirs.entry(parent.to_path_buf())
                .or_insert_with(|| raw.clone());
        }
        if is_dir {
            dirs.entry(norm.clone()).or_insert_with(|| raw.clone());
        } else {
            files.insert(norm.clone(), raw.clone());
        }
        if let Some(why) = reserved(&rel, zip_path, dest) {
            return Err(format!(
                "{}: the entry `{raw}` would be {why}: refused, nothing was extracted",
                zip_path.display()
            ));
        }
        if is_dir {
            continue;
        }
        if inflates_too_much(size, packed) {
            return Err(format!(
                "{}: the entry `{raw}` inflates {size} bytes from {packed} (more than {MAX_RATIO} times): refused as a zip bomb; nothing was extracted",
                zip_path.display()
            ));
        }
        total = total.saturating_add(size);
        if past_extraction_limit(total) {
            return Err(format!(
                "{}: the package would extract to more than {} GiB (at `{raw}`): refused; nothing was extracted",
                zip_path.display(),
                MAX_EXTRACTED >> 30
            ));
        }
        let target = dest.join(&rel);
        if target.exists() {
            let existing = sha256_file(&target)?;
            let fresh = archive
                .by_index(i)
                .map_err(std::io::Error::other)
                .and_then(|e| sha256_reader(declared(e, size, zip_path, &raw)))
                .map_err(|e| format!("{}: entry `{raw}`: {e}", zip_path.display()))?;
            let was_converted = converted
                .zips
                .get(&raw)
                .is_some_and(|r| r.original == fresh && r.converted == existing);
            if existing != fresh && !was_converted {
                return Err(format!(
                    "{} exists and differs from the package's `{raw}`: move it away to extract the package again; nothing was extracted",
                    target.display()
                ));
            }
            continue;
        }
        out.push((i, target));
    }
    Ok(out)
}

/// Extract a zip safely into `dest` (see [`plan_extraction`]); answers the files written. Each
/// file is written beside its place and renamed there, so a re-run finds whole files only.
pub fn extract(zip_path: &Path, dest: &Path) -> Result<Vec<PathBuf>, String> {
    let plan = plan_extraction(zip_path, dest)?;
    let mut archive = open_zip(zip_path)?;
    for (i, target) in &plan {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let entry = archive
            .by_index(*i)
            .map_err(|e| format!("{}: entry {i}: {e}", zip_path.display()))?;
        let (size, raw) = (entry.size(), entry.name().to_string());
        let partial = target.with_file_name(format!(
            ".{}{PARTIAL_EXTRACT}",
            target.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mut out = File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
        if let Err(e) = std::io::copy(&mut declared(entry, size, zip_path, &raw), &mut out) {
            let _ = std::fs::remove_file(&partial);
            return Err(format!("{}: {e}", target.display()));
        }
        std::fs::rename(&partial, target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(plan.into_iter().map(|(_, p)| p).collect())
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    // read straight into the hashing buffer (a BufReader would copy every byte once more)
    File::open(path)
        .and_then(sha256_reader)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Download `url` into `dest` (streaming, resumable: a `.partial` file from an interrupted run
/// is continued with a Range request), then check the sha256 if given. Progress goes to stderr:
/// a bar on a terminal, milestone lines otherwise.
pub async fn download(url: &str, dest: &Path, sha256: Option<&str>) -> Result<(), String> {
    use futures_util::StreamExt;
    use std::io::IsTerminal;
    // a package on this machine (an air-gapped bundle's): copied, then checked the same way
    if let Some(local) = url.strip_prefix("file://") {
        let partial = dest.with_extension("zip.partial");
        std::fs::copy(local, &partial).map_err(|e| format!("{local}: {e}"))?;
        return finish_download(&partial, dest, sha256);
    }
    let partial = dest.with_extension("zip.partial");
    // the first answer's validator (ETag, else Last-Modified), kept beside the partial file: a
    // resume sends it back with If-Range, so a package changed on the server since is sent
    // whole (200) rather than its tail glued to the old head
    let validator_file = dest.with_extension("zip.partial.validator");
    let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    crate::ui::debug(&format!("GET {url}"));
    let resp = loop {
        let mut req = client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
            if let Ok(v) = std::fs::read_to_string(&validator_file) {
                req = req.header(reqwest::header::IF_RANGE, v.trim());
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot download the applications package: {e}"))?;
        let range_total = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .map(|v| {
                let (range, total) = v.split_once('/').unwrap_or((v, "*"));
                let start = range
                    .split_once('-')
                    .and_then(|(s, _)| s.parse::<u64>().ok());
                (start, total.parse::<u64>().ok())
            });
        match resp.status() {
            // the partial file is the whole package (a run stopped after its last byte)
            reqwest::StatusCode::RANGE_NOT_SATISFIABLE
                if have > 0 && range_total.is_some_and(|(_, t)| t == Some(have)) =>
            {
                let _ = std::fs::remove_file(&validator_file);
                return finish_download(&partial, dest, sha256);
            }
            // a partial file the server cannot continue, or a range not where this file ends:
            // start over
            reqwest::StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {}
            reqwest::StatusCode::PARTIAL_CONTENT
                if range_total.is_none_or(|(start, _)| start != Some(have)) => {}
            _ => break resp,
        }
        crate::ui::info("download: the server cannot continue the partial download: starting over");
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(&validator_file);
        have = 0;
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("the download answered HTTP {status}"));
    }
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
    if !resumed {
        let validator = [reqwest::header::ETAG, reqwest::header::LAST_MODIFIED]
            .iter()
            .find_map(|h| {
                let v = resp.headers().get(h)?.to_str().ok()?;
                (!v.starts_with("W/")).then_some(v)
            });
        match validator {
            Some(v) => crate::fsutil::write_atomic(&validator_file, v.as_bytes())?,
            None => {
                let _ = std::fs::remove_file(&validator_file);
            }
        }
    }
    let total = resp
        .content_length()
        .map(|l| l + if resumed { have } else { 0 });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut done = if resumed { have } else { 0 };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total.unwrap_or(0));
        b.set_style(
            indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_position(done);
        b
    });
    let mut next_milestone = 10;
    if resumed {
        crate::ui::info(&format!("download: resuming at {done} bytes"));
    }
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| format!("the download broke off: {e}; run again to resume"))?;
        file.write_all(&chunk)
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        done += chunk.len() as u64;
        match (&bar, total) {
            (Some(b), _) => b.set_position(done),
            (None, Some(t)) if t > 0 && done * 100 / t >= next_milestone => {
                crate::ui::info(&format!(
                    "download: {}% ({done} of {t} bytes)",
                    done * 100 / t
                ));
                next_milestone = (done * 100 / t / 10 + 1) * 10;
            }
            _ => {}
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    file.sync_all().map_err(|e| e.to_string())?;
    drop(file);
    finish_download(&partial, dest, sha256)
}

/// A downloaded `.partial` file checked against its sha256 (removed if it differs), then
/// renamed to `dest`.
fn finish_download(partial: &Path, dest: &Path, sha256: Option<&str>) -> Result<(), String> {
    if let Some(want) = sha256 {
        let got = sha256_file(partial)?;
        if !got.eq_ignore_ascii_case(want) {
            let _ = std::fs::remove_file(partial);
            return Err(format!(
                "the download's sha256 is {got}, not the expected {want}: it was removed; check the URL and the checksum"
            ));
        }
    }
    std::fs::rename(partial, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let _ = std::fs::remove_file(dest.with_extension("zip.partial.validator"));
    Ok(())
}

/// Run one of the vendor's Python scripts. `args` may hold `{secret:N}` placeholders: the real
/// values are handed to the script on stdin and put in its `sys.argv` inside Python, so they
/// never appear in any process's arguments. Answers the script's output.
pub fn run_vendor(
    python: &Path,
    script: &Path,
    args: &[String],
    secrets: &[&str],
    cwd: &Path,
) -> Result<String, String> {
    const SHIM: &str = "import json, runpy, sys\n\
        vals = json.loads(sys.stdin.readline())\n\
        script = sys.argv[1]\n\
        args = sys.argv[2:]\n\
        for i, v in enumerate(vals):\n    args = [a.replace('{secret:%d}' % i, v) for a in args]\n\
        sys.argv = [script] + args\n\
        sys.path.insert(0, __import__('os').path.dirname(script))\n\
        runpy.run_path(script, run_name='__main__')\n";
    crate::ui::debug(&format!(
        "$ {} {} {} (secrets on stdin)",
        python.display(),
        script.display(),
        args.iter()
            .map(|a| crate::helm::shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let mut child = crate::process::command(python)
        .arg("-c")
        .arg(SHIM)
        .arg(script)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let payload = serde_json::to_string(secrets).map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(format!("{payload}\n").as_bytes())
        .map_err(|e| format!("cannot pass the credentials to {}: {e}", script.display()))?;
    let out = crate::process::wait(child, &script.display().to_string(), None)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{} failed ({}): {}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", stdout.trim())
            }
        ))
    }
}

/// python3 on PATH.
pub fn python() -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "python3 was not found: the vendor's application scripts need Python 3; install it (apt-get install python3) and run again".to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_conversion_is_recorded_for_the_zips_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.zip"), dir.path().join("b.zip"));
        std::fs::write(&a, b"before").unwrap();
        std::fs::write(&b, b"left alone").unwrap();
        let moved = ImageMove {
            image: "allegroai/a:1".into(),
            target: "reg.local/a:1".into(),
        };
        let got = convert_with_vendor(dir.path(), "reg.local", || {
            std::fs::write(&a, b"after").unwrap();
            Ok(vec![moved.clone()])
        })
        .unwrap();
        assert_eq!(got, std::slice::from_ref(&moved));
        let record = manifest(dir.path()).unwrap().expect("a record");
        assert_eq!(record.target_repo, "reg.local");
        let names: Vec<&String> = record.zips.keys().collect();
        assert_eq!(names, ["a.zip"], "only the zip the script rewrote");
        let a_rec = &record.zips["a.zip"];
        assert_eq!(a_rec.original, sha256_reader(&b"before"[..]).unwrap());
        assert_eq!(a_rec.converted, sha256_file(&a).unwrap());
        assert_eq!(a_rec.moves, [(moved.image.clone(), moved.target.clone())]);
        // a second run that changes nothing keeps the record and answers the moves again
        let again = convert_with_vendor(dir.path(), "reg.local", || Ok(vec![])).unwrap();
        assert_eq!(again, [moved]);
        assert_eq!(manifest(dir.path()).unwrap().unwrap(), record);
    }

    /// The record follows the directory: a converted zip removed since is no longer recorded,
    /// even when nothing else is converted (only the record changes).
    #[test]
    fn the_record_drops_a_zip_that_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.zip", "b.zip"] {
            let mut z = zip::ZipWriter::new(File::create(dir.path().join(name)).unwrap());
            z.start_file("app.yaml", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(format!("image: allegroai/clearml-apps:{name}-1\n").as_bytes())
                .unwrap();
            z.finish().unwrap();
        }
        let p = default_image_pattern();
        let moved = convert_native(dir.path(), "reg.local/apps", &p).unwrap();
        assert_eq!(moved.len(), 2, "{moved:?}");
        std::fs::remove_file(dir.path().join("b.zip")).unwrap();
        let moved = convert_native(dir.path(), "reg.local/apps", &p).unwrap();
        assert_eq!(moved.len(), 1, "{moved:?}");
        let record = manifest(dir.path()).unwrap().unwrap();
        let names: Vec<&String> = record.zips.keys().collect();
        assert_eq!(names, ["a.zip"]);
    }

    /// A file already in place is kept when it is the package's entry, or the conversion the
    /// record says this tool made of it (both hashes must match); any other file is refused.
    #[test]
    fn an_existing_file_is_kept_only_as_the_entry_or_its_recorded_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("package.zip");
        {
            let mut z = zip::ZipWriter::new(File::create(&package).unwrap());
            z.start_file("a.zip", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"as shipped").unwrap();
            z.finish().unwrap();
        }
        let dest = dir.path().join("apps");
        std::fs::create_dir_all(&dest).unwrap();
        let record = Manifest {
            target_repo: "reg.local".into(),
            zips: [(
                "a.zip".to_string(),
                ZipRecord {
                    original: sha256_reader(&b"as shipped"[..]).unwrap(),
                    converted: sha256_reader(&b"as converted"[..]).unwrap(),
                    moves: Vec::new(),
                },
            )]
            .into(),
        };
        std::fs::write(dest.join(MANIFEST), serde_json::to_vec(&record).unwrap()).unwrap();
        for (content, kept) in [
            (&b"as shipped"[..], true),
            (&b"as converted"[..], true),
            (&b"edited by hand"[..], false),
        ] {
            std::fs::write(dest.join("a.zip"), content).unwrap();
            match plan_extraction(&package, &dest) {
                Ok(plan) => assert!(kept && plan.is_empty(), "{content:?}: {plan:?}"),
                Err(e) => assert!(
                    !kept && e.contains("exists and differs"),
                    "{content:?}: {e}"
                ),
            }
        }
    }

    #[test]
    fn the_size_limits_hold_to_the_byte() {
        // a zip bomb: over RATIO_FLOOR and more than MAX_RATIO times its packed size
        assert!(!inflates_too_much(RATIO_FLOOR, 1));
        assert!(inflates_too_much(RATIO_FLOOR + 1, 1));
        assert!(!inflates_too_much((MAX_RATIO * 10) << 20, 10 << 20));
        assert!(inflates_too_much(((MAX_RATIO + 1) * 10) << 20, 10 << 20));
        // a stored entry claiming no packed bytes is judged as one byte
        assert!(inflates_too_much(RATIO_FLOOR + 1, 0));
        // the whole package: at most MAX_EXTRACTED
        assert!(!past_extraction_limit(MAX_EXTRACTED));
        assert!(past_extraction_limit(MAX_EXTRACTED + 1));
    }

    #[test]
    fn retargeting_keeps_tags_and_digests() {
        assert_eq!(
            retarget(
                "allegroai/clearml-apps:hpo-1.10.0-1062",
                "local_registry/clearml-apps"
            ),
            "local_registry/clearml-apps:hpo-1.10.0-1062"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            retarget(&format!("allegroai/x@{d}"), "r.local:5000/apps"),
            format!("r.local:5000/apps@{d}")
        );
        assert!(check_target_repo("registry.local:5000/clearml-apps").is_ok());
        assert!(check_target_repo("https://x/y").is_err());
        assert!(check_target_repo("x/y:tag").is_err());
    }

    #[test]
    fn vendor_lines_parse() {
        let moves = parse_vendor_output(
            "converting...\nmake sure allegroai/clearml-apps:hpo-1.10.0-1062 was added to local_registry/clearml-apps\n",
        );
        assert_eq!(
            moves,
            vec![ImageMove {
                image: "allegroai/clearml-apps:hpo-1.10.0-1062".into(),
                target: "local_registry/clearml-apps:hpo-1.10.0-1062".into()
            }]
        );
    }

    /// Prose around an image in a text entry (a README's "uses allegroai/x:1.0.") does not
    /// become part of its tag: a tag that ends in `.` or `-` would be mirrored and not exist.
    #[test]
    fn a_sentence_ending_after_an_image_is_not_part_of_its_tag() {
        let p = default_image_pattern();
        let text = "The app uses allegroai/clearml-apps:hpo-1.10.0-1062. See allegroai/x:v1-, and allegroai/y:1.";
        let found: Vec<&str> = p.find_iter(text).map(|m| m.as_str()).collect();
        assert_eq!(
            found,
            [
                "allegroai/clearml-apps:hpo-1.10.0-1062",
                "allegroai/x:v1",
                "allegroai/y:1"
            ]
        );
    }

    #[test]
    fn the_pattern_finds_clearml_images() {
        let p = default_image_pattern();
        let text = r#"image: "allegroai/clearml-apps:hpo-1.10.0-1062", other: "nginx:1", d: docker.io/allegroai/x"#;
        let found: Vec<&str> = p.find_iter(text).map(|m| m.as_str()).collect();
        assert_eq!(
            found,
            [
                "allegroai/clearml-apps:hpo-1.10.0-1062",
                "docker.io/allegroai/x"
            ]
        );
    }
}
