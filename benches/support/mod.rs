//! Helpers for `benches/postd.rs`: deterministic content, the server and its RSS probes,
//! and the `wrk` driver. The temporary directory, the HTTP client and starting the binary
//! come from the test kit (tests/testkit), shared with the tests.

pub mod bare;
pub mod content;
pub mod server;
pub mod transfer;
pub mod wrk;
