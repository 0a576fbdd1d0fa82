//! The heap in use, counted by the binary's allocator, for the engine's memory limit.
//!
//! Rhai's own size limits (`set_max_array_size`, `set_max_map_size`, `set_max_string_size`)
//! measure the whole value again, recursively, after every change: `a.push(x)` in a loop is
//! quadratic (200,000 pushes took 26 s), and an index assignment that adds a key, `m[k] = v`,
//! measures only the value assigned, so a map grows past its limit unchecked (rhai 1.27, the
//! newest). The engine therefore leaves those limits off and bounds the data a playbook can
//! build by the heap in use instead: one atomic load per operation, whatever the value's shape.
//!
//! The counter is maintained by [`Counting`], the allocator the binary installs; a program that
//! does not install it (the library's tests) counts nothing, and the limit never fires there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static IN_USE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it has handed out and not got back.
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                IN_USE.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Bytes of heap in use (0 when the binary's allocator is not [`Counting`]).
pub fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}
