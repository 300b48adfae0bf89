//! Talking to a server on loopback: a keep-alive [`Client`] that reads each response as
//! the server framed it, and [`send_until_close`] for one request on its own connection
//! whose answer is whatever arrives before the server closes it.

use crate::http::{self, Response};
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Socket read and write timeout of a [`Client::new`].
const IO_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends `request` on a new connection and returns every byte that arrives until the
/// server closes it (or sends nothing for `timeout`). Only a failed connect is an error:
/// a server may answer (413) and close before it has read the whole request, and may then
/// reset the connection; what arrived is the answer either way.
pub fn send_until_close(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout)).ok();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Ok(answer)
}

/// A minimal HTTP/1.1 keep-alive client over one `TcpStream`: requests go out with
/// `Content-Length` (a body is sent as `application/json`); each response is read as the
/// server framed it, every read bounded.
pub struct Client {
    addr: SocketAddr,
    io_timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
    last_used: Instant,
    /// Set once the status line of the current response has arrived.
    response_started: bool,
    /// How many TCP connections this client has opened (1 means keep-alive held).
    pub connects: u32,
}

impl Client {
    /// A client whose socket reads and writes may wait 10 minutes (a 100,000-item bulk
    /// request takes a while).
    pub fn new(addr: SocketAddr) -> Client {
        Client::with_timeout(addr, IO_TIMEOUT)
    }

    pub fn with_timeout(addr: SocketAddr, io_timeout: Duration) -> Client {
        assert!(addr.ip().is_loopback(), "tests only talk to loopback");
        Client {
            addr,
            io_timeout,
            conn: None,
            last_used: Instant::now(),
            response_started: false,
            connects: 0,
        }
    }

    fn stream(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.io_timeout))?;
            stream.set_write_timeout(Some(self.io_timeout))?;
            self.connects += 1;
            self.conn = Some(BufReader::with_capacity(64 * 1024, stream));
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Sends one request and reads its response. A kept-alive connection the server has
    /// closed meanwhile (postd drops idle ones after its socket timeout) is replaced: found
    /// by a peek before reuse, or, when the request failed before any response byte
    /// arrived, by one retry on a new connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        if self.conn.is_some()
            && self.last_used.elapsed() > Duration::from_millis(500)
            && !self.still_open()
        {
            self.conn = None;
        }
        let reused = self.conn.is_some();
        let mut result = self.exchange(method, path, headers, body);
        if let Err(err) = &result {
            let stale = matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            );
            if reused && stale && !self.response_started {
                self.conn = None;
                result = self.exchange(method, path, headers, body);
            }
        }
        self.last_used = Instant::now();
        match &result {
            Ok(resp)
                if resp
                    .header("Connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close")) =>
            {
                self.conn = None
            }
            Ok(_) => {}
            Err(_) => self.conn = None,
        }
        result
    }

    /// Whether the kept-alive socket is still open with nothing unread on it.
    fn still_open(&mut self) -> bool {
        let Some(conn) = &self.conn else {
            return false;
        };
        if !conn.buffer().is_empty() {
            return false;
        }
        let socket = conn.get_ref();
        if socket.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let peeked = socket.peek(&mut byte);
        let restored = socket.set_nonblocking(false).is_ok();
        restored && matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        let mut all_headers = headers.to_vec();
        if body.is_some() {
            all_headers.push(("Content-Type", "application/json"));
        }
        let head = http::request_head(method, path, self.addr, &all_headers, body.map(<[u8]>::len));
        self.response_started = false;
        let conn = self.stream()?;
        let socket = conn.get_mut();
        match body {
            // Small requests go out as one write (one segment with TCP_NODELAY).
            Some(body) if body.len() <= 64 * 1024 => {
                let mut message = head.into_bytes();
                message.extend_from_slice(body);
                socket.write_all(&message)?;
            }
            Some(body) => {
                socket.write_all(head.as_bytes())?;
                socket.write_all(body)?;
            }
            None => socket.write_all(head.as_bytes())?,
        }
        socket.flush()?;
        let mut started = false;
        let outcome = http::read_response(conn, method, &mut started);
        self.response_started = started;
        outcome
    }
}
