//! The change feed in process (API.md v1.2 "Change feed"): who may open `GET /events`,
//! its resume point (`Last-Event-ID`, `?since=`, checked), its headers, the events it
//! sends (the audit log's, in id order, as the log shows them) and the cap on open
//! streams. Streams over a socket — concurrent writers, reconnects, SIGKILL, a client
//! that never reads — are `heavy::events`.

use crate::support::sse::{SseItem, SseParser};
use crate::support::*;
use serde_json::{json, Value};
use std::io::Read;

/// Opens the feed as `token` with extra headers.
fn open(
    s: &TestApp,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (Response, Box<dyn Read + Send>) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = extra.to_vec();
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    s.open("GET", path, &headers, None)
}

/// A refused open: the whole problem answer.
fn refused(s: &TestApp, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Response {
    let (mut head, mut body) = open(s, path, token, extra);
    assert_ne!(head.status, 200, "{path} was opened");
    body.read_to_end(&mut head.body).expect("read the problem");
    head
}

/// Reads events off a stream until `n` have arrived (only ask for as many as the log
/// holds: the stream waits for more otherwise).
fn take_events(reader: &mut dyn Read, n: usize) -> Vec<(i64, String, Value)> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 512];
    while events.len() < n {
        let got = reader.read(&mut buf).expect("read the stream");
        assert!(got > 0, "the stream ended after {} events", events.len());
        for item in parser.push(&buf[..got]) {
            if let SseItem::Event { id, event, data } = item {
                events.push((id, event, data));
            }
        }
    }
    assert_eq!(events.len(), n, "more events than asked for in one read");
    events
}

fn audit_oldest_first(s: &TestApp, admin: &TestUser) -> Vec<Value> {
    let mut all = s.collect_pages("/admin/audit?limit=100", Some(&admin.token));
    all.reverse();
    all
}

#[test]
fn the_feed_is_for_admins_and_tokens_with_events_read() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    assert_401(&refused(&s, "/events", None, &[]));
    assert_401(&refused(&s, "/events", Some("not-a-token"), &[]));
    refused(&s, "/events", Some(&alice.token), &[]).expect(403);
    // A user's token can not have the scope; an admin's without it is refused naming it.
    let token = |user: &TestUser, name: &str, scopes: Value| {
        let r = s.call(
            "POST",
            "/auth/tokens",
            Some(&user.token),
            Some(&json!({"name": name, "scopes": scopes})),
        );
        r.expect(201);
        r.json()["token"].as_str().unwrap().to_string()
    };
    let users = token(&alice, "all", json!(["posts:read", "posts:write"]));
    let r = refused(&s, "/events", Some(&users), &[]);
    r.expect(403);
    assert!(r.json()["detail"].as_str().unwrap().contains("events:read"));
    let reads = token(&root, "reads", json!(["posts:read", "posts:write"]));
    let r = refused(&s, "/events", Some(&reads), &[]);
    r.expect(403);
    assert!(r.json()["detail"].as_str().unwrap().contains("events:read"));

    for t in [
        root.token.clone(),
        token(&root, "feed", json!(["events:read"])),
        token(&root, "admin", json!(["admin"])),
    ] {
        let (head, _stream) = open(&s, "/events", Some(&t), &[]);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
        assert_eq!(head.header("Cache-Control"), Some("no-store"));
    }
    // A user's token that was made an admin's later still lacks the scope.
    s.cli_ok(&["user", "role", "alice", "admin"], &[]);
    refused(&s, "/events", Some(&users), &[]).expect(403);
    let (head, _stream) = open(&s, "/events", Some(&alice.token), &[]);
    assert_eq!(head.status, 200);
}

#[test]
fn bad_resume_points_are_refused() {
    let s = TestApp::new();
    let root = s.admin("root");
    for since in ["abc", "-1", "1.5", "+3", "%201", "99999999999999999999", ""] {
        let r = refused(
            &s,
            &format!("/events?since={since}"),
            Some(&root.token),
            &[],
        );
        r.expect(422);
    }
    for last in ["abc", "-1", "1.5", "1e3", "99999999999999999999"] {
        let r = refused(&s, "/events", Some(&root.token), &[("Last-Event-ID", last)]);
        r.expect(400);
    }
    // Authentication comes first.
    assert_401(&refused(&s, "/events?since=abc", None, &[]));
}

#[test]
fn the_feed_sends_the_audit_log_in_order_and_resumes_after_an_id() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    let p = id(&s.create_post(&alice, "first", "b"));
    s.call(
        "PATCH",
        &format!("/posts/{p}"),
        Some(&alice.token),
        Some(&json!({"title": "second\nline"})),
    )
    .expect(200);
    s.bulk_create(
        &alice,
        json!([{"title": "a", "body": "b"}, {"title": "c", "body": "d"}]),
    )
    .expect(201);
    // A rejected request appends nothing, so the feed shows nothing of it.
    s.bulk_create(
        &alice,
        json!([{"title": "ok", "body": "b"}, {"title": "", "body": "b"}]),
    )
    .expect(422);
    assert_204(&s.call("DELETE", &format!("/posts/{p}"), Some(&alice.token), None));
    s.call(
        "POST",
        &format!("/posts/{p}/restore"),
        Some(&root.token),
        None,
    )
    .expect(200);
    let log = audit_oldest_first(&s, &root);
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "post.create",
            "post.update",
            "posts.bulk_create",
            "post.delete",
            "post.restore"
        ]
    );

    let (head, mut stream) = open(&s, "/events", Some(&root.token), &[]);
    assert_eq!(head.status, 200);
    let sent = take_events(&mut stream, log.len());
    for ((id, event, data), logged) in sent.iter().zip(&log) {
        assert_eq!(*id, logged["id"].as_i64().unwrap());
        assert_eq!(event, logged["action"].as_str().unwrap());
        assert_eq!(data, logged, "the data is the event as the log shows it");
    }
    // A change made while the stream is open comes next.
    s.create_post(&alice, "live", "b");
    let next = take_events(&mut stream, 1);
    assert_eq!(next[0].1, "post.create");
    assert!(next[0].0 > sent.last().unwrap().0);
    drop(stream);

    // Resuming after an id: `since`, and Last-Event-ID, which wins over it.
    let third = sent[2].0;
    let (_, mut stream) = open(
        &s,
        &format!("/events?since={third}"),
        Some(&root.token),
        &[],
    );
    let resumed = take_events(&mut stream, 3);
    assert_eq!(
        resumed.iter().map(|e| e.0).collect::<Vec<_>>(),
        [sent[3].0, sent[4].0, next[0].0]
    );
    let last = sent[3].0.to_string();
    let (_, mut stream) = open(
        &s,
        "/events?since=0",
        Some(&root.token),
        &[("Last-Event-ID", &last)],
    );
    let resumed = take_events(&mut stream, 2);
    assert_eq!(
        resumed.iter().map(|e| e.0).collect::<Vec<_>>(),
        [sent[4].0, next[0].0]
    );
}

#[test]
fn past_max_event_streams_the_next_is_503_with_retry_after() {
    let s = TestApp::with_args(&["--max-event-streams", "2"]);
    let root = s.admin("root");
    let (a, first) = open(&s, "/events", Some(&root.token), &[]);
    let (b, second) = open(&s, "/events", Some(&root.token), &[]);
    assert_eq!((a.status, b.status), (200, 200));
    let r = refused(&s, "/events", Some(&root.token), &[]);
    r.expect(503);
    assert!(r.header("Retry-After").is_some(), "{:?}", r.headers);
    // Other requests go on.
    s.get("/auth/me", Some(&root.token)).expect(200);
    // A stream that ends gives its place back.
    drop(first);
    let (c, _third) = open(&s, "/events", Some(&root.token), &[]);
    assert_eq!(c.status, 200);
    refused(&s, "/events", Some(&root.token), &[]).expect(503);
    drop(second);
    let (d, _fourth) = open(&s, "/events", Some(&root.token), &[]);
    assert_eq!(d.status, 200);
}
