//! The process's heap: giving back what heavy work freed.
//!
//! Owns: nothing but that. Must not touch: anything else (a leaf).

/// Give the heap memory freed by heavy work back to the system. glibc
/// keeps freed memory in its arenas: after a burst of reports and ledger
/// queries (each connection with a 64 MB page cache) the agent stayed at
/// its peak RSS for good (BENCHMARKS.md, "API under load"). Costs a walk
/// of the heaps (milliseconds): call it after heavy work, not per item.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointer and only walks glibc's own
        // heaps, under their locks; it may be called from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
