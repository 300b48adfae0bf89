//! JSON objects read strictly and at a cost close to their size, for request bodies and
//! the lines of `postd import`: unknown and duplicate fields are refused, never guessed
//! at, and nothing is built that the reader does not ask for.
//!
//! A reader names the fields it knows. Their values are kept as slices of the text
//! (`&RawValue`) and turned into the type asked for only when taken; the values of
//! unknown fields are skipped, not built, and once a document is known to be refused
//! (an unknown field) only the first [`MAX_UNKNOWN_LISTED`] names are kept. A 16 MiB
//! object of 1.6 million unknown keys, or a known field holding an array of 8 million
//! numbers, costs the memory of its text and a few kilobytes (it cost 270 to 360 MB when
//! every object was built whole as a `serde_json::Value`).
//!
//! Whether a text is JSON at all is decided first, over the whole text ([`syntax`]), so a
//! malformed document is malformed (400) even when its shape is wrong from its first
//! byte on (422).

pub mod post;
pub mod syntax;

use crate::model::ItemError;
use crate::text::clip_marked;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

pub use syntax::Malformed;

/// Unknown fields named per object (per bulk item) in a refusal.
pub const MAX_UNKNOWN_LISTED: usize = 20;

/// Why a document can not be read. Over HTTP: `Malformed` is 400, `Invalid` 422.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON at all: bad UTF-8, bad syntax, a byte order mark, or nesting deeper than
    /// `syntax::MAX_DEPTH`.
    Malformed(String),
    /// JSON of the wrong shape: not an object, or a duplicate field.
    Invalid(Vec<ItemError>),
}

impl From<Malformed> for JsonError {
    fn from(err: Malformed) -> JsonError {
        JsonError::Malformed(err.to_string())
    }
}

/// Reads a whole JSON text that must be an object: the syntax first, then the object.
pub fn object<'a>(text: &'a [u8], known: &'static [&'static str]) -> Result<Fields<'a>, JsonError> {
    syntax::check(text)?;
    // Checked just now; from_utf8 again is a fast scan, and keeps this free of `unsafe`.
    let text =
        std::str::from_utf8(text).map_err(|_| JsonError::Malformed("invalid UTF-8".into()))?;
    object_in(text, known)
}

/// Reads an object from text already checked by [`syntax::check`] (a bulk item, a slice
/// of a checked body).
pub fn object_in<'a>(
    text: &'a str,
    known: &'static [&'static str],
) -> Result<Fields<'a>, JsonError> {
    debug_assert!(known.len() <= 64, "fields are tracked in a 64-bit mask");
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let fields = ObjectSeed { known }
        .deserialize(&mut deserializer)
        .and_then(|fields| deserializer.end().map(|()| fields))
        .map_err(from_serde)?;
    match fields.duplicate {
        Some(name) => Err(JsonError::Invalid(vec![ItemError::whole(format!(
            "duplicate field '{name}'"
        ))])),
        None => Ok(fields),
    }
}

/// serde_json's verdict on text whose syntax was checked: the shape is wrong (422), or
/// the nesting is deeper than it reads (400).
fn from_serde(err: serde_json::Error) -> JsonError {
    let message = err.to_string();
    let message = match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    match err.classify() {
        serde_json::error::Category::Data => JsonError::Invalid(vec![ItemError::whole(message)]),
        _ => JsonError::Malformed(message),
    }
}

struct ObjectSeed {
    known: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Fields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fields<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        let mut seen: u64 = 0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.known.iter().position(|name| *name == key) {
                Some(at) if seen & (1 << at) == 0 => {
                    seen |= 1 << at;
                    let value: &'de RawValue = map.next_value()?;
                    fields.present.push((self.known[at], value));
                }
                Some(at) => {
                    fields.duplicate.get_or_insert(self.known[at]);
                    map.next_value::<IgnoredAny>()?;
                }
                None => {
                    // The answer is a refusal from here on; a few names say why.
                    if fields.unknown.len() < MAX_UNKNOWN_LISTED {
                        let name = clip_marked(&key, 64);
                        if !fields.unknown.contains(&name) {
                            fields.unknown.push(name);
                        }
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// An object key, borrowed from the text unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The fields of one object, taken out by name and type, collecting every problem rather
/// than stopping at the first. `finish` adds the fields nobody knew.
#[derive(Default)]
pub struct Fields<'a> {
    /// Known fields that were sent, with their values as text.
    present: Vec<(&'static str, &'a RawValue)>,
    /// The first unknown field names, clipped.
    unknown: Vec<String>,
    duplicate: Option<&'static str>,
    pub errors: Vec<ItemError>,
}

/// The elements of an array field, as text: at most the first `limit`, and how many there
/// were in all (a request over the limit is refused by its count, without holding it).
pub struct Elements<'a> {
    pub kept: Vec<&'a RawValue>,
    pub total: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, name: &str) -> Option<&'a RawValue> {
        let at = self.present.iter().position(|(key, _)| *key == name)?;
        Some(self.present.swap_remove(at).1)
    }

    /// Takes a field out without reading it: one whose value does not matter.
    pub fn ignore(&mut self, name: &str) {
        self.take(name);
    }

    pub fn has(&self, name: &str) -> bool {
        self.present.iter().any(|(key, _)| *key == name)
    }

    pub fn error(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push(ItemError::field(field, message));
    }

    /// A string field that must be present; `None` (reported) when absent or not a string.
    pub fn required_string(&mut self, name: &'static str) -> Option<String> {
        if !self.has(name) {
            self.error(name, "is required");
            return None;
        }
        self.optional_string(name)
    }

    /// A string field that may be absent; `None` when absent or (reported) not a string.
    pub fn optional_string(&mut self, name: &'static str) -> Option<String> {
        let raw = self.take(name)?;
        // A value of another type is refused at its first byte, never built.
        match serde_json::from_str::<String>(raw.get()) {
            Ok(text) => Some(text),
            Err(_) => {
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

    /// A required array of strings; `None` (reported) when absent or of another shape.
    pub fn required_string_list(&mut self, name: &'static str) -> Option<Vec<String>> {
        let Some(raw) = self.take(name) else {
            self.error(name, "is required");
            return None;
        };
        match serde_json::from_str::<Vec<String>>(raw.get()) {
            // A list longer than any set of scopes is not read further.
            Ok(list) if list.len() <= 16 => Some(list),
            _ => {
                self.error(name, "must be an array of at most 16 strings");
                None
            }
        }
    }

    /// A boolean field that may be absent; `None` when absent or (reported) not a boolean.
    pub fn optional_bool(&mut self, name: &'static str) -> Option<bool> {
        match self.take(name)?.get() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.error(name, "must be true or false");
                None
            }
        }
    }

    /// An object field that may be absent, read with its own known names. Its problems
    /// are reported under `name` (`filter`: "unknown field 'x'"); `None` when absent or
    /// not a fit object.
    pub fn optional_object(
        &mut self,
        name: &'static str,
        known: &'static [&'static str],
    ) -> Option<Fields<'a>> {
        let raw = self.take(name)?;
        if !raw.get().starts_with('{') {
            self.error(name, "must be an object");
            return None;
        }
        match object_in(raw.get(), known) {
            Ok(fields) => Some(fields),
            Err(JsonError::Invalid(errors)) => {
                for error in errors {
                    self.error(name, error.message);
                }
                None
            }
            Err(JsonError::Malformed(message)) => {
                self.error(name, message);
                None
            }
        }
    }

    /// The problems of a nested object read with `optional_object`, each under `name`
    /// with the nested field's own name in front ("author_id must be …").
    pub fn adopt(&mut self, name: &'static str, nested: Fields<'_>) {
        for error in nested.finish() {
            let message = match error.field {
                Some(field) => format!("{field} {}", error.message),
                None => error.message,
            };
            self.error(name, message);
        }
    }

    /// A positive id field that may be absent; `None` when absent or (reported) not one.
    pub fn optional_id(&mut self, name: &'static str) -> Option<i64> {
        match id(self.take(name)?) {
            Ok(id) => Some(id),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// A whole number ≥ 0 that may be absent; `None` when absent or (reported) not one.
    pub fn optional_count(&mut self, name: &'static str) -> Option<u64> {
        let raw = self.take(name)?;
        match raw.get().parse::<u64>() {
            Ok(count) => Some(count),
            Err(_) => {
                self.error(name, "must be a whole number, 0 or more");
                None
            }
        }
    }

    /// A required positive id field.
    pub fn take_id(&mut self, name: &'static str) -> Result<i64, &'static str> {
        match self.take(name) {
            Some(raw) => id(raw),
            None => Err("is required"),
        }
    }

    /// A required array field: its first `limit` elements and their total count.
    pub fn required_array(&mut self, name: &'static str, limit: usize) -> Option<Elements<'a>> {
        let Some(raw) = self.take(name) else {
            self.error(name, "is required");
            return None;
        };
        let mut deserializer = serde_json::Deserializer::from_str(raw.get());
        match deserializer.deserialize_seq(ElementsVisitor { limit }) {
            Ok(elements) => Some(elements),
            Err(_) => {
                self.error(name, "must be an array");
                None
            }
        }
    }

    /// Ends reading: every field not known is an error, since unknown fields are refused.
    /// At most `MAX_UNKNOWN_LISTED` of them are named, so the answer stays small whatever
    /// the request held (a 429 KB body of unknown keys was answered with 1.47 MB).
    pub fn finish(mut self) -> Vec<ItemError> {
        for name in std::mem::take(&mut self.unknown) {
            self.errors
                .push(ItemError::whole(format!("unknown field '{name}'")));
        }
        self.errors
    }
}

struct ElementsVisitor {
    limit: usize,
}

impl<'de> Visitor<'de> for ElementsVisitor {
    type Value = Elements<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Elements<'de>, S::Error> {
        let mut kept = Vec::new();
        let mut total = 0;
        loop {
            let more = if kept.len() < self.limit {
                seq.next_element::<&'de RawValue>()?
                    .map(|element| kept.push(element))
                    .is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(Elements { kept, total });
            }
            total += 1;
        }
    }
}

/// A positive 64-bit id from a JSON value, or why not.
/// JSON has one number type: `153.0` is the integer 153 (as JSON Schema's `integer` says),
/// accepted up to 2^53, where every whole float is exact.
pub fn id(raw: &RawValue) -> Result<i64, &'static str> {
    const EXACT_FLOAT_LIMIT: f64 = 9_007_199_254_740_992.0;
    const NOT_AN_ID: &str = "must be a positive integer id";
    let text = raw.get();
    // Numbers only: any other value is refused without being read further.
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return Err(NOT_AN_ID);
    }
    let number: serde_json::Number = serde_json::from_str(text).map_err(|_| NOT_AN_ID)?;
    let whole_float = || {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (1.0..=EXACT_FLOAT_LIMIT).contains(f))
            .map(|f| f as i64)
    };
    match number.as_i64().or_else(whole_float) {
        Some(id) if id > 0 => Ok(id),
        _ => Err(NOT_AN_ID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["username", "password", "flag", "ids"];

    fn read(text: &str) -> Result<Fields<'_>, JsonError> {
        object(text.as_bytes(), KNOWN)
    }

    fn is_invalid(result: Result<Fields<'_>, JsonError>) -> bool {
        matches!(result, Err(JsonError::Invalid(_)))
    }

    fn is_malformed(result: Result<Fields<'_>, JsonError>) -> bool {
        matches!(result, Err(JsonError::Malformed(_)))
    }

    #[test]
    fn malformed_is_400_and_wrong_shape_is_422_whatever_comes_first() {
        assert!(is_invalid(read(r#"{"flag":1,"flag":2}"#)));
        assert!(is_malformed(read(r#"{"flag":1"#)));
        assert!(is_invalid(read("[1]")));
        assert!(is_malformed(read("\"\u{ff}\"\u{1}")));
        // Wrong shape from the first byte, broken at the end: malformed.
        assert!(is_malformed(read(&"[".repeat(100_000))));
        assert!(is_invalid(read(&("[".repeat(100) + &"]".repeat(100)))));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(is_malformed(read(&deep)));
        assert!(is_malformed(read(&format!(r#"{{"flag":{deep}}}"#))));
        assert!(read(r#"{"username":1e400}"#).is_ok());
    }

    #[test]
    fn unknown_fields_are_named_up_to_twenty_in_the_order_sent() {
        let body = format!(
            "{{{}}}",
            (0..50_000)
                .map(|n| format!("\"k{n:05}\":[0,{{\"x\":1}}]"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let errors = read(&body).ok().unwrap().finish();
        assert_eq!(errors.len(), MAX_UNKNOWN_LISTED);
        assert_eq!(errors[0].message, "unknown field 'k00000'");
        assert_eq!(errors[19].message, "unknown field 'k00019'");
        let long = format!("{{\"{}\":0}}", "é".repeat(100));
        let errors = read(&long).ok().unwrap().finish();
        assert_eq!(
            errors[0].message,
            format!("unknown field '{}…'", "é".repeat(64))
        );
    }

    #[test]
    fn values_are_read_by_the_type_asked_for() {
        let mut fields = read(r#"{"username":"al\u0069ce","password":[0,0,0],"flag":true}"#)
            .ok()
            .unwrap();
        assert_eq!(fields.required_string("username").as_deref(), Some("alice"));
        assert_eq!(fields.required_string("password"), None);
        assert_eq!(fields.optional_bool("flag"), Some(true));
        assert_eq!(fields.optional_bool("flag"), None, "taken once");
        assert_eq!(fields.optional_string("ids"), None);
        let errors = fields.finish();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, Some("password"));
        assert_eq!(errors[0].message, "must be a string");
    }

    #[test]
    fn arrays_keep_at_most_their_limit_and_count_the_rest() {
        let mut fields = read(r#"{"ids":[1, 2.0, "3", [4], 5]}"#).ok().unwrap();
        let elements = fields.required_array("ids", 3).unwrap();
        assert_eq!(elements.total, 5);
        let kept: Vec<&str> = elements.kept.iter().map(|raw| raw.get()).collect();
        assert_eq!(kept, ["1", "2.0", "\"3\""]);
        assert_eq!(id(elements.kept[0]), Ok(1));
        assert_eq!(id(elements.kept[1]), Ok(2));
        assert!(id(elements.kept[2]).is_err());
        let mut fields = read(r#"{"ids":{"a":1}}"#).ok().unwrap();
        assert!(fields.required_array("ids", 3).is_none());
        assert_eq!(fields.finish()[0].message, "must be an array");
    }

    #[test]
    fn ids_accept_whole_floats_only() {
        let id_of = |text: &str| id(&serde_json::from_str::<Box<RawValue>>(text).unwrap());
        assert_eq!(id_of("153"), Ok(153));
        assert_eq!(id_of("153.0"), Ok(153));
        assert_eq!(id_of("3742163326107030.0"), Ok(3_742_163_326_107_030));
        for bad in [
            "153.5", "0", "-1", "0.0", "1e300", "1e400", "\"7\"", "null", "true",
        ] {
            assert!(id_of(bad).is_err(), "{bad}");
        }
    }
}
