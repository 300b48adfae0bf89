//! Progress of the long commands (export, import): how far, how fast, how long still,
//! redrawn in place on stderr when it is a terminal, and nothing at all otherwise.

use std::time::{Duration, Instant};

/// Redraws at most this often: a million calls must not become a million writes.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

pub struct RateMeter {
    label: &'static str,
    unit: &'static str,
    enabled: bool,
    started: Instant,
    /// Where this run started counting (an import resumed after line N starts at N), so
    /// the rate is this run's own.
    first: Option<u64>,
    last_drawn: Option<Instant>,
    shown: bool,
}

impl RateMeter {
    pub fn new(label: &'static str, unit: &'static str) -> RateMeter {
        RateMeter {
            label,
            unit,
            enabled: super::progress_wanted(),
            started: Instant::now(),
            first: None,
            last_drawn: None,
            shown: false,
        }
    }

    /// `done` of `total` (0: unknown).
    pub fn show(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let first = *self.first.get_or_insert(done);
        let now = Instant::now();
        if self
            .last_drawn
            .is_some_and(|at| now.duration_since(at) < REDRAW_EVERY && done < total)
        {
            return;
        }
        self.last_drawn = Some(now);
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = if elapsed > 0.0 {
            done.saturating_sub(first) as f64 / elapsed
        } else {
            0.0
        };
        let mut line = format!("\r{}: {}", self.label, thousands(done));
        match done.saturating_mul(100).checked_div(total) {
            Some(percent) => {
                line.push_str(&format!("/{} {} ({percent}%)", thousands(total), self.unit))
            }
            None => line.push_str(&format!(" {}", self.unit)),
        }
        line.push_str(&format!(", {} {}/s", thousands(rate as u64), self.unit));
        if total > done && rate >= 1.0 {
            let left = ((total - done) as f64 / rate).ceil() as u64;
            line.push_str(&format!(", ETA {}", clock(left)));
        }
        // Erase what a longer earlier line left behind.
        line.push_str("\x1b[K");
        crate::logging::terminal(&line);
        self.shown = true;
    }

    /// Takes the line away, so a message can be printed in its place; the next `show`
    /// draws it again.
    pub fn clear(&mut self) {
        if self.shown {
            crate::logging::terminal("\r\x1b[K");
            self.shown = false;
            self.last_drawn = None;
        }
    }

    /// Leaves the last line standing and moves below it.
    pub fn finish(&mut self) {
        if self.shown {
            crate::logging::terminal("\n");
            self.shown = false;
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 post`, `2 posts`, `1,000 posts`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", thousands(n))
    }
}

/// Seconds as `42s`, `3m07s` or `2h05m`.
fn clock(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_easily() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(clock(7), "7s");
        assert_eq!(clock(187), "3m07s");
        assert_eq!(clock(7500), "2h05m");
    }
}
