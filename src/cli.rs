//! What each command does. Results go to stdout; every failure is one line on stderr
//! (through the logger) and a non-zero exit: 2 for a command line that can not be run,
//! 1 for a command that failed.

use crate::api::{self, App};
use crate::auth::{hash_password, load_or_create_key, TokenKeys};
use crate::config::{
    self, AuditArgs, BackupArgs, Command, DbArg, Invocation, Place, PurgeArgs, RoleArg,
    ServeConfig, TokenCommand, UserCommand,
};
use crate::logging::{self, LogFormat};
use crate::model::{Password, Role, Scopes, TokenName, Username};
use crate::store::{AuditEvent, AuditQuery, Purger, RoleChange, Store};
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

mod cluster;
mod export;
mod import;
mod ndjson;
mod rate;

/// Runs the command line (without the program name); returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    restrict_new_files();
    let command = match config::parse(args) {
        Ok(Invocation::Print(text)) => {
            println!("{}", text.trim_end());
            return 0;
        }
        Ok(Invocation::Run(command)) => command,
        Err(usage) => {
            logging::init(LogFormat::Plain);
            log::error!("{usage}");
            return 2;
        }
    };
    logging::init(match &command {
        Command::Serve(config) => config.log_format,
        _ => LogFormat::Plain,
    });
    let outcome = match command {
        // The one command with a third ending: 2 when it skipped (or, --atomic, refused
        // the file for) bad lines.
        Command::Import(args) => import::run(args),
        command => match refuse_unrunnable(&command) {
            Err(usage) => {
                log::error!("{usage}");
                return 2;
            }
            Ok(()) => execute(command).map(|()| 0),
        },
    };
    match outcome {
        Ok(status) => status,
        Err(message) => {
            log::error!("{message}");
            1
        }
    }
}

/// What can not be run although the command line parsed: a backup or an export written
/// over the database it reads, its WAL, shared memory or key file.
fn refuse_unrunnable(command: &Command) -> Result<(), String> {
    let (dest, db) = match command {
        Command::Backup(args) => (&args.file, &args.db),
        Command::Export(args) => match &args.output {
            Some(output) => (output, &args.db),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    match db.place() {
        Place::File(path) => crate::files::refuse_protected(dest, &database_files(path)),
        // A cluster's data is on its nodes, in memory and in their Raft logs.
        Place::Cluster(_) => Ok(()),
    }
}

/// The files of the database at `db`: itself, its WAL and shared memory, and its key.
fn database_files(db: &Path) -> Vec<std::path::PathBuf> {
    let beside = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    vec![
        db.to_path_buf(),
        beside("-wal"),
        beside("-shm"),
        key_path(db),
    ]
}

/// The signing key's file, beside the database.
fn key_path(db: &Path) -> std::path::PathBuf {
    db.with_file_name("postd.key")
}

/// Everything postd creates — the database and its `-wal`/`-shm` (SQLite gives them the
/// database's mode), the key, backups — holds password hashes or secrets: owner only.
fn restrict_new_files() {
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(config) => serve(*config),
        Command::User(UserCommand::Add { name, admin, db }) => {
            let name = username(&name)?;
            let password = match std::env::var("POSTD_PASSWORD") {
                Ok(password) => password,
                Err(_) => read_password_line()?,
            };
            let password = Password::parse(password).map_err(|m| format!("password {m}"))?;
            let store = open_store(&db)?;
            let role = if admin { Role::Admin } else { Role::User };
            let user = store
                .create_user(&name, &hash_password(password.expose())?, role)
                .map_err(|e| e.to_string())?;
            println!(
                "created {} '{}' with id {}",
                user.role.as_str(),
                user.username,
                user.id
            );
            Ok(())
        }
        Command::User(UserCommand::Role { name, role, db }) => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::User => Role::User,
            };
            let change = open_store(&db)?
                .set_role(&username(&name)?, role)
                .map_err(|e| e.to_string())?;
            match change {
                RoleChange::Changed(user) => {
                    println!("'{}' is now {}", user.username, user.role.as_str())
                }
                RoleChange::Unchanged(user) => println!(
                    "'{}' is already {}; nothing changed",
                    user.username,
                    user.role.as_str()
                ),
            }
            Ok(())
        }
        Command::User(UserCommand::Erase { name, dry_run, db }) => {
            let store = open_store(&db)?;
            let user = store
                .user_named(&username(&name)?)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user '{name}'"))?;
            let erased = store
                .erase_user(None, user.id, dry_run)
                .map_err(|e| e.to_string())?;
            let what = format!(
                "{} posts, {} comments, {} revisions",
                erased.posts, erased.comments, erased.revisions
            );
            if dry_run {
                println!("would erase user '{name}' (id {}) with {what}", user.id);
            } else {
                println!("erased user #{} with {what}", user.id);
            }
            Ok(())
        }
        Command::User(UserCommand::Delete { name, db }) => {
            open_store(&db)?
                .delete_user(&username(&name)?)
                .map_err(|e| e.to_string())?;
            println!("deleted user '{name}' with their posts and comments");
            Ok(())
        }
        Command::Purge(args) => purge(args),
        Command::Audit(args) => audit(args),
        Command::Backup(args) => backup(args),
        Command::Check(db) => check(&db),
        Command::Export(args) => export::run(args),
        Command::Import(_) => Err("import is run through cli::run, for its exit status".into()),
        Command::Cluster(command) => cluster::run(command),
        Command::Token(command) => token(command),
    }
}

fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Create {
            name,
            user,
            scopes,
            expires,
            db,
        } => {
            let name = TokenName::parse(&name).map_err(|m| format!("token name {m}"))?;
            let scopes = Scopes::parse_list(scopes.iter().map(String::as_str))
                .map_err(|m| format!("--scope: {m}"))?;
            let store = open_store(&db)?;
            let owner = store
                .user_named(&username(&user)?)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user '{user}'"))?;
            if let Some(refusal) = scopes.refused_for(owner.role) {
                return Err(format!("{refusal}; '{user}' is not one"));
            }
            let (secret, hash) = crate::auth::new_api_token();
            let now = crate::clock::Timestamp::now();
            let info = crate::store::TokenInfo {
                name,
                scopes,
                expires_at: expires.map(|age| now.plus(age.duration())),
                created_at: now,
            };
            store
                .create_token(None, owner.id, &info, &hash)
                .map_err(|e| e.to_string())?;
            // The token alone on stdout, so a script can take it; shown this once.
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List { db } => {
            let store = open_existing(&db)?;
            for (user, info) in store.all_tokens().map_err(|e| e.to_string())? {
                println!(
                    "{:<20}  {:<24}  {:<40}  created {}  {}",
                    user.as_str(),
                    info.name.as_str(),
                    info.scopes.joined(),
                    info.created_at,
                    info.expires_at
                        .map_or("never expires".to_string(), |t| format!("expires {t}"))
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { name, user, db } => {
            let name = TokenName::parse(&name).map_err(|m| format!("token name {m}"))?;
            let owner = user.as_deref().map(username).transpose()?;
            let user = open_existing(&db)?
                .revoke_token_named(&name, owner.as_ref())
                .map_err(|e| e.to_string())?;
            println!("revoked token '{name}' of '{user}'");
            Ok(())
        }
    }
}

fn username(name: &str) -> Result<Username, String> {
    Username::parse(name).map_err(|m| format!("username {m}"))
}

/// The database a command works on: the file (created when missing), or the cluster.
fn open_store(db: &DbArg) -> Result<Store, String> {
    match db.place() {
        Place::File(path) => Store::open(path, 2)
            .map_err(|err| format!("cannot use database {}: {err}", path.display())),
        Place::Cluster(seeds) => Store::open_cluster(seeds.to_vec(), db.cluster_timeout)
            .map_err(|err| format!("cannot use the cluster at {}: {err}", seeds.join(","))),
    }
}

/// For commands that read a database: a file that does not exist is an error, not a new
/// file.
fn open_existing(db: &DbArg) -> Result<Store, String> {
    if let Place::File(path) = db.place() {
        if !path.exists() {
            return Err(format!("database {} does not exist", path.display()));
        }
    }
    open_store(db)
}

fn purge(args: PurgeArgs) -> Result<(), String> {
    let cutoff = args.older_than.before_now();
    let store = open_store(&args.db)?;
    if args.dry_run {
        let count = store
            .count_deleted_before(&cutoff)
            .map_err(|e| e.to_string())?;
        println!("would purge {count} posts deleted before {cutoff}");
        return Ok(());
    }
    let mut meter = ProgressMeter::new("purging");
    let count = store
        .purge_deleted_before(
            &cutoff,
            &args.older_than,
            Purger::CommandLine,
            &mut |done, total| meter.show(done, total),
        )
        .map_err(|e| e.to_string())?;
    meter.finish();
    println!("purged {count} posts deleted before {cutoff}");
    Ok(())
}

fn audit(args: AuditArgs) -> Result<(), String> {
    let store = open_existing(&args.db)?;
    let mut events = store
        .audit_events(&AuditQuery {
            limit: args.limit,
            before_id: None,
            action: None,
            actor_id: None,
        })
        .map_err(|e| e.to_string())?;
    events.truncate(args.limit as usize);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        events.iter().try_for_each(|event| {
            serde_json::to_writer(&mut out, event).map_err(std::io::Error::from)?;
            writeln!(out)
        })
    } else {
        write_audit_table(&mut out, &events)
    };
    // A closed pipe (`postd audit | head`) is the reader's choice, not a failure.
    match written {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the audit log: {err}"))
        }
        _ => Ok(()),
    }
}

/// Ids shown per event in the table; `--json` has them all.
const TABLE_IDS: usize = 8;

fn write_audit_table(out: &mut impl Write, events: &[AuditEvent]) -> std::io::Result<()> {
    if events.is_empty() {
        return writeln!(out, "the audit log is empty");
    }
    writeln!(
        out,
        "{:>6}  {:<24}  {:<8}  {:<27}  {:>6}  TARGETS / DETAIL",
        "ID", "AT", "ACTOR", "ACTION", "COUNT"
    )?;
    for event in events {
        let actor = event
            .actor_id
            .map_or_else(|| "-".to_string(), |id| id.to_string());
        let mut ids: Vec<String> = event
            .target_ids
            .iter()
            .take(TABLE_IDS)
            .map(i64::to_string)
            .collect();
        if event.target_ids.len() > TABLE_IDS {
            ids.push(format!("… {} more", event.target_ids.len() - TABLE_IDS));
        }
        writeln!(
            out,
            "{:>6}  {:<24}  {:<8}  {:<27}  {:>6}  [{}] {}",
            event.id,
            event.at,
            actor,
            event.action.as_str(),
            event.count,
            ids.join(", "),
            event.detail
        )?;
    }
    Ok(())
}

fn backup(args: BackupArgs) -> Result<(), String> {
    let store = open_existing(&args.db)?;
    let mut meter = ProgressMeter::new("copying pages");
    store
        .backup_to(&args.file, &mut |done, total| meter.show(done, total))
        .map_err(|e| format!("backup failed: {e}"))?;
    meter.finish();
    println!(
        "backed up {} to {}",
        place_name(&args.db),
        args.file.display()
    );
    Ok(())
}

fn check(db: &DbArg) -> Result<(), String> {
    let store = open_existing(db)?;
    let mut meter = ProgressMeter::new("checks done");
    let problems = store
        .check(&mut |done, total| meter.show(done, total))
        .map_err(|e| e.to_string())?;
    meter.finish();
    if problems.is_empty() {
        println!(
            "OK: integrity, foreign keys and full-text index of {} are sound",
            place_name(db)
        );
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(format!(
        "{} problems found in {}",
        problems.len(),
        place_name(db)
    ))
}

/// The file's path, or the cluster's addresses, for messages.
fn place_name(db: &DbArg) -> String {
    match db.place() {
        Place::File(path) => path.display().to_string(),
        Place::Cluster(seeds) => format!("the cluster at {}", seeds.join(",")),
    }
}

/// Progress is for people watching: shown only when stderr is a terminal.
fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// Progress on stderr, redrawn in place, only when stderr is a terminal: scripts and logs
/// get the final line alone. (A redrawn status line, not a log line: it never reaches a
/// log file.)
struct ProgressMeter {
    label: &'static str,
    enabled: bool,
    shown: bool,
}

impl ProgressMeter {
    fn new(label: &'static str) -> ProgressMeter {
        ProgressMeter {
            label,
            enabled: progress_wanted(),
            shown: false,
        }
    }

    fn show(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        eprint!("\r{}: {done}/{total} ({percent}%)", self.label);
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown {
            eprintln!();
        }
    }
}

fn read_password_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password: set POSTD_PASSWORD or give one line of stdin".into());
    }
    Ok(password)
}

fn serve(config: ServeConfig) -> Result<(), String> {
    if let (Some(address), Some(data_dir)) = (&config.cluster_addr, &config.data_dir) {
        let started = cluster::start(&config, address, data_dir)?;
        let keys = TokenKeys::new(&started.signing_key, config.token_ttl_secs);
        let app = App::new(&config, started.store, keys)
            .on_node(started.node.id(), started.node.address().to_owned());
        // The node stops after the server: requests in flight finish on it first.
        let served = api::serve(&config, app);
        drop(started.node);
        return served;
    }
    let app = app(&config)?;
    api::serve(&config, app)
}

/// What `postd serve` answers with, short of the socket: the store on `--db` and the
/// signing key beside it, in an `App`. The in-process integration tests build theirs here
/// too (tests/it/support/app.rs), so they answer as the served binary does.
pub fn app(config: &ServeConfig) -> Result<App, String> {
    let pool_size = u32::try_from(config.workers)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    let (store, secret) = match config.db.place() {
        Place::Cluster(seeds) => {
            let store = Store::open_cluster(seeds.to_vec(), config.db.cluster_timeout)
                .map_err(|err| format!("cannot use the cluster at {}: {err}", seeds.join(",")))?;
            let secret = match &config.jwt_secret {
                Some(secret) => crate::auth::key_from_env(secret)?,
                None => store
                    .setting("signing_key")
                    .map_err(|err| format!("cannot read the cluster's signing key: {err}"))?
                    .ok_or("the cluster has no signing key yet: start a node of it first")?,
            };
            (store, secret)
        }
        Place::File(db) => {
            if db.as_os_str() == config::DEFAULT_DB {
                // The embedded default should just work from a fresh checkout or a copied binary.
                if let Some(dir) = db.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
            }
            let store = Store::open_with(db, pool_size, config.wal_autocheckpoint)
                .map_err(|err| format!("cannot use database {}: {err}", db.display()))?;
            let secret = load_or_create_key(&key_path(db), config.jwt_secret.as_deref())?;
            (store, secret)
        }
    };
    let keys = TokenKeys::new(&secret, config.token_ttl_secs);
    Ok(App::new(config, store, keys))
}
