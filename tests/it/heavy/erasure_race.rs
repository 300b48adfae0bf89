//! An erasure while the erased user's clients keep writing: afterwards nothing of theirs
//! is left (user, posts, comments, revisions, tokens, idempotency records), every request
//! sent after the erasure answered is a 401, none is a 5xx, and no write is half applied
//! (no post or comment of theirs outlives the erasure; foreign keys hold).

use crate::support::*;
use postd_testkit::client::Client;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One request's outcome: what it was, its status, and when it was sent.
struct Sent {
    what: &'static str,
    status: u16,
    at: Instant,
    body: String,
}

fn writer(
    addr: std::net::SocketAddr,
    token: &str,
    target: i64,
    seed: u64,
    stop: &AtomicBool,
    log: &Mutex<Vec<Sent>>,
) {
    let mut rng = Rng::new(seed);
    let auth = format!("Bearer {token}");
    let mut client = Client::with_timeout(addr, Duration::from_secs(30));
    let mut own: Vec<i64> = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let (what, method, path, body): (&str, &str, String, Value) = match rng.below(5) {
            0 => (
                "create",
                "POST",
                "/posts".into(),
                json!({"title": format!("race {seed} {n}"), "body": "b"}),
            ),
            1 => (
                "bulk create",
                "POST",
                "/posts/bulk".into(),
                json!({"items": [{"title": format!("race bulk {seed} {n} a"), "body": "b"}, {"title": format!("race bulk {seed} {n} b"), "body": "b"}, {"title": format!("race bulk {seed} {n} c"), "body": "b"}]}),
            ),
            2 => (
                "comment",
                "POST",
                format!("/posts/{target}/comments"),
                json!({"body": format!("race comment {n}")}),
            ),
            3 if !own.is_empty() => {
                let id = own[rng.below(own.len())];
                (
                    "patch",
                    "PATCH",
                    format!("/posts/{id}"),
                    json!({"body": format!("edit {n}")}),
                )
            }
            _ => (
                "keyed create",
                "POST",
                "/posts".into(),
                json!({"title": format!("race keyed {seed} {n}"), "body": "b"}),
            ),
        };
        let key = format!("race-{seed}-{n}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if what == "keyed create" {
            headers.push(("Idempotency-Key", key.as_str()));
        }
        let at = Instant::now();
        let bytes = serde_json::to_vec(&body).unwrap();
        let r = client
            .request(method, &path, &headers, Some(&bytes))
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        if r.status == 201 && what.ends_with("create") && what != "bulk create" {
            if let Some(id) = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|p| p["id"].as_i64())
            {
                own.push(id);
            }
        }
        log.lock().unwrap().push(Sent {
            what,
            status: r.status,
            at,
            body: r.text(),
        });
    }
}

#[test]
fn an_erasure_during_the_users_writes_leaves_nothing_of_theirs() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let mut rng = Rng::from_crash_seed("erasure race");
    for round in 0..3 {
        let srv = Server::start();
        let root = srv.admin("root");
        let victim = srv.register("victim");
        let bob = srv.register("bob");
        let target = id(&srv.create_post(&bob, "Bob's", "b"));
        let api = srv.call(
            "POST",
            "/auth/tokens",
            Some(&victim.token),
            Some(&json!({"name": "race", "scopes": ["posts:write"]})),
        );
        api.expect(201);
        let api_token = api.json()["token"].as_str().unwrap().to_string();
        let log: Mutex<Vec<Sent>> = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        let mut erased_at = None;
        std::thread::scope(|scope| {
            for (n, token) in [&victim.token, &victim.token, &api_token, &api_token]
                .into_iter()
                .enumerate()
            {
                let seed = rng.next() ^ n as u64;
                let (stop, log) = (&stop, &log);
                let addr = srv.addr;
                scope.spawn(move || writer(addr, token, target, seed, stop, log));
            }
            std::thread::sleep(Duration::from_millis(300 + rng.below(500) as u64));
            let r = srv.call(
                "DELETE",
                &format!("/admin/users/{}", victim.id),
                Some(&root.token),
                None,
            );
            r.expect(200);
            erased_at = Some(Instant::now());
            eprintln!("round {round}: erased {}", r.text());
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::SeqCst);
        });
        let erased_at = erased_at.unwrap();
        let log = log.into_inner().unwrap();
        let mut before = 0;
        let mut after = 0;
        for sent in &log {
            if sent.at > erased_at {
                after += 1;
                assert_eq!(
                    sent.status, 401,
                    "{} sent after the erasure: {}",
                    sent.what, sent.body
                );
            } else {
                before += 1;
                // Sent before the answer: done (2xx), refused as unknown (401), or its post
                // gone (404) — never a server error.
                assert!(
                    matches!(sent.status, 200 | 201 | 401 | 404),
                    "round {round}: {} answered {}: {}",
                    sent.what,
                    sent.status,
                    sent.body
                );
            }
        }
        assert!(
            before > 10 && after > 4,
            "round {round}: {before} before, {after} after"
        );

        let conn = rusqlite::Connection::open(&srv.db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let v = victim.id;
        for (what, sql) in [
            ("user", format!("SELECT count(*) FROM users WHERE id = {v}")),
            (
                "posts",
                format!("SELECT count(*) FROM posts WHERE author_id = {v}"),
            ),
            (
                "comments",
                format!("SELECT count(*) FROM comments WHERE author_id = {v}"),
            ),
            (
                "revisions",
                "SELECT count(*) FROM post_revisions WHERE post_id NOT IN (SELECT id FROM posts)"
                    .to_string(),
            ),
            (
                "tokens",
                format!("SELECT count(*) FROM api_tokens WHERE user_id = {v}"),
            ),
            (
                "idempotency records",
                format!("SELECT count(*) FROM idempotency_keys WHERE user_id = {v}"),
            ),
            (
                "posts of the race",
                "SELECT count(*) FROM posts WHERE title LIKE 'race%'".to_string(),
            ),
            (
                "comments of the race",
                "SELECT count(*) FROM comments WHERE body LIKE 'race%'".to_string(),
            ),
        ] {
            assert_eq!(
                count(&sql),
                0,
                "round {round}: {what} of the erased user remain"
            );
        }
        let fk: i64 = conn
            .prepare("PRAGMA foreign_key_check")
            .unwrap()
            .query_map([], |_| Ok(()))
            .unwrap()
            .count() as i64;
        assert_eq!(fk, 0, "round {round}: foreign keys");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        // Bob's post stands.
        srv.get(&format!("/posts/{target}"), None).expect(200);
        let statuses: std::collections::BTreeMap<u16, usize> =
            log.iter().fold(Default::default(), |mut m, s| {
                *m.entry(s.status).or_default() += 1;
                m
            });
        eprintln!("round {round}: {before} requests before the answer, {after} after; statuses {statuses:?}");
    }
}
