//! What each command does. Results go to stdout; every failure is one line on stderr
//! (through the logger) and a non-zero exit: 2 for a command line that can not be run,
//! 1 for a command that failed.

use crate::api::{self, App};
use crate::auth::{hash_password, load_or_create_key, TokenKeys};
use crate::config::{
    self, AuditArgs, BackupArgs, Command, Invocation, PurgeArgs, RoleArg, ServeConfig, UserCommand,
};
use crate::logging::{self, LogFormat};
use crate::model::{Password, Role, Username};
use crate::store::{AuditEvent, AuditQuery, Purger, RoleChange, Store};
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

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
        Command::Backup(args) => (&args.file, &args.db.path),
        Command::Export(args) => match &args.output {
            Some(output) => (output, &args.db.path),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    crate::files::refuse_protected(dest, &database_files(db))
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
            let store = open_store(&db.path)?;
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
            let change = open_store(&db.path)?
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
        Command::User(UserCommand::Delete { name, db }) => {
            open_store(&db.path)?
                .delete_user(&username(&name)?)
                .map_err(|e| e.to_string())?;
            println!("deleted user '{name}' with their posts and comments");
            Ok(())
        }
        Command::Purge(args) => purge(args),
        Command::Audit(args) => audit(args),
        Command::Backup(args) => backup(args),
        Command::Check(db) => check(&db.path),
        Command::Export(args) => export::run(args),
        Command::Import(_) => Err("import is run through cli::run, for its exit status".into()),
    }
}

fn username(name: &str) -> Result<Username, String> {
    Username::parse(name).map_err(|m| format!("username {m}"))
}

fn open_store(db: &Path) -> Result<Store, String> {
    Store::open(db, 2).map_err(|err| format!("cannot use database {}: {err}", db.display()))
}

/// For commands that read a database: one that does not exist is an error, not a new file.
fn open_existing(db: &Path) -> Result<Store, String> {
    if !db.exists() {
        return Err(format!("database {} does not exist", db.display()));
    }
    open_store(db)
}

fn purge(args: PurgeArgs) -> Result<(), String> {
    let cutoff = args.older_than.before_now();
    let store = open_store(&args.db.path)?;
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
    let store = open_existing(&args.db.path)?;
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
    let store = open_existing(&args.db.path)?;
    let mut meter = ProgressMeter::new("copying pages");
    store
        .backup_to(&args.file, &mut |done, total| meter.show(done, total))
        .map_err(|e| format!("backup failed: {e}"))?;
    meter.finish();
    println!(
        "backed up {} to {}",
        args.db.path.display(),
        args.file.display()
    );
    Ok(())
}

fn check(db: &Path) -> Result<(), String> {
    let store = open_existing(db)?;
    let mut meter = ProgressMeter::new("checks done");
    let problems = store
        .check(&mut |done, total| meter.show(done, total))
        .map_err(|e| e.to_string())?;
    meter.finish();
    if problems.is_empty() {
        println!(
            "OK: integrity, foreign keys and full-text index of {} are sound",
            db.display()
        );
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(format!(
        "{} problems found in {}",
        problems.len(),
        db.display()
    ))
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
    let db = &config.db.path;
    if db.as_os_str() == config::DEFAULT_DB {
        // The embedded default should just work from a fresh checkout or a copied binary.
        if let Some(dir) = db.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let app = app(&config)?;
    api::serve(&config, app)
}

/// What `postd serve` answers with, short of the socket: the store on `--db` and the
/// signing key beside it, in an `App`. The in-process integration tests build theirs here
/// too (tests/it/support/app.rs), so they answer as the served binary does.
pub fn app(config: &ServeConfig) -> Result<App, String> {
    let db = &config.db.path;
    let pool_size = u32::try_from(config.workers)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    let store = Store::open_with(db, pool_size, config.wal_autocheckpoint)
        .map_err(|err| format!("cannot use database {}: {err}", db.display()))?;
    let secret = load_or_create_key(&key_path(db), config.jwt_secret.as_deref())?;
    let keys = TokenKeys::new(&secret, config.token_ttl_secs);
    Ok(App::new(config, store, keys))
}
