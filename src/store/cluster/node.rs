//! The dqlite node a `postd serve` in cluster mode runs: created on `--cluster-addr`
//! with its Raft state in `--data-dir`, started before the server answers and stopped
//! after it; a SIGKILL of the process takes it down with it.
//!
//! Which node a directory holds is written in `node.json` beside the Raft state, before
//! the node first starts: its id, its address and the cluster's id. The first node of a
//! cluster takes dqlite's bootstrap id (a node with it starts a one-voter cluster of its
//! own); a joining node takes an id made from its address, and the cluster's leader adds
//! it — as a voter while there are fewer than three, as a stand-by after that. The same
//! directory again is the same node rejoining: its id and cluster come from `node.json`.

use super::Cluster;
use dqlite::{Node, NodeRole, BOOTSTRAP_ID};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Voters a cluster gets before joining nodes become stand-bys: three survive the loss of one.
const WANTED_VOTERS: usize = 3;
const IDENTITY_FILE: &str = "node.json";
/// Raft keeps every log entry since its last snapshot, and `trailing` more, in memory;
/// each entry is a transaction's WAL frames, whole pages (~50–80 KiB for one new post with
/// its indexes, full-text rows and audit event). libraft's defaults (1,024 and 8,192) let
/// a node grow past 380 MiB in `cargo bench --bench cluster`; 256 and 256 held it to
/// 162 MiB with no write slower beyond the run's noise (128 and 128: 141 MiB, but single
/// creates ~25% slower: a snapshot writes the database's pages to `--data-dir`).
const SNAPSHOT_EVERY: u32 = 256;
const SNAPSHOT_TRAILING: u32 = 256;

/// What `postd serve` was told about its node.
pub struct NodeOptions {
    pub address: String,
    pub data_dir: PathBuf,
    /// Addresses of the cluster to join; empty: start a new one.
    pub join: Vec<String>,
    /// How long to wait for the cluster (joining, finding a leader).
    pub timeout: Duration,
}

/// Who this node is, as `node.json` says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub id: u64,
    pub address: String,
    /// The cluster's id, as its database's `settings` say (`cluster_id`).
    pub cluster: String,
}

/// A running node; stopped when dropped.
pub struct RunningNode {
    node: Node,
    pub identity: Identity,
    /// True when this start bootstrapped a new cluster (the directory was new and no
    /// `--join` was given): the only time `--seed` applies.
    pub bootstrapped: bool,
}

impl RunningNode {
    pub fn id(&self) -> u64 {
        self.identity.id
    }

    pub fn address(&self) -> &str {
        &self.identity.address
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Err(err) = self.node.stop() {
            log::warn!("stopping the dqlite node: {err}");
        }
    }
}

/// Why libdqlite can not be had here, in one line that says what to do.
fn library_missing(err: &dqlite::Error) -> String {
    if cfg!(target_env = "musl") {
        format!(
            "cluster mode needs the glibc build of postd and the libdqlite0 package; this \
             static build can not load libdqlite ({err})"
        )
    } else {
        format!("cluster mode needs libdqlite: {err}")
    }
}

/// Starts this process's node: a new cluster, a joining node, or the same node again.
pub fn start(options: &NodeOptions) -> Result<RunningNode, String> {
    dqlite::node::load().map_err(|err| library_missing(&err))?;
    prepare_dir(&options.data_dir)?;
    let known = read_identity(&options.data_dir)?;
    if let Some(identity) = &known {
        if identity.address != options.address {
            return Err(format!(
                "{} holds the node at {}, not {}: start it with --cluster-addr {} or use another --data-dir",
                options.data_dir.display(),
                identity.address,
                options.address,
                identity.address
            ));
        }
    } else if has_entries(&options.data_dir)? {
        return Err(format!(
            "{} is not empty and holds no {IDENTITY_FILE}: it is not a postd node's directory",
            options.data_dir.display()
        ));
    }
    match (known, options.join.is_empty()) {
        (Some(identity), true) => run(options, identity, false),
        (Some(identity), false) => rejoin(options, identity),
        (None, true) => {
            let identity = Identity {
                id: BOOTSTRAP_ID,
                address: options.address.clone(),
                cluster: new_cluster_id()?,
            };
            write_identity(&options.data_dir, &identity)?;
            run(options, identity, true)
        }
        (None, false) => join(options),
    }
}

fn run(
    options: &NodeOptions,
    identity: Identity,
    bootstrapped: bool,
) -> Result<RunningNode, String> {
    let mut node = Node::new(identity.id, &identity.address, &options.data_dir)
        .map_err(|err| format!("cannot create the dqlite node: {err}"))?;
    node.set_snapshot_params(SNAPSHOT_EVERY, SNAPSHOT_TRAILING)
        .map_err(|err| format!("cannot set the dqlite node's snapshot parameters: {err}"))?;
    node.start().map_err(|err| {
        format!(
            "cannot start the dqlite node on {}: {err}",
            identity.address
        )
    })?;
    Ok(RunningNode {
        node,
        identity,
        bootstrapped,
    })
}

/// A new node joining the cluster at `options.join`.
fn join(options: &NodeOptions) -> Result<RunningNode, String> {
    let cluster = Cluster::new(options.join.clone(), options.timeout, super::DATABASE);
    let cluster_id = cluster_id_of(&cluster, &options.join)?;
    let id = dqlite::node::generate_node_id(&options.address)
        .map_err(|err| format!("cannot make a node id: {err}"))?;
    let identity = Identity {
        id,
        address: options.address.clone(),
        cluster: cluster_id,
    };
    write_identity(&options.data_dir, &identity)?;
    let running = run(options, identity, false)?;
    become_member(&cluster, &running.identity, options)?;
    Ok(running)
}

/// A known node started with `--join`: the cluster must be its own; it is added again if
/// it was removed meanwhile.
fn rejoin(options: &NodeOptions, identity: Identity) -> Result<RunningNode, String> {
    let cluster = Cluster::new(options.join.clone(), options.timeout, super::DATABASE);
    let cluster_id = cluster_id_of(&cluster, &options.join)?;
    if cluster_id != identity.cluster {
        return Err(format!(
            "{} belongs to another cluster (its id is {}, the cluster at {} is {cluster_id})",
            options.data_dir.display(),
            identity.cluster,
            options.join.join(",")
        ));
    }
    let running = run(options, identity, false)?;
    become_member(&cluster, &running.identity, options)?;
    Ok(running)
}

/// The id the cluster at `join` keeps in its settings.
fn cluster_id_of(cluster: &Cluster, join: &[String]) -> Result<String, String> {
    let unreachable =
        |err: super::Error| format!("cannot reach the cluster at {}: {err}", join.join(","));
    let session = cluster.session().map_err(unreachable)?;
    let conn = super::super::sql::Conn::cluster(&session);
    let found = super::super::shared::setting(&conn, "cluster_id").map_err(|err| {
        format!(
            "the cluster at {} holds no postd database: {err}",
            join.join(",")
        )
    })?;
    found
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| format!("the cluster at {} has no postd cluster id", join.join(",")))
}

/// Adds the node to the cluster unless it is a member, and gives it a role: voter while
/// the cluster has fewer than three, stand-by after that. Raft takes one configuration
/// change at a time: nodes joining together take turns, each trying again shortly.
fn become_member(
    cluster: &Cluster,
    identity: &Identity,
    options: &NodeOptions,
) -> Result<(), String> {
    let deadline = Instant::now() + options.timeout;
    loop {
        match try_to_become_member(cluster, identity, deadline) {
            Ok(()) => return Ok(()),
            Err(err) if Instant::now() < deadline && is_retryable(&err) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => {
                return Err(format!(
                    "cannot add node {} at {} to the cluster: {err}",
                    identity.id, identity.address
                ))
            }
        }
    }
}

/// Another change in progress, or the leader changing: worth another try.
fn is_retryable(err: &dqlite::Error) -> bool {
    err.is_busy() || err.is_not_leader() || err.is_connection_error()
}

fn try_to_become_member(
    cluster: &Cluster,
    identity: &Identity,
    deadline: Instant,
) -> dqlite::Result<()> {
    let mut client = cluster
        .leader_client(deadline)
        .map_err(|err| dqlite::Error::NoLeader {
            tried: vec![err.to_string()],
        })?;
    let members = client.cluster()?;
    let existing = members.iter().find(|m| m.id == identity.id);
    if existing.is_some_and(|m| m.role != NodeRole::Spare) {
        return Ok(());
    }
    if existing.is_none() {
        client.add(identity.id, &identity.address)?;
    }
    let voters = members.iter().filter(|m| m.role == NodeRole::Voter).count();
    let role = if voters < WANTED_VOTERS {
        NodeRole::Voter
    } else {
        NodeRole::StandBy
    };
    client.assign(identity.id, role)?;
    cluster.learn(members.into_iter().map(|m| m.address));
    Ok(())
}

fn prepare_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
            }
            Ok(())
        }
        Ok(_) => Err(format!("--data-dir {} is not a directory", dir.display())),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create --data-dir {}: {e}", dir.display())),
    }
}

fn has_entries(dir: &Path) -> Result<bool, String> {
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    Ok(entries.next().is_some())
}

fn read_identity(dir: &Path) -> Result<Option<Identity>, String> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is damaged: {e}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    }
}

/// Written to a new file and renamed in: a crash leaves the old file or the new one.
fn write_identity(dir: &Path, identity: &Identity) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(IDENTITY_FILE);
    let partial = dir.join(format!("{IDENTITY_FILE}.partial"));
    let _ = std::fs::remove_file(&partial);
    let bytes = serde_json::to_vec_pretty(identity).map_err(|e| e.to_string())?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, &path));
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A new cluster's id: 16 random bytes in hex.
fn new_cluster_id() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(crate::text::hex(&bytes))
}
