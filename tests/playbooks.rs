//! Standard playbooks built into the binary: run by name from any directory, list, export.

use crate::common::{Test, repo};

fn example_site() -> String {
    repo().join("examples/site.yaml").display().to_string()
}

#[test]
fn a_standard_playbook_runs_by_name_from_anywhere() {
    let by_name = Test::new()
        .args([
            "install.rhai",
            "--values",
            &example_site(),
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    by_name
        .success()
        .stderr_has("running the standard playbook <embedded>/scripts/install.rhai");
    let from_repo = Test::new()
        .arg(repo().join("scripts/install.rhai").display().to_string())
        .args(["--values", &example_site(), "--dry-run", "--output", "json"])
        .run();
    from_repo.success();
    assert_eq!(by_name.stdout, from_repo.stdout);
    // without the extension too
    Test::new()
        .args(["install", "--values", &example_site(), "--dry-run"])
        .run()
        .success();
}

#[test]
fn a_local_file_takes_precedence() {
    Test::new()
        .file("install.rhai", "print(\"local copy\");")
        .args(["install.rhai", "--dry-run"])
        .run()
        .success()
        .stdout_has("local copy\n");
}

#[test]
fn an_unknown_name_lists_the_standard_playbooks() {
    Test::new()
        .args(["instal.rhai", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("error: no playbook instal.rhai")
        .stderr_has("  install.rhai ");
}

#[test]
fn scripts_lists_descriptions() {
    Test::new()
        .arg("scripts")
        .run()
        .success()
        .stdout_has("install.rhai")
        .stdout_has("The standard install of ClearML Enterprise on Kubernetes");
}

#[test]
fn export_edit_and_run_the_copy() {
    let t = Test::new();
    t.command()
        .args(["scripts", "export", "site"])
        .status()
        .unwrap()
        .success()
        .then_some(())
        .expect("export");
    let site_file = t.dir().join("site/site.yaml");
    let text = std::fs::read_to_string(&site_file).unwrap();
    std::fs::write(
        &site_file,
        text.replace(
            "base_domain: clearml.example.com",
            "base_domain: ml.corp.example",
        ),
    )
    .unwrap();
    let out = Test::new()
        .arg(t.dir().join("site/install.rhai").display().to_string())
        .args(["--values", &site_file.display().to_string(), "--dry-run"])
        .run();
    out.success().stderr_has("site ml.corp.example:");

    // A second export without --force changes nothing and names the files that exist.
    std::fs::write(t.dir().join("site/install.rhai"), "// edited\n").unwrap();
    let again = t
        .command()
        .args(["scripts", "export", "site"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("nothing was written"), "{err}");
    assert!(err.contains("site/install.rhai"), "{err}");
    assert_eq!(
        std::fs::read_to_string(t.dir().join("site/install.rhai")).unwrap(),
        "// edited\n"
    );
    // --force overwrites
    let forced = t
        .command()
        .args(["scripts", "export", "site", "--force"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read_to_string(t.dir().join("site/install.rhai")).unwrap(),
        "// edited\n"
    );
}
