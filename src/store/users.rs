//! Users: accounts, password hashes and roles.

use super::{is_unique_violation, Store, StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{Role, User, Username};
use rusqlite::{params, Connection, OptionalExtension, Row};

const USER_COLUMNS: &str = "id, username, role, created_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
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
    conn: &Connection,
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
        Err(err) if is_unique_violation(&err) => Err(StoreError::conflict(format!(
            "username '{username}' is taken"
        ))),
        Err(err) => Err(err.into()),
    }
}

fn by_id(conn: &Connection, id: i64) -> StoreResult<Option<User>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    Ok(stmt.query_row([id], user_from_row).optional()?)
}

/// The user and their password hash, for login. Case-insensitive like the unique index.
fn credentials(conn: &Connection, username: &Username) -> StoreResult<Option<(User, String)>> {
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

impl Store {
    pub fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> StoreResult<User> {
        self.write(|tx| insert(tx, username, password_hash, role))
    }

    pub fn user(&self, id: i64) -> StoreResult<Option<User>> {
        self.read(|conn| by_id(conn, id))
    }

    pub fn credentials(&self, username: &Username) -> StoreResult<Option<(User, String)>> {
        self.read(|conn| credentials(conn, username))
    }

    pub fn set_role(&self, username: &Username, role: Role) -> StoreResult<User> {
        self.write_alone(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE users SET role = ?2 WHERE username = ?1 COLLATE NOCASE RETURNING {USER_COLUMNS}"
            ))?;
            stmt.query_row(params![username, role.as_str()], user_from_row)
                .optional()?
                .ok_or_else(|| user_not_found(username))
        })
    }

    /// Removes a user; their posts and comments go with them (ON DELETE CASCADE).
    pub fn delete_user(&self, username: &Username) -> StoreResult<()> {
        self.write_alone(|tx| {
            let mut stmt =
                tx.prepare_cached("DELETE FROM users WHERE username = ?1 COLLATE NOCASE")?;
            match stmt.execute([username])? {
                0 => Err(user_not_found(username)),
                _ => Ok(()),
            }
        })
    }
}
