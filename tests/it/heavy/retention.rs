//! `--trash-retention` against the binary: the sweep removes exactly the expired posts in
//! batches of at most 1,000, each with its `trash.purge` event; trash items say when they
//! expire; and SIGKILLs during a sweep leave every batch whole.
//!
//! The sweep runs every quarter of the retention (at least every second, at most every
//! minute), so a retention of a few seconds is seen working within seconds.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Milliseconds since the epoch of a `2026-11-22T10:04:05.123Z` timestamp.
fn millis_of(v: &Value) -> i64 {
    let t = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    let field = |range: std::ops::Range<usize>| t[range].parse::<i64>().unwrap();
    let (y, m, d) = (field(0..4), field(5..7), field(8..10));
    // Days from civil (Howard Hinnant's algorithm), enough for the tests' dates.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + field(11..13)) * 60 + field(14..16)) * 60_000
        + field(17..19) * 1000
        + field(20..23)
}

/// `n` posts made in one bulk request; their ids.
fn create_posts(srv: &Server, user: &TestUser, n: usize, tag: &str) -> Vec<i64> {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"title": format!("{tag} {i}"), "body": "b"}))
        .collect();
    let resp = srv.bulk_create(user, json!(items));
    resp.expect(201);
    resp.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect()
}

fn purge_events(srv: &Server, admin: &TestUser) -> Vec<Value> {
    srv.collect_pages(
        "/admin/audit?action=trash.purge&limit=100",
        Some(&admin.token),
    )
}

#[test]
fn the_sweep_removes_exactly_the_expired_posts_in_batches_with_their_events() {
    if skip_heavy() {
        return;
    }
    const RETENTION_MS: i64 = 6_000;
    let srv = Server::start_with(&[("POSTD_TRASH_RETENTION", "6s")], &[]);
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let early = create_posts(&srv, &alice, 2_500, "early");
    let late = create_posts(&srv, &alice, 3, "late");
    let kept = create_posts(&srv, &alice, 5, "kept");
    srv.call(
        "POST",
        &format!("/posts/{}/comments", early[0]),
        Some(&alice.token),
        Some(&json!({"body": "goes with its post"})),
    )
    .expect(201);
    srv.call(
        "POST",
        &format!("/posts/{}/comments", kept[0]),
        Some(&alice.token),
        Some(&json!({"body": "stays"})),
    )
    .expect(201);
    srv.bulk_delete(&admin, &early).expect(204);
    std::thread::sleep(Duration::from_millis(1_500));
    srv.bulk_delete(&admin, &late).expect(204);

    // Every trash item says when it goes: deleted_at + 6 s.
    let mut deleted_at: BTreeMap<i64, i64> = BTreeMap::new();
    for item in srv.collect_pages("/trash?limit=100", Some(&admin.token)) {
        let (deleted, expires) = (
            millis_of(&item["deleted_at"]),
            millis_of(&item["expires_at"]),
        );
        assert_eq!(expires - deleted, RETENTION_MS, "{item}");
        deleted_at.insert(id(&item), deleted);
    }
    assert_eq!(deleted_at.len(), 2_503, "nothing expired yet");

    // Both sets expire and go, each after its own time.
    let started = Instant::now();
    while srv.sql_count("SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the trash was not emptied: {}",
            srv.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = purge_events(&srv, &admin);
    let mut swept = BTreeSet::new();
    for event in &events {
        assert_eq!(event["actor_id"], Value::Null, "{event}");
        assert_eq!(event["detail"], "older than 6s, retention sweep", "{event}");
        let targets = event["target_ids"].as_array().unwrap();
        assert!(
            (1..=1000).contains(&targets.len()),
            "batches of at most 1,000: {event}"
        );
        let at = millis_of(&event["at"]);
        for target in targets {
            let target = target.as_i64().unwrap();
            assert!(swept.insert(target), "{target} swept twice");
            let deleted = deleted_at[&target];
            assert!(
                at - deleted >= RETENTION_MS,
                "post {target} deleted at {deleted} swept at {at}, before it expired"
            );
        }
    }
    let expected: BTreeSet<i64> = early.iter().chain(&late).copied().collect();
    assert_eq!(
        swept, expected,
        "exactly the expired posts, each in one event"
    );
    assert!(events.len() >= 4, "2,503 posts need at least 4 batches");
    // Active posts and their comments are untouched; the swept post's comment went.
    for post in &kept {
        srv.get(&format!("/posts/{post}"), None).expect(200);
    }
    assert_eq!(srv.sql_count("SELECT count(*) FROM posts"), 5);
    assert_eq!(srv.sql_count("SELECT count(*) FROM comments"), 1);
    assert!(
        srv.stderr().contains("retention sweep removed"),
        "{}",
        srv.stderr()
    );
}

/// Posts soft-deleted long ago, written straight into a database the binary made.
fn seed_expired(db: &std::path::Path, posts: usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    conn.execute(
        "INSERT INTO users (username, password_hash, created_at)
         VALUES ('seed', 'x', '2000-01-01T00:00:00.000Z')",
        [],
    )
    .unwrap();
    let author = conn.last_insert_rowid();
    {
        let mut post = conn
            .prepare(
                "INSERT INTO posts (author_id, title, slug, body, created_at, updated_at,
                                    deleted_at, deleted_by_id)
                 VALUES (?1, ?2, ?3, 'b', '2000-01-01T00:00:00.000Z',
                         '2000-01-01T00:00:00.000Z', ?4, ?1)",
            )
            .unwrap();
        let mut comment = conn
            .prepare(
                "INSERT INTO comments (post_id, author_id, body, created_at)
                 VALUES (?1, ?2, 'c', '2000-01-01T00:00:00.000Z')",
            )
            .unwrap();
        for n in 0..posts {
            // Deleted a second apart, so the sweep's oldest-first order is visible.
            let deleted = format!(
                "2000-01-02T{:02}:{:02}:{:02}.000Z",
                n / 3600 % 24,
                n / 60 % 60,
                n % 60
            );
            post.execute(rusqlite::params![
                author,
                format!("seeded {n}"),
                format!("seeded-{n}"),
                deleted
            ])
            .unwrap();
            if n % 10 == 0 {
                comment
                    .execute(rusqlite::params![conn.last_insert_rowid(), author])
                    .unwrap();
            }
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// SIGKILL at moments spread over a sweep of 20,000 expired posts (each round on a fresh
/// copy of the seeded file): after every kill, the posts gone are exactly the targets of
/// the `trash.purge` events, each event at most 1,000 posts, oldest first, and the file
/// passes its integrity and foreign-key checks.
#[test]
fn a_kill_during_a_sweep_leaves_every_batch_whole() {
    if skip_heavy() {
        return;
    }
    const POSTS: usize = 20_000;
    let _turn = heavy_load();
    let dir = TempDir::new("retention-crash");
    let db = dir.path().join("postd.db");
    // The binary makes the file and its schema; the seed goes in with the server stopped.
    drop(Server::start_with_db(db.clone(), &[], &[]));
    seed_expired(&db, POSTS);
    let all: BTreeSet<i64> = (1..=POSTS as i64).collect();

    // An undisturbed sweep on a copy says how long one takes.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let started = Instant::now();
    let timed = Server::start_with_db(copy, &[], &["--trash-retention", "1s"]);
    while timed.sql_count("SELECT count(*) FROM posts") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{}",
            timed.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let typical = started.elapsed();
    drop(timed);
    println!(
        "a sweep of {POSTS} posts takes {} ms from start",
        typical.as_millis()
    );

    let rounds = 8u32;
    let (mut partial, mut untouched, mut finished) = (0, 0, 0);
    for round in 1..=rounds {
        let delay = typical * round / (rounds + 1);
        let file = dir.path().join(format!("round-{round}.db"));
        std::fs::copy(&db, &file).unwrap();
        let server = Server::start_with_db(file.clone(), &[], &["--trash-retention", "1s"]);
        std::thread::sleep(delay);
        drop(server);

        let conn = rusqlite::Connection::open(&file).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        let dangling: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(dangling, 0);
        let present: BTreeSet<i64> = {
            let mut stmt = conn.prepare("SELECT id FROM posts").unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        let mut purged = BTreeSet::new();
        let mut stmt = conn
            .prepare(
                "SELECT target_ids, count, actor_id FROM audit_events WHERE action = 'trash.purge'",
            )
            .unwrap();
        let events: Vec<(String, i64, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (targets, count, actor) in &events {
            let targets: Vec<i64> = serde_json::from_str(targets).unwrap();
            assert_eq!(targets.len() as i64, *count);
            assert!(targets.len() <= 1000 && actor.is_none());
            purged.extend(targets);
        }
        let gone: BTreeSet<i64> = all.difference(&present).copied().collect();
        assert_eq!(gone, purged, "round {round}: posts gone vs purge events");
        // Oldest first: what is left is the most recently deleted.
        if let (Some(first_left), Some(last_gone)) = (present.first(), gone.last()) {
            assert!(last_gone < first_left, "round {round}: oldest first");
        }
        println!(
            "round {round} (kill after {} ms): {} posts swept in {} whole batches",
            delay.as_millis(),
            gone.len(),
            events.len()
        );
        match gone.len() {
            0 => untouched += 1,
            POSTS => finished += 1,
            _ => partial += 1,
        }
    }
    println!(
        "{rounds} kills: {partial} mid-sweep, {untouched} before the first batch, {finished} after the last"
    );
    assert!(partial > 0, "no kill landed during a sweep");
}
