use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clearml_script::process;
use tokio::signal::unix::{SignalKind, signal};

/// Counts the heap in use, for the engine's memory limit ([`clearml_script::memory`]).
#[global_allocator]
static ALLOCATOR: clearml_script::memory::Counting = clearml_script::memory::Counting;

fn main() {
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    clearml_script::runtime::set_tokio_handle(tokio.handle().clone());

    // The first Ctrl-C (or SIGTERM) asks the run to stop between steps, while the current
    // child (in a process group of its own, so the terminal's Ctrl-C does not reach it) finishes
    // its work; a second one is forwarded to the child. The handlers are registered here, before
    // anything runs, so no early signal is lost.
    let interrupted = Arc::new(AtomicBool::new(false));
    for (kind, number, name) in [
        (SignalKind::interrupt(), libc::SIGINT, "Ctrl-C"),
        (SignalKind::terminate(), libc::SIGTERM, "SIGTERM"),
    ] {
        let flag = interrupted.clone();
        match tokio.block_on(async { signal(kind) }) {
            Ok(mut stream) => {
                tokio.spawn(async move {
                    let mut forwarded = false;
                    while stream.recv().await.is_some() {
                        process::note_signal(number);
                        // a chart step's live lines go before anything is said
                        clearml_script::progress::interrupt();
                        // the flag, not the signal record: the REPL clears the flag after each
                        // input, so a later Ctrl-C there is a first one again
                        let again = flag.swap(true, Ordering::SeqCst);
                        if process::reading_values() {
                            eprintln!(
                                "\ninterrupted ({name}) while the site values were read: nothing was changed"
                            );
                            process::cleanup();
                            std::process::exit(process::interrupted_exit_code());
                        }
                        if !again {
                            forwarded = false;
                        }
                        if again {
                            // forwarded to a running child once; with none (or a third time),
                            // the tool stops at once, its private files removed
                            if !forwarded && process::interrupt_child() {
                                forwarded = true;
                                eprintln!("\n{name} again: interrupting the running step");
                            } else {
                                process::cleanup();
                                std::process::exit(process::interrupted_exit_code());
                            }
                        } else {
                            eprintln!(
                                "\ninterrupted ({name}): stopping after the current step (Ctrl-C again to interrupt it)"
                            );
                        }
                    }
                });
            }
            Err(e) => {
                eprintln!("warning: {name} cannot be handled ({e}); it will stop the run at once")
            }
        }
    }

    // A panic is a bug of the tool: its message is said with the secrets masked (the default
    // hook would print it as it is), on any thread. On the main thread it ends the run with 70,
    // the run's private files (helm's values, which carry secrets) removed like on every other
    // way out.
    std::panic::set_hook(Box::new(report_panic));

    // The engine runs here, on the main thread, which is not a runtime thread: built-ins may
    // call `Handle::block_on`.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        clearml_script::commands::main(interrupted)
    }))
    .unwrap_or(INTERNAL_ERROR);
    process::cleanup();
    tokio.shutdown_background();
    std::process::exit(code);
}

/// The exit code of a run a bug ended (EX_SOFTWARE of sysexits.h).
const INTERNAL_ERROR: i32 = 70;

/// Say a panic's message and place, masked: a secret in a value the failed code formatted never
/// reaches the terminal. If it cannot be masked (the panic came while the secrets' registry was
/// held), the message is left out rather than said unmasked.
fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    let place = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let masked = clearml_script::secret::redact_if_free(&message)
        .unwrap_or_else(|| "(the message is withheld: it could not be masked)".to_string());
    let thread = std::thread::current();
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = match backtrace.status() {
        std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
        _ => String::new(),
    };
    eprintln!(
        "error: internal error (a bug in clearml-script, not in the playbook or the values), in thread {}: {masked}{place}\n\
         Please report it with the command line and this message; a re-run continues from the cluster's state.{backtrace}",
        thread.name().unwrap_or("unnamed"),
    );
}
