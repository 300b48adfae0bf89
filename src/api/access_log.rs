//! One line per request on stderr: time, method, path (never the query string, which may
//! carry search terms or cursors), status, bytes, duration and user id. Never a password or
//! a token: bodies and headers are not logged at all.

use std::cell::Cell;
use std::io::Write;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Logfmt,
    Off,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "json" => Some(LogFormat::Json),
            "logfmt" => Some(LogFormat::Logfmt),
            "off" => Some(LogFormat::Off),
            _ => None,
        }
    }
}

thread_local! {
    /// The authenticated user of the request this worker thread is handling.
    static REQUEST_USER: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Called by authentication so the log line can name the user without every handler
/// passing it back.
pub fn note_user(user_id: i64) {
    REQUEST_USER.with(|cell| cell.set(Some(user_id)));
}

/// Takes (and clears) the user noted for the current request.
pub fn take_user() -> Option<i64> {
    REQUEST_USER.with(|cell| cell.take())
}

pub struct Entry<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub duration: Duration,
    pub user_id: Option<i64>,
}

pub fn write(format: LogFormat, entry: &Entry<'_>) {
    if format == LogFormat::Off {
        return;
    }
    let time = crate::clock::now();
    let millis = entry.duration.as_secs_f64() * 1000.0;
    let line =
        match format {
            LogFormat::Json => {
                let value = serde_json::json!({
                    "time": time,
                    "method": entry.method,
                    "path": entry.path,
                    "status": entry.status,
                    "bytes": entry.bytes,
                    "duration_ms": (millis * 1000.0).round() / 1000.0,
                    "user_id": entry.user_id,
                });
                value.to_string()
            }
            _ => format!(
            "time={time} method={} path={} status={} bytes={} duration_ms={millis:.3} user_id={}",
            logfmt_value(entry.method),
            logfmt_value(entry.path),
            entry.status,
            entry.bytes,
            entry.user_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into()),
        ),
        };
    // One write per line, so lines from concurrent workers never interleave.
    let mut bytes = line.into_bytes();
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}

fn logfmt_value(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
        && !text.is_empty()
    {
        text.to_string()
    } else {
        format!("{text:?}")
    }
}
