//! A blocking client: one TCP connection to one dqlite node.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::guard::{self, Use};
use crate::wire::{
    self, BatchEnd, DbId, ExecResult, File, Header, Metadata, NodeInfo, NodeRole, Param, Request,
    Response, RowItem, Stmt, StmtId, Value, HEADER_SIZE,
};

/// Default per-request deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on one response's size; DUMP answers hold a whole database.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 30;

/// Bodies are read in slices of this size, so a header announcing a huge
/// body only costs memory as the bytes actually arrive.
const READ_CHUNK: usize = 1 << 20;

/// The current leader as reported by a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Leader's node id.
    pub id: u64,
    /// Leader's address.
    pub address: String,
}

/// A whole result set, for queries small enough to hold in memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultSet {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// One connection to one dqlite node.
///
/// Requests run one at a time (the server does not pipeline). Every request
/// has a deadline of [`Client::timeout`] covering sending it and reading its
/// answer (for a query, each batch of rows gets its own deadline). After an
/// I/O error, a timeout or an undecodable answer the client is broken and
/// every later call fails; server-side errors ([`Error::Server`]) leave it
/// usable.
///
/// Only the leader runs SQL; a follower answers "not leader"
/// ([`Error::is_not_leader`]). Use a [`Connector`](crate::Connector) to reach
/// the leader. A connection opens at most one database (dqlite 1.11 refuses
/// a second OPEN), and when its node loses leadership the server closes that
/// database and its statements: reconnect then.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    address: String,
    timeout: Duration,
    max_message_size: usize,
    /// Why the connection can no longer be used, once it cannot.
    broken: Option<String>,
    /// The server still owes batches of a query. `Rows` drains them when
    /// dropped early; if it was leaked, the next request drains them first.
    stream_pending: bool,
    /// Prepared statements using RETURNING, which must not run as queries.
    returning_stmts: HashSet<u32>,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

impl Client {
    /// Connects to `address` ("host:port"), performs the protocol handshake
    /// and uses `timeout` as the deadline of connecting and of each request.
    pub fn connect(address: &str, timeout: Duration) -> Result<Client> {
        if timeout.is_zero() {
            return Err(Error::InvalidInput("timeout must not be zero".into()));
        }
        let deadline = Instant::now() + timeout;
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .map_err(|err| {
                Error::Io(io::Error::new(
                    err.kind(),
                    format!("resolve {address}: {err}"),
                ))
            })?
            .collect();
        let mut last_err = io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address} resolves to no address"),
        );
        let mut connected = None;
        for addr in addrs {
            let Some(left) = remaining(deadline) else {
                return Err(Error::Timeout);
            };
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    connected = Some(stream);
                    break;
                }
                Err(err) => last_err = err,
            }
        }
        let Some(stream) = connected else {
            return Err(match Error::from(last_err) {
                Error::Io(err) => Error::Io(io::Error::new(
                    err.kind(),
                    format!("connect to {address}: {err}"),
                )),
                other => other,
            });
        };
        // Requests are small and answered one by one: Nagle would only add
        // latency.
        stream.set_nodelay(true)?;
        let mut client = Client {
            stream,
            address: address.to_string(),
            timeout,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            broken: None,
            stream_pending: false,
            returning_stmts: HashSet::new(),
            send_buf: Vec::with_capacity(256),
            recv_buf: Vec::with_capacity(4096),
        };
        let handshake = wire::handshake();
        let result = client.write_all_by(&handshake, deadline);
        client.check(result)?;
        Ok(client)
    }

    /// The address this client connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the per-request deadline; zero is refused.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return Err(Error::InvalidInput("timeout must not be zero".into()));
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Changes the largest response accepted (default 1 GiB); a larger one
    /// is a protocol error.
    pub fn set_max_message_size(&mut self, bytes: usize) {
        self.max_message_size = bytes;
    }

    /// True once an I/O error, timeout or protocol error made the connection
    /// unusable.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The current leader as this node knows it, or `None` when it knows of
    /// none (during an election, or when this node is not a voter: only
    /// voters track the leader).
    pub fn leader(&mut self) -> Result<Option<Leader>> {
        match self.call(Request::Leader)? {
            Response::Node { id, address } => Ok(if address.is_empty() {
                None
            } else {
                Some(Leader { id, address })
            }),
            other => Err(self.unexpected("leader", &other)),
        }
    }

    /// Registers this connection under a client id (the CLIENT request, as
    /// go-dqlite's connector sends after finding the leader). Returns the
    /// server's heartbeat timeout. Optional: the server needs no
    /// registration.
    pub fn register_client(&mut self, id: u64) -> Result<Duration> {
        match self.call(Request::Client { id })? {
            Response::Welcome { heartbeat_timeout } => Ok(Duration::from_millis(heartbeat_timeout)),
            other => Err(self.unexpected("client", &other)),
        }
    }

    /// Opens (creating if needed) the database `name`. A connection can
    /// open only one database; a second OPEN fails with SQLITE_BUSY.
    pub fn open(&mut self, name: &str) -> Result<DbId> {
        match self.call(Request::Open { name })? {
            Response::Db { id } => Ok(DbId(id)),
            other => Err(self.unexpected("open", &other)),
        }
    }

    /// Prepares one SQL statement; text after the first statement is
    /// ignored by the server. Statements known to crash dqlite 1.11 are
    /// refused (see the README).
    pub fn prepare(&mut self, db: DbId, sql: &str) -> Result<Stmt> {
        guard::check(sql, Use::Exec)?;
        match self.call(Request::Prepare { db: db.0, sql })? {
            Response::Stmt { id, params, .. } => {
                // Ids are reused after FINALIZE or a reopen, so always
                // overwrite what was known about this one.
                if guard::has_returning(sql) {
                    self.returning_stmts.insert(id);
                } else {
                    self.returning_stmts.remove(&id);
                }
                Ok(Stmt {
                    id: StmtId(id),
                    params,
                })
            }
            other => Err(self.unexpected("prepare", &other)),
        }
    }

    /// Runs a prepared statement that returns no rows.
    pub fn exec(&mut self, db: DbId, stmt: StmtId, params: &[Param<'_>]) -> Result<ExecResult> {
        let request = Request::Exec {
            db: db.0,
            stmt: stmt.0,
            params,
        };
        match self.call(request)? {
            Response::Result(result) => Ok(result),
            other => Err(self.unexpected("exec", &other)),
        }
    }

    /// Runs a prepared query and streams its rows.
    pub fn query(&mut self, db: DbId, stmt: StmtId, params: &[Param<'_>]) -> Result<Rows<'_>> {
        if self.returning_stmts.contains(&stmt.0) {
            return Err(Error::InvalidInput(
                "statement refused: RETURNING run as a query crashes dqlite 1.11".into(),
            ));
        }
        let request = Request::Query {
            db: db.0,
            stmt: stmt.0,
            params,
        };
        self.start_rows(request)
    }

    /// Frees a prepared statement.
    pub fn finalize(&mut self, db: DbId, stmt: StmtId) -> Result<()> {
        match self.call(Request::Finalize {
            db: db.0,
            stmt: stmt.0,
        })? {
            Response::Empty => {
                self.returning_stmts.remove(&stmt.0);
                Ok(())
            }
            other => Err(self.unexpected("finalize", &other)),
        }
    }

    /// Runs SQL text that returns no rows (one that returns rows fails with
    /// code 100, "another row available", and is rolled back).
    ///
    /// Several `;`-separated statements run one after the other, each
    /// committed on its own unless inside an explicit transaction; the first
    /// failure stops the rest, and earlier ones stay applied. `params` bind
    /// to the first statement only. The result is that of the last
    /// statement, except that text ending in whitespace or a comment after
    /// the last `;` yields an all-zero result (a dqlite 1.11 quirk).
    pub fn exec_sql(&mut self, db: DbId, sql: &str, params: &[Param<'_>]) -> Result<ExecResult> {
        guard::check(sql, Use::Exec)?;
        match self.call(Request::ExecSql {
            db: db.0,
            sql,
            params,
        })? {
            Response::Result(result) => Ok(result),
            other => Err(self.unexpected("exec-sql", &other)),
        }
    }

    /// Runs one SQL query and streams its rows; text after the first
    /// statement is ignored by the server. A statement without result
    /// columns (e.g. CREATE) fails with code 1, "not an error", without
    /// running.
    pub fn query_sql(&mut self, db: DbId, sql: &str, params: &[Param<'_>]) -> Result<Rows<'_>> {
        guard::check(sql, Use::Query)?;
        self.start_rows(Request::QuerySql {
            db: db.0,
            sql,
            params,
        })
    }

    /// Sends INTERRUPT and waits for its acknowledgement, discarding any
    /// rows still in flight. [`Rows`] does this by itself when dropped
    /// early; on an idle connection this is a harmless round trip.
    pub fn interrupt(&mut self, db: DbId) -> Result<()> {
        self.usable()?;
        self.drain(db)
    }

    /// Adds a node to the cluster as a spare (it then replicates nothing);
    /// [`Client::assign`] it a role next. Leader only.
    pub fn add(&mut self, id: u64, address: &str) -> Result<()> {
        match self.call(Request::Add { id, address })? {
            Response::Empty => Ok(()),
            other => Err(self.unexpected("add", &other)),
        }
    }

    /// Gives a node a role. Promoting to voter waits until the node caught
    /// up with the log, so the node must be running. Leader only.
    pub fn assign(&mut self, id: u64, role: NodeRole) -> Result<()> {
        match self.call(Request::Assign { id, role })? {
            Response::Empty => Ok(()),
            other => Err(self.unexpected("assign", &other)),
        }
    }

    /// Removes a node from the cluster. Leader only.
    pub fn remove(&mut self, id: u64) -> Result<()> {
        match self.call(Request::Remove { id })? {
            Response::Empty => Ok(()),
            other => Err(self.unexpected("remove", &other)),
        }
    }

    /// Hands leadership to the voter `id` and waits until this node stepped
    /// down. This connection then talks to a follower. Leader only.
    pub fn transfer(&mut self, id: u64) -> Result<()> {
        match self.call(Request::Transfer { id })? {
            Response::Empty => Ok(()),
            other => Err(self.unexpected("transfer", &other)),
        }
    }

    /// The cluster's members as this node's configuration lists them (any
    /// node answers; a follower's view may lag).
    pub fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        match self.call(Request::Cluster)? {
            Response::Nodes(nodes) => Ok(nodes),
            other => Err(self.unexpected("cluster", &other)),
        }
    }

    /// Copies database `name` as two files, the database and its WAL
    /// (`name` + "-wal"), which stock SQLite opens when written side by
    /// side. The whole copy travels in one message.
    pub fn dump(&mut self, name: &str) -> Result<Vec<File>> {
        match self.call(Request::Dump { name })? {
            Response::Files(files) => Ok(files),
            other => Err(self.unexpected("dump", &other)),
        }
    }

    /// This node's failure domain and weight.
    pub fn describe(&mut self) -> Result<Metadata> {
        match self.call(Request::Describe)? {
            Response::Metadata(metadata) => Ok(metadata),
            other => Err(self.unexpected("describe", &other)),
        }
    }

    /// Sets this node's weight (a hint for tools choosing voters).
    pub fn set_weight(&mut self, weight: u64) -> Result<()> {
        match self.call(Request::Weight { weight })? {
            Response::Empty => Ok(()),
            other => Err(self.unexpected("weight", &other)),
        }
    }

    fn start_rows(&mut self, request: Request<'_>) -> Result<Rows<'_>> {
        match self.call(request)? {
            Response::Rows {
                columns,
                rows_offset,
            } => {
                // While batches are owed, the server would abort on any
                // request but INTERRUPT.
                self.stream_pending = ends_with_part(&self.recv_buf);
                let body = std::mem::take(&mut self.recv_buf);
                Ok(Rows {
                    client: self,
                    columns,
                    body,
                    pos: rows_offset,
                    finished: false,
                    batches: 1,
                })
            }
            other => Err(self.unexpected("query", &other)),
        }
    }

    /// Fails if the connection is broken; drains a leaked query stream.
    fn usable(&mut self) -> Result<()> {
        if let Some(reason) = &self.broken {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("connection to {} is broken: {reason}", self.address),
            )));
        }
        if self.stream_pending {
            self.drain(DbId(0))?;
        }
        Ok(())
    }

    fn call(&mut self, request: Request<'_>) -> Result<Response> {
        self.usable()?;
        self.send_buf.clear();
        // An unencodable request is the caller's error; nothing was sent.
        request.encode(&mut self.send_buf)?;
        let deadline = Instant::now() + self.timeout;
        let buf = std::mem::take(&mut self.send_buf);
        let sent = self.write_all_by(&buf, deadline);
        self.send_buf = buf;
        self.check(sent)?;
        self.recv_response(deadline)
    }

    /// Reads one message and decodes it; FAILURE becomes [`Error::Server`].
    fn recv_response(&mut self, deadline: Instant) -> Result<Response> {
        let read = self.read_message(deadline);
        let kind = self.check(read)?;
        let decoded = Response::decode(kind, &self.recv_buf);
        match self.check(decoded)? {
            Response::Failure { code, message } => Err(Error::Server { code, message }),
            response => Ok(response),
        }
    }

    /// Sends INTERRUPT and reads until its EMPTY answer. dqlite 1.11 reads
    /// the next request only after a query's last batch, so this drains
    /// whatever batches are left; any failure among them is moot.
    fn drain(&mut self, db: DbId) -> Result<()> {
        self.send_buf.clear();
        Request::Interrupt { db: db.0 }.encode(&mut self.send_buf)?;
        let buf = std::mem::take(&mut self.send_buf);
        let sent = self.write_all_by(&buf, Instant::now() + self.timeout);
        self.send_buf = buf;
        self.check(sent)?;
        loop {
            // Each batch gets a full deadline: the server is making progress.
            let read = self.read_message(Instant::now() + self.timeout);
            let kind = self.check(read)?;
            match wire::ResponseType::from_code(kind) {
                Some(wire::ResponseType::Empty) => break,
                Some(wire::ResponseType::Rows) | Some(wire::ResponseType::Failure) => {}
                _ => {
                    let err = Error::Protocol(format!(
                        "unexpected response type {kind} while draining a query"
                    ));
                    return self.check(Err(err));
                }
            }
        }
        self.stream_pending = false;
        Ok(())
    }

    /// Reads one message into `recv_buf` and returns its type.
    fn read_message(&mut self, deadline: Instant) -> Result<u8> {
        let mut header = [0u8; HEADER_SIZE];
        self.read_exact_by(&mut header, deadline)?;
        let header = Header::decode(header);
        let len = header.body_len();
        if len > self.max_message_size {
            return Err(Error::Protocol(format!(
                "response of {len} bytes exceeds the {} byte limit",
                self.max_message_size
            )));
        }
        let mut body = std::mem::take(&mut self.recv_buf);
        body.clear();
        let mut result = Ok(());
        while body.len() < len {
            let start = body.len();
            body.resize(start + (len - start).min(READ_CHUNK), 0);
            result = self.read_exact_by(&mut body[start..], deadline);
            if result.is_err() {
                break;
            }
        }
        self.recv_buf = body;
        result.map(|()| header.kind)
    }

    fn read_exact_by(&mut self, mut buf: &mut [u8], deadline: Instant) -> Result<()> {
        while !buf.is_empty() {
            let left = remaining(deadline).ok_or(Error::Timeout)?;
            self.stream.set_read_timeout(Some(left))?;
            ack_at_once(&self.stream);
            match self.stream.read(buf) {
                Ok(0) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} closed the connection", self.address),
                    )))
                }
                Ok(n) => buf = &mut buf[n..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    fn write_all_by(&mut self, mut buf: &[u8], deadline: Instant) -> Result<()> {
        while !buf.is_empty() {
            let left = remaining(deadline).ok_or(Error::Timeout)?;
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(buf) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => buf = &buf[n..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Passes `result` through, marking the connection broken on errors
    /// that desynchronise it.
    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.mark_broken(err);
        }
        result
    }

    fn mark_broken(&mut self, err: &Error) {
        if err.is_connection_error() && self.broken.is_none() {
            self.broken = Some(err.to_string());
            // Tells the server at once instead of when the client is dropped.
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }

    fn unexpected(&mut self, request: &str, response: &Response) -> Error {
        let err = Error::Protocol(format!(
            "unexpected answer to {request}: {}",
            response_name(response)
        ));
        self.mark_broken(&err);
        err
    }
}

fn response_name(response: &Response) -> &'static str {
    match response {
        Response::Failure { .. } => "failure",
        Response::Node { .. } => "node",
        Response::Welcome { .. } => "welcome",
        Response::Nodes(_) => "nodes",
        Response::Db { .. } => "db",
        Response::Stmt { .. } => "stmt",
        Response::Result(_) => "result",
        Response::Rows { .. } => "rows",
        Response::Empty => "empty",
        Response::Files(_) => "files",
        Response::Metadata(_) => "metadata",
    }
}

/// True when a ROWS body ends with the PART marker: more batches follow.
fn ends_with_part(body: &[u8]) -> bool {
    body.len() >= wire::WORD && body[body.len() - wire::WORD..] == wire::ROWS_PART.to_le_bytes()
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// dqlite's server writes an answer longer than one ~4 KiB batch of rows in several
/// writes, on a socket without `TCP_NODELAY`: Nagle's algorithm holds each write after
/// the first until the previous one is acknowledged, and Linux delays that
/// acknowledgement by up to 40 ms while this side has nothing to send. Asking for an
/// immediate acknowledgement before every read takes the stall away (20 rows of
/// 1.5 KiB on loopback: 44 ms → 0.1 ms). The kernel drops out of quick-ACK mode by
/// itself, so it is asked for each time.
#[cfg(target_os = "linux")]
fn ack_at_once(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is `stream`'s own, open while it is borrowed; the option
    // value points to a c_int of the size passed. A failure only leaves the delayed
    // acknowledgement in place, so its result is not needed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn ack_at_once(_stream: &TcpStream) {}

/// Rows of a query, decoded one batch (about 4 KiB from dqlite 1.11) at a
/// time: the server sends the next batch as the socket drains, so memory
/// stays bounded however large the result.
///
/// Iterate it (`Item = Result<Vec<Value>>`) or call [`Rows::collect_all`].
/// It borrows the client: nothing else can be sent until it is done.
/// Dropping it before the end sends INTERRUPT and reads the remaining
/// batches (dqlite 1.11 finishes streaming before it reads the interrupt),
/// which keeps the connection usable but reads the whole result; for a huge
/// result call [`Rows::abandon`] instead, which closes the connection.
#[derive(Debug)]
pub struct Rows<'c> {
    client: &'c mut Client,
    columns: Vec<String>,
    body: Vec<u8>,
    pos: usize,
    finished: bool,
    batches: u64,
}

impl Rows<'_> {
    /// Column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// How many ROWS messages have been received so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<Vec<Value>>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let decoded = wire::decode_row(&self.body, &mut self.pos, self.columns.len());
            match self.client.check(decoded) {
                Ok(RowItem::Row(row)) => return Ok(Some(row)),
                Ok(RowItem::End(BatchEnd::Done)) => {
                    self.finished = true;
                    return Ok(None);
                }
                Ok(RowItem::End(BatchEnd::Part)) => self.next_batch()?,
                Err(err) => {
                    self.finished = true;
                    return Err(err);
                }
            }
        }
    }

    fn next_batch(&mut self) -> Result<()> {
        std::mem::swap(&mut self.body, &mut self.client.recv_buf);
        let deadline = Instant::now() + self.client.timeout;
        let response = self.client.recv_response(deadline);
        std::mem::swap(&mut self.body, &mut self.client.recv_buf);
        match response {
            Ok(Response::Rows {
                columns,
                rows_offset,
            }) if columns.len() == self.columns.len() => {
                self.client.stream_pending = ends_with_part(&self.body);
                self.pos = rows_offset;
                self.batches += 1;
                Ok(())
            }
            Ok(other) => {
                self.finished = true;
                let err = Error::Protocol(format!(
                    "expected a batch of {} columns, got {}",
                    self.columns.len(),
                    match &other {
                        Response::Rows { columns, .. } => format!("{} columns", columns.len()),
                        other => response_name(other).to_string(),
                    }
                ));
                self.client.check(Err(err))
            }
            Err(err) => {
                // A FAILURE ends the stream on the server too; anything else
                // has already broken the connection.
                self.finished = true;
                self.client.stream_pending = false;
                Err(err)
            }
        }
    }

    /// Reads every remaining row into memory.
    pub fn collect_all(mut self) -> Result<ResultSet> {
        let mut rows = Vec::new();
        while let Some(row) = self.next_row()? {
            rows.push(row);
        }
        Ok(ResultSet {
            columns: std::mem::take(&mut self.columns),
            rows,
        })
    }

    /// Stops reading: interrupts the query and drains what the server still
    /// sends, keeping the connection usable. Dropping does the same but
    /// cannot report errors.
    pub fn interrupt(mut self) -> Result<()> {
        self.finished = true;
        if !self.client.stream_pending || self.client.is_broken() {
            return Ok(());
        }
        self.client.drain(DbId(0))
    }

    /// Stops reading. If the server still owes batches, closes the
    /// connection instead of draining them: instant whatever is left of the
    /// result, but the client is broken afterwards.
    pub fn abandon(mut self) {
        self.finished = true;
        if self.client.stream_pending {
            self.client.mark_broken(&Error::Io(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "a query stream was abandoned",
            )));
        }
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<Vec<Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

impl Drop for Rows<'_> {
    fn drop(&mut self) {
        // Hand the buffer back so the next request reuses its capacity.
        if self.client.recv_buf.capacity() < self.body.capacity() {
            std::mem::swap(&mut self.client.recv_buf, &mut self.body);
        }
        if self.client.stream_pending && !self.client.is_broken() {
            // Errors mark the client broken, which is all a drop can do.
            let _ = self.client.drain(DbId(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_columns, encode_row, ROWS_DONE, ROWS_PART};
    use std::net::TcpListener;
    use std::thread;

    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Header {
            words: (body.len() / 8) as u32,
            kind,
            schema: 0,
            extra: 0,
        }
        .encode()
        .to_vec();
        out.extend_from_slice(body);
        out
    }

    fn read_request(stream: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).unwrap();
        let header = Header::decode(header);
        let mut body = vec![0u8; header.body_len()];
        stream.read_exact(&mut body).unwrap();
        (header.kind, body)
    }

    /// A fake server running `script` on the first connection, after
    /// checking the handshake.
    fn fake_server(script: impl FnOnce(&mut TcpStream) + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut version = [0u8; 8];
            stream.read_exact(&mut version).unwrap();
            assert_eq!(u64::from_le_bytes(version), 1);
            script(&mut stream);
        });
        address
    }

    fn rows_batch(values: &[i64], end: u64) -> Vec<u8> {
        let mut body = Vec::new();
        encode_columns(&["n"], &mut body).unwrap();
        for v in values {
            encode_row(&[Value::Integer(*v)], &mut body).unwrap();
        }
        body.extend_from_slice(&end.to_le_bytes());
        frame(7, &body)
    }

    #[test]
    fn silent_server_times_out_and_breaks_the_client() {
        let address = fake_server(|stream| {
            let _ = read_request(stream);
            thread::sleep(Duration::from_secs(2));
        });
        let mut client = Client::connect(&address, Duration::from_millis(200)).unwrap();
        let started = Instant::now();
        assert!(matches!(client.leader(), Err(Error::Timeout)));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(client.is_broken());
        assert!(matches!(client.leader(), Err(Error::Io(_))));
    }

    #[test]
    fn garbage_answer_is_a_protocol_error() {
        let address = fake_server(|stream| {
            let _ = read_request(stream);
            stream.write_all(&frame(1, &[0xff; 8])).unwrap();
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        assert!(matches!(client.leader(), Err(Error::Protocol(_))));
        assert!(client.is_broken());
    }

    #[test]
    fn wrong_answer_type_is_a_protocol_error() {
        let address = fake_server(|stream| {
            let _ = read_request(stream);
            stream.write_all(&frame(8, &[0; 8])).unwrap();
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        assert!(matches!(client.open("x"), Err(Error::Protocol(_))));
    }

    #[test]
    fn server_failure_keeps_the_client_usable() {
        let address = fake_server(|stream| {
            let (kind, _) = read_request(stream);
            assert_eq!(kind, 0);
            let mut body = 10250u64.to_le_bytes().to_vec();
            body.extend_from_slice(b"not leader\0\0\0\0\0\0");
            stream.write_all(&frame(0, &body)).unwrap();
            let _ = read_request(stream);
            let mut body = 0u64.to_le_bytes().to_vec();
            body.extend_from_slice(&[0; 8]);
            stream.write_all(&frame(1, &body)).unwrap();
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        let err = client.leader().unwrap_err();
        assert!(err.is_not_leader(), "{err}");
        assert!(!client.is_broken());
        assert_eq!(client.leader().unwrap(), None);
    }

    #[test]
    fn rows_stream_across_batches_and_drain_on_drop() {
        let address = fake_server(|stream| {
            let (kind, _) = read_request(stream);
            assert_eq!(kind, 9);
            stream.write_all(&rows_batch(&[1, 2], ROWS_PART)).unwrap();
            stream.write_all(&rows_batch(&[3], ROWS_PART)).unwrap();
            stream.write_all(&rows_batch(&[4], ROWS_DONE)).unwrap();
            // The client stopped after two rows and interrupted.
            let (kind, _) = read_request(stream);
            assert_eq!(kind, 10);
            stream.write_all(&frame(8, &[0; 8])).unwrap();
            // Then a full read.
            let _ = read_request(stream);
            stream.write_all(&rows_batch(&[1, 2], ROWS_PART)).unwrap();
            stream.write_all(&rows_batch(&[3], ROWS_DONE)).unwrap();
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        {
            let mut rows = client.query_sql(DbId(0), "SELECT n", &[]).unwrap();
            assert_eq!(rows.columns(), ["n"]);
            assert_eq!(rows.next_row().unwrap(), Some(vec![Value::Integer(1)]));
            assert_eq!(rows.next_row().unwrap(), Some(vec![Value::Integer(2)]));
        }
        assert!(!client.is_broken());
        let mut rows = client.query_sql(DbId(0), "SELECT n", &[]).unwrap();
        let mut all = Vec::new();
        for row in rows.by_ref() {
            all.push(row.unwrap()[0].as_i64().unwrap());
        }
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(rows.batches(), 2);
    }

    #[test]
    fn dropping_a_complete_batch_sends_nothing() {
        let address = fake_server(|stream| {
            let _ = read_request(stream);
            stream.write_all(&rows_batch(&[1, 2], ROWS_DONE)).unwrap();
            let (kind, _) = read_request(stream);
            assert_eq!(kind, 0, "a leader request, no interrupt");
            let mut body = 0u64.to_le_bytes().to_vec();
            body.extend_from_slice(&[0; 8]);
            stream.write_all(&frame(1, &body)).unwrap();
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        drop(client.query_sql(DbId(0), "SELECT n", &[]).unwrap());
        assert_eq!(client.leader().unwrap(), None);
    }

    #[test]
    fn failure_mid_stream_ends_it() {
        let address = fake_server(|stream| {
            let _ = read_request(stream);
            stream.write_all(&rows_batch(&[1], ROWS_PART)).unwrap();
            let mut body = 9u64.to_le_bytes().to_vec();
            body.extend_from_slice(b"interrupted\0\0\0\0\0");
            stream.write_all(&frame(0, &body)).unwrap();
            let _ = read_request(stream);
            stream.write_all(&frame(8, &[0; 8])).unwrap();
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        let result = client
            .query_sql(DbId(0), "SELECT n", &[])
            .unwrap()
            .collect_all();
        assert!(matches!(result, Err(Error::Server { code: 9, .. })));
        assert!(!client.is_broken());
        // Nothing is pending, so this is a plain INTERRUPT round trip.
        client.interrupt(DbId(0)).unwrap();
    }

    #[test]
    fn refused_connection_names_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Client::connect(&address, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains(&address), "{err}");
    }

    #[test]
    fn oversized_answer_is_refused() {
        let address = fake_server(|stream| {
            let _ = read_request(stream);
            let header = Header {
                words: u32::MAX,
                kind: 9,
                schema: 0,
                extra: 0,
            };
            let _ = stream.write_all(&header.encode());
        });
        let mut client = Client::connect(&address, Duration::from_secs(2)).unwrap();
        client.set_max_message_size(1 << 20);
        assert!(matches!(client.dump("x"), Err(Error::Protocol(_))));
    }
}
