//! Crash safety: the real binary is SIGKILLed at random moments while a 10,000-item bulk
//! write is in flight (and single writes race with it), then restarted on the same file.
//! After every restart the bulk is all-or-nothing, the database passes SQLite's own
//! integrity checks (including the full-text index against its content table), foreign
//! keys hold, and every write answered 2xx before the kill is still there.
//!
//! `POSTD_CRASH_SEED=<n>` replays a run; `POSTD_CRASH_ITERATIONS=<n>` changes the count.

use crate::support::*;
use postd_testkit::client::Client;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn iterations() -> usize {
    std::env::var("POSTD_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// One request on its own connection that tolerates the server dying under it: `None`
/// when the connection failed or the answer is incomplete.
fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
) -> Option<(u16, Vec<u8>)> {
    let auth = format!("Bearer {token}");
    let resp = Client::with_timeout(addr, Duration::from_secs(60))
        .request(method, path, &[("Authorization", &auth)], body)
        .ok()?;
    Some((resp.status, resp.body))
}

fn check_database(srv: &Server, context: &str) {
    let conn = rusqlite::Connection::open(&srv.db).expect("open db");
    conn.busy_timeout(Duration::from_secs(20))
        .expect("busy timeout");
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("integrity_check");
    assert_eq!(
        integrity,
        vec!["ok".to_string()],
        "{context}: integrity_check"
    );
    let fk_violations: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(format!(
                    "{}#{:?}->{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .expect("foreign_key_check");
    assert!(
        fk_violations.is_empty(),
        "{context}: foreign_key_check: {fk_violations:?}"
    );
    // With rank = 1 FTS5 also compares the index with the external content table.
    conn.execute(
        "INSERT INTO posts_fts (posts_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap_or_else(|e| panic!("{context}: FTS5 integrity-check: {e}"));
}

/// Single `POST /posts` in a loop until told to stop or the server dies; every 201 is
/// recorded as acknowledged (id, title).
fn single_writer(
    addr: SocketAddr,
    token: &str,
    tag: &str,
    stop: &AtomicBool,
    acked: &Mutex<Vec<(i64, String)>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let title = format!("single {tag} {n}");
        let body = serde_json::to_vec(&serde_json::json!({"title": title, "body": "acked"}))
            .expect("json");
        match try_request(addr, "POST", "/posts", token, Some(&body)) {
            Some((201, bytes)) => {
                let post: Value = serde_json::from_slice(&bytes).expect("201 body is JSON");
                let id = post["id"].as_i64().expect("id");
                acked.lock().expect("acked").push((id, title));
            }
            Some((status, bytes)) => panic!(
                "single create answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ),
            None => return, // the server died under us
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every acknowledged single create is still readable, unchanged.
fn verify_acked(srv: &Server, acked: &[(i64, String)], context: &str) {
    for (id, title) in acked {
        let resp = srv.get(&format!("/posts/{id}"), None);
        assert_eq!(
            resp.status,
            200,
            "{context}: acknowledged post {id} is gone: {}",
            resp.text()
        );
        assert_eq!(resp.json()["title"], title.as_str(), "{context}: post {id}");
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}
/// Runs `op` (one request on `srv`'s address) while a single writer races with it.
/// With `kill_after`, the server is SIGKILLed after that delay and restarted; without, the
/// op runs to its answer. Returns the op's answer and how long it took (or ran).
fn race<F>(
    srv: &mut Server,
    op: F,
    single: &TestUser,
    tag: &str,
    acked: &Mutex<Vec<(i64, String)>>,
    kill_after: Option<Duration>,
) -> (Option<(u16, Vec<u8>)>, Duration)
where
    F: FnOnce(SocketAddr) -> Option<(u16, Vec<u8>)> + Send,
{
    let stop = AtomicBool::new(false);
    let addr = srv.addr;
    let started = Instant::now();
    let result = std::thread::scope(|scope| {
        let op_thread = scope.spawn(|| {
            let answer = op(addr);
            (answer, started.elapsed())
        });
        let singles = scope.spawn(|| single_writer(addr, &single.token, tag, &stop, acked));
        let result = match kill_after {
            Some(delay) => {
                std::thread::sleep(delay);
                srv.kill();
                op_thread.join().expect("op thread")
            }
            None => op_thread.join().expect("op thread"),
        };
        stop.store(true, Ordering::SeqCst);
        singles.join().expect("single writer");
        result
    });
    if kill_after.is_some() {
        srv.restart();
    }
    result
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn sigkill_during_bulk_create_is_all_or_nothing() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let started = Instant::now();
    let mut rng = Rng::from_crash_seed("bulk create");
    let mut srv = Server::start();
    let bulker = srv.register("bulker");
    let single = srv.register("single");
    let items: Vec<Value> = (0..BATCH)
        .map(|i| {
            serde_json::json!({"title": format!("crash item {i}"), "body": format!("body of item {i}")})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "items": items })).expect("json");
    let count_sql = format!("SELECT count(*) FROM posts WHERE author_id = {}", bulker.id);
    let acked: Mutex<Vec<(i64, String)>> = Mutex::new(Vec::new());
    let bulk =
        |addr: SocketAddr| try_request(addr, "POST", "/posts/bulk", &bulker.token, Some(&body));

    // One undisturbed run, under the same conditions as the others (a freshly started
    // server, a single writer racing), tells how long a bulk takes; the kills land within.
    srv.restart();
    let (answer, typical) = race(&mut srv, bulk, &single, "warm-up", &acked, None);
    let (status, bytes) = answer.expect("warm-up bulk answered");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(srv.sql_count(&count_sql), BATCH as i64);
    println!(
        "bulk create of {BATCH} takes {} ms undisturbed",
        millis(typical)
    );

    let (mut committed, mut lost, mut acked_bulks) = (0, 0, 0);
    let window = millis(typical) * 5 / 4 + 1;
    for it in 0..iterations() {
        let before = srv.sql_count(&count_sql);
        let delay = Duration::from_millis(rng.below(window as usize) as u64);
        let tag = it.to_string();
        let (answer, _) = race(&mut srv, bulk, &single, &tag, &acked, Some(delay));
        let context = format!("iteration {it} (kill after {} ms)", millis(delay));

        let moved = srv.sql_count(&count_sql) - before;
        assert!(
            moved == 0 || moved == BATCH as i64,
            "{context}: the bulk moved the post count by {moved}, not 0 or {BATCH}"
        );
        let acknowledged = match &answer {
            Some((201, _)) => true,
            Some((status, bytes)) => panic!(
                "{context}: bulk answered {status}: {}",
                String::from_utf8_lossy(bytes)
            ),
            None => false,
        };
        if acknowledged {
            acked_bulks += 1;
            assert_eq!(moved, BATCH as i64, "{context}: acknowledged bulk lost");
        }
        if moved == 0 {
            lost += 1;
        } else {
            committed += 1;
        }
        check_database(&srv, &context);
        let acked_now = acked.lock().expect("acked").clone();
        verify_acked(&srv, &acked_now, &context);
        println!(
            "{context}: bulk {} ({}), {} acknowledged single creates so far all present",
            if moved == 0 { "absent" } else { "complete" },
            if acknowledged {
                "answered 201"
            } else {
                "no answer"
            },
            acked_now.len()
        );
    }
    // The server still works normally on the file after all this.
    srv.call(
        "POST",
        "/posts",
        Some(&single.token),
        Some(&serde_json::json!({"title": "after the storm", "body": ""})),
    )
    .expect(201);
    println!(
        "bulk create: {} kills survived: {committed} committed ({acked_bulks} acknowledged), \
         {lost} rolled back, {} acknowledged single creates intact, {:.1} s",
        committed + lost,
        acked.lock().expect("acked").len(),
        started.elapsed().as_secs_f64()
    );
}

/// A fresh batch for the delete test: 10,000 posts by `author`, two comments on every
/// 250th, 20 of them soft-deleted (a hard delete takes those too). Returns the delete
/// body and the number of comments made.
fn make_batch(
    srv: &Server,
    author: &TestUser,
    commenter: &TestUser,
    create_body: &[u8],
) -> (Vec<u8>, i64) {
    let (status, bytes) = try_request(
        srv.addr,
        "POST",
        "/posts/bulk",
        &author.token,
        Some(create_body),
    )
    .expect("bulk create answered");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let created: Value = serde_json::from_slice(&bytes).expect("json");
    let ids: Vec<i64> = created["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), BATCH);
    let mut comments = 0;
    for id in ids.iter().step_by(250) {
        for n in 0..2 {
            srv.call(
                "POST",
                &format!("/posts/{id}/comments"),
                Some(&commenter.token),
                Some(&serde_json::json!({"body": format!("comment {n}")})),
            )
            .expect(201);
            comments += 1;
        }
    }
    for id in ids.iter().skip(7).step_by(500) {
        srv.call("DELETE", &format!("/posts/{id}"), Some(&author.token), None)
            .expect(204);
    }
    let body = serde_json::to_vec(&serde_json::json!({"post_ids": ids, "hard_delete": true}))
        .expect("json");
    (body, comments)
}

#[test]
fn sigkill_during_bulk_hard_delete_is_all_or_nothing() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let started = Instant::now();
    let mut rng = Rng::from_crash_seed("bulk hard delete");
    let mut srv = Server::start();
    let admin = srv.admin("root");
    let author = srv.register("author");
    let commenter = srv.register("commenter");
    let single = srv.register("single");
    let items: Vec<Value> = (0..BATCH)
        .map(|i| serde_json::json!({"title": format!("doomed {i}"), "body": "x"}))
        .collect();
    let create_body = serde_json::to_vec(&serde_json::json!({ "items": items })).expect("json");
    let posts_sql = format!("SELECT count(*) FROM posts WHERE author_id = {}", author.id);
    let comments_sql = format!(
        "SELECT count(*) FROM comments WHERE author_id = {}",
        commenter.id
    );
    let acked: Mutex<Vec<(i64, String)>> = Mutex::new(Vec::new());
    let delete = |body: &[u8], addr: SocketAddr| {
        try_request(addr, "DELETE", "/posts/bulk", &admin.token, Some(body))
    };

    // One undisturbed run, under the same conditions as the others, to measure.
    let (delete_body, _) = make_batch(&srv, &author, &commenter, &create_body);
    srv.restart();
    let (answer, typical) = race(
        &mut srv,
        |addr| delete(&delete_body, addr),
        &single,
        "warm-up",
        &acked,
        None,
    );
    let (status, bytes) = answer.expect("warm-up delete answered");
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(srv.sql_count(&posts_sql), 0);
    assert_eq!(srv.sql_count(&comments_sql), 0, "cascade");
    println!(
        "bulk hard delete of {BATCH} takes {} ms undisturbed",
        millis(typical)
    );

    let (mut committed, mut lost, mut acked_deletes) = (0, 0, 0);
    let window = millis(typical) * 5 / 4 + 1;
    let mut batch: Option<(Vec<u8>, i64)> = None;
    for it in 0..iterations() {
        let (delete_body, comments) = match batch.take() {
            Some(existing) => existing,
            None => {
                let made = make_batch(&srv, &author, &commenter, &create_body);
                // Kill a freshly started server, as in the warm-up measurement.
                srv.restart();
                made
            }
        };
        assert_eq!(srv.sql_count(&posts_sql), BATCH as i64);
        assert_eq!(srv.sql_count(&comments_sql), comments);
        let delay = Duration::from_millis(rng.below(window as usize) as u64);
        let tag = format!("d{it}");
        let (answer, _) = race(
            &mut srv,
            |addr| delete(&delete_body, addr),
            &single,
            &tag,
            &acked,
            Some(delay),
        );
        let context = format!("iteration {it} (kill after {} ms)", millis(delay));

        let posts_left = srv.sql_count(&posts_sql);
        let comments_left = srv.sql_count(&comments_sql);
        assert!(
            (posts_left, comments_left) == (BATCH as i64, comments)
                || (posts_left, comments_left) == (0, 0),
            "{context}: after the kill {posts_left} posts and {comments_left} comments remain; \
             expected all ({BATCH}, {comments}) or none"
        );
        let acknowledged = match &answer {
            Some((204, _)) => true,
            Some((status, bytes)) => panic!(
                "{context}: bulk delete answered {status}: {}",
                String::from_utf8_lossy(bytes)
            ),
            None => false,
        };
        if acknowledged {
            acked_deletes += 1;
            assert_eq!(posts_left, 0, "{context}: acknowledged delete undone");
        }
        if posts_left == 0 {
            committed += 1;
        } else {
            lost += 1;
            batch = Some((delete_body, comments));
        }
        check_database(&srv, &context);
        let acked_now = acked.lock().expect("acked").clone();
        verify_acked(&srv, &acked_now, &context);
        println!(
            "{context}: delete {} ({}), {} acknowledged single creates so far all present",
            if posts_left == 0 {
                "complete"
            } else {
                "absent"
            },
            if acknowledged {
                "answered 204"
            } else {
                "no answer"
            },
            acked_now.len()
        );
    }
    println!(
        "bulk hard delete: {} kills survived: {committed} committed ({acked_deletes} acknowledged), \
         {lost} rolled back, {} acknowledged single creates intact, {:.1} s",
        committed + lost,
        acked.lock().expect("acked").len(),
        started.elapsed().as_secs_f64()
    );
}
