//! What postd's integration tests share, on top of the test kit (tests/testkit): one typed
//! client of the HTTP API ([`Api`]) over two ways in — postd's request handler in this
//! process on a real database file ([`TestApp`], the quick tier) and the real binary on a
//! loopback port ([`Server`], the heavy tier) — with users and tokens, the command line,
//! what the contract says answers look like, and the heavy tier's switch.

mod api;
mod app;
mod cli;
mod contract;
mod machine;
pub mod prometheus;
mod rng;
mod server;
pub mod sse;
pub mod transfer;

pub use api::{Api, TestUser, PASSWORD};
pub use app::TestApp;
pub use cli::{assert_one_line_failure, cli, cli_ok, run_bin, BIN};
pub use contract::*;
pub use machine::{heavy_load, required_tool, timing_sensitive};
pub use postd_testkit::http::Response;
pub use postd_testkit::{skip_heavy, TempDir};
pub use rng::Rng;
pub use server::{Server, START_WITHIN};
