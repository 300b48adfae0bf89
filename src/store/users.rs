//! Users: accounts, password hashes and roles.

use super::audit::{self, AuditAction};
use super::sql::{params, Conn, OptionalExtension, Row};
use super::writer::Tx;
use super::{StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{Role, User, Username};

const USER_COLUMNS: &str = "id, username, role, created_at";

fn user_from_row(row: &Row<'_>) -> super::sql::Result<User> {
    let role: String = row.get(2)?;
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        // The CHECK constraint admits only the two roles.
        role: Role::parse(&role).unwrap_or(Role::User),
        created_at: row.get(3)?,
    })
}

pub(super) fn insert(
    conn: &Conn,
    username: &Username,
    password_hash: &str,
    role: Role,
) -> StoreResult<User> {
    let now = Timestamp::now();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    match stmt.insert(params![username, password_hash, role.as_str(), now]) {
        Ok(id) => Ok(User {
            id,
            username: username.clone(),
            role,
            created_at: now,
        }),
        Err(err) if err.is_unique_violation() => Err(StoreError::conflict(format!(
            "username '{username}' is taken"
        ))),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn by_id(conn: &Conn, id: i64) -> StoreResult<Option<User>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    Ok(stmt.query_row([id], user_from_row).optional()?)
}

/// The user and their password hash, for login. Case-insensitive like the unique index.
pub(super) fn credentials(conn: &Conn, username: &Username) -> StoreResult<Option<(User, String)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1 COLLATE NOCASE"
    ))?;
    Ok(stmt
        .query_row([username], |row| Ok((user_from_row(row)?, row.get(4)?)))
        .optional()?)
}

fn user_not_found(username: &Username) -> StoreError {
    StoreError::not_found(format!("user '{username}' not found"))
}

/// What `set_role` did: a role set to the one the user already has changes nothing and
/// is not recorded.
pub enum RoleChange {
    Changed(User),
    Unchanged(User),
}

/// Changes a role from the command line (actor: none), recording the change.
pub(super) fn set_role(tx: &Tx, username: &Username, role: Role) -> StoreResult<RoleChange> {
    let before = credentials(tx, username)?
        .map(|(user, _)| user)
        .ok_or_else(|| user_not_found(username))?;
    if before.role == role {
        return Ok(RoleChange::Unchanged(before));
    }
    tx.execute(
        "UPDATE users SET role = ?2 WHERE id = ?1",
        params![before.id, role.as_str()],
    )?;
    let user = tx.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [before.id],
        user_from_row,
    )?;
    let detail = format!(
        "role {} (was {}), user {}",
        role.as_str(),
        before.role.as_str(),
        user.username
    );
    audit::append(tx, None, AuditAction::UserRole, &[user.id], &detail)?;
    Ok(RoleChange::Changed(user))
}

/// Removes a user from the command line (actor: none) with their posts and comments,
/// recording what went with them: the user's name is gone from the database afterwards.
pub(super) fn delete_user(tx: &Tx, username: &Username) -> StoreResult<()> {
    let mut find = tx.prepare_cached(
        "SELECT u.id, u.username,
                (SELECT count(*) FROM active_posts WHERE author_id = u.id),
                (SELECT count(*) FROM deleted_posts WHERE author_id = u.id),
                (SELECT count(*) FROM comments WHERE author_id = u.id)
         FROM users AS u WHERE u.username = ?1 COLLATE NOCASE",
    )?;
    let (id, name, active, trashed, comments): (i64, String, i64, i64, i64) = find
        .query_row([username], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()?
        .ok_or_else(|| user_not_found(username))?;
    let mut stmt = tx.prepare_cached("DELETE FROM users WHERE id = ?1")?;
    stmt.execute([id])?;
    let detail = format!(
        "user {name}, with {} posts and {comments} comments of theirs",
        active + trashed
    );
    audit::append(tx, None, AuditAction::UserDelete, &[id], &detail)
}

/// A user as the console lists them: the account and how many posts they have, active
/// and in the trash.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub user: User,
    pub posts: i64,
    pub trashed: i64,
}

/// A page of users, newest first, before id `before` when given, whose name holds `q`
/// (ASCII case-insensitively) when given; `limit + 1` rows at most.
pub(super) fn page(
    conn: &Conn,
    limit: u32,
    before: Option<i64>,
    q: Option<&str>,
) -> StoreResult<Vec<UserSummary>> {
    let rows = conn
        .prepare_cached(
            "SELECT u.id, u.username, u.role, u.created_at,
                    (SELECT count(*) FROM active_posts WHERE author_id = u.id),
                    (SELECT count(*) FROM deleted_posts WHERE author_id = u.id)
             FROM users AS u
             WHERE u.id < ?1 AND (?3 IS NULL OR instr(lower(u.username), lower(?3)) > 0)
             ORDER BY u.id DESC LIMIT ?2",
        )?
        .query_map(
            params![before.unwrap_or(i64::MAX), i64::from(limit) + 1, q],
            |row| {
                Ok(UserSummary {
                    user: user_from_row(row)?,
                    posts: row.get(4)?,
                    trashed: row.get(5)?,
                })
            },
        )?
        .collect::<super::sql::Result<_>>()?;
    Ok(rows)
}
