//! Server-Sent Events as the change feed (`GET /events`) writes them, read by hand: blocks
//! of `field: value` lines ended by a blank line; a line starting with `:` is a comment
//! (the feed's keep-alive).

use serde_json::Value;

/// One block of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    Event {
        id: i64,
        event: String,
        data: Value,
    },
    /// A comment line (`: keep-alive`), without its colon.
    Comment(String),
}

/// Bytes in, whole blocks out; a block cut short waits for the rest.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Takes what arrived; returns every block it completed, in order. Panics on a block
    /// that is not the feed's form (an event without id, event or JSON data).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseItem> {
        self.pending.extend_from_slice(bytes);
        let mut items = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8(block).expect("the stream is UTF-8");
            items.extend(parse_block(text.trim_end_matches('\n')));
        }
        items
    }
}

fn parse_block(block: &str) -> Vec<SseItem> {
    let mut items = Vec::new();
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            items.push(SseItem::Comment(comment.trim().to_string()));
            continue;
        }
        let (field, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("not an SSE field line: {line:?}"));
        match field {
            "id" => id = Some(value.parse::<i64>().expect("a numeric id")),
            "event" => event = Some(value.to_string()),
            "data" => {
                assert!(data.is_none(), "one data line per event: {block:?}");
                data = Some(serde_json::from_str(value).expect("data is JSON"))
            }
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    match (id, event, data) {
        (Some(id), Some(event), Some(data)) => items.push(SseItem::Event { id, event, data }),
        (None, None, None) => {}
        partial => panic!("an incomplete event {partial:?}: {block:?}"),
    }
    items
}

/// The change feed over a socket (the heavy tier): `GET /events` on a connection of its
/// own, the answer's head read, then its body de-chunked and parsed as it arrives.
pub struct EventStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    socket: std::net::TcpStream,
    chunks: Option<Chunks>,
    parser: SseParser,
    /// Body bytes that came with the head.
    early: Vec<u8>,
}

impl EventStream {
    /// Connects and sends the request (with `Last-Event-ID` when given); reads the head.
    /// Reads wait at most `poll` each ([`EventStream::poll`] answers nothing then).
    pub fn open(
        addr: std::net::SocketAddr,
        token: &str,
        last_event_id: Option<i64>,
        poll: std::time::Duration,
    ) -> std::io::Result<EventStream> {
        use std::io::{Read, Write};
        let mut socket = std::net::TcpStream::connect_timeout(&addr, Self::CONNECT)?;
        socket.set_read_timeout(Some(Self::HEAD))?;
        let mut request =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n");
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = socket.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        };
        let early = head.split_off(end + 4);
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad head {text:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        socket.set_read_timeout(Some(poll))?;
        Ok(EventStream {
            status,
            headers,
            socket,
            chunks: chunked.then(Chunks::default),
            parser: SseParser::new(),
            early,
        })
    }

    const CONNECT: std::time::Duration = std::time::Duration::from_secs(5);
    const HEAD: std::time::Duration = std::time::Duration::from_secs(30);

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What arrived within one poll: complete blocks (none when nothing came). `Err` when
    /// the connection ended or failed.
    pub fn poll(&mut self) -> std::io::Result<Vec<SseItem>> {
        use std::io::Read;
        let mut bytes = std::mem::take(&mut self.early);
        let mut buf = [0u8; 16 * 1024];
        if bytes.is_empty() {
            match self.socket.read(&mut buf) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e),
            }
        }
        let body = match &mut self.chunks {
            Some(chunks) => chunks.push(&bytes)?,
            None => bytes,
        };
        Ok(self.parser.push(&body))
    }

    /// The socket, for what a test does to it directly (buffer sizes, its address).
    pub fn socket(&self) -> &std::net::TcpStream {
        &self.socket
    }
}

/// A chunked body decoded as it arrives.
#[derive(Default)]
struct Chunks {
    pending: Vec<u8>,
    /// Bytes left of the current chunk's data, then its CRLF.
    left: usize,
    ended: bool,
}

impl Chunks {
    fn push(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.ended {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if self.left > 0 {
                // Data, then the CRLF after it (counted in `left`).
                let take = self.left.min(self.pending.len());
                let data_left = self.left.saturating_sub(2);
                let data = take.min(data_left);
                out.extend_from_slice(&self.pending[..data]);
                self.pending.drain(..take);
                self.left -= take;
                if self.left > 0 {
                    return Ok(out);
                }
                continue;
            }
            let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return Ok(out);
            };
            let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending.drain(..end + 2);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                self.ended = true;
                return if out.is_empty() {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                } else {
                    Ok(out)
                };
            }
            self.left = size + 2;
        }
    }
}
