//! The retention sweeps, threads beside the server: the trash's (`--trash-retention`)
//! permanently deletes posts soft-deleted longer ago than the retention; the audit log's
//! (`--audit-retention`) removes events older than its retention (never an erasure's).
//! Each works in batches of at most `BATCH` rows, each one transaction of its own (the
//! trash's with its own audit event), and steps aside between batches, so a writer waits
//! for one batch at most, never for a whole sweep; a crash loses at most the batch in
//! flight, whole. In a cluster one node at a time sweeps: a lease in the database says
//! which.

use crate::clock::{Age, Timestamp};
use crate::store::{Store, StoreResult};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Posts per transaction at most.
pub const BATCH: usize = 1000;

/// Between two batches of one sweep: long enough for the writers that queued behind a
/// batch to take the writer first (the lock is not fair; without a pause the sweep takes
/// it straight back).
const STEP_ASIDE: Duration = Duration::from_millis(2);

/// How often the sweep runs: every minute, or every quarter of the retention when that is
/// shorter, at most once a second. A post is gone between `retention` and
/// `retention + interval` after its deletion (plus the time the sweep takes). Deriving it
/// from the retention, rather than a knob of its own, lets a test with a retention of a
/// few seconds see the sweep work within seconds.
pub fn interval(retention: &Age) -> Duration {
    (retention.duration() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// What a sweep removes, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Posts soft-deleted before the cutoff (`trash.purge` events).
    Trash,
    /// Audit events older than the cutoff, erasures excepted.
    AuditLog,
}

impl Kind {
    fn lease(self) -> &'static str {
        match self {
            Kind::Trash => "trash-retention",
            Kind::AuditLog => "audit-retention",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Trash => "posts soft-deleted",
            Kind::AuditLog => "audit events written",
        }
    }

    /// One batch: rows removed.
    fn batch(self, store: &Store, cutoff: &Timestamp, retention: &Age) -> StoreResult<usize> {
        match self {
            Kind::Trash => store.purge_expired_batch(cutoff, retention, BATCH),
            Kind::AuditLog => store.expire_audit_batch(cutoff, BATCH),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Rows removed (posts, or events).
    pub posts: usize,
    pub batches: usize,
    /// The longest batch, from asking for the writer to its commit: how long the sweep
    /// held other writers up at most.
    pub longest_batch: Duration,
    pub total: Duration,
}

#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps up to `pause`; `true` when told to stop meanwhile.
    fn wait(&self, pause: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, pause, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }
}

/// Time beyond two intervals a lease lasts: a sweep's own length.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// The running sweep; dropping it stops the thread after the batch in flight, if any.
pub struct Sweeper {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Sweeps now, then every `interval(&retention)`, until dropped. `holder` names this
    /// process for the lease that lets one node of a cluster sweep at a time.
    pub fn start(
        store: Arc<Store>,
        kind: Kind,
        retention: Age,
        holder: String,
    ) -> Result<Sweeper, String> {
        let stop = Arc::new(Stop::default());
        let stop_seen = stop.clone();
        let every = interval(&retention);
        let announced = format!(
            "{} retention {retention}: sweeping every {} s",
            match kind {
                Kind::Trash => "trash",
                Kind::AuditLog => "audit log",
            },
            every.as_secs()
        );
        let thread = std::thread::Builder::new()
            .name(kind.lease().into())
            .spawn(move || loop {
                // The lease outlasts two intervals: a node that stopped sweeping passes
                // the work on within them; one that goes on keeps it.
                let lease = store.take_lease(kind.lease(), &holder, every * 2 + LEASE_MARGIN);
                let outcome = match lease {
                    Ok(true) => sweep(&store, kind, &retention, &stop_seen),
                    Ok(false) => Ok(Swept::default()),
                    Err(err) => Err(err.to_string()),
                };
                match outcome {
                    Ok(swept) if swept.posts > 0 => log::info!(
                        "retention sweep removed {} {} more than {retention} ago in {} batches; longest batch {:.1} ms, whole sweep {:.1} ms",
                        swept.posts,
                        kind.what(),
                        swept.batches,
                        swept.longest_batch.as_secs_f64() * 1000.0,
                        swept.total.as_secs_f64() * 1000.0,
                    ),
                    Ok(_) => {}
                    Err(err) => log::warn!("retention sweep stopped early, will try again: {err}"),
                }
                if stop_seen.wait(every) {
                    return;
                }
            })
            .map_err(|err| format!("cannot start the retention sweep: {err}"))?;
        log::info!("{announced}");
        Ok(Sweeper {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        *self
            .stop
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One sweep: batches until one comes back short or the sweeper is stopped. The cutoff is
/// fixed when the sweep starts, so a sweep always ends.
fn sweep(store: &Store, kind: Kind, retention: &Age, stop: &Stop) -> Result<Swept, String> {
    let started = Instant::now();
    let cutoff = retention.before_now();
    let mut swept = Swept::default();
    while !stop.is_set() {
        let batch_started = Instant::now();
        let purged = kind
            .batch(store, &cutoff, retention)
            .map_err(|err| err.to_string())?;
        swept.longest_batch = swept.longest_batch.max(batch_started.elapsed());
        if purged > 0 {
            swept.batches += 1;
            swept.posts += purged;
        }
        if purged < BATCH {
            break;
        }
        std::thread::sleep(STEP_ASIDE);
    }
    swept.total = started.elapsed();
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_runs_at_least_once_a_minute_and_at_most_once_a_second() {
        let every = |text: &str| interval(&text.parse().unwrap());
        assert_eq!(every("30d"), Duration::from_secs(60));
        assert_eq!(every("2m"), Duration::from_secs(30));
        assert_eq!(every("8s"), Duration::from_secs(2));
        assert_eq!(every("0s"), Duration::from_secs(1));
    }
}
