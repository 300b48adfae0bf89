//! Erasure of a person (GDPR Art. 17): the user, every post of theirs (active and
//! trashed) with its comments and revisions, their comments elsewhere, their idempotency
//! records and imports — one transaction — and their name out of every older audit
//! event's `detail`, and their posts' slugs out of the events about them. Deleted content is overwritten, not merely unlinked
//! (`secure_delete`), and the full-text index is merged so no erased word stays in it:
//! after a checkpoint no byte of the file holds what was erased.
//!
//! The one event it writes, `user.erase`, carries the user's id and the counts, never the
//! name. An admin can not erase themselves.

use super::audit::{self, AuditAction};
use super::sql::{params, OptionalExtension};
use super::writer::Tx;
use super::{StoreError, StoreResult};

/// What an erasure removes (or, on a dry run, would remove).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub posts: i64,
    pub comments: i64,
    pub revisions: i64,
}

/// The key in `settings` that lets the erasure rewrite audit events' `detail` (only
/// inside its own transaction: the schema's trigger refuses every other update).
const UNLOCK: &str = "audit.erasing";

pub(super) fn erase(
    tx: &Tx,
    actor_id: Option<i64>,
    user_id: i64,
    dry_run: bool,
) -> StoreResult<Erased> {
    let name: String = tx
        .query_row(
            "SELECT username FROM users WHERE id = ?1",
            [user_id],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("user {user_id} not found")))?;
    if actor_id == Some(user_id) {
        return Err(StoreError::conflict(
            "an admin can not erase themselves; another admin can",
        ));
    }
    let erased = tx.query_row(
        "WITH theirs AS (SELECT id FROM active_posts WHERE author_id = ?1
                         UNION ALL SELECT id FROM deleted_posts WHERE author_id = ?1)
         SELECT (SELECT count(*) FROM theirs),
                (SELECT count(*) FROM comments
                  WHERE author_id = ?1 OR post_id IN (SELECT id FROM theirs)),
                (SELECT count(*) FROM post_revisions WHERE post_id IN (SELECT id FROM theirs))",
        [user_id],
        |row| {
            Ok(Erased {
                posts: row.get(0)?,
                comments: row.get(1)?,
                revisions: row.get(2)?,
            })
        },
    )?;
    if dry_run {
        return Ok(erased);
    }
    // What is deleted from now on is overwritten with zeros, not left in free pages.
    // These pragmas answer with a row: queries, for dqlite's sake.
    tx.query_row("PRAGMA secure_delete = ON", (), |_| Ok(()))?;
    let outcome = erase_rows(tx, user_id, &name, &erased);
    // Back to what every connection has (store/local.rs): zeroed within pages written anyway.
    tx.query_row("PRAGMA secure_delete = FAST", (), |_| Ok(()))?;
    outcome?;
    audit::append(
        tx,
        actor_id,
        AuditAction::UserErase,
        &[user_id],
        &format!(
            "erased user #{user_id}: {} posts, {} comments, {} revisions",
            erased.posts, erased.comments, erased.revisions
        ),
    )?;
    Ok(erased)
}

fn erase_rows(tx: &Tx, user_id: i64, name: &str, erased: &Erased) -> StoreResult<()> {
    forget_in_audit_log(tx, user_id, name)?;
    // Their posts go with their comments and revisions (ON DELETE CASCADE), their comments
    // elsewhere, idempotency records and imports with the user row.
    tx.execute("DELETE FROM posts WHERE author_id = ?1", [user_id])?;
    tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    if erased.posts > 0 {
        // A deleted row leaves its words in the index's older segments until they are
        // merged; merging all of them now leaves none.
        tx.execute("INSERT INTO posts_fts (posts_fts) VALUES ('optimize')", ())?;
    }
    Ok(())
}

/// The actions whose event names one post in its `detail` (`slug …`).
const ONE_POST_ACTIONS: &str = "'post.create', 'post.update', 'post.revert', 'post.delete', \
                                'post.delete_permanent', 'post.restore'";

/// Takes the person out of the audit log's `detail`s: `name`, as a word, becomes `#ID`
/// (a role change names its user), and an event about one of their posts no longer says
/// its slug (made from the title they wrote). Only while the unlock key is in `settings`,
/// in this transaction.
fn forget_in_audit_log(tx: &Tx, user_id: i64, name: &str) -> StoreResult<()> {
    let mut rewrites: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT id, detail FROM audit_events WHERE instr(lower(detail), lower(?1)) > 0",
        )?
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<super::sql::Result<Vec<(i64, String)>>>()?
        .into_iter()
        .map(|(id, detail)| (id, without_word(&detail, name, &format!("#{user_id}"))))
        .collect();
    let about_their_posts: Vec<i64> = tx
        .prepare_cached(
            &[
                "SELECT id FROM audit_events WHERE action IN (",
                ONE_POST_ACTIONS,
                ") AND json_extract(target_ids, '$[0]') IN
                 (SELECT id FROM active_posts WHERE author_id = ?1
                  UNION ALL SELECT id FROM deleted_posts WHERE author_id = ?1)",
            ]
            .concat(),
        )?
        .query_map([user_id], |row| row.get(0))?
        .collect::<super::sql::Result<_>>()?;
    let erased_post = format!("a post of erased user #{user_id}");
    for id in about_their_posts {
        match rewrites.iter_mut().find(|(event, _)| *event == id) {
            Some((_, detail)) => detail.clone_from(&erased_post),
            None => rewrites.push((id, erased_post.clone())),
        }
    }
    if rewrites.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO settings (name, value) VALUES (?1, x'01')",
        [UNLOCK],
    )?;
    for (id, detail) in rewrites {
        tx.execute(
            "UPDATE audit_events SET detail = ?2 WHERE id = ?1 AND detail <> ?2",
            params![id, detail],
        )?;
    }
    tx.execute("DELETE FROM settings WHERE name = ?1", [UNLOCK])?;
    Ok(())
}

/// `text` with every word equal to `word` (ASCII case-insensitively; a word is a run of
/// the characters a username may hold) replaced by `with`.
fn without_word(text: &str, word: &str, with: &str) -> String {
    let in_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(in_word).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !in_word(c)).unwrap_or(rest.len());
        let token = &rest[..end];
        if token.eq_ignore_ascii_case(word) {
            out.push_str(with);
        } else {
            out.push_str(token);
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_replaced_as_a_word_only() {
        assert_eq!(
            without_word("role admin (was user), user Alice.B", "alice.b", "#7"),
            "role admin (was user), user #7"
        );
        assert_eq!(
            without_word("slug alice-post, alice", "alice", "#7"),
            "slug alice-post, #7"
        );
        assert_eq!(without_word("", "alice", "#7"), "");
    }
}
