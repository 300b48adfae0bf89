//! The one writer connection, and group commit.
//!
//! SQLite admits one writer at a time, and with `synchronous=FULL` every commit waits for
//! the disk (one `fdatasync` of the WAL). Single-row writes therefore share commits: a
//! write that arrives while another is running or committing joins the next transaction
//! as a `SAVEPOINT` of its own, and the last writer of the group commits it, once, for
//! all. A write whose work fails rolls back to its savepoint — only its own work — and
//! answers at once; the others' answers leave only after the group's `COMMIT` returned,
//! so an acknowledged write is durable exactly as before. Every transaction still starts
//! with `BEGIN IMMEDIATE`.
//!
//! Bulk requests and maintenance run alone: they close any open group, then take a whole
//! `BEGIN IMMEDIATE … COMMIT` of their own (the design card: a bulk request is exactly one
//! transaction, and a 10,000-item create should not hold other writers' answers back).

use super::cluster::{Cluster, Session};
use super::sql::{self, Conn};
use super::{StoreError, StoreResult};
use std::ops::Deref;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Writes in one group at most: a bound on how long the first of them waits for the
/// commit while later ones keep arriving.
const MAX_GROUP: usize = 128;

/// An open write transaction, or a savepoint within one: what store code runs its
/// statements on. Only the store can make one.
pub struct Tx<'c> {
    conn: Conn<'c>,
}

impl<'c> Deref for Tx<'c> {
    type Target = Conn<'c>;

    fn deref(&self) -> &Conn<'c> {
        &self.conn
    }
}

/// The writer's connection: the local file, or a session on the cluster's leader, made
/// again when the leader changes.
pub enum WriterConn {
    Local(rusqlite::Connection),
    Cluster {
        cluster: Arc<Cluster>,
        session: Option<Session>,
    },
}

/// How long to wait between tries for a write lock another node's writer holds: dqlite
/// refuses at once ("database is locked"), it does not wait.
const LOCKED_PAUSE: Duration = Duration::from_millis(2);

impl WriterConn {
    fn conn(&self) -> sql::Result<Conn<'_>> {
        match self {
            WriterConn::Local(conn) => Ok(Conn::local(conn)),
            WriterConn::Cluster {
                session: Some(session),
                ..
            } => Ok(Conn::cluster(session)),
            WriterConn::Cluster { session: None, .. } => {
                Err(sql::Error::Unavailable("no session".into()))
            }
        }
    }

    /// `BEGIN IMMEDIATE`. Locally SQLite's busy handler waits for another process; on
    /// the cluster, a lock held by another node's writer is tried again every few
    /// milliseconds and a lost leader is looked for again, both within the cluster's
    /// timeout. Nothing is written until this succeeds, so trying again is safe.
    fn begin(&mut self) -> sql::Result<()> {
        let (cluster, session) = match self {
            WriterConn::Local(conn) => return Ok(conn.execute_batch("BEGIN IMMEDIATE")?),
            WriterConn::Cluster { cluster, session } => (cluster, session),
        };
        let deadline = Instant::now() + cluster.timeout();
        loop {
            if session.as_ref().is_none_or(Session::is_broken) {
                *session = Some(cluster.session()?);
            }
            let Some(current) = session.as_ref() else {
                continue;
            };
            let err = match current.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if Instant::now() >= deadline {
                return Err(err);
            }
            match err {
                err if err.is_busy() => std::thread::sleep(LOCKED_PAUSE),
                sql::Error::Unavailable(_) | sql::Error::OutcomeUnknown(_) => {
                    *session = None;
                    std::thread::sleep(LOCKED_PAUSE);
                }
                err => return Err(err),
            }
        }
    }

    /// After a failure that may have cost the connection: the next `begin` makes a new one.
    fn forget_session_if_lost(&mut self, err: &sql::Error) {
        if let WriterConn::Cluster { session, .. } = self {
            if matches!(
                err,
                sql::Error::Unavailable(_) | sql::Error::OutcomeUnknown(_)
            ) || session.as_ref().is_some_and(Session::is_broken)
            {
                *session = None;
            }
        }
    }
}

/// How a shared transaction ended, for each of its writes.
#[derive(Clone)]
enum Settled {
    Committed,
    Failed(sql::Error),
}

/// A transaction shared by a group of writes, and how its commit went.
#[derive(Default)]
struct Group {
    outcome: Mutex<Option<Settled>>,
    settled: Condvar,
}

impl Group {
    fn finish(&self, outcome: Settled) {
        *lock(&self.outcome) = Some(outcome);
        self.settled.notify_all();
    }

    fn wait(&self) -> Settled {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(done) = outcome.as_ref() {
                return done.clone();
            }
            outcome = self
                .settled
                .wait(outcome)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[derive(Default)]
struct State {
    /// Writes that have announced themselves and not yet run their work.
    arriving: usize,
    /// The open transaction and how many writes have run in it.
    open: Option<(Arc<Group>, usize)>,
}

/// What a write waited for before it could run, for the metrics.
pub type WaitObserver = Box<dyn Fn(Duration) + Send + Sync>;

pub struct Writer {
    /// Held while a write runs its work or a group commits: writers queue here.
    conn: Mutex<WriterConn>,
    state: Mutex<State>,
    observe_wait: Mutex<Option<WaitObserver>>,
    /// Transactions committed (each one sync of the WAL).
    commits: AtomicU64,
    /// Woken at every commit: the change feed's streams wait here for new events.
    committed: (Mutex<()>, Condvar),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Work runs under catch_unwind and what these guard stays consistent between
    // statements: a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    pub fn new(conn: WriterConn) -> Writer {
        Writer {
            conn: Mutex::new(conn),
            state: Mutex::new(State::default()),
            observe_wait: Mutex::new(None),
            commits: AtomicU64::new(0),
            committed: (Mutex::new(()), Condvar::new()),
        }
    }

    /// Transactions committed so far: with group commit, fewer than the writes.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    fn count_commit(&self) {
        let _signal = lock(&self.committed.0);
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.committed.1.notify_all();
    }

    /// Waits until a transaction after the `seen`-th commits, or `timeout` passes; returns
    /// the commits counted now. (Other processes' and other nodes' commits wake nobody:
    /// waiters look again when the timeout passes.)
    pub fn wait_for_commit(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = lock(&self.committed.0);
        let _ = self.committed.1.wait_timeout_while(guard, timeout, |_| {
            self.commits.load(Ordering::SeqCst) == seen
        });
        self.commits()
    }

    pub fn observe_waits(&self, observer: WaitObserver) {
        *lock(&self.observe_wait) = Some(observer);
    }

    fn observe(&self, waited: Duration) {
        if let Some(observer) = lock(&self.observe_wait).as_ref() {
            observer(waited);
        }
    }

    /// Runs `work` in a savepoint of a shared transaction; returns its result once the
    /// transaction is durable (or at once, when `work` failed).
    pub fn write_grouped<T>(&self, work: impl FnOnce(&Tx) -> StoreResult<T>) -> StoreResult<T> {
        let arrived = Instant::now();
        lock(&self.state).arriving += 1;
        let mut conn = lock(&self.conn);
        self.observe(arrived.elapsed());
        let group = match self.join_or_begin(&mut conn) {
            Ok(group) => group,
            Err(err) => {
                lock(&self.state).arriving -= 1;
                conn.forget_session_if_lost(&err);
                return Err(err.into());
            }
        };
        let outcome = match conn.conn() {
            Ok(current) => in_savepoint(current, work),
            Err(err) => Ok(Err(err.into())),
        };
        let commit_now = {
            let mut state = lock(&self.state);
            state.arriving -= 1;
            let members = state.open.as_ref().map_or(0, |(_, n)| *n);
            state.arriving == 0 || members >= MAX_GROUP
        };
        if commit_now {
            self.commit_open(&mut conn);
        }
        drop(conn);
        let result = match outcome {
            Ok(result) => result,
            // The savepoint is undone and the group went on without it.
            Err(panic) => resume_unwind(panic),
        };
        let value = result?;
        match group.wait() {
            Settled::Committed => Ok(value),
            Settled::Failed(err) => Err(committing(err)),
        }
    }

    /// Runs `work` in a transaction of its own, after committing any open group.
    pub fn write_alone<T>(&self, work: impl FnOnce(&Tx) -> StoreResult<T>) -> StoreResult<T> {
        let arrived = Instant::now();
        let mut conn = lock(&self.conn);
        self.observe(arrived.elapsed());
        self.commit_open(&mut conn);
        if let Err(err) = conn.begin() {
            conn.forget_session_if_lost(&err);
            return Err(err.into());
        }
        let current = conn.conn()?;
        let outcome = catch_unwind(AssertUnwindSafe(|| work(&Tx { conn: current })));
        let ended = match outcome {
            Ok(Ok(value)) => match current.execute_batch("COMMIT") {
                Ok(()) => {
                    self.count_commit();
                    Ok(value)
                }
                Err(err) => {
                    let _ = current.execute_batch("ROLLBACK");
                    Err(committing(err))
                }
            },
            Ok(Err(err)) => {
                let _ = current.execute_batch("ROLLBACK");
                Err(err)
            }
            Err(panic) => {
                let _ = current.execute_batch("ROLLBACK");
                drop(conn);
                resume_unwind(panic)
            }
        };
        if let Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_)) = &ended {
            conn.forget_session_if_lost(&sql::Error::Unavailable(String::new()));
        }
        ended
    }

    fn join_or_begin(&self, conn: &mut WriterConn) -> sql::Result<Arc<Group>> {
        let mut state = lock(&self.state);
        if let Some((group, members)) = state.open.as_mut() {
            *members += 1;
            return Ok(group.clone());
        }
        conn.begin()?;
        let group = Arc::new(Group::default());
        state.open = Some((group.clone(), 1));
        Ok(group)
    }

    /// Commits the open group, if any, and tells its members. The caller holds the
    /// connection, so nobody joins meanwhile; later arrivals start the next group.
    fn commit_open(&self, conn: &mut WriterConn) {
        let Some((group, _)) = lock(&self.state).open.take() else {
            return;
        };
        let committed = conn
            .conn()
            .and_then(|current| match current.execute_batch("COMMIT") {
                Ok(()) => Ok(()),
                Err(err) => {
                    let _ = current.execute_batch("ROLLBACK");
                    Err(err)
                }
            });
        match committed {
            Ok(()) => {
                self.count_commit();
                group.finish(Settled::Committed);
            }
            Err(err) => {
                conn.forget_session_if_lost(&err);
                group.finish(Settled::Failed(err));
            }
        }
    }
}

/// A failed COMMIT. On the cluster, losing the connection or the leader during it leaves
/// the outcome unknown: the commit may have reached a majority before the answer was lost.
fn committing(err: impl Into<StoreError>) -> StoreError {
    match err.into() {
        StoreError::Unavailable(why) | StoreError::OutcomeUnknown(why) => {
            StoreError::OutcomeUnknown(why)
        }
        other => other,
    }
}

/// Runs `work` between `SAVEPOINT` and `RELEASE`; on an error or a panic, rolls back to
/// the savepoint first, so only this work is undone.
fn in_savepoint<T>(
    conn: Conn<'_>,
    work: impl FnOnce(&Tx) -> StoreResult<T>,
) -> std::thread::Result<StoreResult<T>> {
    if let Err(err) = conn.execute_batch("SAVEPOINT write") {
        return Ok(Err(err.into()));
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| work(&Tx { conn })));
    let keep = matches!(outcome, Ok(Ok(_)));
    let end = if keep {
        conn.execute_batch("RELEASE write")
    } else {
        conn.execute_batch("ROLLBACK TO write; RELEASE write")
    };
    match (outcome, end) {
        (Ok(Ok(_)), Err(err)) => {
            // The work is in the transaction but could not be kept apart from it: undo it.
            let _ = conn.execute_batch("ROLLBACK TO write; RELEASE write");
            Ok(Err(err.into()))
        }
        (outcome, _) => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TempStore;
    use std::sync::Barrier;

    impl Writer {
        fn arriving(&self) -> usize {
            lock(&self.state).arriving
        }
    }

    fn insert(tx: &Tx, name: &str) -> StoreResult<()> {
        tx.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, 'h', 't')",
            [name],
        )?;
        Ok(())
    }

    fn user_exists(writer: &Writer, name: &str) -> bool {
        writer
            .write_alone(|tx| {
                Ok(tx.query_row(
                    "SELECT count(*) FROM users WHERE username = ?1",
                    [name],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .unwrap()
            == 1
    }

    /// Sixteen writes held at the door until all have arrived: one group, one commit; the
    /// one that fails and the one that panics leave nothing, the others are all durable.
    #[test]
    fn a_group_commits_once_and_a_failing_write_undoes_only_its_own_work() {
        const WRITERS: usize = 16;
        let t = TempStore::new("group");
        let writer = &t.store.writer;
        let before = writer.commits();
        let start = Barrier::new(WRITERS);
        let first = std::sync::atomic::AtomicBool::new(true);
        let outcomes: Vec<Result<StoreResult<()>, ()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..WRITERS)
                .map(|n| {
                    let (start, first) = (&start, &first);
                    scope.spawn(move || {
                        start.wait();
                        writer.write_grouped(|tx| {
                            insert(tx, &format!("user{n}"))?;
                            // Whoever runs first waits until everybody is queued.
                            if first.swap(false, Ordering::SeqCst) {
                                while writer.arriving() < WRITERS {
                                    std::thread::yield_now();
                                }
                            }
                            match n {
                                3 => Err(StoreError::conflict("refused on purpose")),
                                5 => panic!("a bug in a handler"),
                                _ => Ok(()),
                            }
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| ()))
                .collect()
        });
        for (n, outcome) in outcomes.iter().enumerate() {
            match n {
                3 => assert!(matches!(outcome, Ok(Err(StoreError::Refused { .. })))),
                5 => assert!(outcome.is_err(), "the panic reaches its caller"),
                _ => assert!(matches!(outcome, Ok(Ok(()))), "{n}: {outcome:?}"),
            }
            assert_eq!(
                user_exists(writer, &format!("user{n}")),
                n != 3 && n != 5,
                "{n}"
            );
        }
        // The 16 writes plus the 16 checks above, which ran alone.
        assert_eq!(writer.commits() - before, 1 + WRITERS as u64);
    }

    #[test]
    fn a_write_alone_closes_the_open_group_first() {
        let t = TempStore::new("alone");
        let writer = &t.store.writer;
        writer.write_grouped(|tx| insert(tx, "grouped")).unwrap();
        writer.write_alone(|tx| insert(tx, "alone")).unwrap();
        assert!(writer.write_alone(|tx| insert(tx, "alone")).is_err());
        assert!(user_exists(writer, "grouped") && user_exists(writer, "alone"));
    }
}
