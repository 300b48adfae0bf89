//! Refuses SQL known to abort a dqlite 1.11 server process.
//!
//! These are server bugs, but the crash takes down every database the node
//! serves (and the host process when the node is embedded), so the client
//! refuses them before sending:
//!
//! * a statement with RETURNING run as a query: the server steps a write
//!   outside its replication path and fails an assertion in its VFS;
//! * `PRAGMA journal_mode = ...`: changing the mode away from WAL frees an
//!   invalid pointer;
//! * `VACUUM`: crashes 1.11 as well.
//!
//! The scan understands quotes and comments, so the words inside literals,
//! quoted identifiers or comments do not count. A bare identifier named
//! `returning` would be refused too; quote it.

use crate::error::{Error, Result};

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted,
    Punct(char),
    End,
}

fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            // A doubled quote inside a literal ends one literal and starts
            // the next, which reads the same for this purpose.
            '\'' | '"' | '`' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push(Token::Quoted);
            }
            '[' => {
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
                out.push(Token::Quoted);
            }
            ';' => out.push(Token::End),
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = String::new();
                word.push(c.to_ascii_uppercase());
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '$' {
                        word.push(d.to_ascii_uppercase());
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

fn is_word(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w == word)
}

/// What a statement text will be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// EXEC_SQL, EXEC or PREPARE.
    Exec,
    /// QUERY_SQL or QUERY.
    Query,
}

/// True when `sql` uses RETURNING (which dqlite 1.11 cannot run as a query).
pub(crate) fn has_returning(sql: &str) -> bool {
    tokens(sql).iter().any(|t| is_word(Some(t), "RETURNING"))
}

/// Refuses statements known to crash dqlite 1.11.
pub(crate) fn check(sql: &str, usage: Use) -> Result<()> {
    let all = tokens(sql);
    for statement in all.split(|t| *t == Token::End) {
        let first = statement.first();
        if is_word(first, "VACUUM") {
            return Err(refused("VACUUM crashes dqlite 1.11"));
        }
        if is_word(first, "PRAGMA") {
            // PRAGMA [schema .] journal_mode followed by = or (.
            let mut rest = &statement[1..];
            if matches!(rest.get(1), Some(Token::Punct('.'))) {
                rest = &rest[2..];
            }
            if is_word(rest.first(), "JOURNAL_MODE")
                && matches!(
                    rest.get(1),
                    Some(Token::Punct('=')) | Some(Token::Punct('('))
                )
            {
                return Err(refused(
                    "changing journal_mode crashes dqlite 1.11 (databases must stay in WAL mode)",
                ));
            }
        }
        if usage == Use::Query && statement.iter().any(|t| is_word(Some(t), "RETURNING")) {
            return Err(refused(
                "RETURNING run as a query crashes dqlite 1.11, and as an exec it fails; \
                 run the write with exec and read it back",
            ));
        }
    }
    Ok(())
}

fn refused(why: &str) -> Error {
    Error::InvalidInput(format!("statement refused: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_known_crashers() {
        for sql in [
            "VACUUM",
            "  vacuum main",
            "SELECT 1; VACUUM",
            "PRAGMA journal_mode=DELETE",
            "pragma main.journal_mode = 'memory'",
            "PRAGMA journal_mode(OFF)",
        ] {
            assert!(check(sql, Use::Exec).is_err(), "{sql}");
            assert!(check(sql, Use::Query).is_err(), "{sql}");
        }
        let returning = "INSERT INTO t(x) VALUES (1) RETURNING id";
        assert!(check(returning, Use::Query).is_err());
        assert!(check(returning, Use::Exec).is_ok());
        assert!(has_returning(returning));
    }

    #[test]
    fn allows_lookalikes() {
        for sql in [
            "SELECT 'VACUUM', \"returning\" FROM t -- RETURNING",
            "SELECT 1 /* VACUUM; RETURNING */",
            "PRAGMA journal_mode",
            "PRAGMA user_version = 3",
            "INSERT INTO vacuum_log VALUES ('x; VACUUM')",
            "SELECT [returning] FROM t",
            "SELECT 'it''s; VACUUM'",
        ] {
            assert!(check(sql, Use::Query).is_ok(), "{sql}");
            assert!(check(sql, Use::Exec).is_ok(), "{sql}");
        }
        assert!(!has_returning("SELECT 'returning'"));
    }
}
