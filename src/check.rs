//! `clearml-script check`: compile with strict variables and find calls to functions that exist
//! nowhere (not a built-in, not defined in the script, not in an imported module), without
//! running anything.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rhai::{ASTNode, Engine, Expr, Position, Stmt};

use crate::diagnostic::{self, Report};
use crate::engine::{self, Sources};

/// Names a script may always call: Rhai's keyword functions.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_def_fn",
    "is_def_var",
    "is_shared",
];

/// The name part of a function signature `name(params) -> type`.
pub fn signature_name(sig: &str) -> &str {
    let name = sig.split('(').next().unwrap_or(sig).trim();
    name.rsplit(' ').next().unwrap_or(name)
}

/// Every function registered in the engine: built-ins and Rhai's standard library.
pub fn known_functions() -> BTreeSet<String> {
    let engine = engine::build(
        Path::new("."),
        Sources::default(),
        Arc::new(AtomicBool::new(false)),
    );
    known_functions_of(&engine)
}

pub fn known_functions_of(engine: &Engine) -> BTreeSet<String> {
    engine
        .gen_fn_signatures(true)
        .iter()
        .map(|s| signature_name(s).to_string())
        .chain(KEYWORDS.iter().map(|s| s.to_string()))
        .collect()
}

/// The methods a module puts in the namespace of the script that imports it, its own imports'
/// included: those declared on a type (`fn map.values_hosts()` in clearml/values, which
/// clearml/agent imports), called as methods only (`site.values_hosts()`).
pub fn global_methods_of(module: &rhai::Module) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = module
        .iter_script_fn_info()
        .filter(|(namespace, ..)| *namespace == rhai::FnNamespace::Global)
        .map(|(_, _, name, ..)| name.to_string())
        .collect();
    for (_, sub) in module.iter_sub_modules() {
        out.extend(global_methods_of(sub));
    }
    out
}

/// The closest known name, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .into_iter()
        .filter(|k| {
            k.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        })
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.clone())
}

/// Check one script: `Ok(problem count)` after printing each problem, or a compile report.
pub fn check_file(path: &Path) -> Result<Vec<Report>, Report> {
    // a standard playbook's name resolves as `run` resolves it
    let book = crate::playbook::resolve(&path.to_string_lossy()).map_err(|e| Report {
        needs_live: false,
        text: format!("error: {e}\n"),
        exit_code: 2,
    })?;
    let name = book.name.clone();
    let text = book.text;
    let sources = Sources::default();
    sources.insert(&name, &text);
    let base = book.base_dir;
    let engine = engine::build(&base, sources.clone(), Arc::new(AtomicBool::new(false)));
    let ast = crate::engine::compile(&engine, &text)
        .map_err(|e| diagnostic::render_parse(&e, &name, &sources))?;

    let mut known = known_functions_of(&engine);
    known.extend(ast.iter_functions().map(|f| f.name.to_string()));

    // Variables and parameters may hold function pointers called by name.
    let mut variables: BTreeSet<String> = ast
        .iter_functions()
        .flat_map(|f| f.params.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .collect();
    let mut imports: HashMap<String, (String, Position)> = HashMap::new();
    // (namespace, name, where, called as a method)
    let mut calls: Vec<(String, String, Position, bool)> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, _, _))) => {
                variables.insert(x.0.name.to_string());
            }
            Some(ASTNode::Stmt(Stmt::For(x, _))) => {
                variables.insert(x.0.name.to_string());
                if let Some(counter) = &x.1 {
                    variables.insert(counter.name.to_string());
                }
            }
            Some(ASTNode::Stmt(Stmt::Import(x, pos))) => {
                if let Expr::StringConstant(p, _) = &x.0 {
                    imports.insert(x.1.name.to_string(), (p.to_string(), *pos));
                }
            }
            Some(ASTNode::Expr(Expr::FnCall(f, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(f, pos)))
                if f.op_token.is_none() =>
            {
                calls.push((f.namespace.to_string(), f.name.to_string(), *pos, false));
            }
            Some(ASTNode::Expr(Expr::MethodCall(f, pos))) => {
                calls.push((String::new(), f.name.to_string(), *pos, true));
            }
            _ => {}
        }
        true
    });

    let mut module_fns: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut methods: BTreeSet<String> = BTreeSet::new();
    let mut reports = Vec::new();
    for (alias, (import, pos)) in &imports {
        match engine
            .module_resolver()
            .resolve(&engine, Some(&name), import, *pos)
        {
            Ok(m) => {
                // a method on a type is called on a value, never as `alias::name`
                let global = global_methods_of(&m);
                let fns = m
                    .gen_fn_signatures_with_mapper(std::borrow::Cow::Borrowed)
                    .map(|s| signature_name(&s).to_string())
                    .filter(|name| !global.contains(name))
                    .collect();
                module_fns.insert(alias.clone(), fns);
                methods.extend(global);
            }
            Err(e) => reports.push(diagnostic::render(&e, &name, &sources)),
        }
    }

    for (ns, fname, pos, is_method) in calls {
        if !fname
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
        {
            continue;
        }
        let (found, candidates): (bool, Vec<String>) = if ns.is_empty() {
            (
                known.contains(&fname)
                    || variables.contains(&fname)
                    || (is_method && methods.contains(&fname)),
                known
                    .iter()
                    .chain(methods.iter().filter(|_| is_method))
                    .cloned()
                    .collect(),
            )
        } else {
            match module_fns.get(&ns) {
                Some(fns) => (fns.contains(&fname), fns.iter().cloned().collect()),
                // An unresolved import was reported above.
                None => (true, Vec::new()),
            }
        };
        if found {
            continue;
        }
        let shown = if ns.is_empty() {
            fname.clone()
        } else {
            format!("{ns}::{fname}")
        };
        let mut text = format!(
            "error: unknown function `{shown}`\n{}",
            diagnostic::snippet(&name, pos, &sources)
        );
        match suggest(&fname, &candidates) {
            Some(s) if ns.is_empty() => text.push_str(&format!("  = help: did you mean `{s}`?\n")),
            Some(s) => text.push_str(&format!("  = help: did you mean `{ns}::{s}`?\n")),
            None => {}
        }
        reports.push(Report {
            text,
            exit_code: 2,
            needs_live: false,
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known: BTreeSet<String> = ["require", "merge", "validate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(suggest("requir", &known), Some("require".to_string()));
        assert_eq!(suggest("validat", &known), Some("validate".to_string()));
        assert_eq!(suggest("zzzzzz", &known), None);
    }

    #[test]
    fn signature_names() {
        assert_eq!(signature_name("merge(a: ?, b: ?) -> ?"), "merge");
        assert_eq!(signature_name("fn helper(x)"), "helper");
    }
}
