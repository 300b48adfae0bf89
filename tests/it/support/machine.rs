//! What heavy tests need from the machine: turns between tests that load it and tests that
//! time it, and the tools some tests use. The heavy tier's switch is the test kit's
//! [`postd_testkit::skip_heavy`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, PoisonError};

/// Tests that load the machine for many seconds (soak, crash) and tests that time the
/// server's answers (slow_clients) take turns: on 2 cores the load would blur the timings.
/// As separate test binaries they never overlapped; each kind may overlap its own, as
/// tests of one binary did.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    HeavyLoad,
    TimingSensitive,
}

/// The kind of test running now, and how many of it.
static RUNNING: Mutex<(Option<Kind>, usize)> = Mutex::new((None, 0));
static TURN_ENDED: Condvar = Condvar::new();

/// Held by a test while it runs; see [`heavy_load`] and [`timing_sensitive`].
pub struct Turn(());

/// Waits until no timing-sensitive test runs; hold the result for the whole test.
pub fn heavy_load() -> Turn {
    take_turn(Kind::HeavyLoad)
}

/// Waits until no heavy-load test runs; hold the result for the whole test.
pub fn timing_sensitive() -> Turn {
    take_turn(Kind::TimingSensitive)
}

fn take_turn(kind: Kind) -> Turn {
    // A test that panicked holding the lock poisons it; the state is still right.
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    while running.0.is_some_and(|other| other != kind) {
        running = TURN_ENDED
            .wait(running)
            .unwrap_or_else(PoisonError::into_inner);
    }
    *running = (Some(kind), running.1 + 1);
    Turn(())
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running.1 -= 1;
        if running.1 == 0 {
            running.0 = None;
            TURN_ENDED.notify_all();
        }
    }
}

/// A tool the test needs from the machine: its path, or — outside CI — `None` after saying
/// on stderr that the test is skipped. In CI (`CI=true`) a missing tool fails the test:
/// CI installs what the tests need, so a skip there would pass untested.
pub fn required_tool(name: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{test}: `{name}` is not installed, and CI must install it"
        );
        // Past the harness's capture: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: `{name}` is not installed"
        );
    }
    found
}
