//! postd: posts and comments in one SQLite file, served over HTTP.
//!
//! Layers, outermost first: `cli` (commands) → `api` (HTTP: routing, auth, input,
//! problem+json) → `store` (all SQL) → SQLite. `model` holds the domain types and field
//! rules every layer shares.

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod files;
pub mod json;
pub mod logging;
pub mod model;
pub mod net;
pub mod retention;
pub mod store;
pub mod text;
pub mod version;
