//! A tiny reproducible random sequence for the tests that choose at random (soak's
//! operations, crash's kill delays), replayed from a printed seed.

/// xorshift64.
pub struct Rng(u64);

impl Rng {
    /// Any seed; xorshift needs a non-zero state, so 0 counts as 1.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// For tests that kill processes at random moments: seeded from `POSTD_CRASH_SEED`,
    /// else from the clock, and the seed printed so that a failure can be replayed.
    pub fn from_crash_seed(test: &str) -> Rng {
        let seed = std::env::var("POSTD_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9E37_79B9_7F4A_7C15)
            })
            .max(1);
        println!("{test}: seed {seed} (replay with POSTD_CRASH_SEED={seed})");
        Rng::new(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len())])
        }
    }

    /// Up to `n` distinct items.
    pub fn sample<T: Copy + PartialEq>(&mut self, items: &[T], n: usize) -> Vec<T> {
        let mut out = Vec::new();
        for _ in 0..n * 3 {
            if out.len() == n {
                break;
            }
            if let Some(item) = self.pick(items) {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
        }
        out
    }
}
