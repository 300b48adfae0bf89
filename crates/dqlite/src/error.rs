//! The crate's single error type.

use std::fmt;
use std::io;

/// SQLite primary result codes that dqlite passes through unchanged.
pub mod codes {
    /// Generic error.
    pub const SQLITE_ERROR: u64 = 1;
    /// The database file is locked (another connection holds a write lock).
    pub const SQLITE_BUSY: u64 = 5;
    /// A table in the database is locked.
    pub const SQLITE_LOCKED: u64 = 6;
    /// Disk I/O error; dqlite's replication errors are extended codes of it.
    pub const SQLITE_IOERR: u64 = 10;
    /// dqlite uses it for "no database opened" / "no statement with the given
    /// id", which is also what a connection sees after its node lost
    /// leadership (the server closes the connection's database then).
    pub const SQLITE_NOTFOUND: u64 = 12;
    /// A constraint (UNIQUE, NOT NULL, CHECK, FOREIGN KEY) was violated.
    pub const SQLITE_CONSTRAINT: u64 = 19;
    /// `SQLITE_IOERR | (40 << 8)`: the node is not the leader.
    pub const SQLITE_IOERR_NOT_LEADER: u64 = 10250;
    /// `SQLITE_IOERR | (41 << 8)`: leadership was lost while a write was in
    /// flight; whether the write was committed is unknown.
    pub const SQLITE_IOERR_LEADERSHIP_LOST: u64 = 10506;
    /// Pre-1.0 dqlite used `SQLITE_IOERR | (32 << 8)` for "not leader".
    pub const SQLITE_IOERR_NOT_LEADER_LEGACY: u64 = 8202;
    /// Pre-1.0 dqlite used `SQLITE_IOERR | (33 << 8)` for "leadership lost".
    pub const SQLITE_IOERR_LEADERSHIP_LOST_LEGACY: u64 = 8458;
}

/// Everything that can go wrong talking to dqlite or running a node.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection failed (refused, reset, closed by the server). The
    /// client that returned it is marked broken: every later call on it
    /// fails, so open a new one.
    Io(io::Error),
    /// A request's deadline passed. The connection is marked broken, because
    /// the server may still answer the request later and the next answer
    /// read would then belong to the wrong request.
    Timeout,
    /// The server sent something this client cannot decode. The connection is
    /// marked broken.
    Protocol(String),
    /// The server refused the request; the connection remains usable.
    /// `code` is an SQLite (extended) result code or a dqlite one.
    Server {
        /// SQLite extended result code (or dqlite-specific code).
        code: u64,
        /// The server's message, e.g. "not leader" or "database is locked".
        message: String,
    },
    /// The caller passed something that cannot be sent (e.g. a text with a
    /// NUL byte, more than 255 parameters). Nothing was sent.
    InvalidInput(String),
    /// The [`Connector`](crate::Connector) found no leader before its
    /// deadline. `tried` names each address and why it did not lead.
    NoLeader {
        /// `address: reason` for every attempt of the last round.
        tried: Vec<String>,
    },
    /// libdqlite could not be loaded or lacks a needed symbol.
    NodeLibrary(String),
    /// A libdqlite node call failed.
    Node {
        /// The libdqlite return code (DQLITE_ERROR=1, DQLITE_MISUSE=2, ...).
        code: i32,
        /// What was being done, plus libdqlite's message when it has one.
        message: String,
    },
}

impl Error {
    /// The SQLite primary code (low byte) of a server error.
    pub fn primary_code(&self) -> Option<u64> {
        match self {
            Error::Server { code, .. } => Some(code & 0xff),
            _ => None,
        }
    }

    /// True when the node is not the leader: only the leader runs SQL and
    /// cluster changes, so reconnect through a [`Connector`](crate::Connector).
    pub fn is_not_leader(&self) -> bool {
        matches!(
            self,
            Error::Server { code, .. }
                if *code == codes::SQLITE_IOERR_NOT_LEADER
                    || *code == codes::SQLITE_IOERR_NOT_LEADER_LEGACY
        )
    }

    /// True when leadership was lost during the request. For a write (a
    /// commit) the outcome is unknown: it may or may not have been applied.
    pub fn is_leadership_lost(&self) -> bool {
        matches!(
            self,
            Error::Server { code, .. }
                if *code == codes::SQLITE_IOERR_LEADERSHIP_LOST
                    || *code == codes::SQLITE_IOERR_LEADERSHIP_LOST_LEGACY
        )
    }

    /// True for SQLITE_BUSY / SQLITE_LOCKED and their extended codes, and for
    /// "database is locked" whatever its code. dqlite does not wait on locks:
    /// a second writer fails at once, so the caller decides whether to retry.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Server { code, message } => {
                let primary = code & 0xff;
                primary == codes::SQLITE_BUSY
                    || primary == codes::SQLITE_LOCKED
                    || message.contains("database is locked")
            }
            _ => false,
        }
    }

    /// True for errors after which the connection cannot be used again.
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Io(_) | Error::Timeout | Error::Protocol(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "dqlite connection error: {err}"),
            Error::Timeout => write!(f, "dqlite request timed out"),
            Error::Protocol(what) => write!(f, "dqlite protocol error: {what}"),
            Error::Server { code, message } => write!(f, "{message} (code {code})"),
            Error::InvalidInput(what) => write!(f, "invalid input: {what}"),
            Error::NoLeader { tried } => {
                write!(f, "no dqlite leader found; tried ")?;
                if tried.is_empty() {
                    write!(f, "no address")
                } else {
                    write!(f, "{}", tried.join(", "))
                }
            }
            Error::NodeLibrary(what) => write!(f, "{what}"),
            Error::Node { code, message } => write!(f, "{message} (dqlite code {code})"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        match err.kind() {
            // Socket timeouts surface as WouldBlock on Unix and TimedOut on
            // Windows; both mean the deadline passed.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
            _ => Error::Io(err),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u64, message: &str) -> Error {
        Error::Server {
            code,
            message: message.to_string(),
        }
    }

    #[test]
    fn classifies_server_codes() {
        assert!(server(10250, "not leader").is_not_leader());
        assert!(!server(10250, "not leader").is_busy());
        assert!(server(10506, "disk I/O error").is_leadership_lost());
        assert!(server(5, "database is locked").is_busy());
        assert!(server(517, "busy snapshot").is_busy());
        assert!(server(262, "locked sharedcache").is_busy());
        assert!(server(1, "database is locked").is_busy());
        assert!(!server(2067, "UNIQUE constraint failed: t.x").is_busy());
        assert_eq!(server(2067, "").primary_code(), Some(19));
        assert!(Error::Timeout.is_connection_error());
        assert!(!server(1, "x").is_connection_error());
    }

    #[test]
    fn socket_timeouts_become_timeout() {
        let err: Error = io::Error::from(io::ErrorKind::WouldBlock).into();
        assert!(matches!(err, Error::Timeout));
        let err: Error = io::Error::from(io::ErrorKind::ConnectionReset).into();
        assert!(matches!(err, Error::Io(_)));
    }
}
