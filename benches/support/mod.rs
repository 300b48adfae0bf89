//! Helpers for `benches/postd.rs`: deterministic content, a minimal keep-alive HTTP/1.1
//! client, the server process guard and RSS probes, and the `wrk` driver.

pub mod content;
pub mod http;
pub mod server;
pub mod wrk;
