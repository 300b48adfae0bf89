//! The input of `postd import`: opened once, recognised by the SHA-256 of its bytes, and
//! read as NDJSON lines — each bounded in size, each checked by `POST /posts`'s rules.

use super::rate::RateMeter;
use crate::files::PrivateDir;
use crate::json::post::{imported_post, IMPORT_FIELDS};
use crate::json::JsonError;
use crate::model::{ItemError, NewPost};
use crate::store::{ImportProgress, InputDigest};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Take, Write};
use std::path::Path;

/// The longest line read. The longest valid one — a 200-character title, a
/// 100,000-character body and a 100-character slug, every character written as a
/// `\uXXXX\uXXXX` surrogate pair — is about 1.2 MB; the rest is room for whitespace.
/// Longer lines are refused without being held.
pub const MAX_LINE: usize = 4 * 1024 * 1024;
const READ_BLOCK: usize = 256 * 1024;
const MIB: u64 = 1024 * 1024;

/// The input, read once through already: its digest and line count are known.
pub struct Input {
    file: File,
    len: u64,
    digest: InputDigest,
    lines: u64,
    name: String,
    /// stdin's copy (removed on drop).
    _spool: Option<PrivateDir>,
}

impl Input {
    /// Opens `path` (`-`: stdin, copied first into a private directory beside `db`, since
    /// an import reads its input more than once) and reads it through for its digest.
    pub fn open(path: &Path, db: &Path) -> Result<Input, String> {
        let mut meter = RateMeter::new("reading the input", "MiB");
        if path.as_os_str() == "-" {
            let spool = PrivateDir::beside(db)?;
            let (copy, mut writer) = spool
                .create_file("stdin.ndjson")
                .map_err(|e| format!("cannot copy stdin beside the database: {e}"))?;
            let summary = digest(&mut io::stdin().lock(), Some(&mut writer), 0, &mut meter)
                .map_err(|e| format!("cannot copy stdin beside the database: {e}"))?;
            // Not synced: only this process reads the copy, and a crash loses it anyway
            // (the next run copies stdin again).
            drop(writer);
            let file =
                File::open(&copy).map_err(|e| format!("cannot read the copy of stdin: {e}"))?;
            meter.finish();
            return Ok(Input {
                file,
                len: summary.len,
                digest: summary.digest,
                lines: summary.lines,
                name: "stdin".into(),
                _spool: Some(spool),
            });
        }
        let name = path.display().to_string();
        let mut file = File::open(path).map_err(|e| format!("cannot open {name}: {e}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let summary = digest(&mut file, None, size, &mut meter)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        meter.finish();
        Ok(Input {
            file,
            len: summary.len,
            digest: summary.digest,
            lines: summary.lines,
            name,
            _spool: None,
        })
    }

    pub fn digest(&self) -> &InputDigest {
        &self.digest
    }

    /// Lines in the input (the last may lack its newline).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lines after the `at.lines` an earlier run committed (which end at byte
    /// `at.bytes`). Only the bytes that were digested are read, should the file grow.
    pub fn lines_after(&self, at: ImportProgress) -> Result<Lines, String> {
        let reading = |e: io::Error| format!("cannot read {}: {e}", self.name);
        let mut file = self.file.try_clone().map_err(reading)?;
        file.seek(SeekFrom::Start(at.bytes)).map_err(reading)?;
        let rest = self.len.saturating_sub(at.bytes);
        Ok(Lines {
            reader: BufReader::with_capacity(READ_BLOCK, file.take(rest)),
            number: at.lines,
            offset: at.bytes,
            buf: Vec::new(),
        })
    }
}

struct Summary {
    digest: InputDigest,
    len: u64,
    lines: u64,
}

/// SHA-256 and line count of everything `from` holds, copied to `copy` on the way if
/// given. `size` (0: unknown) is for the progress meter.
fn digest(
    from: &mut dyn Read,
    mut copy: Option<&mut File>,
    size: u64,
    meter: &mut RateMeter,
) -> io::Result<Summary> {
    let mut hash = Sha256::new();
    let mut block = vec![0u8; READ_BLOCK];
    let (mut len, mut newlines, mut last) = (0u64, 0u64, b'\n');
    loop {
        let n = match from.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let bytes = &block[..n];
        hash.update(bytes);
        if let Some(copy) = copy.as_mut() {
            copy.write_all(bytes)?;
        }
        newlines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        last = bytes[n - 1];
        len += n as u64;
        meter.show(len / MIB, size / MIB);
    }
    Ok(Summary {
        digest: InputDigest::from_sha256(hash.finalize().into()),
        len,
        lines: newlines + u64::from(last != b'\n'),
    })
}

/// One line as read: its bytes without the newline, or `None` when it was longer than
/// [`MAX_LINE`] (then not kept).
pub struct RawLine<'a> {
    pub number: u64,
    /// The input offset just past the line and its newline.
    pub end: u64,
    pub bytes: Option<&'a [u8]>,
}

/// The lines of an input, read with one line in memory at most.
pub struct Lines {
    reader: BufReader<Take<File>>,
    number: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl Lines {
    pub fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        self.buf.clear();
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let (used, ended) = {
                let available = match self.reader.fill_buf() {
                    Ok(available) => available,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(err),
                };
                if available.is_empty() {
                    break;
                }
                read_any = true;
                let (piece, used, ended) = match available.iter().position(|b| *b == b'\n') {
                    Some(at) => (&available[..at], at + 1, true),
                    None => (available, available.len(), false),
                };
                if !too_long {
                    if self.buf.len() + piece.len() > MAX_LINE {
                        too_long = true;
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(piece);
                    }
                }
                (used, ended)
            };
            self.reader.consume(used);
            self.offset += used as u64;
            if ended {
                break;
            }
        }
        if !read_any {
            return Ok(None);
        }
        self.number += 1;
        Ok(Some(RawLine {
            number: self.number,
            end: self.offset,
            bytes: (!too_long).then_some(self.buf.as_slice()),
        }))
    }
}

/// A line's post, checked by the rules of `POST /posts`, or everything wrong with it.
pub fn parse_line(bytes: Option<&[u8]>) -> Result<NewPost, Vec<ItemError>> {
    let whole = |message: String| Err(vec![ItemError::whole(message)]);
    let Some(bytes) = bytes else {
        return whole(format!("longer than {MAX_LINE} bytes"));
    };
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return whole("empty; every line must be a JSON object".into());
    }
    match crate::json::object(bytes, IMPORT_FIELDS) {
        Ok(fields) => imported_post(fields),
        Err(JsonError::Invalid(errors)) => Err(errors),
        Err(JsonError::Malformed(message)) => {
            whole(format!("not valid JSON: {}", on_the_line(&message)))
        }
    }
}

/// A position within one line is its column: "at line 1 column 26" → "at column 26".
fn on_the_line(message: &str) -> String {
    message.replacen(" at line 1 column ", " at column ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(line: &str) -> Vec<String> {
        parse_line(Some(line.as_bytes()))
            .err()
            .unwrap_or_else(|| panic!("{line} was accepted"))
            .into_iter()
            .map(|e| match e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message,
            })
            .collect()
    }

    #[test]
    fn lines_are_checked_like_post_bodies() {
        let post = parse_line(Some(br#"{"title":"  Hi ","body":"","slug":"hi-there"}"#)).unwrap();
        assert_eq!(
            (post.title.as_str(), post.slug.unwrap().as_str()),
            ("Hi", "hi-there")
        );
        assert!(parse_line(Some(b"{\"title\":\"x\",\"body\":\"y\"}\r")).is_ok());
        assert_eq!(
            refusal(r#"{"title":"","body":"b"}"#),
            ["title: must not be empty"]
        );
        assert_eq!(
            refusal(r#"{"title":"t","body":"b","author":1}"#),
            ["unknown field 'author'"]
        );
        // What `postd export` writes imports as it is: the server's fields are ignored,
        // created_at is kept.
        let exported = parse_line(Some(
            br#"{"id":7,"author_id":2,"title":"t","slug":"t","body":"b","created_at":"2025-01-02T03:04:05.678Z","updated_at":"2026-01-01T00:00:00.000Z","deleted_at":null,"deleted_by_id":null}"#,
        ))
        .unwrap();
        assert_eq!(
            exported.created_at.map(|t| t.to_string()).as_deref(),
            Some("2025-01-02T03:04:05.678Z")
        );
        assert_eq!(
            refusal(r#"{"title":"t","body":"b","created_at":"yesterday"}"#),
            ["created_at: must be a timestamp such as 2026-11-22T10:04:05.123Z"]
        );
        assert_eq!(refusal(r#"{"body":"b"}"#), ["title: is required"]);
        assert_eq!(
            refusal(r#"{"title":"t","title":"u","body":"b"}"#),
            ["duplicate field 'title'"]
        );
        assert_eq!(
            refusal(r#"{"title":"t","body":"b","slug":"No"}"#)[0],
            "slug: must be lowercase letters and digits in groups joined by single '-'"
        );
        assert_eq!(
            refusal("[1]")[0],
            "invalid type: sequence, expected a JSON object"
        );
        assert!(refusal(r#"{"title":"t""#)[0].starts_with("not valid JSON: "));
        assert!(refusal(r#"{"title":"t","body":"b"} x"#)[0].contains("at column 26"));
        assert_eq!(refusal("  "), ["empty; every line must be a JSON object"]);
        assert_eq!(
            parse_line(Some(b"\xff")).err().unwrap()[0].message,
            "not valid JSON: invalid UTF-8 at column 1"
        );
        assert_eq!(
            refusal("\u{feff}{\"title\":\"t\",\"body\":\"b\"}"),
            ["not valid JSON: a byte order mark (U+FEFF), which JSON text must not start with, at column 1"]
        );
        assert!(parse_line(None).err().unwrap()[0]
            .message
            .starts_with("longer than"));
    }
}
