fn main() {
    tune_allocator();
    std::process::exit(postd::cli::run(std::env::args_os().skip(1)));
}

/// glibc raises its mmap threshold to the size of the largest buffer ever freed (up to
/// 32 MiB); from then on request-sized buffers (a bulk request's body and answer are
/// megabytes) come from per-thread arenas and stay resident after the request, one arena
/// per worker thread: eight workers that each served one 10,000-item bulk create held
/// ~200 MiB. Fixed thresholds give large buffers back when freed, and two arenas keep the
/// small allocations of many threads from fragmenting eight heaps. Measured (8 × W1,
/// then reads): resident 199 MiB → 26 MiB, W1 0.45 s → 0.33 s, reads unchanged.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called once, before any
    // other thread exists, with constants glibc documents.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
