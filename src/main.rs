use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

    // The first Ctrl-C asks the run to stop between steps; a second one stops at once. The
    // handler is registered here, before anything runs, so no early Ctrl-C is lost.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let signals = tokio.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    });
    match signals {
        Ok(mut sigint) => {
            tokio.spawn(async move {
                while sigint.recv().await.is_some() {
                    if flag.swap(true, Ordering::SeqCst) {
                        std::process::exit(130);
                    }
                    eprintln!(
                        "\ninterrupted: stopping after the current step (Ctrl-C again to stop now)"
                    );
                }
            });
        }
        Err(e) => {
            eprintln!("warning: Ctrl-C cannot be handled ({e}); it will stop the run at once")
        }
    }

    // The engine runs here, on the main thread, which is not a runtime thread: built-ins may
    // call `Handle::block_on`.
    let code = clearml_script::app::main(interrupted);
    tokio.shutdown_background();
    std::process::exit(code);
}
