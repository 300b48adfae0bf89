//! Time as the contract writes it: timestamps in RFC 3339, UTC, milliseconds, `Z`, stored
//! in that same form (so text order is time order and SQL compares them directly), and
//! durations such as `30d`.

use serde::Serialize;
use std::str::FromStr;
use time::{Duration, OffsetDateTime};

/// A point in time in the stored form, `2026-11-22T10:04:05.123Z`. Exists only by being
/// read from the clock or parsed from text of exactly that form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::at(OffsetDateTime::now_utc())
    }

    /// The timestamp `age` before now, for "older than" comparisons.
    pub fn ago(age: std::time::Duration) -> Timestamp {
        let age = Duration::try_from(age).unwrap_or(Duration::MAX);
        let then = OffsetDateTime::now_utc()
            .checked_sub(age)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Timestamp::at(then)
    }

    fn at(at: OffsetDateTime) -> Timestamp {
        let at = at.to_offset(time::UtcOffset::UTC);
        Timestamp(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        ))
    }

    /// `Some` when `text` is exactly in the stored form.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        let shaped = b.len() == 24
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'.',
                23 => *c == b'Z',
                _ => c.is_ascii_digit(),
            });
        shaped.then(|| Timestamp(text.to_owned()))
    }

    /// Any RFC 3339 date-time (`2026-01-01T00:00:00Z`, `…+02:00`), in the stored form (UTC,
    /// milliseconds: finer digits are cut).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(Timestamp::at)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Milliseconds since 1970-01-01T00:00:00.000Z; `None` for a text of the right shape
    /// that names no instant (month 13) or one before 1970.
    pub fn unix_millis(&self) -> Option<u64> {
        let nanos = self.to_datetime()?.unix_timestamp_nanos();
        u64::try_from(nanos / 1_000_000).ok()
    }

    /// The instant `millis` after 1970-01-01T00:00:00.000Z, or the last millisecond of the
    /// year 9999 (the last the stored form can write) for anything later.
    pub fn from_unix_millis(millis: u64) -> Timestamp {
        let nanos = i128::from(millis.min(LAST_MILLIS)) * 1_000_000;
        let at =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Timestamp::at(at)
    }

    /// The moment `later` after this one; the last representable millisecond of year 9999
    /// when that is further away.
    pub fn plus(&self, later: std::time::Duration) -> Timestamp {
        let last = || Timestamp::from_unix_millis(LAST_MILLIS);
        let Some(at) = self.to_datetime() else {
            return last();
        };
        Duration::try_from(later)
            .ok()
            .and_then(|later| at.checked_add(later))
            .filter(|then| then.year() <= 9999)
            .map_or_else(last, Timestamp::at)
    }

    /// The stored form back as a date-time; `None` for a text of the right shape that
    /// names no instant (month 13).
    fn to_datetime(&self) -> Option<OffsetDateTime> {
        let field = |range: std::ops::Range<usize>| self.0.get(range)?.parse::<u16>().ok();
        let month = time::Month::try_from(u8::try_from(field(5..7)?).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::from(field(0..4)?),
            month,
            u8::try_from(field(8..10)?).ok()?,
        )
        .ok()?;
        let clock = time::Time::from_hms_milli(
            u8::try_from(field(11..13)?).ok()?,
            u8::try_from(field(14..16)?).ok()?,
            u8::try_from(field(17..19)?).ok()?,
            field(20..23)?,
        )
        .ok()?;
        Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
    }
}

/// 9999-12-31T23:59:59.999Z in milliseconds since 1970.
const LAST_MILLIS: u64 = 253_402_300_799_999;

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The current time as text, for log lines.
pub fn now() -> String {
    Timestamp::now().0
}

/// How long ago, as the contract writes it: a whole number and a unit `s`, `m`, `h` or
/// `d` (`30d`, `12h`, `0s`), at most 36500 days. Keeps its text for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Age {
    duration: std::time::Duration,
    text: String,
}

const MAX_AGE_SECS: u64 = 36_500 * 86_400;
/// Longest DURATION text read: `36500d` needs 6; a million leading zeros were accepted,
/// and stored verbatim in an append-only audit event.
pub const MAX_AGE_TEXT: usize = 16;

impl FromStr for Age {
    type Err = String;

    fn from_str(text: &str) -> Result<Age, String> {
        let bad = || {
            format!(
                "invalid duration '{}': expected a whole number and a unit s, m, h or d \
                 (e.g. 30d, 12h), at most 36500d",
                crate::text::escape_controls(crate::text::clip(text, MAX_AGE_TEXT))
            )
        };
        if text.len() > MAX_AGE_TEXT {
            return Err(bad());
        }
        let unit_at = text.len().checked_sub(1).ok_or_else(bad)?;
        if !text.is_char_boundary(unit_at) {
            return Err(bad());
        }
        let (digits, unit) = text.split_at(unit_at);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count: u64 = digits.parse().map_err(|_| bad())?;
        let unit_secs = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        match count.checked_mul(unit_secs) {
            // Written back in its shortest form (`030d` is `30d`): what the audit log keeps.
            Some(secs) if secs <= MAX_AGE_SECS => Ok(Age {
                duration: std::time::Duration::from_secs(secs),
                text: format!("{count}{unit}"),
            }),
            _ => Err(bad()),
        }
    }
}

impl Age {
    pub fn duration(&self) -> std::time::Duration {
        self.duration
    }

    /// The moment this long before now.
    pub fn before_now(&self) -> Timestamp {
        Timestamp::ago(self.duration)
    }
}

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_341_845_123_456_789).unwrap();
        let text = Timestamp::at(at).0;
        assert!(Timestamp::parse(&text).is_some(), "{text}");
        assert!(text.ends_with(".123Z"), "{text}");
        assert!(Timestamp::parse(&now()).is_some());
        assert!(Timestamp::parse("2026-11-22T10:04:05Z").is_none());
    }

    #[test]
    fn unix_millis_round_trip_and_clamp() {
        let at = Timestamp::parse("2026-11-22T10:04:05.123Z").unwrap();
        let millis = at.unix_millis().unwrap();
        assert_eq!(millis, 1_795_341_845_123);
        assert_eq!(Timestamp::from_unix_millis(millis), at);
        assert_eq!(
            Timestamp::from_unix_millis(0).as_str(),
            "1970-01-01T00:00:00.000Z"
        );
        let last = Timestamp::from_unix_millis(u64::MAX);
        assert_eq!(last.as_str(), "9999-12-31T23:59:59.999Z");
        assert_eq!(last.unix_millis(), Some(LAST_MILLIS));
        assert_eq!(
            Timestamp::parse("2026-13-22T10:04:05.123Z")
                .unwrap()
                .unix_millis(),
            None
        );
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59.999Z")
                .unwrap()
                .unix_millis(),
            None
        );
    }

    #[test]
    fn adding_a_duration() {
        let at = Timestamp::parse("2026-02-27T23:59:59.999Z").unwrap();
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(at.plus(day).as_str(), "2026-02-28T23:59:59.999Z");
        assert_eq!(at.plus(day * 2).as_str(), "2026-03-01T23:59:59.999Z");
        assert_eq!(
            at.plus(std::time::Duration::from_millis(1)).as_str(),
            "2026-02-28T00:00:00.000Z"
        );
        assert_eq!(
            at.plus(day * 36_500 * 100).as_str(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn ages() {
        let secs = |t: &str| t.parse::<Age>().map(|a| a.duration().as_secs());
        assert_eq!(secs("30d"), Ok(30 * 86_400));
        assert_eq!(secs("12h"), Ok(12 * 3_600));
        assert_eq!(secs("0s"), Ok(0));
        assert_eq!(secs("36500d"), Ok(MAX_AGE_SECS));
        for bad in [
            "12",
            "d",
            "-1d",
            "+1d",
            "1é",
            "",
            "36501d",
            "1w",
            " 1d",
            "99999999999999999999d",
        ] {
            assert!(secs(bad).is_err(), "{bad}");
        }
        assert_eq!("30d".parse::<Age>().unwrap().to_string(), "30d");
        // Found from outside (v1.1 review): a million leading zeros were a duration, kept
        // verbatim. At most 16 characters, written back in the shortest form.
        assert_eq!("00000000000030d".parse::<Age>().unwrap().to_string(), "30d");
        assert_eq!("0000000000000030d".len(), 17);
        assert!(secs("0000000000000030d").is_err());
        let zeros = "0".repeat(1_000_000) + "1d";
        let message = zeros.parse::<Age>().unwrap_err();
        assert!(message.len() < 200, "{} bytes", message.len());
    }
}
