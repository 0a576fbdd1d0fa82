//! The standard playbooks, stdlib modules and example sites, built into the binary.

mod files {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Every embedded file as `(path relative to the repository, text)`.
pub fn files() -> &'static [(&'static str, &'static str)] {
    files::FILES
}

/// The sandbox's stand-in charts: `(chart/relative/path, bytes)`.
pub fn sandbox_chart_files() -> &'static [(&'static str, &'static [u8])] {
    files::SANDBOX_CHARTS
}

/// The text of an embedded file by its repository path (`scripts/install.rhai`).
pub fn file(path: &str) -> Option<&'static str> {
    files().iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// The source of a stdlib module by its import path (`clearml/values`).
pub fn stdlib_module(import: &str) -> Option<(&'static str, &'static str)> {
    let want = format!("stdlib/{}.rhai", import.trim_end_matches(".rhai"));
    files()
        .iter()
        .find(|(p, _)| *p == want)
        .map(|(p, t)| (*p, *t))
}

/// The standard playbooks, as `(file name, text)`.
pub fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
    files()
        .iter()
        .filter_map(|(p, t)| p.strip_prefix("scripts/").map(|n| (n, *t)))
        .filter(|(n, _)| n.ends_with(".rhai") && !n.contains('/'))
}

/// The example site files, as `(file name, text)`.
pub fn examples() -> impl Iterator<Item = (&'static str, &'static str)> {
    files()
        .iter()
        .filter_map(|(p, t)| p.strip_prefix("examples/").map(|n| (n, *t)))
}

/// The one-line description from a playbook's header comment: the first `//` line.
pub fn description(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("//") || l.is_empty())
        .find_map(|l| {
            let t = l.trim_start_matches('/').trim();
            (!t.is_empty()).then(|| t.to_string())
        })
        .unwrap_or_default()
}
