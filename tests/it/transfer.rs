//! `postd export` and `postd import` (API.md, "Export and import (CLI)"), run as the real
//! binary beside a live server: round trips, SIGKILL and resume, bad lines, `--atomic`,
//! readers and writers during an import, one-moment exports, file modes.
//!
//! `POSTD_CRASH_SEED=<n>` replays the kill delays of the SIGKILL test.

use crate::support::*;
use postd_testkit::client::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `postd export ARGS --output <dir>/NAME --db DB`; the exported lines as JSON.
fn export(db: &Path, dir: &Path, name: &str, args: &[&str]) -> Vec<Value> {
    let file = dir.join(name);
    let mut all = args.to_vec();
    all.extend(["--output", file.to_str().expect("utf-8 path")]);
    let mut full = vec!["export"];
    full.extend(all);
    cli_ok(db, &full, &[]);
    ndjson(&std::fs::read(&file).expect("export file"))
}

fn ndjson(bytes: &[u8]) -> Vec<Value> {
    text(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    for line in lines {
        writeln!(file, "{line}").expect("write input");
    }
    file.flush().expect("flush input");
}

fn import_command(db: &Path, file: &Path, author: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("import")
        .arg(file)
        .args(["--as", author])
        .args(extra)
        .arg("--db")
        .arg(db);
    cmd
}

fn import(db: &Path, file: &Path, author: &str, extra: &[&str]) -> Output {
    import_command(db, file, author, extra)
        .stdin(Stdio::null())
        .output()
        .expect("run postd import")
}

/// `line N: …` reports on stderr, in order (the logger's `postd: warning: ` taken off).
fn reported_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("postd: warning: "))
        .map(str::to_owned)
        .collect()
}

/// `n` lines with distinct titles (`{prefix} {i}`, i from 1) and a ~300-byte body.
fn numbered_lines(prefix: &str, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            json!({"title": format!("{prefix} {i}"), "body": format!("body {i} ").repeat(30)})
                .to_string()
        })
        .collect()
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(20))
        .expect("busy timeout");
    conn.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn partial_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".postd-partial"))
        .collect()
}

/// A fresh database with one user (through the CLI, no server).
fn database_with_user(dir: &TempDir, name: &str) -> PathBuf {
    let db = dir.path().join("postd.db");
    cli_ok(&db, &["user", "add", name], &[("POSTD_PASSWORD", PASSWORD)]);
    db
}

// ---------------------------------------------------------------------------------------
// Export → import
// ---------------------------------------------------------------------------------------

#[test]
fn an_export_imported_elsewhere_gives_the_same_posts_field_by_field() {
    let srv = Server::start();
    let alice = srv.register("alice");
    let bob = srv.register("bobby");
    let long_body = "ü".repeat(100_000);
    let posts = [
        json!({"title": "Hello, world", "body": "first"}),
        json!({"title": "Hello, world", "body": "second, derived -2"}),
        json!({"title": "  Ünïcödé ☃ \"quoted\" \\ back  ", "body": "line\nbreak\ttab \u{0}"}),
        json!({"title": "Explicit", "body": "", "slug": "chosen-1"}),
        json!({"title": "Long", "body": long_body}),
        json!({"title": "To trash", "body": "soft-deleted"}),
    ];
    let mut ids = Vec::new();
    for (i, post) in posts.iter().enumerate() {
        let user = if i % 2 == 0 { &alice } else { &bob };
        let resp = srv.call("POST", "/posts", Some(&user.token), Some(post));
        resp.expect(201);
        ids.push(resp.json()["id"].as_i64().expect("id"));
    }
    let trashed = *ids.last().expect("ids");
    srv.call(
        "DELETE",
        &format!("/posts/{trashed}"),
        Some(&bob.token),
        None,
    )
    .expect(204);

    // Each exported line is the API's Post object, exactly, in id order.
    let exported = export(&srv.db, srv.dir.path(), "all.ndjson", &[]);
    assert_eq!(
        exported.len(),
        ids.len() - 1,
        "the trashed post is left out"
    );
    for line in &exported {
        assert_post_shape(line);
        let id = line["id"].as_i64().expect("id");
        let api = srv.get(&format!("/posts/{id}"), None);
        api.expect(200);
        assert_eq!(line, &api.json(), "post {id}");
    }
    let exported_ids: Vec<i64> = exported.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(exported_ids, ids[..ids.len() - 1]);

    // With --trash the soft-deleted post is there too, with who deleted it and when.
    let with_trash = export(&srv.db, srv.dir.path(), "trash.ndjson", &["--trash"]);
    assert_eq!(with_trash.len(), ids.len());
    let last = with_trash.last().expect("last");
    assert_eq!(last["id"], trashed);
    assert_eq!(last["deleted_by_id"], bob.id);
    assert!(is_timestamp(&last["deleted_at"]), "{last}");
    let trash = srv.get("/trash", Some(&bob.token));
    trash.expect(200);
    let listed = &trash.json()["items"][0];
    for field in [
        "id",
        "author_id",
        "title",
        "slug",
        "body",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted_by_id",
    ] {
        assert_eq!(last[field], listed[field], "{field}");
    }

    // Import the posts' own fields into another database: the same posts come out.
    let elsewhere = TempDir::new("import-elsewhere");
    let db = database_with_user(&elsewhere, "carol");
    let lines: Vec<String> = exported
        .iter()
        .map(|p| json!({"title": p["title"], "body": p["body"], "slug": p["slug"]}).to_string())
        .collect();
    let input = elsewhere.path().join("posts.ndjson");
    write_lines(&input, &lines);
    let out = import(&db, &input, "carol", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported 5 posts from 5 lines"),
        "{}",
        text(&out.stdout)
    );
    let again = export(&db, elsewhere.path(), "again.ndjson", &[]);
    assert_eq!(again.len(), exported.len());
    for (before, after) in exported.iter().zip(&again) {
        assert_post_shape(after);
        for field in ["title", "slug", "body"] {
            assert_eq!(before[field], after[field], "{field} of {before}");
        }
        assert_eq!(after["created_at"], after["updated_at"]);
    }
}

// ---------------------------------------------------------------------------------------
// SIGKILL and resume
// ---------------------------------------------------------------------------------------

#[test]
fn an_import_killed_at_random_moments_and_run_again_writes_every_line_once() {
    const LINES: usize = 100_000;
    const KILLS: usize = 6;
    let _turn = heavy_load();
    let dir = TempDir::new("import-kill");
    let db = database_with_user(&dir, "alice");
    let input = dir.path().join("posts.ndjson");
    write_lines(&input, &numbered_lines("Line", LINES));
    let mut rng = Rng::from_crash_seed("import killed at random moments");

    // One undisturbed run's length, on another database, sets the range of kill delays.
    let timing = TempDir::new("import-kill-timing");
    let timing_db = database_with_user(&timing, "alice");
    let started = Instant::now();
    let out = import(&timing_db, &input, "alice", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let whole = started.elapsed();
    drop(timing);
    println!("an undisturbed import of {LINES} lines took {whole:?}");

    let posts = |db: &Path| count(db, "SELECT count(*) FROM posts");
    let mut seen = Vec::new();
    for kill in 0..KILLS {
        let mut child: Child = import_command(&db, &input, "alice", &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn import");
        // Anywhere in a run: reading the input, between chunks, inside one.
        let delay = whole.mul_f64(0.08 + 0.17 * (rng.below(1000) as f64 / 1000.0));
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        let now = posts(&db);
        println!("kill {kill} after {delay:?} ({status}): {now} posts");
        // A chunk is all or nothing: whole thousands of lines, never a part of one; and
        // the progress recorded is exactly what is committed (the same transaction).
        assert_eq!(now % 1000, 0, "kill {kill}: {now} posts");
        assert_eq!(
            count(&db, "SELECT coalesce(sum(posts_created), 0) FROM imports"),
            now,
            "kill {kill}: recorded progress"
        );
        assert_eq!(
            count(&db, "SELECT coalesce(sum(lines_done), 0) FROM imports"),
            now,
            "kill {kill}: recorded lines"
        );
        seen.push(now);
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {seen:?}"
    );
    assert!(
        seen.iter().any(|n| *n > 0 && *n < LINES as i64),
        "at least one kill landed mid-import: {seen:?}"
    );

    let out = import(&db, &input, "alice", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    if seen.last().is_some_and(|n| *n > 0 && *n < LINES as i64) {
        assert!(stderr.contains("resuming the import"), "{stderr}");
    }
    assert_eq!(posts(&db), LINES as i64);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT title) FROM posts"),
        LINES as i64,
        "no line twice"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM imports WHERE state = 'done' AND lines_done = 100000 \
             AND posts_created = 100000 AND lines_refused = 0"
        ),
        1
    );
    // In file order: line N got the N-th id.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM posts WHERE title <> 'Line ' || (id - (SELECT min(id) FROM posts) + 1)"
        ),
        0
    );
    cli_ok(&db, &["check"], &[]);

    // The same command once more: the input is recognised and nothing is written.
    let out = import(&db, &input, "alice", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported completely"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(posts(&db), LINES as i64);
}

// ---------------------------------------------------------------------------------------
// Bad lines and --atomic
// ---------------------------------------------------------------------------------------

/// Good and bad lines side by side, and what each bad one is reported as.
fn mixed_lines() -> (Vec<String>, Vec<&'static str>) {
    let lines = [
        r#"{"title":"Hello, world","body":"1"}"#,
        r#"{"title":"Hello, world","body":"2: derived hello-world-2"}"#,
        r#"{"title":"","body":"3"}"#,
        r#"{"title":"Explicit","body":"4","slug":"mine"}"#,
        r#"{"title":"Again","body":"5","slug":"mine"}"#,
        r#"{"title":"t","body":"6","id":7}"#,
        r#"not json"#,
        r#""#,
        r#"["an array"]"#,
        r#"{"title":"Taken","body":"10","slug":"taken-before"}"#,
        r#"{"title":"t","body":"11","slug":"Not A Slug"}"#,
        r#"{"title":"mine","body":"12: derived mine-2"}"#,
        r#"{"body":7}"#,
        r#"{"title":"Hello world","body":"14: derived hello-world-3"}"#,
    ];
    let expected = vec![
        "line 3: title: must not be empty",
        "line 5: slug: slug 'mine' is already used by another post",
        "line 6: unknown field 'id'",
        "line 7: not valid JSON: expected ident at column 2",
        "line 8: empty; every line must be a JSON object",
        "line 9: invalid type: sequence, expected a JSON object",
        "line 10: slug: slug 'taken-before' is already used by another post",
        "line 11: slug: must be lowercase letters and digits in groups joined by single '-'",
        "line 13: title: is required",
        "line 13: body: must be a string",
    ];
    (lines.iter().map(|l| l.to_string()).collect(), expected)
}

#[test]
fn bad_lines_are_reported_by_number_skipped_and_exit_2() {
    let dir = TempDir::new("import-bad");
    let db = database_with_user(&dir, "alice");
    let (lines, expected) = mixed_lines();
    let input = dir.path().join("mixed.ndjson");
    write_lines(&input, &lines);
    cli_ok(
        &db,
        &["user", "add", "other"],
        &[("POSTD_PASSWORD", PASSWORD)],
    );
    let taken = dir.path().join("taken.ndjson");
    write_lines(
        &taken,
        &[r#"{"title":"x","body":"","slug":"taken-before"}"#.to_string()],
    );
    assert!(import(&db, &taken, "other", &[]).status.success());

    let out = import(&db, &input, "alice", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(reported_lines(&out.stderr), expected);
    assert!(
        text(&out.stdout).contains("imported 5 posts from 14 lines")
            && text(&out.stdout).contains("9 bad lines skipped"),
        "{}",
        text(&out.stdout)
    );
    let slugs: Vec<String> = {
        let conn = rusqlite::Connection::open(&db).expect("open");
        let mut stmt = conn
            .prepare("SELECT slug FROM posts WHERE author_id = (SELECT id FROM users WHERE username = 'alice') ORDER BY id")
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(
        slugs,
        [
            "hello-world",
            "hello-world-2",
            "mine",
            "mine-2",
            "hello-world-3"
        ]
    );

    // Run again: recognised as done, nothing written, the same ending.
    let out = import(&db, &input, "alice", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(reported_lines(&out.stderr).is_empty());
    assert_eq!(count(&db, "SELECT count(*) FROM posts"), 6);

    // Unknown users and missing files are one clear line and exit 1.
    let out = import(&db, &input, "nobody", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("user 'nobody' not found"));
    let out = import(&db, &dir.path().join("missing.ndjson"), "alice", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_atomic_any_bad_line_rejects_the_file_and_nothing_is_written() {
    let dir = TempDir::new("import-atomic");
    let db = database_with_user(&dir, "alice");
    let (mut lines, _) = mixed_lines();
    // In the check pass an explicit slug taken by an earlier line's derived one is found
    // too, without writing anything.
    lines.push(r#"{"title":"x","body":"","slug":"hello-world-3"}"#.into());
    let input = dir.path().join("mixed.ndjson");
    write_lines(&input, &lines);
    let out = import(&db, &input, "alice", &["--atomic"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let reported = reported_lines(&out.stderr);
    assert!(
        reported.contains(&"line 5: slug: slug 'mine' is already used by line 4".into()),
        "{reported:?}"
    );
    assert!(
        reported.contains(&"line 15: slug: slug 'hello-world-3' is already used by line 14".into()),
        "{reported:?}"
    );
    assert!(
        reported.contains(&"line 13: body: must be a string".into()),
        "{reported:?}"
    );
    assert!(text(&out.stderr).contains("rejected and nothing was written"));
    assert_eq!(count(&db, "SELECT count(*) FROM posts"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM imports"), 0);

    // A good file goes in whole, with the slugs a run without --atomic would give.
    let good: Vec<String> = [
        r#"{"title":"Hello, world","body":""}"#,
        r#"{"title":"Hello, world","body":""}"#,
        r#"{"title":"Own","body":"","slug":"own"}"#,
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    let input = dir.path().join("good.ndjson");
    write_lines(&input, &good);
    let out = import(&db, &input, "alice", &["--atomic"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM posts WHERE slug IN ('hello-world', 'hello-world-2', 'own')"
        ),
        3
    );
    assert_eq!(count(&db, "SELECT count(*) FROM import_chunks"), 0);
    // The scratch database of the check pass is gone with its directory.
    assert!(partial_dirs(dir.path()).is_empty());
}

#[test]
fn an_atomic_import_whose_slug_another_writer_takes_is_undone() {
    const LINES: usize = 60_000;
    let srv = Server::start();
    let alice = srv.register("alice");
    let bob = srv.register("bobby");
    let mut lines = numbered_lines("Raced", LINES);
    lines.push(r#"{"title":"Last","body":"","slug":"raced-slug"}"#.into());
    let input = srv.dir.path().join("raced.ndjson");
    write_lines(&input, &lines);
    let child = import_command(&srv.db, &input, &alice.name, &["--atomic"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    // Once posts appear the check pass is over: take the last line's slug now.
    let deadline = Instant::now() + Duration::from_secs(300);
    while count(
        &srv.db,
        &format!("SELECT count(*) FROM posts WHERE author_id = {}", alice.id),
    ) == 0
    {
        assert!(
            Instant::now() < deadline,
            "the import never started writing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    srv.call(
        "POST",
        "/posts",
        Some(&bob.token),
        Some(&json!({"title": "Quick", "body": "", "slug": "raced-slug"})),
    )
    .expect(201);
    let out = child.wait_with_output().expect("import");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "line {}: slug: slug 'raced-slug' is already used by another post",
            LINES + 1
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing is written"), "{stderr}");
    assert_eq!(
        count(
            &srv.db,
            &format!("SELECT count(*) FROM posts WHERE author_id = {}", alice.id)
        ),
        0
    );
    assert_eq!(count(&srv.db, "SELECT count(*) FROM imports"), 0);
    srv.get("/posts/by-slug/raced-slug", None).expect(200);
}

// ---------------------------------------------------------------------------------------
// Beside a live server
// ---------------------------------------------------------------------------------------

#[test]
fn an_import_beside_a_live_server_lets_its_reads_answer_and_its_writes_interleave() {
    const LINES: usize = 100_000;
    let _turn = timing_sensitive();
    let srv = Server::start();
    let alice = srv.register("alice");
    let writer = srv.register("writer");
    let input = srv.dir.path().join("live.ndjson");
    write_lines(&input, &numbered_lines("Live", LINES));

    let stop = AtomicBool::new(false);
    let read_pauses = Mutex::new((0u64, Duration::ZERO));
    let write_pauses = Mutex::new((0u64, Duration::ZERO));
    let (out, import_time) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut client = Client::with_timeout(srv.addr, Duration::from_secs(60));
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let resp = client
                    .request("GET", "/posts?limit=20", &[], None)
                    .expect("GET /posts");
                let took = started.elapsed();
                resp.expect(200);
                let mut worst = read_pauses.lock().unwrap();
                *worst = (worst.0 + 1, worst.1.max(took));
            }
        });
        scope.spawn(|| {
            let mut client = Client::with_timeout(srv.addr, Duration::from_secs(60));
            let auth = format!("Bearer {}", writer.token);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let body = json!({"title": format!("Beside {n}"), "body": "x"}).to_string();
                let started = Instant::now();
                let resp = client
                    .request(
                        "POST",
                        "/posts",
                        &[("Authorization", &auth)],
                        Some(body.as_bytes()),
                    )
                    .expect("POST /posts");
                let took = started.elapsed();
                resp.expect(201);
                let mut worst = write_pauses.lock().unwrap();
                *worst = (worst.0 + 1, worst.1.max(took));
                drop(worst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let started = Instant::now();
        let out = import(&srv.db, &input, &alice.name, &[]);
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        (out, took)
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (reads, read_worst) = *read_pauses.lock().unwrap();
    let (writes, write_worst) = *write_pauses.lock().unwrap();
    println!(
        "import of {LINES} lines beside the server: {import_time:?}; {reads} reads, the longest \
         {read_worst:?}; {writes} writes, the longest {write_worst:?}"
    );
    assert!(reads > 100 && writes > 10, "{reads} reads, {writes} writes");
    // Readers never wait for the import (WAL); writers wait at most one chunk, far from
    // the 10 s busy timeout. The bounds are loose: 2 shared cores, a debug build.
    assert!(read_worst < Duration::from_secs(2), "{read_worst:?}");
    assert!(write_worst < Duration::from_secs(5), "{write_worst:?}");
    assert_eq!(
        count(
            &srv.db,
            &format!("SELECT count(*) FROM posts WHERE author_id = {}", alice.id)
        ),
        LINES as i64
    );
    // The server's writes landed between the import's chunks: some ids inside its range.
    assert!(
        count(
            &srv.db,
            &format!(
                "SELECT count(*) FROM posts WHERE author_id = {} AND id BETWEEN
                 (SELECT min(id) FROM posts WHERE author_id = {a}) AND
                 (SELECT max(id) FROM posts WHERE author_id = {a})",
                writer.id,
                a = alice.id
            )
        ) > 0,
        "no write interleaved with the import"
    );
    srv.get("/healthz", None).expect(200);
}

#[test]
fn an_export_while_the_server_writes_is_the_posts_of_one_moment() {
    let _turn = heavy_load();
    let srv = Server::start();
    let admin = srv.admin("admin");
    // Posts between the two that move together, so that the export takes a while.
    let filler: Vec<Value> = (0..2_000)
        .map(|i| json!({"title": format!("Filler {i}"), "body": "f".repeat(2_000)}))
        .collect();
    let resp = srv.call(
        "POST",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"items": [{"title": "First", "body": "v0"}]})),
    );
    resp.expect(201);
    let first = resp.json()["items"][0]["id"].as_i64().expect("id");
    for items in filler.chunks(1_000) {
        srv.call(
            "POST",
            "/posts/bulk",
            Some(&admin.token),
            Some(&json!({ "items": items })),
        )
        .expect(201);
    }
    let resp = srv.call(
        "POST",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"items": [{"title": "Last", "body": "v0"}]})),
    );
    resp.expect(201);
    let last = resp.json()["items"][0]["id"].as_i64().expect("id");

    let stop = AtomicBool::new(false);
    let longest_write = Mutex::new(Duration::ZERO);
    let exports = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut client = Client::with_timeout(srv.addr, Duration::from_secs(60));
            let auth = format!("Bearer {}", admin.token);
            let mut version = 0;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                let v = format!("v{version}");
                // One transaction moves both posts on, and adds a batch of ten.
                let patch = json!({"items": [{"id": first, "body": v}, {"id": last, "body": v}]});
                let batch: Vec<Value> = (0..10)
                    .map(|i| json!({"title": format!("Batch {version} item {i}"), "body": ""}))
                    .collect();
                for (method, body, status) in [
                    ("PATCH", patch, 200),
                    ("POST", json!({ "items": batch }), 201),
                ] {
                    let bytes = body.to_string();
                    let started = Instant::now();
                    let resp = client
                        .request(
                            method,
                            "/posts/bulk",
                            &[("Authorization", &auth)],
                            Some(bytes.as_bytes()),
                        )
                        .expect("bulk request");
                    let took = started.elapsed();
                    resp.expect(status);
                    let mut longest = longest_write.lock().unwrap();
                    *longest = (*longest).max(took);
                }
            }
        });
        let exports: Vec<Vec<Value>> = (0..4)
            .map(|n| export(&srv.db, srv.dir.path(), &format!("moment-{n}.ndjson"), &[]))
            .collect();
        stop.store(true, Ordering::SeqCst);
        exports
    });
    let mut versions = BTreeSet::new();
    for posts in &exports {
        let by_id: BTreeMap<i64, &Value> = posts
            .iter()
            .map(|p| (p["id"].as_i64().unwrap(), p))
            .collect();
        assert_eq!(
            by_id[&first]["body"], by_id[&last]["body"],
            "the two posts of one transaction are seen at one moment"
        );
        versions.insert(by_id[&first]["body"].as_str().unwrap_or("").to_owned());
        let mut batches: BTreeMap<&str, usize> = BTreeMap::new();
        for post in posts {
            let title = post["title"].as_str().unwrap_or("");
            if let Some(rest) = title.strip_prefix("Batch ") {
                let batch = rest.split(" item ").next().unwrap_or("");
                *batches.entry(batch).or_default() += 1;
            }
        }
        assert!(
            batches.values().all(|n| *n == 10),
            "whole batches only: {batches:?}"
        );
    }
    println!(
        "exports saw versions {versions:?}; the longest write during them took {:?}",
        longest_write.lock().unwrap()
    );
    assert!(
        *longest_write.lock().unwrap() < Duration::from_secs(5),
        "writers are not held up by an export"
    );
}

// ---------------------------------------------------------------------------------------
// Files, stdin, progress
// ---------------------------------------------------------------------------------------

#[test]
fn exports_are_owner_only_files_and_replace_a_link_rather_than_follow_it() {
    let dir = TempDir::new("export-files");
    let db = database_with_user(&dir, "alice");
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &numbered_lines("File", 3));
    assert!(import(&db, &input, "alice", &[]).status.success());

    let elsewhere = dir.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, "must stay as it is").expect("write");
    let dest = dir.path().join("export.ndjson");
    std::os::unix::fs::symlink(&elsewhere, &dest).expect("symlink");
    let out = cli_ok(
        &db,
        &["export", "--output", dest.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        format!("exported 3 posts to {}", dest.display())
    );
    assert!(!std::fs::symlink_metadata(&dest)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert_eq!(mode(&dest), 0o600);
    assert_eq!(ndjson(&std::fs::read(&dest).expect("read")).len(), 3);
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "must stay as it is"
    );
    // Replaced whole on a second export, too.
    cli_ok(
        &db,
        &["export", "--output", dest.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(mode(&dest), 0o600);
    assert!(partial_dirs(dir.path()).is_empty());

    // To stdout: the lines and nothing else.
    let out = cli_ok(&db, &["export"], &[]);
    assert_eq!(ndjson(&out.stdout).len(), 3);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn stdin_is_recognised_by_its_bytes_and_imported_once() {
    let dir = TempDir::new("import-stdin");
    let db = database_with_user(&dir, "alice");
    let lines = numbered_lines("Piped", 2_500).join("\n") + "\n";
    let pipe = |bytes: &[u8]| -> Output {
        let mut child = import_command(&db, Path::new("-"), "alice", &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write stdin");
        child.wait_with_output().expect("import")
    };
    let out = pipe(lines.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 2,500 posts from 2,500 lines of stdin"));
    let out = pipe(lines.as_bytes());
    assert!(
        text(&out.stdout).contains("imported completely"),
        "{}",
        text(&out.stdout)
    );
    // Other bytes are another input.
    let out = pipe(&lines.as_bytes()[..lines.len() - 1]);
    assert!(
        text(&out.stdout).contains("imported 2,500 posts"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM posts"), 5_000);
    assert_eq!(mode(&db), 0o600);
    assert!(
        partial_dirs(dir.path()).is_empty(),
        "the copy of stdin is gone"
    );
}

#[test]
fn progress_shows_on_a_terminal_and_nowhere_else() {
    let dir = TempDir::new("import-progress");
    let db = database_with_user(&dir, "alice");
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &numbered_lines("Shown", 3_000));
    let out = import(&db, &input, "alice", &[]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    // `script` gives the command a terminal (util-linux; skipped where it is missing).
    let line = format!(
        "{BIN} export --db {} --output {}",
        db.display(),
        dir.path().join("out.ndjson").display()
    );
    let Ok(out) = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
    else {
        println!("no `script` here: the terminal half is skipped");
        return;
    };
    let shown = text(&out.stdout);
    assert!(
        shown.contains("exporting: 3,000/3,000 posts (100%)") && shown.contains("posts/s"),
        "{shown:?}"
    );
}
