//! libdqlite's node API, loaded at run time.
//!
//! The library is opened on first use with `dlopen("libdqlite.so.0")`, so
//! programs using only the client need no libdqlite, and those running nodes
//! get a clear [`Error::NodeLibrary`] where it is missing.
//!
//! # Forming a cluster
//!
//! A node whose id is [`BOOTSTRAP_ID`] (or 1) bootstraps a one-voter cluster
//! the first time it starts on an empty data directory; on later starts the
//! existing raft log wins and nothing is bootstrapped again. Every other
//! node starts empty and idle until the leader adds it:
//!
//! 1. start the first node with `Node::new(BOOTSTRAP_ID, addr, dir)`;
//! 2. start each other node with an id from [`generate_node_id`] (never 1
//!    or `BOOTSTRAP_ID`: such a node would bootstrap a cluster of its own);
//! 3. through a client connected to the leader, [`Client::add`] the node
//!    (it joins as a spare) and [`Client::assign`] it
//!    [`NodeRole::Voter`](crate::NodeRole::Voter) (or stand-by).
//!
//! [`Client::add`]: crate::Client::add
//! [`Client::assign`]: crate::Client::assign
//!
//! # Process-wide caveats
//!
//! libdqlite writes to sockets whose peer may have gone; Rust programs
//! ignore SIGPIPE by default, but a host that restores its default
//! disposition would be killed by it.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr, CString};
use std::net::TcpStream;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libloading::Library;

use crate::error::{Error, Result};

/// The id with which go-dqlite's `app` package creates a cluster's first
/// node; libdqlite bootstraps a node with this id (or with id 1).
pub const BOOTSTRAP_ID: u64 = 0x2dc1_7185_8c31_55be;

/// The shared library's soname.
pub const LIBRARY_NAME: &str = "libdqlite.so.0";

/// Environment variable naming another libdqlite file to load instead of
/// [`LIBRARY_NAME`] (a custom build, say). Read once, on first use.
pub const LIBRARY_ENV: &str = "DQLITE_LIBRARY";

type RawNode = *mut c_void;

/// `int (*f)(void *arg, const char *address, int *fd)` of
/// `dqlite_node_set_connect_func`.
type ConnectFunc = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_int) -> c_int;

/// Mirrors `struct dqlite_node_info` from dqlite.h.
#[repr(C)]
struct RawNodeInfo {
    id: c_ulonglong,
    address: *const c_char,
}

/// Function pointers resolved from libdqlite. They stay valid because the
/// `Library` lives in a static for the rest of the process.
struct Api {
    _library: Library,
    version_number: unsafe extern "C" fn() -> c_int,
    node_create:
        unsafe extern "C" fn(c_ulonglong, *const c_char, *const c_char, *mut RawNode) -> c_int,
    node_destroy: unsafe extern "C" fn(RawNode),
    node_set_bind_address: unsafe extern "C" fn(RawNode, *const c_char) -> c_int,
    node_get_bind_address: unsafe extern "C" fn(RawNode) -> *const c_char,
    node_set_network_latency_ms: unsafe extern "C" fn(RawNode, c_uint) -> c_int,
    node_set_snapshot_params: unsafe extern "C" fn(RawNode, c_uint, c_uint) -> c_int,
    node_set_connect_func: unsafe extern "C" fn(RawNode, ConnectFunc, *mut c_void) -> c_int,
    node_start: unsafe extern "C" fn(RawNode) -> c_int,
    node_stop: unsafe extern "C" fn(RawNode) -> c_int,
    node_recover: unsafe extern "C" fn(RawNode, *mut RawNodeInfo, c_int) -> c_int,
    node_errmsg: unsafe extern "C" fn(RawNode) -> *const c_char,
    generate_node_id: unsafe extern "C" fn(*const c_char) -> c_ulonglong,
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// libdqlite 1.11 names each node's SQLite VFS from an unsynchronised
/// global counter, so concurrent creations could pick the same name.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

fn api() -> Result<&'static Api> {
    API.get_or_init(load_api)
        .as_ref()
        .map_err(|message| Error::NodeLibrary(message.clone()))
}

fn load_api() -> Result<Api, String> {
    let name = std::env::var_os(LIBRARY_ENV)
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| LIBRARY_NAME.into());
    // SAFETY: loading runs the initialisers of libdqlite and its
    // dependencies (libraft, libuv, libsqlite3), which only set up their own
    // state and are safe to run in any thread of the process.
    let library = unsafe { Library::new(&name) }.map_err(|err| {
        format!(
            "{} not found ({err}): running a dqlite node needs the libdqlite0 package \
             (apt-get install libdqlite0)",
            name.to_string_lossy()
        )
    })?;
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the declared type of each field matches the symbol's C
            // prototype in dqlite.h 1.11; the pointer is copied out and used
            // only while `library` is kept alive (it is stored alongside).
            *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                .map_err(|err| format!("{LIBRARY_NAME} lacks {}: {err}", $name))?
        };
    }
    Ok(Api {
        version_number: symbol!("dqlite_version_number"),
        node_create: symbol!("dqlite_node_create"),
        node_destroy: symbol!("dqlite_node_destroy"),
        node_set_bind_address: symbol!("dqlite_node_set_bind_address"),
        node_get_bind_address: symbol!("dqlite_node_get_bind_address"),
        node_set_network_latency_ms: symbol!("dqlite_node_set_network_latency_ms"),
        node_set_snapshot_params: symbol!("dqlite_node_set_snapshot_params"),
        node_set_connect_func: symbol!("dqlite_node_set_connect_func"),
        node_start: symbol!("dqlite_node_start"),
        node_stop: symbol!("dqlite_node_stop"),
        node_recover: symbol!("dqlite_node_recover"),
        node_errmsg: symbol!("dqlite_node_errmsg"),
        generate_node_id: symbol!("dqlite_generate_node_id"),
        _library: library,
    })
}

/// Loads libdqlite now, reporting why it cannot be used.
pub fn load() -> Result<()> {
    api().map(|_| ())
}

/// True when libdqlite can be loaded.
pub fn is_available() -> bool {
    api().is_ok()
}

/// libdqlite's version as `major * 10000 + minor * 100 + release`.
pub fn version_number() -> Result<i32> {
    let api = api()?;
    // SAFETY: takes no arguments and only returns a constant.
    Ok(unsafe { (api.version_number)() })
}

/// A fresh node id derived from `address` and the current time, for nodes
/// joining an existing cluster.
pub fn generate_node_id(address: &str) -> Result<u64> {
    let api = api()?;
    let address = c_string(address, "address")?;
    // SAFETY: `address` is a valid NUL-terminated string that outlives the
    // call; the function only reads it.
    Ok(unsafe { (api.generate_node_id)(address.as_ptr()) })
}

/// How a node connects to the other nodes for raft: libdqlite's own connect
/// (a blocking TCP connect to "host:port") plus `TCP_NODELAY`. libdqlite
/// leaves Nagle's algorithm on, and raft's messages are small writes: an
/// append sent while the previous one was unacknowledged waited for the
/// peer's delayed acknowledgement, up to 40 ms, so about one commit in ten
/// on a 3-node loopback cluster took 40 ms instead of 1.
unsafe extern "C" fn connect_without_nagle(
    _arg: *mut c_void,
    address: *const c_char,
    fd: *mut c_int,
) -> c_int {
    // No panic may unwind into libdqlite's thread.
    let connected = std::panic::catch_unwind(|| {
        // SAFETY: libdqlite passes the peer's NUL-terminated address, alive
        // for the call.
        let address = unsafe { CStr::from_ptr(address) }.to_str().ok()?;
        let stream = TcpStream::connect(address).ok()?;
        stream.set_nodelay(true).ok()?;
        Some(stream.into_raw_fd())
    });
    match connected {
        Ok(Some(socket)) => {
            // SAFETY: libdqlite passes a valid out-pointer; the descriptor
            // is now libdqlite's to use and close.
            unsafe { *fd = socket };
            0
        }
        // libdqlite reports any non-zero result as "no connection" and tries
        // again later.
        _ => 1,
    }
}

fn c_string(value: &str, what: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::InvalidInput(format!("{what} contains a NUL byte")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    /// Stopped, or failed to start: libdqlite cannot start it again.
    Done,
}

/// A dqlite node running in this process: a raft member and a server for
/// the wire protocol, on its own thread inside libdqlite.
///
/// Create it, set options, [`start`](Node::start) it; options can only be
/// set before starting, and a stopped node cannot be restarted (create a
/// new `Node` on the same data directory instead). Dropping it stops and
/// destroys it.
#[derive(Debug)]
pub struct Node {
    api: &'static Api,
    raw: NonNull<c_void>,
    id: u64,
    address: String,
    data_dir: PathBuf,
    bind_address_set: bool,
    state: State,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(LIBRARY_NAME)
    }
}

// SAFETY: a dqlite_node may be used from any thread as long as calls on it
// are not concurrent: its own event loop runs on a thread libdqlite owns,
// and the API calls this type makes either happen before start, or
// (stop, get_bind_address) are designed to be called from another thread
// than the loop's. `Node` is not `Sync` and every mutating call takes
// `&mut self`, so calls are never concurrent.
unsafe impl Send for Node {}

impl Node {
    /// Creates node `id`, reachable by other nodes and clients at `address`
    /// ("host:port", IPv4), keeping its raft log and snapshots in
    /// `data_dir` (created if missing). Nothing listens until
    /// [`start`](Node::start). Its raft connections to the other nodes are
    /// made with `TCP_NODELAY` (libdqlite's own leave Nagle's algorithm on,
    /// which held one commit in ten for a delayed acknowledgement).
    pub fn new(id: u64, address: &str, data_dir: impl AsRef<Path>) -> Result<Node> {
        let api = api()?;
        if id == 0 {
            return Err(Error::InvalidInput("node id 0 is reserved by raft".into()));
        }
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir).map_err(|err| Error::Node {
            code: 0,
            message: format!("create data directory {}: {err}", data_dir.display()),
        })?;
        let dir = data_dir.to_str().ok_or_else(|| {
            Error::InvalidInput(format!(
                "data directory {} is not UTF-8",
                data_dir.display()
            ))
        })?;
        let c_address = c_string(address, "address")?;
        let c_dir = c_string(dir, "data directory")?;
        let mut raw: RawNode = ptr::null_mut();
        let rc = {
            let _serial = CREATE_LOCK
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            // SAFETY: both strings are valid and NUL-terminated for the call
            // (libdqlite copies them); `raw` is a valid out-pointer.
            unsafe { (api.node_create)(id, c_address.as_ptr(), c_dir.as_ptr(), &mut raw) }
        };
        let Some(raw) = NonNull::new(raw) else {
            return Err(Error::Node {
                code: rc,
                message: format!("dqlite_node_create({id}, {address}) failed"),
            });
        };
        let node = Node {
            api,
            raw,
            id,
            address: address.to_string(),
            data_dir,
            bind_address_set: false,
            state: State::Created,
        };
        if rc != 0 {
            // Dropping destroys the half-made node.
            return Err(node.failure("dqlite_node_create", rc));
        }
        // SAFETY: `raw` is a live node not yet started; the function is
        // `'static` and ignores its (null) argument.
        let rc = unsafe {
            (api.node_set_connect_func)(raw.as_ptr(), connect_without_nagle, ptr::null_mut())
        };
        if rc != 0 {
            return Err(node.failure("dqlite_node_set_connect_func", rc));
        }
        Ok(node)
    }

    /// The node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address given at creation.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// True between a successful start and stop.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// Listens on `address` ("host:port", or "@name" for an abstract Unix
    /// socket, which accepts only connections from this process) instead of
    /// the creation address. The socket is bound by this call. A TCP port 0
    /// binds a random port that dqlite 1.11 does not report back, so pick a
    /// real port. Without this call, [`start`](Node::start) binds the
    /// creation address.
    pub fn set_bind_address(&mut self, address: &str) -> Result<()> {
        self.before_start("set_bind_address")?;
        let c_address = c_string(address, "bind address")?;
        // SAFETY: `raw` is a live node not yet started; the string is valid
        // for the call and copied by libdqlite.
        let rc = unsafe { (self.api.node_set_bind_address)(self.raw.as_ptr(), c_address.as_ptr()) };
        if rc != 0 {
            return Err(self.failure(&format!("dqlite_node_set_bind_address({address})"), rc));
        }
        self.bind_address_set = true;
        Ok(())
    }

    /// The address the node listens on, once one is bound.
    pub fn bind_address(&self) -> Option<String> {
        // SAFETY: `raw` is a live node; the returned string is owned by the
        // node and only read here, before any call that could free it.
        let ptr = unsafe { (self.api.node_get_bind_address)(self.raw.as_ptr()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: non-null pointers returned here are NUL-terminated strings
        // owned by the node, alive while `self` is borrowed.
        let address = unsafe { CStr::from_ptr(ptr) };
        Some(address.to_string_lossy().into_owned())
    }

    /// Tunes raft's timers for the given one-way network latency: heartbeat
    /// every 1.5 × latency, election timeout 15 × latency (the defaults are
    /// 500 ms and 3 s). Must be 1 ms to 1 hour.
    pub fn set_network_latency(&mut self, latency: Duration) -> Result<()> {
        self.before_start("set_network_latency")?;
        let ms = c_uint::try_from(latency.as_millis())
            .ok()
            .filter(|ms| (1..=3_600_000).contains(ms))
            .ok_or_else(|| {
                Error::InvalidInput(format!("network latency {latency:?} is not 1 ms..1 h"))
            })?;
        // SAFETY: `raw` is a live node not yet started.
        let rc = unsafe { (self.api.node_set_network_latency_ms)(self.raw.as_ptr(), ms) };
        if rc != 0 {
            return Err(self.failure("dqlite_node_set_network_latency_ms", rc));
        }
        Ok(())
    }

    /// Takes a raft snapshot every `threshold` log entries and keeps
    /// `trailing` entries after it (defaults 1024 and 8192; `trailing` must
    /// be at least 4 and at least `threshold`).
    pub fn set_snapshot_params(&mut self, threshold: u32, trailing: u32) -> Result<()> {
        self.before_start("set_snapshot_params")?;
        // SAFETY: `raw` is a live node not yet started.
        let rc =
            unsafe { (self.api.node_set_snapshot_params)(self.raw.as_ptr(), threshold, trailing) };
        if rc != 0 {
            return Err(self.failure("dqlite_node_set_snapshot_params", rc));
        }
        Ok(())
    }

    /// Forces the cluster membership to `members` (id, address), all as
    /// voters, by appending a configuration to this node's raft log: the
    /// way to revive a cluster that lost its majority. Do it on a stopped
    /// cluster, on every surviving node, before starting them.
    pub fn recover(&mut self, members: &[(u64, &str)]) -> Result<()> {
        self.before_start("recover")?;
        let addresses = members
            .iter()
            .map(|(_, address)| c_string(address, "address"))
            .collect::<Result<Vec<_>>>()?;
        let mut infos: Vec<RawNodeInfo> = members
            .iter()
            .zip(&addresses)
            .map(|((id, _), address)| RawNodeInfo {
                id: *id,
                address: address.as_ptr(),
            })
            .collect();
        let n = c_int::try_from(infos.len())
            .map_err(|_| Error::InvalidInput("too many members".into()))?;
        // SAFETY: `infos` holds `n` initialised entries whose address
        // pointers borrow `addresses`, both alive for the call; libdqlite
        // copies what it keeps.
        let rc = unsafe { (self.api.node_recover)(self.raw.as_ptr(), infos.as_mut_ptr(), n) };
        if rc != 0 {
            return Err(self.failure("dqlite_node_recover", rc));
        }
        Ok(())
    }

    /// Starts the node's thread: it bootstraps if its id asks for it (see
    /// the module docs), then serves raft and clients.
    pub fn start(&mut self) -> Result<()> {
        self.before_start("start")?;
        if !self.bind_address_set {
            // libdqlite aborts the process when started without a listener.
            let address = self.address.clone();
            self.set_bind_address(&address)?;
        }
        // SAFETY: `raw` is a live, configured node that was never started.
        let rc = unsafe { (self.api.node_start)(self.raw.as_ptr()) };
        if rc != 0 {
            self.state = State::Done;
            return Err(self.failure("dqlite_node_start", rc));
        }
        self.state = State::Running;
        Ok(())
    }

    /// Stops the node: closes its client connections and raft, and joins
    /// its thread. A stopped node cannot be started again.
    pub fn stop(&mut self) -> Result<()> {
        if self.state != State::Running {
            return Err(Error::Node {
                code: 2,
                message: "stop: the node is not running".into(),
            });
        }
        self.state = State::Done;
        // SAFETY: `raw` is a running node; stopping a running node exactly
        // once is what the API expects (stopping one that never ran would
        // signal an uninitialised handle).
        let rc = unsafe { (self.api.node_stop)(self.raw.as_ptr()) };
        if rc != 0 {
            return Err(self.failure("dqlite_node_stop", rc));
        }
        Ok(())
    }

    fn before_start(&self, what: &str) -> Result<()> {
        if self.state == State::Created {
            Ok(())
        } else {
            Err(Error::Node {
                code: 2,
                message: format!("{what}: only possible before the node is started"),
            })
        }
    }

    fn failure(&self, what: &str, code: c_int) -> Error {
        // SAFETY: `raw` is live; dqlite_node_errmsg returns a pointer into
        // the node's own NUL-terminated buffer (never null for a node).
        let ptr = unsafe { (self.api.node_errmsg)(self.raw.as_ptr()) };
        let detail = if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: see above; copied before any other call on the node.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        };
        let message = if detail.is_empty() {
            format!("{what} failed")
        } else {
            format!("{what} failed: {detail}")
        };
        Error::Node { code, message }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.state == State::Running {
            // An error here has nowhere to go; destroy runs regardless.
            let _ = self.stop();
        }
        // SAFETY: `raw` came from dqlite_node_create, its thread (if any)
        // has been joined by stop, and it is never used after this.
        unsafe { (self.api.node_destroy)(self.raw.as_ptr()) };
    }
}
