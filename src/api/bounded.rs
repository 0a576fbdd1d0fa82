//! Rhai's functions that take a size or a time from the script, replaced by bounded ones.
//!
//! The engine runs without Rhai's per-value size limits (they re-measure a value after every
//! change); the heap limit, checked between operations (`crate::engine`), bounds the data
//! instead. One call that allocates a size it is given (`a.pad(n, x)`, `blob(n)`) is a single
//! operation, so it would pass that check and ask the allocator for any size: a capacity
//! overflow panic, or an abort. Rhai's `sleep` panics on a time `Duration` cannot hold and
//! cannot be stopped by Ctrl-C, and its string `pad` with an empty padding never returns. The
//! engine's own functions are found before Rhai's packages, so these take their place with the
//! same names and meanings.

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, FLOAT, INT, ImmutableString};

type R<T> = Result<T, Box<EvalAltResult>>;

fn error(message: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into(), rhai::Position::NONE).into()
}

/// Whether `count` more items of `each` bytes fit under the heap limit; the same message as
/// the limit checked between operations.
fn room(builtin: &str, count: usize, each: usize) -> R<()> {
    let limit = crate::engine::limits::HEAP;
    let used = crate::memory::in_use();
    let wanted = (count as u128) * (each as u128);
    if used as u128 + wanted > limit as u128 {
        return Err(error(format!(
            "{builtin}: {count} items would outgrow the playbook's memory limit ({} MiB of heap \
             in use, the limit is {} MiB)",
            used >> 20,
            limit >> 20
        )));
    }
    Ok(())
}

/// A length given by the script, as a `usize`: 0 when not positive.
fn length(len: INT) -> usize {
    usize::try_from(len).unwrap_or(0)
}

/// How many items of `each` bytes `pad` adds to grow from `have` to `len`: none when it is not
/// longer, else an error unless they fit under the heap limit. One check for the three `pad`s.
fn growth(have: usize, len: usize, each: usize) -> R<usize> {
    if len <= have {
        return Ok(0);
    }
    room("pad", len - have, each)?;
    Ok(len - have)
}

fn pad_array(a: &mut Array, len: INT, item: Dynamic) -> R<()> {
    let len = length(len);
    if growth(a.len(), len, std::mem::size_of::<Dynamic>())? > 0 {
        a.resize(len, item);
    }
    Ok(())
}

fn blob_of(len: INT, value: INT) -> R<Blob> {
    let len = length(len);
    room("blob", len, 1)?;
    Ok(vec![(value & 0xff) as u8; len])
}

fn pad_blob(b: &mut Blob, len: INT, value: INT) -> R<()> {
    let len = length(len);
    if growth(b.len(), len, 1)? > 0 {
        b.resize(len, (value & 0xff) as u8);
    }
    Ok(())
}

fn pad_string(s: &mut ImmutableString, len: INT, padding: &str) -> R<()> {
    if padding.is_empty() {
        return Err(error(
            "pad: the padding is an empty string: give at least one character".to_string(),
        ));
    }
    let more = growth(s.chars().count(), length(len), 4)?;
    if more == 0 {
        // not copied: the text may be shared
        return Ok(());
    }
    // as Rhai's: the padding repeated, the last copy cut to the length
    s.make_mut().extend(padding.chars().cycle().take(more));
    Ok(())
}

/// Wait `seconds`, in steps short enough that Ctrl-C (or SIGTERM) stops the wait.
fn sleep_for(seconds: FLOAT) -> R<()> {
    let Ok(total) = std::time::Duration::try_from_secs_f64(seconds) else {
        return Err(error(format!(
            "sleep: {seconds:?} is not a time to wait: give a number of seconds, 0 or more"
        )));
    };
    let interrupted = crate::runtime::interrupt_flag();
    let until = std::time::Instant::now() + total;
    loop {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::runtime::interrupted());
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
    }
}

/// The names of Rhai's functions replaced here: they stay Rhai's in the docs.
pub const REPLACED: &[&str] = &["pad", "blob", "sleep"];

/// Put the bounded functions in the engine's namespace, before Rhai's.
pub fn register(engine: &mut Engine) {
    engine
        .register_fn("pad", pad_array)
        .register_fn("blob", |len: INT| blob_of(len, 0))
        .register_fn("blob", blob_of)
        .register_fn("pad", pad_blob)
        .register_fn("pad", |s: &mut ImmutableString, len: INT, c: char| {
            pad_string(s, len, &c.to_string())
        })
        .register_fn("pad", |s: &mut ImmutableString, len: INT, p: &str| {
            pad_string(s, len, p)
        })
        .register_fn("sleep", sleep_for)
        .register_fn("sleep", |seconds: INT| sleep_for(seconds as FLOAT));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str) -> Result<String, String> {
        let mut engine = Engine::new();
        register(&mut engine);
        engine
            .eval::<Dynamic>(script)
            .map(|d| d.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sizes_past_the_heap_limit_are_errors_not_aborts() {
        for script in [
            "let a = []; a.pad(9223372036854775807, 0); a",
            "blob(9223372036854775807)",
            "blob(9223372036854775807, 1)",
            "let b = blob(); b.pad(9223372036854775807, 0); b",
            "let s = \"x\"; s.pad(9223372036854775807, \"y\"); s",
            "let s = \"x\"; s.pad(9223372036854775807, 'y'); s",
        ] {
            let e = run(script).unwrap_err();
            assert!(
                e.contains("would outgrow the playbook's memory limit"),
                "{script}: {e}"
            );
        }
    }

    #[test]
    fn the_bound_is_the_heap_limit_to_the_byte() {
        // the library's tests count no heap in use (the binary installs the counting
        // allocator), so the whole limit is room
        assert_eq!(crate::memory::in_use(), 0);
        let limit = crate::engine::limits::HEAP;
        // a zeroed blob of exactly the limit fits (calloc'd: no page is touched)
        assert!(run(&format!("blob({limit}).len()")).is_ok());
        let e = run(&format!("blob({})", limit + 1)).unwrap_err();
        assert!(e.contains("1073741825 items would outgrow"), "{e}");
        // items of an array count at their size: one item past the limit's worth is refused
        let items = limit / std::mem::size_of::<Dynamic>() + 1;
        let e = run(&format!("let a = []; a.pad({items}, 0); a.len()")).unwrap_err();
        assert!(
            e.contains("would outgrow the playbook's memory limit"),
            "{e}"
        );
        // padding counts only what it adds: 10 bytes onto a blob 10 short of the limit fit
        let (short, at) = (limit - 10, limit);
        assert_eq!(
            run(&format!("let b = blob({short}); b.pad({at}, 0); b.len()")).unwrap(),
            at.to_string()
        );
    }

    #[test]
    fn the_bounded_functions_mean_what_rhais_do() {
        assert_eq!(run("let a = [1]; a.pad(3, 0); a").unwrap(), "[1, 0, 0]");
        assert_eq!(run("let a = [1, 2]; a.pad(1, 0); a").unwrap(), "[1, 2]");
        assert_eq!(run("let a = [1]; a.pad(-5, 0); a").unwrap(), "[1]");
        assert_eq!(run("blob(3, 0x1ff)").unwrap(), "[ffffff]");
        assert_eq!(run("blob(2)").unwrap(), "[0000]");
        assert_eq!(
            run("let b = blob(3, 1); b.pad(1, 0); b").unwrap(),
            "[010101]"
        );
        assert_eq!(
            run("let b = blob(1, 7); b.pad(3, 9); b").unwrap(),
            "[070909]"
        );
        assert_eq!(
            run("let s = \"ab\"; s.pad(7, \"xyz\"); s").unwrap(),
            "abxyzxy"
        );
        assert_eq!(run("let s = \"ab\"; s.pad(4, '-'); s").unwrap(), "ab--");
        assert_eq!(run("let s = \"abc\"; s.pad(2, '-'); s").unwrap(), "abc");
        assert!(
            run("let s = \"1\"; s.pad(10, \"\"); s")
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn sleep_refuses_what_is_no_time_and_waits_what_is() {
        for bad in [
            "sleep(1e300)",
            "sleep(-1.0)",
            "sleep(-1)",
            "sleep(0.0 / 0.0)",
        ] {
            let e = run(bad).unwrap_err();
            assert!(e.contains("is not a time to wait"), "{bad}: {e}");
        }
        let t = std::time::Instant::now();
        run("sleep(0.15)").unwrap();
        assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    }
}
