//! Schema creation and upgrades, guided by `PRAGMA user_version` and the `-- @version N`
//! sections of schema.sql.

use super::sql::{self, Conn};
use super::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};

const SCHEMA_SQL: &str = include_str!("../../schema.sql");
const SECTION_MARK: &str = "-- @version ";

/// `(version, sql)` for each section of schema.sql, in file order.
fn sections() -> Vec<(i64, &'static str)> {
    let mut sections = Vec::new();
    let mut rest = SCHEMA_SQL;
    while let Some(start) = rest.find(SECTION_MARK) {
        let after = &rest[start + SECTION_MARK.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let end = after.find(SECTION_MARK).unwrap_or(after.len());
        // The marker line is a comment; the section's SQL starts on the next line.
        let body_start = after[..end].find('\n').map_or(end, |n| n + 1);
        if let Ok(version) = digits.parse() {
            sections.push((version, &after[body_start..end]));
        }
        rest = &after[end..];
    }
    sections
}

/// SQLite's own message without the statement text, to keep errors on one line.
fn sqlite_message(err: &sql::Error) -> String {
    err.message().lines().next().unwrap_or_default().to_string()
}

/// The newest layout this binary knows: the last section's number.
pub fn schema_version() -> i64 {
    sections().last().map(|(v, _)| *v).unwrap_or(0)
}

/// Migrates a database file opened with rusqlite, in a transaction of its own.
pub fn migrate_file(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql::Error::from)?;
    migrate(Conn::local(&tx))?;
    tx.commit().map_err(sql::Error::from)?;
    Ok(())
}

/// Creates or upgrades the schema, inside the caller's write transaction (the local
/// file's, or the cluster's writer): a failure changes nothing.
pub fn migrate(tx: Conn<'_>) -> StoreResult<()> {
    let newest = schema_version();
    let found: i64 = tx.query_row("PRAGMA user_version", (), |row| row.get(0))?;
    if found > newest {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {found}, newer than this postd knows ({newest}); use a newer postd"
        )));
    }
    if found == newest {
        return Ok(());
    }
    if found == 0 {
        let has_tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
            (),
            |row| row.get(0),
        )?;
        if has_tables > 0 {
            return Err(StoreError::Unavailable(
                "the file holds tables but no postd schema version; is it a postd database?".into(),
            ));
        }
    }
    for (version, sql) in sections() {
        if version > found {
            tx.execute_batch(sql).map_err(|err| {
                StoreError::Unavailable(format!(
                    "upgrading the schema to version {version} failed ({}); the file is unchanged",
                    sqlite_message(&err)
                ))
            })?;
        }
    }
    // PRAGMA takes no bound parameters; the value is our own number.
    tx.execute_batch(&format!("PRAGMA user_version = {newest}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// `migrate` runs every section numbered above the file's version, in file order, so
    /// what it needs is numbers that only go up. (Branches developed side by side each
    /// append a section; until they meet, one may leave a gap below its own.)
    #[test]
    fn sections_are_numbered_one_up_from_one() {
        let versions: Vec<i64> = sections().iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
        assert!(schema_version() >= 5);
    }

    #[test]
    fn upgrading_each_older_version_gives_the_fresh_layout() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate_file(&mut fresh).unwrap();
        for old in 1..schema_version() {
            let mut conn = Connection::open_in_memory().unwrap();
            for (version, sql) in sections() {
                if version <= old {
                    conn.execute_batch(sql).unwrap();
                }
            }
            conn.execute_batch(&format!("PRAGMA user_version = {old}"))
                .unwrap();
            migrate_file(&mut conn).unwrap();
            assert_eq!(layout(&conn), layout(&fresh), "upgrade from {old}");
            let v: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, schema_version());
        }
    }

    #[test]
    fn a_failed_upgrade_is_one_line_and_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE idempotency_keys (x); PRAGMA user_version = 1")
            .unwrap();
        let err = migrate_file(&mut conn).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("already exists"), "{err}");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate_file(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[test]
    fn applying_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_file(&mut conn).unwrap();
        migrate_file(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema_version());
    }
}
