//! postd's integration tests, one binary: every test starts the real `postd` binary on a
//! free loopback port with a fresh temporary directory and talks HTTP to it (`support`),
//! except `hostile`'s properties, which drive the request handler in-process, and
//! `invariants`, which reads the source tree.
//!
//! One module per area; run one with `cargo test --test it core::`. A new area is a file
//! here plus its `mod` line below (`invariants::integration_tests_are_one_binary` checks).

mod support;

mod audit;
mod authz;
mod bulk;
mod conventions;
mod core;
mod crash;
mod hardening;
mod hostile;
mod invariants;
mod litestream;
mod metrics;
mod operations;
mod readme;
mod retention;
mod slow_clients;
mod soak;
mod transfer;
mod transport;
mod upgrade;
mod version;
