//! Finding the playbook to run (a file on disk wins; otherwise a standard playbook built into
//! the binary), listing the standard playbooks, and exporting them for a site to customize.

use std::path::{Path, PathBuf};

use crate::embedded;

pub struct Playbook {
    /// The name diagnostics use: the path given, or `<embedded>/scripts/NAME`.
    pub name: String,
    pub text: String,
    /// Where relative imports and files resolve.
    pub base_dir: PathBuf,
    pub embedded: bool,
}

/// A path that exists wins; then a bare name of a standard playbook (`install.rhai` or
/// `install`); anything else is an error listing the standard playbooks.
pub fn resolve(arg: &str) -> Result<Playbook, String> {
    let path = Path::new(arg);
    if path.exists() {
        if path.is_dir() {
            return Err(format!(
                "{arg} is a directory; give a playbook file, such as {}",
                path.join("install.rhai").display()
            ));
        }
        let text = crate::fsutil::read_file_capped(path, crate::fsutil::PLAYBOOK_LIMIT)
            .map_err(|e| format!("cannot read {arg}: {e}"))?;
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        return Ok(Playbook {
            name: arg.to_string(),
            text,
            base_dir,
            embedded: false,
        });
    }
    let bare = !arg.contains('/') && !arg.contains('\\');
    let wanted = if arg.ends_with(".rhai") {
        arg.to_string()
    } else {
        format!("{arg}.rhai")
    };
    if bare && let Some((name, text)) = embedded::scripts().find(|(n, _)| *n == wanted) {
        return Ok(Playbook {
            name: format!("<embedded>/scripts/{name}"),
            text: text.to_string(),
            base_dir: PathBuf::from("."),
            embedded: true,
        });
    }
    let names: Vec<String> = embedded::scripts().map(|(n, _)| n.to_string()).collect();
    let hint = if bare {
        crate::check::suggest(&wanted, &names)
            .map(|s| format!(" Did you mean {s}?"))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Err(format!(
        "no playbook {arg}: there is no such file, and it is not a standard playbook.{hint} The standard playbooks are:\n{}",
        list()
    ))
}

/// The standard playbooks' names, for shell completions.
pub fn names() -> Vec<String> {
    embedded::scripts().map(|(n, _)| n.to_string()).collect()
}

/// One line per standard playbook: its name and the description from its header comment.
pub fn list() -> String {
    let scripts: Vec<(&str, &str)> = embedded::scripts().collect();
    let width = scripts.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    scripts
        .iter()
        .map(|(n, t)| format!("  {n:width$}  {}\n", embedded::description(t)))
        .collect()
}

/// Write every standard playbook, example site file and the site schemas (`site.schema.json`
/// and `site-layer.schema.json`, which the example sites name for editors) into `dir`, and with `with_stdlib` the library
/// modules' sources under `stdlib/`, to read or fork. Without `force`, nothing is written when
/// any of them exists already, and the error names each one.
pub fn export(dir: &Path, force: bool, with_stdlib: bool) -> Result<Vec<PathBuf>, String> {
    let schema = format!("{:#}\n", crate::schema::build()?);
    let layer = format!("{:#}\n", crate::schema::build_layer()?);
    let mut files: Vec<(PathBuf, &str)> = embedded::scripts()
        .chain(embedded::examples())
        .map(|(n, t)| (dir.join(n), t))
        .collect();
    files.push((dir.join("site.schema.json"), &schema));
    files.push((dir.join("site-layer.schema.json"), &layer));
    if with_stdlib {
        files.extend(
            embedded::files()
                .iter()
                .filter(|(p, _)| p.starts_with("stdlib/"))
                .map(|(p, t)| (dir.join(p), *t)),
        );
    }
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| format!("  {}", p.display()))
        .collect();
    if !existing.is_empty() && !force {
        return Err(format!(
            "nothing was written: these files exist already (use --force to overwrite them):\n{}",
            existing.join("\n")
        ));
    }
    let mut written = Vec::new();
    for (path, text) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
