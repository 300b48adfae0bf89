//! The heavy tier: the real binary on a loopback port (`crate::support::Server`), clocks,
//! and the machine's tools. Every test starts with `if skip_heavy() { return; }`, so
//! `cargo test` skips them and `RUN_SLOW_TESTS=1 cargo test` runs them.

mod audit;
mod bulk;
mod cluster;
mod crash;
mod erasure_race;
mod events;
mod hardening;
mod hostile;
mod input;
mod litestream;
mod metrics;
mod operations;
mod readme;
mod retention;
mod revisions_crash;
mod settings;
mod slow_clients;
mod soak;
mod transfer;
mod transport;
mod upgrade;
