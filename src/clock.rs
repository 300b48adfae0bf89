//! Timestamps as the contract writes them: RFC 3339, UTC, milliseconds, `Z`. Stored in the
//! same form, so text order is time order and SQL can compare them directly.

use time::{Duration, OffsetDateTime};

pub fn now() -> String {
    format_utc(OffsetDateTime::now_utc())
}

/// The timestamp `age` before now, for "older than" comparisons.
pub fn ago(age: std::time::Duration) -> String {
    let age = Duration::try_from(age).unwrap_or(Duration::MAX);
    let then = OffsetDateTime::now_utc()
        .checked_sub(age)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format_utc(then)
}

pub fn format_utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Is `text` exactly in our stored form? Used to reject forged cursors.
pub fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `30d`, `12h`, `15m`, `45s` → a duration. Anything else is an error with one clear line.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "invalid duration '{text}': expected a number followed by d, h, m or s (e.g. 30d, 12h)"
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    if !text.is_char_boundary(split) {
        return Err(bad());
    }
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    count
        .checked_mul(unit_secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_341_845_123_456_789).unwrap();
        let text = format_utc(at);
        assert!(is_timestamp(&text), "{text}");
        assert!(text.ends_with(".123Z"), "{text}");
        assert!(is_timestamp(&now()));
        assert!(!is_timestamp("2026-11-22T10:04:05Z"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_duration("12h").unwrap().as_secs(), 12 * 3_600);
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("1é").is_err());
        assert!(parse_duration("").is_err());
    }
}
