//! The one logger. Every line postd writes to stderr — the access log, its own errors and
//! warnings, and the vendored HTTP server's — goes through the `log` facade and is written
//! here, in the configured format, whole (lines of concurrent threads never interleave).
//!
//! Writing is batched like a group commit (`Sink`): a thread that finds another one
//! writing appends its line to the pending batch and goes on; the writing thread writes
//! what has piled up, in order, until nothing is left. Under load many lines go out in one
//! `write`, and no request thread waits for another's system call: one locked `write` per
//! line cost W2 (GET /posts/{id}, 64 connections) a fifth of its rate.
//!
//! The access log is the `access` target; its fields travel as `log` key-values, so the
//! JSON and logfmt lines hold them as their own keys. It never carries a password, a token,
//! a body or a query string: nobody passes them.

use log::kv::{self, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// The target of access-log records.
pub const ACCESS: &str = "access";

/// How lines look on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `postd: error: message` — for people at a terminal.
    Plain,
    /// `time=… level=error msg="message"`.
    Logfmt,
    /// One JSON object per line.
    Json,
    /// No access log; other lines in logfmt.
    Off,
}

struct Logger {
    format: LogFormat,
    sink: Sink,
}

/// The logger `init` installed, for writes that are not log records (`terminal`).
static INSTALLED: OnceLock<&'static Logger> = OnceLock::new();

/// Installs the logger for the process. Called once, first thing; a second call (tests
/// that run several commands in one process) keeps the first logger.
pub fn init(format: LogFormat) {
    // Leaked on purpose: the logger lives as long as the process.
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        format,
        sink: Sink::default(),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(LevelFilter::Info);
        let _ = INSTALLED.set(logger);
    }
}

/// Bytes for a terminal that are no log line: a progress line being redrawn (`\r`, ANSI
/// erase), written in order with the log lines so that neither cuts into the other.
pub fn terminal(bytes: &str) {
    match INSTALLED.get() {
        Some(logger) => logger.sink.emit(bytes.as_bytes(), write_stderr),
        None => write_stderr(bytes.as_bytes()),
    }
}

fn write_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().write_all(bytes);
}

/// Lines not written yet, bounded: past `MAX_PENDING` bytes a thread waits for the writer
/// (stderr that nobody reads must slow the server down, not grow it without end).
#[derive(Default)]
struct Sink {
    pending: Mutex<Pending>,
    drained: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    writing: bool,
}

const MAX_PENDING: usize = 1 << 20;

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `line` to `write`, maybe with other threads' lines, maybe from another thread.
    fn emit(&self, line: &[u8], write: impl Fn(&[u8])) {
        let mut batch = {
            let mut pending = self.lock();
            while pending.writing && pending.bytes.len() >= MAX_PENDING {
                pending = self
                    .drained
                    .wait(pending)
                    .unwrap_or_else(|p| p.into_inner());
            }
            pending.bytes.extend_from_slice(line);
            if pending.writing {
                return;
            }
            pending.writing = true;
            std::mem::take(&mut pending.bytes)
        };
        loop {
            write(&batch);
            batch.clear();
            let mut pending = self.lock();
            std::mem::swap(&mut pending.bytes, &mut batch);
            self.drained.notify_all();
            if batch.is_empty() {
                pending.writing = false;
                return;
            }
        }
    }

    /// Returns once every line handed in so far is written.
    fn wait_written(&self) {
        let mut pending = self.lock();
        while pending.writing {
            pending = self
                .drained
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
            && !(metadata.target() == ACCESS && self.format == LogFormat::Off)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = match self.format {
            LogFormat::Plain => plain_line(record),
            LogFormat::Logfmt | LogFormat::Off => logfmt_line(record),
            LogFormat::Json => json_line(record),
        };
        line.push('\n');
        self.sink.emit(line.as_bytes(), write_stderr);
    }

    fn flush(&self) {
        self.sink.wait_written();
    }
}

/// Where a record came from, when that is not postd itself (the HTTP server's lines).
fn source<'a>(record: &'a Record<'_>) -> Option<&'a str> {
    let target = record.target();
    (target != ACCESS && target != "postd" && !target.starts_with("postd::")).then_some(target)
}

fn plain_line(record: &Record<'_>) -> String {
    let mut line = String::with_capacity(160);
    line.push_str("postd: ");
    match record.level() {
        Level::Error => line.push_str("error: "),
        Level::Warn => line.push_str("warning: "),
        _ => {}
    }
    if let Some(source) = source(record) {
        let _ = write!(line, "{source}: ");
    }
    // Text from a request or a file may be in the message: it must not move the
    // terminal's cursor or start a line of its own.
    match record.args().as_str() {
        Some(text) => crate::text::push_escaped(&mut line, text),
        None => crate::text::push_escaped(&mut line, &record.args().to_string()),
    }
    let _ = record.key_values().visit(&mut Fields::logfmt(&mut line));
    line
}

fn logfmt_line(record: &Record<'_>) -> String {
    let mut line = String::with_capacity(160);
    let _ = write!(line, "time={}", crate::clock::Timestamp::now());
    if record.target() != ACCESS {
        let _ = write!(line, " level={}", level_name(record.level()));
        if let Some(source) = source(record) {
            line.push_str(" source=");
            push_logfmt_text(&mut line, source);
        }
        line.push_str(" msg=");
        push_logfmt_text(&mut line, &record.args().to_string());
    }
    let _ = record.key_values().visit(&mut Fields::logfmt(&mut line));
    line
}

fn json_line(record: &Record<'_>) -> String {
    let mut line = String::with_capacity(192);
    let _ = write!(line, "{{\"time\":\"{}\"", crate::clock::Timestamp::now());
    if record.target() != ACCESS {
        let _ = write!(line, ",\"level\":\"{}\"", level_name(record.level()));
        if let Some(source) = source(record) {
            line.push_str(",\"source\":");
            push_json_text(&mut line, source);
        }
        line.push_str(",\"msg\":");
        push_json_text(&mut line, &record.args().to_string());
    }
    let _ = record.key_values().visit(&mut Fields::json(&mut line));
    line.push('}');
    line
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// How a line's key-values are written: logfmt (` key=value`, `-` for none) or JSON
/// (`,"key":value`, null for none); milliseconds to the microsecond in both.
#[derive(Clone, Copy, PartialEq)]
enum FieldSyntax {
    Logfmt,
    Json,
}

struct Fields<'a> {
    line: &'a mut String,
    syntax: FieldSyntax,
}

impl<'a> Fields<'a> {
    fn logfmt(line: &'a mut String) -> Self {
        Fields {
            line,
            syntax: FieldSyntax::Logfmt,
        }
    }

    fn json(line: &'a mut String) -> Self {
        Fields {
            line,
            syntax: FieldSyntax::Json,
        }
    }

    fn push_text(&mut self, text: &str) {
        match self.syntax {
            FieldSyntax::Logfmt => push_logfmt_text(self.line, text),
            FieldSyntax::Json => push_json_text(self.line, text),
        }
    }
}

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        match self.syntax {
            FieldSyntax::Logfmt => {
                let _ = write!(self.line, " {key}=");
            }
            FieldSyntax::Json => {
                self.line.push(',');
                push_json_text(self.line, key.as_str());
                self.line.push(':');
            }
        }
        value.visit(self)
    }
}

impl<'v> VisitValue<'v> for Fields<'_> {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        self.push_text(&value.to_string());
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.line.push_str(match self.syntax {
            FieldSyntax::Logfmt => "-",
            FieldSyntax::Json => "null",
        });
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        let _ = write!(self.line, "{value}");
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        let _ = write!(self.line, "{value}");
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        if self.syntax == FieldSyntax::Logfmt {
            let _ = write!(self.line, "{value:.3}");
            return Ok(());
        }
        // serde_json's own number form, so the line parses back to the same value.
        let rounded = (value * 1000.0).round() / 1000.0;
        match serde_json::Number::from_f64(rounded) {
            Some(number) => {
                let _ = write!(self.line, "{number}");
            }
            None => self.line.push_str("null"),
        }
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        let _ = write!(self.line, "{value}");
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.push_text(value);
        Ok(())
    }
}

fn push_json_text(line: &mut String, text: &str) {
    // Serializing a &str can not fail. serde_json escapes C0 controls; DEL and C1 (which
    // a terminal also acts on: U+009B is CSI) are escaped here.
    if let Ok(quoted) = serde_json::to_string(text) {
        for c in quoted.chars() {
            if c.is_control() {
                let _ = write!(line, "\\u{:04x}", c as u32);
            } else {
                line.push(c);
            }
        }
    }
}

fn push_logfmt_text(line: &mut String, text: &str) {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
    {
        line.push_str(text);
    } else {
        let _ = write!(line, "{text:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_record(format: LogFormat) -> String {
        let user: Option<i64> = None;
        let fields = [
            ("method", kv::Value::from("GET")),
            ("path", kv::Value::from("/a b")),
            ("status", kv::Value::from(200u16)),
            ("duration_ms", kv::Value::from(0.6804f64)),
            ("user_id", kv::ToValue::to_value(&user)),
        ];
        let record = Record::builder()
            .target(ACCESS)
            .level(Level::Info)
            .key_values(&fields)
            .build();
        match format {
            LogFormat::Plain => plain_line(&record),
            LogFormat::Json => json_line(&record),
            _ => logfmt_line(&record),
        }
    }

    #[test]
    fn access_lines_carry_their_fields_as_keys() {
        let logfmt = access_record(LogFormat::Logfmt);
        assert!(
            logfmt.ends_with(r#" method=GET path="/a b" status=200 duration_ms=0.680 user_id=-"#),
            "{logfmt}"
        );
        assert!(!logfmt.contains("level="), "{logfmt}");
        let json: serde_json::Value =
            serde_json::from_str(&access_record(LogFormat::Json)).unwrap();
        assert_eq!(json["status"], 200);
        assert_eq!(json["duration_ms"], 0.68);
        assert!(json["user_id"].is_null());
        assert!(json.get("level").is_none());
    }

    #[test]
    fn concurrent_lines_come_out_whole_and_each_thread_s_in_order() {
        let sink = Sink::default();
        let out = Mutex::new(Vec::new());
        let writes = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let (sink, out, writes) = (&sink, &out, &writes);
                scope.spawn(move || {
                    for n in 0..2000 {
                        let line = format!("thread {t} line {n} {}\n", "x".repeat(n % 50));
                        sink.emit(line.as_bytes(), |bytes| {
                            writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            out.lock().unwrap().extend_from_slice(bytes);
                        });
                    }
                });
            }
        });
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        let mut next = [0usize; 8];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let (t, n): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(n, next[t], "thread {t}'s lines in order, none lost: {line}");
            assert_eq!(words[4].len(), n % 50, "a whole line: {line}");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 8]);
        assert!(writes.into_inner() > 0);
    }

    #[test]
    fn a_line_left_to_another_thread_s_batch_is_written_before_flush_returns() {
        let sink = Sink::default();
        let out = Mutex::new(Vec::new());
        let (started, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                sink.emit(b"first\n", |bytes| {
                    if bytes == b"first\n" {
                        started.wait();
                        release.wait();
                    }
                    out.lock().unwrap().extend_from_slice(bytes);
                });
            });
            started.wait();
            // The other thread is inside its write: this line only joins the batch.
            sink.emit(b"second\n", |_| panic!("the writing thread writes it"));
            let flushed = scope.spawn(|| {
                sink.wait_written();
                out.lock().unwrap().clone()
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                !flushed.is_finished(),
                "flush waits for the write under way"
            );
            release.wait();
            assert_eq!(flushed.join().unwrap(), b"first\nsecond\n");
        });
    }

    /// Found from outside (v1.1 review): `postd import` of a line whose field name held
    /// ESC sequences and a newline cleared the operator's screen and printed a forged
    /// "imported 0 posts" line. No format writes a control character raw.
    #[test]
    fn control_characters_are_escaped_in_every_format() {
        let hostile = "unknown field 'a\u{1b}[2J\nimported 0 posts\r\u{7f}\u{9b}'";
        let args = format_args!("line 1: {hostile}");
        let fields = [("path", kv::Value::from(hostile))];
        let record = Record::builder()
            .target("postd::cli")
            .level(Level::Warn)
            .args(args)
            .key_values(&fields)
            .build();
        for line in [
            plain_line(&record),
            logfmt_line(&record),
            json_line(&record),
        ] {
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(line.contains("imported 0 posts"), "{line:?}");
        }
        let json: serde_json::Value = serde_json::from_str(&json_line(&record)).unwrap();
        assert_eq!(
            json["msg"],
            format!("line 1: {hostile}"),
            "escaped, not lost"
        );
        assert_eq!(
            plain_line(&record),
            "postd: warning: line 1: unknown field 'a\\u{1b}[2J\\nimported 0 posts\\r\\u{7f}\\u{9b}' \
             path=\"unknown field 'a\\u{1b}[2J\\nimported 0 posts\\r\\u{7f}\\u{9b}'\""
        );
    }

    #[test]
    fn other_lines_say_their_level_and_source() {
        let args = format_args!("accept failed: {}", "EMFILE");
        let record = Record::builder()
            .target("tiny_http")
            .level(Level::Error)
            .args(args)
            .build();
        assert_eq!(
            plain_line(&record),
            "postd: error: tiny_http: accept failed: EMFILE"
        );
        let logfmt = logfmt_line(&record);
        assert!(
            logfmt.ends_with(r#" level=error source=tiny_http msg="accept failed: EMFILE""#),
            "{logfmt}"
        );
        let json: serde_json::Value = serde_json::from_str(&json_line(&record)).unwrap();
        assert_eq!(json["msg"], "accept failed: EMFILE");
        assert_eq!(json["source"], "tiny_http");
    }
}
