//! The audit log: one event per change. The store function that makes a change appends its
//! event on the same transaction (`append` takes the change's own `&Tx`), so a change and
//! its event commit together or roll back together: a crash can never leave one without
//! the other. A change that changed nothing appends nothing.

use super::sql::{params, Conn, Row};
use super::writer::Tx;
use super::{StoreError, StoreResult};
use crate::clock::Timestamp;
use serde::{Serialize, Serializer};

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    PostCreate,
    PostUpdate,
    PostRevert,
    PostDelete,
    PostDeletePermanent,
    PostRestore,
    PostsBulkDelete,
    PostsBulkDeletePermanent,
    PostsBulkCreate,
    PostsBulkUpdate,
    PostsBulkRestore,
    PostsFilterDelete,
    TrashPurge,
    UserRole,
    UserDelete,
    UserErase,
    TokenCreate,
    TokenRevoke,
}

impl AuditAction {
    pub const ALL: [AuditAction; 18] = [
        AuditAction::PostCreate,
        AuditAction::PostUpdate,
        AuditAction::PostRevert,
        AuditAction::PostDelete,
        AuditAction::PostDeletePermanent,
        AuditAction::PostRestore,
        AuditAction::PostsBulkDelete,
        AuditAction::PostsBulkDeletePermanent,
        AuditAction::PostsBulkCreate,
        AuditAction::PostsBulkUpdate,
        AuditAction::PostsBulkRestore,
        AuditAction::PostsFilterDelete,
        AuditAction::TrashPurge,
        AuditAction::UserRole,
        AuditAction::UserDelete,
        AuditAction::UserErase,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::PostCreate => "post.create",
            AuditAction::PostUpdate => "post.update",
            AuditAction::PostRevert => "post.revert",
            AuditAction::PostDelete => "post.delete",
            AuditAction::PostDeletePermanent => "post.delete_permanent",
            AuditAction::PostRestore => "post.restore",
            AuditAction::PostsBulkDelete => "posts.bulk_delete",
            AuditAction::PostsBulkDeletePermanent => "posts.bulk_delete_permanent",
            AuditAction::PostsBulkCreate => "posts.bulk_create",
            AuditAction::PostsBulkUpdate => "posts.bulk_update",
            AuditAction::PostsBulkRestore => "posts.bulk_restore",
            AuditAction::PostsFilterDelete => "posts.filter_delete",
            AuditAction::TrashPurge => "trash.purge",
            AuditAction::UserRole => "user.role",
            AuditAction::UserDelete => "user.delete",
            AuditAction::UserErase => "user.erase",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One recorded change. `actor_id` is `None` for the command line and the retention
/// sweep; `target_ids` are post ids (user ids for `user.*`) actually changed.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub action: AuditAction,
    pub target_ids: Vec<i64>,
    pub count: u64,
    pub detail: String,
}

/// Ids an event lists at most; `count` is always the whole number. A purge of a million
/// posts listed every id in one row (over 8 MB, kept forever in an append-only log).
pub const MAX_TARGET_IDS: usize = 1_000;

/// Appends one event for the change just made on `tx`; nothing when `target_ids` is
/// empty (the change changed nothing). The event lists the first `MAX_TARGET_IDS` ids.
pub(super) fn append(
    tx: &Tx,
    actor_id: Option<i64>,
    action: AuditAction,
    target_ids: &[i64],
    detail: &str,
) -> StoreResult<()> {
    if target_ids.is_empty() {
        return Ok(());
    }
    let listed = &target_ids[..target_ids.len().min(MAX_TARGET_IDS)];
    let ids = serde_json::to_string(listed)
        .map_err(|err| StoreError::Internal(format!("encoding audit ids: {err}")))?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO audit_events (at, actor_id, action, target_ids, count, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    stmt.execute(params![
        Timestamp::now(),
        actor_id,
        action.as_str(),
        ids,
        target_ids.len() as i64,
        detail
    ])?;
    Ok(())
}

/// A page of the log: newest first, before `before_id` when given, optionally only one
/// action or one actor.
pub struct AuditQuery {
    pub limit: u32,
    pub before_id: Option<i64>,
    pub action: Option<AuditAction>,
    pub actor_id: Option<i64>,
}

const EVENT_COLUMNS: &str = "id, at, actor_id, action, target_ids, count, detail";

fn event_from_row(row: &Row<'_>) -> super::sql::Result<AuditEvent> {
    let bad = |column: usize, why: String| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, why.into())
    };
    let action: String = row.get(3)?;
    let ids: String = row.get(4)?;
    let count: i64 = row.get(5)?;
    Ok(AuditEvent {
        id: row.get(0)?,
        at: row.get(1)?,
        actor_id: row.get(2)?,
        action: AuditAction::parse(&action)
            .ok_or_else(|| bad(3, format!("unknown audit action '{action}'")))?,
        target_ids: serde_json::from_str(&ids)
            .map_err(|err| bad(4, format!("audit target ids: {err}")))?,
        count: u64::try_from(count).map_err(|err| bad(5, err.to_string()))?,
        detail: row.get(6)?,
    })
}

/// Up to `limit + 1` events, newest first: the extra one tells the caller a next page
/// exists.
pub(super) fn list(conn: &Conn, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
    // Fixed statements per filter, so each can use its index.
    let before = query.before_id.unwrap_or(i64::MAX);
    let fetch = i64::from(query.limit) + 1;
    let head = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE id < ?1");
    let order = " ORDER BY id DESC LIMIT ?2";
    let rows = match (query.action, query.actor_id) {
        (None, None) => {
            let mut stmt = conn.prepare_cached(&format!("{head}{order}"))?;
            let rows = stmt.query_map(params![before, fetch], event_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        (Some(action), None) => {
            let mut stmt = conn.prepare_cached(&format!("{head} AND action = ?3{order}"))?;
            let rows = stmt.query_map(params![before, fetch, action.as_str()], event_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(actor)) => {
            let mut stmt = conn.prepare_cached(&format!("{head} AND actor_id = ?3{order}"))?;
            let rows = stmt.query_map(params![before, fetch, actor], event_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        (Some(action), Some(actor)) => {
            let mut stmt =
                conn.prepare_cached(&format!("{head} AND action = ?3 AND actor_id = ?4{order}"))?;
            let rows = stmt.query_map(
                params![before, fetch, action.as_str(), actor],
                event_from_row,
            )?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

/// Events after `after_id`, oldest first, at most `limit`: what the change feed sends next.
/// Only committed events are visible, and ids are handed out under the one write lock, so
/// an event never shows up behind one with a higher id.
pub(super) fn after(conn: &Conn, after_id: i64, limit: u32) -> StoreResult<Vec<AuditEvent>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?
        .query_map(params![after_id, i64::from(limit)], event_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The key in `settings` that lets the retention sweep delete events (only inside its own
/// transaction; the schema's trigger refuses every other delete, and every delete of an
/// erasure's event).
const RETENTION_UNLOCK: &str = "audit.retention";

/// Removes up to `limit` events written before `cutoff`, oldest first, except erasures
/// (kept for ever); returns how many went.
pub(super) fn expire(tx: &Tx, cutoff: &Timestamp, limit: usize) -> StoreResult<usize> {
    tx.execute(
        "INSERT INTO settings (name, value) VALUES (?1, x'01')",
        [RETENTION_UNLOCK],
    )?;
    let removed = tx.execute(
        "DELETE FROM audit_events WHERE id IN
             (SELECT id FROM audit_events WHERE at < ?1 AND action != 'user.erase'
              ORDER BY id LIMIT ?2)",
        params![cutoff, i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    tx.execute("DELETE FROM settings WHERE name = ?1", [RETENTION_UNLOCK])?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TempStore;

    #[test]
    fn actions_round_trip_and_nothing_changed_appends_nothing() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("post.nope"), None);
        let t = TempStore::new("audit");
        t.store
            .write(|tx| {
                append(tx, None, AuditAction::TrashPurge, &[], "nothing")?;
                append(tx, Some(7), AuditAction::PostDelete, &[3], "slug x")
            })
            .unwrap();
        let all = AuditQuery {
            limit: 10,
            before_id: None,
            action: None,
            actor_id: None,
        };
        let events = t.store.audit_events(&all).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].actor_id, events[0].action, events[0].count),
            (Some(7), AuditAction::PostDelete, 1)
        );
        assert_eq!(events[0].target_ids, [3]);
    }

    #[test]
    fn the_log_is_append_only() {
        let t = TempStore::new("audit-append-only");
        t.store
            .write(|tx| append(tx, None, AuditAction::UserRole, &[1], "role admin"))
            .unwrap();
        let id: i64 = t
            .store
            .read(|conn| Ok(conn.query_row("SELECT max(id) FROM audit_events", (), |r| r.get(0))?))
            .unwrap();
        // `INSERT OR REPLACE` of an existing id was found from outside (v1.1 review): it
        // deleted and rewrote the event past the UPDATE and DELETE triggers.
        let replace = format!(
            "INSERT OR REPLACE INTO audit_events (id, at, actor_id, action, target_ids, count, detail)
             VALUES ({id}, 'then', NULL, 'user.role', '[2]', 1, 'forged')"
        );
        for change in [
            "UPDATE audit_events SET detail = 'edited'",
            "DELETE FROM audit_events",
            replace.as_str(),
            "REPLACE INTO audit_events (id, at, action, target_ids, count, detail)
             SELECT id, at, action, target_ids, count, 'forged' FROM audit_events",
        ] {
            let refused = t.store.write(|tx| Ok(tx.execute(change, ())?));
            assert!(refused.is_err(), "{change}");
        }
        let detail: String = t
            .store
            .read(|conn| Ok(conn.query_row("SELECT detail FROM audit_events", (), |r| r.get(0))?))
            .unwrap();
        assert_eq!(detail, "role admin");
        // New events still go in.
        t.store
            .write(|tx| append(tx, None, AuditAction::UserRole, &[1], "role user"))
            .unwrap();
    }

    #[test]
    fn an_event_lists_at_most_1000_ids_and_counts_them_all() {
        let t = TempStore::new("audit-many-ids");
        let ids: Vec<i64> = (1..=2_500).collect();
        t.store
            .write(|tx| append(tx, None, AuditAction::TrashPurge, &ids, "older than 0s"))
            .unwrap();
        let (listed, count): (String, i64) = t
            .store
            .read(|conn| {
                Ok(
                    conn.query_row("SELECT target_ids, count FROM audit_events", (), |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?,
                )
            })
            .unwrap();
        let listed: Vec<i64> = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed, (1..=1_000).collect::<Vec<i64>>());
        assert_eq!(count, 2_500);
    }
}
