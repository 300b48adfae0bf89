//! What postd's tests and its benchmark share, so there is one of each: a temporary
//! directory ([`TempDir`]), a raw HTTP/1.1 client ([`http`], [`client`]), the server
//! binary as a child process ([`ServerProcess`]) and the heavy tier's switch
//! ([`skip_heavy`]).
//!
//! The binary's path is passed in: `env!("CARGO_BIN_EXE_postd")` exists only in postd's
//! own integration tests and benches. What is specific to postd's tests (users, tokens,
//! the command line) lives beside them in `tests/it/support.rs`.

pub mod client;
mod heavy;
pub mod http;
mod process;
mod temp_dir;

pub use heavy::skip_heavy;
pub use process::ServerProcess;
pub use temp_dir::TempDir;
