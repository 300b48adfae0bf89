//! What the store answers when it can not do what was asked: a rule's refusal, or trouble
//! below it. SQLite's codes (either copy's) never leave the store: they become one of
//! these, here, once.

use super::sql;
use crate::model::ItemError;

/// Why a rule refused the request. The HTTP edge maps each onto one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A value breaks a field rule (bulk partial mode reports these per item).
    Invalid,
    NotFound,
    Forbidden,
    Conflict,
    /// The request is well-formed but the target is in the wrong state (e.g. restoring a
    /// post that is not deleted).
    BadState,
    /// An Idempotency-Key reused with a different request.
    Mismatch,
    /// The post is no longer the version the client named (`If-Match`).
    PreconditionFailed,
    /// More items than one request may change.
    TooMany,
    /// The user the request acts for is gone: removed or erased after the request was
    /// authenticated, before its write (the write names them and fails).
    UserGone,
}

#[derive(Debug)]
pub enum StoreError {
    Refused {
        why: Refusal,
        detail: String,
        errors: Vec<ItemError>,
    },
    /// A refusal about how many posts something matches (delete by filter): the count
    /// goes back to the client with it.
    Counted {
        why: Refusal,
        detail: String,
        count: u64,
    },
    /// Another process held the database's write lock for longer than `BUSY_TIMEOUT`;
    /// trying again shortly is the cure.
    Busy,
    /// No connection could be had in time, the file is not a usable postd database, or
    /// the cluster has no leader now. Nothing was done; trying again later is the cure.
    Unavailable(String),
    /// The cluster lost its leader while committing this request's transaction: it may or
    /// may not have been written. A retry with the same Idempotency-Key is safe.
    OutcomeUnknown(String),
    /// Anything else going wrong below us, or a bug of ours: logged where it is answered.
    Internal(String),
}

impl StoreError {
    pub fn refused(why: Refusal, detail: impl Into<String>) -> StoreError {
        StoreError::Refused {
            why,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> StoreError {
        StoreError::refused(Refusal::NotFound, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> StoreError {
        StoreError::refused(Refusal::Forbidden, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> StoreError {
        StoreError::refused(Refusal::Conflict, detail)
    }

    pub fn items(why: Refusal, detail: impl Into<String>, errors: Vec<ItemError>) -> StoreError {
        StoreError::Refused {
            why,
            detail: detail.into(),
            errors,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Refused { detail, .. } | StoreError::Counted { detail, .. } => {
                f.write_str(detail)
            }
            StoreError::Busy => f.write_str("the database is busy"),
            StoreError::Unavailable(detail) => write!(f, "database unavailable: {detail}"),
            StoreError::OutcomeUnknown(detail) => {
                write!(f, "the outcome of the write is unknown: {detail}")
            }
            StoreError::Internal(detail) => write!(f, "database error: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The one conversion of what went wrong below the store into what the store answers.
impl From<sql::Error> for StoreError {
    fn from(err: sql::Error) -> StoreError {
        match err {
            err if err.is_busy() => StoreError::Busy,
            err if err.is_foreign_key_violation() => StoreError::refused(
                Refusal::UserGone,
                "the user this request acts for no longer exists",
            ),
            sql::Error::Unavailable(why) => StoreError::Unavailable(why),
            sql::Error::OutcomeUnknown(why) => StoreError::OutcomeUnknown(why),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::from(sql::Error::from(err))
    }
}

/// For answers recorded with an Idempotency-Key: our own values always serialize, so a
/// failure is a bug.
impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> StoreError {
        StoreError::Internal(format!("serializing an answer: {err}"))
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> StoreError {
        StoreError::Unavailable(err.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
