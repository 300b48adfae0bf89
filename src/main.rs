fn main() {
    tune_allocator();
    let status = postd::cli::run(std::env::args_os().skip(1));
    // Another thread may still be writing a batch that holds our last lines.
    log::logger().flush();
    std::process::exit(status);
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

/// The static build's musl has no mallopt and needs none: its allocator hands freed memory
/// back at once. Measured (`cargo bench --bench compare`, 8 × W1 then 5 s idle): resident
/// 8.2 MiB (glibc, tuned here and trimmed after large requests: 10.5 MiB), peak 30.4
/// against 37.0 MiB. It is slower: W1 takes 1.4× the time, as it maps and unmaps SQLite's
/// 4 KiB buffers one by one (~34,000 mmap per W1 by `strace -c`; half of W1's CPU time is
/// in the kernel), and W2 gets 0.9× the rate. mimalloc in its place won W1 1.5× and W2
/// 1.6× back, but only with two non-default options (MIMALLOC_PURGE_DELAY=0,
/// MIMALLOC_ARENA_EAGER_COMMIT=0; with its defaults it held over 110 MiB), and even then
/// held 16–20 MiB after the same run, at or over the 16 MiB idle target: not taken.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
