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

/// Markdown for the given entries.
pub fn render_md(docs: &[FnDoc]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str(&format!("## `{}`\n\n{}\n\n", d.signature, d.description));
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
    Err(format!("there is no built-in `{name}`{hint}"))
}
