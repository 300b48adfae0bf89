//! The change feed against the binary (API.md v1.2 "Change feed"): a reader that
//! disconnects at random and resumes with `Last-Event-ID` while 16 writers change posts
//! sees every committed event exactly once, in id order, and nothing of what rolled
//! back; a SIGKILL of the server loses and repeats nothing; readers that never read hold
//! no worker and no unbounded memory, and are closed by the write timeout; past
//! `--max-event-streams` a stream is 503; an idle stream hears a keep-alive.
//!
//! What the feed sends and who may open it is `quick::events`.

use crate::support::sse::{EventStream, SseItem};
use crate::support::*;
use postd_testkit::client::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every event of the log, oldest first.
fn audit_log(srv: &Server, admin: &TestUser) -> Vec<Value> {
    let mut all = srv.collect_pages("/admin/audit?limit=100", Some(&admin.token));
    all.reverse();
    all
}

fn last_event_id(srv: &Server, admin: &TestUser) -> i64 {
    let page = srv.get("/admin/audit?limit=1", Some(&admin.token));
    page.expect(200);
    page.json()["items"][0]["id"].as_i64().unwrap_or(0)
}

/// What one reader saw: every event id in the order it arrived, its action.
#[derive(Default)]
struct Seen {
    events: Vec<(i64, String)>,
    reconnects: usize,
}

impl Seen {
    fn last(&self) -> Option<i64> {
        self.events.last().map(|e| e.0)
    }

    fn take(&mut self, items: Vec<SseItem>) {
        for item in items {
            if let SseItem::Event { id, event, data } = item {
                assert_eq!(data["id"], id, "the data is the event of that id");
                assert_eq!(data["action"], event.as_str());
                self.events.push((id, event));
            }
        }
    }

    /// Compares with the log: every event exactly once, in strictly increasing order.
    /// Prints and returns (seen, lost, repeated).
    fn compare(&self, log: &[Value], test: &str) -> (usize, usize, usize) {
        let logged: Vec<i64> = log.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        let seen: Vec<i64> = self.events.iter().map(|e| e.0).collect();
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for id in &seen {
            *counts.entry(*id).or_default() += 1;
        }
        let repeated: usize = counts.values().map(|n| n - 1).sum();
        let lost = logged.iter().filter(|id| !counts.contains_key(id)).count();
        let unknown: Vec<&i64> = seen.iter().filter(|id| !logged.contains(id)).collect();
        eprintln!(
            "{test}: events seen {}, lost {lost}, repeated {repeated}, reconnects {}",
            seen.len(),
            self.reconnects
        );
        assert!(
            unknown.is_empty(),
            "{test}: events not in the log: {unknown:?}"
        );
        assert_eq!((lost, repeated), (0, 0), "{test}");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{test}: ids not strictly increasing"
        );
        assert_eq!(seen, logged, "{test}");
        for ((_, action), logged) in self.events.iter().zip(log) {
            assert_eq!(logged["action"], action.as_str());
        }
        (seen.len(), lost, repeated)
    }
}

/// Reads the feed from `seen.last()` on, reconnecting after a random few hundred
/// milliseconds each time, until `done` holds and the last id `target` (once set) has
/// arrived; gives up after `within`.
fn read_with_reconnects(
    addr: SocketAddr,
    token: &str,
    seen: &mut Seen,
    target: &AtomicI64,
    rng: &mut Rng,
    within: Duration,
) {
    let started = Instant::now();
    loop {
        let mut stream = EventStream::open(addr, token, seen.last(), Duration::from_millis(20))
            .expect("open the feed");
        assert_eq!(stream.status, 200);
        let lifetime = Duration::from_millis(10 + rng.below(300) as u64);
        let opened = Instant::now();
        while opened.elapsed() < lifetime {
            match stream.poll() {
                Ok(items) => seen.take(items),
                Err(err) => panic!("the stream failed: {err}"),
            }
        }
        drop(stream);
        let goal = target.load(Ordering::SeqCst);
        if goal > 0 && seen.last() >= Some(goal) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the reader did not reach event {goal} within {within:?}; at {:?}",
            seen.last()
        );
        seen.reconnects += 1;
    }
}

/// Counts of what the writers' acknowledged requests should have logged, by action.
type Acked = Mutex<BTreeMap<&'static str, usize>>;

fn ack(acked: &Acked, action: &'static str) {
    *acked.lock().unwrap().entry(action).or_default() += 1;
}

fn send(
    client: &mut Client,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    let r = client
        .request(method, path, &[("Authorization", &auth)], bytes.as_deref())
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
    let value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, value)
}

/// One writer: a random mix of changes of its own posts for `run`, some of which fail and
/// roll back (a taken slug inside a bulk create, a taken slug on PATCH, an invalid item).
fn writer(addr: SocketAddr, user: &TestUser, seed: u64, run: Duration, acked: &Acked) {
    let mut rng = Rng::new(seed);
    let mut client = Client::with_timeout(addr, Duration::from_secs(60));
    let token = user.token.as_str();
    let mut active: Vec<i64> = Vec::new();
    let mut trashed: Vec<i64> = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < run {
        n += 1;
        let title = format!("{} {n}", user.name);
        match rng.below(10) {
            0 | 1 => {
                let (status, post) = send(
                    &mut client,
                    "POST",
                    "/posts",
                    token,
                    Some(json!({"title": title, "body": "b"})),
                );
                assert_eq!(status, 201, "{post}");
                active.push(post["id"].as_i64().unwrap());
                ack(acked, "post.create");
            }
            2 => {
                let items = json!([{"title": format!("{title} a"), "body": "b"}, {"title": format!("{title} b"), "body": "b"}]);
                let (status, made) = send(
                    &mut client,
                    "POST",
                    "/posts/bulk",
                    token,
                    Some(json!({ "items": items })),
                );
                assert_eq!(status, 201, "{made}");
                for post in made["items"].as_array().unwrap() {
                    active.push(post["id"].as_i64().unwrap());
                }
                ack(acked, "posts.bulk_create");
            }
            3 => {
                // Rolled back inside its transaction: the second item's slug is taken.
                let items = json!([{"title": format!("rolled back {title}"), "body": "b"}, {"title": "x", "body": "b", "slug": "taken"}]);
                let (status, problem) = send(
                    &mut client,
                    "POST",
                    "/posts/bulk",
                    token,
                    Some(json!({ "items": items })),
                );
                assert_eq!(status, 409, "{problem}");
                let (status, problem) = send(
                    &mut client,
                    "POST",
                    "/posts",
                    token,
                    Some(json!({"title": "x", "body": "b", "slug": "taken"})),
                );
                assert_eq!(status, 409, "{problem}");
                let items = json!([{"title": format!("rolled back {title}"), "body": "b"}, {"title": "", "body": "b"}]);
                let (status, problem) = send(
                    &mut client,
                    "POST",
                    "/posts/bulk",
                    token,
                    Some(json!({ "items": items })),
                );
                assert_eq!(status, 422, "{problem}");
            }
            4 | 5 if !active.is_empty() => {
                let id = active[rng.below(active.len())];
                let (status, post) = send(
                    &mut client,
                    "PATCH",
                    &format!("/posts/{id}"),
                    token,
                    Some(json!({"title": format!("{title} edited")})),
                );
                assert_eq!(status, 200, "{post}");
                ack(acked, "post.update");
                let (status, problem) = send(
                    &mut client,
                    "PATCH",
                    &format!("/posts/{id}"),
                    token,
                    Some(json!({"slug": "taken"})),
                );
                assert_eq!(status, 409, "{problem}");
            }
            6 if active.len() >= 2 => {
                let ids = rng.sample(&active, 2);
                let items: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"id": id, "body": format!("{title} bulk")}))
                    .collect();
                let (status, made) = send(
                    &mut client,
                    "PATCH",
                    "/posts/bulk",
                    token,
                    Some(json!({ "items": items })),
                );
                assert_eq!(status, 200, "{made}");
                ack(acked, "posts.bulk_update");
            }
            7 | 8 if !active.is_empty() => {
                let id = active.swap_remove(rng.below(active.len()));
                let (status, problem) =
                    send(&mut client, "DELETE", &format!("/posts/{id}"), token, None);
                assert_eq!(status, 204, "{problem}");
                trashed.push(id);
                ack(acked, "post.delete");
            }
            _ if !trashed.is_empty() => {
                let id = trashed.swap_remove(rng.below(trashed.len()));
                let (status, post) = send(
                    &mut client,
                    "POST",
                    &format!("/posts/{id}/restore"),
                    token,
                    None,
                );
                assert_eq!(status, 200, "{post}");
                active.push(id);
                ack(acked, "post.restore");
            }
            _ => {}
        }
    }
}

#[test]
fn a_reader_that_reconnects_sees_every_event_once_in_order_while_16_writers_write() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let mut rng = Rng::from_crash_seed("change feed");
    let srv = Server::start_with(&[], &["--owner-undo", "1h"]);
    let root = srv.admin("root");
    let writers: Vec<TestUser> = (0..16)
        .map(|n| srv.register(&format!("writer{n}")))
        .collect();
    srv.create_post_with_slug(&root, "Taken", "taken");
    let start = last_event_id(&srv, &root);
    let acked: Acked = Mutex::new(BTreeMap::new());
    let target = AtomicI64::new(0);
    let mut seen = Seen::default();
    let reader_seed = rng.next();
    let run = Duration::from_secs(4);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut rng = Rng::new(reader_seed);
            read_with_reconnects(
                srv.addr,
                &root.token,
                &mut seen,
                &target,
                &mut rng,
                Duration::from_secs(60),
            );
        });
        let handles: Vec<_> = writers
            .iter()
            .map(|user| {
                let seed = rng.next();
                let acked = &acked;
                scope.spawn(move || writer(srv.addr, user, seed, run, acked))
            })
            .collect();
        for handle in handles {
            handle.join().expect("writer");
        }
        target.store(last_event_id(&srv, &root), Ordering::SeqCst);
        reader.join().expect("reader");
    });
    let log = audit_log(&srv, &root);
    seen.compare(&log, "16 writers");
    // Exactly the acknowledged changes are in the log: nothing of what rolled back.
    let mut logged: BTreeMap<String, usize> = BTreeMap::new();
    for event in log.iter().filter(|e| e["id"].as_i64().unwrap() > start) {
        *logged
            .entry(event["action"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let acked: BTreeMap<String, usize> = acked
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    eprintln!("16 writers: acknowledged changes {acked:?}");
    assert_eq!(
        logged, acked,
        "the log holds exactly the acknowledged changes"
    );
    assert!(
        acked.values().sum::<usize>() > 100,
        "too few changes to mean anything: {acked:?}"
    );
    let rolled_back = srv.collect_pages("/posts?q=rolled%20back", None);
    assert!(rolled_back.is_empty(), "{rolled_back:?}");
}

#[test]
fn a_sigkill_of_the_server_loses_and_repeats_no_event() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let mut rng = Rng::from_crash_seed("change feed kill");
    let mut srv = Server::start();
    let root = srv.admin("root");
    let writers: Vec<TestUser> = (0..4)
        .map(|n| srv.register(&format!("writer{n}")))
        .collect();
    let mut seen = Seen::default();
    let rounds = 3;
    for round in 0..rounds {
        let addr = srv.addr;
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(300 + rng.below(700) as u64);
        let token = root.token.as_str();
        std::thread::scope(|scope| {
            let seen = &mut seen;
            let reader = scope.spawn(move || {
                // Reads until the server dies under it.
                let Ok(mut stream) =
                    EventStream::open(addr, token, seen.last(), Duration::from_millis(20))
                else {
                    return;
                };
                assert_eq!(stream.status, 200);
                while let Ok(items) = stream.poll() {
                    seen.take(items);
                }
            });
            for user in &writers {
                let stop = &stop;
                scope.spawn(move || {
                    let mut client = Client::with_timeout(addr, Duration::from_secs(10));
                    let auth = format!("Bearer {}", user.token);
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let body = serde_json::to_vec(
                            &json!({"title": format!("{} {round} {n}", user.name), "body": "b"}),
                        )
                        .unwrap();
                        match client.request(
                            "POST",
                            "/posts",
                            &[("Authorization", &auth)],
                            Some(&body),
                        ) {
                            Ok(r) => assert_eq!(r.status, 201, "{}", r.text()),
                            Err(_) => return, // the server died under us
                        }
                    }
                });
            }
            std::thread::sleep(kill_after);
            srv.kill();
            stop.store(true, Ordering::SeqCst);
            reader.join().expect("reader");
        });
        eprintln!(
            "round {round}: killed after {kill_after:?}, read up to {:?}",
            seen.last()
        );
        srv.restart();
        seen.reconnects += 1;
    }
    // After the last restart: resume and catch up with the log.
    let target = AtomicI64::new(last_event_id(&srv, &root));
    read_with_reconnects(
        srv.addr,
        &root.token,
        &mut seen,
        &target,
        &mut rng,
        Duration::from_secs(30),
    );
    let log = audit_log(&srv, &root);
    let (count, _, _) = seen.compare(&log, "SIGKILL");
    assert!(
        count > 20 * rounds,
        "too few events to mean anything: {count}"
    );
}

/// The kernel's view of a TCP connection from `local` port to `remote` port on loopback:
/// (state, bytes in its send queue), from /proc/net/tcp. States: 01 ESTABLISHED, others
/// after a close.
fn tcp_socket(local: u16, remote: u16) -> Option<(u8, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        if port(fields.get(1)?)? != local || port(fields.get(2)?)? != remote {
            return None;
        }
        let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
        let tx = u64::from_str_radix(fields.get(4)?.split(':').next()?, 16).ok()?;
        Some((state, tx))
    })
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn readers_that_never_read_hold_no_worker_and_no_memory_and_are_closed() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let srv = Server::start_with(&[], &["--workers", "1"]);
    let root = srv.admin("root");
    // Ids of 16 digits: an event of 500 ids is 8.5 kB, so the streams' buffers fill in
    // seconds.
    rusqlite::Connection::open(&srv.db)
        .unwrap()
        .execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('posts', 1000000000000000)",
            [],
        )
        .unwrap();
    let items: Vec<Value> = (0..1000)
        .map(|n| json!({"title": format!("p{n}"), "body": "b"}))
        .collect();
    let made = srv.bulk_create(&root, json!(items));
    made.expect(201);
    let ids: Vec<i64> = ids(made.json()["items"].as_array().unwrap());
    let probe = format!("/posts/{}", ids[0]);
    srv.get(&probe, None).expect(200);
    let baseline = resident_kib(srv.pid());

    // Three streams that never read a byte after the head.
    let stalled: Vec<EventStream> = (0..3)
        .map(|_| {
            let s = EventStream::open(srv.addr, &root.token, None, Duration::from_secs(1))
                .expect("open");
            assert_eq!(s.status, 200);
            s
        })
        .collect();
    let server_port = srv.addr.port();
    let client_ports: Vec<u16> = stalled
        .iter()
        .map(|s| s.socket().local_addr().unwrap().port())
        .collect();

    // Two writers: bulk deletes and restores of the 1,000 posts, an event of 1,000 ids each.
    let stop = AtomicBool::new(false);
    let mut peak = baseline;
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    let mut queued: Vec<u64> = vec![0; 3];
    let started = Instant::now();
    let mut full_since: Option<Instant> = None;
    std::thread::scope(|scope| {
        for half in ids.chunks(500) {
            let stop = &stop;
            let root = &root;
            let addr = srv.addr;
            scope.spawn(move || {
                let mut client = Client::with_timeout(addr, Duration::from_secs(60));
                while !stop.load(Ordering::SeqCst) {
                    let (status, body) = send(
                        &mut client,
                        "POST",
                        "/posts/bulk/delete",
                        &root.token,
                        Some(json!({"post_ids": half})),
                    );
                    assert_eq!(status, 204, "{body}");
                    let (status, body) = send(
                        &mut client,
                        "POST",
                        "/posts/bulk/restore",
                        &root.token,
                        Some(json!({"post_ids": half})),
                    );
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
        // Meanwhile ordinary requests are answered, memory stays put, and the server's
        // send queues of the three streams fill up and stop.
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let asked = Instant::now();
            let r = srv.get("/healthz", None);
            r.expect(200);
            slowest = slowest.max(asked.elapsed());
            probes += 1;
            peak = peak.max(resident_kib(srv.pid()));
            let now: Vec<u64> = client_ports
                .iter()
                .map(|port| tcp_socket(server_port, *port).map_or(0, |(_, tx)| tx))
                .collect();
            let grew = now.iter().zip(&queued).any(|(now, before)| now > before);
            queued = now;
            if grew || queued.contains(&0) {
                full_since = None;
            } else if full_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2)
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let events = last_event_id(&srv, &root);
    eprintln!(
        "stalled readers: {events} events, send queues {queued:?} bytes, RSS {baseline} → {peak} kB \
         (+{} kB), {probes} probes, slowest {slowest:?}, filled after {:?}",
        peak.saturating_sub(baseline),
        started.elapsed()
    );
    assert!(
        full_since.is_some(),
        "the stalled streams' send queues never filled: {queued:?}"
    );
    assert!(
        peak.saturating_sub(baseline) < 32 * 1024,
        "RSS {baseline} → {peak} kB"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a request waited {slowest:?}"
    );
    // With its one worker the server still answers while three streams are stuck.
    for _ in 0..5 {
        srv.get(&probe, None).expect(200);
    }

    // The write timeout ends each stuck stream: its connection leaves ESTABLISHED.
    let waiting = Instant::now();
    loop {
        let states: Vec<Option<u8>> = client_ports
            .iter()
            .map(|port| tcp_socket(server_port, *port).map(|(state, _)| state))
            .collect();
        if states.iter().all(|s| *s != Some(1)) {
            eprintln!(
                "stalled readers: closed by the server {:?} after the queues filled",
                waiting.elapsed()
            );
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(45),
            "the stuck streams are still open: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(stalled);
    srv.get(&probe, None).expect(200);
    // Their places are given back: new streams open.
    let s = EventStream::open(srv.addr, &root.token, Some(events), Duration::from_secs(1))
        .expect("open");
    assert_eq!(s.status, 200);
}

#[test]
fn past_max_event_streams_a_stream_is_503_with_retry_after() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start_with(&[], &["--max-event-streams", "2"]);
    let root = srv.admin("root");
    let open = || {
        EventStream::open(srv.addr, &root.token, None, Duration::from_millis(100)).expect("open")
    };
    let first = open();
    let second = open();
    assert_eq!((first.status, second.status), (200, 200));
    let third = open();
    assert_eq!(third.status, 503);
    assert!(third.header("Retry-After").is_some(), "{:?}", third.headers);
    drop(third);
    // Ordinary requests go on.
    srv.get("/healthz", None).expect(200);
    // A stream that ends gives its place back once the server notices (its next write).
    drop(first);
    let started = Instant::now();
    loop {
        srv.create_post(&root, "wake the streams", "b");
        let again = open();
        if again.status == 200 {
            break;
        }
        assert_eq!(again.status, 503);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the place was never given back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(second);
}

#[test]
fn an_idle_stream_hears_a_keep_alive_within_16_seconds() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let root = srv.admin("root");
    let last = last_event_id(&srv, &root);
    let opened = Instant::now();
    let mut stream = EventStream::open(
        srv.addr,
        &root.token,
        Some(last),
        Duration::from_millis(200),
    )
    .expect("open");
    assert_eq!(stream.status, 200);
    // The head comes at once, not with the first event or keep-alive.
    let head = opened.elapsed();
    assert!(head < Duration::from_secs(5), "the head took {head:?}");
    loop {
        let items = stream.poll().expect("the stream stays open");
        if let Some(item) = items.first() {
            assert!(
                matches!(item, SseItem::Comment(_)),
                "an idle stream sent {item:?}"
            );
            eprintln!(
                "head after {head:?}, keep-alive after {:?}",
                opened.elapsed()
            );
            break;
        }
        assert!(
            opened.elapsed() < Duration::from_secs(17),
            "no keep-alive within 17 s"
        );
    }
    // And events still come after it.
    srv.create_post(&root, "after the keep-alive", "b");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let items = stream.poll().expect("open");
        if items
            .iter()
            .any(|i| matches!(i, SseItem::Event { event, .. } if event == "post.create"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no event after the keep-alive");
    }
}
