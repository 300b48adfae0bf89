//! Throttles for the two endpoints that cost an Argon2 hash: failed logins (per username
//! and per client address) and sign-ups (per client address). Kept in memory, bounded: a
//! restart forgets them, which only ever helps the legitimate user.
//!
//! Check and count are one step under one lock: an attempt is counted when it starts and
//! taken back if it turns out not to count (a successful login), so N concurrent attempts
//! are N attempts, however they interleave.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts counted over this window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed logins for one username within a window before it is refused. Low enough to
/// stop guessing one account from many addresses.
pub const PER_USERNAME: u32 = 10;
/// Failed logins from one client address (an IPv6 /64) within a window, whatever the
/// usernames.
pub const PER_ADDRESS: u32 = 30;
/// Most keys one throttle remembers. Each is at most ~150 bytes (a username is at most 32
/// characters, checked before it gets here), so a throttle holds at most ~5 MiB, whatever
/// the traffic. When full, expired windows go first, then the oldest.
pub const MAX_KEYS: usize = 32_768;
/// How often expired windows are swept even when the map is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct Window {
    started: Instant,
    count: u32,
}

/// Counting windows per key, bounded to `MAX_KEYS`.
struct Windows<K> {
    map: HashMap<K, Window>,
    last_sweep: Instant,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    fn new() -> Windows<K> {
        Windows {
            map: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }

    /// How long until `key` may try again, if it has used up `limit`.
    fn blocked(&self, key: &K, limit: u32, now: Instant) -> Option<Duration> {
        let window = self.map.get(key)?;
        let ends = window.started + WINDOW;
        (window.count >= limit && ends > now).then(|| ends - now)
    }

    fn add(&mut self, key: &K, now: Instant) {
        if !self.map.contains_key(key) {
            self.make_room(now);
        }
        let window = self.map.entry(key.clone()).or_insert(Window {
            started: now,
            count: 0,
        });
        if window.started + WINDOW <= now {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
    }

    fn take_back(&mut self, key: &K) {
        if let Some(window) = self.map.get_mut(key) {
            window.count = window.count.saturating_sub(1);
        }
    }

    fn make_room(&mut self, now: Instant) {
        if self.map.len() >= MAX_KEYS || now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.map.retain(|_, w| w.started + WINDOW > now);
            self.last_sweep = now;
        }
        if self.map.len() >= MAX_KEYS {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, w)| w.started)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic: a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Failed-login windows per username and per client address.
pub struct LoginThrottle {
    usernames: Mutex<Windows<String>>,
    addresses: Mutex<Windows<IpAddr>>,
}

impl Default for LoginThrottle {
    fn default() -> LoginThrottle {
        LoginThrottle {
            usernames: Mutex::new(Windows::new()),
            addresses: Mutex::new(Windows::new()),
        }
    }
}

/// A login attempt that has been counted as a failure until it says otherwise.
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    username: String,
    address: IpAddr,
    settled: bool,
}

impl LoginThrottle {
    /// Counts an attempt for `username` (case-insensitive) from `address` (the throttle
    /// unit), or says how long to wait when either has used up its failures.
    pub fn begin(&self, username: &str, address: IpAddr) -> Result<LoginAttempt<'_>, Duration> {
        let username = username.to_ascii_lowercase();
        let now = Instant::now();
        // Both locks, always in this order, for one atomic check-and-count.
        let mut usernames = lock(&self.usernames);
        let mut addresses = lock(&self.addresses);
        let wait = [
            usernames.blocked(&username, PER_USERNAME, now),
            addresses.blocked(&address, PER_ADDRESS, now),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        usernames.add(&username, now);
        addresses.add(&address, now);
        Ok(LoginAttempt {
            throttle: self,
            username,
            address,
            settled: false,
        })
    }
}

impl LoginAttempt<'_> {
    /// The password was wrong (or the user unknown): the attempt stays counted.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// A successful login clears the username's failures and is no failure of the
    /// address.
    pub fn succeeded(mut self) {
        self.settled = true;
        lock(&self.throttle.usernames).map.remove(&self.username);
        lock(&self.throttle.addresses).take_back(&self.address);
    }
}

impl Drop for LoginAttempt<'_> {
    /// An attempt that ended neither way (the database failed) is not counted.
    fn drop(&mut self) {
        if !self.settled {
            lock(&self.throttle.usernames).take_back(&self.username);
            lock(&self.throttle.addresses).take_back(&self.address);
        }
    }
}

/// Sign-ups per client address: each costs an Argon2 hash.
pub struct RegisterThrottle {
    /// 0: no limit.
    limit: u32,
    addresses: Mutex<Windows<IpAddr>>,
}

impl RegisterThrottle {
    pub fn new(limit: u32) -> RegisterThrottle {
        RegisterThrottle {
            limit,
            addresses: Mutex::new(Windows::new()),
        }
    }

    /// Counts a sign-up from `address`, or says how long to wait.
    pub fn count(&self, address: IpAddr) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut addresses = lock(&self.addresses);
        if let Some(wait) = addresses.blocked(&address, self.limit, now) {
            return Err(wait);
        }
        addresses.add(&address, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_after_the_limit_and_success_resets_the_username() {
        let throttle = LoginThrottle::default();
        let address = ip("127.0.0.1");
        for _ in 0..PER_USERNAME {
            throttle.begin("Alice", address).unwrap().failed();
        }
        let wait = throttle.begin("ALICE", ip("10.0.0.9")).err().unwrap();
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(5));
        // Not for another name from elsewhere.
        throttle.begin("bob", ip("10.0.0.9")).unwrap().succeeded();
        lock(&throttle.usernames).map.remove("alice");
        throttle.begin("alice", address).unwrap().succeeded();
        for n in 0..PER_ADDRESS - PER_USERNAME {
            throttle
                .begin(&format!("user{n}"), address)
                .unwrap()
                .failed();
        }
        assert!(throttle.begin("carol", address).is_err(), "address limit");
        assert!(throttle.begin("carol", ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_and_unsettled_ones_are_taken_back() {
        let throttle = LoginThrottle::default();
        let address = ip("192.0.2.1");
        let in_flight: Vec<_> = (0..PER_USERNAME)
            .map(|_| throttle.begin("dave", address).unwrap())
            .collect();
        assert!(throttle.begin("dave", address).is_err(), "the 11th waits");
        drop(in_flight);
        assert!(
            throttle.begin("dave", address).is_ok(),
            "dropped ones were not failures"
        );
    }

    #[test]
    fn memory_is_bounded_whatever_the_traffic() {
        let throttle = LoginThrottle::default();
        for n in 0..(MAX_KEYS as u32 + 1000) {
            let address = IpAddr::from(n.to_be_bytes());
            throttle.begin(&format!("u{n}"), address).unwrap().failed();
        }
        assert!(lock(&throttle.usernames).len() <= MAX_KEYS);
        assert!(lock(&throttle.addresses).len() <= MAX_KEYS);
    }

    #[test]
    fn sign_ups_are_counted_per_address_and_zero_is_no_limit() {
        let throttle = RegisterThrottle::new(2);
        let a = ip("198.51.100.7");
        assert!(throttle.count(a).is_ok() && throttle.count(a).is_ok());
        assert!(throttle.count(a).is_err());
        assert!(throttle.count(ip("198.51.100.8")).is_ok());
        let off = RegisterThrottle::new(0);
        assert!((0..100).all(|_| off.count(a).is_ok()));
    }
}
