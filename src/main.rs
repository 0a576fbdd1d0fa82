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

    // The engine runs here, on the main thread, which is not a runtime thread: built-ins may
    // call `Handle::block_on`.
    let code = clearml_script::commands::main(interrupted);
    process::cleanup();
    tokio.shutdown_background();
    std::process::exit(code);
}
