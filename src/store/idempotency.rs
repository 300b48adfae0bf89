//! Idempotency-Key records. Looked up and written inside the same IMMEDIATE transaction
//! as the writes they describe, so a replay can never see half of a request and a request
//! that failed leaves no record (it may be retried with the same key).

use super::sql::{params, Conn, OptionalExtension};
use super::writer::Tx;
use super::{Refusal, Store, StoreError, StoreResult};
use crate::clock::Timestamp;
use std::time::Duration;

pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// An `Idempotency-Key` header value: 1..=255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Option<IdempotencyKey> {
        ((1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| IdempotencyKey(text.to_owned()))
    }
}

/// A key as one user sent it, with the fingerprint of the request it came with.
pub struct OnceKey {
    user_id: i64,
    key: IdempotencyKey,
    fingerprint: String,
}

impl OnceKey {
    /// "The same request" is the same method, path and exact body bytes.
    pub fn new(
        user_id: i64,
        key: IdempotencyKey,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> OnceKey {
        let mut hasher = hmac_sha256::Hash::new();
        for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
            hasher.update(part);
        }
        let fingerprint = crate::text::hex(&hasher.finalize());
        OnceKey {
            user_id,
            key,
            fingerprint,
        }
    }
}

/// The answer to a keyed request, as stored for replay. The store keeps it as given and
/// never interprets it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The answer of a write that may be keyed: fresh, or replayed from its record. A fresh
/// write also hands back what its caller asked to keep of what it made (`made`), beside
/// the recorded bytes, so nobody parses the answer again; a replay has only the bytes.
pub struct Written<V = ()> {
    pub answer: Recorded,
    pub replayed: bool,
    pub made: Option<V>,
}

/// The stored answer for the key if this exact request was answered within the key's
/// lifetime; a refusal if the key was used for a different request. Expired keys are
/// swept here, so no separate job is needed.
fn lookup(conn: &Conn, once: &OnceKey) -> StoreResult<Option<Recorded>> {
    let mut sweep = conn.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?;
    sweep.execute([Timestamp::ago(KEY_LIFETIME)])?;
    let mut find = conn.prepare_cached(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
    )?;
    let found: Option<(String, u16, Vec<u8>)> = find
        .query_row(params![once.user_id, once.key.0], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((stored, status, body)) if stored == once.fingerprint => {
            Ok(Some(Recorded { status, body }))
        }
        Some(_) => Err(StoreError::refused(
            Refusal::Mismatch,
            "this Idempotency-Key was already used with a different request",
        )),
    }
}

fn save(conn: &Conn, once: &OnceKey, answer: &Recorded) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    stmt.execute(params![
        once.user_id,
        once.key.0,
        once.fingerprint,
        answer.status,
        answer.body,
        Timestamp::now()
    ])?;
    Ok(())
}

/// Whether a keyed write shares its transaction with others (a single create) or has one
/// of its own (a bulk create).
pub(super) enum Commit {
    Grouped,
    Alone,
}

/// Runs `write` in one IMMEDIATE transaction and turns its result into the answer with
/// `record`, which also says what to keep of it (`Written::made`). With a key: a
/// replay answers the stored record and writes nothing; a first use stores the answer
/// in the same transaction as the writes.
pub(super) fn write_once<T, V>(
    store: &Store,
    commit: Commit,
    once: Option<&OnceKey>,
    write: impl FnOnce(&Tx) -> StoreResult<T>,
    record: impl FnOnce(T) -> StoreResult<(Recorded, V)>,
) -> StoreResult<Written<V>> {
    let keyed = |tx: &Tx| {
        if let Some(once) = once {
            if let Some(answer) = lookup(tx, once)? {
                return Ok(Written {
                    answer,
                    replayed: true,
                    made: None,
                });
            }
        }
        let (answer, made) = record(write(tx)?)?;
        if let Some(once) = once {
            save(tx, once, &answer)?;
        }
        Ok(Written {
            answer,
            replayed: false,
            made: Some(made),
        })
    };
    match commit {
        Commit::Grouped => store.write(keyed),
        Commit::Alone => store.write_alone(keyed),
    }
}
