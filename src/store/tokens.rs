//! API tokens: long-lived, scoped, kept as a SHA-256 of the token only. Making and
//! revoking one is an audit event (`token.create`, `token.revoke`, the user's id as
//! target) in the same transaction.

use super::audit::{self, AuditAction};
use super::sql::{params, Conn, OptionalExtension, Row};
use super::writer::Tx;
use super::{StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{Role, Scopes, TokenName, User, Username};

/// A token as its owner sees it: never the token itself.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenInfo {
    pub name: TokenName,
    pub scopes: Scopes,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

fn info_from_row(row: &Row<'_>, at: usize) -> super::sql::Result<TokenInfo> {
    let scopes: String = row.get(at + 1)?;
    Ok(TokenInfo {
        name: row.get(at)?,
        scopes: Scopes::parse_list(scopes.split(',')).map_err(|why| {
            super::sql::Error::Conversion {
                column: at + 1,
                why,
            }
        })?,
        created_at: row.get(at + 2)?,
        expires_at: row.get(at + 3)?,
    })
}

/// What a token stands for: its user (read now: role changes count at once), its scopes,
/// and when it stops working.
pub struct TokenGrant {
    pub user: User,
    pub scopes: Scopes,
    pub expires_at: Option<Timestamp>,
}

pub(super) fn by_hash(conn: &Conn, hash: &str) -> StoreResult<Option<TokenGrant>> {
    Ok(conn
        .query_row(
            "SELECT u.id, u.username, u.role, u.created_at, t.scopes, t.expires_at
             FROM api_tokens AS t JOIN users AS u ON u.id = t.user_id
             WHERE t.token_hash = ?1",
            [hash],
            |row| {
                let role: String = row.get(2)?;
                let scopes: String = row.get(4)?;
                Ok(TokenGrant {
                    user: User {
                        id: row.get(0)?,
                        username: row.get(1)?,
                        role: Role::parse(&role).unwrap_or(Role::User),
                        created_at: row.get(3)?,
                    },
                    scopes: Scopes::parse_list(scopes.split(','))
                        .map_err(|why| super::sql::Error::Conversion { column: 4, why })?,
                    expires_at: row.get(5)?,
                })
            },
        )
        .optional()?)
}

pub(super) fn create(
    tx: &Tx,
    actor_id: Option<i64>,
    user_id: i64,
    info: &TokenInfo,
    hash: &str,
) -> StoreResult<()> {
    let inserted = tx.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            user_id,
            info.name,
            hash,
            info.scopes.joined(),
            info.created_at,
            info.expires_at
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(err) if err.is_unique_violation() => {
            return Err(StoreError::conflict(format!(
                "a token named '{}' exists already; revoke it or choose another name",
                info.name
            )))
        }
        Err(err) => return Err(err.into()),
    }
    audit::append(
        tx,
        actor_id,
        AuditAction::TokenCreate,
        &[user_id],
        &format!("token {}, scopes {}", info.name, info.scopes.joined()),
    )
}

pub(super) fn list(conn: &Conn, user_id: i64) -> StoreResult<Vec<TokenInfo>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, scopes, created_at, expires_at FROM api_tokens
             WHERE user_id = ?1 ORDER BY name",
        )?
        .query_map([user_id], |row| info_from_row(row, 0))?
        .collect::<super::sql::Result<_>>()?)
}

/// Every token with its user's name, for the command line.
pub(super) fn list_all(conn: &Conn) -> StoreResult<Vec<(Username, TokenInfo)>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.username, t.name, t.scopes, t.created_at, t.expires_at
             FROM api_tokens AS t JOIN users AS u ON u.id = t.user_id
             ORDER BY u.username, t.name",
        )?
        .query_map((), |row| Ok((row.get(0)?, info_from_row(row, 1)?)))?
        .collect::<super::sql::Result<_>>()?)
}

/// Revokes `user_id`'s token `name`: the next request with it is a 401.
pub(super) fn revoke(
    tx: &Tx,
    actor_id: Option<i64>,
    user_id: i64,
    name: &TokenName,
) -> StoreResult<()> {
    let removed = tx.execute(
        "DELETE FROM api_tokens WHERE user_id = ?1 AND name = ?2",
        params![user_id, name],
    )?;
    if removed == 0 {
        return Err(StoreError::not_found(format!("no token named '{name}'")));
    }
    audit::append(
        tx,
        actor_id,
        AuditAction::TokenRevoke,
        &[user_id],
        &format!("token {name}"),
    )
}

/// The command line's revoke: `owner`'s token of that name, or the one token of that
/// name whoever's it is.
pub(super) fn revoke_named(
    tx: &Tx,
    name: &TokenName,
    owner: Option<&Username>,
) -> StoreResult<Username> {
    let owners: Vec<(i64, Username)> = tx
        .prepare_cached(
            "SELECT u.id, u.username FROM api_tokens AS t JOIN users AS u ON u.id = t.user_id
             WHERE t.name = ?1",
        )?
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .filter(|found| match (found, owner) {
            (Ok((_, username)), Some(owner)) => username == owner,
            _ => true,
        })
        .collect::<super::sql::Result<_>>()?;
    match owners.as_slice() {
        [] => Err(StoreError::not_found(format!("no token named '{name}'"))),
        [(user_id, username)] => {
            revoke(tx, None, *user_id, name)?;
            Ok(username.clone())
        }
        several => Err(StoreError::conflict(format!(
            "{} users have a token named '{name}' ({}); say whose with --user",
            several.len(),
            several
                .iter()
                .map(|(_, u)| u.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
