//! The applications path: download and safe extraction, registry conversion (native and through
//! the vendor's script), upload through the vendor's script; bad input changes nothing.

use std::io::Write;
use std::path::Path;

use clearml_script::sandbox::clearml::DEFAULT_COMPANY;
use serde_json::Value;

use crate::common::{Sim, Test, repo, serve_dir};

pub(crate) const IMAGE: &str = "allegroai/clearml-apps:hpo-1.10.0-1062";

/// An app package as documented for custom apps: `<app>.app.conf` (HOCON) with an image, and
/// binary assets, stored and deflated.
pub(crate) fn app_zip(path: &Path, app: &str, image: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file(format!("{app}.app.conf"), deflated).unwrap();
    write!(z, "id: \"{app}\"\nname: \"{app}\"\nversion: \"1.10.0\"\ntask {{\n  container {{ image: \"{image}\" }}\n}}\n").unwrap();
    z.start_file("assets/logo.png", stored).unwrap();
    z.write_all(
        &(0..40_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    z.start_file("assets/model.bin", deflated).unwrap();
    z.write_all(&(0..60_000u32).map(|i| (i % 13) as u8).collect::<Vec<u8>>())
        .unwrap();
    z.finish().unwrap();
}

/// The raw (compressed) bytes and names of every entry.
fn raw_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    entries_of(path, true)
}

/// Every entry's name and bytes, in order: raw (compressed, as stored) or as the zip crate
/// reads it (inflated, CRC checked).
fn entries_of(path: &Path, raw: bool) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut a = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..a.len())
        .map(|i| {
            let mut e = if raw {
                a.by_index_raw(i).unwrap()
            } else {
                a.by_index(i).unwrap()
            };
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (e.name().to_string(), b)
        })
        .collect()
}

pub(crate) fn read_entry(path: &Path, name: &str) -> String {
    use std::io::Read;
    let mut a = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut s = String::new();
    a.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

pub(crate) fn vendor_log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("vendor.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_air_gapped_site_plans_download_conversion_and_upload() {
    let out = Test::new()
        .args(["install.rhai", "--values"])
        .arg(repo().join("examples/site.yaml").display().to_string())
        .arg("--values")
        .arg(
            repo()
                .join("examples/site-airgapped.yaml")
                .display()
                .to_string(),
        )
        .args(["--dry-run", "--output", "json"])
        .run();
    out.success().nowhere("example-apps-password-replace-me");
    let plan = out.json();
    let apps: Vec<&Value> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"].as_str().unwrap().starts_with("apps."))
        .collect();
    let kinds: Vec<&str> = apps.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["apps.download", "apps.convert_registry", "apps.upload"]
    );
    assert_eq!(apps[1]["target_repo"], "registry.local:5000/clearml-apps");
    assert_eq!(apps[2]["secret"], "<redacted>");
    assert_eq!(apps[2]["api_url"], "https://api.clearml.example.com");
}

#[test]
fn native_conversion_rewrites_only_the_image_strings() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    app_zip(&apps.join("hpo.zip"), "hpo", IMAGE);
    app_zip(&apps.join("other.zip"), "other", "nginx:1.27");
    let before = raw_entries(&apps.join("hpo.zip"));
    let untouched = std::fs::read(apps.join("other.zip")).unwrap();
    let t = t.script("let images = convert_registry(\"apps\", \"registry.local:5000/clearml-apps\", #{ mirror_commands: \"mirror.sh\", images_file: \"images.txt\" });\nprint(images);");
    t.run()
        .success()
        .stdout_has(&format!("[#{{\"image\": \"{IMAGE}\", \"target\": \"registry.local:5000/clearml-apps:hpo-1.10.0-1062\"}}]"))
        .stderr_has("no convert_image_registry.py in the package: converting natively");
    let after = raw_entries(&apps.join("hpo.zip"));
    assert_eq!(before.len(), after.len());
    for ((n1, b1), (n2, b2)) in before.iter().zip(&after) {
        assert_eq!(n1, n2);
        if n1.ends_with(".app.conf") {
            assert_ne!(b1, b2);
        } else {
            assert_eq!(b1, b2, "{n1}: compressed bytes unchanged");
        }
    }
    let conf = read_entry(&apps.join("hpo.zip"), "hpo.app.conf");
    assert!(
        conf.contains("image: \"registry.local:5000/clearml-apps:hpo-1.10.0-1062\""),
        "{conf}"
    );
    assert_eq!(
        std::fs::read(apps.join("other.zip")).unwrap(),
        untouched,
        "a zip without images is left alone"
    );
    let mirror = std::fs::read_to_string(t.dir().join("mirror.sh")).unwrap();
    assert!(mirror.contains(&format!("skopeo copy docker://docker.io/{IMAGE} docker://registry.local:5000/clearml-apps:hpo-1.10.0-1062")));
    assert_eq!(
        std::fs::read_to_string(t.dir().join("images.txt")).unwrap(),
        format!("{IMAGE} registry.local:5000/clearml-apps:hpo-1.10.0-1062\n")
    );
    // a second run recognises the converted zip: nothing changes, and the list is complete
    let converted = std::fs::read(apps.join("hpo.zip")).unwrap();
    t.run().success().stdout_has(&format!(
        "[#{{\"image\": \"{IMAGE}\", \"target\": \"registry.local:5000/clearml-apps:hpo-1.10.0-1062\"}}]"
    ));
    assert_eq!(std::fs::read(apps.join("hpo.zip")).unwrap(), converted);
    assert!(
        std::fs::read_to_string(t.dir().join("mirror.sh"))
            .unwrap()
            .contains(&format!("skopeo copy docker://docker.io/{IMAGE} "))
    );
    assert_eq!(
        std::fs::read_to_string(t.dir().join("images.txt")).unwrap(),
        format!("{IMAGE} registry.local:5000/clearml-apps:hpo-1.10.0-1062\n")
    );
}

#[test]
fn a_corrupt_zip_is_named_and_nothing_is_replaced() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    app_zip(&apps.join("a-good.zip"), "good", IMAGE);
    std::fs::write(apps.join("b-bad.zip"), b"this is not a zip").unwrap();
    let good = std::fs::read(apps.join("a-good.zip")).unwrap();
    let t = t.script("convert_registry(\"apps\", \"registry.local/clearml-apps\");");
    t.run()
        .code(1)
        .stderr_has("b-bad.zip is not a readable zip archive");
    assert_eq!(std::fs::read(apps.join("a-good.zip")).unwrap(), good);
    let leftovers: Vec<_> = std::fs::read_dir(&apps)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());
}

/// The applications package: one app zip and the vendor's scripts named.
pub(crate) fn package_with(dir: &Path, scripts: &[&str]) -> std::path::PathBuf {
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let path = pkg.join("clearml-apps.zip");
    let f = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    let tmp = dir.join("hpo-src.zip");
    app_zip(&tmp, "hpo", IMAGE);
    z.start_file("hpo.zip", opts).unwrap();
    z.write_all(&std::fs::read(&tmp).unwrap()).unwrap();
    for s in scripts {
        z.start_file(*s, opts).unwrap();
        z.write_all(&std::fs::read(repo().join("tests/fixtures/vendor").join(s)).unwrap())
            .unwrap();
    }
    z.finish().unwrap();
    path
}

#[test]
fn download_extract_convert_with_the_vendor_script_and_upload() {
    let sim = Sim::start();
    sim.sandbox
        .clearml
        .state
        .add_fixed_user("admin", "apps-pass-123", DEFAULT_COMPANY, true);
    let t = Test::new();
    let pkg = package_with(t.dir(), &["convert_image_registry.py", "upload_apps.py"]);
    let sha = clearml_script::apps_package::sha256_file(&pkg).unwrap();
    let url = format!("{}/clearml-apps.zip", serve_dir(pkg.parent().unwrap()));
    let log = t.dir().join("vendor.log").display().to_string();
    let api = sim.sandbox.clearml.url();
    let t = t.file(
        "site.yaml",
        &format!("base_domain: clearml.example.com\ndockerhub_token: unused-token\napps:\n  url: {url}\n  sha256: {sha}\n  dir: apps\n  registry: local_registry/clearml-apps\n  user: admin\n  password: apps-pass-123\n  api_url: {api}\n"),
    );
    let run = || {
        Test::new()
            .arg("install-apps.rhai")
            .args(["--values", &t.dir().join("site.yaml").display().to_string()])
            .env("VENDOR_LOG", &log)
            .command()
            .current_dir(t.dir())
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("download: extracted 3 new files"), "{err}");
    assert!(err.contains(&format!("convert: make sure {IMAGE} is in the registry as local_registry/clearml-apps:hpo-1.10.0-1062")), "{err}");
    assert!(err.contains("upload: uploaded hpo.zip"), "{err}");
    assert!(!err.contains("apps-pass-123"));
    let calls = vendor_log(t.dir());
    let apps_dir = t.dir().join("apps").display().to_string();
    assert_eq!(
        calls[0]["argv"],
        serde_json::json!([
            "--apps-dir",
            apps_dir,
            "--repo",
            "local_registry/clearml-apps"
        ])
    );
    assert_eq!(
        calls[1]["argv"],
        serde_json::json!([
            "--host",
            api,
            "--user",
            "admin",
            "--password",
            "apps-pass-123",
            "--dir",
            apps_dir,
            "-ml"
        ])
    );
    assert!(
        !calls[1]["cmdline"]
            .as_str()
            .unwrap()
            .contains("apps-pass-123"),
        "the password is not in the process arguments"
    );
    // a second run downloads nothing and overwrites nothing
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("is there already") && err.contains("extracted 0 new files"),
        "{err}"
    );

    // oci: --artifactory, and --key/--secret --command upload
    let oci = t.dir().join("oci.yaml");
    std::fs::write(
        &oci,
        "generation: oci\napps:\n  key: OCIKEY\n  secret: oci-secret-1\n",
    )
    .unwrap();
    sim.sandbox.clearml.state.add_user(
        "oci-admin",
        "oci-admin",
        DEFAULT_COMPANY,
        clearml_script::sandbox::clearml::Role::Admin,
    );
    sim.sandbox
        .clearml
        .state
        .add_credentials("OCIKEY", "oci-secret-1", "oci-admin");
    let out = Test::new()
        .arg("install-apps.rhai")
        .args([
            "--values",
            &t.dir().join("site.yaml").display().to_string(),
            "--values",
            &oci.display().to_string(),
        ])
        .env("VENDOR_LOG", &log)
        .command()
        .current_dir(t.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = vendor_log(t.dir());
    let n = calls.len();
    assert_eq!(calls[n - 2]["argv"][2], "--artifactory");
    let cmdline = calls[n - 1]["cmdline"].as_str().unwrap();
    assert!(
        !cmdline.contains("OCIKEY") && !cmdline.contains("oci-secret-1"),
        "no credential in the process arguments: {cmdline}"
    );
    assert_eq!(
        calls[n - 1]["argv"],
        serde_json::json!([
            "--host",
            api,
            "--key",
            "OCIKEY",
            "--secret",
            "oci-secret-1",
            "--command",
            "upload",
            "--dir",
            apps_dir,
            "-ml"
        ])
    );
}

/// A test whose `apps` directory holds one app and the vendor's upload script (its stand-in,
/// which records its calls in `vendor.log`), running `upload_apps` against `sim` as `user`.
fn upload_as(sim: &Sim, user: &str, password: &str) -> Test {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    app_zip(&apps.join("hpo.zip"), "hpo", IMAGE);
    std::fs::copy(
        repo().join("tests/fixtures/vendor/upload_apps.py"),
        apps.join("upload_apps.py"),
    )
    .unwrap();
    let log = t.dir().join("vendor.log").display().to_string();
    t.script(&format!(
        "upload_apps(\"apps\", #{{ api_url: \"{}\", user: \"{user}\", password: \"{password}\" }});",
        sim.sandbox.clearml.url()
    ))
    .env("VENDOR_LOG", &log)
}

#[test]
fn wrong_credentials_stop_the_upload_before_the_script() {
    let sim = Sim::start();
    let t = upload_as(&sim, "nobody", "bad-pass-1");
    t.run()
        .code(1)
        .stderr_has("users.get_current_user: 401/22")
        .nowhere("bad-pass-1");
    assert!(vendor_log(t.dir()).is_empty(), "the script never ran");
}

/// A system identity (the supervisor's key, which has no user record: `get_current_user`
/// answers 400/300) has valid credentials: the upload goes on to the script.
#[test]
fn a_system_identity_may_upload() {
    use clearml_script::sandbox::clearml::Role;
    let sim = Sim::start();
    let state = &sim.sandbox.clearml.state;
    state.add_user("sys-id", "tests-system", DEFAULT_COMPANY, Role::System);
    state.add_credentials("SYSKEY", "sys-secret-42", "sys-id");
    let t = upload_as(&sim, "SYSKEY", "sys-secret-42");
    t.run().success().nowhere("sys-secret-42");
    assert_eq!(vendor_log(t.dir()).len(), 1, "the script ran once");
}

#[test]
fn bad_input_is_refused_and_nothing_is_modified() {
    // a missing apps directory
    Test::new()
        .script("convert_registry(\"missing\", \"registry.local/apps\");")
        .run()
        .code(1)
        .stderr_has("the apps directory ./missing does not exist");
    // a package with an entry that escapes the directory
    let t = Test::new();
    let pkg = t.dir().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(pkg.join("evil.zip")).unwrap());
        z.start_file("ok.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"fine").unwrap();
        z.start_file("../escape.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"evil").unwrap();
        z.finish().unwrap();
    }
    let url = format!("{}/evil.zip", serve_dir(&pkg));
    let t = t.script(&format!("download_apps(\"{url}\", \"apps\");"));
    t.run()
        .code(1)
        .stderr_has("the entry `../escape.txt` would be written outside");
    assert!(
        !t.dir().join("apps/ok.txt").exists(),
        "nothing was extracted"
    );
    assert!(!t.dir().join("escape.txt").exists());
    // a wrong checksum
    let t2 = Test::new();
    t2.script(&format!(
        "download_apps(\"{url}\", \"apps\", #{{ sha256: \"{}\" }});",
        "0".repeat(64)
    ))
    .run()
    .code(1)
    .stderr_has("it was removed; check the URL and the checksum");
    // python3 missing: refused before anything
    let t3 = Test::new();
    std::fs::create_dir_all(t3.dir().join("apps")).unwrap();
    t3.script("upload_apps(\"apps\", #{ api_url: \"https://api.example.com\", user: \"u\", password: \"p-123456\" });")
        .env("PATH", "/nonexistent")
        .run()
        .code(2)
        .stderr_has("error: python3 was not found");
    // bad target and checksum given as values
    Test::new()
        .script("convert_registry(\"apps\", \"https://registry/x\");")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("is not a target repository");
    let _ = Path::new("");
}

#[test]
fn a_huge_text_entry_is_copied_raw_with_a_warning() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let path = apps.join("huge.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file("huge.app.conf", zip::write::SimpleFileOptions::default())
            .unwrap();
        for _ in 0..250_000 {
            writeln!(z, "step: \"{IMAGE}\"").unwrap();
        }
        z.finish().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let t = t.script("print(convert_registry(\"apps\", \"registry.local/clearml-apps\"));");
    t.run()
        .success()
        .stdout("[]\n")
        .stderr_has("huge.app.conf` is larger than 8 MiB and was not searched for images");
    assert_eq!(std::fs::read(&path).unwrap(), before, "left as it was");
}

/// Every entry of a zip as the zip crate reads it (CRC checked): name and content, in order.
fn entry_contents(path: &Path) -> Vec<(String, Vec<u8>)> {
    entries_of(path, false)
}

/// `python3 -m zipfile -t`: Python's own reader finds every entry whole.
fn python_tests_zip(path: &Path) {
    let out = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Done testing"),
        "{}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The converted zip holds the same entries in the same order with the same contents, the
/// `.app.conf` entries excepted, which name the target repository instead.
fn assert_converted_like(before: &[(String, Vec<u8>)], path: &Path) {
    python_tests_zip(path);
    let after = entry_contents(path);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(before), names(&after));
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        if name.ends_with(".app.conf") {
            let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
            assert!(old.contains("allegroai/"), "{name}: {old}");
            assert!(
                !new.contains("allegroai/") && new.contains("registry.local/clearml-apps:"),
                "{name}: {new}"
            );
        } else {
            assert_eq!(old, new, "{name}");
        }
    }
}

#[test]
fn a_zip_written_with_data_descriptors_is_converted_by_the_raw_copy() {
    // Python's zipfile writing to a pipe: every entry has a data descriptor (general purpose bit
    // 3, with its signature), its CRC and sizes after its data
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let zip = apps.join("streamed.zip");
    let script = format!(
        r#"
import os, sys, zipfile
class Pipe:
    def __init__(self, f): self.f = f
    def write(self, b): return self.f.write(b)
    def flush(self): self.f.flush()
with open(sys.argv[1], "wb") as f, zipfile.ZipFile(Pipe(f), "w") as z:
    z.writestr("streamed.app.conf", 'image: "{IMAGE}"\n', compress_type=zipfile.ZIP_DEFLATED)
    z.writestr("assets/stored.bin", bytes(range(256)) * 300, compress_type=zipfile.ZIP_STORED)
    z.writestr("assets/deflated.bin", b"weights " * 5000, compress_type=zipfile.ZIP_DEFLATED)
"#
    );
    let made = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(&zip)
        .status()
        .expect("python3");
    assert!(made.success());
    let source = std::fs::read(&zip).unwrap();
    assert!(
        source.windows(4).any(|w| w == b"PK\x07\x08"),
        "the source has data descriptors"
    );
    let before = entry_contents(&zip);
    let t = t
        .script("print(convert_registry(\"apps\", \"registry.local/clearml-apps\"));")
        .arg("-v");
    t.run()
        .success()
        .stdout_has("registry.local/clearml-apps:hpo-1.10.0-1062")
        .nowhere("copied through the zip crate");
    assert_converted_like(&before, &zip);
    // the unchanged entries are the source's bytes, local header and descriptor included
    let after = std::fs::read(&zip).unwrap();
    let mut a = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let mut s = zip::ZipArchive::new(std::io::Cursor::new(source.clone())).unwrap();
    for name in ["assets/stored.bin", "assets/deflated.bin"] {
        let (from, to) = {
            let e = s.by_name(name).unwrap();
            let start = e.header_start() as usize;
            (
                start,
                e.data_start() as usize + e.compressed_size() as usize + 16,
            )
        };
        let start = a.by_name(name).unwrap().header_start() as usize;
        assert_eq!(
            after[start..start + (to - from)],
            source[from..to],
            "{name}: copied as it was"
        );
    }
}

#[test]
fn a_zip64_archive_is_converted_through_the_zip_crate() {
    let t = Test::new();
    let apps = t.dir().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let zip = apps.join("big.zip");
    {
        // Zip64 extra fields on every entry, as an archiver writes them for large files
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
        let large = zip::write::SimpleFileOptions::default().large_file(true);
        z.start_file("big.app.conf", large).unwrap();
        writeln!(z, "image: \"{IMAGE}\"").unwrap();
        z.start_file(
            "assets/model.bin",
            large.compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        z.write_all(&(0..60_000u32).map(|i| (i % 13) as u8).collect::<Vec<u8>>())
            .unwrap();
        z.finish().unwrap();
    }
    let before = entry_contents(&zip);
    let t = t
        .script("print(convert_registry(\"apps\", \"registry.local/clearml-apps\"));")
        .arg("-v");
    t.run()
        .success()
        .stdout_has("registry.local/clearml-apps:hpo-1.10.0-1062")
        .stderr_has("is a Zip64 entry: copied through the zip crate");
    assert_converted_like(&before, &zip);
}
