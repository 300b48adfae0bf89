//! dqlite's wire protocol, version 1: framing, messages and values.
//!
//! Every message is an 8-byte header followed by a body made of 8-byte words:
//!
//! ```text
//! header: words: u32 LE | type: u8 | schema: u8 | extra: u16 LE
//! body:   words * 8 bytes
//! ```
//!
//! Integers are little-endian; a text is its UTF-8 bytes, a NUL, then zero
//! padding to the next word; a blob is a u64 length, the bytes, then zero
//! padding. A client opens a connection by sending the protocol version as
//! one u64 ([`handshake`]); the server does not answer it.
//!
//! Nothing here panics on malformed input: every decoder checks bounds and
//! returns [`Error::Protocol`].

use crate::error::{Error, Result};

/// The only protocol version dqlite 1.x servers speak besides the pre-1.0
/// legacy one, which this crate does not support.
pub const PROTOCOL_VERSION: u64 = 1;
/// Size of a protocol word, the unit of body lengths and padding.
pub const WORD: usize = 8;
/// Size of a message header.
pub const HEADER_SIZE: usize = 8;
/// Marker ending a batch of rows when more batches follow.
pub const ROWS_PART: u64 = 0xeeee_eeee_eeee_eeee;
/// Marker ending the last batch of rows.
pub const ROWS_DONE: u64 = 0xffff_ffff_ffff_ffff;
/// CLUSTER request format that includes each node's role.
pub const CLUSTER_FORMAT_V1: u64 = 1;
/// DESCRIBE request format (failure domain and weight).
pub const DESCRIBE_FORMAT_V0: u64 = 0;
/// The server reads the parameter count as one byte.
pub const MAX_PARAMS: usize = 255;

/// Defines a `u8`-coded enum with `code`, `from_code` and `name`, so each
/// message table below is written once.
macro_rules! code_table {
    ($(#[$meta:meta])* pub enum $name:ident { $($variant:ident = $code:literal => $desc:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $(
                #[doc = concat!("`", $desc, "`, code ", stringify!($code), ".")]
                $variant = $code,
            )*
        }

        impl $name {
            /// The code sent on the wire.
            pub fn code(self) -> u8 {
                self as u8
            }

            /// The variant for a wire code, if it is known.
            pub fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// A human-readable name, for error messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $desc,)*
                }
            }
        }
    };
}

code_table! {
    /// Request message types. HEARTBEAT (2) is left out on purpose: dqlite
    /// 1.11 does not dispatch it and never answers, so sending it would hang.
    pub enum RequestType {
        Leader = 0 => "leader",
        Client = 1 => "client",
        Open = 3 => "open",
        Prepare = 4 => "prepare",
        Exec = 5 => "exec",
        Query = 6 => "query",
        Finalize = 7 => "finalize",
        ExecSql = 8 => "exec-sql",
        QuerySql = 9 => "query-sql",
        Interrupt = 10 => "interrupt",
        Add = 12 => "add",
        Assign = 13 => "assign",
        Remove = 14 => "remove",
        Dump = 15 => "dump",
        Cluster = 16 => "cluster",
        Transfer = 17 => "transfer",
        Describe = 18 => "describe",
        Weight = 19 => "weight",
    }
}

code_table! {
    /// Response message types.
    pub enum ResponseType {
        Failure = 0 => "failure",
        Node = 1 => "node",
        Welcome = 2 => "welcome",
        Nodes = 3 => "nodes",
        Db = 4 => "db",
        Stmt = 5 => "stmt",
        Result = 6 => "result",
        Rows = 7 => "rows",
        Empty = 8 => "empty",
        Files = 9 => "files",
        Metadata = 10 => "metadata",
    }
}

code_table! {
    /// Type codes of parameters and row values. The first five are SQLite's;
    /// the last three are dqlite's, chosen by the server from a column's
    /// declared type (DATETIME/DATE/TIMESTAMP, BOOLEAN).
    pub enum ValueType {
        Integer = 1 => "integer",
        Float = 2 => "float",
        Text = 3 => "text",
        Blob = 4 => "blob",
        Null = 5 => "null",
        UnixTime = 9 => "unixtime",
        Iso8601 = 10 => "iso8601",
        Boolean = 11 => "boolean",
    }
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Body length in 8-byte words.
    pub words: u32,
    /// Request or response type code.
    pub kind: u8,
    /// Message schema revision (called "flags" by dqlite 1.11; always 0).
    pub schema: u8,
    /// Reserved, always 0.
    pub extra: u16,
}

impl Header {
    /// The header's 8 bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.words.to_le_bytes());
        out[4] = self.kind;
        out[5] = self.schema;
        out[6..8].copy_from_slice(&self.extra.to_le_bytes());
        out
    }

    /// Parses a header; any 8 bytes are a syntactically valid header.
    pub fn decode(bytes: [u8; HEADER_SIZE]) -> Header {
        Header {
            words: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            kind: bytes[4],
            schema: bytes[5],
            extra: u16::from_le_bytes([bytes[6], bytes[7]]),
        }
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> usize {
        (self.words as usize).saturating_mul(WORD)
    }
}

/// The bytes a client sends first on a new connection.
pub fn handshake() -> [u8; 8] {
    PROTOCOL_VERSION.to_le_bytes()
}

/// Role of a node in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Replicates data and votes in elections; only voters can lead.
    Voter,
    /// Replicates data but does not vote: a warm spare for a voter.
    StandBy,
    /// Neither replicates nor votes; newly added nodes start as spares.
    Spare,
}

impl NodeRole {
    /// The role's wire code.
    pub fn code(self) -> u64 {
        match self {
            NodeRole::Voter => 0,
            NodeRole::StandBy => 1,
            NodeRole::Spare => 2,
        }
    }

    /// The role for a wire code, if known.
    pub fn from_code(code: u64) -> Option<NodeRole> {
        match code {
            0 => Some(NodeRole::Voter),
            1 => Some(NodeRole::StandBy),
            2 => Some(NodeRole::Spare),
            _ => None,
        }
    }
}

/// A cluster member as listed by CLUSTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Raft id of the node.
    pub id: u64,
    /// Address other nodes and clients reach it at.
    pub address: String,
    /// Its role.
    pub role: NodeRole,
}

/// Handle of a database opened on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DbId(pub u32);

/// Handle of a prepared statement on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StmtId(pub u32);

/// A prepared statement: its handle and how many parameters it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stmt {
    /// Handle to pass to exec/query/finalize.
    pub id: StmtId,
    /// Number of `?` parameters SQLite counted.
    pub params: u64,
}

/// Outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// SQLite's last insert rowid on the connection.
    pub last_insert_id: i64,
    /// Rows changed by the last statement.
    pub rows_affected: u64,
}

/// A file returned by DUMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The database name, or the name plus "-wal" for its WAL.
    pub name: String,
    /// The file's bytes, in the format stock SQLite reads.
    pub data: Vec<u8>,
}

/// Per-node metadata returned by DESCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Failure domain code set on the node.
    pub failure_domain: u64,
    /// Weight set on the node (used by callers to choose voters).
    pub weight: u64,
}

/// A statement parameter, borrowing its text or bytes so binding does not
/// copy them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    /// SQL NULL.
    Null,
    /// 64-bit signed integer.
    Integer(i64),
    /// 64-bit float.
    Float(f64),
    /// UTF-8 text; must not contain NUL (the wire format NUL-terminates it).
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
    /// dqlite extension: bound as the integer 0 or 1.
    Boolean(bool),
    /// dqlite extension: an ISO-8601 timestamp, bound as text.
    Iso8601(&'a str),
}

impl Param<'_> {
    fn value_type(&self) -> ValueType {
        match self {
            Param::Null => ValueType::Null,
            Param::Integer(_) => ValueType::Integer,
            Param::Float(_) => ValueType::Float,
            Param::Text(_) => ValueType::Text,
            Param::Blob(_) => ValueType::Blob,
            Param::Boolean(_) => ValueType::Boolean,
            Param::Iso8601(_) => ValueType::Iso8601,
        }
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Integer(v)
    }
}
impl From<i32> for Param<'_> {
    fn from(v: i32) -> Self {
        Param::Integer(v.into())
    }
}
impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Param::Float(v)
    }
}
impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Boolean(v)
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}
impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}
impl<'a> From<&'a Value> for Param<'a> {
    fn from(v: &'a Value) -> Self {
        v.as_param()
    }
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL. Also what a NULL in a DATETIME/DATE/TIMESTAMP column
    /// decodes to (the server sends it as an empty ISO-8601 text).
    Null,
    /// 64-bit signed integer.
    Integer(i64),
    /// 64-bit float.
    Float(f64),
    /// Text (must be valid UTF-8; store other bytes as BLOB).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// An integer in a DATETIME/DATE/TIMESTAMP column: seconds since the epoch.
    UnixTime(i64),
    /// A text in a DATETIME/DATE/TIMESTAMP column.
    Iso8601(String),
    /// A value in a BOOLEAN column. dqlite 1.11 reports a NULL there as false.
    Boolean(bool),
}

impl Value {
    /// Borrow this value as a parameter. UnixTime is sent as an integer,
    /// because the server rejects the unixtime type in parameters.
    pub fn as_param(&self) -> Param<'_> {
        match self {
            Value::Null => Param::Null,
            Value::Integer(v) | Value::UnixTime(v) => Param::Integer(*v),
            Value::Float(v) => Param::Float(*v),
            Value::Text(v) => Param::Text(v),
            Value::Blob(v) => Param::Blob(v),
            Value::Iso8601(v) => Param::Iso8601(v),
            Value::Boolean(v) => Param::Boolean(*v),
        }
    }

    /// The wire type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Integer(_) => ValueType::Integer,
            Value::Float(_) => ValueType::Float,
            Value::Text(_) => ValueType::Text,
            Value::Blob(_) => ValueType::Blob,
            Value::UnixTime(_) => ValueType::UnixTime,
            Value::Iso8601(_) => ValueType::Iso8601,
            Value::Boolean(_) => ValueType::Boolean,
        }
    }

    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer of an Integer, UnixTime or Boolean value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(v) | Value::UnixTime(v) => Some(*v),
            Value::Boolean(v) => Some(i64::from(*v)),
            _ => None,
        }
    }

    /// The number of a Float or Integer value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            // Precision loss above 2^53 is what SQLite itself does.
            Value::Integer(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The text of a Text or Iso8601 value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(v) | Value::Iso8601(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a Blob value.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(v) => Some(v),
            _ => None,
        }
    }

    /// The flag of a Boolean value, or of an Integer (non-zero is true).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(v) => Some(*v),
            Value::Integer(v) => Some(*v != 0),
            _ => None,
        }
    }
}

/// A request, one variant per message type; [`Request::encode`] writes it.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// Who is the leader? Answered with [`Response::Node`].
    Leader,
    /// Register a client id; answered with [`Response::Welcome`].
    Client {
        /// Client id (informational for the server).
        id: u64,
    },
    /// Open a database (one per connection); answered with [`Response::Db`].
    Open {
        /// Database name.
        name: &'a str,
    },
    /// Prepare a statement; answered with [`Response::Stmt`].
    Prepare {
        /// Database handle.
        db: u32,
        /// One SQL statement (the server ignores any text after the first).
        sql: &'a str,
    },
    /// Run a prepared statement; answered with [`Response::Result`].
    Exec {
        /// Database handle.
        db: u32,
        /// Statement handle.
        stmt: u32,
        /// Parameters bound in order.
        params: &'a [Param<'a>],
    },
    /// Run a prepared query; answered with [`Response::Rows`] batches.
    Query {
        /// Database handle.
        db: u32,
        /// Statement handle.
        stmt: u32,
        /// Parameters bound in order.
        params: &'a [Param<'a>],
    },
    /// Free a prepared statement; answered with [`Response::Empty`].
    Finalize {
        /// Database handle.
        db: u32,
        /// Statement handle.
        stmt: u32,
    },
    /// Run SQL text; answered with [`Response::Result`].
    ExecSql {
        /// Database handle.
        db: u32,
        /// SQL text, possibly several statements.
        sql: &'a str,
        /// Parameters, bound to the first statement only.
        params: &'a [Param<'a>],
    },
    /// Run an SQL query; answered with [`Response::Rows`] batches.
    QuerySql {
        /// Database handle.
        db: u32,
        /// One SQL statement.
        sql: &'a str,
        /// Parameters bound in order.
        params: &'a [Param<'a>],
    },
    /// Stop a query stream; answered with [`Response::Empty`] once the
    /// stream has ended.
    Interrupt {
        /// Database handle.
        db: u32,
    },
    /// Add a node as a spare; answered with [`Response::Empty`].
    Add {
        /// New node's id.
        id: u64,
        /// New node's address.
        address: &'a str,
    },
    /// Change a node's role; answered with [`Response::Empty`].
    Assign {
        /// Node id.
        id: u64,
        /// New role.
        role: NodeRole,
    },
    /// Remove a node; answered with [`Response::Empty`].
    Remove {
        /// Node id.
        id: u64,
    },
    /// Copy a database's files; answered with [`Response::Files`].
    Dump {
        /// Database name.
        name: &'a str,
    },
    /// List the members (format v1, with roles); answered with
    /// [`Response::Nodes`].
    Cluster,
    /// Hand leadership to another voter; answered with [`Response::Empty`].
    Transfer {
        /// Target node id.
        id: u64,
    },
    /// Read the node's metadata; answered with [`Response::Metadata`].
    Describe,
    /// Set the node's weight; answered with [`Response::Empty`].
    Weight {
        /// New weight.
        weight: u64,
    },
}

impl Request<'_> {
    /// The message type.
    pub fn kind(&self) -> RequestType {
        match self {
            Request::Leader => RequestType::Leader,
            Request::Client { .. } => RequestType::Client,
            Request::Open { .. } => RequestType::Open,
            Request::Prepare { .. } => RequestType::Prepare,
            Request::Exec { .. } => RequestType::Exec,
            Request::Query { .. } => RequestType::Query,
            Request::Finalize { .. } => RequestType::Finalize,
            Request::ExecSql { .. } => RequestType::ExecSql,
            Request::QuerySql { .. } => RequestType::QuerySql,
            Request::Interrupt { .. } => RequestType::Interrupt,
            Request::Add { .. } => RequestType::Add,
            Request::Assign { .. } => RequestType::Assign,
            Request::Remove { .. } => RequestType::Remove,
            Request::Dump { .. } => RequestType::Dump,
            Request::Cluster => RequestType::Cluster,
            Request::Transfer { .. } => RequestType::Transfer,
            Request::Describe => RequestType::Describe,
            Request::Weight { .. } => RequestType::Weight,
        }
    }

    /// Appends the whole message (header and body) to `out`. Fails, without
    /// touching `out`, on input the wire cannot carry.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_SIZE]);
        let mut w = Writer { out };
        let written = match *self {
            Request::Leader => {
                w.u64(0);
                Ok(())
            }
            Request::Client { id } | Request::Remove { id } | Request::Transfer { id } => {
                w.u64(id);
                Ok(())
            }
            Request::Open { name } => w.text(name).map(|()| {
                // Flags and VFS name are ignored by the server; the Go client
                // sends the same values.
                w.u64(0);
                // "volatile" contains no NUL, so this cannot fail.
                let _ = w.text("volatile");
            }),
            Request::Prepare { db, sql } => {
                w.u64(u64::from(db));
                w.text(sql)
            }
            Request::Exec { db, stmt, params } | Request::Query { db, stmt, params } => {
                w.u32(db);
                w.u32(stmt);
                w.params(params)
            }
            Request::Finalize { db, stmt } => {
                w.u32(db);
                w.u32(stmt);
                Ok(())
            }
            Request::ExecSql { db, sql, params } | Request::QuerySql { db, sql, params } => {
                w.u64(u64::from(db));
                w.text(sql).and_then(|()| w.params(params))
            }
            Request::Interrupt { db } => {
                w.u64(u64::from(db));
                Ok(())
            }
            Request::Add { id, address } => {
                w.u64(id);
                w.text(address)
            }
            Request::Assign { id, role } => {
                w.u64(id);
                w.u64(role.code());
                Ok(())
            }
            Request::Dump { name } => w.text(name),
            Request::Cluster => {
                w.u64(CLUSTER_FORMAT_V1);
                Ok(())
            }
            Request::Describe => {
                w.u64(DESCRIBE_FORMAT_V0);
                Ok(())
            }
            Request::Weight { weight } => {
                w.u64(weight);
                Ok(())
            }
        };
        if let Err(err) = written {
            out.truncate(start);
            return Err(err);
        }
        let body_len = out.len() - start - HEADER_SIZE;
        let words = u32::try_from(body_len / WORD).map_err(|_| {
            out.truncate(start);
            Error::InvalidInput(format!("request body of {body_len} bytes is too large"))
        })?;
        let header = Header {
            words,
            kind: self.kind().code(),
            schema: 0,
            extra: 0,
        };
        out[start..start + HEADER_SIZE].copy_from_slice(&header.encode());
        Ok(())
    }
}

/// Appends word-aligned fields to a message body.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn pad(&mut self) {
        let rem = self.out.len() % WORD;
        if rem != 0 {
            self.out.resize(self.out.len() + WORD - rem, 0);
        }
    }

    fn text(&mut self, v: &str) -> Result<()> {
        if v.as_bytes().contains(&0) {
            return Err(Error::InvalidInput(
                "text contains a NUL byte, which the wire format cannot carry; use a blob".into(),
            ));
        }
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(0);
        self.pad();
        Ok(())
    }

    fn blob(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.out.extend_from_slice(v);
        self.pad();
    }

    /// Parameter tuple: a count byte, one type byte per parameter, padding
    /// to a word, then the values. No parameters means no bytes at all,
    /// which is how the server recognises an empty tuple.
    fn params(&mut self, params: &[Param<'_>]) -> Result<()> {
        if params.is_empty() {
            return Ok(());
        }
        let count = u8::try_from(params.len()).map_err(|_| {
            Error::InvalidInput(format!(
                "{} parameters given, dqlite accepts at most {MAX_PARAMS}",
                params.len()
            ))
        })?;
        self.out.push(count);
        for p in params {
            self.out.push(p.value_type().code());
        }
        self.pad();
        for p in params {
            match *p {
                Param::Null => self.u64(0),
                Param::Integer(v) => self.u64(v as u64),
                Param::Float(v) => self.u64(v.to_bits()),
                Param::Boolean(v) => self.u64(u64::from(v)),
                Param::Text(v) | Param::Iso8601(v) => self.text(v)?,
                Param::Blob(v) => self.blob(v),
            }
        }
        Ok(())
    }
}

/// Appends one row in the server's encoding (4-bit types, then values). The
/// server is the only producer of rows; this exists for tests and fakes.
pub fn encode_row(values: &[Value], out: &mut Vec<u8>) -> Result<()> {
    let header_len = row_header_len(values.len());
    let header_start = out.len();
    out.resize(header_start + header_len, 0);
    for (i, v) in values.iter().enumerate() {
        let code = v.value_type().code();
        let slot = &mut out[header_start + i / 2];
        if i % 2 == 0 {
            *slot |= code;
        } else {
            *slot |= code << 4;
        }
    }
    let mut w = Writer { out };
    for v in values {
        match v {
            Value::Null => w.u64(0),
            Value::Integer(x) | Value::UnixTime(x) => w.u64(*x as u64),
            Value::Float(x) => w.u64(x.to_bits()),
            Value::Boolean(x) => w.u64(u64::from(*x)),
            Value::Text(s) | Value::Iso8601(s) => w.text(s)?,
            Value::Blob(b) => w.blob(b),
        }
    }
    Ok(())
}

/// Appends a ROWS body's prefix: column count and names.
pub fn encode_columns(columns: &[&str], out: &mut Vec<u8>) -> Result<()> {
    let mut w = Writer { out };
    w.u64(columns.len() as u64);
    for c in columns {
        w.text(c)?;
    }
    Ok(())
}

/// Length of a row's type header: 4 bits per column, rounded up to a word.
fn row_header_len(columns: usize) -> usize {
    columns.div_ceil(2).div_ceil(WORD) * WORD
}

/// Bounds-checked reader over a message body.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from offset `pos`.
    pub fn new(buf: &'a [u8], pos: usize) -> Reader<'a> {
        Reader { buf, pos }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(Error::Protocol(format!(
                "message too short reading {what}: need {n} bytes at offset {}, body has {}",
                self.pos,
                self.buf.len()
            )));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A little-endian i64.
    pub fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A little-endian IEEE-754 double.
    pub fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    /// Peeks at the next u64 without consuming it.
    pub fn peek_u64(&self) -> Option<u64> {
        let bytes = self.buf.get(self.pos..self.pos + WORD)?;
        let mut word = [0u8; WORD];
        word.copy_from_slice(bytes);
        Some(u64::from_le_bytes(word))
    }

    /// A NUL-terminated, word-padded UTF-8 text.
    pub fn text(&mut self, what: &str) -> Result<String> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(Error::Protocol(format!("unterminated text in {what}")));
        };
        let padded = (nul + 1).div_ceil(WORD) * WORD;
        let raw = self.take(padded, what)?;
        String::from_utf8(raw[..nul].to_vec())
            .map_err(|_| Error::Protocol(format!("{what} is not valid UTF-8")))
    }

    /// A length-prefixed, word-padded blob.
    pub fn blob(&mut self, what: &str) -> Result<Vec<u8>> {
        let len = self.u64(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "{what} claims {len} bytes but {} remain",
                    self.remaining()
                ))
            })?;
        let padded = len.div_ceil(WORD) * WORD;
        let raw = self.take(padded, what)?;
        Ok(raw[..len].to_vec())
    }
}

/// A decoded response. Rows are not decoded here: [`Response::Rows`] gives
/// the column names and where the first row starts, and [`decode_row`]
/// reads rows one at a time so a large batch is never copied whole.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The request failed.
    Failure {
        /// SQLite/dqlite error code.
        code: u64,
        /// Error message.
        message: String,
    },
    /// Leader id and address; id 0 and an empty address mean none known.
    Node {
        /// Leader id.
        id: u64,
        /// Leader address.
        address: String,
    },
    /// Client registered.
    Welcome {
        /// Server's heartbeat timeout in milliseconds.
        heartbeat_timeout: u64,
    },
    /// Cluster members.
    Nodes(Vec<NodeInfo>),
    /// Database opened.
    Db {
        /// Database handle.
        id: u32,
    },
    /// Statement prepared.
    Stmt {
        /// Database handle.
        db: u32,
        /// Statement handle.
        id: u32,
        /// Parameter count.
        params: u64,
    },
    /// Statement run.
    Result(ExecResult),
    /// A batch of rows.
    Rows {
        /// Column names (repeated in every batch).
        columns: Vec<String>,
        /// Body offset of the first row.
        rows_offset: usize,
    },
    /// Success with nothing to say.
    Empty,
    /// Database files.
    Files(Vec<File>),
    /// Node metadata.
    Metadata(Metadata),
}

impl Response {
    /// Decodes the body of a message of type `kind`.
    pub fn decode(kind: u8, body: &[u8]) -> Result<Response> {
        let Some(kind) = ResponseType::from_code(kind) else {
            return Err(Error::Protocol(format!("unknown response type {kind}")));
        };
        let mut r = Reader::new(body, 0);
        let response = match kind {
            ResponseType::Failure => Response::Failure {
                code: r.u64("failure code")?,
                message: r.text("failure message")?,
            },
            ResponseType::Node => Response::Node {
                id: r.u64("leader id")?,
                address: r.text("leader address")?,
            },
            ResponseType::Welcome => Response::Welcome {
                heartbeat_timeout: r.u64("heartbeat timeout")?,
            },
            ResponseType::Nodes => {
                let n = r.u64("node count")?;
                // Each node takes at least three words; refuse counts the
                // body cannot hold before allocating for them.
                let n = bounded_count(n, &r, 3 * WORD, "node count")?;
                let mut nodes = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.u64("node id")?;
                    let address = r.text("node address")?;
                    let code = r.u64("node role")?;
                    let role = NodeRole::from_code(code)
                        .ok_or_else(|| Error::Protocol(format!("unknown node role {code}")))?;
                    nodes.push(NodeInfo { id, address, role });
                }
                Response::Nodes(nodes)
            }
            ResponseType::Db => {
                let id = r.u32("database id")?;
                r.u32("padding")?;
                Response::Db { id }
            }
            ResponseType::Stmt => Response::Stmt {
                db: r.u32("database id")?,
                id: r.u32("statement id")?,
                params: r.u64("parameter count")?,
            },
            ResponseType::Result => Response::Result(ExecResult {
                // The wire carries SQLite's signed rowid as a u64.
                last_insert_id: r.u64("last insert id")? as i64,
                rows_affected: r.u64("rows affected")?,
            }),
            ResponseType::Rows => {
                let n = r.u64("column count")?;
                let n = bounded_count(n, &r, WORD, "column count")?;
                let mut columns = Vec::with_capacity(n);
                for _ in 0..n {
                    columns.push(r.text("column name")?);
                }
                Response::Rows {
                    columns,
                    rows_offset: r.pos(),
                }
            }
            ResponseType::Empty => Response::Empty,
            ResponseType::Files => {
                let n = r.u64("file count")?;
                let n = bounded_count(n, &r, 2 * WORD, "file count")?;
                let mut files = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.text("file name")?;
                    // Unlike a blob, the length is a separate field; the
                    // server only sends whole pages, but pad defensively.
                    let len = r.u64("file length")?;
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|&l| l <= r.remaining())
                        .ok_or_else(|| {
                            Error::Protocol(format!("file {name} claims {len} bytes"))
                        })?;
                    let raw = r.take(len.div_ceil(WORD) * WORD, "file data")?;
                    files.push(File {
                        name,
                        data: raw[..len].to_vec(),
                    });
                }
                Response::Files(files)
            }
            ResponseType::Metadata => Response::Metadata(Metadata {
                failure_domain: r.u64("failure domain")?,
                weight: r.u64("weight")?,
            }),
        };
        Ok(response)
    }
}

fn bounded_count(n: u64, r: &Reader<'_>, min_size: usize, what: &str) -> Result<usize> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n.saturating_mul(min_size) <= r.remaining())
        .ok_or_else(|| Error::Protocol(format!("{what} {n} exceeds the message")))
}

/// How a batch of rows ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// More batches follow in further ROWS messages.
    Part,
    /// The result set is complete.
    Done,
}

/// One step of reading a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum RowItem {
    /// A row.
    Row(Vec<Value>),
    /// The batch's end marker.
    End(BatchEnd),
}

/// Decodes the row (or end marker) at `*pos` of a ROWS body with `columns`
/// columns, advancing `*pos` past it.
pub fn decode_row(body: &[u8], pos: &mut usize, columns: usize) -> Result<RowItem> {
    let mut r = Reader::new(body, *pos);
    match r.peek_u64() {
        Some(ROWS_DONE) | Some(ROWS_PART) => {
            let end = if r.u64("end marker")? == ROWS_DONE {
                BatchEnd::Done
            } else {
                BatchEnd::Part
            };
            if r.remaining() != 0 {
                return Err(Error::Protocol(format!(
                    "{} bytes after the end of a row batch",
                    r.remaining()
                )));
            }
            *pos = r.pos();
            return Ok(RowItem::End(end));
        }
        None => {
            return Err(Error::Protocol(
                "row batch ends without a DONE or PART marker".into(),
            ))
        }
        Some(_) => {}
    }
    let header = r.take(row_header_len(columns), "row header")?;
    let mut row = Vec::with_capacity(columns);
    for i in 0..columns {
        let slot = header[i / 2];
        let code = if i % 2 == 0 { slot & 0x0f } else { slot >> 4 };
        let value = match ValueType::from_code(code) {
            Some(ValueType::Integer) => Value::Integer(r.i64("integer")?),
            Some(ValueType::Float) => Value::Float(r.f64("float")?),
            Some(ValueType::Text) => Value::Text(r.text("text value")?),
            Some(ValueType::Blob) => Value::Blob(r.blob("blob value")?),
            Some(ValueType::Null) => {
                r.u64("null")?;
                Value::Null
            }
            Some(ValueType::UnixTime) => Value::UnixTime(r.i64("unixtime")?),
            Some(ValueType::Iso8601) => {
                let text = r.text("iso8601 value")?;
                // The server encodes NULL in a time column as "".
                if text.is_empty() {
                    Value::Null
                } else {
                    Value::Iso8601(text)
                }
            }
            Some(ValueType::Boolean) => Value::Boolean(r.u64("boolean")? != 0),
            None => {
                return Err(Error::Protocol(format!(
                    "unknown value type {code} in column {i}"
                )))
            }
        };
        row.push(value);
    }
    *pos = r.pos();
    Ok(RowItem::Row(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: Request<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        req.encode(&mut out).unwrap();
        let header = Header::decode(out[..8].try_into().unwrap());
        assert_eq!(header.body_len(), out.len() - 8);
        assert_eq!(header.kind, req.kind().code());
        out.split_off(8)
    }

    #[test]
    fn leader_request_frame() {
        let mut out = Vec::new();
        Request::Leader.encode(&mut out).unwrap();
        assert_eq!(out, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn handshake_is_version_one() {
        assert_eq!(handshake(), [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            words: 0x0102_0304,
            kind: 7,
            schema: 1,
            extra: 0xbeef,
        };
        let bytes = h.encode();
        assert_eq!(bytes, [4, 3, 2, 1, 7, 1, 0xef, 0xbe]);
        assert_eq!(Header::decode(bytes), h);
    }

    // Offsets from go-dqlite's TestMessage_putString / getString.
    #[test]
    fn text_padding_matches_go_client() {
        for (s, len) in [
            ("hello", 8),
            ("hello!!", 8),
            ("hello!!!", 16),
            ("hello world", 16),
        ] {
            let b = body(Request::Dump { name: s });
            assert_eq!(b.len(), len, "{s}");
            assert_eq!(&b[..s.len()], s.as_bytes());
            assert!(b[s.len()..].iter().all(|&x| x == 0));
            assert_eq!(Reader::new(&b, 0).text("t").unwrap(), s);
        }
    }

    // Offsets from go-dqlite's TestMessage_putBlob / getBlob.
    #[test]
    fn blob_padding_matches_go_client() {
        for (blob, len) in [
            (&[1u8, 2, 3, 4, 5][..], 16),
            (&[1, 2, 3, 4, 5, 6, 7, 8][..], 16),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10][..], 24),
        ] {
            let mut out = Vec::new();
            Writer { out: &mut out }.blob(blob);
            assert_eq!(out.len(), len);
            assert_eq!(&out[8..8 + blob.len()], blob);
            assert_eq!(Reader::new(&out, 0).blob("b").unwrap(), blob);
        }
    }

    // go-dqlite's TestMessage_getString_Overflow_WordBoundary: a 16-byte
    // string followed by its NUL takes three words.
    #[test]
    fn text_ending_on_word_boundary() {
        let mut b = b"abcdefghilmnopqr".to_vec();
        b.extend_from_slice(&[0; 8]);
        let mut r = Reader::new(&b, 0);
        assert_eq!(r.text("t").unwrap(), "abcdefghilmnopqr");
        assert_eq!(r.pos(), 24);
    }

    // go-dqlite's TestMessage_putNamedValues: seven values of every kind
    // take 96 bytes, and the header byte sequence is fixed. The Go client
    // encodes time.Time as ISO-8601 text "2018-08-01 00:00:00+00:00".
    #[test]
    #[allow(clippy::approx_constant)] // 3.1415 is the Go test's value, not PI.
    fn params_match_go_client_bytes() {
        let params = [
            Param::Integer(123),
            Param::Float(3.1415),
            Param::Boolean(true),
            Param::Blob(&[1, 2, 3, 4, 5, 6]),
            Param::Text("hello"),
            Param::Null,
            Param::Iso8601("2018-08-01 00:00:00+00:00"),
        ];
        let mut out = Vec::new();
        Writer { out: &mut out }.params(&params).unwrap();
        assert_eq!(out.len(), 96);
        let mut expected = vec![7u8, 1, 2, 11, 4, 3, 5, 10];
        expected.extend_from_slice(&123i64.to_le_bytes());
        expected.extend_from_slice(&3.1415f64.to_bits().to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&6u64.to_le_bytes());
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
        expected.extend_from_slice(b"hello\0\0\0");
        expected.extend_from_slice(&0u64.to_le_bytes());
        expected.extend_from_slice(b"2018-08-01 00:00:00+00:00\0\0\0\0\0\0\0");
        assert_eq!(out, expected);
    }

    #[test]
    fn params_header_spans_words() {
        // 8 parameters: count + 8 types = 9 bytes, padded to 16.
        let params = [Param::Integer(1); 8];
        let mut out = Vec::new();
        Writer { out: &mut out }.params(&params).unwrap();
        assert_eq!(out.len(), 16 + 8 * 8);
        assert_eq!(out[0], 8);
        assert_eq!(&out[9..16], &[0; 7]);
    }

    #[test]
    fn no_params_add_no_bytes() {
        let b = body(Request::ExecSql {
            db: 0,
            sql: "x",
            params: &[],
        });
        assert_eq!(b.len(), 16);
    }

    #[test]
    fn rejects_unencodable_input() {
        let mut out = vec![9u8];
        let err = Request::ExecSql {
            db: 0,
            sql: "a\0b",
            params: &[],
        }
        .encode(&mut out)
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
        assert_eq!(out, [9], "a failed encode leaves the buffer as it was");
        let many = vec![Param::Null; 256];
        let err = Request::Exec {
            db: 0,
            stmt: 0,
            params: &many,
        }
        .encode(&mut out)
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
    }

    #[test]
    fn every_request_encodes_whole_words() {
        let params = [Param::Text("x"), Param::Blob(b"abc")];
        let requests = [
            Request::Leader,
            Request::Client { id: 9 },
            Request::Open { name: "db" },
            Request::Prepare {
                db: 0,
                sql: "SELECT 1",
            },
            Request::Exec {
                db: 0,
                stmt: 1,
                params: &params,
            },
            Request::Query {
                db: 0,
                stmt: 1,
                params: &params,
            },
            Request::Finalize { db: 0, stmt: 1 },
            Request::ExecSql {
                db: 0,
                sql: "x",
                params: &params,
            },
            Request::QuerySql {
                db: 0,
                sql: "x",
                params: &params,
            },
            Request::Interrupt { db: 0 },
            Request::Add {
                id: 2,
                address: "127.0.0.1:9002",
            },
            Request::Assign {
                id: 2,
                role: NodeRole::StandBy,
            },
            Request::Remove { id: 2 },
            Request::Dump { name: "db" },
            Request::Cluster,
            Request::Transfer { id: 2 },
            Request::Describe,
            Request::Weight { weight: 3 },
        ];
        for req in requests {
            let b = body(req);
            assert!(!b.is_empty() && b.len() % WORD == 0, "{:?}", req.kind());
        }
        let open = body(Request::Open { name: "test.db" });
        assert_eq!(
            open,
            b"test.db\0\0\0\0\0\0\0\0\0volatile\0\0\0\0\0\0\0\0".to_vec()
        );
        let assign = body(Request::Assign {
            id: 5,
            role: NodeRole::Spare,
        });
        assert_eq!(assign[..8], 5u64.to_le_bytes());
        assert_eq!(assign[8..], 2u64.to_le_bytes());
        let exec = body(Request::Exec {
            db: 1,
            stmt: 2,
            params: &[],
        });
        assert_eq!(exec, [1, 0, 0, 0, 2, 0, 0, 0]);
    }

    fn words(values: &[u64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn decodes_simple_responses() {
        let mut b = words(&[10250]);
        b.extend_from_slice(b"not leader\0\0\0\0\0\0");
        assert_eq!(
            Response::decode(0, &b).unwrap(),
            Response::Failure {
                code: 10250,
                message: "not leader".into()
            }
        );
        let mut b = words(&[1]);
        b.extend_from_slice(b"127.0.0.1:9001\0\0");
        assert_eq!(
            Response::decode(1, &b).unwrap(),
            Response::Node {
                id: 1,
                address: "127.0.0.1:9001".into()
            }
        );
        assert_eq!(
            Response::decode(2, &words(&[15000])).unwrap(),
            Response::Welcome {
                heartbeat_timeout: 15000
            }
        );
        assert_eq!(
            Response::decode(4, &words(&[0])).unwrap(),
            Response::Db { id: 0 }
        );
        assert_eq!(
            Response::decode(5, &words(&[3 << 32, 2])).unwrap(),
            Response::Stmt {
                db: 0,
                id: 3,
                params: 2
            }
        );
        assert_eq!(
            Response::decode(6, &words(&[u64::MAX, 4])).unwrap(),
            Response::Result(ExecResult {
                last_insert_id: -1,
                rows_affected: 4
            })
        );
        assert_eq!(Response::decode(8, &words(&[0])).unwrap(), Response::Empty);
        assert_eq!(
            Response::decode(10, &words(&[1, 2])).unwrap(),
            Response::Metadata(Metadata {
                failure_domain: 1,
                weight: 2
            })
        );
    }

    #[test]
    fn decodes_nodes_and_files() {
        let mut b = words(&[2, 1]);
        b.extend_from_slice(b"a:1\0\0\0\0\0");
        b.extend_from_slice(&words(&[0, 2]));
        b.extend_from_slice(b"b:2\0\0\0\0\0");
        b.extend_from_slice(&words(&[2]));
        assert_eq!(
            Response::decode(3, &b).unwrap(),
            Response::Nodes(vec![
                NodeInfo {
                    id: 1,
                    address: "a:1".into(),
                    role: NodeRole::Voter
                },
                NodeInfo {
                    id: 2,
                    address: "b:2".into(),
                    role: NodeRole::Spare
                },
            ])
        );
        let mut b = words(&[2]);
        b.extend_from_slice(b"db\0\0\0\0\0\0");
        b.extend_from_slice(&words(&[8]));
        b.extend_from_slice(b"SQLite f");
        b.extend_from_slice(b"db-wal\0\0");
        b.extend_from_slice(&words(&[0]));
        assert_eq!(
            Response::decode(9, &b).unwrap(),
            Response::Files(vec![
                File {
                    name: "db".into(),
                    data: b"SQLite f".to_vec()
                },
                File {
                    name: "db-wal".into(),
                    data: vec![]
                },
            ])
        );
    }

    #[test]
    fn rows_round_trip_every_type() {
        let row = vec![
            Value::Integer(-42),
            Value::Float(2.5),
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 1, 2, 255]),
            Value::Null,
            Value::UnixTime(1_700_000_000),
            Value::Iso8601("2024-01-02 03:04:05".into()),
            Value::Boolean(true),
        ];
        let columns = ["i", "f", "t", "b", "n", "u", "iso", "flag"];
        let mut b = Vec::new();
        encode_columns(&columns, &mut b).unwrap();
        encode_row(&row, &mut b).unwrap();
        encode_row(&row, &mut b).unwrap();
        b.extend_from_slice(&ROWS_PART.to_le_bytes());

        let Response::Rows {
            columns: names,
            rows_offset,
        } = Response::decode(7, &b).unwrap()
        else {
            panic!("not rows");
        };
        assert_eq!(names, columns);
        let mut pos = rows_offset;
        // 8 columns of 4 bits: one header word. Types 1,2 / 3,4 / 5,9 / 10,11.
        assert_eq!(&b[pos..pos + 8], &[0x21, 0x43, 0x95, 0xba, 0, 0, 0, 0]);
        for _ in 0..2 {
            assert_eq!(
                decode_row(&b, &mut pos, 8).unwrap(),
                RowItem::Row(row.clone())
            );
        }
        assert_eq!(
            decode_row(&b, &mut pos, 8).unwrap(),
            RowItem::End(BatchEnd::Part)
        );
        assert_eq!(pos, b.len());
    }

    #[test]
    fn row_header_grows_past_sixteen_columns() {
        let row: Vec<Value> = (0..17).map(Value::Integer).collect();
        let mut b = Vec::new();
        encode_row(&row, &mut b).unwrap();
        b.extend_from_slice(&ROWS_DONE.to_le_bytes());
        assert_eq!(b.len(), 16 + 17 * 8 + 8);
        let mut pos = 0;
        assert_eq!(decode_row(&b, &mut pos, 17).unwrap(), RowItem::Row(row));
        assert_eq!(
            decode_row(&b, &mut pos, 17).unwrap(),
            RowItem::End(BatchEnd::Done)
        );
    }

    #[test]
    fn empty_iso8601_is_null() {
        let mut b = vec![10, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0; 8]);
        let mut pos = 0;
        assert_eq!(
            decode_row(&b, &mut pos, 1).unwrap(),
            RowItem::Row(vec![Value::Null])
        );
    }

    #[test]
    fn malformed_data_is_a_protocol_error() {
        let cases: Vec<(u8, Vec<u8>)> = vec![
            (0, vec![]),                             // failure without code
            (0, words(&[1, 0x4141_4141_4141_4141])), // unterminated message
            (1, words(&[1])),                        // node without address
            (3, words(&[u64::MAX])),                 // absurd node count
            (3, words(&[1, 1, 0x61, 7])),            // unknown role
            (7, words(&[1 << 40])),                  // absurd column count
            (9, words(&[1, 0x61, 1 << 40])),         // file longer than body
            (200, words(&[0])),                      // unknown type
            (2, vec![1, 2, 3]),                      // short word
        ];
        for (kind, b) in cases {
            match Response::decode(kind, &b) {
                Err(Error::Protocol(_)) => {}
                other => panic!("type {kind} body {b:?}: {other:?}"),
            }
        }
        let bad_rows: Vec<Vec<u8>> = vec![
            vec![],                      // no marker
            words(&[0x0c]),              // unknown type 12, no value
            words(&[0x04, 100]),         // blob longer than body
            words(&[0x03, 0x4141_4141]), // text: bytes then NUL... fine, then missing
            words(&[ROWS_DONE, 0]),      // data after the marker
            vec![0xff, 0xfe, 0, 0],      // torn word
        ];
        for b in bad_rows {
            let mut pos = 0;
            let res = decode_row(&b, &mut pos, 1);
            if let Ok(RowItem::Row(_)) = &res {
                // The 4th case is a valid text "AAAA"; it must be followed by
                // a marker to be a valid batch.
                assert!(matches!(
                    decode_row(&b, &mut pos, 1),
                    Err(Error::Protocol(_))
                ));
                continue;
            }
            assert!(matches!(res, Err(Error::Protocol(_))), "{b:?}: {res:?}");
        }
        // Invalid UTF-8 text is refused rather than altered.
        let mut b = words(&[0x03]);
        b.extend_from_slice(&[0xff, 0xfe, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(decode_row(&b, &mut 0, 1), Err(Error::Protocol(_))));
    }

    #[test]
    fn params_from_rust_values() {
        let owned = Value::Text("x".into());
        let s = String::from("y");
        let bytes = vec![1u8];
        let params: Vec<Param<'_>> = vec![
            1i64.into(),
            2i32.into(),
            1.5f64.into(),
            true.into(),
            "z".into(),
            (&s).into(),
            (&bytes).into(),
            None::<i64>.into(),
            Some("w").into(),
            (&owned).into(),
            Value::UnixTime(5).as_param(),
        ];
        assert_eq!(params[0], Param::Integer(1));
        assert_eq!(params[1], Param::Integer(2));
        assert_eq!(params[7], Param::Null);
        assert_eq!(params[8], Param::Text("w"));
        assert_eq!(params[9], Param::Text("x"));
        assert_eq!(params[10], Param::Integer(5));
    }

    #[test]
    fn code_tables() {
        for code in 0..=255u8 {
            if let Some(t) = RequestType::from_code(code) {
                assert_eq!(t.code(), code);
            }
            if let Some(t) = ResponseType::from_code(code) {
                assert_eq!(t.code(), code);
            }
        }
        assert_eq!(RequestType::from_code(2), None, "heartbeat is not offered");
        assert_eq!(RequestType::Transfer.name(), "transfer");
        assert_eq!(ValueType::from_code(11), Some(ValueType::Boolean));
        for role in [NodeRole::Voter, NodeRole::StandBy, NodeRole::Spare] {
            assert_eq!(NodeRole::from_code(role.code()), Some(role));
        }
    }
}
