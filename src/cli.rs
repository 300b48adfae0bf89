//! What each command does. Every failure becomes one line on stderr and a non-zero exit.

use crate::api::{self, App};
use crate::auth::{hash_password, load_or_create_key, TokenKeys};
use crate::config::{self, Command, ServeConfig};
use crate::model::{check_password, check_username, Role};
use crate::store::Store;
use std::io::{BufRead, IsTerminal};
use std::path::Path;

/// Runs the command line; returns the process exit code.
pub fn run(args: &[String]) -> i32 {
    let env = |name: &str| std::env::var(name).ok();
    let outcome = config::parse(args, &env).and_then(execute);
    match outcome {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("postd: error: {message}");
            1
        }
    }
}

fn open_store(db: &Path, pool_size: u32) -> Result<Store, String> {
    Store::open(db, pool_size).map_err(|err| format!("cannot use database {}: {err}", db.display()))
}

fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Help(text) => {
            println!("{text}");
            Ok(())
        }
        Command::Version => {
            println!("{}", crate::version::long_version());
            Ok(())
        }
        Command::Serve(config) => serve(config),
        Command::UserAdd {
            db,
            name,
            admin,
            password,
        } => {
            check_username(&name).map_err(|m| format!("username {m}"))?;
            let password = match password {
                Some(p) => p,
                None => read_password_line()?,
            };
            check_password(&password).map_err(|m| format!("password {m}"))?;
            let store = open_store(&db, 2)?;
            let role = if admin { Role::Admin } else { Role::User };
            let user = store
                .create_user(&name, &hash_password(&password)?, role)
                .map_err(|e| e.to_string())?;
            println!(
                "created {} '{}' with id {}",
                user.role.as_str(),
                user.username,
                user.id
            );
            Ok(())
        }
        Command::UserRole { db, name, role } => {
            let role = Role::parse(&role)
                .ok_or_else(|| format!("role must be 'admin' or 'user', got '{role}'"))?;
            let user = open_store(&db, 2)?
                .set_role(&name, role)
                .map_err(|e| e.to_string())?;
            println!("'{}' is now {}", user.username, user.role.as_str());
            Ok(())
        }
        Command::UserDelete { db, name } => {
            open_store(&db, 2)?
                .delete_user(&name)
                .map_err(|e| e.to_string())?;
            println!("deleted user '{name}' with their posts and comments");
            Ok(())
        }
        Command::Purge {
            db,
            older_than,
            dry_run,
        } => {
            let cutoff = crate::clock::ago(older_than);
            let store = open_store(&db, 2)?;
            let mut meter = ProgressMeter::new("purging");
            let count = store
                .purge_deleted_before(&cutoff, dry_run, &mut |done, total| meter.show(done, total))
                .map_err(|e| e.to_string())?;
            meter.finish();
            if dry_run {
                println!("would purge {count} posts deleted before {cutoff}");
            } else {
                println!("purged {count} posts deleted before {cutoff}");
            }
            Ok(())
        }
        Command::Backup { db, file } => {
            let store = open_existing(&db)?;
            let mut meter = ProgressMeter::new("copying pages");
            store
                .backup_to(&file, &mut |done, total| meter.show(done, total))
                .map_err(|e| format!("backup failed: {e}"))?;
            meter.finish();
            println!("backed up {} to {}", db.display(), file.display());
            Ok(())
        }
        Command::Check { db } => {
            let store = open_existing(&db)?;
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
    }
}

/// For commands that read a database: one that does not exist is an error, not a new file.
fn open_existing(db: &Path) -> Result<Store, String> {
    if !db.exists() {
        return Err(format!("database {} does not exist", db.display()));
    }
    open_store(db, 2)
}

/// Progress on stderr, redrawn in place, only when stderr is a terminal: scripts and logs
/// get the final line alone.
struct ProgressMeter {
    label: &'static str,
    enabled: bool,
    shown: bool,
}

impl ProgressMeter {
    fn new(label: &'static str) -> ProgressMeter {
        ProgressMeter {
            label,
            enabled: std::io::stderr().is_terminal(),
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
        return Err("no password: set POSTD_PASSWORD or give one line on stdin".into());
    }
    Ok(password)
}

fn serve(config: ServeConfig) -> Result<(), String> {
    if config.db.as_os_str() == config::DEFAULT_DB {
        // The embedded default should just work from a fresh checkout or a copied binary.
        if let Some(dir) = config.db.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let pool_size = u32::try_from(config.workers)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    let store = Store::open_with(&config.db, pool_size, config.wal_autocheckpoint)
        .map_err(|err| format!("cannot use database {}: {err}", config.db.display()))?;
    let key_path = config.db.with_file_name("postd.key");
    let secret = load_or_create_key(&key_path, config.jwt_secret.as_deref())?;
    let keys = TokenKeys::new(&secret, config.token_ttl_secs);
    let app = App::new(&config, store, keys);
    api::serve(&config, app)
}
