//! A blocking client of [dqlite](https://dqlite.io)'s wire protocol and a
//! run-time binding of libdqlite's node API.
//!
//! * [`wire`]: framing and encoding of every message of protocol version 1.
//! * [`Client`]: one TCP connection to one node, one request at a time,
//!   each with a deadline; query results stream batch by batch ([`Rows`]).
//! * [`Connector`]: finds the cluster's leader from seed addresses.
//! * [`node`]: runs dqlite nodes in-process through libdqlite, loaded with
//!   `dlopen` on first use so nothing else needs it installed.
//!
//! ```no_run
//! # fn main() -> Result<(), dqlite::Error> {
//! use dqlite::{Connector, Param};
//!
//! let mut client = Connector::new(["127.0.0.1:9001"]).connect()?;
//! let db = client.open("app")?;
//! client.exec_sql(db, "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB)", &[])?;
//! client.exec_sql(
//!     db,
//!     "INSERT INTO kv VALUES (?, ?)",
//!     &[Param::Text("a"), Param::Blob(b"1")],
//! )?;
//! for row in client.query_sql(db, "SELECT k, v FROM kv", &[])? {
//!     let row = row?;
//!     println!("{:?} = {:?}", row[0].as_str(), row[1].as_blob());
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod connector;
mod error;
mod guard;
pub mod node;
pub mod wire;

pub use client::{Client, Leader, ResultSet, Rows, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TIMEOUT};
pub use connector::{Connector, DEFAULT_CONNECT_TIMEOUT};
pub use error::{codes, Error, Result};
pub use node::{Node, BOOTSTRAP_ID};
pub use wire::{DbId, ExecResult, File, Metadata, NodeInfo, NodeRole, Param, Stmt, StmtId, Value};
