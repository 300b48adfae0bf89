//! Idempotency-Key records. Looked up and written inside the same IMMEDIATE transaction
//! as the writes they describe, so a replay can never see half of a request.

use super::{Refusal, StoreError, StoreResult};
use crate::clock;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;

pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A stored answer to replay.
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What identifies "the same request": method, path and the exact body bytes.
pub fn request_fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = hmac_sha256::Hash::new();
    for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stored response for `(user, key)` if this exact request was answered within the
/// key's lifetime; a refusal if the key was used for a different request. Expired keys
/// are swept here, so no separate job is needed.
pub fn lookup(
    conn: &Connection,
    user_id: i64,
    key: &str,
    fingerprint: &str,
) -> StoreResult<Option<StoredResponse>> {
    let mut sweep = conn.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?;
    sweep.execute([clock::ago(KEY_LIFETIME)])?;
    let mut find = conn.prepare_cached(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
    )?;
    let found: Option<(String, u16, Vec<u8>)> = find
        .query_row(params![user_id, key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((stored, status, body)) if stored == fingerprint => {
            Ok(Some(StoredResponse { status, body }))
        }
        Some(_) => Err(StoreError::refused(
            Refusal::Mismatch,
            "this Idempotency-Key was already used with a different request",
        )),
    }
}

pub fn save(
    conn: &Connection,
    user_id: i64,
    key: &str,
    fingerprint: &str,
    status: u16,
    body: &[u8],
) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    stmt.execute(params![
        user_id,
        key,
        fingerprint,
        status,
        body,
        clock::now()
    ])?;
    Ok(())
}
