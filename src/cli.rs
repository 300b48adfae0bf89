//! What each command does. Every failure becomes one line on stderr and a non-zero exit.

use crate::api::{self, App};
use crate::auth::{hash_password, load_or_create_key, TokenKeys};
use crate::config::{self, Command, ServeConfig};
use crate::model::{check_password, check_username, Role};
use crate::store::Store;
use std::io::BufRead;
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
            println!("postd {}", env!("CARGO_PKG_VERSION"));
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
            let count = open_store(&db, 2)?
                .purge_deleted_before(&cutoff, dry_run)
                .map_err(|e| e.to_string())?;
            if dry_run {
                println!("would purge {count} posts deleted before {cutoff}");
            } else {
                println!("purged {count} posts deleted before {cutoff}");
            }
            Ok(())
        }
        Command::Backup { db, file } => {
            if !db.exists() {
                return Err(format!("database {} does not exist", db.display()));
            }
            open_store(&db, 2)?
                .backup_to(&file)
                .map_err(|e| format!("backup failed: {e}"))?;
            println!("backed up {} to {}", db.display(), file.display());
            Ok(())
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
    let store = open_store(&config.db, pool_size)?;
    let key_path = config.db.with_file_name("postd.key");
    let secret = load_or_create_key(&key_path, config.jwt_secret.as_deref())?;
    let keys = TokenKeys::new(&secret, config.token_ttl_secs);
    let app = App::new(&config, store, keys);
    api::serve(&config, app)
}
