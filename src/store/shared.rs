//! What the nodes of a deployment share through the database: settings (the cluster's
//! id, the signing key) and leases (work one node at a time does).

use super::sql::{params, Conn, OptionalExtension};
use super::writer::Tx;
use super::StoreResult;
use crate::clock::Timestamp;
use std::time::Duration;

/// The value of setting `name`, if it is set.
pub(super) fn setting(conn: &Conn, name: &str) -> StoreResult<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT value FROM settings WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?)
}

/// Sets `name` to `value` unless it is set; returns the value it has now. In one write
/// transaction, so two nodes setting it at once agree on the first one's value.
pub(super) fn setting_or_insert(tx: &Tx, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
    tx.execute(
        "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
        params![name, value],
    )?;
    Ok(setting(tx, name)?.unwrap_or_else(|| value.to_vec()))
}

/// Takes or renews lease `name` for `holder` until `now + term`, unless another holder's
/// lease still runs; true when `holder` holds it now.
pub(super) fn take_lease(tx: &Tx, name: &str, holder: &str, term: Duration) -> StoreResult<bool> {
    let now = Timestamp::now();
    let until = now.plus(term);
    tx.execute(
        "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until < ?4",
        params![name, holder, until, now],
    )?;
    let current: String =
        tx.query_row("SELECT holder FROM leases WHERE name = ?1", [name], |row| {
            row.get(0)
        })?;
    Ok(current == holder)
}
