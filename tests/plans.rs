//! The dry-run plan of the standard install is the plan the code made before the stdlib's
//! helpers were called as methods on the site (issue "Linear everywhere": Rhai copies every
//! argument of a script function call, so the stdlib no longer hands the whole site to each of
//! its own helpers). The expected outputs (the plan, the exit code and the log) are files made
//! once by the binary before that change, for the example sites, a big site (queues of every
//! kind, many fixed users, every optional section) and a site full of problems, whose order is
//! part of the output. A change of the plan that is meant is written with `UPDATE_PLANS=1`.

use crate::common::{Test, repo};

/// Each case: its name (the file `tests/fixtures/plans/NAME.txt`) and the values files over
/// the example site, relative to the repository.
const CASES: &[(&str, &[&str])] = &[
    ("example", &[]),
    ("gpu", &["examples/site-gpu.yaml"]),
    ("oci", &["examples/site-oci.yaml"]),
    ("airgapped", &["examples/site-airgapped.yaml"]),
    (
        "big",
        &[
            "examples/site-gpu.yaml",
            "tests/fixtures/plans/big-site.yaml",
        ],
    ),
    (
        "big-oci",
        &[
            "examples/site-gpu.yaml",
            "examples/site-oci.yaml",
            "tests/fixtures/plans/big-site.yaml",
        ],
    ),
    (
        "problems",
        &[
            "examples/site-gpu.yaml",
            "tests/fixtures/plans/bad-site.yaml",
        ],
    ),
];

#[test]
fn the_install_plans_are_the_plans_made_before() {
    let update = std::env::var_os("UPDATE_PLANS").is_some();
    let mut differ = Vec::new();
    for (name, files) in CASES {
        let mut t = Test::new().args(["install.rhai", "--dry-run", "--output", "json"]);
        for f in ["examples/site.yaml"].iter().chain(files.iter()) {
            t = t.arg("--values").arg(repo().join(f).display().to_string());
        }
        let out = t.run();
        let here = |s: &str| {
            s.replace(&repo().display().to_string(), "<repo>")
                .replace(&t.dir().display().to_string(), "<dir>")
        };
        let got = format!(
            "{}exit {}\n{}",
            here(&out.stdout),
            out.code,
            here(&out.stderr)
        );
        let path = repo().join(format!("tests/fixtures/plans/{name}.txt"));
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap();
        if got != want {
            let diff = similar::TextDiff::from_lines(&want, &got)
                .unified_diff()
                .context_radius(3)
                .header("before", "now")
                .to_string();
            differ.push(format!("{name}:\n{diff}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
