//! Command-line and environment parsing. Flags win over environment variables, which win
//! over the embedded defaults. Errors are one line, meant for stderr.

use crate::api::access_log::LogFormat;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DB: &str = "data/postd.db";
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
pub const DEFAULT_MAX_BULK: usize = 10_000;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_READ_AHEAD_BUDGET: usize = 256 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addr: String,
    pub db: PathBuf,
    pub signup_open: bool,
    pub token_ttl_secs: u64,
    pub max_body: usize,
    pub max_bulk: usize,
    pub workers: usize,
    pub jwt_secret: Option<String>,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    pub wal_autocheckpoint: u32,
    pub max_connections: usize,
    pub read_ahead_budget: usize,
}

#[derive(Debug)]
pub enum Command {
    Serve(ServeConfig),
    UserAdd {
        db: PathBuf,
        name: String,
        admin: bool,
        password: Option<String>,
    },
    UserRole {
        db: PathBuf,
        name: String,
        role: String,
    },
    UserDelete {
        db: PathBuf,
        name: String,
    },
    Purge {
        db: PathBuf,
        older_than: Duration,
        dry_run: bool,
    },
    Backup {
        db: PathBuf,
        file: PathBuf,
    },
    Check {
        db: PathBuf,
    },
    Help(&'static str),
    Version,
}

pub const USAGE: &str = "\
postd — posts and comments in one SQLite file, served over HTTP

Usage:
  postd [serve] [OPTIONS]                  serve HTTP (the default command)
  postd user add NAME [--admin]            create a user
  postd user role NAME admin|user          change a user's role
  postd user delete NAME                   remove a user with their posts and comments
  postd purge --older-than DURATION        permanently delete posts soft-deleted before now - DURATION
  postd backup FILE                        consistent copy of the live database
  postd check                              integrity, foreign-key and full-text index checks
  postd --version

Every command takes --db PATH (default data/postd.db, env POSTD_DB).
Run `postd COMMAND --help` for a command's options.";

pub const SERVE_USAGE: &str = "\
Usage: postd [serve] [OPTIONS]

Serves the HTTP API. Every option can also be set by the environment variable shown.

Options:
  --addr ADDR              listen address [POSTD_ADDR, default 127.0.0.1:8080; port 0 picks one]
  --db PATH                database file [POSTD_DB, default data/postd.db]
  --signup open|closed     whether POST /auth/register works [POSTD_SIGNUP, default open]
  --token-ttl SECS         access token lifetime [POSTD_TOKEN_TTL, default 3600]
  --max-body BYTES         largest request body [POSTD_MAX_BODY, default 16777216]
  --max-bulk N             most items in one bulk request [POSTD_MAX_BULK, default 10000]
  --workers N              request worker threads [POSTD_WORKERS, default 4 x CPUs]
  --log-format FORMAT      access log on stderr: logfmt, json or off [POSTD_LOG_FORMAT, default logfmt]
  --shutdown-grace SECS    wait for requests in flight on SIGTERM [POSTD_SHUTDOWN_GRACE, default 30]
  --wal-autocheckpoint N   checkpoint the WAL at N pages; 0 leaves it to Litestream
                           [POSTD_WAL_AUTOCHECKPOINT, default 1000]
  --max-connections N      open connections at once; more are answered 503
                           [POSTD_MAX_CONNECTIONS, default 1024]
  --read-ahead-budget BYTES
                           memory for request bodies being received (all connections
                           together); past it a new body is answered 503
                           [POSTD_READ_AHEAD_BUDGET, default 268435456]
The token signing key is POSTD_JWT_SECRET (>= 32 bytes) or the file postd.key beside the database.";

pub const USER_USAGE: &str = "\
Usage:
  postd user add NAME [--admin] [--db PATH]   password from POSTD_PASSWORD or one line of stdin
  postd user role NAME admin|user [--db PATH]
  postd user delete NAME [--db PATH]          also removes the user's posts and comments";

pub const PURGE_USAGE: &str = "\
Usage: postd purge --older-than DURATION [--dry-run] [--db PATH]

Permanently deletes posts soft-deleted before now - DURATION (e.g. 30d, 12h, 15m, 45s), with
their comments, in one transaction, and prints how many. --dry-run only counts.";

pub const BACKUP_USAGE: &str = "\
Usage: postd backup FILE [--db PATH]

Writes a consistent copy of the database to FILE with SQLite's online backup API; safe while
the server runs. FILE is replaced atomically.";

pub const CHECK_USAGE: &str = "\
Usage: postd check [--db PATH]

Runs PRAGMA integrity_check, PRAGMA foreign_key_check and the full-text index's integrity
check. Prints OK and exits 0, or lists each problem and exits 1.";

/// The help text for the command `args` names.
fn help_for(args: &[String]) -> &'static str {
    match args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
    {
        Some("serve") => SERVE_USAGE,
        Some("user") => USER_USAGE,
        Some("purge") => PURGE_USAGE,
        Some("backup") => BACKUP_USAGE,
        Some("check") => CHECK_USAGE,
        _ => USAGE,
    }
}

/// Splits arguments into positionals, `--name value` / `--name=value` options and
/// `--flag`s, refusing anything the command does not know.
struct Parsed {
    positionals: Vec<String>,
    options: Vec<(String, String)>,
    flags: Vec<String>,
}

fn split_args(
    args: &[String],
    value_options: &[&str],
    flag_options: &[&str],
) -> Result<Parsed, String> {
    let mut parsed = Parsed {
        positionals: Vec::new(),
        options: Vec::new(),
        flags: Vec::new(),
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(name) = arg.strip_prefix("--") else {
            parsed.positionals.push(arg.clone());
            continue;
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        if value_options.contains(&name) {
            let value = match inline {
                Some(v) => v,
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))?,
            };
            if parsed.options.iter().any(|(n, _)| n == name) {
                return Err(format!("--{name} given twice"));
            }
            parsed.options.push((name.to_string(), value));
        } else if flag_options.contains(&name) && inline.is_none() {
            parsed.flags.push(name.to_string());
        } else {
            return Err(format!("unknown option --{name} (see postd --help)"));
        }
    }
    Ok(parsed)
}

impl Parsed {
    fn option(
        &self,
        name: &str,
        env_var: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        self.options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| env(env_var).filter(|v| !v.is_empty()))
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn db(&self, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        PathBuf::from(
            self.option("db", "POSTD_DB", env)
                .unwrap_or_else(|| DEFAULT_DB.into()),
        )
    }

    fn exact_positionals(&self, count: usize, usage: &str) -> Result<(), String> {
        if self.positionals.len() == count {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    }
}

fn number<T>(text: Option<String>, name: &str, default: T, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match text {
        None => Ok(default),
        Some(text) => match text.trim().parse::<T>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number of at least {min}, got '{text}'"
            )),
        },
    }
}

pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        * 4
}

/// Parses `args` (without the program name). `env` looks up environment variables.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help(help_for(args)));
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        return Ok(Command::Version);
    }
    let (command, rest): (&str, &[String]) = match args.first().map(String::as_str) {
        None => ("serve", args),
        Some(first) if first.starts_with("--") => ("serve", args),
        Some(first) => (first, &args[1..]),
    };
    match command {
        "serve" => {
            let p = split_args(
                rest,
                &[
                    "addr",
                    "db",
                    "signup",
                    "token-ttl",
                    "max-body",
                    "max-bulk",
                    "workers",
                    "log-format",
                    "shutdown-grace",
                    "wal-autocheckpoint",
                    "max-connections",
                    "read-ahead-budget",
                ],
                &[],
            )?;
            p.exact_positionals(0, "postd serve [options]")?;
            let signup_open = match p.option("signup", "POSTD_SIGNUP", env).as_deref() {
                None | Some("open") => true,
                Some("closed") => false,
                Some(other) => {
                    return Err(format!("signup must be 'open' or 'closed', got '{other}'"))
                }
            };
            Ok(Command::Serve(ServeConfig {
                addr: p
                    .option("addr", "POSTD_ADDR", env)
                    .unwrap_or_else(|| DEFAULT_ADDR.into()),
                db: p.db(env),
                signup_open,
                token_ttl_secs: number(
                    p.option("token-ttl", "POSTD_TOKEN_TTL", env),
                    "token TTL",
                    DEFAULT_TOKEN_TTL_SECS,
                    1,
                )?,
                max_body: number(
                    p.option("max-body", "POSTD_MAX_BODY", env),
                    "max body",
                    DEFAULT_MAX_BODY,
                    1,
                )?,
                max_bulk: number(
                    p.option("max-bulk", "POSTD_MAX_BULK", env),
                    "max bulk",
                    DEFAULT_MAX_BULK,
                    1,
                )?,
                workers: number(
                    p.option("workers", "POSTD_WORKERS", env),
                    "workers",
                    default_workers(),
                    1,
                )?,
                jwt_secret: env("POSTD_JWT_SECRET").filter(|s| !s.is_empty()),
                log_format: match p.option("log-format", "POSTD_LOG_FORMAT", env) {
                    None => LogFormat::Logfmt,
                    Some(text) => LogFormat::parse(&text).ok_or_else(|| {
                        format!("log format must be json, logfmt or off, got '{text}'")
                    })?,
                },
                shutdown_grace: Duration::from_secs(number(
                    p.option("shutdown-grace", "POSTD_SHUTDOWN_GRACE", env),
                    "shutdown grace",
                    DEFAULT_SHUTDOWN_GRACE_SECS,
                    0,
                )?),
                wal_autocheckpoint: number(
                    p.option("wal-autocheckpoint", "POSTD_WAL_AUTOCHECKPOINT", env),
                    "WAL auto-checkpoint",
                    crate::store::DEFAULT_WAL_AUTOCHECKPOINT,
                    0,
                )?,
                max_connections: number(
                    p.option("max-connections", "POSTD_MAX_CONNECTIONS", env),
                    "max connections",
                    DEFAULT_MAX_CONNECTIONS,
                    1,
                )?,
                read_ahead_budget: number(
                    p.option("read-ahead-budget", "POSTD_READ_AHEAD_BUDGET", env),
                    "read-ahead budget",
                    DEFAULT_READ_AHEAD_BUDGET,
                    0,
                )?,
            }))
        }
        "user" => {
            let (action, rest) = match rest.split_first() {
                Some((action, rest)) => (action.as_str(), rest),
                None => return Err("usage: postd user add|role|delete NAME ...".into()),
            };
            match action {
                "add" => {
                    let p = split_args(rest, &["db"], &["admin"])?;
                    p.exact_positionals(1, "postd user add NAME [--admin] [--db PATH]")?;
                    Ok(Command::UserAdd {
                        db: p.db(env),
                        name: p.positionals[0].clone(),
                        admin: p.flag("admin"),
                        password: env("POSTD_PASSWORD"),
                    })
                }
                "role" => {
                    let p = split_args(rest, &["db"], &[])?;
                    p.exact_positionals(2, "postd user role NAME admin|user [--db PATH]")?;
                    Ok(Command::UserRole {
                        db: p.db(env),
                        name: p.positionals[0].clone(),
                        role: p.positionals[1].clone(),
                    })
                }
                "delete" => {
                    let p = split_args(rest, &["db"], &[])?;
                    p.exact_positionals(1, "postd user delete NAME [--db PATH]")?;
                    Ok(Command::UserDelete {
                        db: p.db(env),
                        name: p.positionals[0].clone(),
                    })
                }
                other => Err(format!(
                    "unknown user command '{other}' (expected add, role or delete)"
                )),
            }
        }
        "purge" => {
            let p = split_args(rest, &["db", "older-than"], &["dry-run"])?;
            p.exact_positionals(
                0,
                "postd purge --older-than DURATION [--dry-run] [--db PATH]",
            )?;
            let text = p
                .options
                .iter()
                .find(|(n, _)| n == "older-than")
                .map(|(_, v)| v.clone())
                .ok_or("purge needs --older-than DURATION (e.g. 30d)")?;
            Ok(Command::Purge {
                db: p.db(env),
                older_than: crate::clock::parse_duration(&text)?,
                dry_run: p.flag("dry-run"),
            })
        }
        "check" => {
            let p = split_args(rest, &["db"], &[])?;
            p.exact_positionals(0, "postd check [--db PATH]")?;
            Ok(Command::Check { db: p.db(env) })
        }
        "backup" => {
            let p = split_args(rest, &["db"], &[])?;
            p.exact_positionals(1, "postd backup FILE [--db PATH]")?;
            Ok(Command::Backup {
                db: p.db(env),
                file: PathBuf::from(&p.positionals[0]),
            })
        }
        other => Err(format!("unknown command '{other}' (see postd --help)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_and_precedence() {
        let Command::Serve(c) = parse(&[], &no_env).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.addr.as_str(), c.db.to_str(), c.signup_open),
            (DEFAULT_ADDR, Some(DEFAULT_DB), true)
        );
        let env = |name: &str| match name {
            "POSTD_ADDR" => Some("0.0.0.0:1".to_string()),
            "POSTD_SIGNUP" => Some("closed".to_string()),
            _ => None,
        };
        let Command::Serve(c) = parse(&args("--addr 127.0.0.1:9"), &env).unwrap() else {
            panic!()
        };
        assert_eq!((c.addr.as_str(), c.signup_open), ("127.0.0.1:9", false));
        assert_eq!(
            (c.max_connections, c.read_ahead_budget),
            (DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_AHEAD_BUDGET)
        );
        let env = |name: &str| match name {
            "POSTD_MAX_CONNECTIONS" => Some("64".to_string()),
            "POSTD_READ_AHEAD_BUDGET" => Some("1000".to_string()),
            _ => None,
        };
        let Command::Serve(c) = parse(&args("--read-ahead-budget 4096"), &env).unwrap() else {
            panic!()
        };
        assert_eq!((c.max_connections, c.read_ahead_budget), (64, 4096));
    }

    #[test]
    fn subcommands_take_db_after_their_arguments() {
        match parse(&args("user add alice --admin --db x.db"), &no_env).unwrap() {
            Command::UserAdd {
                db, name, admin, ..
            } => {
                assert_eq!(
                    (db.to_str(), name.as_str(), admin),
                    (Some("x.db"), "alice", true)
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&args("purge --older-than 30d --dry-run"), &no_env),
            Ok(Command::Purge { dry_run: true, .. })
        ));
    }

    #[test]
    fn every_command_has_its_own_help() {
        for (line, expected) in [
            ("--help", USAGE),
            ("serve --help", SERVE_USAGE),
            ("user add --help", USER_USAGE),
            ("purge -h", PURGE_USAGE),
            ("backup --help", BACKUP_USAGE),
            ("check --help", CHECK_USAGE),
        ] {
            match parse(&args(line), &no_env).unwrap() {
                Command::Help(text) => assert_eq!(text, expected, "{line}"),
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
            "--max-connections 0",
            "--read-ahead-budget lots",
        ] {
            let err = parse(&args(bad), &no_env).unwrap_err();
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
    }
}
