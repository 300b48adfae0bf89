//! Writes a client may safely retry (`Idempotency-Key`): the key read from the request,
//! fingerprinted with what it came with, the answer to record, and a recorded answer
//! played back. `POST /posts` and `POST /posts/bulk` use them.

use super::call::{json_bytes, Call};
use super::problem::ApiError;
use crate::store::{IdempotencyKey, OnceKey, Recorded, StoreResult, Written};
use rouille::Response;

/// The request's `Idempotency-Key`, if it sent one; a malformed one is a 400.
pub(super) fn idempotency_key(call: &Call<'_>) -> Result<Option<IdempotencyKey>, ApiError> {
    match call.request.header("Idempotency-Key") {
        None => Ok(None),
        Some(text) => IdempotencyKey::parse(text).map(Some).ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        }),
    }
}

/// The key fingerprinted with the request it came with.
pub(super) fn once_key(
    call: &Call<'_>,
    user_id: i64,
    key: Option<IdempotencyKey>,
    body: &[u8],
) -> Option<OnceKey> {
    key.map(|key| OnceKey::new(user_id, key, call.request.method(), call.path(), body))
}

/// The answer to record for a keyed request: `value` as JSON with `status`.
pub(super) fn recorded<T: serde::Serialize + ?Sized>(
    status: u16,
    value: &T,
) -> StoreResult<Recorded> {
    Ok(Recorded {
        status,
        body: serde_json::to_vec(value)?,
    })
}

/// A write's answer, fresh or replayed (then marked `Idempotent-Replayed: true`).
pub(super) fn written_response<V>(written: Written<V>) -> Response {
    let response = json_bytes(written.answer.status, written.answer.body);
    if written.replayed {
        response.with_additional_header("Idempotent-Replayed", "true")
    } else {
        response
    }
}
