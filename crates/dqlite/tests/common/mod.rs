//! Helpers shared by the tests that run real dqlite nodes.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use dqlite::{Client, Node};

/// True when libdqlite can be loaded. Otherwise prints the skip line and
/// returns false, except under CI=true, where a missing library must fail.
pub fn dqlite_available() -> bool {
    match dqlite::node::load() {
        Ok(()) => true,
        Err(err) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but libdqlite cannot be loaded: {err}");
            }
            // Straight to the process's stdout: libtest captures println!
            // of passing tests, and this line must be seen.
            let _ = writeln!(
                std::io::stdout().lock(),
                "SKIPPED: libdqlite0 not installed"
            );
            false
        }
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let address = listener.local_addr().expect("local address").to_string();
    drop(listener);
    address
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("dqlite-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A started node and its data directory; the node stops before the
/// directory is removed (fields drop in order).
pub struct TestNode {
    pub node: Node,
    pub address: String,
    pub dir: TempDir,
}

/// Election timeout is 15 × this: short enough for quick tests, long enough
/// not to flap on a busy two-core machine.
pub const LATENCY: Duration = Duration::from_millis(40);

pub fn start_node(id: u64, label: &str) -> TestNode {
    let dir = TempDir::new(label);
    let address = free_address();
    let mut node = Node::new(id, &address, dir.path()).expect("create node");
    node.set_network_latency(LATENCY).expect("set latency");
    node.start().expect("start node");
    TestNode { node, address, dir }
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `address` once it reports itself as leader.
pub fn wait_for_leader(address: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut client) = Client::connect(address, TIMEOUT) {
            if let Ok(Some(leader)) = client.leader() {
                if leader.address == address {
                    return client;
                }
            }
        }
        assert!(Instant::now() < deadline, "{address} did not become leader");
        thread::sleep(Duration::from_millis(50));
    }
}
