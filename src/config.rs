//! The command line. Each option is declared once, here: its flag, its environment
//! variable, its default and its help text. Flags win over environment variables, which win
//! over the defaults. Arguments are read as `OsString`s (a non-UTF-8 argument is an error,
//! never a panic) and paths stay `PathBuf`s.

use crate::clock::Age;
use crate::logging::LogFormat;
use crate::net::{AllowedOrigins, Cidr};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DB: &str = "data/postd.db";

#[derive(Parser, Debug)]
#[command(
    name = "postd",
    about = "postd — posts and comments in one SQLite file, served over HTTP",
    after_help = "Run `postd COMMAND --help` for a command's options; `postd` alone is `postd serve`.",
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API (the default command)
    Serve(Box<ServeConfig>),
    /// Create users, change their role, delete them
    #[command(subcommand)]
    User(UserCommand),
    /// Permanently delete posts soft-deleted more than DURATION ago, with their comments
    Purge(PurgeArgs),
    /// Print the audit log (deletes, restores, purges, role changes), newest first
    Audit(AuditArgs),
    /// Write a consistent copy of the live database (safe while the server runs)
    Backup(BackupArgs),
    /// Integrity, foreign-key and full-text index checks; exit 1 on problems
    Check(DbArg),
    /// Write every post as one JSON object per line (NDJSON), as of one moment
    Export(ExportArgs),
    /// Create posts from NDJSON lines {"title","body","slug"?}; a re-run resumes
    Import(ImportArgs),
    /// A dqlite cluster's members: list them, or remove one
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// API tokens for scripts: make one (shown once), list them, revoke one
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token for USERNAME and print it (once: only its hash is kept)
    Create {
        name: String,
        /// whose token it is
        #[arg(long = "user", value_name = "USERNAME")]
        user: String,
        /// what it may do: posts:read, posts:write, events:read, admin (admins only)
        #[arg(
            long = "scope",
            value_delimiter = ',',
            required = true,
            value_name = "SCOPE,..."
        )]
        scopes: Vec<String>,
        /// how long it works (e.g. 90d); without it, until revoked
        #[arg(long, value_name = "DURATION")]
        expires: Option<Age>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Every token: its user, name, scopes and dates (never the token)
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke a token by its name: the next request with it is a 401
    Revoke {
        name: String,
        /// whose token (needed only when several users have a token of that name)
        #[arg(long = "user", value_name = "USERNAME")]
        user: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Each member (id, address, role) and the leader
    Status {
        /// one JSON object instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Remove a member (by its id, as `postd cluster status` shows it)
    Remove {
        id: u64,
        #[command(flatten)]
        cluster: ClusterArg,
    },
}

/// A cluster to reach, for the commands that only make sense on one.
#[derive(Args, Debug, Clone)]
pub struct ClusterArg {
    /// any of the cluster's nodes (their --cluster-addr), comma-separated
    #[arg(
        long,
        env = "POSTD_CLUSTER",
        value_delimiter = ',',
        required = true,
        value_name = "HOST:PORT,..."
    )]
    pub cluster: Vec<String>,
    /// how long to wait for the cluster's leader (e.g. 10s)
    #[arg(long = "cluster-timeout", env = "POSTD_CLUSTER_TIMEOUT", default_value = "10s",
          value_parser = age_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password comes from POSTD_PASSWORD or one line of stdin
    Add {
        name: String,
        /// make the user an admin
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Change a user's role
    Role {
        name: String,
        role: RoleArg,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove a user with their posts and comments
    Delete {
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Erase a user: their posts (with comments and revisions), their comments, their
    /// name from the audit log — for real, in one transaction
    Erase {
        name: String,
        /// only count what would be erased
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    User,
}

#[derive(Args, Debug, Clone)]
pub struct DbArg {
    /// the SQLite database file
    #[arg(long = "db", env = "POSTD_DB", default_value = DEFAULT_DB, value_name = "PATH")]
    pub path: PathBuf,
    /// a dqlite cluster instead of the file: any of its nodes (their --cluster-addr),
    /// comma-separated; the command runs against the cluster's leader
    #[arg(
        long,
        env = "POSTD_CLUSTER",
        value_delimiter = ',',
        value_name = "HOST:PORT,..."
    )]
    pub cluster: Vec<String>,
    /// how long a request waits for the cluster's leader (e.g. 10s)
    #[arg(long = "cluster-timeout", env = "POSTD_CLUSTER_TIMEOUT", default_value = "10s",
          value_parser = age_duration, value_name = "DURATION")]
    pub cluster_timeout: Duration,
}

impl DbArg {
    /// Where the data is: the cluster when one is named, else the file.
    pub fn place(&self) -> Place<'_> {
        if self.cluster.is_empty() {
            Place::File(&self.path)
        } else {
            Place::Cluster(&self.cluster)
        }
    }
}

/// Where a command's data is.
pub enum Place<'a> {
    File(&'a std::path::Path),
    Cluster(&'a [String]),
}

/// A DURATION (`10s`, `2m`) as a `Duration`.
fn age_duration(text: &str) -> Result<Duration, String> {
    text.parse::<Age>().map(|age| age.duration())
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// how long ago a post must have been soft-deleted (e.g. 30d, 12h, 15m, 45s)
    #[arg(long, value_name = "DURATION")]
    pub older_than: Age,
    /// only count what would be purged
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// how many events to print, newest first
    #[arg(long, default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub limit: u32,
    /// one JSON event per line (as GET /admin/audit shows them) instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// where the copy goes; replaced atomically, never through a symbolic link
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Posts come out in id order, as GET /posts/{id} shows them (with \
                        --trash, soft-deleted ones as GET /trash does), all read in one \
                        snapshot while writers go on. The WAL can not be checkpointed past \
                        that snapshot until the export ends, so it grows by what is written \
                        meanwhile."
)]
pub struct ExportArgs {
    /// soft-deleted posts too, with deleted_at and deleted_by_id
    #[arg(long)]
    pub trash: bool,
    /// write to FILE instead of stdout (mode 0600; replaced once complete, never written
    /// through a symbolic link)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Each line is checked and written as POST /posts would, in file \
                        order: a bad line is reported as `line N: field: message`, skipped, \
                        and makes the exit status 2. Lines are committed 1,000 at a time \
                        together with the import's progress. Resuming: the input is \
                        recognised by the SHA-256 of its bytes and the --as user; the same \
                        command again (the same bytes, also on stdin) continues after the \
                        last committed line, and an input imported completely is not \
                        imported again. stdin is first copied beside the database."
)]
pub struct ImportArgs {
    /// the NDJSON file, or - for stdin
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
    /// the user who becomes the author of every post
    #[arg(long = "as", value_name = "USERNAME")]
    pub author: String,
    /// check the whole file first: any bad line rejects it and nothing is written
    #[arg(long)]
    pub atomic: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Signup {
    Open,
    Closed,
}

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "The token signing key is POSTD_JWT_SECRET (>= 32 bytes) or the file \
                        postd.key beside the database. POSTD_METRICS_TOKEN (>= 16 visible \
                        ASCII characters) serves GET /metrics on the main port to \
                        `Authorization: Bearer <token>`; like the signing key it is read from \
                        the environment only."
)]
pub struct ServeConfig {
    /// listen address (port 0 picks a free one; the start-up line tells which)
    #[arg(long, env = "POSTD_ADDR", default_value = DEFAULT_ADDR, value_name = "ADDR")]
    pub addr: String,

    #[command(flatten)]
    pub db: DbArg,

    /// whether POST /auth/register works
    #[arg(long, env = "POSTD_SIGNUP", default_value = "open")]
    pub signup: Signup,

    /// access token lifetime, seconds
    #[arg(long = "token-ttl", env = "POSTD_TOKEN_TTL", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECS")]
    pub token_ttl_secs: u64,

    /// largest request body, bytes (413 above; never read past)
    #[arg(long, env = "POSTD_MAX_BODY", default_value_t = 16 * 1024 * 1024,
          value_parser = positive_usize, value_name = "BYTES")]
    pub max_body: usize,

    /// most items in one bulk request (413 above)
    #[arg(long, env = "POSTD_MAX_BULK", default_value_t = 10_000,
          value_parser = positive_usize, value_name = "N")]
    pub max_bulk: usize,

    /// request worker threads [default: 4 x CPUs]
    #[arg(long, env = "POSTD_WORKERS", default_value_t = default_workers(),
          hide_default_value = true, value_parser = positive_usize, value_name = "N")]
    pub workers: usize,

    /// most open connections; past it a new one gets 503 with Retry-After
    #[arg(long, env = "POSTD_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = positive_usize, value_name = "N")]
    pub max_connections: usize,

    /// memory for request bodies read ahead of the workers, all connections together;
    /// when it is spent a new body gets 503 with Retry-After
    #[arg(long, env = "POSTD_READ_AHEAD_BUDGET", default_value_t = 256 * 1024 * 1024,
          value_parser = positive_usize, value_name = "BYTES")]
    pub read_ahead_budget: usize,

    /// proxies whose X-Forwarded-For is believed (comma-separated CIDRs, e.g. 127.0.0.1/32)
    #[arg(
        long,
        env = "POSTD_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR,..."
    )]
    pub trusted_proxies: Vec<Cidr>,

    /// sign-ups per client address per 15 minutes; 0 turns the limit off
    #[arg(
        long,
        env = "POSTD_REGISTER_LIMIT",
        default_value_t = 20,
        value_name = "N"
    )]
    pub register_limit: u32,

    /// stderr lines: plain, logfmt or json; off keeps logfmt but drops the access log
    #[arg(
        long,
        env = "POSTD_LOG_FORMAT",
        default_value = "logfmt",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// seconds requests in flight get to finish after SIGTERM/SIGINT
    #[arg(long = "shutdown-grace", env = "POSTD_SHUTDOWN_GRACE", default_value = "30",
          value_parser = seconds, value_name = "SECS")]
    pub shutdown_grace: Duration,

    /// permanently delete posts soft-deleted longer ago than this (e.g. 30d), checking at
    /// least once a minute; off when not given
    #[arg(long, env = "POSTD_TRASH_RETENTION", value_name = "DURATION")]
    pub trash_retention: Option<Age>,

    /// most change-feed streams (GET /events) open at once; past it 503 with Retry-After
    #[arg(long, env = "POSTD_MAX_EVENT_STREAMS", default_value_t = 64,
          value_parser = positive_usize, value_name = "N")]
    pub max_event_streams: usize,

    /// old versions of title, slug and body kept per post (GET /posts/{id}/revisions)
    #[arg(
        long,
        env = "POSTD_REVISION_LIMIT",
        default_value_t = 100,
        value_name = "N"
    )]
    pub revision_limit: u32,

    /// how long an author may restore a post they soft-deleted themselves (e.g. 15m);
    /// 0s: never, only admins restore
    #[arg(
        long,
        env = "POSTD_OWNER_UNDO",
        default_value = "0s",
        value_name = "DURATION"
    )]
    pub owner_undo: Age,

    /// remove audit events older than this (e.g. 365d), checking at least once a minute;
    /// erasures are kept; off when not given
    #[arg(long, env = "POSTD_AUDIT_RETENTION", value_name = "DURATION")]
    pub audit_retention: Option<Age>,

    /// checkpoint the WAL at N pages; 0 leaves checkpoints to Litestream
    #[arg(
        long,
        env = "POSTD_WAL_AUTOCHECKPOINT",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub wal_autocheckpoint: u32,

    /// web origins whose browser scripts may call the API (CORS): `*`, or
    /// comma-separated origins such as https://app.example.com
    #[arg(long, env = "POSTD_CORS_ORIGINS", value_name = "ORIGIN,...")]
    pub cors_origins: Option<AllowedOrigins>,

    /// also serve GET /metrics, without a token, on this address (for loopback or a
    /// private network)
    #[arg(long, env = "POSTD_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// cluster mode: run a dqlite node on this address (HOST:PORT the other nodes can
    /// reach) and keep the data in the cluster instead of --db
    #[arg(long, env = "POSTD_CLUSTER_ADDR", value_name = "HOST:PORT")]
    pub cluster_addr: Option<String>,

    /// cluster mode: this node's Raft state (created 0700; the same directory again is
    /// the same node rejoining)
    #[arg(long, env = "POSTD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// cluster mode: addresses of the cluster to join (without it, a new one-node cluster
    /// is started)
    #[arg(
        long,
        env = "POSTD_JOIN",
        value_delimiter = ',',
        value_name = "HOST:PORT,..."
    )]
    pub join: Vec<String>,

    /// cluster mode, when starting a new cluster: load every row of this postd database
    /// file first
    #[arg(long, env = "POSTD_SEED", value_name = "FILE")]
    pub seed: Option<PathBuf>,

    /// POSTD_JWT_SECRET: read from the environment only, so it never shows in `ps`.
    #[arg(skip)]
    pub jwt_secret: Option<String>,

    /// POSTD_METRICS_TOKEN: read from the environment only, like the signing secret.
    #[arg(skip)]
    pub metrics_token: Option<String>,
}

/// The shortest POSTD_METRICS_TOKEN accepted: guessing it must not be practical.
pub const METRICS_TOKEN_MIN: usize = 16;

impl ServeConfig {
    pub fn signup_open(&self) -> bool {
        self.signup == Signup::Open
    }
}

fn positive_usize(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| "must be a whole number of seconds".into())
}

pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        * 4
}

/// What the command line asks for.
// One value per process, moved once: the size of `Run` costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Invocation {
    Run(Command),
    /// Help or version text to print (exit 0).
    Print(String),
}

/// A command line that can not be run: one line for stderr, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments after the program name. With no command, or when the first
/// argument is an option, the command is `serve`.
pub fn parse<I, T>(args: I) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        return Ok(Invocation::Print(version_text()));
    }
    let wants_top_help = matches!(args.first(), Some(a) if a == "--help" || a == "-h");
    let serve_implied = match args.first() {
        None => true,
        Some(first) => first.to_string_lossy().starts_with('-') && !wants_top_help,
    };
    if serve_implied {
        args.insert(0, "serve".into());
    }
    args.insert(0, "postd".into());
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(Invocation::Run(with_secrets(cli.command)?)),
        Err(err) => match err.kind() {
            clap::error::ErrorKind::DisplayHelp => Ok(Invocation::Print(err.to_string())),
            _ => Err(UsageError(one_line(&err))),
        },
    }
}

/// clap's message without its "error: " prefix and the usage lines it appends.
fn one_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see postd --help)")
}

fn with_secrets(mut command: Command) -> Result<Command, UsageError> {
    if let Command::Serve(config) = &mut command {
        check_cluster_options(config)?;
        config.jwt_secret = std::env::var("POSTD_JWT_SECRET")
            .ok()
            .filter(|s| !s.is_empty());
        config.metrics_token = std::env::var("POSTD_METRICS_TOKEN")
            .ok()
            .filter(|s| !s.is_empty());
        if let Some(token) = &config.metrics_token {
            if token.len() < METRICS_TOKEN_MIN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(UsageError(format!(
                    "POSTD_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN} visible ASCII \
                     characters (see postd serve --help)"
                )));
            }
        }
    }
    Ok(command)
}

/// Cluster mode's options come together: an address and a directory, `--join` and
/// `--seed` only with them, and never both.
fn check_cluster_options(config: &ServeConfig) -> Result<(), UsageError> {
    let usage = |text: &str| Err(UsageError(format!("{text} (see postd serve --help)")));
    match (&config.cluster_addr, &config.data_dir) {
        (Some(_), None) => return usage("--cluster-addr needs --data-dir"),
        (None, Some(_)) => return usage("--data-dir needs --cluster-addr"),
        (None, None) if !config.join.is_empty() || config.seed.is_some() => {
            return usage("--join and --seed need --cluster-addr and --data-dir")
        }
        _ => {}
    }
    if !config.join.is_empty() && config.seed.is_some() {
        return usage("--seed starts a new cluster; it can not be given with --join");
    }
    if config.cluster_addr.is_some() && !config.db.cluster.is_empty() {
        return usage("--cluster-addr runs a node of its own; --cluster names another cluster");
    }
    Ok(())
}

fn version_text() -> String {
    crate::version::long_version()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<Command, UsageError> {
        match parse(line.split_whitespace())? {
            Invocation::Run(command) => Ok(command),
            Invocation::Print(text) => panic!("{line}: printed {text}"),
        }
    }

    #[test]
    fn no_command_or_a_leading_option_means_serve() {
        let Command::Serve(c) = run("").unwrap() else {
            panic!()
        };
        assert_eq!(c.db.path.to_str(), Some(DEFAULT_DB));
        let Command::Serve(c) = run("--addr 127.0.0.1:9 --signup closed").unwrap() else {
            panic!()
        };
        assert_eq!((c.addr.as_str(), c.signup_open()), ("127.0.0.1:9", false));
    }

    #[test]
    fn subcommands_take_db_after_their_arguments() {
        match run("user add alice --admin --db x.db").unwrap() {
            Command::User(UserCommand::Add { name, admin, db }) => {
                assert_eq!(
                    (db.path.to_str(), name.as_str(), admin),
                    (Some("x.db"), "alice", true)
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run("purge --older-than 30d --dry-run"),
            Ok(Command::Purge(PurgeArgs { dry_run: true, .. }))
        ));
    }

    #[test]
    fn every_command_has_its_own_help() {
        for (line, mentions) in [
            ("--help", "postd COMMAND --help"),
            ("serve --help", "--max-connections"),
            ("user add --help", "POSTD_PASSWORD"),
            ("purge -h", "--older-than"),
            ("audit --help", "--json"),
            ("serve --help", "POSTD_TRASH_RETENTION"),
            ("backup --help", "symbolic link"),
            ("check --help", "--db"),
            ("export --help", "snapshot"),
            ("import --help", "SHA-256"),
        ] {
            match parse(line.split_whitespace()) {
                Ok(Invocation::Print(text)) => assert!(text.contains(mentions), "{line}: {text}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_input_is_one_clear_error() {
        for bad in [
            "--workers 0",
            "--max-bulk x",
            "--bogus",
            "purge",
            "purge --older-than 3w",
            "user",
            "frobnicate",
            "--signup maybe",
            "--trusted-proxies 10.0.0.0/33",
            "--cors-origins https://a.example/path",
            "--cors-origins *,https://a.example",
            "--trash-retention 30",
            "--trash-retention 36501d",
            "audit --limit 0",
        ] {
            let err = run(bad).unwrap_err().0;
            assert!(!err.contains('\n') && !err.is_empty(), "{bad}: {err}");
        }
    }

    #[test]
    fn arguments_that_are_not_utf8_are_refused_not_a_panic() {
        use std::os::unix::ffi::OsStringExt;
        let name = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let args = vec![OsString::from("user"), OsString::from("add"), name];
        assert!(parse(args).is_err());
        // A path may be any bytes.
        let path = OsString::from_vec(vec![b'd', 0xff, b'.', b'd', b'b']);
        let args = vec![
            OsString::from("check"),
            OsString::from("--db"),
            path.clone(),
        ];
        match parse(args) {
            Ok(Invocation::Run(Command::Check(db))) => assert_eq!(db.path.as_os_str(), path),
            other => panic!("{other:?}"),
        }
    }
}
