//! What the export and import tests of both tiers share: `postd export` and `postd import`
//! run on a database file, their NDJSON, and counts read from the file.

use super::{cli_ok, TempDir, BIN, PASSWORD};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `postd export ARGS --output <dir>/NAME --db DB`; the exported lines as JSON.
pub fn export(db: &Path, dir: &Path, name: &str, args: &[&str]) -> Vec<Value> {
    let file = dir.join(name);
    let mut all = args.to_vec();
    all.extend(["--output", file.to_str().expect("utf-8 path")]);
    let mut full = vec!["export"];
    full.extend(all);
    cli_ok(db, &full, &[]);
    ndjson(&std::fs::read(&file).expect("export file"))
}

pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    text(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    for line in lines {
        writeln!(file, "{line}").expect("write input");
    }
    file.flush().expect("flush input");
}

pub fn import_command(db: &Path, file: &Path, author: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("import")
        .arg(file)
        .args(["--as", author])
        .args(extra)
        .arg("--db")
        .arg(db);
    cmd
}

pub fn import(db: &Path, file: &Path, author: &str, extra: &[&str]) -> Output {
    import_command(db, file, author, extra)
        .stdin(Stdio::null())
        .output()
        .expect("run postd import")
}

/// `n` lines with distinct titles (`{prefix} {i}`, i from 1) and a ~300-byte body.
pub fn numbered_lines(prefix: &str, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            json!({"title": format!("{prefix} {i}"), "body": format!("body {i} ").repeat(30)})
                .to_string()
        })
        .collect()
}

pub fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(20))
        .expect("busy timeout");
    conn.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A fresh database with one user (through the CLI, no server).
pub fn database_with_user(dir: &TempDir, name: &str) -> PathBuf {
    let db = dir.path().join("postd.db");
    cli_ok(&db, &["user", "add", name], &[("POSTD_PASSWORD", PASSWORD)]);
    db
}
