//! The transport against the real binary, as a hostile client meets it (API.md v1.1,
//! "Transport and headers"): descriptor exhaustion and recovery, the connection cap,
//! every refusal announced with `Connection: close` and ended cleanly, the read-ahead
//! budget, and `Server` / `X-Content-Type-Options` on every answer.
//!
//! Assertions are on what the client received; where the server needs time (a
//! connection's close noticed, descriptors freed), the test polls with a generous
//! deadline instead of timing anything.

use crate::support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

const SERVER: &str = concat!("postd/", env!("CARGO_PKG_VERSION"));

/// How the server ended the connection.
#[derive(Debug, PartialEq)]
enum End {
    /// A clean close (FIN) after everything it sent.
    Eof,
    /// A reset: what the client had not read yet may be lost.
    Reset,
    /// Still open when the client stopped waiting.
    Open,
}

/// Reads until the server ends the connection or `wait` passes.
fn read_to_end(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, End) {
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break End::Eof,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break End::Open
            }
            Err(_) => break End::Reset,
        }
    };
    (received, end)
}

/// Sends `bytes` in one write on a new connection; what came back and how it ended.
fn exchange(srv: &Server, bytes: &[u8]) -> (Vec<u8>, End) {
    let mut stream = TcpStream::connect(srv.addr).expect("connect");
    let _ = stream.write_all(bytes);
    read_to_end(&mut stream, Duration::from_secs(30))
}

/// The status lines in what was received (one per answer).
fn status_lines(received: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(received);
    text.match_indices("HTTP/1.")
        .filter(|(at, _)| {
            let rest = &text.as_bytes()[at + 8..];
            rest.len() >= 4 && rest[0] == b' ' && rest[1..4].iter().all(u8::is_ascii_digit)
        })
        .map(|(at, _)| text[at..].lines().next().unwrap_or_default().to_string())
        .collect()
}

/// The first answer in `received`, parsed.
fn first_answer(received: &[u8]) -> Response {
    let text = String::from_utf8_lossy(received);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    Response {
        status,
        headers,
        body: rest.as_bytes()[..length.min(rest.len())].to_vec(),
    }
}

/// `Server: postd/<version>` and `X-Content-Type-Options: nosniff`.
#[track_caller]
fn assert_postd_headers(resp: &Response) {
    assert_eq!(resp.header("Server"), Some(SERVER), "{:?}", resp.headers);
    assert_eq!(
        resp.header("X-Content-Type-Options"),
        Some("nosniff"),
        "{:?}",
        resp.headers
    );
}

/// A request pipelined behind the one under test, in the same write: longer than the
/// server's 1 KiB read buffer, so its bytes are still unread in the kernel when the
/// server closes (a close over unread data would be a reset).
fn pipelined(srv: &Server) -> Vec<u8> {
    format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Pad: {}\r\n\r\n",
        srv.addr,
        "p".repeat(4000)
    )
    .into_bytes()
}

/// Polls `GET /healthz` on new connections until it answers 200 (or `within` passes).
fn wait_until_served(srv: &Server, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect(srv.addr) {
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
                let (received, end) = read_to_end(&mut stream, Duration::from_secs(5));
                match status_lines(&received).first() {
                    Some(line) if line.starts_with("HTTP/1.1 200") => return Ok(()),
                    Some(line) => last = line.clone(),
                    None => last = format!("no answer ({end:?})"),
                }
            }
            Err(e) => last = format!("connect: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

fn process_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && stat.split_whitespace().nth(2) != Some("Z")
}

// ---------------------------------------------------------------------------------------
// Descriptor exhaustion
// ---------------------------------------------------------------------------------------

/// With its open-file limit lowered to 160 and 400 idle connections opened, the server
/// runs out of descriptors. It must keep answering (503 for what it can not take), and
/// once the clients have closed, serve again: stock tiny_http's accept thread died on
/// the first failure and the process lived on refusing everything, so systemd's
/// `Restart=on-failure` never fired.
#[test]
fn out_of_descriptors_the_server_answers_503_and_serves_again_once_they_are_free() {
    if skip_heavy() {
        return;
    }
    let Some(prlimit) = required_tool(
        "prlimit",
        "heavy::transport::out_of_descriptors_the_server_answers_503_and_serves_again_once_they_are_free",
    ) else {
        return;
    };
    let srv = Server::start();
    srv.get("/healthz", None).expect(200);
    let limited = Command::new(prlimit)
        .args(["--pid", &srv.pid().to_string(), "--nofile=160:160"])
        .status()
        .expect("run prlimit");
    assert!(limited.success(), "prlimit failed");

    // Each connection the server takes costs it two descriptors: 400 are far more than
    // 160 allow. In batches the listen backlog (128) holds.
    let mut idle = Vec::new();
    while idle.len() < 400 {
        for _ in 0..25 {
            let stream = TcpStream::connect(srv.addr).expect("connect");
            stream.set_nonblocking(true).expect("nonblocking");
            idle.push((stream, Vec::new(), false));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each is either taken (and silent: it sent nothing) or answered 503 and closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        for (stream, received, ended) in idle.iter_mut() {
            let mut chunk = [0u8; 4096];
            while !*ended {
                match stream.read(&mut chunk) {
                    Ok(0) => *ended = true,
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => *ended = true,
                }
            }
        }
        let refused: Vec<&Vec<u8>> = idle
            .iter()
            .filter(|(_, received, ended)| *ended && !received.is_empty())
            .map(|(_, received, _)| received)
            .collect();
        if refused.len() >= 250 || Instant::now() > deadline {
            break refused.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        refused.len() >= 250,
        "only {} of 400 connections were answered while descriptors were out",
        refused.len()
    );
    for received in &refused {
        let resp = first_answer(received);
        resp.expect(503);
        assert_eq!(resp.header("Retry-After"), Some("1"));
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_postd_headers(&resp);
    }
    // A fresh request now is answered too (503 while descriptors are out; 200 if idle
    // connections have already timed out), never left without an answer.
    let (received, _) = exchange(&srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let now = first_answer(&received);
    assert!(
        now.status == 503 || now.status == 200,
        "{} {}",
        now.status,
        now.text()
    );

    drop(idle);
    if let Err(last) = wait_until_served(&srv, Duration::from_secs(60)) {
        panic!(
            "GET /healthz not answered 200 within 60 s of the clients closing (last: {last}); \
             process alive: {}",
            process_alive(srv.pid())
        );
    }
    assert!(process_alive(srv.pid()));
}

// ---------------------------------------------------------------------------------------
// The connection cap
// ---------------------------------------------------------------------------------------

fn keep_alive_get(srv: &Server, stream: &mut TcpStream) -> Response {
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr).as_bytes())
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).expect("read an answer");
        assert!(n > 0, "closed before answering");
        received.extend_from_slice(&chunk[..n]);
        if let Some(split) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let resp = first_answer(&received);
            let length: usize = resp
                .header("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if received.len() >= split + 4 + length {
                return resp;
            }
        }
    }
}

#[test]
fn past_max_connections_a_connection_gets_503_and_those_under_it_still_work() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start_with(&[], &["--max-connections", "4"]);
    // Four keep-alive connections, each shown to be taken by an answer.
    let mut taken: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(srv.addr).expect("connect"))
        .collect();
    for stream in &mut taken {
        keep_alive_get(&srv, stream).expect(200);
    }

    // The fifth is answered by the server at once, whatever it sends, and closed cleanly.
    for _ in 0..3 {
        let mut request =
            format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr).into_bytes();
        request.extend(pipelined(&srv));
        let (received, end) = exchange(&srv, &request);
        let resp = first_answer(&received);
        resp.expect(503);
        assert_eq!(resp.header("Retry-After"), Some("1"));
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_postd_headers(&resp);
        assert_eq!(status_lines(&received).len(), 1, "{}", resp.text());
        assert_eq!(end, End::Eof);
    }

    // Those under the cap are served as before.
    for stream in &mut taken {
        let resp = keep_alive_get(&srv, stream);
        resp.expect(200);
        assert_postd_headers(&resp);
    }
    // One leaves: a new connection is taken again (the server notices the close on its
    // own time, hence the polling).
    drop(taken.pop());
    wait_until_served(&srv, Duration::from_secs(30)).expect("served again below the cap");
}

// ---------------------------------------------------------------------------------------
// Refusals say Connection: close and end cleanly
// ---------------------------------------------------------------------------------------

/// Each refusal of the transport (and postd's 413 from a declared length, after which
/// the body is left unread) is one answer with `Connection: close`, problem+json, postd's
/// headers, then a clean end: a second request pipelined in the same write gets no
/// answer, and no reset cuts the first one short.
#[test]
fn every_refusal_says_connection_close_and_ends_cleanly_after_one_answer() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start_with(&[("POSTD_MAX_BODY", "65536")], &[]);
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        (
            "non-ASCII header value",
            400,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: café\r\n\r\n".into(),
        ),
        (
            "malformed request line",
            400,
            b"GARBAGE\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "431: request line too long",
            431,
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000)).into_bytes(),
        ),
        (
            "431: too many headers",
            431,
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
        ),
        (
            "HTTP/2.0",
            400,
            b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length with Transfer-Encoding",
            400,
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            "header name with a space",
            400,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n".to_vec(),
        ),
        (
            "header name that is not a token",
            400,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad(Name): v\r\n\r\n".to_vec(),
        ),
        (
            "417: unknown Expect",
            417,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n\r\n".to_vec(),
        ),
        (
            "413: declared length over the limit",
            413,
            b"POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 104857600\r\n\r\n{\"username\":"
                .to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, expected, mut request) in cases {
        request.extend(pipelined(&srv));
        let (received, end) = exchange(&srv, &request);
        let resp = first_answer(&received);
        let problems: Vec<String> = [
            (resp.status != expected).then(|| format!("status {}", resp.status)),
            (resp.header("Connection") != Some("close"))
                .then(|| format!("Connection: {:?}", resp.header("Connection"))),
            (resp.header("Server") != Some(SERVER))
                .then(|| format!("Server: {:?}", resp.header("Server"))),
            (resp.header("X-Content-Type-Options") != Some("nosniff")).then(|| {
                format!(
                    "X-Content-Type-Options: {:?}",
                    resp.header("X-Content-Type-Options")
                )
            }),
            (status_lines(&received).len() != 1)
                .then(|| format!("answers: {:?}", status_lines(&received))),
            (end != End::Eof).then(|| format!("ended with {end:?}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if problems.is_empty() {
            resp.expect(expected);
        } else {
            failures.push(format!("{name}: {}", problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A head that does not arrive within 10 s is answered 408 with `Connection: close`,
/// and the connection ends cleanly although the client goes on trickling.
#[test]
fn a_slow_head_gets_408_with_connection_close_and_a_clean_end() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let mut stream = TcpStream::connect(srv.addr).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let trickler = std::thread::spawn(move || {
        for byte in
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    let (received, end) = read_to_end(&mut stream, Duration::from_secs(60));
    let resp = first_answer(&received);
    resp.expect(408);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_postd_headers(&resp);
    assert_eq!(end, End::Eof);
    let _ = trickler.join();
}

/// A keep-alive client (as httpx is) that meets a refusal learns from the answer that
/// the connection ends, instead of failing its next request with "server disconnected".
#[test]
fn a_keep_alive_client_is_told_before_the_connection_closes() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let mut stream = TcpStream::connect(srv.addr).expect("connect");
    // A good request first: the connection stays open.
    keep_alive_get(&srv, &mut stream).expect(200);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n")
        .expect("send");
    let (received, end) = read_to_end(&mut stream, Duration::from_secs(30));
    let resp = first_answer(&received);
    resp.expect(400);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(end, End::Eof);
}

// ---------------------------------------------------------------------------------------
// The read-ahead budget
// ---------------------------------------------------------------------------------------

#[test]
fn a_body_past_the_read_ahead_budget_gets_503_with_retry_after() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start_with(&[("POSTD_READ_AHEAD_BUDGET", "4096")], &[]);
    // Within the budget: read and handled as ever.
    let user = srv.register("within-budget");
    assert!(user.id > 0);
    // Over it: refused before the body is read, and the connection closes.
    let body = format!(
        r#"{{"username":"over-budget","password":"{}"}}"#,
        "p".repeat(5000)
    );
    let request = format!(
        "POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (received, end) = exchange(&srv, request.as_bytes());
    let resp = first_answer(&received);
    resp.expect(503);
    assert_eq!(resp.header("Retry-After"), Some("1"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_postd_headers(&resp);
    assert_eq!(end, End::Eof);
    // The same as chunks: refused once the budget runs out.
    let request = format!(
        "POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let (received, _) = exchange(&srv, request.as_bytes());
    first_answer(&received).expect(503);
    // Nothing was kept reserved: a small body still goes through.
    srv.register("after-refusals");
}

// ---------------------------------------------------------------------------------------
// Server and X-Content-Type-Options on every answer
// ---------------------------------------------------------------------------------------

#[test]
fn every_application_answer_carries_server_and_nosniff() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let user = srv.register("headers");
    let post = srv.create_post(&user, "Headers", "on every answer");
    let id = post["id"].as_i64().expect("id");
    for (what, resp) in [
        ("200", srv.get("/healthz", None)),
        ("200 openapi", srv.get("/openapi.json", None)),
        ("404", srv.get("/nowhere", None)),
        ("405", srv.request("PUT", "/posts", &[], None)),
        ("401", srv.get("/auth/me", None)),
        (
            "204",
            srv.request(
                "DELETE",
                &format!("/posts/{id}"),
                &[("Authorization", &format!("Bearer {}", user.token))],
                None,
            ),
        ),
        ("HEAD", srv.request("HEAD", "/healthz", &[], None)),
    ] {
        assert!(resp.status < 500, "{what}: {}", resp.status);
        assert_eq!(resp.header("Server"), Some(SERVER), "{what}");
        assert_eq!(
            resp.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{what}"
        );
        // These requests said Connection: close; the answers say so too.
        assert_eq!(resp.header("Connection"), Some("close"), "{what}");
    }
}
