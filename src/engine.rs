//! Rhai engine assembly: explicit limits, strict variables, errors on unknown map properties,
//! the module resolver (embedded stdlib, then files next to the importing script), print hooks
//! and the interrupt check.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::module_resolvers::ModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, Position, Scope, Shared};

use crate::embedded;
use crate::failure::Failure;
use crate::secret::Secret;
use crate::ui;

/// The token of a run stopped by Ctrl-C or SIGTERM; any other token of a terminated run is an
/// engine limit's message.
pub const INTERRUPTED: &str = "interrupted";

/// The limits, the same in debug and release builds (Rhai's own defaults differ between them).
pub mod limits {
    pub const CALL_LEVELS: usize = 64;
    pub const EXPR_DEPTH: usize = 128;
    pub const FN_EXPR_DEPTH: usize = 64;
    pub const OPERATIONS: u64 = 500_000_000;
    /// The heap the process may hold while a playbook runs (its data, and the rest of the
    /// process: the sandbox's simulators, clients), in place of Rhai's per-value size limits
    /// ([`crate::memory`]).
    pub const HEAP: usize = 1024 * 1024 * 1024;
    pub const MODULES: usize = 1_000;
    pub const VARIABLES: usize = 100_000;
}

/// Source texts by name, for diagnostics: the playbook, and each module as it is loaded.
#[derive(Default, Clone)]
pub struct Sources(Rc<RefCell<HashMap<String, String>>>);

impl Sources {
    pub fn insert(&self, name: &str, text: &str) {
        self.0
            .borrow_mut()
            .insert(name.to_string(), text.to_string());
    }
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.borrow().get(name).cloned()
    }
}

/// Build the engine. `base_dir` is where imports of the top-level script resolve.
pub fn build(base_dir: &Path, sources: Sources, interrupted: Arc<AtomicBool>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_call_levels(limits::CALL_LEVELS)
        .set_max_expr_depths(limits::EXPR_DEPTH, limits::FN_EXPR_DEPTH)
        .set_max_operations(limits::OPERATIONS)
        // no per-value size limits: Rhai re-measures the whole value after each change (see
        // crate::memory); the heap limit below bounds the data instead
        .set_max_modules(limits::MODULES)
        .set_max_variables(limits::VARIABLES)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);

    engine.register_type_with_name::<Secret>("Secret");
    engine.register_type_with_name::<crate::api::clearml_api::ClearmlSession>("ClearmlSession");
    engine.register_type_with_name::<Failure>("Failure");
    crate::api::register(&mut engine);

    engine.on_print(ui::print);
    engine.on_debug(|text, source, pos| {
        if ui::is_quiet() {
            return;
        }
        let at = match (source, pos.line()) {
            (Some(s), Some(l)) => format!("{s}:{l}: "),
            (None, Some(l)) => format!("line {l}: "),
            _ => String::new(),
        };
        ui::err(&format!("[debug] {at}{text}\n"));
    });
    engine.on_progress(move |_| {
        if interrupted.load(Ordering::SeqCst) {
            return Some(Dynamic::from(INTERRUPTED));
        }
        let used = crate::memory::in_use();
        (used > limits::HEAP).then(|| {
            Dynamic::from(format!(
                "the playbook's data outgrew the memory limit ({} MiB of heap in use, the limit \
                 is {} MiB): an array, map or string that grows without end?",
                used >> 20,
                limits::HEAP >> 20
            ))
        })
    });
    engine.set_module_resolver(Resolver {
        base_dir: base_dir.to_path_buf(),
        sources,
        cache: RefCell::new(HashMap::new()),
    });
    engine
}

/// Resolves `import "clearml/NAME"` to the embedded stdlib, and any other path to a file
/// relative to the importing script's directory (the playbook's for the top level).
struct Resolver {
    base_dir: PathBuf,
    sources: Sources,
    cache: RefCell<HashMap<String, Shared<Module>>>,
}

impl Resolver {
    fn locate(&self, source: Option<&str>, path: &str) -> Result<(String, String), String> {
        if path.starts_with("clearml/") {
            return embedded::stdlib_module(path)
                .map(|(name, text)| (format!("<embedded>/{name}"), text.to_string()))
                .ok_or_else(|| {
                    let known: Vec<String> = embedded::files()
                        .iter()
                        .filter_map(|(p, _)| p.strip_prefix("stdlib/"))
                        .map(|p| format!("\"{}\"", p.trim_end_matches(".rhai")))
                        .collect();
                    format!(
                        "there is no stdlib module \"{path}\"; the stdlib has: {}",
                        known.join(", ")
                    )
                });
        }
        let dir = source
            .filter(|s| !s.starts_with("<embedded>"))
            .and_then(|s| Path::new(s).parent().map(Path::to_path_buf))
            .unwrap_or_else(|| self.base_dir.clone());
        let mut file = dir.join(path);
        if file.extension().is_none() {
            file.set_extension("rhai");
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read module {}: {e}", file.display()))?;
        Ok((file.display().to_string(), text))
    }
}

thread_local! {
    /// The stdlib's modules as parsed, by name (their text is the binary's own).
    static COMPILED: RefCell<HashMap<String, rhai::AST>> = RefCell::new(HashMap::new());
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let (name, text) = self.locate(source, path).map_err(|msg| {
            Box::new(EvalAltResult::ErrorInModule(
                path.to_string(),
                EvalAltResult::ErrorSystem(msg, "module not found".into()).into(),
                pos,
            ))
        })?;
        if let Some(m) = self.cache.borrow().get(&name) {
            return Ok(m.clone());
        }
        self.sources.insert(&name, &text);
        let in_module = |err: Box<EvalAltResult>| {
            Box::new(EvalAltResult::ErrorInModule(name.clone(), err, pos))
        };
        // a stdlib module is parsed once per process: the plan pass and the run (and the
        // schema's probes) each build an engine, all with the same settings ([`build`])
        let embedded = name.starts_with("<embedded>/");
        let ast = match COMPILED.with(|c| c.borrow().get(&name).filter(|_| embedded).cloned()) {
            Some(ast) => ast,
            None => {
                let mut ast = engine.compile(&text).map_err(|e| in_module(e.into()))?;
                ast.set_source(name.as_str());
                if embedded {
                    COMPILED.with(|c| c.borrow_mut().insert(name.clone(), ast.clone()));
                }
                ast
            }
        };
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        let module: Shared<Module> = module.into();
        self.cache.borrow_mut().insert(name, module.clone());
        Ok(module)
    }
}

/// Compile a playbook with strict variables. `site` is declared as a variable here, not a
/// constant: Rhai's optimizer would fold a constant's value into the code, and folding formats
/// host types such as secrets without their `to_string`. At run time it is a constant.
pub fn compile(engine: &Engine, text: &str) -> Result<rhai::AST, rhai::ParseError> {
    let mut scope = rhai::Scope::new();
    scope.push("site", rhai::Map::new());
    engine.compile_with_scope(&scope, text)
}
