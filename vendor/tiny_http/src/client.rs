use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::settings::{OpenConnection, Transport};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Header, Request};

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // postd patch: the server's settings and budget.
    transport: Arc<Transport>,

    // postd patch: what this connection's requests share with it (closing, the writer).
    state: Arc<ConnState>,
}

/// postd patch: the part of a connection its requests share: whether a response has
/// closed it, and the writer all its responses go through.
pub(crate) struct ConnState {
    closing: AtomicBool,
    writer: Arc<Mutex<BufWriter<RefinedTcpStream>>>,
    // Counts the connection as open (the connection cap) until the last holder is gone.
    _open: Option<OpenConnection>,
}

impl ConnState {
    /// True once a response that closes the connection has been written.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Sends what was written and ends the sending direction, so the client reads EOF
    /// right after the last response; the receiving direction stays open for `linger`.
    pub(crate) fn close_write(&self) {
        self.closing.store(true, Ordering::Release);
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.flush().ok();
        writer.get_mut().shutdown_write();
    }

    /// A response could not be written (the client stopped reading and the socket's
    /// write timeout ran out): the connection is of no more use, its framing is broken.
    /// Both directions end now, what waits in the buffer is not flushed (that would wait
    /// out the timeout again), so the connection's thread and socket go at once.
    pub(crate) fn abort(&self) {
        self.closing.store(true, Ordering::Release);
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.get_mut().shutdown_both();
    }

    fn set_read_timeout(&self, timeout: Duration) {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.get_ref().set_read_timeout(Some(timeout));
    }
}

/// postd patch: how long and how much a closing connection keeps reading (and discarding)
/// what the client still sends. Closing a socket with unread data makes the kernel send
/// a reset instead of a clean end: a client still writing (a pipelined request, the rest
/// of a refused body) then fails with "connection reset" before it reads the answer, and
/// the answer itself is discarded if it was still in flight.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Error that can happen when reading a request.
// postd patch: bounds on what one request head may cost. Without them a client could
// grow a header line without limit (memory) or trickle bytes forever (a thread).
/// Longest request line or header line (room for long query strings, such as cursors).
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most header lines in one request.
const MAX_HEADERS: usize = 100;
/// Time allowed for a whole request head once its first byte has arrived.
const HEAD_DEADLINE: coarsetime::Duration = coarsetime::Duration::from_secs(10);

/// postd patch: errors answered before the application sees the request still follow
/// the application's rule that every error is an RFC 9457 problem+json body. The
/// connection always closes after one (`Connection: close`); a 503 asks the client to
/// come back in a second (`Retry-After: 1`).
pub(crate) fn problem(
    status: u16,
    title: &str,
    detail: &str,
) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!(
        r#"{{"type":"about:blank","title":"{title}","status":{status},"detail":"{detail}"}}"#
    );
    let mut response = crate::Response::from_data(body.into_bytes()).with_status_code(status);
    let mut headers = vec![
        ("Content-Type", "application/problem+json"),
        ("Connection", "close"),
    ];
    if status == 503 {
        headers.push(("Retry-After", "1"));
    }
    for (field, value) in headers {
        if let Ok(header) = Header::from_bytes(field.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    response
}

/// postd patch: a refusal as bytes, for the accept thread, which answers connections it
/// does not start a thread for.
pub(crate) fn refusal_bytes(
    transport: &Transport,
    status: u16,
    title: &str,
    detail: &str,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    problem(status, title, detail)
        .raw_print_framed(
            &mut bytes,
            HTTPVersion(1, 1),
            &[],
            false,
            None,
            &transport.framing(true),
        )
        .ok();
    bytes
}

#[derive(Debug)]
enum ReadError {
    /// postd patch: the connection went quiet or closed between requests (close silently).
    Idle,
    /// The socket failed or closed mid-request (close silently: nobody to answer).
    ReadIoError(IoError),
    /// postd patch: answer this problem and close, since where the next request would
    /// start is unknown. (status, title, detail)
    Refuse(u16, &'static str, &'static str),
}

const HEAD_TOO_LARGE: ReadError = ReadError::Refuse(
    431,
    "Request Header Fields Too Large",
    "the request line or headers are too large",
);
const HEAD_TOO_SLOW: ReadError = ReadError::Refuse(
    408,
    "Request Timeout",
    "the request head arrived too slowly",
);

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    // postd patch: with the server's transport settings, and the connection's place
    // under the connection cap (released when the connection and its requests are gone).
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        transport: Arc<Transport>,
        open: Option<OpenConnection>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();
        let sink = SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket));
        let state = Arc::new(ConnState {
            closing: AtomicBool::new(false),
            writer: sink.shared(),
            _open: open,
        });

        ClientConnection {
            source,
            sink,
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            transport,
            state,
        }
    }

    /// postd patch: ends a connection that closes: waits until every response promised on
    /// it has been written, ends the sending direction, then reads and discards what the
    /// client still sends until it closes too, for at most LINGER_TIME and LINGER_BYTES.
    fn linger(&mut self) {
        if let Some(mut last) = self.sink.next() {
            // A writer's first flush waits for every earlier response to be written.
            last.flush().ok();
            self.state.close_write();
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut drained = 0;
        let mut scratch = [0u8; 8 * 1024];
        while drained < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.state.set_read_timeout(left);
            match self.next_header_source.read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    /// postd patch: answers a refusal (after any earlier responses) and closes.
    fn refuse(&mut self, status: u16, title: &str, detail: &str) {
        if let Some(mut writer) = self.sink.next() {
            problem(status, title, detail)
                .raw_print_framed(
                    &mut writer,
                    HTTPVersion(1, 1),
                    &[],
                    false,
                    None,
                    &self.transport.framing(true),
                )
                .ok();
            writer.flush().ok();
            self.state.close_write();
        }
        self.linger();
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    // postd patch: the line is taken from the buffered reader a chunk at a time (stock
    // tiny_http made a `read` call per byte through two wrappers, a sixth of a small
    // request's CPU time). A bare `\n` stays part of the line, as it did. The deadline is
    // checked for every chunk, so a head trickled in byte by byte is still cut off on time;
    // coarsetime reads the kernel's coarse clock, without a system call and at a fraction
    // of Instant::now's cost (which was 3% of a small request's CPU time).
    fn read_next_line(
        &mut self,
        deadline: &mut Option<coarsetime::Instant>,
    ) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::new();

        loop {
            let (used, line_ended) = {
                let chunk = match self.next_header_source.fill_buf() {
                    Ok(chunk) if !chunk.is_empty() => chunk,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // Nothing of this request yet: an idle keep-alive connection timing out
                    // or closing is not an error worth answering.
                    Ok(_) | Err(_) if deadline.is_none() && buf.is_empty() => {
                        return Err(ReadError::Idle)
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        return Err(HEAD_TOO_SLOW)
                    }
                    Err(e) => return Err(ReadError::ReadIoError(e)),
                    Ok(_) => {
                        return Err(ReadError::ReadIoError(IoError::new(
                            ErrorKind::ConnectionAborted,
                            "Unexpected EOF",
                        )))
                    }
                };
                let ends =
                    *deadline.get_or_insert_with(|| coarsetime::Instant::now() + HEAD_DEADLINE);
                if coarsetime::Instant::now() > ends {
                    return Err(HEAD_TOO_SLOW);
                }
                // Never more than the line may still hold, so a long line costs no more
                // memory than the limit.
                let room = (MAX_LINE_BYTES + 1).saturating_sub(buf.len());
                let chunk = &chunk[..chunk.len().min(room)];
                match chunk.iter().position(|&byte| byte == b'\n') {
                    Some(newline) => {
                        buf.extend_from_slice(&chunk[..newline]);
                        let line_ended = buf.last() == Some(&b'\r');
                        if !line_ended {
                            buf.push(b'\n');
                        }
                        (newline + 1, line_ended)
                    }
                    None => {
                        buf.extend_from_slice(chunk);
                        (chunk.len(), false)
                    }
                }
            };
            self.next_header_source.consume(used);

            // The `\r` before the `\n` counts; the `\n` itself does not.
            if buf.len() > MAX_LINE_BYTES {
                return Err(HEAD_TOO_LARGE);
            }
            if line_ended {
                buf.pop(); // removing the '\r'
                           // postd patch: a CR that does not end a line is refused; another parser
                           // on the way may end the line there.
                if buf.contains(&b'\r') {
                    return Err(ReadError::Refuse(
                        400,
                        "Bad Request",
                        "a bare CR in the request head",
                    ));
                }
                return AsciiString::from_ascii(buf).map_err(|_| {
                    ReadError::Refuse(400, "Bad Request", "the request head is not valid ASCII")
                });
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let (method, path, version, headers) = {
            // reading the request line
            let mut deadline = None;
            let (method, path, version) = {
                let line = self.read_next_line(&mut deadline)?;

                let (method, path, version) = parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?;
                // postd patch: refused here, before this request takes a response writer
                // (the stock 505 answer waited for that writer: a deadlock per request).
                // 400 rather than 505: postd answers a client's mistake with a 4xx, always.
                if version > (1, 1) {
                    return Err(ReadError::Refuse(
                        400,
                        "Bad Request",
                        "postd speaks HTTP/1.0 and HTTP/1.1 only",
                    ));
                }
                (method, path, version)
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut deadline)?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() >= MAX_HEADERS {
                        return Err(HEAD_TOO_LARGE);
                    }
                    // postd patch: not trimmed at the start, so that a line starting with
                    // whitespace (obsolete line folding, RFC 9112 5.2) is refused rather
                    // than read as a header of its own; a field name must be a token.
                    headers.push(match FromStr::from_str(line.as_str().trim_end()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => {
                            return Err(ReadError::Refuse(
                                400,
                                "Bad Request",
                                "a header line is malformed",
                            ))
                        }
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        // postd patch: a peer that reset before its address was read has none (this
        // unwrapped, panicking the connection's thread).
        let remote_addr = self.remote_addr.as_ref().ok().copied().flatten();
        let mut request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            remote_addr,
            data_source,
            writer,
            &self.transport,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e)
                    if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidData) =>
                {
                    ReadError::Refuse(400, "Bad Request", "the chunked request body is malformed")
                }
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::BodyTooSlow => ReadError::Refuse(
                    408,
                    "Request Timeout",
                    "the request body arrived too slowly",
                ),
                request::RequestCreationError::ExpectationFailed => ReadError::Refuse(
                    417,
                    "Expectation Failed",
                    "only Expect: 100-continue is understood",
                ),
                request::RequestCreationError::Refused(status, title, detail) => {
                    ReadError::Refuse(status, title, detail)
                }
                request::RequestCreationError::Busy => ReadError::Refuse(
                    503,
                    "Service Unavailable",
                    "the server is receiving too many request bodies; try again shortly",
                ),
            }
        })?;
        request.conn = Some(self.state.clone());

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            // postd patch: wait for the last response, then close without a reset.
            self.linger();
            return None;
        }

        let rq = match self.read() {
            // postd patch: every refusal is answered with problem+json, then the
            // connection closes; failures of the socket itself just close it.
            Err(ReadError::Refuse(status, title, detail)) => {
                self.refuse(status, title, detail);
                return None;
            }
            Err(ReadError::Idle) | Err(ReadError::ReadIoError(_)) => return None,

            Ok(rq) => rq,
        };

        // postd patch: an earlier response (pipelined before this request) closed the
        // connection, and said so; this request will not be answered.
        if self.state.is_closing() {
            rq.discard();
            self.linger();
            return None;
        }

        let mut rq = rq;

        // postd patch: a body left unread makes the rest of the stream unparseable.
        if rq.abandons_body {
            self.no_more_requests = true;
        }

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            // postd patch: an HTTP/1.0 client keeps the connection only if told it may.
            Some(_) if *rq.http_version() == HTTPVersion(1, 0) => rq.keep_alive = true,
            _ => (),
        };

        // postd patch: the response to the last request says that the connection closes
        // (unless the application upgrades the connection instead).
        rq.closes_connection = self.no_more_requests;

        // returning the request
        Some(rq)
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => {
            return Err(ReadError::Refuse(
                400,
                "Bad Request",
                "the request line is malformed",
            ))
        }
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::Refuse(
            400,
            "Bad Request",
            "the request line is malformed",
        ))
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
