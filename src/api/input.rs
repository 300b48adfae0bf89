//! Everything that turns request bytes into checked values: the body (415/413/400, its
//! JSON syntax checked to the end; objects are read by `crate::json`) and query
//! parameters (422). Cursors are in `paging`.

use super::problem::ApiError;
use crate::model::ItemError;
use crate::text::clip_marked;
use rouille::Request;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

/// Time any body gets before the rate rule applies.
const BODY_GRACE: Duration = Duration::from_secs(10);
/// Slowest acceptable upload after the grace period, bytes per second.
const BODY_MIN_RATE: f64 = 64.0 * 1024.0;

fn body_too_slow() -> ApiError {
    ApiError::new(408, "the request body arrived too slowly")
        .with_header("Connection", "close".into())
}

/// Reads a JSON request body of at most `limit` bytes without ever holding more than
/// `limit` bytes: a declared length over the limit is refused before reading, and an
/// undeclared (chunked) one is cut off at the first chunk that passes it. The body is
/// read to its end and checked to be JSON (400 otherwise) before anything looks at its
/// shape, so 400 and 422 never depend on where in the body the problem stands.
pub fn read_json_body(request: &Request, limit: usize) -> Result<String, ApiError> {
    let content_type = request.header("Content-Type").unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            "the body must be sent with Content-Type: application/json",
        ));
    }
    let too_large = || {
        ApiError::new(
            413,
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let mut declared = None;
    if let Some(text) = request.header("Content-Length") {
        // Digits only: `+2` or ` 2` would be read differently by another parser on the way.
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        match text.parse::<u64>() {
            Ok(len) if digits && len > limit as u64 => return Err(too_large()),
            Ok(len) if digits => declared = Some(len as usize),
            _ => {
                return Err(ApiError::bad_request(
                    "the Content-Length header is not a number",
                ))
            }
        }
    }
    let Some(mut body) = request.data() else {
        return Err(ApiError::bad_request(
            "the request body was already consumed",
        ));
    };
    // Sized once from the declared length: growing by doubling held up to twice the body.
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    let mut chunk = [0u8; 64 * 1024];
    let started = Instant::now();
    loop {
        let read = match body.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(body_too_slow());
            }
            Err(err) => {
                return Err(ApiError::bad_request(format!(
                    "the body could not be read: {err}"
                )))
            }
        };
        if bytes.len() + read > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk[..read]);
        // A worker thread waits while the body arrives; a client that trickles it is cut
        // off once it falls below BODY_MIN_RATE after a grace period.
        let allowed = BODY_GRACE + Duration::from_secs_f64(bytes.len() as f64 / BODY_MIN_RATE);
        if started.elapsed() > allowed {
            return Err(body_too_slow());
        }
    }
    // The transport's copy of the body goes now, not when the request does.
    drop(body);
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request needs a JSON body"));
    }
    crate::json::syntax::check(&bytes)
        .map_err(|err| ApiError::bad_request(format!("the body is not valid JSON: {err}")))?;
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))
}

/// A positive 64-bit id from a path segment; anything else means "no such resource".
pub fn path_id(segment: &str) -> Option<i64> {
    if segment.is_empty() || segment.len() > 19 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Parsed query string. Each known parameter may appear once; unknown ones are ignored.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(request: &Request) -> Result<Query, ApiError> {
        let raw = request.raw_query_string();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in raw.split('&').filter(|part| !part.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let key = percent_decode(key).ok_or_else(|| malformed_query("a parameter name"))?;
            let value = percent_decode(value).ok_or_else(|| malformed_query(&key))?;
            pairs.push((key, value));
        }
        Ok(Query { pairs })
    }

    pub fn get(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut found = self.pairs.iter().filter(|(key, _)| key == name);
        let first = found.next().map(|(_, value)| value.as_str());
        if found.next().is_some() {
            return Err(query_error(name, "may be given only once"));
        }
        Ok(first)
    }

    /// `limit`: 1..=100, default 20.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.get("limit")? {
            None => Ok(20),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(query_error("limit", "must be an integer from 1 to 100")),
            },
        }
    }

    pub fn positive_id(&self, name: &'static str) -> Result<Option<i64>, ApiError> {
        match self.get(name)? {
            None => Ok(None),
            Some(text) => path_id(text)
                .map(Some)
                .ok_or_else(|| query_error(name, "must be a positive integer id")),
        }
    }

    pub fn flag(&self, name: &'static str) -> Result<bool, ApiError> {
        match self.get(name)? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(query_error(name, "must be true or false")),
        }
    }
}

fn malformed_query(name: &str) -> ApiError {
    query_error_owned(name, "is not valid percent-encoded UTF-8")
}

pub fn query_error(name: &'static str, message: &str) -> ApiError {
    ApiError::invalid(vec![ItemError::field(name, message)])
}

fn query_error_owned(name: &str, message: &str) -> ApiError {
    ApiError::invalid(vec![ItemError::whole(format!(
        "query parameter '{}' {message}",
        clip_marked(name, 64)
    ))])
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_strict() {
        assert_eq!(path_id("42"), Some(42));
        for bad in ["0", "-1", "+1", "abc", "", "9223372036854775808", "1e3"] {
            assert_eq!(path_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
