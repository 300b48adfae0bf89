//! Upgrading the binary upgrades an older database file in place.

use crate::support::*;
use serde_json::json;
use std::process::Command;

const V1_DUMP: &str = include_str!("../../fixtures/postd-v1.sql");

fn user_version(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_version_1_file_is_upgraded_in_place_with_its_data() {
    if skip_heavy() {
        return;
    }
    let dir = TempDir::new("upgrade");
    let db = dir.path().join("postd.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(V1_DUMP)
        .unwrap();
    assert_eq!(user_version(&db), 1);

    cli_ok(&db, &["check"], &[]);
    assert!(user_version(&db) >= 2, "opening the file upgrades it");

    let server = Server::start_with_db(db.clone(), &[], &[]);
    // Old data is all there, soft delete still hides the deleted post.
    let listed = server.collect_pages("/posts", None);
    let ids: Vec<i64> = listed.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1]);
    assert_eq!(listed[0]["slug"], "written-before-the-upgrade");
    let found = server.get("/posts?q=upgrade", None);
    assert_eq!(
        found.json()["items"].as_array().unwrap().len(),
        1,
        "{}",
        found.text()
    );
    let comments = server.get("/posts/1/comments", None);
    assert_eq!(comments.json()["items"][0]["body"], "an old comment");

    // The old user logs in with the old password, and the new feature works for them.
    let login = server.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "olduser", "password": "old-password-1"})),
    );
    login.expect(200);
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    let body = json!({"title": "After the upgrade", "body": "new"});
    let first = server.call_with(
        "POST",
        "/posts",
        Some(&token),
        Some(&body),
        &[("Idempotency-Key", "k")],
    );
    first.expect(201);
    // New ids continue after the old ones; the soft-deleted post's id is not reused.
    assert_eq!(first.json()["id"], 3);
    let replay = server.call_with(
        "POST",
        "/posts",
        Some(&token),
        Some(&body),
        &[("Idempotency-Key", "k")],
    );
    replay.expect(201);
    assert_eq!(replay.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(replay.body, first.body);
}

#[test]
fn a_file_from_a_newer_postd_is_refused_with_one_clear_line() {
    if skip_heavy() {
        return;
    }
    let dir = TempDir::new("newer");
    let db = dir.path().join("postd.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("newer"), "{stderr}");
    assert_eq!(user_version(&db), 99, "the file is left alone");
}
