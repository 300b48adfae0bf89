//! The heavy tier's switch, shared by every package's tests (rust-analyzer's
//! `RUN_SLOW_TESTS`): tests that start processes, hold sockets, wait on clocks or drive a
//! browser run only with `RUN_SLOW_TESTS=1`; `cargo test` alone runs the quick tier.

use std::io::Write;

/// Whether a heavy test should return at once: true without `RUN_SLOW_TESTS=1`, after
/// saying so on stderr past the harness's capture (a skip must be seen). A heavy test
/// starts with `if skip_heavy() { return; }`. In CI (`CI` set) the switch must be on, or
/// the test fails: CI runs both tiers, and a skip there would pass untested.
pub fn skip_heavy() -> bool {
    if std::env::var("RUN_SLOW_TESTS").is_ok_and(|on| !on.is_empty() && on != "0") {
        return false;
    }
    // libtest runs each test on a thread named after it.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI runs the heavy tier; set RUN_SLOW_TESTS=1"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: set RUN_SLOW_TESTS=1 (heavy tier)"
    );
    true
}
