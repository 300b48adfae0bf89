//! A minimal HTTP/1.1 keep-alive client over one `TcpStream`: requests go out with
//! `Content-Length`; responses are read as a head plus a `Content-Length` or chunked body.
//! Every read is bounded (head size, header count, body size, socket timeouts).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 1 << 30;
const IO_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {}: body is not JSON ({err}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    pub fn expect_status(self, want: u16, what: &str) -> Response {
        if self.status != want {
            panic!(
                "{what}: expected {want}, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            );
        }
        self
    }
}

pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    last_used: Instant,
    /// Set once the status line of the current response has arrived.
    response_started: bool,
    /// How many TCP connections this client has opened (1 means keep-alive held).
    pub connects: u32,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        assert!(addr.ip().is_loopback(), "the bench only talks to loopback");
        Client {
            addr,
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
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
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
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
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
        let outcome = read_response(conn, method, &mut started);
        self.response_started = started;
        outcome
    }
}

fn read_response(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    started: &mut bool,
) -> io::Result<Response> {
    // Skip interim 1xx answers (bounded).
    for _ in 0..4 {
        let (status, headers) = read_head(conn)?;
        *started = true;
        if (100..200).contains(&status) {
            continue;
        }
        let body = read_body(conn, method, status, &headers)?;
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
    Err(bad("too many interim responses"))
}

fn read_line(conn: &mut BufReader<TcpStream>, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = conn
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ));
    }
    if n > *budget || !line.ends_with(b"\n") {
        return Err(bad("response head too large or truncated"));
    }
    *budget -= n;
    let text = String::from_utf8(line).map_err(|_| bad("response head is not UTF-8"))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_head(conn: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(conn, &mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("bad status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(conn, &mut budget)?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(bad("too many response headers"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_body(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    status: u16,
    headers: &[(String, String)],
) -> io::Result<Vec<u8>> {
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(Vec::new());
    }
    let chunked = header(headers, "Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(conn);
    }
    match header(headers, "Content-Length") {
        Some(len) => {
            let len: usize = len
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
            if len > MAX_BODY {
                return Err(bad("response body too large"));
            }
            let mut body = vec![0; len];
            conn.read_exact(&mut body)?;
            Ok(body)
        }
        None => {
            // No framing: the body runs to the end of the connection.
            let mut body = Vec::new();
            conn.by_ref()
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return Err(bad("response body too large"));
            }
            Ok(body)
        }
    }
}

fn read_chunked(conn: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let mut line_budget = 1024;
        let line = read_line(conn, &mut line_budget)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            loop {
                if read_line(conn, &mut budget)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}
