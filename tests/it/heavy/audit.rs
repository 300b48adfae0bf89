//! The audit log against the binary: after SIGKILLs during deletes, the events and the
//! changes are never seen apart. What each change appends is `quick::audit`.

use crate::support::*;
use postd_testkit::client::Client;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Post ids of `action` events, read from the file directly (the server may be dead), and
/// how many events. An event lists at most 1,000 ids; one that lists fewer than its
/// `count` must list the start of one of the bulk requests `sent`, and be as large as
/// it: it stands for that request's posts.
fn targets_of(
    conn: &rusqlite::Connection,
    action: &str,
    sent: &[Vec<i64>],
) -> (BTreeSet<i64>, usize) {
    let mut stmt = conn
        .prepare("SELECT target_ids, count FROM audit_events WHERE action = ?1")
        .unwrap();
    let rows: Vec<(String, i64)> = stmt
        .query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut all = BTreeSet::new();
    for (ids, count) in &rows {
        let listed: Vec<i64> = serde_json::from_str(ids).unwrap();
        let ids = if listed.len() as i64 == *count {
            listed
        } else {
            assert_eq!(
                listed.len(),
                1_000,
                "{action}: a shortened list holds 1,000 ids"
            );
            sent.iter()
                .find(|batch| batch.len() as i64 == *count && batch.starts_with(&listed))
                .unwrap_or_else(|| panic!("{action}: {count} ids listed as {:?}…", &listed[..3]))
                .clone()
        };
        for id in ids {
            assert!(all.insert(id), "post {id} in two {action} events");
        }
    }
    (all, rows.len())
}

fn id_set(conn: &rusqlite::Connection, sql: &str) -> BTreeSet<i64> {
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// One round: `singles` soft-deleted one by one (grouped commits) while `bulk` is
/// deleted in one request, soft or hard; with `kill_after`, the server is SIGKILLed then.
/// Returns the single deletes answered 204, whether the bulk was answered 204, and how
/// long the bulk took (or ran).
fn delete_round(
    srv: &mut Server,
    admin: &TestUser,
    author: &TestUser,
    (singles, bulk): (&[i64], &[i64]),
    hard: bool,
    kill_after: Option<Duration>,
) -> (Vec<i64>, bool, Duration) {
    let addr = srv.addr;
    let stop = AtomicBool::new(false);
    let acked: Mutex<Vec<i64>> = Mutex::new(Vec::new());
    let body = serde_json::to_vec(&json!({"post_ids": bulk, "hard_delete": hard})).unwrap();
    let started = std::time::Instant::now();
    let (bulk_acked, took) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let auth = format!("Bearer {}", author.token);
            for post in singles {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let answer = Client::with_timeout(addr, Duration::from_secs(30)).request(
                    "DELETE",
                    &format!("/posts/{post}"),
                    &[("Authorization", &auth)],
                    None,
                );
                match answer {
                    Ok(resp) if resp.status == 204 => acked.lock().unwrap().push(*post),
                    Ok(resp) => panic!("single delete answered {}", resp.status),
                    Err(_) => return,
                }
            }
        });
        let bulk_thread = scope.spawn(|| {
            let auth = format!("Bearer {}", admin.token);
            let answer = Client::with_timeout(addr, Duration::from_secs(60)).request(
                "DELETE",
                "/posts/bulk",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                Some(&body),
            );
            let acked = match answer {
                Ok(resp) if resp.status == 204 => true,
                Ok(resp) => panic!("bulk delete answered {}: {}", resp.status, resp.text()),
                Err(_) => false,
            };
            (acked, started.elapsed())
        });
        if let Some(delay) = kill_after {
            std::thread::sleep(delay);
            stop.store(true, Ordering::SeqCst);
            srv.kill();
        }
        let outcome = bulk_thread.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        outcome
    });
    (acked.into_inner().unwrap(), bulk_acked, took)
}

/// SIGKILL while single soft deletes (grouped commits) race with bulk soft and hard
/// deletes of 10,000 posts: after every restart, the posts soft-deleted are exactly the
/// targets of delete events, the posts gone exactly those of permanent-delete events, and
/// every delete answered 204 is there with its event.
#[test]
fn after_a_kill_during_deletes_events_and_changes_are_never_seen_apart() {
    if skip_heavy() {
        return;
    }
    const BATCH: usize = 10_000;
    const SINGLES: usize = 100;
    const ROUNDS: u32 = 8;
    let _turn = heavy_load();
    let mut srv = Server::start();
    let admin = srv.admin("root");
    let author = srv.register("author");
    let mut created = BTreeSet::new();
    let mut acked_singles: Vec<i64> = Vec::new();
    let mut acked_bulks: Vec<(bool, Vec<i64>)> = Vec::new();
    let mut sent_bulks: Vec<Vec<i64>> = Vec::new();
    let make_batch = |srv: &Server, round: u32| -> Vec<i64> {
        let items: Vec<Value> = (0..BATCH)
            .map(|i| json!({"title": format!("round {round} item {i}"), "body": "x"}))
            .collect();
        let made = srv.call(
            "POST",
            "/posts/bulk",
            Some(&author.token),
            Some(&json!({ "items": items })),
        );
        made.expect(201);
        ids(made.json()["items"].as_array().unwrap())
    };
    // An undisturbed round on a fresh server says how long a bulk delete takes; the kills
    // of the other rounds are spread over that time and a little past it.
    let batch = make_batch(&srv, 0);
    created.extend(batch.iter().copied());
    srv.restart();
    let (singles, bulk) = batch.split_at(SINGLES);
    sent_bulks.push(bulk.to_vec());
    let (acked, bulk_acked, typical) =
        delete_round(&mut srv, &admin, &author, (singles, bulk), false, None);
    assert!(bulk_acked);
    acked_singles.extend(acked);
    acked_bulks.push((false, bulk.to_vec()));
    println!(
        "bulk soft delete of {} posts takes {} ms",
        bulk.len(),
        typical.as_millis()
    );
    let (mut committed, mut rolled_back) = (0, 0);
    for round in 1..=ROUNDS {
        let batch = make_batch(&srv, round);
        created.extend(batch.iter().copied());
        srv.restart();
        let (singles, bulk) = batch.split_at(SINGLES);
        sent_bulks.push(bulk.to_vec());
        let hard = round % 2 == 1;
        let delay = typical * round * 5 / (4 * ROUNDS);
        let (acked, bulk_acked, _) = delete_round(
            &mut srv,
            &admin,
            &author,
            (singles, bulk),
            hard,
            Some(delay),
        );
        acked_singles.extend(acked);
        if bulk_acked {
            acked_bulks.push((hard, bulk.to_vec()));
        }

        let conn = rusqlite::Connection::open(&srv.db).unwrap();
        let trashed = id_set(&conn, "SELECT id FROM deleted_posts");
        let present = id_set(&conn, "SELECT id FROM posts");
        let gone: BTreeSet<i64> = created.difference(&present).copied().collect();
        let (single_targets, _) = targets_of(&conn, "post.delete", &sent_bulks);
        let (bulk_targets, _) = targets_of(&conn, "posts.bulk_delete", &sent_bulks);
        let (hard_targets, _) = targets_of(&conn, "posts.bulk_delete_permanent", &sent_bulks);
        let soft_targets: BTreeSet<i64> = single_targets.union(&bulk_targets).copied().collect();
        let context = format!("round {round} (kill after {} ms)", delay.as_millis());
        assert_eq!(trashed, soft_targets, "{context}: trash vs delete events");
        assert_eq!(
            gone, hard_targets,
            "{context}: gone vs permanent-delete events"
        );
        for post in &acked_singles {
            assert!(
                single_targets.contains(post),
                "{context}: acknowledged {post}"
            );
        }
        for (hard, posts) in &acked_bulks {
            let recorded = if *hard { &hard_targets } else { &bulk_targets };
            assert!(posts.iter().all(|p| recorded.contains(p)), "{context}");
        }
        let bulk_done = bulk
            .iter()
            .all(|p| !present.contains(p) || trashed.contains(p));
        let bulk_undone = bulk
            .iter()
            .all(|p| present.contains(p) && !trashed.contains(p));
        assert!(
            bulk_done || bulk_undone,
            "{context}: a bulk delete half done"
        );
        if bulk_done {
            committed += 1;
        } else {
            rolled_back += 1;
        }
        println!(
            "{context}: bulk {} delete {}, {} single deletes acknowledged so far; every change with its event",
            if hard { "hard" } else { "soft" },
            if bulk_done { "committed" } else { "rolled back" },
            acked_singles.len()
        );
        drop(conn);
        srv.restart();
    }
    println!("{ROUNDS} kills: {committed} bulk deletes committed, {rolled_back} rolled back");
}
