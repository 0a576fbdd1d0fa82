//! The reference of the built-ins, generated from the doc comments of the registered plugin
//! functions (Rhai's function metadata). Serves `clearml-script docs`, `:help` in the REPL and
//! the definition files.

use rhai::Engine;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct FnDoc {
    pub name: String,
    pub signature: String,
    /// The prose before the `# Example` section.
    pub description: String,
    /// The code of the `# Example` section.
    pub example: String,
    /// The stdlib module (`clearml/values`) for a module function; none for a built-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// The stdlib modules and the names they are imported as, in the playbooks and in these docs.
pub const MODULES: &[(&str, &str)] = &[
    ("clearml/values", "values"),
    ("clearml/control_plane", "cp"),
    ("clearml/agent", "agent"),
    ("clearml/gateway", "gateway"),
    ("clearml/apps", "apps"),
];

/// Every documented name, for shell completions.
pub fn all_names() -> Vec<String> {
    let engine = crate::engine::build(
        std::path::Path::new("."),
        crate::engine::Sources::default(),
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let mut names: Vec<String> = collect_all(&engine).into_iter().map(|d| d.name).collect();
    names.retain(|n| n.starts_with(|c: char| c.is_alphabetic()));
    names.dedup();
    names
}

/// The built-ins and then every documented function of the stdlib modules.
pub fn collect_all(engine: &Engine) -> Vec<FnDoc> {
    let mut all = collect(engine);
    all.extend(collect_stdlib(engine));
    all
}

/// Every function of the stdlib modules that has a `///` comment, named as a playbook calls it
/// (`values::check`), in the modules' order.
pub fn collect_stdlib(engine: &Engine) -> Vec<FnDoc> {
    let mut out = Vec::new();
    for (module, alias) in MODULES {
        let Some((_, text)) = crate::embedded::files()
            .iter()
            .find(|(p, _)| *p == format!("stdlib/{module}.rhai"))
        else {
            continue;
        };
        let Ok(ast) = engine.compile(text) else {
            continue;
        };
        let mut fns: Vec<FnDoc> = ast
            .iter_functions()
            .filter(|f| f.access != rhai::FnAccess::Private && !f.comments.is_empty())
            .map(|f| {
                let lines: Vec<String> = f
                    .comments
                    .iter()
                    .flat_map(|block| block.lines().map(strip_comment).collect::<Vec<_>>())
                    .collect();
                let (description, example) = split_example(&lines);
                FnDoc {
                    name: format!("{alias}::{}", f.name),
                    signature: format!("{alias}::{}({})", f.name, f.params.join(", ")),
                    description,
                    example,
                    module: Some(module.to_string()),
                }
            })
            .collect();
        fns.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(fns);
    }
    out
}

/// Every built-in of this tool (Rhai's standard library left out), sorted by name.
pub fn collect(engine: &Engine) -> Vec<FnDoc> {
    let json = engine
        .gen_fn_metadata_to_json(false)
        .expect("function metadata serializes");
    let meta: serde_json::Value = serde_json::from_str(&json).expect("metadata is JSON");
    let mut out: Vec<FnDoc> = meta["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f["name"].as_str()?.to_string();
            // Rhai's own functions, bounded in their place (crate::api::bounded)
            if crate::api::bounded::REPLACED.contains(&name.as_str()) {
                return None;
            }
            let signature = readable_signature(f["signature"].as_str().unwrap_or(&name));
            let lines: Vec<String> = f["docComments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .flat_map(|block| block.lines().map(strip_comment).collect::<Vec<_>>())
                .collect();
            let (description, example) = split_example(&lines);
            Some(FnDoc {
                name,
                signature,
                description,
                example,
                module: None,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.signature.cmp(&b.signature)));
    out
}

/// Rust types in plugin signatures, in the words of the script language.
fn readable_signature(sig: &str) -> String {
    let mut s = sig.to_string();
    if let Some(inner) = s
        .split_once("-> Result<")
        .and_then(|(_, r)| r.rsplit_once(", Box<EvalAltResult>>"))
        .map(|(t, _)| t.to_string())
    {
        let head = s
            .split_once("-> Result<")
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        s = format!("{head}-> {inner}");
    }
    for (rust, script) in [
        ("&mut ", ""),
        ("&str", "string"),
        ("ImmutableString", "string"),
        ("String", "string"),
        ("Dynamic", "any"),
        ("i64", "int"),
        ("f64", "float"),
        ("Array", "array"),
        ("Map", "map"),
        ("()", "()"),
    ] {
        s = s.replace(rust, script);
    }
    // `type R<T> = Result<T, Box<EvalAltResult>>` in the plugin modules
    if let Some((head, ret)) = s.split_once("-> R<")
        && let Some(inner) = ret.strip_suffix('>')
    {
        s = format!("{head}-> {inner}");
    }
    s.trim_end_matches(" -> ()").to_string()
}

fn strip_comment(line: &str) -> String {
    let t = line.trim_start();
    let t = t
        .strip_prefix("///")
        .or_else(|| t.strip_prefix("//!"))
        .unwrap_or(t);
    t.strip_prefix(' ').unwrap_or(t).trim_end().to_string()
}

fn split_example(lines: &[String]) -> (String, String) {
    let at = lines.iter().position(|l| l.trim() == "# Example");
    let (desc, ex) = match at {
        Some(i) => (&lines[..i], &lines[i + 1..]),
        None => (lines, &[][..]),
    };
    let example: Vec<&str> = ex
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim_start().starts_with("```"))
        .collect();
    (
        desc.join("\n").trim().to_string(),
        example.join("\n").trim().to_string(),
    )
}

/// Markdown for the given entries: one level-1 heading per group (the built-ins, each stdlib
/// module), one level-2 heading per function; headings inside a description are nested below.
pub fn render_md(docs: &[FnDoc]) -> String {
    let mut out = String::new();
    let mut group: Option<Option<&str>> = None;
    for d in docs {
        let this = d.module.as_deref();
        if group != Some(this) {
            group = Some(this);
            match this {
                None => out.push_str("# Built-ins\n\n"),
                Some(m) => {
                    let alias = MODULES.iter().find(|(p, _)| *p == m).map_or(m, |(_, a)| a);
                    out.push_str(&format!(
                        "# Module `{m}`\n\n`import \"{m}\" as {alias};`\n\n"
                    ));
                }
            }
        }
        let description: Vec<String> = d
            .description
            .lines()
            .map(|l| {
                if l.starts_with('#') {
                    format!("##{l}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        out.push_str(&format!(
            "## `{}`\n\n{}\n\n",
            d.signature,
            description.join("\n")
        ));
        if !d.example.is_empty() {
            out.push_str(&format!("```rhai\n{}\n```\n\n", d.example));
        }
    }
    out
}

/// JSON: `{"functions": [{name, signature, description, example}, ...]}`.
pub fn render_json(docs: &[FnDoc]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "functions": docs })).expect("docs serialize")
}

/// The entries for one name, or the closest names when there is none.
pub fn lookup<'a>(docs: &'a [FnDoc], name: &str) -> Result<Vec<&'a FnDoc>, String> {
    let found: Vec<&FnDoc> = docs.iter().filter(|d| d.name == name).collect();
    if !found.is_empty() {
        return Ok(found);
    }
    let names: Vec<String> = docs.iter().map(|d| d.name.clone()).collect();
    let hint = crate::check::suggest(name, &names)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_else(|| "; `clearml-script docs` lists them all".to_string());
    if name.contains("::") {
        return Err(format!("there is no stdlib function `{name}`{hint}"));
    }
    Err(format!("there is no built-in `{name}`{hint}"))
}
