//! The command line (API.md "Command line"), as one-shot processes on the database an
//! app in this process serves: `postd user`, option errors in one line, `purge` and
//! `backup` while the app reads and writes.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn cli_user_add_from_env_and_stdin() {
    let s = TestApp::new();
    let db = s.db.to_str().unwrap().to_string();
    // From POSTD_PASSWORD.
    let (code, out, err) = run_bin(
        &["user", "add", "envuser", "--db", &db],
        &[("POSTD_PASSWORD", PASSWORD)],
        None,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    let me = s.get("/auth/me", Some(&s.login("envuser"))).json();
    assert_eq!(me["role"], "user");
    // From one line of stdin, as admin.
    let stdin_pw = "piped-password-42";
    let (code, out, err) = run_bin(
        &["user", "add", "pipeuser", "--admin", "--db", &db],
        &[],
        Some(format!("{stdin_pw}\n").as_bytes()),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "pipeuser", "password": stdin_pw})),
    );
    r.expect(200);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/auth/me", Some(&token)).json()["role"], "admin");
    // The newline is not part of the password.
    s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "pipeuser", "password": format!("{stdin_pw}\n")})),
    )
    .expect(401);

    // Refusals: taken name (case-insensitively), bad name, short password, no password.
    for (args, env, stdin) in [
        (
            vec!["user", "add", "ENVUSER"],
            vec![("POSTD_PASSWORD", PASSWORD)],
            None,
        ),
        (
            vec!["user", "add", "x y"],
            vec![("POSTD_PASSWORD", PASSWORD)],
            None,
        ),
        (
            vec!["user", "add", "shorty"],
            vec![("POSTD_PASSWORD", "short")],
            None,
        ),
        (vec!["user", "add", "nopw"], vec![], Some(&b""[..])),
        (vec!["user", "role", "envuser", "superuser"], vec![], None),
        (vec!["user", "role", "ghost", "admin"], vec![], None),
        (vec!["user", "delete", "ghost"], vec![], None),
    ] {
        let mut full = args.clone();
        full.extend(["--db", db.as_str()]);
        let outcome = run_bin(&full, &env, stdin, Duration::from_secs(20));
        assert_one_line_failure(&format!("{args:?}"), &outcome);
    }
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 2);
}

#[test]
fn cli_bad_options_exit_with_one_line() {
    let dir = TempDir::new("cli");
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let d = Duration::from_secs(15);
    for args in [
        vec!["--workers", "0", "--addr", "127.0.0.1:0", "--db", db],
        vec![
            "serve",
            "--workers",
            "abc",
            "--addr",
            "127.0.0.1:0",
            "--db",
            db,
        ],
        vec!["--bogus", "--addr", "127.0.0.1:0", "--db", db],
        vec!["--signup", "maybe", "--addr", "127.0.0.1:0", "--db", db],
        vec!["--max-body", "0", "--addr", "127.0.0.1:0", "--db", db],
        vec!["purge", "--db", db],
        vec!["purge", "--older-than", "3w", "--db", db],
        vec!["purge", "--older-than", "--db", db],
        vec!["frobnicate", "--db", db],
        vec!["user", "--db", db],
        vec!["backup", "--db", db],
        vec!["--addr", "127.0.0.1:0", "--db", "/nonexistent-dir/x.db"],
        vec!["serve", "--addr", "not-an-address", "--db", db],
    ] {
        let outcome = run_bin(&args, &[], None, d);
        assert_one_line_failure(&format!("{args:?}"), &outcome);
    }
    // Unusable database files.
    let not_db = dir.path().join("not-a-db.txt");
    std::fs::write(
        &not_db,
        "this is not an SQLite database, just some text that is long enough to matter\n"
            .repeat(100),
    )
    .unwrap();
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir_all(&a_dir).unwrap();
    let under_file = not_db.join("x.db");
    for bad_db in [&not_db, &a_dir, &under_file] {
        let bad = bad_db.to_str().unwrap();
        for args in [
            vec!["--addr", "127.0.0.1:0", "--db", bad],
            vec!["user", "add", "alice", "--db", bad],
            vec!["purge", "--older-than", "1d", "--db", bad],
        ] {
            let outcome = run_bin(&args, &[("POSTD_PASSWORD", PASSWORD)], None, d);
            assert_one_line_failure(&format!("{args:?}"), &outcome);
        }
    }
    // Help and version succeed.
    let (code, out, _) = run_bin(&["--help"], &[], None, d);
    assert_eq!(code, Some(0));
    assert!(out.contains("postd"), "{out}");
    let (code, out, _) = run_bin(&["--version"], &[], None, d);
    assert_eq!(code, Some(0));
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    // An environment variable with a bad value is a bad option too.
    let outcome = run_bin(
        &["--addr", "127.0.0.1:0", "--db", db],
        &[("POSTD_WORKERS", "0")],
        None,
        d,
    );
    assert_one_line_failure("POSTD_WORKERS=0", &outcome);
    // Backing up a database that does not exist.
    let target = dir.path().join("copy.db");
    let outcome = run_bin(
        &[
            "backup",
            target.to_str().unwrap(),
            "--db",
            "/nonexistent-dir/x.db",
        ],
        &[],
        None,
        d,
    );
    assert_one_line_failure("backup of a missing database", &outcome);
}

#[test]
fn cli_purge_against_a_live_server() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let keep = s.create_post(&alice, "Keep", "b");
    let kc = s.create_comment(&alice.token, id(&keep), "kept comment");
    let mut doomed = Vec::new();
    for i in 0..2 {
        let p = s.create_post(&alice, &format!("Doomed {i}"), "b");
        s.create_comment(&alice.token, id(&p), "c1");
        s.create_comment(&alice.token, id(&p), "c2");
        assert_204(&s.call(
            "DELETE",
            &format!("/posts/{}", id(&p)),
            Some(&alice.token),
            None,
        ));
        doomed.push(id(&p));
    }
    std::thread::sleep(Duration::from_millis(20));

    // Nothing is old enough for 30d.
    let out = s.cli_ok(&["purge", "--older-than", "30d"], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w == "0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 3);

    // Dry run: counts, changes nothing.
    let out = s.cli_ok(&["purge", "--older-than", "0s", "--dry-run"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.split_whitespace().any(|w| w == "2"),
        "dry run should report 2: {stdout:?}"
    );
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 3);
    assert_eq!(s.sql_count("SELECT count(*) FROM comments"), 5);

    let out = s.cli_ok(&["purge", "--older-than", "0s"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.split_whitespace().any(|w| w == "2"),
        "purge should report 2: {stdout:?}"
    );
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    assert_eq!(s.sql_count("SELECT count(*) FROM comments"), 1);
    let root = s.admin("root");
    for pid in doomed {
        s.call(
            "POST",
            &format!("/posts/{pid}/restore"),
            Some(&root.token),
            None,
        )
        .expect(404);
    }
    // The app serving the file carries on.
    assert!(s.get("/trash", Some(&alice.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        s.collect_pages(&format!("/posts/{}/comments", id(&keep)), None),
        vec![kc]
    );
    s.create_post(&alice, "After purge", "b");
    s.get("/healthz", None).expect(200);
}

#[test]
fn cli_backup_of_a_live_server() {
    let s = TestApp::new();
    let alice = s.register("alice");
    for i in 0..20 {
        let p = s.create_post(&alice, &format!("Backed up {i}"), "body");
        s.create_comment(&alice.token, id(&p), "c");
    }
    let target = s.dir.path().join("backup.db");
    let target_str = target.to_str().unwrap().to_string();

    // While the server keeps writing.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writes = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 200 {
                s.create_post_json(
                    &alice.token,
                    json!({"title": format!("During {n}"), "body": ""}),
                );
                n += 1;
            }
            n
        });
        let out = s.cli(&["backup", &target_str], &[]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        writer.join().unwrap()
    });
    let conn = rusqlite::Connection::open(&target).expect("the backup opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let in_backup: i64 = conn
        .query_row("SELECT count(*) FROM posts", [], |r| r.get(0))
        .unwrap();
    assert!(
        (20..=20 + writes as i64).contains(&in_backup),
        "{in_backup} posts in the backup, {writes} written during"
    );
    let fk: Vec<(String,)> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, String>(0)?,)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(fk.is_empty(), "{fk:?}");
    drop(conn);

    // Quiet server: the copy has exactly the same count.
    let quiet = s.dir.path().join("quiet.db");
    s.cli_ok(&["backup", quiet.to_str().unwrap()], &[]);
    let conn = rusqlite::Connection::open(&quiet).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM posts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, s.sql_count("SELECT count(*) FROM posts"));
    let c: i64 = conn
        .query_row("SELECT count(*) FROM comments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(c, 20);
    // A server started on the copy serves the same posts.
    drop(conn);
    let copy_dir = TempDir::new("restore");
    let copy_db = copy_dir.path().join("postd.db");
    std::fs::copy(&quiet, &copy_db).unwrap();
    let (code, _, err) = run_bin(
        &["user", "add", "checker", "--db", copy_db.to_str().unwrap()],
        &[("POSTD_PASSWORD", PASSWORD)],
        None,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    let conn = rusqlite::Connection::open(&copy_db).unwrap();
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);
    s.get("/healthz", None).expect(200);
}
