//! Slow and idle clients must not starve a fresh one, and the server's own limits must
//! end them.
//!
//! Hundreds of connections that send nothing, dozens that trickle a request head one
//! byte every 500 ms, and some that send a complete head and then trickle the body one
//! byte a second are held open while a fresh `GET /healthz` and a fresh `POST /posts` are
//! timed: each must be answered within a second. Then: trickled heads get 408
//! problem+json (or are closed) about 10 s after their first byte, trickled bodies get
//! 408 after the 10 s grace, idle connections are closed after the 15 s socket timeout.
//!
//! Bodies are trickled in two sizes because the HTTP layer treats them differently:
//! up to 1 KiB it reads the body itself before the application sees the request, above
//! that a request worker reads it under the application's minimum-rate rule.

use crate::support::*;
use postd_testkit::client::Client;
use postd_testkit::http;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// What became of one connection, as seen from the client, in seconds since its first
/// byte was sent (or since it was opened, for idle ones).
#[derive(Debug, Clone)]
enum Fate {
    Open,
    /// The server answered (the answer's text) at this time.
    Answered(f64, String),
    /// The server closed without a word at this time.
    Closed(f64),
}

/// A client connection driven from the test's single loop: it sends one byte per turn
/// from `pending` and notes when the server answers or closes.
struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
    received: Vec<u8>,
    since: Instant,
    fate: Fate,
}

impl Conn {
    fn new(stream: TcpStream, pending: &[u8]) -> Conn {
        stream.set_nonblocking(true).expect("nonblocking");
        Conn {
            stream,
            pending: pending.to_vec(),
            received: Vec::new(),
            since: Instant::now(),
            fate: Fate::Open,
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.fate, Fate::Open)
    }

    /// Sends the next byte, if any is left and the connection is open.
    fn send_one(&mut self) {
        if !self.is_open() || self.pending.is_empty() {
            return;
        }
        match self.stream.write(&self.pending[..1]) {
            Ok(_) => {
                self.pending.remove(0);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => self.finish(),
        }
    }

    /// Reads whatever arrived; notes a complete answer or a close.
    fn poll(&mut self) {
        if !self.is_open() {
            return;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return self.finish(),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.finish(),
            }
        }
        if let Some(split) = self.received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.received[..split]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| self.received.len() >= split + 4 + n) {
                self.fate = Fate::Answered(self.age(), self.text());
            }
        }
    }

    fn finish(&mut self) {
        self.fate = if self.received.is_empty() {
            Fate::Closed(self.age())
        } else {
            Fate::Answered(self.age(), self.text())
        };
    }

    fn age(&self) -> f64 {
        self.since.elapsed().as_secs_f64()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// Opens `n` connections that will never send anything. In batches, so the listen
/// backlog (128) never overflows: an overflowing handshake is completed by the kernel
/// only seconds later, which would blur when the server really accepted it.
fn open_idle(srv: &Server, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        for _ in 0..25.min(n - conns.len()) {
            conns.push(Conn::new(
                TcpStream::connect(srv.addr).expect("connect"),
                b"",
            ));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    conns
}

/// Connections that trickle a request head that never ends (one byte per turn).
fn head_tricklers(srv: &Server, n: usize) -> Vec<Conn> {
    let head = http::request_head(
        "GET",
        "/healthz",
        srv.addr,
        &[("X-Slow", &"a".repeat(200))],
        None,
    );
    (0..n)
        .map(|_| {
            let mut conn = Conn::new(
                TcpStream::connect(srv.addr).expect("connect"),
                head.as_bytes(),
            );
            conn.send_one();
            conn.since = Instant::now();
            conn
        })
        .collect()
}

/// Connections that send a complete `POST /posts` head at once, then trickle a body of
/// `body_len` bytes (one byte per turn).
fn body_tricklers(srv: &Server, token: &str, n: usize, body_len: usize) -> Vec<Conn> {
    let filler = body_len - r#"{"title":"trickled","body":""}"#.len();
    let body = format!(r#"{{"title":"trickled","body":"{}"}}"#, "b".repeat(filler));
    assert_eq!(body.len(), body_len);
    let auth = format!("Bearer {token}");
    let head = http::request_head(
        "POST",
        "/posts",
        srv.addr,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(body_len),
    );
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(srv.addr).expect("connect");
            stream.write_all(head.as_bytes()).expect("send head");
            Conn::new(stream, body.as_bytes())
        })
        .collect()
}

/// One fresh request on a fresh connection: its status (0: no answer within 3 s) and
/// the time from connect to the whole answer.
fn timed(
    srv: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, Duration) {
    let started = Instant::now();
    let auth = format!("Bearer {token}");
    let status = Client::with_timeout(srv.addr, Duration::from_secs(3))
        .request(
            method,
            path,
            &[("Authorization", &auth)],
            body.map(str::as_bytes),
        )
        .map_or(0, |resp| resp.status);
    (status, started.elapsed())
}

fn status_of(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Probes: `rounds` × (fresh `GET /healthz`, fresh `POST /posts`), the first after
/// `first`, then every 1.5 s.
fn probe(
    srv: &Server,
    token: &str,
    first: Duration,
    rounds: usize,
) -> Vec<(&'static str, u16, Duration)> {
    let mut latencies = Vec::new();
    for round in 0..rounds {
        std::thread::sleep(if round == 0 {
            first
        } else {
            Duration::from_millis(1500)
        });
        let (status, took) = timed(srv, "GET", "/healthz", token, None);
        latencies.push(("GET /healthz", status, took));
        let (status, took) = timed(
            srv,
            "POST",
            "/posts",
            token,
            Some(r#"{"title":"fresh","body":"served promptly"}"#),
        );
        latencies.push(("POST /posts", status, took));
    }
    latencies
}

/// Drives every connection (heads: a byte per tick; bodies: a byte every other tick)
/// until all have ended and `done()` holds, or `limit` has passed.
fn drive(groups: &mut [(&str, &mut Vec<Conn>, u32)], limit: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    let mut tick = 0u32;
    while started.elapsed() < limit {
        let turn = Instant::now();
        for (_, conns, every) in groups.iter_mut() {
            for conn in conns.iter_mut() {
                if tick.is_multiple_of(*every) {
                    conn.send_one();
                }
                conn.poll();
            }
        }
        let all_ended = groups
            .iter()
            .all(|(_, conns, _)| conns.iter().all(|c| !c.is_open()));
        if all_ended && done() {
            return;
        }
        tick += 1;
        std::thread::sleep(TICK.saturating_sub(turn.elapsed()));
    }
}

fn summarize(name: &str, conns: &[Conn]) {
    let times: Vec<f64> = conns
        .iter()
        .filter_map(|c| match c.fate {
            Fate::Answered(t, _) | Fate::Closed(t) => Some(t),
            Fate::Open => None,
        })
        .collect();
    let answered: Vec<String> = conns
        .iter()
        .filter_map(|c| match &c.fate {
            Fate::Answered(_, text) => Some(status_of(text).unwrap_or(0).to_string()),
            _ => None,
        })
        .collect();
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    let span = if times.is_empty() {
        "-".to_string()
    } else {
        format!("{min:.1}–{max:.1} s")
    };
    let mut statuses = answered.clone();
    statuses.sort();
    statuses.dedup();
    println!(
        "{name}: {} of {} ended after {span} ({} answered, statuses {statuses:?}; \
         {} still open)",
        times.len(),
        conns.len(),
        answered.len(),
        conns.iter().filter(|c| c.is_open()).count()
    );
}

/// Each connection must have met `ok`; else one problem line per connection (clipped).
fn check_fates(name: &str, conns: &[Conn], ok: impl Fn(&Fate) -> bool, problems: &mut Vec<String>) {
    let bad: Vec<String> = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| !ok(&c.fate))
        .map(|(i, c)| format!("{name} {i}: {:?}", clip_fate(&c.fate)))
        .collect();
    if !bad.is_empty() {
        problems.push(format!(
            "{} of {} {name}s wrong, e.g. {}",
            bad.len(),
            conns.len(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
}

fn clip_fate(fate: &Fate) -> Fate {
    match fate {
        Fate::Answered(t, text) => Fate::Answered(*t, text.chars().take(160).collect()),
        other => other.clone(),
    }
}

/// A 408 problem+json answer within `window` seconds.
fn timed_out_within(fate: &Fate, window: std::ops::RangeInclusive<f64>) -> bool {
    matches!(fate, Fate::Answered(t, text)
        if status_of(text) == Some(408)
            && text.contains("application/problem+json")
            && window.contains(t))
}

fn check_latencies(latencies: &[(&str, u16, Duration)], problems: &mut Vec<String>) {
    for (what, status, took) in latencies {
        println!("fresh {what}: {status} in {} ms", took.as_millis());
        let ok = if *what == "GET /healthz" { 200 } else { 201 };
        if *status != ok || *took >= Duration::from_secs(1) {
            problems.push(format!(
                "fresh {what} answered {status} after {} ms (want {ok} within 1000 ms)",
                took.as_millis()
            ));
        }
    }
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// 300 idle + 40 head tricklers + 10 body tricklers (5 small bodies, 5 large ones — fewer
/// than the 8 request workers of a 2-CPU machine).
#[test]
fn fresh_clients_are_served_while_hundreds_idle_and_trickle() {
    if skip_heavy() {
        return;
    }
    let _turn = timing_sensitive();
    let srv = Server::start_with(&[], &["--workers", "8"]);
    let user = srv.register("patient");
    let started = Instant::now();
    let mut idle = open_idle(&srv, 300);
    let mut heads = head_tricklers(&srv, 40);
    let mut small = body_tricklers(&srv, &user.token, 5, 200);
    let mut large = body_tricklers(&srv, &user.token, 5, 4000);
    println!(
        "opened 300 idle, 40 head-trickling and 10 body-trickling connections in {} ms",
        started.elapsed().as_millis()
    );

    let latencies = std::thread::scope(|scope| {
        let prober = scope.spawn(|| probe(&srv, &user.token, Duration::from_millis(2500), 3));
        drive(
            &mut [
                ("head", &mut heads, 1),
                ("small body", &mut small, 2),
                ("large body", &mut large, 2),
                ("idle", &mut idle, 1),
            ],
            Duration::from_secs(19),
            || prober.is_finished(),
        );
        prober.join().expect("prober")
    });

    summarize("head tricklers", &heads);
    summarize("small-body tricklers (200 B)", &small);
    summarize("large-body tricklers (4000 B)", &large);
    summarize("idle connections", &idle);
    let mut problems = Vec::new();
    check_latencies(&latencies, &mut problems);
    check_fates(
        "head trickler",
        &heads,
        |f| match f {
            Fate::Closed(t) => (9.0..=16.0).contains(t),
            other => timed_out_within(other, 9.0..=16.0),
        },
        &mut problems,
    );
    check_fates(
        "small-body trickler",
        &small,
        |f| timed_out_within(f, 9.0..=16.0),
        &mut problems,
    );
    check_fates(
        "large-body trickler",
        &large,
        |f| timed_out_within(f, 9.0..=16.0),
        &mut problems,
    );
    check_fates(
        "idle connection",
        &idle,
        |f| matches!(f, Fate::Closed(t) if (14.0..=17.5).contains(t)),
        &mut problems,
    );
    let (status, took) = timed(&srv, "GET", "/healthz", &user.token, None);
    println!(
        "afterwards GET /healthz {status} in {} ms; test took {:.1} s",
        took.as_millis(),
        started.elapsed().as_secs_f64()
    );
    if status != 200 {
        problems.push(format!("final GET /healthz answered {status}"));
    }
    assert_no_problems(&problems);
}

/// More body tricklers than request workers: a worker waiting on a trickled body must
/// not leave a fresh client waiting for the 10 s grace to run out.
#[test]
fn body_tricklers_do_not_starve_the_request_workers() {
    if skip_heavy() {
        return;
    }
    let _turn = timing_sensitive();
    const WORKERS: usize = 4;
    let srv = Server::start_with(&[], &["--workers", &WORKERS.to_string()]);
    let user = srv.register("patient");
    let started = Instant::now();
    let mut large = body_tricklers(&srv, &user.token, WORKERS + 2, 4000);

    let latencies = std::thread::scope(|scope| {
        let prober = scope.spawn(|| probe(&srv, &user.token, Duration::from_millis(2000), 1));
        drive(
            &mut [("large body", &mut large, 2)],
            Duration::from_secs(16),
            || prober.is_finished(),
        );
        prober.join().expect("prober")
    });
    summarize(
        &format!(
            "large-body tricklers ({} on {WORKERS} workers)",
            WORKERS + 2
        ),
        &large,
    );
    let mut problems = Vec::new();
    check_latencies(&latencies, &mut problems);
    // Every trickler still ends with a 408, even those that waited for a worker.
    check_fates(
        "large-body trickler",
        &large,
        |f| timed_out_within(f, 9.0..=15.0),
        &mut problems,
    );
    println!("test took {:.1} s", started.elapsed().as_secs_f64());
    assert_no_problems(&problems);
}

/// A worker that answered a trickled body 408 (with `Connection: close`) must be free for
/// the next request at once, not go on reading the rest of that body.
#[test]
fn a_slow_body_answered_408_frees_its_worker() {
    if skip_heavy() {
        return;
    }
    let _turn = timing_sensitive();
    let srv = Server::start_with(&[], &["--workers", "1"]);
    let user = srv.register("patient");
    let started = Instant::now();
    let mut large = body_tricklers(&srv, &user.token, 1, 4000);
    drive(
        &mut [("large body", &mut large, 2)],
        Duration::from_secs(14),
        || true,
    );
    summarize("large-body trickler (1 worker)", &large);
    let mut problems = Vec::new();
    check_fates(
        "large-body trickler",
        &large,
        |f| timed_out_within(f, 9.0..=14.0),
        &mut problems,
    );
    // The client now stays silent, as a slow client would; the server said it closes.
    let answered_at = Instant::now();
    let (status, took) = timed(&srv, "GET", "/healthz", &user.token, None);
    println!(
        "fresh GET /healthz after the 408: {status} in {} ms",
        took.as_millis()
    );
    if status != 200 || took >= Duration::from_secs(1) {
        problems.push(format!(
            "fresh GET /healthz after the 408 answered {status} after {} ms \
             (want 200 within 1000 ms)",
            took.as_millis()
        ));
    }
    let conn = &mut large[0];
    conn.stream.set_nonblocking(false).expect("blocking");
    conn.stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut rest = [0u8; 64];
    let closed = match conn.stream.read(&mut rest) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    println!(
        "trickler connection closed by the server: {closed} ({} ms after the 408)",
        answered_at.elapsed().as_millis()
    );
    if !closed {
        problems.push("the 408'd connection is still open after its answer".into());
    }
    println!("test took {:.1} s", started.elapsed().as_secs_f64());
    assert_no_problems(&problems);
}

/// Every connection of a burst is served promptly, even one that arrives while the
/// server is briefly not accepting (a pause, a busy CPU): 100 connections queue in the
/// listen backlog while the server is stopped (SIGSTOP), it resumes (SIGCONT) and takes
/// them all at once; then each sends one keep-alive request. None may be left unread
/// until some other connection ends.
#[test]
fn every_connection_of_a_burst_is_served_promptly() {
    if skip_heavy() {
        return;
    }
    let _turn = timing_sensitive();
    let srv = Server::start();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &srv.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig}");
    };
    // Settle: the HTTP layer's connection threads are up and waiting for work.
    srv.get("/healthz", None).expect(200);
    std::thread::sleep(Duration::from_millis(300));
    signal("-STOP");
    // Fewer than the listen backlog (128), so the kernel completes every handshake.
    let mut conns: Vec<Conn> = (0..100)
        .map(|_| Conn::new(TcpStream::connect(srv.addr).expect("connect"), b""))
        .collect();
    signal("-CONT");
    std::thread::sleep(Duration::from_millis(500));
    let request = http::request_head("GET", "/healthz", srv.addr, &[], None);
    let sent = Instant::now();
    for conn in &mut conns {
        conn.stream.set_nonblocking(false).expect("blocking");
        conn.stream.write_all(request.as_bytes()).expect("send");
        conn.stream.set_nonblocking(true).expect("nonblocking");
        conn.since = sent;
    }
    // Poll for 3 s: plenty for 100 answers of a health check.
    while sent.elapsed() < Duration::from_secs(3) && conns.iter().any(Conn::is_open) {
        for conn in &mut conns {
            conn.poll();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    summarize(
        "burst connections (one keep-alive GET /healthz each)",
        &conns,
    );
    let late: Vec<String> = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| match &c.fate {
            Fate::Answered(t, text) => *t >= 1.0 || status_of(text) != Some(200),
            _ => true,
        })
        .map(|(i, c)| format!("connection {i}: {:?}", clip_fate(&c.fate)))
        .collect();
    assert!(
        late.is_empty(),
        "{} of {} connections were not answered 200 within 1 s (left unread until another \
         connection ends?), e.g.:\n{}",
        late.len(),
        conns.len(),
        late.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}
