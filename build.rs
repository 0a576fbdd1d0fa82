//! Embeds every file of `scripts/`, `stdlib/` and `examples/` (and the sandbox's stand-in
//! charts, `src/sandbox/charts/`) in the binary: a new playbook or
//! module is picked up by being added to its folder, with no list kept by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut code = String::from("pub static FILES: &[(&str, &str)] = &[\n");
    for top in ["scripts", "stdlib", "examples"] {
        println!("cargo:rerun-if-changed={top}");
        let mut files = Vec::new();
        collect(&root.join(top), &mut files);
        files.sort();
        for file in files {
            let rel = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel.ends_with(".rhai") || rel.ends_with(".yaml") || rel.ends_with(".yml") {
                println!("cargo:rerun-if-changed={rel}");
                writeln!(code, "    ({rel:?}, include_str!({:?})),", file.display()).unwrap();
            }
        }
    }
    code.push_str("];\n");
    // The stand-in charts the sandbox serves: every file, whatever its extension.
    code.push_str("pub static SANDBOX_CHARTS: &[(&str, &[u8])] = &[\n");
    let charts = root.join("src/sandbox/charts");
    println!("cargo:rerun-if-changed=src/sandbox/charts");
    let mut files = Vec::new();
    collect(&charts, &mut files);
    files.sort();
    for file in files {
        let rel = file
            .strip_prefix(&charts)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        println!("cargo:rerun-if-changed={}", file.display());
        writeln!(code, "    ({rel:?}, include_bytes!({:?})),", file.display()).unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(out, code).unwrap();
}
