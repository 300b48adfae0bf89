//! Request bodies as the transport meets them: a body declared far over `--max-body` is
//! refused without waiting for it, and a chunked one is cut off past the limit. The
//! handler's own rules for bodies are `quick::input`.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_body_over_the_limit_is_refused_unread_or_cut_off_when_chunked() {
    if skip_heavy() {
        return;
    }
    let s = Server::start_with(&[("POSTD_MAX_BODY", "1024")], &[]);
    let a = s.register("alice");
    let auth = format!("Bearer {}", a.token);
    let big = json!({"title": "t", "body": "x".repeat(2000)});

    // A declared length far over the limit is refused from the header alone.
    let head = format!(
        "POST /posts HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{{\"title\":\"t\",\"body\":\"b\"}}",
        s.addr
    );
    let started = Instant::now();
    s.raw(head.as_bytes()).expect(413);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "413 must not wait for the declared body"
    );

    // A chunked body is cut off past the limit.
    let mut chunked = format!(
        "POST /posts HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr
    )
    .into_bytes();
    let payload = serde_json::to_vec(&big).unwrap();
    for part in payload.chunks(500) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    s.raw(&chunked).expect(413);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 0);
}
