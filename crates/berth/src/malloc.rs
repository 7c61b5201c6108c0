//! The allocator's arena count for `berth serve`.
//!
//! glibc's malloc gives threads up to 8 arenas per core. A pull storm touches many tokio
//! blocking threads (each blob read chunk is read on one), each 128 KiB chunk lands in
//! whichever arena that thread holds, and freed chunks stay cached per arena: 200 clients
//! pulling a 50 MB image peaked at 66-83 MiB of RSS with the default and 54-64 MiB with two
//! arenas on a 2-core machine, at the same or higher throughput (`bench/results/`,
//! 2026-12-04). One arena per core keeps the lock contention the extra arenas exist to
//! avoid: tokio runs one worker per core.

/// Caps glibc's arenas at one per core unless the operator set `MALLOC_ARENA_MAX`
/// (glibc reads it at start, and an explicit choice wins). Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a tunable of the allocator; called from the main
        // thread before the runtime starts any other thread. No safe wrapper exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
