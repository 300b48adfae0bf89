//! `postd import`: NDJSON lines become posts, as `POST /posts` would make them one after
//! another, committed in chunks that carry the import's progress (store/import.rs).
//!
//! The input is recognised by the SHA-256 of its bytes and the `--as` user: the first
//! pass over it computes the digest, which finds where an earlier run of the same import
//! stopped. `--atomic` then checks every remaining line (a second pass, writing nothing,
//! slugs simulated in a scratch database) before the first chunk is written. Memory holds
//! one chunk at most (1,000 lines, 8 MiB), whatever the size of the input.

use super::ndjson::{parse_line, Input, Lines};
use super::rate::{counted, thousands, RateMeter};
use crate::config::ImportArgs;
use crate::files::PrivateDir;
use crate::model::{ItemError, Username};
use crate::store::{ChunkOutcome, Import, ImportLine, ImportMode, ImportState, LineError, Store};
use std::time::Duration;

/// Lines per transaction (the contract's 1,000).
const CHUNK_LINES: usize = 1000;
/// Input bytes after which a chunk ends early, so that one transaction stays short
/// whatever the posts' sizes: 1,000 posts with 100,000-character bodies would hold the
/// write lock for seconds. At ~600-byte lines the line count ends chunks first.
const CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// A pause after each chunk, so that another process's writer waiting for the lock (the
/// server's, trying every millisecond: store/mod.rs) gets in before the next chunk takes it.
/// Without it the next `BEGIN IMMEDIATE` follows the `COMMIT` within microseconds and a
/// waiting writer almost never wins. 1,000 chunks of a million lines: 2 s.
const YIELD_BETWEEN_CHUNKS: Duration = Duration::from_millis(2);

/// Exit status when bad lines were skipped or rejected the file.
const BAD_LINES: i32 = 2;

pub fn run(args: ImportArgs) -> Result<i32, String> {
    let author =
        Username::parse(args.author.as_str()).map_err(|m| format!("--as: username {m}"))?;
    let mode = if args.atomic {
        ImportMode::AllOrNothing
    } else {
        ImportMode::SkipBadLines
    };
    let store = super::open_existing(&args.db)?;
    let beside = scratch_place(&args.db);
    let input = Input::open(&args.file, &beside)?;
    let import_of = || {
        store
            .import_of(&author, input.digest().clone(), mode)
            .map_err(|e| e.to_string())
    };
    let mut import = import_of()?;

    match import.state() {
        ImportState::Done => return Ok(already_done(&input, &author, &import)),
        ImportState::Undoing => {
            log::info!(
                "an earlier --atomic import of {} stopped while removing what it had written; finishing that first",
                input.name()
            );
            undo(&store, &mut import)?;
            // Undone, the input counts as never imported: start afresh, in this run's mode.
            import = import_of()?;
        }
        ImportState::Importing => {}
    }
    same_mode(&import, mode, &input, &author)?;
    let resumed = import.progress();
    if resumed.lines > 0 {
        log::info!(
            "resuming the import of {} after line {} ({} written, {} before)",
            input.name(),
            thousands(resumed.lines),
            counted(resumed.created, "post", "posts"),
            counted(resumed.refused, "bad line", "bad lines")
        );
    }

    if mode == ImportMode::AllOrNothing {
        let bad = check_all(&store, &input, &import, &beside)?;
        if bad > 0 {
            log::error!(
                "{}: {} is rejected and nothing was written",
                counted(bad, "bad line", "bad lines"),
                input.name()
            );
            return Ok(BAD_LINES);
        }
    }

    let mut meter = RateMeter::new("importing", "lines");
    if let Some(code) = write_chunks(&store, &mut import, &input, &mut meter)? {
        return Ok(code);
    }
    store
        .finish_import(&mut import)
        .map_err(|e| format!("import stopped: {e}"))?;
    meter.finish();
    let done = import.progress();
    println!(
        "imported {} from {} of {} as '{author}'{}",
        counted(done.created, "post", "posts"),
        counted(done.lines, "line", "lines"),
        input.name(),
        skipped(done.refused)
    );
    Ok(status(done.refused))
}

/// Writes the input's lines after the import's progress, a chunk per transaction, until
/// none are left (`None`) or, with --atomic, a line turned bad and the import was undone
/// (the exit status).
fn write_chunks(
    store: &Store,
    import: &mut Import,
    input: &Input,
    meter: &mut RateMeter,
) -> Result<Option<i32>, String> {
    let mut lines = input.lines_after(import.progress())?;
    loop {
        let mut read_error = None;
        let mut chunk = Chunk {
            lines: &mut lines,
            left: CHUNK_LINES,
            bytes_left: CHUNK_BYTES,
            error: &mut read_error,
        };
        let outcome = store
            .import_chunk(import, &mut chunk)
            .map_err(|e| format!("import stopped: {e}"))?;
        let report = match outcome {
            ChunkOutcome::Committed(report) => report,
            ChunkOutcome::TurnedBad(errors) => {
                meter.finish();
                report_lines(&errors, meter);
                let removed = undo(store, import)?;
                log::error!(
                    "{} turned bad after {} was checked (another writer took a slug); \
                     the {} this import had written were removed again: nothing is written",
                    counted(lines_in(&errors), "line", "lines"),
                    input.name(),
                    counted(removed, "post", "posts")
                );
                return Ok(Some(BAD_LINES));
            }
        };
        report_lines(&report.refused, meter);
        meter.show(import.progress().lines, input.lines());
        if let Some(err) = read_error {
            meter.finish();
            return Err(format!(
                "cannot read {} after line {}: {err}",
                input.name(),
                import.progress().lines
            ));
        }
        if report.lines == 0 {
            break;
        }
        std::thread::sleep(YIELD_BETWEEN_CHUNKS);
    }
    Ok(None)
}

/// An unfinished import is finished in the mode it was started in.
fn same_mode(
    import: &Import,
    mode: ImportMode,
    input: &Input,
    author: &Username,
) -> Result<(), String> {
    if import.mode() != mode {
        let flag = |m| match m {
            ImportMode::AllOrNothing => "with --atomic",
            ImportMode::SkipBadLines => "without --atomic",
        };
        return Err(format!(
            "the import of {} as '{author}' was started {} and is not finished; run it {} again to finish it",
            input.name(),
            flag(import.mode()),
            flag(import.mode()),
        ));
    }
    Ok(())
}

fn status(refused: u64) -> i32 {
    if refused > 0 {
        BAD_LINES
    } else {
        0
    }
}

fn skipped(refused: u64) -> String {
    match refused {
        0 => String::new(),
        1 => "; 1 bad line skipped".into(),
        n => format!("; {} bad lines skipped", thousands(n)),
    }
}

fn already_done(input: &Input, author: &Username, import: &Import) -> i32 {
    let done = import.progress();
    println!(
        "{} was imported completely as '{author}' (started {}): {} from {}{}; nothing to do",
        input.name(),
        import.started_at().map_or("earlier", |t| t.as_str()),
        counted(done.created, "post", "posts"),
        counted(done.lines, "line", "lines"),
        skipped(done.refused)
    );
    status(done.refused)
}

fn undo(store: &Store, import: &mut Import) -> Result<u64, String> {
    let mut meter = RateMeter::new("removing imported posts", "posts");
    let removed = store
        .undo_import(import, &mut |done, total| meter.show(done, total))
        .map_err(|e| {
            format!(
                "removing the imported posts stopped (run the same command again to finish): {e}"
            )
        })?;
    meter.finish();
    Ok(removed)
}

/// `line N: field: message` (or `line N: message` about the whole line), one per error.
fn report_lines(errors: &[LineError], meter: &mut RateMeter) {
    if errors.is_empty() {
        return;
    }
    meter.clear();
    for LineError { line, error } in errors {
        log::warn!("line {line}: {}", describe(error));
    }
}

fn describe(error: &ItemError) -> String {
    match error.field {
        Some(field) => format!("{field}: {}", error.message),
        None => error.message.clone(),
    }
}

fn lines_in(errors: &[LineError]) -> u64 {
    let mut lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    lines.dedup();
    lines.len() as u64
}

/// The all-or-nothing pass before writing: every line after those already committed,
/// checked as it would be written after the lines before it. Reports each bad line;
/// returns how many there were.
fn check_all(
    store: &Store,
    input: &Input,
    import: &Import,
    db: &std::path::Path,
) -> Result<u64, String> {
    let scratch_dir = PrivateDir::beside(db)?;
    let mut check = store
        .import_check(&scratch_dir.path().join("slugs.db"))
        .map_err(|e| format!("cannot check {}: {e}", input.name()))?;
    let mut lines = input.lines_after(import.progress())?;
    let mut meter = RateMeter::new("checking", "lines");
    let mut bad = 0u64;
    while let Some(line) = lines
        .next_line()
        .map_err(|e| format!("cannot read {}: {e}", input.name()))?
    {
        let number = line.number;
        let errors = match parse_line(line.bytes) {
            Err(errors) => errors,
            Ok(post) => check
                .check(number, &post)
                .map_err(|e| format!("cannot check {}: {e}", input.name()))?
                .into_iter()
                .collect(),
        };
        if !errors.is_empty() {
            bad += 1;
            let errors: Vec<LineError> = errors
                .into_iter()
                .map(|error| LineError {
                    line: number,
                    error,
                })
                .collect();
            report_lines(&errors, &mut meter);
        }
        meter.show(number, input.lines());
    }
    meter.finish();
    Ok(bad)
}

/// The lines of one chunk, read while the store's transaction is open: at most
/// `CHUNK_LINES`, ending early past `CHUNK_BYTES`. A read error ends the chunk (the lines
/// before it are committed with it) and is kept for the caller.
struct Chunk<'a> {
    lines: &'a mut Lines,
    left: usize,
    bytes_left: u64,
    error: &'a mut Option<std::io::Error>,
}

impl Iterator for Chunk<'_> {
    type Item = ImportLine;

    fn next(&mut self) -> Option<ImportLine> {
        if self.left == 0 || self.bytes_left == 0 {
            return None;
        }
        let line = match self.lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(err) => {
                *self.error = Some(err);
                return None;
            }
        };
        self.left -= 1;
        let size = line.bytes.map_or(u64::MAX, |b| b.len() as u64);
        self.bytes_left = self.bytes_left.saturating_sub(size);
        Some(ImportLine {
            number: line.number,
            end: line.end,
            post: parse_line(line.bytes),
        })
    }
}

/// Where the import's own files go (a copy of stdin, the --atomic check's slugs): beside
/// the database file, or in the temporary directory for a cluster.
fn scratch_place(db: &crate::config::DbArg) -> std::path::PathBuf {
    match db.place() {
        crate::config::Place::File(path) => path.to_path_buf(),
        crate::config::Place::Cluster(_) => std::env::temp_dir().join("postd-import"),
    }
}
