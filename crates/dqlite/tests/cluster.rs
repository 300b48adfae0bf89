//! Against a real three-node cluster: two nodes in this process, one in a
//! child process so it can be killed like a crashed server.

mod common;

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use dqlite::{Client, Connector, DbId, Error, NodeRole, Value};

/// Polls `f` until it returns Some, or panics naming `what`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn leader_seen_by(address: &str) -> Option<String> {
    let mut client = Client::connect(address, TIMEOUT).ok()?;
    client.leader().ok()?.map(|leader| leader.address)
}

fn count(client: &mut Client, db: DbId) -> i64 {
    let rows = client
        .query_sql(db, "SELECT count(*) FROM t", &[])
        .and_then(|rows| rows.collect_all())
        .expect("count");
    rows.rows[0][0].as_i64().expect("integer")
}

const HOST_ENV: &str = "DQLITE_TEST_NODE_HOST";

/// Not a test of its own: when the cluster test re-runs this binary with
/// HOST_ENV set ("id address dir"), this runs a node until killed.
#[test]
fn node_host() {
    let Ok(spec) = std::env::var(HOST_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ' ');
    let (Some(id), Some(address), Some(dir)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {HOST_ENV}: {spec}");
    };
    let mut node = dqlite::Node::new(id.parse().unwrap(), address, dir).unwrap();
    node.set_network_latency(LATENCY).unwrap();
    node.start().unwrap();
    // The parent kills this process; the timeout only bounds an orphan.
    thread::sleep(Duration::from_secs(300));
}

/// A node running in a child process, killed (SIGKILL) on drop.
struct ChildNode {
    child: Child,
    id: u64,
    address: String,
    _dir: TempDir,
}

impl ChildNode {
    fn spawn(label: &str) -> ChildNode {
        let dir = TempDir::new(label);
        let address = free_address();
        let id = dqlite::node::generate_node_id(&address).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["node_host", "--exact", "--nocapture", "--test-threads=1"])
            .env(HOST_ENV, format!("{id} {address} {}", dir.path().display()))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        eventually("the child node to listen", || {
            Client::connect(&address, TIMEOUT).ok()
        });
        ChildNode {
            child,
            id,
            address,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn three_node_cluster() {
    if !dqlite_available() {
        return;
    }
    // The first node bootstraps; the others get fresh ids and join.
    let n1 = start_node(dqlite::BOOTSTRAP_ID, "n1");
    let mut leader = wait_for_leader(&n1.address);
    let n2 = {
        let address = free_address();
        let id = dqlite::node::generate_node_id(&address).unwrap();
        let dir = TempDir::new("n2");
        let mut node = dqlite::Node::new(id, &address, dir.path()).unwrap();
        node.set_network_latency(LATENCY).unwrap();
        node.start().unwrap();
        TestNode { node, address, dir }
    };
    let mut n3 = ChildNode::spawn("n3");
    for (id, address) in [(n2.node.id(), &n2.address), (n3.id, &n3.address)] {
        leader.add(id, address).unwrap();
        leader.assign(id, NodeRole::Voter).unwrap();
    }
    let mut members = leader.cluster().unwrap();
    members.sort_by_key(|m| m.address.clone());
    let mut expected = vec![
        (n1.node.id(), n1.address.clone()),
        (n2.node.id(), n2.address.clone()),
        (n3.id, n3.address.clone()),
    ];
    expected.sort_by_key(|m| m.1.clone());
    assert_eq!(
        members
            .iter()
            .map(|m| (m.id, m.address.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(members.iter().all(|m| m.role == NodeRole::Voter));

    let db = leader.open("app").unwrap();
    leader
        .exec_sql(
            db,
            "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3)",
            &[],
        )
        .unwrap();

    // A follower knows the leader but refuses SQL.
    eventually("n2 to know the leader", || {
        (leader_seen_by(&n2.address)? == n1.address).then_some(())
    });
    let mut follower = Client::connect(&n2.address, TIMEOUT).unwrap();
    let fdb = follower.open("app").unwrap();
    let err = follower
        .query_sql(fdb, "SELECT count(*) FROM t", &[])
        .unwrap_err();
    assert!(err.is_not_leader(), "{err}");
    assert!(matches!(err, Error::Server { code: 10250, .. }));
    let err = follower
        .exec_sql(fdb, "INSERT INTO t VALUES (4)", &[])
        .unwrap_err();
    assert!(err.is_not_leader(), "{err}");
    let err = follower.add(99, "127.0.0.1:1").unwrap_err();
    assert!(err.is_not_leader(), "{err}");
    assert_eq!(
        follower.cluster().unwrap().len(),
        3,
        "any node lists members"
    );
    drop(follower);

    // The connector finds the leader from a follower's address.
    let mut via_follower = Connector::new([n2.address.clone()])
        .timeout(Duration::from_secs(10))
        .connect()
        .unwrap();
    assert_eq!(via_follower.address(), n1.address);
    let vdb = via_follower.open("app").unwrap();
    assert_eq!(count(&mut via_follower, vdb), 3);
    drop(via_follower);

    // Hand leadership to the child node; the connector follows it.
    leader.transfer(n3.id).unwrap();
    let err = leader
        .exec_sql(db, "INSERT INTO t VALUES (5)", &[])
        .unwrap_err();
    // After losing leadership the node closes the connection's database.
    assert!(
        err.is_not_leader() || err.primary_code() == Some(12),
        "{err}"
    );
    drop(leader);
    let seeds = [n2.address.clone(), n1.address.clone()];
    let mut on_n3 = eventually("the connector to reach n3", || {
        let client = Connector::new(seeds.clone())
            .timeout(Duration::from_secs(5))
            .connect()
            .ok()?;
        (client.address() == n3.address).then_some(client)
    });
    let db3 = on_n3.open("app").unwrap();
    assert_eq!(
        count(&mut on_n3, db3),
        3,
        "data replicated to the new leader"
    );
    on_n3
        .exec_sql(
            db3,
            "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
             WHERE x < 20000) SELECT x FROM c",
            &[],
        )
        .unwrap();

    // The leader is killed in the middle of a stream: the rows read so far
    // stand, then the connection fails.
    let mut rows = on_n3
        .query_sql(
            db3,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
             WHERE x < 50000000) SELECT x, printf('%080d', x) FROM c",
            &[],
        )
        .unwrap();
    for expected in 1..=1000i64 {
        let row = rows.next_row().unwrap().unwrap();
        assert_eq!(row[0], Value::Integer(expected));
    }
    n3.kill();
    let mut read_after_kill = 0u64;
    let err = loop {
        match rows.next_row() {
            Ok(Some(_)) => read_after_kill += 1,
            Ok(None) => panic!("the stream cannot complete"),
            Err(err) => break err,
        }
    };
    drop(rows);
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert!(on_n3.is_broken());
    println!("stream cut by SIGKILL: {read_after_kill} buffered rows read, then: {err}");

    // The survivors elect a leader; remove the dead node through it.
    let started = Instant::now();
    let mut survivor = Connector::new([n1.address.clone(), n2.address.clone()])
        .timeout(Duration::from_secs(15))
        .connect()
        .unwrap();
    println!(
        "new leader {} after {:?}",
        survivor.address(),
        started.elapsed()
    );
    let sdb = survivor.open("app").unwrap();
    assert_eq!(count(&mut survivor, sdb), 20_003);
    survivor.remove(n3.id).unwrap();
    let members = survivor.cluster().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.id != n3.id));
    let err = survivor.remove(n3.id).unwrap_err();
    println!("removing twice: {err}");
    assert!(matches!(err, Error::Server { .. }));
}

/// The sockets of this process connected to `port` on loopback, each with
/// whether it has `TCP_NODELAY`.
fn sockets_to(port: u16) -> Vec<(i32, bool)> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let mut peer: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `peer` is a writable sockaddr_in of the length passed; a
        // descriptor that is not a socket (or closed meanwhile) just fails.
        let rc = unsafe {
            libc::getpeername(fd, (&mut peer as *mut libc::sockaddr_in).cast(), &mut len)
        };
        if rc != 0
            || i32::from(peer.sin_family) != libc::AF_INET
            || u16::from_be(peer.sin_port) != port
        {
            continue;
        }
        let mut on: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `on` is a writable c_int of the size passed.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut size,
            )
        };
        if rc == 0 {
            found.push((fd, on != 0));
        }
    }
    found
}

/// Raft's connections between nodes go without Nagle's algorithm: with it,
/// an append sent while the previous one was unacknowledged waited up to
/// 40 ms for the peer's delayed acknowledgement (one commit in ten).
#[test]
fn raft_connections_between_nodes_have_no_nagle() {
    if !dqlite_available() {
        return;
    }
    let n1 = start_node(dqlite::BOOTSTRAP_ID, "nagle1");
    let mut leader = wait_for_leader(&n1.address);
    let address = free_address();
    let id = dqlite::node::generate_node_id(&address).unwrap();
    let dir = TempDir::new("nagle2");
    let mut node = dqlite::Node::new(id, &address, dir.path()).unwrap();
    node.set_network_latency(LATENCY).unwrap();
    node.start().unwrap();
    let n2 = TestNode { node, address, dir };
    leader.add(n2.node.id(), &n2.address).unwrap();
    leader.assign(n2.node.id(), NodeRole::Voter).unwrap();
    let db = leader.open("app").unwrap();
    leader
        .exec_sql(db, "CREATE TABLE t (x INTEGER)", &[])
        .unwrap();
    let port = |address: &str| -> u16 { address.rsplit(':').next().unwrap().parse().unwrap() };
    // Nothing but raft connects to n2 here; to n1, raft and this test's client
    // (which sets TCP_NODELAY itself).
    let (to_n1, to_n2) = eventually("raft connections both ways", || {
        leader.exec_sql(db, "INSERT INTO t VALUES (1)", &[]).ok()?;
        let to_n1 = sockets_to(port(&n1.address));
        let to_n2 = sockets_to(port(&n2.address));
        (to_n1.len() >= 2 && !to_n2.is_empty()).then_some((to_n1, to_n2))
    });
    for (fd, nodelay) in to_n1.iter().chain(&to_n2) {
        assert!(nodelay, "socket {fd} to a node has Nagle's algorithm on");
    }
}
