//! The applications path at its edges: re-runs converge after a failure past the conversion, a
//! conversion killed at every checkpoint leaves the zips all converted or all original (finished
//! by the next run), and zip bombs, symbolic links and colliding images are refused.

use std::io::{BufRead, Write};
use std::path::Path;

use clearml_script::sandbox::clearml::DEFAULT_COMPANY;

use crate::apps::{IMAGE, app_zip, package_with, read_entry, vendor_log};
use crate::common::{Sim, Test, serve_dir};

const SERVING: &str = "allegroai/clearml-serving:serving-1.3.0";

#[test]
fn a_failed_upload_after_a_native_conversion_converges_on_re_run() {
    let sim = Sim::start();
    sim.sandbox
        .clearml
        .state
        .add_fixed_user("admin", "apps-pass-123", DEFAULT_COMPANY, true);
    let t = Test::new();
    // no conversion script in the package: converted natively
    let pkg = package_with(t.dir(), &["upload_apps.py"]);
    let url = format!("{}/clearml-apps.zip", serve_dir(pkg.parent().unwrap()));
    let log = t.dir().join("vendor.log").display().to_string();
    let api = sim.sandbox.clearml.url();
    let site = |password: &str| {
        format!(
            "base_domain: clearml.example.com\ndockerhub_token: unused-token\napps:\n  url: {url}\n  dir: apps\n  registry: local_registry/clearml-apps\n  images_file: images.txt\n  mirror_commands: mirror.sh\n  user: admin\n  password: {password}\n  api_url: {api}\n"
        )
    };
    let run = |password: &str| {
        std::fs::write(t.dir().join("site.yaml"), site(password)).unwrap();
        Test::new()
            .arg("install-apps.rhai")
            .args(["--values", &t.dir().join("site.yaml").display().to_string()])
            .env("VENDOR_LOG", &log)
            .command()
            .current_dir(t.dir())
            .output()
            .unwrap()
    };
    let images = format!("{IMAGE} local_registry/clearml-apps:hpo-1.10.0-1062\n");
    // the upload is refused (401) after the conversion
    let out = run("wrong-pass-1");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("users.get_current_user: 401"), "{err}");
    assert_eq!(
        std::fs::read_to_string(t.dir().join("images.txt")).unwrap(),
        images
    );
    // every re-run gets past the extraction and the conversion, with the complete list
    for _ in 0..2 {
        let out = run("apps-pass-123");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(err.contains("extracted 0 new files"), "{err}");
        assert!(err.contains("upload: uploaded hpo.zip"), "{err}");
        assert_eq!(
            std::fs::read_to_string(t.dir().join("images.txt")).unwrap(),
            images
        );
        assert!(
            std::fs::read_to_string(t.dir().join("mirror.sh"))
                .unwrap()
                .contains(&format!("skopeo copy docker://docker.io/{IMAGE} docker://local_registry/clearml-apps:hpo-1.10.0-1062"))
        );
        let conf = read_entry(&t.dir().join("apps/hpo.zip"), "hpo.app.conf");
        assert!(conf.contains("local_registry/clearml-apps:hpo-1.10.0-1062"));
    }
    assert_eq!(
        vendor_log(t.dir()).len(),
        2,
        "the script ran on the two re-runs"
    );
}

/// Three app zips: two with images (one of them with two), one without.
fn apps_set(apps: &Path) {
    std::fs::create_dir_all(apps).unwrap();
    app_zip(&apps.join("a-hpo.zip"), "hpo", IMAGE);
    app_zip(&apps.join("b-plain.zip"), "plain", "nginx:1.27");
    let path = apps.join("c-serving.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("serving.app.conf", deflated).unwrap();
    write!(
        z,
        "a: \"{SERVING}\"\nb: \"docker.io/allegroai/clearml-apps:gpu-2\"\n"
    )
    .unwrap();
    z.start_file("assets/blob.bin", deflated).unwrap();
    z.write_all(&[3u8; 50_000]).unwrap();
    z.start_file("README.md", deflated).unwrap();
    z.write_all(b"no image here\n").unwrap();
    z.finish().unwrap();
}

fn converted(path: &Path, conf: &str) -> bool {
    !read_entry(path, conf).contains("allegroai/")
}

#[test]
fn a_conversion_killed_at_every_checkpoint_converges() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    let t = t.script(
        "convert_registry(\"apps\", \"registry.local/clearml-apps\", #{ images_file: \"images.txt\", mirror_commands: \"mirror.sh\" });",
    );
    let want = format!(
        "allegroai/clearml-apps:gpu-2 registry.local/clearml-apps:gpu-2\n{IMAGE} registry.local/clearml-apps:hpo-1.10.0-1062\n{SERVING} registry.local/clearml-apps:serving-1.3.0\n"
    );
    let zips = [
        ("a-hpo.zip", "hpo.app.conf"),
        ("c-serving.zip", "serving.app.conf"),
    ];
    let mut kills = 0;
    for stop in 1.. {
        let _ = std::fs::remove_dir_all(&apps);
        apps_set(&apps);
        let plain = std::fs::read(apps.join("b-plain.zip")).unwrap();
        let originals: Vec<Vec<u8>> = zips
            .iter()
            .map(|(z, _)| std::fs::read(apps.join(z)).unwrap())
            .collect();
        let mut child = t
            .command()
            .env("CLEARML_SCRIPT_TEST_STOP_AT", stop.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stopped = None;
        for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.starts_with("test-stop:") {
                stopped = Some(line);
                break;
            }
        }
        let Some(point) = stopped else {
            // past the last checkpoint: the run finished
            assert!(child.wait().unwrap().success());
            break;
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // what the kill left: without a journal, all original or all converted; with one, every
        // zip not yet replaced has its complete converted file staged
        let journal = apps.join(".clearml-script-convert.journal");
        let interrupted = journal.exists();
        if journal.exists() {
            let j: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
            for (zip, conf) in zips {
                let staged = j["staged"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p[1] == zip)
                    .map(|p| apps.join(p[0].as_str().unwrap()));
                match staged {
                    Some(s) if s.exists() => assert!(converted(&s, conf), "{point}: {zip}"),
                    _ => assert!(converted(&apps.join(zip), conf), "{point}: {zip}"),
                }
            }
        } else {
            let now: Vec<bool> = zips
                .iter()
                .enumerate()
                .map(|(i, (z, _))| std::fs::read(apps.join(z)).unwrap() != originals[i])
                .collect();
            assert!(
                now.iter().all(|c| *c) || now.iter().all(|c| !*c),
                "{point}: some zips converted, others not: {now:?}"
            );
            for (i, (z, conf)) in zips.iter().enumerate() {
                if now[i] {
                    assert!(converted(&apps.join(z), conf), "{point}: {z}");
                }
            }
        }
        // the re-run finishes it, with the complete list, and says it finished a replacement
        // only when the kill left one half done (a journal)
        let rerun = t.run();
        rerun.success();
        assert_eq!(
            rerun
                .stderr
                .contains("finished the replacement an interrupted run left"),
            interrupted,
            "{point}: {}",
            rerun.stderr
        );
        for (z, conf) in zips {
            assert!(converted(&apps.join(z), conf), "{point}: {z}");
        }
        assert_eq!(std::fs::read(apps.join("b-plain.zip")).unwrap(), plain);
        assert_eq!(
            std::fs::read_to_string(t.dir().join("images.txt")).unwrap(),
            want,
            "{point}"
        );
        let left: Vec<String> = std::fs::read_dir(&apps)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial") || n.contains("journal") || n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{point}: left behind: {left:?}");
    }
    assert!(kills >= 10, "only {kills} kill points");
    eprintln!("conversion kill matrix: {kills} kills survived");
}

/// Rewrite the uncompressed size of the first entry in its local header and the central
/// directory, as a zip bomb lies about it.
fn lie_about_size(path: &Path, size: u32) {
    let mut b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"PK\x03\x04");
    b[22..26].copy_from_slice(&size.to_le_bytes());
    let cd = b.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    b[cd + 24..cd + 28].copy_from_slice(&size.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

fn bomb_zip(path: &Path, name: &str, mib: usize) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    z.start_file(
        name,
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    let block = vec![b'a'; 1 << 20];
    for _ in 0..mib {
        z.write_all(&block).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn a_text_entry_that_inflates_past_its_declared_size_is_refused() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let path = apps.join("bomb.zip");
    bomb_zip(&path, "bomb.app.conf", 64);
    lie_about_size(&path, 1000);
    let before = std::fs::read(&path).unwrap();
    let t = t.script("convert_registry(\"apps\", \"registry.local/clearml-apps\");");
    t.run().code(1).stderr_has(
        "bomb.zip: the entry `bomb.app.conf` inflates past the size its header declares",
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn extraction_refuses_bombs_and_symbolic_links() {
    // a thousandfold expansion
    let t = Test::new();
    let pkg = t.dir().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    bomb_zip(&pkg.join("ratio.zip"), "weights.bin", 64);
    // an entry whose header lies: stopped at the declared size
    bomb_zip(&pkg.join("liar.zip"), "weights.bin", 8);
    lie_about_size(&pkg.join("liar.zip"), 1000);
    // a symbolic link
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(pkg.join("link.zip")).unwrap());
        z.start_file("ok.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"fine").unwrap();
        z.add_symlink(
            "passwd.conf",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.finish().unwrap();
    }
    let url = serve_dir(&pkg);
    for (zip, message) in [
        (
            "ratio.zip",
            "apps/apps.zip: the entry `weights.bin` inflates 67108864 bytes from",
        ),
        (
            "liar.zip",
            "apps/apps.zip: the entry `weights.bin` inflates past the size its header declares",
        ),
        (
            "link.zip",
            "apps/apps.zip: the entry `passwd.conf` is a symbolic link",
        ),
    ] {
        let t = Test::new().script(&format!("download_apps(\"{url}/{zip}\", \"apps\");"));
        t.run().code(1).stderr_has(message);
        let written: Vec<String> = std::fs::read_dir(t.dir().join("apps"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "apps.zip")
            .collect();
        assert!(written.is_empty(), "{zip}: {written:?}");
    }
}

#[test]
fn symbolic_links_and_colliding_images_stop_the_conversion() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    app_zip(&apps.join("a.zip"), "a", "allegroai/clearml-apps:1.0");
    app_zip(&apps.join("b.zip"), "b", "allegroai/clearml-serving:1.0");
    let before: Vec<Vec<u8>> = ["a.zip", "b.zip"]
        .iter()
        .map(|z| std::fs::read(apps.join(z)).unwrap())
        .collect();
    let t = t.script("convert_registry(\"apps\", \"registry.local/clearml-apps\");");
    t.run().code(1).stderr_has(
        "`allegroai/clearml-apps:1.0` (a.zip) and `allegroai/clearml-serving:1.0` (b.zip) would both become `registry.local/clearml-apps:1.0` in the target repository: refused, nothing was converted",
    );
    for (i, z) in ["a.zip", "b.zip"].iter().enumerate() {
        assert_eq!(std::fs::read(apps.join(z)).unwrap(), before[i], "{z}");
    }
    std::fs::remove_file(apps.join("b.zip")).unwrap();
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(apps.join("c.zip")).unwrap());
        z.add_symlink(
            "c.app.conf",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.finish().unwrap();
    }
    t.run()
        .code(1)
        .stderr_has("c.zip: the entry `c.app.conf` is a symbolic link");
    assert_eq!(std::fs::read(apps.join("a.zip")).unwrap(), before[0]);
}

// ---------------------------------------------------------------------------------------------
// Review findings (helper-apps).

/// A package of stored entries, in this order, served from `dir/pkg`; answers its URL.
fn serve_package(dir: &Path, entries: &[(&str, &[u8])]) -> String {
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let mut z = zip::ZipWriter::new(std::fs::File::create(pkg.join("apps.zip")).unwrap());
    for (name, data) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
    format!("{}/apps.zip", serve_dir(&pkg))
}

/// A package may not bring the tool's own bookkeeping: a conversion journal shipped in the
/// package is extracted into the apps directory and rolled forward by the next run, renaming a
/// file of the package over a file outside the directory.
#[test]
fn a_journal_inside_the_package_cannot_rename_files_outside_the_directory() {
    let t = Test::new().file("victim.txt", "mine");
    let journal =
        br#"{"staged":[["evil.txt","../victim.txt"]],"manifest":{"target_repo":"x","zips":{}}}"#;
    let url = serve_package(
        t.dir(),
        &[
            ("evil.txt", b"written by the package"),
            (".clearml-script-convert.journal", journal),
        ],
    );
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    let _ = t.run();
    // the re-run any playbook does (or convert_registry right after the download)
    let _ = t.run();
    assert_eq!(
        std::fs::read_to_string(t.dir().join("victim.txt")).unwrap(),
        "mine",
        "a file outside the apps directory was replaced by the package's"
    );
}

/// Two entries that name one file (`a.txt` and `./a.txt`): the second silently overwrites the
/// first, and every re-run then fails with "exists and differs".
#[test]
fn two_entries_naming_one_file_are_refused_or_converge() {
    let t = Test::new();
    let url = serve_package(t.dir(), &[("a.txt", b"first"), ("./a.txt", b"second")]);
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    let first = t.run();
    if first.code == 0 {
        // taken: a re-run must converge
        t.run().success();
    } else {
        assert!(
            !t.dir().join("apps/a.txt").exists(),
            "refused, yet written: {}",
            first.stderr
        );
    }
}

/// A file `x` and an entry `x/y` cannot both be extracted: the plan must see it (nothing
/// written), not fail half-way with an OS error.
#[test]
fn a_file_and_a_directory_of_one_name_are_refused_before_anything_is_written() {
    let t = Test::new();
    let url = serve_package(
        t.dir(),
        &[("a.txt", b"fine"), ("x", b"file"), ("x/y", b"under")],
    );
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    let out = t.run();
    out.code(1);
    let written: Vec<String> = std::fs::read_dir(t.dir().join("apps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "apps.zip")
        .collect();
    assert!(written.is_empty(), "{written:?}\n{}", out.stderr);
    assert!(
        out.stderr.contains("`x`") || out.stderr.contains("`x/y`"),
        "{}",
        out.stderr
    );
}

/// An app zip with an encrypted binary entry: the conversion never needs to read it (only the
/// text entries are searched) and copies it raw, as the code says ("encrypted or otherwise
/// unusual zips go through the zip crate").
#[test]
fn an_encrypted_binary_entry_is_copied_raw_by_the_conversion() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let path = apps.join("hpo.zip");
    app_zip(&path, "hpo", IMAGE);
    // mark assets/model.bin (the third entry) as encrypted, in its local header and its record
    let mut b = std::fs::read(&path).unwrap();
    let name = b"assets/model.bin";
    let mut at = 0;
    while let Some(p) = b[at..].windows(name.len()).position(|w| w == name) {
        let p = at + p;
        if b[p - 30..p - 26] == *b"PK\x03\x04" {
            b[p - 30 + 6] |= 1;
        } else if b[p - 46..p - 42] == *b"PK\x01\x02" {
            b[p - 46 + 8] |= 1;
        }
        at = p + 1;
    }
    std::fs::write(&path, &b).unwrap();
    let t = t.script("convert_registry(\"apps\", \"registry.local/clearml-apps\");");
    let out = t.run();
    out.success();
    assert!(
        read_entry(&path, "hpo.app.conf").contains("registry.local/clearml-apps:hpo-1.10.0-1062")
    );
}

/// The package itself (apps/apps.zip) is one of the "app zips" the native conversion rewrites
/// when a top-level text entry names an image; its checksum then differs and every later run
/// downloads the whole package again (and converts it again).
#[test]
fn the_downloaded_package_is_not_converted_as_an_app() {
    let t = Test::new();
    let app = t.dir().join("hpo-src.zip");
    app_zip(&app, "hpo", IMAGE);
    let url = serve_package(
        t.dir(),
        &[
            ("hpo.zip", &std::fs::read(&app).unwrap()),
            ("README.md", format!("The apps use {IMAGE}.\n").as_bytes()),
        ],
    );
    let sha = clearml_script::apps_package::sha256_file(&t.dir().join("pkg/apps.zip")).unwrap();
    let t = t.script(&format!(
        "download_apps(\"{url}\", \"apps\", #{{ sha256: \"{sha}\" }});\nconvert_registry(\"apps\", \"registry.local/clearml-apps\");"
    ));
    t.run().success();
    assert_eq!(
        clearml_script::apps_package::sha256_file(&t.dir().join("apps/apps.zip")).unwrap(),
        sha,
        "the downloaded package was rewritten"
    );
    t.run().success().stderr_has("is there already");
}

/// A conversion record shipped in the package is trusted by convert_registry: its moves become
/// the images to mirror and lines of mirror.sh, unquoted, so a package without any script can
/// put a shell command into the operator's mirror script.
#[test]
fn a_record_inside_the_package_cannot_put_commands_into_mirror_sh() {
    let t = Test::new();
    let app = t.dir().join("x-src.zip");
    app_zip(&app, "x", "nginx:1.27");
    let sha = clearml_script::apps_package::sha256_file(&app).unwrap();
    let record = format!(
        r#"{{"target_repo":"registry.local/clearml-apps","zips":{{"x.zip":{{"original":"{sha}","converted":"{sha}","moves":[["library/x:1 docker://evil/x:1; touch pwned; :","registry.local/clearml-apps:1"]]}}}}}}"#
    );
    let url = serve_package(
        t.dir(),
        &[
            ("x.zip", &std::fs::read(&app).unwrap()),
            (".clearml-script-convert.json", record.as_bytes()),
        ],
    );
    let t = t.script(&format!(
        "download_apps(\"{url}\", \"apps\");\nconvert_registry(\"apps\", \"registry.local/clearml-apps\", #{{ mirror_commands: \"mirror.sh\" }});"
    ));
    let out = t.run();
    let mirror = std::fs::read_to_string(t.dir().join("mirror.sh")).unwrap_or_default();
    assert!(!mirror.contains("touch pwned"), "{mirror}\n{}", out.stderr);
}

/// Each file is written beside its place first; that name must not be one a user's file (or
/// another entry) may have: `notes.partial-extract` beside an incoming `notes.txt` was truncated
/// and renamed away.
#[test]
fn a_user_file_is_not_taken_as_the_half_extracted_one() {
    let t = Test::new().file("apps/ok.partial-extract", "mine");
    let url = serve_package(t.dir(), &[("ok.txt", b"fine")]);
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    t.run().success();
    assert_eq!(
        std::fs::read_to_string(t.dir().join("apps/ok.partial-extract")).unwrap_or_default(),
        "mine"
    );
}

/// A download URL with basic auth in it: the password is a password, masked in the plan and
/// the logs like every other.
#[test]
fn a_password_in_the_download_url_is_refused_unless_the_url_is_a_secret() {
    // a plain URL with a password is refused before anything, the password not shown (built
    // in the script, so that the error's source line does not hold it whole)
    Test::new()
        .script("let pw = \"hunter2\" + \"-long-password\";\ndownload_apps(`https://user:${pw}@downloads.example.com/apps.zip`, \"apps\");")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("holds a user and password before `@`")
        .nowhere("hunter2-long-password");
    // the whole URL given as a secret is taken, and masked in the plan
    Test::new()
        .env(
            "APPS_URL",
            "https://user:hunter2-long-password@downloads.example.com/apps.zip",
        )
        .script("download_apps(secret(env(\"APPS_URL\")), \"apps\");")
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("apps.download url=<redacted>")
        .nowhere("hunter2-long-password");
}

/// The conversion searches text entries only: a binary entry whose bytes happen to spell an
/// image is copied as it is, byte for byte (rewriting it would corrupt a model or an image).
#[test]
fn a_binary_entry_that_spells_an_image_is_not_rewritten() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let zip_path = apps.join("hpo.zip");
    // valid UTF-8 throughout (control bytes around it): only the entry's kind tells
    let mut weights = vec![0u8, 1, 2, 3];
    weights.extend_from_slice(IMAGE.as_bytes());
    weights.extend_from_slice(&[127, 0, 1]);
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let deflated = zip::write::SimpleFileOptions::default();
        z.start_file("hpo.app.conf", deflated).unwrap();
        writeln!(z, "task {{ container {{ image: \"{IMAGE}\" }} }}").unwrap();
        z.start_file("weights.bin", deflated).unwrap();
        z.write_all(&weights).unwrap();
        z.finish().unwrap();
    }
    let t = t.script("convert_registry(\"apps\", \"registry.local/clearml-apps\");");
    t.run().success();
    assert!(read_entry(&zip_path, "hpo.app.conf").contains("registry.local/clearml-apps:"));
    let mut z = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut kept = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("weights.bin").unwrap(), &mut kept).unwrap();
    assert_eq!(kept, weights);
}

/// What the conversion tidies after itself is only its own staged zips: a partial download of
/// the package, and a user's file that merely looks alike, are left alone.
#[test]
fn the_conversion_removes_only_its_own_staged_zips() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    app_zip(&apps.join("hpo.zip"), "hpo", IMAGE);
    for (name, text) in [
        ("apps.zip.partial", "half a download"),
        (".convert-notes.txt", "mine"),
        (".convert-hpo.zip.partial", "left by a killed conversion"),
    ] {
        std::fs::write(apps.join(name), text).unwrap();
    }
    let t = t.script("convert_registry(\"apps\", \"registry.local/clearml-apps\");");
    t.run().success();
    assert_eq!(
        std::fs::read_to_string(apps.join("apps.zip.partial")).unwrap(),
        "half a download"
    );
    assert_eq!(
        std::fs::read_to_string(apps.join(".convert-notes.txt")).unwrap(),
        "mine"
    );
    assert!(!apps.join(".convert-hpo.zip.partial").exists());
}

/// Only the tool's own bookkeeping names are refused in a package: an entry that merely ends
/// in `.partial`, or starts with `.convert-`, is an ordinary file.
#[test]
fn an_entry_that_only_resembles_the_tools_own_files_is_extracted() {
    let t = Test::new();
    let url = serve_package(
        t.dir(),
        &[("notes.partial", b"a"), (".convert-guide.md", b"b")],
    );
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    t.run().success();
    assert_eq!(
        std::fs::read(t.dir().join("apps/notes.partial")).unwrap(),
        b"a"
    );
    assert_eq!(
        std::fs::read(t.dir().join("apps/.convert-guide.md")).unwrap(),
        b"b"
    );
    // the tool's own names are refused: a staged zip's, the package's and its partial's
    for (name, why) in [
        (
            ".convert-x.zip.partial",
            "taken for a zip the conversion stages",
        ),
        ("apps.zip", "the package itself"),
        ("apps.zip.partial", "the package itself"),
    ] {
        let t2 = Test::new();
        let url = serve_package(t2.dir(), &[(name, b"c")]);
        t2.script(&format!("download_apps(\"{url}\", \"apps\");"))
            .run()
            .code(1)
            .stderr_has(&format!("the entry `{name}` would be {why}"));
    }
}
