//! Login failure throttling, per username and per client address. Kept in memory: a
//! restart forgets it, which only ever helps the legitimate user.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures counted over this window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed logins for one username within a window before it is refused. Low enough to
/// stop guessing one account from many addresses.
pub const PER_USERNAME: u32 = 10;
/// Failed logins from one address within a window, whatever the usernames.
pub const PER_ADDRESS: u32 = 30;
/// Entries kept at most; beyond it expired windows are swept, then the oldest dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Username(String),
    Address(IpAddr),
}

struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<Key, Window>>,
}

impl LoginThrottle {
    fn keys(username: &str, address: Option<IpAddr>) -> Vec<(Key, u32)> {
        let mut keys = vec![(Key::Username(username.to_ascii_lowercase()), PER_USERNAME)];
        if let Some(address) = address {
            keys.push((Key::Address(address), PER_ADDRESS));
        }
        keys
    }

    /// `Some(wait)` when this username or address has used up its failures.
    pub fn blocked_for(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        Self::keys(username, address)
            .into_iter()
            .filter_map(|(key, limit)| {
                let window = windows.get(&key)?;
                let ends = window.started + WINDOW;
                (window.failures >= limit && ends > now).then(|| ends - now)
            })
            .max()
    }

    pub fn record_failure(&self, username: &str, address: Option<IpAddr>) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if windows.len() >= MAX_ENTRIES {
            windows.retain(|_, w| w.started + WINDOW > now);
            if windows.len() >= MAX_ENTRIES {
                if let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone())
                {
                    windows.remove(&oldest);
                }
            }
        }
        for (key, _) in Self::keys(username, address) {
            let window = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if window.started + WINDOW <= now {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures += 1;
        }
    }

    /// A successful login clears the username's count (not the address's).
    pub fn record_success(&self, username: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&Key::Username(username.to_ascii_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_success_resets_the_username() {
        let throttle = LoginThrottle::default();
        let address: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..PER_USERNAME {
            assert!(throttle.blocked_for("Alice", Some(address)).is_none());
            throttle.record_failure("alice", Some(address));
        }
        let wait = throttle.blocked_for("ALICE", None).unwrap();
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(5));
        throttle.record_success("alice");
        assert!(throttle.blocked_for("alice", Some(address)).is_none());
        for n in 0..PER_ADDRESS {
            throttle.record_failure(&format!("user{n}"), Some(address));
        }
        assert!(
            throttle.blocked_for("bob", Some(address)).is_some(),
            "address limit"
        );
        assert!(throttle
            .blocked_for("bob", Some("10.0.0.1".parse().unwrap()))
            .is_none());
    }
}
