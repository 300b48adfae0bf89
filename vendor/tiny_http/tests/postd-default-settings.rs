//! postd patch: servers created without explicit settings (`Server::http`, which is what
//! rouille calls) take the default installed by `settings::set_default`, and
//! `preread::set_limit` changes the default body limit. In a process of its own: the
//! default is global.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tiny_http::{settings, Response, Server, Settings};

fn exchange(server: &Server, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.server_addr().to_ip().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn servers_take_the_default_settings_of_the_moment_they_start() {
    let stock = Server::http("127.0.0.1:0").unwrap();
    assert_eq!(settings::get_default().server_name, "tiny-http (Rust)");

    settings::set_default(Settings {
        server_name: "postd/9.9.9".to_owned(),
        default_headers: vec!["X-Content-Type-Options: nosniff".parse().unwrap()],
        read_ahead_budget: 10,
        ..Settings::default()
    });
    tiny_http::preread::set_limit(5);
    let settings = settings::get_default();
    assert_eq!((settings.body_limit, settings.read_ahead_budget), (5, 10));
    let configured = Server::http("127.0.0.1:0").unwrap();

    // A refusal needs no handler: a head with an unknown expectation.
    let refused = exchange(&configured, b"GET / HTTP/1.1\r\nExpect: bogus\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 417"), "{}", refused);
    assert!(
        refused.contains("\r\nServer: postd/9.9.9\r\n"),
        "{}",
        refused
    );
    assert!(
        refused.contains("\r\nX-Content-Type-Options: nosniff\r\n"),
        "{}",
        refused
    );

    // A body over the limit of 5 is not read ahead: the request comes at once.
    let mut stream = TcpStream::connect(configured.server_addr().to_ip().unwrap()).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\nabc")
        .unwrap();
    let rq = configured
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the request, with its body unread");
    rq.respond(Response::from_string("too large").with_status_code(413))
        .unwrap();

    // The server started before keeps what it started with.
    let refused = exchange(&stock, b"GET / HTTP/1.1\r\nExpect: bogus\r\n\r\n");
    assert!(
        refused.contains("\r\nServer: tiny-http (Rust)\r\n"),
        "{}",
        refused
    );
    assert!(!refused.contains("nosniff"), "{}", refused);
}
