//! Make glibc malloc give a long-running server's request memory back to the OS.
//!
//! Measured with `deploy/test/scale.py` (BENCHMARKS.md, edge tier): under 64 clients a replica's
//! RSS grew far past its live data. Two glibc defaults cause it. (1) The mmap threshold is
//! dynamic: after the first large block (a 602 KB request body) is freed, glibc raises the
//! threshold to that size, so every later body, tensor and batch buffer comes from the heap
//! arenas, where freed holes are kept rather than unmapped. (2) Each thread that allocates
//! (tokio workers, `spawn_blocking` threads, rayon) may get its own arena, up to 8 per core, each
//! keeping its own holes. Fixing the threshold (which also turns the dynamic raise off) sends
//! every large block to its own mapping, returned on free; capping the arenas bounds what small
//! allocations can strand. Measured: the fixed threshold is what matters (one replica under 64
//! clients peaked at 197 MiB with it alone, 197 with both, 243 with neither); the arena cap made
//! no measurable difference there and is kept as a cheap bound. `MALLOC_*` environment variables
//! set by an operator still win: glibc reads them before `main`, and we only call `mallopt` for
//! those not set.

/// Blocks at least this large get their own mapping (glibc's initial default, kept fixed).
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Arenas for the whole process (glibc's default is 8 per core).
const ARENA_MAX: i32 = 2;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn apply() {
    let set = |var: &str, param: libc::c_int, value: i32| {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only changes allocator tunables; it is safe to call at any time.
            if unsafe { libc::mallopt(param, value) } != 1 {
                eprintln!("warning: mallopt({var}) was refused; memory may not be returned to the OS under load");
            }
        }
    };
    set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX);
}

/// Other allocators (musl, macOS) have no such tunables; nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn apply() {}
