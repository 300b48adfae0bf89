//! Cluster mode from the command line: `postd serve --cluster-addr …` (the node, then the
//! store on the cluster, its signing key and `--seed`), and `postd cluster status|remove`.

use crate::auth::{generate_key, key_from_env};
use crate::config::{ClusterArg, ClusterCommand, ServeConfig};
use crate::store::cluster::node::{self, NodeOptions, RunningNode};
use crate::store::{ClusterStatus, Store};
use std::path::Path;

/// The settings row that holds the cluster's id.
pub const CLUSTER_ID: &str = "cluster_id";
/// The settings row that holds the token signing key (when POSTD_JWT_SECRET is not set).
const SIGNING_KEY: &str = "signing_key";

/// This process's node, started, and the store on its cluster.
pub struct ClusterServe {
    pub node: RunningNode,
    pub store: Store,
    pub signing_key: Vec<u8>,
}

/// Starts the node and opens the store on the cluster; seeds a new cluster when asked.
pub fn start(config: &ServeConfig, address: &str, data_dir: &Path) -> Result<ClusterServe, String> {
    let options = NodeOptions {
        address: address.to_owned(),
        data_dir: data_dir.to_owned(),
        join: config.join.clone(),
        timeout: config.db.cluster_timeout,
    };
    let node = node::start(&options)?;
    if config.seed.is_some() && !node.bootstrapped {
        return Err(format!(
            "--seed loads a new cluster; {} already holds a node of cluster {}",
            data_dir.display(),
            node.identity.cluster
        ));
    }
    let mut seeds = vec![address.to_owned()];
    seeds.extend(config.join.iter().cloned());
    let store = Store::open_cluster(seeds, config.db.cluster_timeout)
        .map_err(|err| format!("cannot use the cluster at {address}: {err}"))?;
    let cluster_id = store
        .setting_or_insert(CLUSTER_ID, node.identity.cluster.as_bytes())
        .map_err(|err| format!("cannot read the cluster's id: {err}"))?;
    if cluster_id != node.identity.cluster.as_bytes() {
        return Err(format!(
            "{} belongs to cluster {}, but the cluster it reached is {}",
            data_dir.display(),
            node.identity.cluster,
            String::from_utf8_lossy(&cluster_id)
        ));
    }
    if let Some(seed) = &config.seed {
        store
            .seed_from(seed)
            .map_err(|err| format!("--seed {}: {err}", seed.display()))?;
    }
    let signing_key = match &config.jwt_secret {
        Some(secret) => key_from_env(secret)?,
        None => store
            .setting_or_insert(SIGNING_KEY, &generate_key())
            .map_err(|err| format!("cannot read the cluster's signing key: {err}"))?,
    };
    Ok(ClusterServe {
        node,
        store,
        signing_key,
    })
}

pub fn run(command: ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Status { json, cluster } => status(&cluster, json),
        ClusterCommand::Remove { id, cluster } => {
            let store = open(&cluster)?;
            store.remove_member(id).map_err(|e| e.to_string())?;
            println!("removed node {id} from the cluster");
            Ok(())
        }
    }
}

fn open(cluster: &ClusterArg) -> Result<Store, String> {
    Store::open_cluster(cluster.cluster.clone(), cluster.timeout).map_err(|err| {
        format!(
            "cannot use the cluster at {}: {err}",
            cluster.cluster.join(",")
        )
    })
}

fn status(cluster: &ClusterArg, json: bool) -> Result<(), String> {
    let store = open(cluster)?;
    let Some(status) = store.cluster_status().map_err(|e| e.to_string())? else {
        return Err("not a cluster".into());
    };
    if json {
        let text = serde_json::to_string(&status).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    print_table(&status);
    Ok(())
}

fn print_table(status: &ClusterStatus) {
    println!("{:<20}  {:<24}  {:<8}  leader", "id", "address", "role");
    for member in &status.members {
        let leads = if member.id == status.leader.id {
            "yes"
        } else {
            ""
        };
        println!(
            "{:<20}  {:<24}  {:<8}  {leads}",
            member.id, member.address, member.role
        );
    }
}
