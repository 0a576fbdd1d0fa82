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
