//! Allocator tuning for training: keep freed memory for reuse instead of returning it to the
//! kernel, because a training step allocates and frees the same large tensors every batch and
//! each first touch of a fresh page costs microseconds (about 15,000 page faults per SNN-FFNN
//! step with glibc's defaults, 20% of its time on this project's test machines). One arena for
//! all threads: with an arena per thread (the training loop, its batch loader, the kernel
//! pools), glibc created and unmapped whole per-thread heaps every batch, which halved the
//! fused SRNN's training speed (18.6 s per MNIST epoch against 9.0 s with one arena).

use std::sync::OnceLock;

/// Makes glibc's malloc serve allocations below 32 MiB from one heap (one arena for all
/// threads) and never trim it; a
/// process-wide setting applied once (the CLI calls it at start, every fused op calls it, a
/// notebook may too). Returns whether the allocator accepted it (always false off Linux/glibc).
/// The price is that the process keeps its peak heap until it exits.
pub fn keep_freed_memory() -> bool {
    static ACCEPTED: OnceLock<bool> = OnceLock::new();
    *ACCEPTED.get_or_init(tune)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() -> bool {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    // SAFETY: `mallopt` only changes allocator parameters, takes plain integers and reports a
    // rejected value by returning 0 (32 MiB is the largest mmap threshold glibc accepts).
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
            && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1
            && mallopt(M_ARENA_MAX, 1) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() -> bool {
    false
}
