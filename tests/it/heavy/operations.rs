//! Running postd for real: graceful shutdown, the access log, CLI progress.

use crate::support::*;
use postd_testkit::{http, ServerProcess};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_during_a_bulk_create_lets_it_finish_and_exits_cleanly() {
    if skip_heavy() {
        return;
    }
    let mut server = Server::start();
    let user = server.register("writer");
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({"title": format!("Shutdown test {i}"), "body": "x".repeat(300)}))
        .collect();
    let body = serde_json::to_vec(&json!({"items": items})).unwrap();
    let auth = format!("Bearer {}", user.token);
    let request = http::request(
        "POST",
        "/posts/bulk",
        "x",
        &[
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        Some(&body),
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(&request).unwrap();
    // The request is in: stop the server while it works on it.
    std::thread::sleep(Duration::from_millis(50));
    sigterm(server.pid());
    let mut answer = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.read_to_end(&mut answer).unwrap();
    let resp = Response::parse(&answer).unwrap_or_else(|| {
        panic!(
            "incomplete answer: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        )
    });
    resp.expect(201);
    assert_eq!(
        resp.json()["items"].as_array().unwrap().len(),
        10_000,
        "the full answer arrived"
    );

    server.wait_exit(Duration::from_secs(30));
    let stderr = server.stderr();
    assert!(
        stderr.contains("shutting down") && stderr.contains("stopped cleanly"),
        "{stderr}"
    );
    // The WAL was checkpointed into the database file.
    let wal = server.db.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true),
        "WAL left behind"
    );
    assert_eq!(server.sql_count("SELECT count(*) FROM posts"), 10_000);
    // And it starts again on the same file.
    server.restart();
    assert_eq!(server.collect_pages("/posts?limit=100", None).len(), 10_000);
}

#[test]
fn sigterm_exits_zero() {
    if skip_heavy() {
        return;
    }
    let dir = TempDir::new("exit");
    let mut process = ServerProcess::start(
        Command::new(BIN)
            .args(["--addr", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("postd.db"))
            .stderr(std::process::Stdio::null()),
        START_WITHIN,
    )
    .unwrap();
    sigterm(process.pid());
    let status = process
        .wait_exit(Duration::from_secs(30))
        .expect("postd stops after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", process.banner());
}

#[test]
fn the_access_log_has_one_json_line_per_request_and_no_secrets() {
    if skip_heavy() {
        return;
    }
    let server = Server::start_with(&[("POSTD_LOG_FORMAT", "json")], &[]);
    let user = server.register("logged");
    server.create_post(&user, "Logged post", "body");
    server
        .get("/posts?q=secret-search-term&limit=5", None)
        .expect(200);
    server.get("/nope", None).expect(404);
    std::thread::sleep(Duration::from_millis(100));
    let stderr = server.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // register, login, create, list, 404
    assert_eq!(lines.len(), 5, "{stderr}");
    for line in &lines {
        for key in [
            "time",
            "method",
            "path",
            "status",
            "bytes",
            "duration_ms",
            "user_id",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let create = lines
        .iter()
        .find(|l| l["method"] == "POST" && l["path"] == "/posts")
        .unwrap();
    assert_eq!(
        (create["status"].as_u64(), create["user_id"].as_i64()),
        (Some(201), Some(user.id))
    );
    assert_eq!(lines.last().unwrap()["status"], 404);
    // Never a password, a token, or a query string.
    for secret in [PASSWORD, user.token.as_str(), "secret-search-term"] {
        assert!(!stderr.contains(secret), "the log contains {secret}");
    }
}

#[test]
fn cli_progress_shows_on_a_terminal_and_stays_quiet_otherwise() {
    if skip_heavy() {
        return;
    }
    let server = Server::start();
    let user = server.register("author");
    for i in 0..5 {
        server.create_post(&user, &format!("to back up {i}"), "b");
    }
    let copy = server.dir.path().join("copy.db");
    // Not a terminal: only the final line.
    let out = server.cli(&["backup", copy.to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up"));
    // On a terminal (util-linux `script` gives the command a pseudo-terminal): progress.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED the terminal half: no `script` command");
        return;
    }
    let line = format!("{BIN} check --db {}", server.db.display());
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("checks done: 3/3 (100%)"), "{shown}");
    assert!(shown.contains("OK:"), "{shown}");
}

/// SQLite syncs the WAL with fdatasync(), not fsync() (which also flushes metadata such as
/// the mtime): the bundled SQLite is built with HAVE_FDATASYNC (.cargo/config.toml). And
/// with group commit there is at most one sync per acknowledged write.
#[test]
fn writes_sync_with_fdatasync_once_per_commit_at_most() {
    if skip_heavy() {
        return;
    }
    let Some(strace) = required_tool(
        "strace",
        "writes_sync_with_fdatasync_once_per_commit_at_most",
    ) else {
        return;
    };
    let server = Server::start();
    let user = server.register("syncer");
    let trace = server.dir.path().join("strace.txt");
    let mut tracer = Command::new(strace)
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .args(["-p", &server.pid().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start strace");
    // strace attaches to every thread before it traces; give it a moment, then check it
    // is seeing the process by one write it must trace.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .is_empty()
    {
        server.create_post(&user, "warm-up", "body");
        assert!(std::time::Instant::now() < deadline, "strace saw no sync");
    }
    const WRITES: usize = 20;
    let before = std::fs::read_to_string(&trace).unwrap_or_default();
    for n in 0..WRITES {
        server.create_post(&user, &format!("synced {n}"), "body");
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = tracer.kill();
    let _ = tracer.wait();
    let traced = std::fs::read_to_string(&trace).expect("strace output");
    let new = &traced[before.len().min(traced.len())..];
    let count = |call: &str| {
        new.lines()
            .filter(|l| l.contains(&format!("{call}(")))
            .count()
    };
    assert_eq!(count("fsync"), 0, "{traced}");
    let syncs = count("fdatasync");
    assert!(
        (1..=WRITES).contains(&syncs),
        "{syncs} fdatasync calls for {WRITES} writes: {traced}"
    );
}
