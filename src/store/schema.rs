//! Schema creation and upgrades, guided by `PRAGMA user_version`.

use super::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};

/// The layout `schema.sql` describes.
pub const SCHEMA_VERSION: i64 = 1;
const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// Steps that bring a file at version `n - 1` to version `n`, indexed by `n - 2` (version 1
/// is made by `schema.sql` itself). Empty while there is only one version.
const MIGRATIONS: &[&str] = &[];

pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {found}, newer than this postd knows ({SCHEMA_VERSION}); use a newer postd"
        )));
    }
    if found == 0 {
        let has_tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
            [],
            |row| row.get(0),
        )?;
        if has_tables > 0 {
            return Err(StoreError::Unavailable(
                "the file holds tables but no postd schema version; is it a postd database?".into(),
            ));
        }
        tx.execute_batch(SCHEMA_SQL)?;
    } else {
        for step in &MIGRATIONS[(found - 1) as usize..] {
            tx.execute_batch(step)?;
        }
    }
    if found != SCHEMA_VERSION {
        // PRAGMA takes no bound parameters; the value is our own constant.
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_cover_every_version() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION - 1);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[test]
    fn applying_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
