//! postd patch: out of file descriptors (EMFILE), the accept loop goes on. Stock
//! tiny_http's accept thread ended on the first failed `accept()` (or panicked on the
//! failed `try_clone` of an accepted socket), and the server never accepted again.
//!
//! The server runs in a process of its own (this test binary started again, running only
//! `exhaustion_server`) whose open-file limit is lowered with prlimit(1); this process
//! opens more connections than it has descriptors for.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Response, Server};

const CHILD: &str = "TINY_HTTP_EXHAUSTION_SERVER";

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        eprintln!("{} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// The server half; does nothing unless started by the test below.
#[test]
#[ignore = "the server of out_of_descriptors_..., run by it in a process of its own"]
fn exhaustion_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let server = Server::http("127.0.0.1:0").unwrap();
    println!("listening on {}", server.server_addr());
    for rq in server.incoming_requests() {
        let _ = rq.respond(Response::from_string("ok"));
    }
}

fn get(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Some(answer)
}

#[test]
fn out_of_descriptors_the_server_refuses_logs_a_few_lines_and_recovers() {
    let Ok(prlimit) = which("prlimit") else {
        eprintln!("skipped: prlimit(1) is not installed");
        return;
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "exhaustion_server", "--ignored", "--nocapture"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server's address").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    let pid = child.id().to_string();
    let limited = Command::new(prlimit)
        .args(["--pid", &pid, "--nofile=64:64"])
        .status()
        .unwrap();
    assert!(limited.success());

    // Far more connections than 64 descriptors allow (each taken one costs two), in
    // batches that the listen backlog (128) holds.
    let mut conns = Vec::new();
    while conns.len() < 200 {
        for _ in 0..25 {
            let stream = TcpStream::connect(&addr).unwrap();
            stream.set_nonblocking(true).unwrap();
            conns.push((stream, Vec::new(), false));
        }
        thread::sleep(Duration::from_millis(20));
    }
    // Each connection is either taken (and silent) or refused with a 503 and closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        for (stream, received, ended) in conns.iter_mut() {
            let mut chunk = [0u8; 1024];
            while !*ended {
                match stream.read(&mut chunk) {
                    Ok(0) => *ended = true,
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => *ended = true,
                }
            }
        }
        let refused = conns
            .iter()
            .filter(|(_, received, ended)| *ended && received.starts_with(b"HTTP/1.1 503"))
            .count();
        if refused >= 150 || Instant::now() > deadline {
            break refused;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let other: Vec<String> = conns
        .iter()
        .filter(|(_, received, _)| !received.is_empty() && !received.starts_with(b"HTTP/1.1 503"))
        .map(|(_, received, _)| String::from_utf8_lossy(received).into_owned())
        .collect();
    assert!(other.is_empty(), "unexpected answers: {:?}", other);
    assert!(
        refused >= 150,
        "only {} of 200 connections were refused",
        refused
    );
    let sample = conns
        .iter()
        .find(|(_, received, _)| !received.is_empty())
        .map(|(_, received, _)| String::from_utf8_lossy(received).into_owned())
        .unwrap();
    assert!(sample.contains("\r\nRetry-After: 1\r\n"), "{}", sample);
    assert!(sample.contains("\r\nConnection: close\r\n"), "{}", sample);

    // Once the clients are gone, the server serves again.
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match get(&addr) {
            Some(answer) if answer.starts_with("HTTP/1.1 200") => break,
            other => assert!(
                Instant::now() < deadline,
                "not served 30 s after the clients closed; last: {:?}",
                other
            ),
        }
        thread::sleep(Duration::from_millis(100));
    }

    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let failures = log.matches("cannot accept connections").count()
        + log.matches("cannot take a connection").count();
    assert!(
        (1..=10).contains(&failures),
        "{} log lines about failed accepts for 200 connections:\n{}",
        failures,
        log
    );
    eprintln!("server log:\n{}", log);
    assert!(log.contains("accepting connections again after"), "{}", log);
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}
