//! The one logger. Every line postd writes to stderr — the access log, its own errors and
//! warnings, and the vendored HTTP server's — goes through the `log` facade and is written
//! here, one `write` per line (so lines of concurrent threads never interleave), in the
//! configured format.
//!
//! The access log is the `access` target; its fields travel as `log` key-values, so the
//! JSON and logfmt lines hold them as their own keys. It never carries a password, a token,
//! a body or a query string: nobody passes them.

use log::kv::{self, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Write as _;
use std::io::Write as _;

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
}

/// Installs the logger for the process. Called once, first thing; a second call (tests
/// that run several commands in one process) keeps the first logger.
pub fn init(format: LogFormat) {
    // Leaked on purpose: the logger lives as long as the process.
    if log::set_logger(Box::leak(Box::new(Logger { format }))).is_ok() {
        log::set_max_level(LevelFilter::Info);
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
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Where a record came from, when that is not postd itself (the HTTP server's lines).
fn source<'a>(record: &'a Record<'_>) -> Option<&'a str> {
    let target = record.target();
    (target != ACCESS && target != "postd" && !target.starts_with("postd::")).then_some(target)
}

fn plain_line(record: &Record<'_>) -> String {
    let mut line = String::from("postd: ");
    match record.level() {
        Level::Error => line.push_str("error: "),
        Level::Warn => line.push_str("warning: "),
        _ => {}
    }
    if let Some(source) = source(record) {
        let _ = write!(line, "{source}: ");
    }
    let _ = write!(line, "{}", record.args());
    for (key, value) in fields(record) {
        let _ = write!(line, " {key}=");
        value.write_logfmt(&mut line);
    }
    line
}

fn logfmt_line(record: &Record<'_>) -> String {
    let mut line = format!("time={}", crate::clock::now());
    if record.target() != ACCESS {
        let _ = write!(line, " level={}", level_name(record.level()));
        if let Some(source) = source(record) {
            let _ = write!(line, " source={}", logfmt_text(source));
        }
        let _ = write!(line, " msg={}", logfmt_text(&record.args().to_string()));
    }
    for (key, value) in fields(record) {
        let _ = write!(line, " {key}=");
        value.write_logfmt(&mut line);
    }
    line
}

fn json_line(record: &Record<'_>) -> String {
    let mut object = serde_json::Map::new();
    object.insert("time".into(), crate::clock::now().into());
    if record.target() != ACCESS {
        object.insert("level".into(), level_name(record.level()).into());
        if let Some(source) = source(record) {
            object.insert("source".into(), source.into());
        }
        object.insert("msg".into(), record.args().to_string().into());
    }
    for (key, value) in fields(record) {
        object.insert(key, value.into_json());
    }
    serde_json::Value::Object(object).to_string()
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

/// A record's key-values in order, each reduced to a scalar.
fn fields(record: &Record<'_>) -> Vec<(String, Scalar)> {
    struct Collect(Vec<(String, Scalar)>);
    impl<'kvs> VisitSource<'kvs> for Collect {
        fn visit_pair(
            &mut self,
            key: kv::Key<'kvs>,
            value: kv::Value<'kvs>,
        ) -> Result<(), kv::Error> {
            let mut scalar = ToScalar(None);
            value.visit(&mut scalar)?;
            self.0
                .push((key.as_str().to_owned(), scalar.0.unwrap_or(Scalar::Null)));
            Ok(())
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = record.key_values().visit(&mut collect);
    collect.0
}

/// A key-value's value, reduced to what a log line can show.
#[derive(Debug)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn write_logfmt(&self, line: &mut String) {
        let _ = match self {
            Scalar::Null => write!(line, "-"),
            Scalar::Bool(b) => write!(line, "{b}"),
            Scalar::Int(n) => write!(line, "{n}"),
            Scalar::Uint(n) => write!(line, "{n}"),
            Scalar::Float(f) => write!(line, "{f:.3}"),
            Scalar::Text(text) => write!(line, "{}", logfmt_text(text)),
        };
    }

    fn into_json(self) -> serde_json::Value {
        match self {
            Scalar::Null => serde_json::Value::Null,
            Scalar::Bool(b) => b.into(),
            Scalar::Int(n) => n.into(),
            Scalar::Uint(n) => n.into(),
            // Durations in milliseconds, to the microsecond.
            Scalar::Float(f) => ((f * 1000.0).round() / 1000.0).into(),
            Scalar::Text(text) => text.into(),
        }
    }
}

/// Reduces one value to a scalar.
struct ToScalar(Option<Scalar>);

impl<'v> VisitValue<'v> for ToScalar {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Text(value.to_string()));
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Null);
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Bool(value));
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Int(value));
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Uint(value));
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Float(value));
        Ok(())
    }
    fn visit_borrowed_str(&mut self, value: &'v str) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Text(value.to_owned()));
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.0 = Some(Scalar::Text(value.to_owned()));
        Ok(())
    }
}

/// A logfmt value: bare when it is plain, quoted and escaped otherwise.
fn logfmt_text(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
    {
        text.to_string()
    } else {
        format!("{text:?}")
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
