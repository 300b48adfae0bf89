//! HTTP/1.1 as bytes on the wire: requests written out by hand (so a test can also send
//! what no HTTP library would), responses read back with every read bounded (head size,
//! header count, body size) and framed by `Content-Length`, chunked encoding, or the end
//! of the connection.

use serde_json::Value;
use std::fmt::Display;
use std::io::{self, BufRead, Read};

const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 1 << 30;
/// How much of a body a failure message shows.
const SHOWN_BODY: usize = 4096;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {}: body is not JSON ({err}): {}",
                self.status,
                self.shown_body()
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, showing the body when it differs. An error (4xx, 5xx) must also
    /// be postd's problem+json: `Content-Type: application/problem+json`, a body whose
    /// `status` is the response's, `type` `about:blank`, and a `title` and `detail`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Response {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.shown_body()
        );
        if status >= 400 {
            assert_eq!(
                self.header("Content-Type"),
                Some("application/problem+json"),
                "{}",
                self.text()
            );
            let problem = self.json();
            assert_eq!(problem["status"], status, "{problem}");
            assert_eq!(problem["type"], "about:blank", "{problem}");
            assert!(
                problem["title"].is_string() && problem["detail"].is_string(),
                "{problem}"
            );
        }
        self
    }

    /// An answer read until the server closed the connection. Its body is everything after
    /// the head (so a HEAD answer that wrongly carries a body shows it), de-chunked when it
    /// is chunked. `None` when the head is malformed or a chunked body was cut short.
    pub fn parse(answer: &[u8]) -> Option<Response> {
        let mut rest = answer;
        let (status, headers) = read_head(&mut rest).ok()?;
        let body = if is_chunked(&headers) {
            read_chunked(&mut rest).ok()?
        } else {
            rest.to_vec()
        };
        Some(Response {
            status,
            headers,
            body,
        })
    }

    fn shown_body(&self) -> String {
        let shown = String::from_utf8_lossy(&self.body[..self.body.len().min(SHOWN_BODY)]);
        if self.body.len() > SHOWN_BODY {
            format!("{shown}… ({} bytes)", self.body.len())
        } else {
            shown.into_owned()
        }
    }
}

/// A request line, `Host`, then `headers` in order, then `Content-Length` when
/// `content_length` is given; ends with the blank line, so the body (if any) follows.
pub fn request_head(
    method: &str,
    target: &str,
    host: impl Display,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = content_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A whole request: [`request_head`] and the body.
pub fn request(
    method: &str,
    target: &str,
    host: impl Display,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut bytes = request_head(method, target, host, headers, body.map(<[u8]>::len)).into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// Reads one response to a `method` request, framed as the server framed it, skipping
/// interim 1xx answers. `started` is set once a status line has arrived (a client may
/// retry a request on a stale connection only when nothing came back).
pub(crate) fn read_response(
    reader: &mut impl BufRead,
    method: &str,
    started: &mut bool,
) -> io::Result<Response> {
    // Skip interim 1xx answers (bounded).
    for _ in 0..4 {
        let (status, headers) = read_head(reader)?;
        *started = true;
        if (100..200).contains(&status) {
            continue;
        }
        let body = read_body(reader, method, status, &headers)?;
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
    Err(bad("too many interim responses"))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
}

fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = reader
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

fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(reader, &mut budget)?;
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
        let line = read_line(reader, &mut budget)?;
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

fn read_body(
    reader: &mut impl BufRead,
    method: &str,
    status: u16,
    headers: &[(String, String)],
) -> io::Result<Vec<u8>> {
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(Vec::new());
    }
    if is_chunked(headers) {
        return read_chunked(reader);
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
            reader.read_exact(&mut body)?;
            Ok(body)
        }
        None => {
            // No framing: the body runs to the end of the connection.
            let mut body = Vec::new();
            reader
                .by_ref()
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return Err(bad("response body too large"));
            }
            Ok(body)
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let mut line_budget = 1024;
        let line = read_line(reader, &mut line_budget)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            loop {
                if read_line(reader, &mut budget)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKED: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
        4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n";

    #[test]
    fn a_request_is_head_then_body() {
        let bytes = request(
            "POST",
            "/posts",
            "127.0.0.1:1",
            &[("Connection", "close")],
            Some(b"{}"),
        );
        assert_eq!(
            bytes,
            b"POST /posts HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\
              Content-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn answers_read_until_close_are_de_chunked_and_must_be_complete() {
        let resp = Response::parse(CHUNKED).expect("complete");
        assert_eq!((resp.status, resp.json()["a"].as_i64()), (201, Some(1)));
        for cut in [CHUNKED.len() - 5, CHUNKED.len() - 10, 20] {
            assert!(Response::parse(&CHUNKED[..cut]).is_none(), "cut at {cut}");
        }
        // Without chunking the body is whatever followed the head, even after a HEAD.
        let head =
            Response::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsurprise").unwrap();
        assert_eq!(head.body, b"surprise");
    }

    #[test]
    fn framed_reads_stop_at_the_frame() {
        let mut two = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n".as_slice();
        let first = read_response(&mut two, "GET", &mut false).unwrap();
        assert_eq!((first.status, first.text().as_str()), (200, "ok"));
        assert_eq!(
            read_response(&mut two, "GET", &mut false).unwrap().status,
            204
        );
        let mut cut = &CHUNKED[..CHUNKED.len() - 2];
        assert!(read_response(&mut cut, "POST", &mut false).is_err());
    }
}
