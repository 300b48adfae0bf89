//! postd patch: a strict decoder of chunked request bodies (RFC 9112 §7.1), in place of
//! `chunked_transfer::Decoder`, which read a chunk size with `trim()` and
//! `from_str_radix` (so ` 2 ` and `+2` were sizes), took a connection closed in the middle
//! of a chunk for the end of the body, and refused trailer fields. A front proxy that
//! reads such framing differently from us is how requests are smuggled, so anything but
//! the grammar is an `InvalidData` error (answered 400):
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size   = 1*HEXDIG            ; no sign, no spaces
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! Chunk extensions (after `;`, up to the line's end) and trailer fields are read and
//! ignored. Lines are at most `MAX_LINE` bytes.

use std::io::{Error, ErrorKind, Read, Result};

/// Longest chunk-size line or trailer line.
const MAX_LINE: usize = 4096;
/// Most trailer bytes in all.
const MAX_TRAILERS: usize = 16 * 1024;

enum State {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

pub struct ChunkedDecoder<R> {
    source: R,
    state: State,
}

fn malformed(what: &'static str) -> Error {
    Error::new(ErrorKind::InvalidData, what)
}

impl<R: Read> ChunkedDecoder<R> {
    pub fn new(source: R) -> ChunkedDecoder<R> {
        ChunkedDecoder {
            source,
            state: State::Size,
        }
    }

    fn byte(&mut self) -> Result<u8> {
        let mut one = [0u8; 1];
        loop {
            match self.source.read(&mut one) {
                Ok(0) => {
                    return Err(Error::new(
                        ErrorKind::UnexpectedEof,
                        "the connection closed inside a chunked body",
                    ))
                }
                Ok(_) => return Ok(one[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One line up to CRLF, without it. A CR not followed by LF, or an LF without CR, is
    /// malformed.
    fn line(&mut self, line: &mut Vec<u8>) -> Result<()> {
        line.clear();
        loop {
            match self.byte()? {
                b'\r' => {
                    return match self.byte()? {
                        b'\n' => Ok(()),
                        _ => Err(malformed("a bare CR in a chunked body")),
                    }
                }
                b'\n' => return Err(malformed("a bare LF in a chunked body")),
                other => {
                    if line.len() == MAX_LINE {
                        return Err(malformed("a chunk line is too long"));
                    }
                    line.push(other);
                }
            }
        }
    }

    fn chunk_size(&mut self) -> Result<u64> {
        let mut line = Vec::new();
        self.line(&mut line)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let (size, extension) = line.split_at(digits);
        if digits == 0 || !(extension.is_empty() || extension[0] == b';') {
            return Err(malformed("a chunk size is not hexadecimal digits"));
        }
        let mut value: u64 = 0;
        for digit in size {
            let digit = (*digit as char).to_digit(16).unwrap_or(0) as u64;
            value = value
                .checked_mul(16)
                .and_then(|v| v.checked_add(digit))
                .ok_or_else(|| malformed("a chunk size is too large"))?;
        }
        Ok(value)
    }

    fn skip_trailers(&mut self) -> Result<()> {
        let mut line = Vec::new();
        let mut total = 0;
        loop {
            self.line(&mut line)?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len();
            if total > MAX_TRAILERS {
                return Err(malformed("the trailer fields are too large"));
            }
        }
    }

    fn crlf(&mut self) -> Result<()> {
        match (self.byte()?, self.byte()?) {
            (b'\r', b'\n') => Ok(()),
            _ => Err(malformed("a chunk is longer than its size")),
        }
    }
}

impl<R: Read> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Size => {
                    self.state = match self.chunk_size()? {
                        0 => State::Trailers,
                        size => State::Data(size),
                    };
                }
                State::Trailers => {
                    self.skip_trailers()?;
                    self.state = State::Done;
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(0);
                    }
                    let want = if left < buf.len() as u64 {
                        left as usize
                    } else {
                        buf.len()
                    };
                    let read = match self.source.read(&mut buf[..want]) {
                        Ok(0) => {
                            return Err(Error::new(
                                ErrorKind::UnexpectedEof,
                                "the connection closed inside a chunk",
                            ))
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    let left = left - read as u64;
                    if left == 0 {
                        self.crlf()?;
                        self.state = State::Size;
                    } else {
                        self.state = State::Data(left);
                    }
                    return Ok(read);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        ChunkedDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    fn kind(bytes: &[u8]) -> ErrorKind {
        decode(bytes).expect_err("refused").kind()
    }

    #[test]
    fn reads_the_grammar() {
        assert_eq!(
            decode(b"3\r\nhel\r\nB\r\nlo world!!!\r\n0\r\n\r\n").unwrap(),
            b"hello world!!!"
        );
        assert_eq!(decode(b"2;name=value\r\nhi\r\n000\r\n\r\n").unwrap(), b"hi");
        assert_eq!(
            decode(b"2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n").unwrap(),
            b"hi"
        );
        assert_eq!(decode(b"0\r\n\r\n").unwrap(), b"");
    }

    #[test]
    fn refuses_what_another_parser_could_read_otherwise() {
        for bad in [
            &b"+2\r\nhi\r\n0\r\n\r\n"[..],
            b" 2 \r\nhi\r\n0\r\n\r\n",
            b"2 \r\nhi\r\n0\r\n\r\n",
            b"-2\r\nhi\r\n0\r\n\r\n",
            b"0x2\r\nhi\r\n0\r\n\r\n",
            b"\r\nhi\r\n0\r\n\r\n",
            b"2\nhi\r\n0\r\n\r\n",
            b"2\r\nhix\r\n0\r\n\r\n",
            b"2\r\nhi\n0\r\n\r\n",
            b"2\r\nhi\r\n0\r\n\r\r\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(
                kind(bad),
                ErrorKind::InvalidData,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A body cut short is not the end of a body.
        assert_eq!(kind(b"5\r\nab"), ErrorKind::UnexpectedEof);
        assert_eq!(kind(b"2\r\nhi\r\n"), ErrorKind::UnexpectedEof);
    }
}
