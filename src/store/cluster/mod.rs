//! The cluster way to SQLite: dqlite, reached over its wire protocol (`crates/dqlite`).
//!
//! Only the leader runs SQL (dqlite 1.11), so every session is a connection to the
//! current leader with the `postd` database open on it. Sessions are pooled; when one
//! finds the leader gone (a connection error, "not leader"), every idle one is dropped
//! too — they all pointed at the same lost leader — and the next request finds the new
//! leader through the `Connector`, waiting for an election at most `--cluster-timeout`.
//!
//! What dqlite 1.11 can not do, and how the store avoids it: RETURNING (no statement of
//! the store's uses it), more than 255 parameters per statement (multi-row inserts size
//! themselves by `Conn::max_params`), text holding NUL (bound as a blob, read back as
//! text), `PRAGMA journal_mode =` and VACUUM (never sent: both abort the server).

pub mod node;

use super::sql::{Error, Result, ToSql, ToSqlValue};
use dqlite::{Client, Connector, DbId, Param};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The replicated database's name on the cluster.
pub const DATABASE: &str = "postd";

/// One connection to the leader, with the database open on it and its prepared
/// statements kept by their text. Used by one thread at a time.
pub struct Session {
    client: RefCell<Client>,
    db: DbId,
    statements: RefCell<HashMap<String, dqlite::Stmt>>,
    /// The id of the last row an INSERT on this connection made.
    last_insert_id: std::cell::Cell<i64>,
    /// The pool's generation when this session was made: older ones are not reused.
    generation: u64,
}

/// What a statement did.
pub struct Done {
    pub rows: usize,
    pub last_insert_id: i64,
}

impl From<dqlite::Error> for Error {
    fn from(err: dqlite::Error) -> Error {
        if err.is_leadership_lost() {
            Error::OutcomeUnknown(err.to_string())
        } else if err.is_not_leader() || err.is_connection_error() {
            Error::Unavailable(err.to_string())
        } else {
            match err {
                dqlite::Error::Server { code, message } => Error::Sqlite {
                    code: i32::try_from(code).unwrap_or(1),
                    message,
                },
                // No database on this connection any more (the node lost its leadership),
                // no leader found, or a library problem: nothing was done.
                other => Error::Unavailable(other.to_string()),
            }
        }
    }
}

impl Session {
    fn open(mut client: Client, database: &str, generation: u64) -> Result<Session> {
        let db = client.open(database)?;
        // As on the file (store/local.rs): what is deleted is zeroed within its page.
        // It answers with a row: a query (dqlite refuses a statement with rows as an exec).
        client
            .query_sql(db, "PRAGMA secure_delete = FAST", &[])?
            .collect_all()?;
        // dqlite 1.11.1 fails a transaction whose pages SQLite spills before its commit
        // ("disk I/O error", SQLITE_IOERR_SHORT_READ; fixed in 1.13): a bulk request of
        // 10,000 posts did, one time in three. Without spilling, a transaction's pages
        // stay in this connection's cache until it commits; max_bulk bounds them.
        client.exec_sql(db, "PRAGMA cache_spill = OFF", &[])?;
        Ok(Session {
            client: RefCell::new(client),
            db,
            statements: RefCell::new(HashMap::new()),
            last_insert_id: std::cell::Cell::new(0),
            generation,
        })
    }

    pub fn last_insert_id(&self) -> i64 {
        self.last_insert_id.get()
    }

    pub fn is_broken(&self) -> bool {
        self.client.borrow().is_broken()
    }

    /// The statement prepared for `sql` on this connection (prepared on first use).
    fn statement(&self, client: &mut Client, sql: &str) -> Result<dqlite::StmtId> {
        if let Some(stmt) = self.statements.borrow().get(sql) {
            return Ok(stmt.id);
        }
        let stmt = client.prepare(self.db, sql)?;
        self.statements.borrow_mut().insert(sql.to_owned(), stmt);
        Ok(stmt.id)
    }

    pub(crate) fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Done> {
        let values: Vec<ToSqlValue<'_>> = params.iter().map(|p| p.to_sql()).collect();
        let params: Vec<Param<'_>> = values.iter().map(param).collect();
        let mut client = self.client.borrow_mut();
        let stmt = self.statement(&mut client, sql)?;
        let done = client.exec(self.db, stmt, &params)?;
        self.last_insert_id.set(done.last_insert_id);
        Ok(Done {
            rows: usize::try_from(done.rows_affected).unwrap_or(usize::MAX),
            last_insert_id: done.last_insert_id,
        })
    }

    /// Statements without parameters, run one after another (dqlite runs every statement
    /// of the text; the first failure stops the rest).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        self.client.borrow_mut().exec_sql(self.db, sql, &[])?;
        Ok(())
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        each: &mut dyn FnMut(&[dqlite::Value]) -> Result<()>,
    ) -> Result<()> {
        let values: Vec<ToSqlValue<'_>> = params.iter().map(|p| p.to_sql()).collect();
        let params: Vec<Param<'_>> = values.iter().map(param).collect();
        let mut client = self.client.borrow_mut();
        let stmt = self.statement(&mut client, sql)?;
        let mut rows = client.query(self.db, stmt, &params)?;
        // Read to the end even after an error of `each`: a stream left half read would
        // be drained by the next request anyway, and the leader streams it regardless.
        let mut outcome = Ok(());
        while let Some(row) = rows.next_row()? {
            if outcome.is_ok() {
                outcome = each(&row);
            }
        }
        outcome
    }
}

/// A parameter as the wire carries it. Text holding NUL can not be sent as text (the
/// wire NUL-terminates it): it goes as a blob, and comes back as text (`FromSql`).
fn param<'a>(value: &'a ToSqlValue<'a>) -> Param<'a> {
    match value {
        ToSqlValue::Null => Param::Null,
        ToSqlValue::Integer(n) => Param::Integer(*n),
        ToSqlValue::Real(x) => Param::Float(*x),
        ToSqlValue::Text(text) if text.contains('\0') => Param::Blob(text.as_bytes()),
        ToSqlValue::Text(text) => Param::Text(text),
        ToSqlValue::Blob(bytes) => Param::Blob(bytes),
    }
}

/// How this process reaches the cluster: the addresses to ask for the leader, how long
/// to wait for one, and the idle sessions.
pub struct Cluster {
    seeds: Mutex<Vec<String>>,
    /// The database's name on the cluster: [`DATABASE`] for postd.
    database: String,
    timeout: Duration,
    idle: Mutex<Vec<Session>>,
    /// Bumped whenever a session finds the leader gone: older sessions are dropped.
    generation: AtomicU64,
}

/// How often to look for a leader again while there is none.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

impl Cluster {
    /// `seeds`: cluster addresses to ask; `timeout`: how long a request may wait for a
    /// leader (`--cluster-timeout`).
    pub fn new(seeds: Vec<String>, timeout: Duration, database: &str) -> Cluster {
        Cluster {
            seeds: Mutex::new(seeds),
            database: database.to_owned(),
            timeout,
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn seeds(&self) -> Vec<String> {
        lock(&self.seeds).clone()
    }

    /// Adds addresses to ask (the members the cluster lists), keeping the order.
    pub fn learn(&self, addresses: impl IntoIterator<Item = String>) {
        let mut seeds = lock(&self.seeds);
        for address in addresses {
            if !seeds.contains(&address) {
                seeds.push(address);
            }
        }
    }

    /// A client of the current leader, waiting for one until `deadline`.
    pub fn leader_client(&self, deadline: Instant) -> Result<Client> {
        let seeds = self.seeds();
        let left = deadline.saturating_duration_since(Instant::now());
        let connected = Connector::new(seeds)
            .timeout(left.max(Duration::from_millis(1)))
            .request_timeout(self.timeout)
            .connect();
        connected.map_err(|err| Error::Unavailable(err.to_string()))
    }

    /// A session on the leader: an idle one of the current generation, or a new one.
    pub fn session(&self) -> Result<Session> {
        let generation = self.generation.load(Ordering::SeqCst);
        while let Some(session) = lock(&self.idle).pop() {
            if session.generation == generation && !session.is_broken() {
                return Ok(session);
            }
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let outcome = self
                .leader_client(deadline)
                .and_then(|client| Session::open(client, &self.database, generation));
            match outcome {
                Ok(session) => return Ok(session),
                Err(err) if Instant::now() >= deadline => return Err(err),
                Err(_) => std::thread::sleep(RETRY_PAUSE),
            }
        }
    }

    /// Takes a session back after use; one that met a lost leader ends its generation.
    pub fn give_back(&self, session: Session, outcome_was_unavailable: bool) {
        if outcome_was_unavailable || session.is_broken() {
            self.forget_leader(session.generation);
            return;
        }
        if session.generation == self.generation.load(Ordering::SeqCst) {
            lock(&self.idle).push(session);
        }
    }

    /// The leader of `generation` is gone: drop every idle session made for it.
    pub fn forget_leader(&self, generation: u64) {
        if self
            .generation
            .compare_exchange(
                generation,
                generation + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        {
            lock(&self.idle).clear();
        }
    }

    /// Runs `work` on a session to the leader. A session found stale (its leader gone
    /// while it was idle) is replaced and `work` run again: it is a read, and nothing of
    /// it was done. Gives up when no leader answers within the timeout.
    pub fn with_session<T>(&self, mut work: impl FnMut(&Session) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let session = self.session()?;
            let outcome = work(&session);
            let unavailable = matches!(outcome, Err(Error::Unavailable(_)));
            self.give_back(session, unavailable);
            match outcome {
                Err(Error::Unavailable(_)) if Instant::now() < deadline => {
                    std::thread::sleep(RETRY_PAUSE)
                }
                outcome => return outcome,
            }
        }
    }
}

/// A member of the cluster, as the leader lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub id: u64,
    pub address: String,
    /// `voter`, `standby` or `spare`.
    pub role: &'static str,
}

/// The cluster as its leader sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Status {
    pub leader: Member,
    pub members: Vec<Member>,
}

fn role_name(role: dqlite::NodeRole) -> &'static str {
    match role {
        dqlite::NodeRole::Voter => "voter",
        dqlite::NodeRole::StandBy => "standby",
        dqlite::NodeRole::Spare => "spare",
    }
}

impl Cluster {
    /// The members and the leader, from the leader; the addresses are remembered for
    /// finding the leader later.
    pub fn status(&self) -> Result<Status> {
        let deadline = Instant::now() + self.timeout;
        let mut client = self.leader_client(deadline)?;
        let leader = client
            .leader()?
            .ok_or_else(|| Error::Unavailable("no leader".into()))?;
        let members: Vec<Member> = client
            .cluster()?
            .into_iter()
            .map(|node| Member {
                id: node.id,
                address: node.address,
                role: role_name(node.role),
            })
            .collect();
        self.learn(members.iter().map(|m| m.address.clone()));
        let leader = members
            .iter()
            .find(|m| m.id == leader.id)
            .cloned()
            .unwrap_or(Member {
                id: leader.id,
                address: leader.address,
                role: "voter",
            });
        Ok(Status { leader, members })
    }

    /// Removes member `id` (through the leader).
    pub fn remove(&self, id: u64) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let mut client = self.leader_client(deadline)?;
        client.remove(id)?;
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
