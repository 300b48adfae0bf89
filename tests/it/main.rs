//! postd's integration tests: one binary, two tiers.
//!
//! - `quick`, which `cargo test` runs: the HTTP contract in process, through one typed
//!   client ([`support::Api`]) on postd's own request handler and a real SQLite file
//!   ([`support::TestApp`]); the command line as one-shot processes; the invariants of the
//!   source tree. No server process, no socket, no waiting on a clock.
//! - `heavy`, which `RUN_SLOW_TESTS=1 cargo test` adds (and CI always runs): what needs
//!   the real binary on a port ([`support::Server`]), a clock, or tools of the machine —
//!   the transport, slow clients, SIGKILL and soak, shutdown and logs, Litestream, memory
//!   and file modes, the README against a live server. Every heavy test starts with
//!   `if skip_heavy() { return; }`.
//!
//! One module per area in each tier; run one with `cargo test --test it posts::`. A new
//! area is a file in `quick/` or `heavy/` and its `mod` line there
//! (`quick::invariants::integration_tests_are_one_binary` checks).

mod heavy;
mod quick;
mod support;
