//! `postd export` and `postd import` beside the real binary serving the same file: an
//! import SIGKILLed at random moments and run again writes every line once, an `--atomic`
//! import undone when a writer takes a slug, the server's reads and writes during an
//! import, and an export of one moment while the server writes. The one-shot cases are
//! `quick::transfer`.
//!
//! `POSTD_CRASH_SEED=<n>` replays the kill delays of the SIGKILL test.

use crate::support::transfer::*;
use crate::support::*;
use postd_testkit::client::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[test]
fn an_import_killed_at_random_moments_and_run_again_writes_every_line_once() {
    if skip_heavy() {
        return;
    }
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

#[test]
fn an_atomic_import_whose_slug_another_writer_takes_is_undone() {
    if skip_heavy() {
        return;
    }
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

#[test]
fn an_import_beside_a_live_server_lets_its_reads_answer_and_its_writes_interleave() {
    if skip_heavy() {
        return;
    }
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
    if skip_heavy() {
        return;
    }
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
