//! The quick tier's way in: postd's request handler (`postd::api::handle`) called in this
//! process, on a real SQLite file in a fresh temporary directory, with the `App` that
//! `postd serve` builds from the same options (`postd::cli::app`). Nothing of the
//! transport is here: the `Server` and `X-Content-Type-Options` headers, `Connection:
//! close`, framing and the transport's own refusals are checked against the binary
//! ([`super::Server`], the heavy tier).

use super::{Api, TestUser, PASSWORD};
use postd::api::App;
use postd::config::{Command, Invocation, ServeConfig};
use postd::model::{Role, Username};
use postd_testkit::http::Response;
use postd_testkit::TempDir;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Where every in-process request comes from, as the transport would report a client on
/// loopback.
const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 40_000);

pub struct TestApp {
    // Declared first, so the database closes before its directory goes.
    app: App,
    config: ServeConfig,
    pub db: PathBuf,
    pub dir: TempDir,
    /// On a cluster (`POSTD_TEST_CLUSTER`): its addresses and this app's database there.
    cluster_database: Option<(Vec<String>, String)>,
}

/// `POSTD_TEST_CLUSTER=HOST:PORT[,…]`: the contract's tests run on a dqlite cluster
/// reached through those addresses (a follower's, in `heavy::cluster`), each app on a
/// database of its own there, instead of on a file. Only tests that never look at the
/// file run so (`heavy::cluster::the_contracts_own_tests_pass_through_a_follower` picks
/// them).
fn cluster_seeds() -> Option<Vec<String>> {
    let seeds = std::env::var("POSTD_TEST_CLUSTER").ok()?;
    Some(seeds.split(',').map(str::to_owned).collect())
}

static CLUSTER_DATABASES: AtomicUsize = AtomicUsize::new(0);

/// What `postd serve` builds on a cluster, on `database` there; the signing key is the
/// test process's own.
fn build_on_cluster(config: &ServeConfig, seeds: &[String], database: &str) -> App {
    let store = postd::store::Store::open_cluster_database(
        seeds.to_vec(),
        config.db.cluster_timeout,
        database,
    )
    .unwrap_or_else(|err| panic!("cannot open {database} on the cluster {seeds:?}: {err}"));
    let keys = postd::auth::TokenKeys::new(
        b"the test process's signing key, 32+ bytes",
        config.token_ttl_secs,
    );
    App::new(config, store, keys)
}

impl TestApp {
    /// An app with postd's defaults on a new database.
    pub fn new() -> TestApp {
        TestApp::with_args(&[])
    }

    /// With `postd serve` options (`--max-body 1024`, `--cors-origins '*'`, …).
    pub fn with_args(args: &[&str]) -> TestApp {
        TestApp::with_config(args, |_| {})
    }

    /// With options, then `adjust` for what `postd serve` reads only from its environment
    /// (`metrics_token`, `jwt_secret`): the environment is the whole test process's.
    pub fn with_config(args: &[&str], adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let dir = TempDir::new("app");
        let db = dir.path().join("postd.db");
        if let Some(seeds) = cluster_seeds() {
            let mut config = serve_config(&db, args);
            adjust(&mut config);
            let database = format!(
                "test-{}-{}",
                std::process::id(),
                CLUSTER_DATABASES.fetch_add(1, Ordering::SeqCst)
            );
            return TestApp {
                app: build_on_cluster(&config, &seeds, &database),
                config,
                db,
                dir,
                cluster_database: Some((seeds, database)),
            };
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            // What postd's umask gives the files it makes.
            .mode(0o600)
            .open(&db)
            .expect("create the database file");
        file.write_all(template()).expect("copy the template");
        drop(file);
        let mut config = serve_config(&db, args);
        adjust(&mut config);
        TestApp {
            app: build(&config),
            config,
            db,
            dir,
            cluster_database: None,
        }
    }

    /// Whether this app runs on a cluster (`POSTD_TEST_CLUSTER`) instead of a file.
    pub fn on_cluster(&self) -> bool {
        self.cluster_database.is_some()
    }

    /// Stops and starts again on the same database and signing key, as `postd serve`
    /// does: the WAL checkpointed into the file, then a new `App` built from the options.
    pub fn restart(&mut self) {
        if let Some((seeds, database)) = &self.cluster_database {
            self.app = build_on_cluster(&self.config, seeds, database);
            return;
        }
        self.app.store.checkpoint().expect("checkpoint");
        self.app = build(&self.config);
    }

    /// Copies the WAL into the database file and truncates it, as a stopped server leaves
    /// it (what is on disk is then the file alone).
    pub fn checkpoint(&self) {
        self.app.store.checkpoint().expect("checkpoint");
    }
}

impl TestApp {
    /// A request whose answer's body is not read: its status and headers, and the body as
    /// the handler made it, to read as far as the test wants (the change feed's stream
    /// never ends; dropping the reader ends it).
    pub fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (Response, Box<dyn Read + Send>) {
        // The head as a client sends it, and as the transport hands it on: Host first,
        // Content-Length after the caller's fields.
        let mut fields = vec![("Host".to_string(), "127.0.0.1".to_string())];
        fields.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if let Some(body) = body {
            fields.push(("Content-Length".to_string(), body.len().to_string()));
        }
        let request = rouille::Request::fake_http_from(
            SocketAddr::from(PEER),
            method,
            path,
            fields,
            body.unwrap_or_default().to_vec(),
        );
        let answer = postd::api::handle(&self.app, &request);
        let status = answer.status_code;
        let headers = answer
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (reader, _) = answer.data.into_reader_and_size();
        let head = Response {
            status,
            headers,
            body: Vec::new(),
        };
        (head, reader)
    }
}

impl Api for TestApp {
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let (mut answer, mut reader) = self.open(method, path, headers, body);
        reader
            .read_to_end(&mut answer.body)
            .expect("read the answer");
        answer
    }

    fn db(&self) -> &Path {
        &self.db
    }

    fn sql_text(&self, sql: &str, ids: &[i64]) -> Option<String> {
        let Some((seeds, database)) = &self.cluster_database else {
            return super::api::file_sql_text(&self.db, sql, ids);
        };
        let mut client = dqlite::Connector::new(seeds.clone())
            .connect()
            .unwrap_or_else(|e| panic!("the cluster's leader: {e}"));
        let db = client.open(database).expect("open the test's database");
        let params: Vec<dqlite::Param<'_>> =
            ids.iter().map(|id| dqlite::Param::Integer(*id)).collect();
        let rows = client
            .query_sql(db, sql, &params)
            .and_then(|rows| rows.collect_all())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        match rows.rows.into_iter().next()?.into_iter().next()? {
            dqlite::Value::Null => None,
            dqlite::Value::Integer(n) | dqlite::Value::UnixTime(n) => Some(n.to_string()),
            dqlite::Value::Float(x) => Some(x.to_string()),
            dqlite::Value::Text(t) | dqlite::Value::Iso8601(t) => Some(t),
            dqlite::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            dqlite::Value::Boolean(b) => Some(i64::from(b).to_string()),
        }
    }

    /// Straight into the store with a real Argon2id hash of [`PASSWORD`], hashed once per
    /// test process (~30 ms each), then signed in through `POST /auth/login`. The tests
    /// about `postd user add` run the command line instead.
    fn admin(&self, name: &str) -> TestUser {
        static HASH: OnceLock<String> = OnceLock::new();
        let hash = HASH.get_or_init(|| postd::auth::hash_password(PASSWORD).expect("hash"));
        let username = Username::parse(name).unwrap_or_else(|why| panic!("{name}: {why}"));
        let user = self
            .app
            .store
            .create_user(&username, hash, Role::Admin)
            .unwrap_or_else(|err| panic!("admin {name}: {err}"));
        TestUser {
            id: user.id,
            name: name.to_string(),
            token: self.login(name),
        }
    }
}

/// `postd serve --db DB ARGS` as parsed by postd itself.
fn serve_config(db: &Path, args: &[&str]) -> ServeConfig {
    let mut all = vec!["serve".to_string(), "--db".into(), db.display().to_string()];
    // Tests sign many users up from one address; the ones about the sign-up limit set it.
    if !args.iter().any(|a| a.starts_with("--register-limit")) {
        all.extend(["--register-limit".into(), "0".into()]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    match postd::config::parse(&all) {
        Ok(Invocation::Run(Command::Serve(config))) => *config,
        other => panic!("postd {all:?} is not a serve command line: {other:?}"),
    }
}

fn build(config: &ServeConfig) -> App {
    postd::cli::app(config).unwrap_or_else(|err| panic!("cannot build the app: {err}"))
}

/// A database with the schema, made once per test process: each app starts from a copy
/// instead of migrating a new file. Its bytes are kept, not the file, since nothing would
/// remove a file kept for the whole process.
fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = TempDir::new("template");
        let db = dir.path().join("postd.db");
        let app = build(&serve_config(&db, &[]));
        // As a stopped server leaves it: one self-contained file, the WAL copied in.
        app.store.checkpoint().expect("checkpoint");
        drop(app);
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        assert!(
            std::fs::metadata(&wal).map_or(true, |meta| meta.len() == 0),
            "the template's WAL was not checkpointed"
        );
        std::fs::read(&db).expect("read the template")
    })
}
