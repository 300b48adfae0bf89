//! postd patch: one test (or more) for each of postd's patches to tiny_http, as listed
//! in vendor/README.md, driven over real sockets.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Request, Response, Server};

/// A server whose every request is handled by `handle` on the server's own thread.
fn serve(handle: impl Fn(Request) + Send + 'static) -> SocketAddr {
    let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    thread::spawn(move || {
        for rq in server.incoming_requests() {
            handle(rq);
        }
    });
    addr
}

fn hello_server() -> SocketAddr {
    serve(|rq| {
        let _ = rq.respond(Response::from_string("hello"));
    })
}

/// How the server ended the connection after its answer.
#[derive(Debug, PartialEq)]
enum End {
    Eof,
    Reset,
    StillOpen,
}

/// Sends `bytes` in one write and reads until the server ends the connection (or 30 s
/// pass): the text received and how it ended.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> (String, End) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(bytes);
    read_all(&mut stream)
}

fn read_all(stream: &mut TcpStream) -> (String, End) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break End::Eof,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break End::StillOpen
            }
            Err(_) => break End::Reset,
        }
    };
    (String::from_utf8_lossy(&received).into_owned(), end)
}

fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {:?}", answer))
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// A refusal of the transport: the status, as problem+json carrying that status.
fn assert_refusal(answer: &str, expected: u16) {
    assert_eq!(status(answer), expected, "{answer}");
    assert_eq!(
        header(answer, "Content-Type"),
        Some("application/problem+json"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.starts_with(r#"{"type":"about:blank","title":""#)
            && body.contains(&format!(r#""status":{expected},"detail":""#)),
        "{}",
        body
    );
}

// ---------------------------------------------------------------------------------------
// response.rs: no Content-Length on 1xx and 204 answers
// ---------------------------------------------------------------------------------------

#[test]
fn a_204_answer_has_no_content_length() {
    let addr = serve(|rq| {
        let _ = rq.respond(Response::empty(204));
    });
    let (answer, _) = exchange(
        addr,
        b"DELETE /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&answer), 204);
    assert_eq!(header(&answer, "Content-Length"), None, "{answer}");
    assert_eq!(header(&answer, "Transfer-Encoding"), None, "{answer}");
}

#[test]
fn a_100_continue_has_no_content_length() {
    let addr = hello_server();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\
              Connection: close\r\n\r\n",
        )
        .unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    let interim = String::from_utf8(interim).unwrap();
    assert!(interim.starts_with("HTTP/1.1 100 "), "{}", interim);
    assert_eq!(header(&interim, "Content-Length"), None, "{interim}");
    stream.write_all(b"hello").unwrap();
    let (answer, _) = read_all(&mut stream);
    assert_eq!(status(&answer), 200, "{answer}");
}

// ---------------------------------------------------------------------------------------
// client.rs: bounded request heads; refusals answered with problem+json
// ---------------------------------------------------------------------------------------

#[test]
fn a_request_line_over_16_kib_is_431() {
    let addr = hello_server();
    let mut request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(16 * 1024));
    let (answer, _) = exchange(addr, request.as_bytes());
    assert_refusal(&answer, 431);
    // Just under the limit is served.
    request = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(16 * 1024 - 20)
    );
    let (answer, _) = exchange(addr, request.as_bytes());
    assert_eq!(status(&answer), 200, "{answer}");
}

#[test]
fn a_header_line_over_16_kib_is_431() {
    let addr = hello_server();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17 * 1024)
    );
    let (answer, _) = exchange(addr, request.as_bytes());
    assert_refusal(&answer, 431);
}

#[test]
fn more_than_100_headers_is_431() {
    let addr = hello_server();
    let headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (answer, _) = exchange(
        addr,
        format!("GET / HTTP/1.1\r\n{headers}X-One-Too-Many: v\r\n\r\n").as_bytes(),
    );
    assert_refusal(&answer, 431);
    let headers: String = (0..99).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (answer, _) = exchange(
        addr,
        format!("GET / HTTP/1.1\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status(&answer), 200, "{answer}");
}

#[test]
fn a_head_not_complete_within_10_s_is_408() {
    let addr = hello_server();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    // A byte every 500 ms keeps the socket from ever being silent for long.
    let head =
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut writer = stream.try_clone().unwrap();
    let trickler = thread::spawn(move || {
        for byte in head {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(500));
        }
    });
    let (answer, _) = read_all(&mut stream);
    let took = started.elapsed();
    assert_refusal(&answer, 408);
    assert!(took >= Duration::from_secs(10), "answered after {:?}", took);
    let _ = trickler.join();
}

#[test]
fn a_non_ascii_head_is_400() {
    let addr = hello_server();
    let (answer, _) = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nX-Name: café\r\n\r\n".as_bytes(),
    );
    assert_refusal(&answer, 400);
}

#[test]
fn a_connection_closed_before_its_first_byte_gets_no_answer() {
    let addr = hello_server();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (answer, end) = read_all(&mut stream);
    assert_eq!((answer.as_str(), end), ("", End::Eof));
}

#[test]
fn malformed_request_lines_and_headers_are_400() {
    let addr = hello_server();
    for request in [
        &b"GARBAGE\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    ] {
        let (answer, _) = exchange(addr, request);
        assert_refusal(&answer, 400);
    }
}

/// Stock tiny_http answered 505 through a writer its own request held: a deadlock that
/// leaked a thread and a socket per request.
#[test]
fn an_http_2_request_line_is_400_and_the_connection_ends() {
    let addr = hello_server();
    let (answer, end) = exchange(addr, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_refusal(&answer, 400);
    assert_eq!(end, End::Eof);
}

#[test]
fn an_unknown_expectation_is_417() {
    let addr = hello_server();
    let (answer, _) = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n\r\n");
    assert_refusal(&answer, 417);
}

// ---------------------------------------------------------------------------------------
// request.rs: ambiguous framing refused
// ---------------------------------------------------------------------------------------

#[test]
fn ambiguous_framing_is_400() {
    let addr = hello_server();
    for request in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ] {
        let (answer, _) = exchange(addr, request);
        assert_refusal(&answer, 400);
    }
    // The same length twice is one length.
    let (answer, _) = exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\
          Connection: close\r\n\r\nhello",
    );
    assert_eq!(status(&answer), 200, "{answer}");
}

// ---------------------------------------------------------------------------------------
// request.rs (preread): bodies read on the connection's thread before the application
// ---------------------------------------------------------------------------------------

#[test]
fn a_body_is_read_before_the_application_sees_its_request() {
    let server = Server::http("127.0.0.1:0").unwrap();
    let mut stream = TcpStream::connect(server.server_addr().to_ip().unwrap()).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    // Half of the body: the application has nothing to handle yet.
    assert!(server
        .recv_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
    stream.write_all(b"world").unwrap();
    let mut rq = server
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the request, once its body is complete");
    let mut body = String::new();
    rq.as_reader().read_to_string(&mut body).unwrap();
    assert_eq!(body, "helloworld");
}

#[test]
fn a_body_slower_than_the_minimum_rate_gets_408() {
    let addr = hello_server();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let trickler = thread::spawn(move || {
        for _ in 0..60 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(500));
        }
    });
    let (answer, _) = read_all(&mut stream);
    assert_refusal(&answer, 408);
    assert!(started.elapsed() >= Duration::from_secs(10));
    let _ = trickler.join();
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_read_ahead() {
    let server = Server::http("127.0.0.1:0").unwrap();
    let mut stream = TcpStream::connect(server.server_addr().to_ip().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
    let mut interim = [0u8; 12];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100");
    stream.write_all(b"abc").unwrap();
    let mut rq = server.recv().unwrap();
    let mut body = String::new();
    rq.as_reader().read_to_string(&mut body).unwrap();
    assert_eq!(body, "abc");
}

/// A declared body over the limit (16 MiB by default) is not read: the application gets
/// the request at once, answers from its Content-Length, and the connection closes.
#[test]
fn a_declared_body_over_the_limit_is_left_unread_and_the_connection_closes() {
    let server = Server::http("127.0.0.1:0").unwrap();
    let mut stream = TcpStream::connect(server.server_addr().to_ip().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17000000\r\n\r\nstart of it")
        .unwrap();
    let rq = server
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the request, at once");
    assert_eq!(rq.body_length(), Some(17_000_000));
    rq.respond(Response::from_string("too large").with_status_code(413))
        .unwrap();
    let (answer, end) = read_all(&mut stream);
    assert_eq!(status(&answer), 413, "{answer}");
    assert_ne!(end, End::StillOpen);
}
