//! The quick tier: the contract in process (`crate::support::TestApp`), the command line
//! as one-shot processes, and the source tree's invariants. Nothing here starts a server
//! (`invariants::the_quick_tier_starts_no_server`); a heavy test may run a workload of
//! this tier against the binary.

mod audit;
mod auth;
mod authz;
pub mod bulk;
mod cli;
mod comments;
mod console;
mod conventions;
mod erasure;
mod events;
mod filter_delete;
pub mod hardening;
mod hostile;
mod input;
mod invariants;
mod metrics;
mod ops;
mod owner_undo;
mod paging;
mod posts;
mod retention;
mod revisions;
mod routing;
mod search;
mod slugs;
mod throttle;
mod tokens;
mod transfer;
mod trash;
mod version;
