//! Everything that turns request bytes into checked values: the body (415/413/400),
//! JSON objects (400/422, unknown and duplicate fields refused) and query parameters
//! (422). Cursors are in `paging`.

use super::problem::ApiError;
use crate::model::ItemError;
use rouille::Request;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
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
/// undeclared (chunked) one is cut off at the first chunk that passes it.
pub fn read_json_body(request: &Request, limit: usize) -> Result<Vec<u8>, ApiError> {
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
    if let Some(declared) = request.header("Content-Length") {
        match declared.trim().parse::<u64>() {
            Ok(len) if len > limit as u64 => return Err(too_large()),
            Ok(_) => {}
            Err(_) => {
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
    let mut bytes = Vec::new();
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
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request needs a JSON body"));
    }
    Ok(bytes)
}

/// A JSON object whose keys were all distinct. `serde_json::Map` would keep the last of
/// two equal keys silently; we refuse the document instead, so what the client meant is
/// never guessed.
pub struct JsonObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonObject, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::new();
                // A set, not a scan of `fields`: one lookup per key keeps an object of N
                // keys linear (the scan made 50,000 unknown keys cost 2.6 s of CPU).
                let mut seen: HashSet<String> = HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate field '{key}'")));
                    }
                    let value = map.next_value::<Value>()?;
                    fields.push((key, value));
                }
                Ok(JsonObject(fields))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Maps a serde_json failure onto the contract: syntax (and bad UTF-8) is 400, a
/// well-formed document of the wrong shape is 422.
pub fn json_error(err: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => {
            ApiError::invalid(vec![ItemError::whole(strip_position(&err.to_string()))])
        }
        // A number too large for a double is valid JSON of an unusable value: 422, not 400.
        Category::Syntax if err.to_string().starts_with("number out of range") => {
            ApiError::invalid(vec![ItemError::whole(strip_position(&err.to_string()))])
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("the body is not valid JSON: {err}"))
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

pub fn parse_object(bytes: &[u8]) -> Result<JsonObject, ApiError> {
    serde_json::from_slice::<JsonObject>(bytes).map_err(json_error)
}

/// Takes typed fields out of a JSON object, collecting every problem rather than stopping
/// at the first. `finish` reports the fields nobody asked for.
pub struct Fields {
    remaining: Vec<(String, Value)>,
    pub errors: Vec<ItemError>,
}

impl Fields {
    pub fn new(object: JsonObject) -> Fields {
        Fields {
            remaining: object.0,
            errors: Vec::new(),
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.remaining.iter().position(|(key, _)| key == name)?;
        // `remove`, not `swap_remove`: the unknown fields left behind keep their order, so
        // the ones a 422 names are the first ones sent.
        Some(self.remaining.remove(at).1)
    }

    pub fn error(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push(ItemError::field(field, message));
    }

    /// A string field that must be present; `None` (reported) when absent or not a string.
    pub fn required_string(&mut self, name: &'static str) -> Option<String> {
        if self.remaining.iter().all(|(key, _)| key != name) {
            self.error(name, "is required");
            return None;
        }
        self.optional_string(name)
    }

    /// A string field that may be absent; `None` when absent or (reported) not a string.
    pub fn optional_string(&mut self, name: &'static str) -> Option<String> {
        match self.take(name)? {
            Value::String(text) => Some(text),
            _ => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    /// A string field checked by `parse`; a value that breaks its rule is reported.
    pub fn parsed<T>(
        &mut self,
        name: &'static str,
        text: Option<String>,
        parse: impl FnOnce(String) -> Result<T, String>,
    ) -> Option<T> {
        match parse(text?) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// A boolean field that may be absent; `None` when absent or (reported) not a boolean.
    pub fn optional_bool(&mut self, name: &'static str) -> Option<bool> {
        match self.take(name)? {
            Value::Bool(value) => Some(value),
            _ => {
                self.error(name, "must be true or false");
                None
            }
        }
    }

    /// A required positive id field.
    pub fn take_id(&mut self, name: &'static str) -> Result<i64, &'static str> {
        match self.take(name) {
            Some(value) => json_id(&value),
            None => Err("is required"),
        }
    }

    /// Ends reading: every field not taken is an error, since unknown fields are refused.
    /// At most `MAX_UNKNOWN_LISTED` of them are named, so the answer stays small whatever
    /// the request held (a 429 KB body of unknown keys was answered with 1.47 MB).
    pub fn finish(mut self) -> Vec<ItemError> {
        let unknown = std::mem::take(&mut self.remaining);
        for (key, _) in unknown.iter().take(MAX_UNKNOWN_LISTED) {
            self.errors.push(ItemError::whole(format!(
                "unknown field '{}'",
                clip_marked(key, 64)
            )));
        }
        self.errors
    }
}

/// Unknown fields named per object (per bulk item) in a 422.
pub const MAX_UNKNOWN_LISTED: usize = 20;

/// `text` cut to at most `max_chars` characters.
pub fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// `clip` that marks a cut with `…`, for text quoted back to the client.
fn clip_marked(text: &str, max_chars: usize) -> String {
    let clipped = clip(text, max_chars);
    if clipped.len() < text.len() {
        format!("{clipped}…")
    } else {
        clipped.to_owned()
    }
}

/// A positive 64-bit id from JSON, or why not.
/// JSON has one number type: `153.0` is the integer 153 (as JSON Schema's `integer` says),
/// accepted up to 2^53, where every whole float is exact.
pub fn json_id(value: &Value) -> Result<i64, &'static str> {
    const EXACT_FLOAT_LIMIT: f64 = 9_007_199_254_740_992.0;
    let whole_float = || {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (1.0..=EXACT_FLOAT_LIMIT).contains(f))
            .map(|f| f as i64)
    };
    match value.as_i64().or_else(whole_float) {
        Some(id) if id > 0 => Ok(id),
        _ => Err("must be a positive integer id"),
    }
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
    fn duplicate_keys_are_refused_as_unprocessable() {
        let err = parse_object(br#"{"a":1,"a":2}"#).err().unwrap();
        assert_eq!(err.status, 422);
        assert_eq!(parse_object(br#"{"a":1"#).err().unwrap().status, 400);
        assert_eq!(parse_object(b"[1]").err().unwrap().status, 422);
        assert_eq!(parse_object(b"\"\xff\"").err().unwrap().status, 400);
        assert_eq!(
            parse_object(br#"{"username":1e400}"#).err().unwrap().status,
            422
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(parse_object(deep.as_bytes()).err().unwrap().status, 422);
    }

    #[test]
    fn json_ids_accept_whole_floats_only() {
        let id = |text: &str| json_id(&serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(id("153"), Ok(153));
        assert_eq!(id("153.0"), Ok(153));
        assert_eq!(id("3742163326107030.0"), Ok(3_742_163_326_107_030));
        for bad in ["153.5", "0", "-1", "0.0", "1e300", "\"7\"", "null", "true"] {
            assert!(id(bad).is_err(), "{bad}");
        }
    }

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
