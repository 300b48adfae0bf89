//! Revisions across crashes: the server is SIGKILLed at random moments while bulk PATCHes
//! of many posts are in flight, then restarted on the same file. After every kill each
//! post's saved versions are exactly the ones its revision number says (the version a
//! change replaces is written by the change's own statement), within `--revision-limit`,
//! and the file passes SQLite's integrity check.
//!
//! `POSTD_CRASH_SEED=<n>` replays a run.

use crate::support::*;
use postd_testkit::client::Client;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const LIMIT: i64 = 8;
const POSTS: usize = 300;

/// A post's id and revision, and how many versions it keeps, the lowest and the highest.
type PostVersions = (i64, i64, i64, Option<i64>, Option<i64>);

/// Checks every post in the file: with the post at revision `r`, the saved versions are
/// exactly `max(1, r - LIMIT) ..= r - 1`. Returns (posts, versions, highest revision).
fn check_revisions(db: &std::path::Path, context: &str) -> (usize, i64, i64) {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(20)).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "{context}");
    let rows: Vec<PostVersions> = conn
        .prepare(
            "SELECT p.id, p.revision, count(r.revision), min(r.revision), max(r.revision)
             FROM posts AS p LEFT JOIN post_revisions AS r ON r.post_id = p.id
             GROUP BY p.id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM post_revisions WHERE post_id NOT IN (SELECT id FROM posts)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "{context}: versions of posts that are gone");
    let mut versions = 0;
    let mut highest = 0;
    for (id, revision, count, min, max) in &rows {
        let expected = (revision - 1).min(LIMIT);
        assert_eq!(
            *count, expected,
            "{context}: post {id} at revision {revision} keeps {count} versions"
        );
        if *count > 0 {
            assert_eq!(
                (*min, *max),
                (Some(revision - count), Some(revision - 1)),
                "{context}: post {id} at revision {revision}"
            );
        }
        versions += count;
        highest = highest.max(*revision);
    }
    (rows.len(), versions, highest)
}

#[test]
fn after_sigkills_during_bulk_patches_every_post_keeps_exactly_its_versions() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let mut rng = Rng::from_crash_seed("revisions crash");
    let limit = LIMIT.to_string();
    let mut srv = Server::start_with(&[], &["--revision-limit", &limit]);
    let alice = srv.register("alice");
    let items: Vec<serde_json::Value> = (0..POSTS)
        .map(|n| json!({"title": format!("post {n}"), "body": "v1"}))
        .collect();
    let made = srv.bulk_create(&alice, json!(items));
    made.expect(201);
    let ids = ids(made.json()["items"].as_array().unwrap());
    let rounds = 6;
    let acked = AtomicUsize::new(0);
    for round in 0..rounds {
        let addr = srv.addr;
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(150 + rng.below(600) as u64);
        let seeds: Vec<u64> = (0..3).map(|_| rng.next()).collect();
        std::thread::scope(|scope| {
            for seed in seeds {
                let (stop, acked, ids, token) = (&stop, &acked, &ids, &alice.token);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed);
                    let auth = format!("Bearer {token}");
                    let mut client = Client::with_timeout(addr, Duration::from_secs(30));
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let how_many = 50 + rng.below(150);
                        let chosen = rng.sample(ids, how_many);
                        let items: Vec<serde_json::Value> = chosen
                            .iter()
                            .map(|id| json!({"id": id, "body": format!("round {round} seed {seed} n {n}")}))
                            .collect();
                        let body = serde_json::to_vec(&json!({ "items": items })).unwrap();
                        match client.request("PATCH", "/posts/bulk", &[("Authorization", &auth)], Some(&body)) {
                            Ok(r) => {
                                assert_eq!(r.status, 200, "{}", r.text());
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => return, // killed under us
                        }
                    }
                });
            }
            std::thread::sleep(kill_after);
            srv.kill();
            stop.store(true, Ordering::SeqCst);
        });
        let (posts, versions, highest) = check_revisions(
            &srv.db,
            &format!("round {round}, killed after {kill_after:?}"),
        );
        assert_eq!(posts, POSTS);
        eprintln!(
            "round {round}: killed after {kill_after:?}; {versions} versions kept, highest revision {highest}"
        );
        srv.restart();
    }
    let (_, versions, highest) = check_revisions(&srv.db, "the end");
    eprintln!(
        "revisions crash: {} bulk PATCHes acknowledged, {versions} versions kept, highest revision {highest}",
        acked.load(Ordering::SeqCst)
    );
    assert!(
        highest > LIMIT + 1,
        "the limit was never reached: {highest}"
    );
    // The server still answers with them.
    let listed = srv.collect_pages(&format!("/posts/{}/revisions", ids[0]), Some(&alice.token));
    assert!(listed.len() as i64 <= LIMIT);
}
