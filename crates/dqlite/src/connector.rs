//! Finding the leader of a cluster from a list of seed addresses.

use std::thread;
use std::time::{Duration, Instant};

use crate::client::{Client, DEFAULT_TIMEOUT};
use crate::error::{Error, Result};

/// Default time [`Connector::connect`] keeps looking for a leader; longer
/// than dqlite's default election (~6 s after a leader dies).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Connects to the leader of a cluster, following go-dqlite's connector:
/// ask each seed who leads, connect to that node, and keep the connection
/// only if the node confirms it leads. Rounds over all seeds repeat with a
/// short backoff until the overall deadline.
///
/// ```no_run
/// # fn main() -> Result<(), dqlite::Error> {
/// use std::time::Duration;
/// let mut client = dqlite::Connector::new(["10.0.0.1:9001", "10.0.0.2:9001"])
///     .timeout(Duration::from_secs(10))
///     .connect()?;
/// let db = client.open("app")?;
/// client.exec_sql(db, "CREATE TABLE IF NOT EXISTS t (x)", &[])?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Connector {
    seeds: Vec<String>,
    timeout: Duration,
    request_timeout: Duration,
    client_id: u64,
}

impl Connector {
    /// A connector trying `seeds` (any cluster members' "host:port").
    pub fn new<I, S>(seeds: I) -> Connector
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Connector {
            seeds: seeds.into_iter().map(Into::into).collect(),
            timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_TIMEOUT,
            client_id: 0,
        }
    }

    /// How long [`Connector::connect`] keeps trying overall.
    pub fn timeout(mut self, timeout: Duration) -> Connector {
        self.timeout = timeout;
        self
    }

    /// Per-request deadline of the returned client (and the cap on each
    /// attempt's connect and LEADER round trip).
    pub fn request_timeout(mut self, timeout: Duration) -> Connector {
        self.request_timeout = timeout;
        self
    }

    /// Id sent in the CLIENT registration (informational for the server).
    pub fn client_id(mut self, id: u64) -> Connector {
        self.client_id = id;
        self
    }

    /// The seed addresses.
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// A handshaken client connected to the current leader.
    pub fn connect(&self) -> Result<Client> {
        if self.seeds.is_empty() {
            return Err(Error::InvalidInput("no seed address given".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::InvalidInput(
                "request timeout must not be zero".into(),
            ));
        }
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut tried = Vec::with_capacity(self.seeds.len());
            for seed in &self.seeds {
                match self.try_seed(seed, deadline) {
                    Ok(client) => return Ok(client),
                    Err(reason) => tried.push(format!("{seed} ({reason})")),
                }
            }
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(Error::NoLeader { tried });
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt through `seed`; the error is a reason for the report.
    fn try_seed(&self, seed: &str, deadline: Instant) -> Result<Client, String> {
        let mut client = self.open(seed, deadline)?;
        let leader = match client.leader() {
            Ok(Some(leader)) => leader,
            Ok(None) => return Err("knows no leader".into()),
            Err(err) => return Err(err.to_string()),
        };
        if leader.address != seed {
            drop(client);
            client = self
                .open(&leader.address, deadline)
                .map_err(|reason| format!("names leader {}: {reason}", leader.address))?;
            // A node can name a leader that has since stepped down.
            match client.leader() {
                Ok(Some(confirmed)) if confirmed.address == leader.address => {}
                Ok(other) => {
                    return Err(format!(
                        "names leader {} which names {}",
                        leader.address,
                        other.map_or_else(|| "none".to_string(), |l| l.address)
                    ))
                }
                Err(err) => return Err(format!("names leader {}: {err}", leader.address)),
            }
        }
        client
            .register_client(self.client_id)
            .map_err(|err| err.to_string())?;
        client
            .set_timeout(self.request_timeout)
            .map_err(|err| err.to_string())?;
        Ok(client)
    }

    fn open(&self, address: &str, deadline: Instant) -> Result<Client, String> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "deadline passed".to_string())?;
        Client::connect(address, left.min(self.request_timeout)).map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reports_every_address_tried() {
        let dead: Vec<String> = (0..2)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            })
            .collect();
        let started = Instant::now();
        let err = Connector::new(dead.clone())
            .timeout(Duration::from_millis(300))
            .connect()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = err.to_string();
        for address in &dead {
            assert!(text.contains(address.as_str()), "{text}");
        }
        assert!(matches!(err, Error::NoLeader { .. }));
    }

    /// A fake node answering LEADER with `leader` and CLIENT with WELCOME.
    fn fake_node(listener: TcpListener, leader: String) {
        use crate::wire::Header;
        use std::io::{Read, Write};
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut version = [0u8; 8];
                if stream.read_exact(&mut version).is_err() {
                    continue;
                }
                let mut header = [0u8; 8];
                while stream.read_exact(&mut header).is_ok() {
                    let header = Header::decode(header);
                    let mut body = vec![0u8; header.body_len()];
                    stream.read_exact(&mut body).unwrap();
                    let (kind, mut answer) = match header.kind {
                        0 => (1u8, 2u64.to_le_bytes().to_vec()),
                        1 => (2u8, 15000u64.to_le_bytes().to_vec()),
                        other => panic!("unexpected request {other}"),
                    };
                    if header.kind == 0 {
                        answer.extend_from_slice(leader.as_bytes());
                        answer.push(0);
                        answer.resize(answer.len().div_ceil(8) * 8, 0);
                    }
                    let reply = Header {
                        words: (answer.len() / 8) as u32,
                        kind,
                        schema: 0,
                        extra: 0,
                    };
                    stream.write_all(&reply.encode()).unwrap();
                    stream.write_all(&answer).unwrap();
                }
            }
        });
    }

    #[test]
    fn follows_the_named_leader() {
        let follower = TcpListener::bind("127.0.0.1:0").unwrap();
        let leader = TcpListener::bind("127.0.0.1:0").unwrap();
        let follower_address = follower.local_addr().unwrap().to_string();
        let leader_address = leader.local_addr().unwrap().to_string();
        fake_node(follower, leader_address.clone());
        fake_node(leader, leader_address.clone());
        let mut client = Connector::new([follower_address])
            .timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(3))
            .connect()
            .unwrap();
        assert_eq!(client.address(), leader_address);
        assert_eq!(client.timeout(), Duration::from_secs(3));
        assert_eq!(client.leader().unwrap().unwrap().address, leader_address);
    }

    #[test]
    fn refuses_no_seeds() {
        let err = Connector::new(Vec::<String>::new()).connect().unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
    }
}
