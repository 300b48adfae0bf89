//! `postd import` in the store. Lines are written in chunks, each chunk one `BEGIN
//! IMMEDIATE` transaction (`write_alone`) that also advances the import's row in `imports`:
//! what is committed and what the row says can not disagree, whatever ends the process, so
//! a re-run continues exactly after the last committed line.
//!
//! Each line is written as `POST /posts` would write it, in file order: an explicit slug
//! held by an active post (an earlier line's included) makes the line bad; a derived slug
//! takes the first free of `base`, `base-2`, …

use super::audit::{self, AuditAction};
use super::maintenance::Progress;
use super::posts::{insert_rows, slug_taken, slug_taken_message, Created, SlugAllocator};
use super::sql::{params, Conn, OptionalExtension};
use super::writer::Tx;
use super::HeldConn;
use super::{Refusal, Store, StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{ItemError, NewPost, Slug, Username};
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::Path;

/// Derived-slug bases whose next suffix an import remembers across its transactions
/// (a hint saves lookups; ~100 bytes each, so about 1 MiB).
const MAX_SLUG_HINTS: usize = 10_000;

/// Which input an import is: the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDigest(String);

impl InputDigest {
    pub fn from_sha256(bytes: [u8; 32]) -> InputDigest {
        InputDigest(crate::text::hex(&bytes))
    }

    /// The lowercase hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a bad line does to an import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// It is reported and skipped; the other lines are written.
    SkipBadLines,
    /// The file is checked whole first and any bad line rejects it: nothing is written.
    AllOrNothing,
}

impl ImportMode {
    fn as_str(self) -> &'static str {
        match self {
            ImportMode::SkipBadLines => "skip-bad-lines",
            ImportMode::AllOrNothing => "all-or-nothing",
        }
    }

    fn parse(text: &str) -> ImportMode {
        // The CHECK constraint admits only the two.
        match text {
            "all-or-nothing" => ImportMode::AllOrNothing,
            _ => ImportMode::SkipBadLines,
        }
    }
}

/// Where the import of an input by a user stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportState {
    /// Nothing committed yet, or some chunks: `progress` says up to where.
    Importing,
    /// An all-or-nothing import met a line that turned bad after its file was checked;
    /// the posts it wrote are being removed.
    Undoing,
    /// Every line was handled; the input is not imported again.
    Done,
}

/// How far an import got: lines handled (written or refused) and the input bytes they
/// span, posts written, lines refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportProgress {
    pub lines: u64,
    pub bytes: u64,
    pub created: u64,
    pub refused: u64,
}

/// One import of one input by one user.
pub struct Import {
    /// `None` until the first chunk commits (which creates the row).
    id: Option<i64>,
    author_id: i64,
    digest: InputDigest,
    mode: ImportMode,
    state: ImportState,
    progress: ImportProgress,
    started_at: Option<Timestamp>,
    slugs: SlugAllocator,
}

impl Import {
    pub fn mode(&self) -> ImportMode {
        self.mode
    }

    pub fn state(&self) -> ImportState {
        self.state
    }

    pub fn progress(&self) -> ImportProgress {
        self.progress
    }

    /// When the first chunk committed, if one has.
    pub fn started_at(&self) -> Option<&Timestamp> {
        self.started_at.as_ref()
    }
}

/// A line of the input: its number (from 1), the input offset just past it, and its post
/// or what is wrong with it.
pub struct ImportLine {
    pub number: u64,
    pub end: u64,
    pub post: Result<NewPost, Vec<ItemError>>,
}

/// Something wrong with line `line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub error: ItemError,
}

#[derive(Debug, Default)]
pub struct ChunkReport {
    pub lines: u64,
    pub created: u64,
    /// In line order; a line may have several.
    pub refused: Vec<LineError>,
}

#[derive(Debug)]
pub enum ChunkOutcome {
    Committed(ChunkReport),
    /// All-or-nothing: a line of the chunk turned bad after the file was checked (another
    /// writer took its slug). Nothing of the chunk was written; undo the import.
    TurnedBad(Vec<LineError>),
}

fn another_run() -> StoreError {
    StoreError::conflict("another run of this import wrote meanwhile; only one may run at a time")
}

fn author_id(conn: &Conn, author: &Username) -> StoreResult<i64> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM users WHERE username = ?1 COLLATE NOCASE")?;
    stmt.query_row([author], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("user '{author}' not found")))
}

/// Decides the slug of one line as `POST /posts` would after the lines before it (those
/// of this chunk are not inserted yet: `slugs` holds them); `Err` inside when the line is
/// refused.
fn slug_of(
    tx: &Tx,
    post: &NewPost,
    slugs: &mut SlugAllocator,
) -> StoreResult<Result<Slug, ItemError>> {
    match &post.slug {
        Some(explicit) if !slugs.claim(tx, explicit)? => Ok(Err(ItemError::field(
            "slug",
            slug_taken_message(explicit.as_str()),
        ))),
        Some(explicit) => Ok(Ok(explicit.clone())),
        None => Ok(Ok(slugs.derive(tx, &post.title)?)),
    }
}

/// Sorts a chunk's lines into the posts to write (with their slugs, decided in line
/// order) and the refused lines; also where the last line ends (`None`: no lines left).
#[allow(clippy::type_complexity)]
fn sort_lines(
    tx: &Tx,
    lines: &mut dyn Iterator<Item = ImportLine>,
    slugs: &mut SlugAllocator,
) -> StoreResult<(ChunkReport, Vec<(NewPost, Slug)>, Option<(u64, u64)>)> {
    let mut report = ChunkReport::default();
    let mut accepted = Vec::new();
    let mut end = None;
    for line in lines {
        report.lines += 1;
        end = Some((line.number, line.end));
        let post = match line.post {
            Ok(post) => post,
            Err(errors) => {
                report
                    .refused
                    .extend(errors.into_iter().map(|error| LineError {
                        line: line.number,
                        error,
                    }));
                continue;
            }
        };
        match slug_of(tx, &post, slugs)? {
            Ok(slug) => accepted.push((post, slug)),
            Err(error) => report.refused.push(LineError {
                line: line.number,
                error,
            }),
        }
    }
    Ok((report, accepted, end))
}

/// Moves the import's `imports` row from `before` to `after` in the chunk's transaction
/// (creating it with the first chunk); its id.
fn advance_row(
    tx: &Tx,
    id: Option<i64>,
    (author_id, digest, mode): (i64, &str, ImportMode),
    before: ImportProgress,
    after: ImportProgress,
    now: &Timestamp,
) -> StoreResult<i64> {
    match id {
        None => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO imports (user_id, input_sha256, mode, state, lines_done,
                     bytes_done, posts_created, lines_refused, started_at, updated_at)
                 VALUES (?1, ?2, ?3, 'importing', ?4, ?5, ?6, ?7, ?8, ?8)",
            )?;
            match stmt.insert(params![
                author_id,
                digest,
                mode.as_str(),
                after.lines as i64,
                after.bytes as i64,
                after.created as i64,
                after.refused as i64,
                now,
            ]) {
                Ok(id) => Ok(id),
                Err(err) if err.is_unique_violation() => Err(another_run()),
                Err(err) => Err(err.into()),
            }
        }
        Some(id) => {
            // Compare-and-set: a second run of the same import that got here first
            // has moved the row on, and this chunk must not be written twice.
            let mut stmt = tx.prepare_cached(
                "UPDATE imports SET lines_done = ?3, bytes_done = ?4, posts_created = ?5,
                     lines_refused = ?6, updated_at = ?7
                 WHERE id = ?1 AND lines_done = ?2 AND state = 'importing'",
            )?;
            let changed = stmt.execute(params![
                id,
                before.lines as i64,
                after.lines as i64,
                after.bytes as i64,
                after.created as i64,
                after.refused as i64,
                now,
            ])?;
            if changed != 1 {
                return Err(another_run());
            }
            Ok(id)
        }
    }
}

/// Counts the distinct lines among `errors` (in line order).
fn lines_among(errors: &[LineError]) -> u64 {
    let mut count = 0;
    let mut last = None;
    for e in errors {
        if last != Some(e.line) {
            count += 1;
            last = Some(e.line);
        }
    }
    count
}

pub(super) fn import_of(
    store: &Store,
    author: &Username,
    digest: InputDigest,
    mode: ImportMode,
) -> StoreResult<Import> {
    store.read(|conn| {
        let author_id = author_id(conn, author)?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, mode, state, lines_done, bytes_done, posts_created, lines_refused,
                        started_at
                 FROM imports WHERE user_id = ?1 AND input_sha256 = ?2",
        )?;
        let found = stmt
            .query_row(params![author_id, digest.as_str()], |row| {
                let mode: String = row.get(1)?;
                let state: String = row.get(2)?;
                let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok((
                    row.get::<_, i64>(0)?,
                    ImportMode::parse(&mode),
                    match state.as_str() {
                        "done" => ImportState::Done,
                        "undoing" => ImportState::Undoing,
                        _ => ImportState::Importing,
                    },
                    ImportProgress {
                        lines: count(3)?,
                        bytes: count(4)?,
                        created: count(5)?,
                        refused: count(6)?,
                    },
                    row.get::<_, Timestamp>(7)?,
                ))
            })
            .optional()?;
        let mut import = Import {
            id: None,
            author_id,
            digest: digest.clone(),
            mode,
            state: ImportState::Importing,
            progress: ImportProgress::default(),
            started_at: None,
            slugs: SlugAllocator::default(),
        };
        if let Some((id, mode, state, progress, started_at)) = found {
            import.id = Some(id);
            import.mode = mode;
            import.state = state;
            import.progress = progress;
            import.started_at = Some(started_at);
        }
        Ok(import)
    })
}

pub(super) fn import_chunk(
    store: &Store,
    import: &mut Import,
    lines: &mut dyn Iterator<Item = ImportLine>,
) -> StoreResult<ChunkOutcome> {
    if import.state != ImportState::Importing {
        return Err(StoreError::refused(
            Refusal::BadState,
            "this import is not in progress",
        ));
    }
    let mut turned_bad = Vec::new();
    let (author_id, mode, id, before) = (import.author_id, import.mode, import.id, import.progress);
    let digest = import.digest.as_str();
    let slugs = &mut import.slugs;
    let written = store.write_alone(|tx| {
        let now = Timestamp::now();
        let (mut report, accepted, end) = sort_lines(tx, lines, slugs)?;
        let Some((last_line, last_end)) = end else {
            return Ok((report, None));
        };
        if mode == ImportMode::AllOrNothing && !report.refused.is_empty() {
            turned_bad = std::mem::take(&mut report.refused);
            return Err(StoreError::refused(Refusal::Conflict, "a line turned bad"));
        }
        let event = Created {
            actor_id: None,
            detail: "import, command line",
        };
        let ids = insert_rows(tx, author_id, &accepted, &now, event)?;
        report.created = accepted.len() as u64;
        drop(accepted);
        let after = ImportProgress {
            lines: last_line,
            bytes: last_end,
            created: before.created + report.created,
            refused: before.refused + lines_among(&report.refused),
        };
        let id = advance_row(tx, id, (author_id, digest, mode), before, after, &now)?;
        if let (ImportMode::AllOrNothing, Some(first), Some(last)) = (mode, ids.first(), ids.last())
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO import_chunks (import_id, first_post_id, last_post_id)
                     VALUES (?1, ?2, ?3)",
            )?;
            stmt.execute(params![id, first, last])?;
        }
        Ok((report, Some((id, after, now))))
    });
    import.slugs.next_transaction(MAX_SLUG_HINTS);
    match written {
        Err(_) if !turned_bad.is_empty() => Ok(ChunkOutcome::TurnedBad(turned_bad)),
        Err(err) => Err(err),
        Ok((report, committed)) => {
            if let Some((id, after, now)) = committed {
                import.id = Some(id);
                import.progress = after;
                import.started_at.get_or_insert(now);
            }
            Ok(ChunkOutcome::Committed(report))
        }
    }
}

pub(super) fn finish_import(store: &Store, import: &mut Import) -> StoreResult<()> {
    let Some(id) = import.id else {
        // Nothing was ever committed (an empty input): there is nothing to record.
        import.state = ImportState::Done;
        return Ok(());
    };
    store.write_alone(|tx| {
        let mut done = tx.prepare_cached(
            "UPDATE imports SET state = 'done', updated_at = ?2
                 WHERE id = ?1 AND state = 'importing'",
        )?;
        if done.execute(params![id, Timestamp::now()])? != 1 {
            return Err(another_run());
        }
        let mut chunks = tx.prepare_cached("DELETE FROM import_chunks WHERE import_id = ?1")?;
        chunks.execute([id])?;
        Ok(())
    })?;
    import.state = ImportState::Done;
    Ok(())
}

pub(super) fn undo_import(
    store: &Store,
    import: &mut Import,
    progress: Progress<'_>,
) -> StoreResult<u64> {
    let Some(id) = import.id else {
        return Ok(0);
    };
    let author_id = import.author_id;
    let total = store.write_alone(|tx| {
        let mut mark = tx.prepare_cached(
            "UPDATE imports SET state = 'undoing', updated_at = ?2 WHERE id = ?1",
        )?;
        mark.execute(params![id, Timestamp::now()])?;
        let mut count = tx.prepare_cached(
            "SELECT coalesce(sum(last_post_id - first_post_id + 1), 0)
                 FROM import_chunks WHERE import_id = ?1",
        )?;
        Ok(count.query_row([id], |row| row.get::<_, i64>(0))?.max(0) as u64)
    })?;
    import.state = ImportState::Undoing;
    let mut removed = 0u64;
    loop {
        let step = store.write_alone(|tx| {
            let mut last = tx.prepare_cached(
                "SELECT first_post_id, last_post_id FROM import_chunks
                     WHERE import_id = ?1 ORDER BY first_post_id DESC LIMIT 1",
            )?;
            let Some((first, last)) = last
                .query_row([id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })
                .optional()?
            else {
                let mut forget = tx.prepare_cached("DELETE FROM imports WHERE id = ?1")?;
                forget.execute([id])?;
                return Ok(None);
            };
            // One transaction wrote the chunk, so its ids are one run that no other
            // writer's post falls in; the author check is a second fence.
            let mut gone = tx
                .prepare_cached(
                    "SELECT id FROM active_posts
                         WHERE id BETWEEN ?1 AND ?2 AND author_id = ?3
                         UNION ALL
                         SELECT id FROM deleted_posts
                         WHERE id BETWEEN ?1 AND ?2 AND author_id = ?3",
                )?
                .query_map(params![first, last, author_id], |row| row.get::<_, i64>(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            tx.execute(
                "DELETE FROM posts WHERE id BETWEEN ?1 AND ?2 AND author_id = ?3",
                params![first, last, author_id],
            )?;
            gone.sort_unstable();
            // Readers could see these posts between the chunks: their removal is a
            // permanent delete like any other, recorded with it.
            audit::append(
                tx,
                None,
                AuditAction::PostsBulkDeletePermanent,
                &gone,
                "undoing an all-or-nothing import, command line",
            )?;
            let gone = gone.len();
            let mut chunk = tx.prepare_cached(
                "DELETE FROM import_chunks WHERE import_id = ?1 AND first_post_id = ?2",
            )?;
            chunk.execute(params![id, first])?;
            Ok(Some(gone as u64))
        })?;
        match step {
            Some(gone) => {
                removed += gone;
                progress(removed, total);
            }
            None => break,
        }
    }
    import.id = None;
    import.state = ImportState::Importing;
    import.progress = ImportProgress::default();
    import.started_at = None;
    import.slugs = SlugAllocator::default();
    Ok(removed)
}

pub(super) fn import_check(store: &Store, scratch: &Path) -> StoreResult<ImportCheck> {
    let conn = store.hold_connection()?;
    let scratch = Connection::open_with_flags(
        scratch,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(super::sql::Error::from)?;
    // A throwaway file: no journal, no syncs, nobody else opens it.
    Conn::local(&scratch).execute_batch(
        "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             CREATE TABLE taken (slug TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID;",
    )?;
    Ok(ImportCheck {
        conn,
        scratch,
        pending: HashMap::with_capacity(SCRATCH_BATCH),
        slugs: SlugAllocator::default(),
    })
}

/// See [`Store::import_check`].
pub struct ImportCheck {
    conn: HeldConn,
    /// A local file whatever the store is: the slugs of lines checked.
    scratch: Connection,
    /// Slugs of the latest checked lines, not yet in the scratch file: written there
    /// `SCRATCH_BATCH` at a time by one INSERT. One INSERT per line (each its own commit,
    /// a few page writes) cost 13 s of system time over a million lines.
    pending: HashMap<Slug, u64>,
    slugs: SlugAllocator,
}

/// Slugs written to the scratch file at once.
const SCRATCH_BATCH: usize = 1000;

impl ImportCheck {
    /// What line `number` would meet if it were written after the lines checked before
    /// it: `None` when it would be written. Field rules were checked by the caller.
    pub fn check(&mut self, number: u64, post: &NewPost) -> StoreResult<Option<ItemError>> {
        if self.pending.len() >= SCRATCH_BATCH {
            self.flush()?;
            self.slugs.next_transaction(MAX_SLUG_HINTS);
        }
        let ImportCheck {
            conn,
            scratch,
            pending,
            slugs,
        } = self;
        let earlier_line = |slug: &Slug| -> StoreResult<Option<u64>> {
            if let Some(line) = pending.get(slug) {
                return Ok(Some(*line));
            }
            let mut stmt =
                Conn::local(scratch).prepare_cached("SELECT line FROM taken WHERE slug = ?1")?;
            let line: Option<i64> = stmt.query_row([slug], |row| row.get(0)).optional()?;
            Ok(line.map(|l| l.max(0) as u64))
        };
        let slug = match &post.slug {
            Some(explicit) => {
                if let Some(line) = earlier_line(explicit)? {
                    return Ok(Some(ItemError::field(
                        "slug",
                        format!("slug '{explicit}' is already used by line {line}"),
                    )));
                }
                if slug_taken(&conn.conn(), explicit)? {
                    return Ok(Some(ItemError::field(
                        "slug",
                        slug_taken_message(explicit.as_str()),
                    )));
                }
                explicit.clone()
            }
            None => slugs.derive_avoiding(&post.title, |candidate| {
                Ok(earlier_line(candidate)?.is_some() || slug_taken(&conn.conn(), candidate)?)
            })?,
        };
        pending.insert(slug, number);
        Ok(None)
    }

    /// Moves the pending slugs into the scratch file.
    fn flush(&mut self) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = vec!["(?, ?)"; self.pending.len()].join(", ");
        let pending: Vec<(Slug, i64)> = self
            .pending
            .drain()
            .map(|(slug, line)| (slug, line as i64))
            .collect();
        let mut values: Vec<&dyn super::sql::ToSql> = Vec::with_capacity(pending.len() * 2);
        for (slug, line) in &pending {
            values.push(slug);
            values.push(line);
        }
        Conn::local(&self.scratch)
            .prepare_cached(&format!("INSERT INTO taken (slug, line) VALUES {rows}"))?
            .execute(values.as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PostBody, Title};
    use crate::store::testing::TempStore;
    use postd_testkit::TempDir;

    fn post(title: &str, slug: Option<&str>) -> NewPost {
        NewPost {
            created_at: None,
            title: Title::normalize(title).unwrap(),
            body: PostBody::parse("").unwrap(),
            slug: slug.map(|s| Slug::parse(s).unwrap()),
        }
    }

    /// The dry run remembers every slug its lines would take, those already moved to the
    /// scratch file as well as the latest ones still in memory.
    #[test]
    fn the_dry_run_sees_the_slugs_of_every_earlier_line() {
        let t = TempStore::new("import-check");
        let scratch = TempDir::new("import-check-scratch");
        let mut check = t
            .store
            .import_check(&scratch.path().join("slugs.db"))
            .unwrap();
        for line in 1..=2_500 {
            assert_eq!(check.check(line, &post("Same", None)).unwrap(), None);
        }
        let refusal = |check: &mut ImportCheck, slug: &str| {
            check
                .check(9_999, &post("Other", Some(slug)))
                .unwrap()
                .map(|e| e.message)
        };
        assert_eq!(
            refusal(&mut check, "same"),
            Some("slug 'same' is already used by line 1".into())
        );
        assert_eq!(
            refusal(&mut check, "same-1500"),
            Some("slug 'same-1500' is already used by line 1500".into())
        );
        assert_eq!(
            refusal(&mut check, "same-2500"),
            Some("slug 'same-2500' is already used by line 2500".into())
        );
        assert_eq!(refusal(&mut check, "same-2501"), None);
        // The next derived one skips the explicit slug just checked, as a write would.
        assert_eq!(check.check(10_000, &post("Same", None)).unwrap(), None);
        assert_eq!(
            refusal(&mut check, "same-2502"),
            Some("slug 'same-2502' is already used by line 10000".into())
        );
    }
}
