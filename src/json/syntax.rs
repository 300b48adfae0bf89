//! Is this JSON at all? One pass over the whole text, without building anything, so that
//! the contract's 400 (malformed) and 422 (wrong shape) are decided the same way whatever
//! comes first: a document that is wrong in shape at its first byte and broken at its
//! last is malformed (serde_json stops at the first error it meets, which made an
//! unclosed 100,000-deep `[[[…` a 422). Nesting deeper than [`MAX_DEPTH`] is malformed
//! too, wherever it stands: no reader of postd's needs it, and the readers that build
//! values would otherwise refuse it only where they happen to descend.

use std::fmt;

/// Why a text is not JSON, and where (1-based line and byte column, as serde_json says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub what: &'static str,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.what, self.line, self.column
        )
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `Ok` when `bytes` is one JSON text (RFC 8259) in UTF-8 without a byte order mark.
pub fn check(bytes: &[u8]) -> Result<(), Malformed> {
    if bytes.starts_with(BOM) {
        return Err(position(
            bytes,
            0,
            "a byte order mark (U+FEFF), which JSON text must not start with,",
        ));
    }
    if let Err(err) = std::str::from_utf8(bytes) {
        return Err(position(bytes, err.valid_up_to(), "invalid UTF-8"));
    }
    Scanner {
        bytes,
        at: 0,
        open: Brackets::default(),
    }
    .document()
    .map_err(|(at, what)| position(bytes, at, what))
}

fn position(bytes: &[u8], at: usize, what: &'static str) -> Malformed {
    let before = &bytes[..at.min(bytes.len())];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |nl| nl + 1);
    Malformed {
        what,
        line,
        column: at.min(bytes.len()) - line_start + 1,
    }
}

/// Brackets open at once, at most.
pub const MAX_DEPTH: usize = 128;

/// The brackets open at this point, innermost last: one bit each (1 = object).
#[derive(Default)]
struct Brackets {
    bits: u128,
    depth: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Open {
    Array,
    Object,
}

impl Brackets {
    /// The caller has checked that `depth < MAX_DEPTH`.
    fn push(&mut self, open: Open) {
        if open == Open::Object {
            self.bits |= 1 << self.depth;
        } else {
            self.bits &= !(1 << self.depth);
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }

    fn innermost(&self) -> Option<Open> {
        let depth = self.depth.checked_sub(1)?;
        let object = self.bits & (1 << depth) != 0;
        Some(if object { Open::Object } else { Open::Array })
    }
}

type Step = Result<(), (usize, &'static str)>;

const TOO_DEEP: &str = "nested deeper than 128 arrays and objects";

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    open: Brackets,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, (usize, &'static str)> {
        Err((self.at, what))
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn document(mut self) -> Step {
        self.skip_whitespace();
        loop {
            self.value_or_open()?;
            // After a value: close brackets until one takes another element.
            loop {
                self.skip_whitespace();
                match (self.open.innermost(), self.peek()) {
                    (None, None) => return Ok(()),
                    (None, Some(_)) => return self.fail("trailing characters"),
                    (Some(_), Some(b',')) => {
                        self.at += 1;
                        self.skip_whitespace();
                        if self.open.innermost() == Some(Open::Object) {
                            self.key()?;
                        }
                        break;
                    }
                    (Some(Open::Array), Some(b']')) | (Some(Open::Object), Some(b'}')) => {
                        self.at += 1;
                        self.open.pop();
                    }
                    (Some(Open::Array), None) => return self.fail("EOF while parsing a list"),
                    (Some(Open::Object), None) => return self.fail("EOF while parsing an object"),
                    (Some(Open::Array), Some(_)) => return self.fail("expected `,` or `]`"),
                    (Some(Open::Object), Some(_)) => return self.fail("expected `,` or `}`"),
                }
            }
        }
    }

    /// A scalar value, an empty container, or the opening of a container whose first
    /// element (and key) has been read up to that element's value.
    fn value_or_open(&mut self) -> Step {
        loop {
            match self.peek() {
                None => return self.fail("EOF while parsing a value"),
                Some(b'[') => {
                    if self.open.depth == MAX_DEPTH {
                        return self.fail(TOO_DEEP);
                    }
                    self.at += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                        return Ok(());
                    }
                    self.open.push(Open::Array);
                }
                Some(b'{') => {
                    if self.open.depth == MAX_DEPTH {
                        return self.fail(TOO_DEEP);
                    }
                    self.at += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                        return Ok(());
                    }
                    self.open.push(Open::Object);
                    self.key()?;
                }
                Some(b'"') => return self.string(),
                Some(b'-' | b'0'..=b'9') => return self.number(),
                Some(b't') => return self.literal(b"true"),
                Some(b'f') => return self.literal(b"false"),
                Some(b'n') => return self.literal(b"null"),
                Some(_) => return self.fail("expected value"),
            }
        }
    }

    /// `"key"` and `:`, leaving the scanner at the member's value.
    fn key(&mut self) -> Step {
        match self.peek() {
            Some(b'"') => self.string()?,
            None => return self.fail("EOF while parsing an object"),
            Some(_) => return self.fail("key must be a string"),
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b':') => self.at += 1,
            None => return self.fail("EOF while parsing an object"),
            Some(_) => return self.fail("expected `:`"),
        }
        self.skip_whitespace();
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Step {
        for expected in word {
            match self.peek() {
                Some(b) if b == *expected => self.at += 1,
                None => return self.fail("EOF while parsing a value"),
                Some(_) => return self.fail("expected ident"),
            }
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Step {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            None => return self.fail("EOF while parsing a value"),
            Some(_) => return self.fail("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    /// A string from its opening quote. The text is already known to be UTF-8.
    fn string(&mut self) -> Step {
        self.at += 1;
        loop {
            match self.peek() {
                None => return self.fail("EOF while parsing a string"),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape()?;
                }
                Some(0x00..=0x1f) => {
                    return self
                        .fail("control character (\\u0000-\\u001F) found while parsing a string")
                }
                Some(_) => self.at += 1,
            }
        }
    }

    fn escape(&mut self) -> Step {
        match self.peek() {
            None => self.fail("EOF while parsing a string"),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.at += 1;
                Ok(())
            }
            Some(b'u') => {
                self.at += 1;
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by `\u` and a trailing one.
                        if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                            return self.fail("lone leading surrogate in hex escape");
                        }
                        self.at += 2;
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => self.fail("lone leading surrogate in hex escape"),
                        }
                    }
                    0xDC00..=0xDFFF => self.fail("unexpected end of hex escape"),
                    _ => Ok(()),
                }
            }
            Some(_) => self.fail("invalid escape"),
        }
    }

    fn hex4(&mut self) -> Result<u32, (usize, &'static str)> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                None => return self.fail("EOF while parsing a string"),
                Some(b) => match (b as char).to_digit(16) {
                    Some(d) => d,
                    None => return self.fail("invalid escape"),
                },
            };
            unit = unit * 16 + digit;
            self.at += 1;
        }
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> bool {
        check(text.as_bytes()).is_ok()
    }

    #[test]
    fn accepts_what_rfc_8259_calls_json() {
        for good in [
            "0",
            "-0",
            "1.5e-3",
            "2E+10",
            "\"\"",
            "\"a\\u00e9\\ud83d\\ude00\\n\\\"\"",
            " [ ] ",
            "{}",
            "[1,[2,[3,{}]],{\"a\":[true,false,null]}]",
            "{\"a\":{\"b\":{\"c\":[]}} , \"d\" : \"é\"}\n",
        ] {
            assert!(ok(good), "{good}");
            assert!(serde_json::from_str::<serde_json::Value>(good).is_ok());
        }
    }

    #[test]
    fn refuses_what_is_not_json_and_says_where() {
        for bad in [
            "",
            " ",
            "01",
            "1.",
            "-",
            "+1",
            ".5",
            "1e",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "tru",
            "nul",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\tb\"",
            "\"abc",
            "[",
            "{\"a\":",
            "[] []",
            "NaN",
        ] {
            assert!(!ok(bad), "{bad:?}");
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
        }
        assert_eq!(
            check(b"{\"a\":1,\n \"b\":}").unwrap_err(),
            Malformed {
                what: "expected value",
                line: 2,
                column: 6
            }
        );
        assert_eq!(check(b"\xEF\xBB\xBF{}").unwrap_err().column, 1);
        assert_eq!(check(b"[\"\xff\"]").unwrap_err().what, "invalid UTF-8");
    }

    /// 128 levels are JSON here, 129 are not, wherever they stand.
    #[test]
    fn nesting_is_read_to_128_levels() {
        let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
        assert!(ok(&nested(128)));
        assert_eq!(check(nested(129).as_bytes()).unwrap_err().what, TOO_DEEP);
        let objects = |levels: usize| "{\"a\":".repeat(levels) + "1" + &"}".repeat(levels);
        assert!(ok(&objects(128)));
        assert!(!ok(&objects(129)));
        assert!(!ok(&format!("{{\"body\":{}}}", nested(128))));
        assert!(!ok(&"[".repeat(100_000)));
        let mixed = "[{\"a\":".repeat(10) + "0" + &"]}".repeat(10);
        assert!(!ok(&mixed));
    }
}
