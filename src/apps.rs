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
    Regex::new(r"(?:docker\.io/)?allegroai/[a-z0-9][a-z0-9._-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")
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

/// The app zips of a directory (not recursive), sorted.
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
        .collect();
    zips.sort();
    Ok(zips)
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    zip::ZipArchive::new(BufReader::with_capacity(1 << 20, f))
        .map_err(|e| format!("{} is not a readable zip archive: {e}", path.display()))
}

/// Convert the image references of every app zip in `dir` natively. Every zip is checked and
/// converted into a temporary file beside it first; only when all succeeded are they renamed over
/// the originals (permissions and timestamps kept), so a failure replaces nothing. Entries
/// without an image reference are copied raw, their compressed bytes untouched.
pub fn convert_native(
    dir: &Path,
    target_repo: &str,
    pattern: &Regex,
) -> Result<Vec<ImageMove>, String> {
    check_target_repo(target_repo)?;
    let zips = app_zips(dir)?;
    // what a conversion killed part-way left behind
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(".convert-") && n.ends_with(".zip.partial") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut moves = BTreeSet::new();
    let mut staged: Vec<(PathBuf, tempfile::NamedTempFile)> = Vec::new();
    for path in &zips {
        if let Some(tmp) = convert_zip(path, target_repo, pattern, &mut moves)? {
            staged.push((path.clone(), tmp));
        }
    }
    for (path, tmp) in staged {
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = tmp.as_file();
        file.set_permissions(meta.permissions())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(modified) = meta.modified() {
            let _ = file.set_times(std::fs::FileTimes::new().set_modified(modified));
        }
        file.sync_all()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        tmp.persist(&path)
            .map_err(|e| format!("cannot replace {}: {}", path.display(), e.error))?;
    }
    Ok(moves.into_iter().collect())
}

/// One zip into a temporary file beside it; `None` when it holds no image reference.
fn convert_zip(
    path: &Path,
    target_repo: &str,
    pattern: &Regex,
    moves: &mut BTreeSet<ImageMove>,
) -> Result<Option<tempfile::NamedTempFile>, String> {
    let name = path.display();
    let mut archive = open_zip(path)?;
    // find the entries to rewrite first: most zips need no change at all
    let mut changed: Vec<Option<String>> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("{name}: entry {i} is unreadable: {e}"))?;
        if entry.enclosed_name().is_none() {
            return Err(format!(
                "{name}: the entry {} points outside the archive",
                entry.name()
            ));
        }
        if entry.is_dir() || !is_text_entry(entry.name()) {
            changed.push(None);
            continue;
        }
        // text entries are rewritten in memory: the cap keeps the peak memory bounded whatever
        // the package holds
        if entry.size() > MAX_TEXT_ENTRY {
            crate::ui::warn(&format!(
                "{name}: `{}` is larger than {} MiB and was not searched for images",
                entry.name(),
                MAX_TEXT_ENTRY >> 20
            ));
            changed.push(None);
            continue;
        }
        let mut text = String::new();
        if entry.read_to_string(&mut text).is_err() {
            changed.push(None);
            continue;
        }
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
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".convert-")
        .suffix(".zip.partial")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::with_capacity(
        1 << 20,
        tmp.reopen().map_err(|e| e.to_string())?,
    ));
    for (i, new_text) in changed.into_iter().enumerate() {
        match new_text {
            None => {
                let raw = archive
                    .by_index_raw(i)
                    .map_err(|e| format!("{name}: entry {i} is unreadable: {e}"))?;
                writer
                    .raw_copy_file(raw)
                    .map_err(|e| format!("{name}: cannot copy entry {i}: {e}"))?;
            }
            Some(text) => {
                let entry = archive
                    .by_index(i)
                    .map_err(|e| format!("{name}: entry {i} is unreadable: {e}"))?;
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
                    .map_err(|e| format!("{name}: cannot write entry {i}: {e}"))?;
            }
        }
    }
    let mut inner = writer
        .finish()
        .map_err(|e| format!("{name}: cannot finish the converted zip: {e}"))?;
    inner.flush().map_err(|e| format!("{name}: {e}"))?;
    Ok(Some(tmp))
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
            "skopeo copy docker://docker.io/{} docker://{}\n",
            m.image, m.target
        ));
    }
    out
}

/// Check that every entry of a zip stays inside `dest` and that nothing would be overwritten
/// with different content; answers the entries to write as `(index, path)`.
pub fn plan_extraction(zip_path: &Path, dest: &Path) -> Result<Vec<(usize, PathBuf)>, String> {
    let mut archive = open_zip(zip_path)?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| format!("{}: entry {i} is unreadable: {e}", zip_path.display()))?;
        let raw = entry.name().to_string();
        let is_dir = entry.is_dir();
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
        if is_dir {
            continue;
        }
        let target = dest.join(&rel);
        if target.exists() {
            let mut existing = Vec::new();
            File::open(&target)
                .and_then(|mut f| f.read_to_end(&mut existing))
                .map_err(|e| format!("{}: {e}", target.display()))?;
            let mut fresh = Vec::new();
            archive
                .by_index(i)
                .and_then(|mut e| e.read_to_end(&mut fresh).map_err(Into::into))
                .map_err(|e| format!("{}: entry `{raw}`: {e}", zip_path.display()))?;
            if existing != fresh {
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

/// Extract a zip safely into `dest` (see [`plan_extraction`]); answers the files written.
pub fn extract(zip_path: &Path, dest: &Path) -> Result<Vec<PathBuf>, String> {
    let plan = plan_extraction(zip_path, dest)?;
    let mut archive = open_zip(zip_path)?;
    for (i, target) in &plan {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut entry = archive
            .by_index(*i)
            .map_err(|e| format!("{}: entry {i}: {e}", zip_path.display()))?;
        let partial = target.with_extension("partial-extract");
        let mut out = File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("{}: {e}", target.display()))?;
        std::fs::rename(&partial, target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(plan.into_iter().map(|(_, p)| p).collect())
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Download `url` into `dest` (streaming, resumable: a `.partial` file from an interrupted run
/// is continued with a Range request), then check the sha256 if given. Progress goes to stderr:
/// a bar on a terminal, milestone lines otherwise.
pub async fn download(url: &str, dest: &Path, sha256: Option<&str>) -> Result<(), String> {
    use futures_util::StreamExt;
    use std::io::IsTerminal;
    let partial = dest.with_extension("zip.partial");
    let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    crate::ui::debug(&format!("GET {url}"));
    let mut req = client.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot download the applications package: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("the download answered HTTP {status}"));
    }
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
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
    if let Some(want) = sha256 {
        let got = sha256_file(&partial)?;
        if !got.eq_ignore_ascii_case(want) {
            let _ = std::fs::remove_file(&partial);
            return Err(format!(
                "the download's sha256 is {got}, not the expected {want}: it was removed; check the URL and the checksum"
            ));
        }
    }
    std::fs::rename(&partial, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
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
