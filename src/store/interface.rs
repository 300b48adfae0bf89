//! The store's whole interface: every public method of `Store`, in one place. Each
//! method says which kind of transaction its work runs in; the work itself is in the
//! module of its tables.

use super::cluster::Status;
use super::erasure::{self, Erased};
use super::filter::{self, FilterMatch, PostFilter};
use super::idempotency::{self, Commit};
use super::revisions::{self, Revision, RevisionLimit};
use super::tokens::{self, TokenGrant, TokenInfo};
use super::{audit, bulk, comments, export, import, maintenance, posts, users};
use super::{shared, Store, StoreError, StoreResult};
use super::{
    AuditEvent, AuditQuery, ChunkOutcome, DeleteOutcome, ExportScope, Import, ImportCheck,
    ImportLine, ImportMode, InputDigest, ListQuery, OnceKey, PartialOutcome, PatchItem, PostCounts,
    Progress, Purger, Recorded, RoleChange, TrashQuery, UserSummary, Written,
};
use crate::clock::{Age, Timestamp};
use crate::model::{
    Actor, Comment, CommentBody, IfMatch, ItemError, NewPost, Post, PostPatch, Role, TokenName,
    User, Username, VersionedPost,
};
use std::path::Path;
use std::time::Duration;

impl Store {
    /// The database file, when the store is one (not a cluster).
    pub fn path(&self) -> Option<&Path> {
        self.local().map(|db| db.path.as_path())
    }

    /// Where the data is, for people: the file, or the cluster's addresses.
    pub fn describe(&self) -> String {
        match (self.local(), self.cluster()) {
            (Some(db), _) => format!("database {}", db.path.display()),
            (None, Some(cluster)) => format!("cluster {}", cluster.seeds().join(",")),
            (None, None) => String::new(),
        }
    }

    /// Says so when the database file, which holds the password hashes, can be read by
    /// other users: postd creates its files 0600, but a file copied in may be 0644.
    pub fn warn_if_readable_by_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = self.path() else { return };
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                log::warn!(
                    "database {} has mode {mode:o}: other users can read the password hashes (chmod 600)",
                    path.display()
                );
            }
        }
    }

    /// Write transactions committed since the store was opened (each one sync of the WAL,
    /// or one replication on the cluster): with group commit, fewer than the writes.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Tells `observer` how long each write waited for the writer connection.
    pub fn observe_writer_waits(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        self.writer.observe_waits(Box::new(observer));
    }

    /// Copies the WAL into the database file and truncates it, so a stopped server leaves
    /// one self-contained file behind. Skipped when checkpoints were left to an outside
    /// process (Litestream), and on a cluster (dqlite checkpoints by itself).
    pub fn checkpoint(&self) -> StoreResult<()> {
        match self.local() {
            Some(db) if db.wal_autocheckpoint != 0 => db.read(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(()))?;
                Ok(())
            }),
            _ => Ok(()),
        }
    }

    /// Bytes the database takes on disk: the main file and its WAL (which holds recent
    /// commits until a checkpoint copies them into the file); pages times page size on a
    /// cluster, where it is held in memory. A file that is not there counts 0.
    pub fn disk_usage(&self) -> u64 {
        let Some(path) = self.path() else {
            return self
                .read(|conn| {
                    Ok(conn.query_row(
                        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                        (),
                        |row| row.get::<_, i64>(0),
                    )?)
                })
                .map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0));
        };
        let mut wal = path.to_path_buf().into_os_string();
        wal.push("-wal");
        [path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// A real round trip to the database (the cluster's leader), for `/healthz`.
    pub fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            let tables: i64 =
                conn.query_row("SELECT count(*) FROM sqlite_schema", (), |row| row.get(0))?;
            if tables > 0 {
                Ok(())
            } else {
                Err(StoreError::Unavailable("schema missing".into()))
            }
        })
    }

    /// The value of setting `name` (the cluster's id, its signing key), if set.
    pub fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|conn| shared::setting(conn, name))
    }

    /// Sets `name` to `value` unless it is set already; the value it has now.
    pub fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.write_alone(|tx| shared::setting_or_insert(tx, name, value))
    }

    /// Takes or renews lease `name` for `holder` for `term`; true when `holder` has it.
    pub fn take_lease(&self, name: &str, holder: &str, term: Duration) -> StoreResult<bool> {
        self.write(|tx| shared::take_lease(tx, name, holder, term))
    }

    /// The cluster's members and leader; `None` for a local file.
    pub fn cluster_status(&self) -> StoreResult<Option<Status>> {
        match self.cluster() {
            Some(cluster) => Ok(Some(cluster.status()?)),
            None => Ok(None),
        }
    }

    /// Removes a member from the cluster. The local file has no members: a refusal.
    pub fn remove_member(&self, id: u64) -> StoreResult<()> {
        match self.cluster() {
            Some(cluster) => Ok(cluster.remove(id)?),
            None => Err(StoreError::refused(
                super::Refusal::BadState,
                "a database file is no cluster",
            )),
        }
    }

    /// Copies every row of the postd database file at `path` into this store, which must
    /// hold none yet (`--seed`). Returns how many rows were copied.
    pub fn seed_from(&self, path: &Path) -> StoreResult<u64> {
        super::seed::seed(self, path)
    }

    pub fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> StoreResult<User> {
        self.write(|tx| users::insert(tx, username, password_hash, role))
    }

    pub fn user(&self, id: i64) -> StoreResult<Option<User>> {
        self.read(|conn| users::by_id(conn, id))
    }

    pub fn credentials(&self, username: &Username) -> StoreResult<Option<(User, String)>> {
        self.read(|conn| users::credentials(conn, username))
    }

    pub fn set_role(&self, username: &Username, role: Role) -> StoreResult<RoleChange> {
        self.write_alone(|tx| users::set_role(tx, username, role))
    }

    /// Removes a user; their posts and comments go with them (ON DELETE CASCADE).
    pub fn delete_user(&self, username: &Username) -> StoreResult<()> {
        self.write_alone(|tx| users::delete_user(tx, username))
    }

    pub fn post(&self, id: i64) -> StoreResult<Option<VersionedPost>> {
        self.read(|conn| posts::active_by_id(conn, id))
    }

    pub fn post_by_slug(&self, slug: &str) -> StoreResult<Option<VersionedPost>> {
        self.read(|conn| posts::active_by_slug(conn, slug))
    }

    pub fn list_posts(&self, query: &ListQuery<'_>) -> StoreResult<Vec<Post>> {
        self.read(|conn| posts::list_active(conn, query))
    }

    /// The trash as `actor` may see it: everybody's for an admin, their own for a user
    /// (asking for another author's is then an empty page).
    pub fn trash(&self, actor: &Actor, query: &TrashQuery<'_>) -> StoreResult<Vec<Post>> {
        posts::trash(self, actor, query)
    }

    /// Creates one post. With a key, the answer `record` makes is stored in the same
    /// transaction, and a repeat of the request replays it instead of writing again.
    pub fn create_post(
        &self,
        actor: &Actor,
        post: NewPost,
        once: Option<&OnceKey>,
        record: impl FnOnce(&Post) -> StoreResult<Recorded>,
    ) -> StoreResult<Written<Post>> {
        idempotency::write_once(
            self,
            Commit::Grouped,
            once,
            |tx| posts::create(tx, actor, post),
            |post| Ok((record(&post)?, post)),
        )
    }

    /// Applies `patch` if the actor may and `if_match` admits the post's current version
    /// (checked in the same transaction as the write).
    pub fn update_post(
        &self,
        actor: &Actor,
        id: i64,
        patch: PostPatch,
        if_match: &IfMatch,
    ) -> StoreResult<VersionedPost> {
        self.write(|tx| posts::update(tx, actor, id, patch, if_match, self.revision_limit))
    }

    pub fn soft_delete_post(&self, actor: &Actor, id: i64, if_match: &IfMatch) -> StoreResult<()> {
        self.write(|tx| posts::soft_delete(tx, actor, id, if_match))
    }

    pub fn hard_delete_post(&self, actor: &Actor, id: i64, if_match: &IfMatch) -> StoreResult<()> {
        self.write(|tx| posts::hard_delete(tx, actor, id, if_match))
    }

    pub fn restore_post(
        &self,
        actor: &Actor,
        id: i64,
        if_match: &IfMatch,
        owner_undo: Option<std::time::Duration>,
    ) -> StoreResult<VersionedPost> {
        self.write(|tx| posts::restore(tx, actor, id, if_match, owner_undo))
    }

    /// How many posts are active and how many in the trash, counted on one snapshot.
    pub fn post_counts(&self) -> StoreResult<PostCounts> {
        posts::post_counts(self)
    }

    pub fn create_comment(
        &self,
        actor: &Actor,
        post_id: i64,
        body: CommentBody,
    ) -> StoreResult<Comment> {
        comments::create_comment(self, actor, post_id, body)
    }

    pub fn comments(
        &self,
        post_id: i64,
        limit: u32,
        after_id: Option<i64>,
    ) -> StoreResult<Vec<Comment>> {
        self.snapshot(|conn| comments::list(conn, post_id, limit, after_id))
    }

    /// Hard-deletes a comment. Allowed for its author, the post's owner and admins.
    pub fn delete_comment(&self, actor: &Actor, id: i64) -> StoreResult<()> {
        comments::delete_comment(self, actor, id)
    }

    /// Creates every post or none, in one transaction.
    pub fn create_posts(&self, actor: &Actor, items: Vec<NewPost>) -> StoreResult<Vec<Post>> {
        self.write_alone(|tx| bulk::create_all(tx, actor, items))
    }

    /// `create_posts` for a request that may carry an Idempotency-Key (see `create_post`).
    pub fn create_posts_once(
        &self,
        actor: &Actor,
        items: Vec<NewPost>,
        once: Option<&OnceKey>,
        record: impl FnOnce(&[Post]) -> StoreResult<Recorded>,
    ) -> StoreResult<Written> {
        idempotency::write_once(
            self,
            Commit::Alone,
            once,
            |tx| bulk::create_all(tx, actor, items),
            // Only the recorded answer is kept: the posts of a 10,000-item create would
            // double what the request holds.
            |posts| Ok((record(&posts)?, ())),
        )
    }

    /// Creates the items that can be created and reports the others, in one transaction;
    /// keyed like `create_post`.
    pub fn create_posts_partial_once(
        &self,
        actor: &Actor,
        items: Vec<Result<NewPost, Vec<ItemError>>>,
        once: Option<&OnceKey>,
        record: impl FnOnce(&[PartialOutcome]) -> StoreResult<Recorded>,
    ) -> StoreResult<Written> {
        idempotency::write_once(
            self,
            Commit::Alone,
            once,
            |tx| bulk::create_partial(tx, actor, items),
            |outcomes| Ok((record(&outcomes)?, ())),
        )
    }

    /// Applies every item or none.
    pub fn update_posts(&self, actor: &Actor, items: Vec<PatchItem>) -> StoreResult<Vec<Post>> {
        self.write_alone(|tx| bulk::update_all(tx, actor, items, self.revision_limit))
    }

    /// Soft or permanent delete of the listed posts (each id once); unknown ids skipped.
    pub fn delete_posts(
        &self,
        actor: &Actor,
        ids: &[i64],
        hard: bool,
    ) -> StoreResult<DeleteOutcome> {
        bulk::delete_posts(self, actor, ids, hard)
    }

    /// What `filter` matches among active posts now: the count and the first ids (one
    /// snapshot); refused when more than `most`, what one request may delete.
    pub fn filter_matches(&self, filter: &PostFilter<'_>, most: usize) -> StoreResult<FilterMatch> {
        self.snapshot(|conn| filter::matching(conn, filter, most))
    }

    /// Soft or permanent delete of what `filter` matches, in one transaction, if it
    /// matches exactly `expected` posts and at most `most`; returns their ids.
    pub fn delete_by_filter(
        &self,
        actor: &Actor,
        filter: &PostFilter<'_>,
        expected: u64,
        most: usize,
        hard: bool,
    ) -> StoreResult<Vec<i64>> {
        self.write_alone(|tx| filter::delete_matching(tx, actor, filter, expected, most, hard))
    }

    /// Restores every listed post or none; `requested` pairs each id with its position in
    /// the request, for the error entries.
    pub fn restore_posts(
        &self,
        actor: &Actor,
        requested: &[(usize, i64)],
    ) -> StoreResult<Vec<Post>> {
        self.write_alone(|tx| bulk::restore_all(tx, actor, requested))
    }

    /// A page of audit events, newest first (`limit + 1` rows at most; see `Page`).
    pub fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.read(|conn| audit::list(conn, query))
    }

    /// How many posts were soft-deleted before `cutoff` (what a purge would remove now).
    pub fn count_deleted_before(&self, cutoff: &Timestamp) -> StoreResult<u64> {
        maintenance::count_deleted_before(self, cutoff)
    }

    /// Permanently deletes posts soft-deleted before `cutoff` (`older_than` ago), in one
    /// transaction with its one audit event; comments go by cascade.
    pub fn purge_deleted_before(
        &self,
        cutoff: &Timestamp,
        older_than: &Age,
        by: Purger,
        progress: Progress<'_>,
    ) -> StoreResult<u64> {
        maintenance::purge_deleted_before(self, cutoff, older_than, by, progress)
    }

    /// One batch of the retention sweep: permanently deletes up to `limit` posts
    /// soft-deleted before `cutoff`, oldest first, and records them, in one transaction of
    /// its own. Returns how many went (0: the sweep is done).
    pub fn purge_expired_batch(
        &self,
        cutoff: &Timestamp,
        retention: &Age,
        limit: usize,
    ) -> StoreResult<usize> {
        maintenance::purge_expired_batch(self, cutoff, retention, limit)
    }

    /// A consistent copy of the live database through SQLite's online backup API. The copy
    /// runs in steps inside one read snapshot: writers (in WAL mode) are never blocked,
    /// and their commits can not restart the copy. It is written in a private directory
    /// beside `dest` (never through a symbolic link) and renamed into place, so `dest` is
    /// either what it was or a complete new copy; a link at `dest` is replaced, not
    /// followed.
    pub fn backup_to(&self, dest: &Path, progress: Progress<'_>) -> StoreResult<()> {
        maintenance::backup_to(self, dest, progress)
    }

    /// Runs SQLite's integrity and foreign-key checks and the full-text index's own check;
    /// returns what is wrong (empty: all is well).
    pub fn check(&self, progress: Progress<'_>) -> StoreResult<Vec<String>> {
        maintenance::check(self, progress)
    }

    /// Hands every post of `scope` to `visit` in id order, with the number of posts there
    /// are (for progress), all from one read snapshot: writers go on committing meanwhile
    /// (WAL), and nothing they commit shows. Stops at the first error `visit` returns.
    /// Memory holds one post at a time.
    ///
    /// The snapshot is one read transaction for as long as the export runs: while it is
    /// open, checkpoints can not copy the WAL past it, so the WAL grows by every write
    /// committed meanwhile and is reset only once the export ends.
    pub fn export_posts<E>(
        &self,
        scope: ExportScope,
        visit: &mut dyn FnMut(&Post, u64) -> Result<(), E>,
    ) -> StoreResult<Result<u64, E>> {
        export::export_posts(self, scope, visit)
    }

    /// The import of the input `digest` as `author`: new, or where an earlier run left
    /// it. `mode` applies to a new import; one already started keeps its own (see
    /// [`Import::mode`]).
    pub fn import_of(
        &self,
        author: &Username,
        digest: InputDigest,
        mode: ImportMode,
    ) -> StoreResult<Import> {
        import::import_of(self, author, digest, mode)
    }

    /// Writes the lines `lines` yields, in one transaction that also records the import's
    /// progress as ending at the last of them. The caller bounds the chunk (the iterator
    /// is read inside the transaction; the chunk's posts wait in memory for its INSERT).
    /// Skipping bad lines, refused lines are reported and counted; all-or-nothing, a
    /// refused line rolls the chunk back ([`ChunkOutcome::TurnedBad`]).
    pub fn import_chunk(
        &self,
        import: &mut Import,
        lines: &mut dyn Iterator<Item = ImportLine>,
    ) -> StoreResult<ChunkOutcome> {
        import::import_chunk(self, import, lines)
    }

    /// Marks the import done: every line was handled. Its chunk records go.
    pub fn finish_import(&self, import: &mut Import) -> StoreResult<()> {
        import::finish_import(self, import)
    }

    /// Removes every post an all-or-nothing import wrote, one chunk per transaction (so
    /// other writers go on between them, and a run killed meanwhile is finished by the
    /// next), then its row: afterwards the input counts as never imported. Reports posts
    /// removed so far and the total to `progress`; returns how many were removed.
    pub fn undo_import(&self, import: &mut Import, progress: Progress<'_>) -> StoreResult<u64> {
        import::undo_import(self, import, progress)
    }

    /// A check of lines as this import would write them, writing nothing to the database:
    /// for an all-or-nothing import, before its first chunk. The slugs the checked lines
    /// would take are kept in a scratch database at `scratch` (a path in a private
    /// directory), so memory stays bounded however long the file.
    pub fn import_check(&self, scratch: &Path) -> StoreResult<ImportCheck> {
        import::import_check(self, scratch)
    }

    /// Keeps at most `limit` old versions per post from now on (`--revision-limit`).
    pub fn with_revision_limit(mut self, limit: u32) -> Store {
        self.revision_limit = RevisionLimit(limit);
        self
    }

    /// A page of post `id`'s old versions, newest first (`limit + 1` rows at most).
    pub fn revisions(
        &self,
        actor: &Actor,
        id: i64,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<Revision>> {
        self.read(|conn| revisions::list(conn, actor, id, limit, before))
    }

    /// Makes version `revision` of post `id` current again, as a new revision.
    pub fn revert_post(
        &self,
        actor: &Actor,
        id: i64,
        revision: i64,
        if_match: &IfMatch,
    ) -> StoreResult<VersionedPost> {
        self.write(|tx| revisions::revert(tx, actor, id, revision, if_match, self.revision_limit))
    }

    /// Erases user `user_id` and everything of theirs (see `erasure`); a dry run only
    /// counts. `actor_id` is the admin asking, `None` for the command line.
    pub fn erase_user(
        &self,
        actor_id: Option<i64>,
        user_id: i64,
        dry_run: bool,
    ) -> StoreResult<Erased> {
        self.write_alone(|tx| erasure::erase(tx, actor_id, user_id, dry_run))
    }

    /// A page of users with their post counts, newest first (`limit + 1` rows at most).
    pub fn users(
        &self,
        limit: u32,
        before: Option<i64>,
        q: Option<&str>,
    ) -> StoreResult<Vec<UserSummary>> {
        self.read(|conn| users::page(conn, limit, before, q))
    }

    /// The user of name `username`, if any.
    pub fn user_named(&self, username: &Username) -> StoreResult<Option<User>> {
        Ok(self.credentials(username)?.map(|(user, _)| user))
    }

    /// One batch of the audit log's retention sweep: removes up to `limit` events older
    /// than `cutoff` (never an erasure's), in one transaction of its own.
    pub fn expire_audit_batch(&self, cutoff: &Timestamp, limit: usize) -> StoreResult<usize> {
        self.write_alone(|tx| audit::expire(tx, cutoff, limit))
    }

    /// Audit events after `after_id`, oldest first, at most `limit` (the change feed).
    pub fn events_after(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        self.read(|conn| audit::after(conn, after_id, limit))
    }

    /// Waits until a write transaction of this process commits after the `seen`-th, or
    /// `timeout` passes; returns the commits counted now (see `commits`).
    pub fn wait_for_commit(&self, seen: u64, timeout: Duration) -> u64 {
        self.writer.wait_for_commit(seen, timeout)
    }

    /// What the API token with SHA-256 `hash` stands for, if it exists.
    pub fn token_grant(&self, hash: &str) -> StoreResult<Option<TokenGrant>> {
        self.read(|conn| tokens::by_hash(conn, hash))
    }

    /// Keeps a new token of `user_id` (its hash only); 409 when they have one of that name.
    pub fn create_token(
        &self,
        actor_id: Option<i64>,
        user_id: i64,
        info: &TokenInfo,
        hash: &str,
    ) -> StoreResult<()> {
        self.write(|tx| tokens::create(tx, actor_id, user_id, info, hash))
    }

    /// `user_id`'s tokens, by name.
    pub fn tokens_of(&self, user_id: i64) -> StoreResult<Vec<TokenInfo>> {
        self.read(|conn| tokens::list(conn, user_id))
    }

    /// Every token, with its user's name.
    pub fn all_tokens(&self) -> StoreResult<Vec<(Username, TokenInfo)>> {
        self.read(tokens::list_all)
    }

    /// Revokes `user_id`'s token `name`.
    pub fn revoke_token(
        &self,
        actor_id: Option<i64>,
        user_id: i64,
        name: &TokenName,
    ) -> StoreResult<()> {
        self.write(|tx| tokens::revoke(tx, actor_id, user_id, name))
    }

    /// Revokes the token named `name` (the command line): `owner`'s, or the only one of
    /// that name; its user's name.
    pub fn revoke_token_named(
        &self,
        name: &TokenName,
        owner: Option<&Username>,
    ) -> StoreResult<Username> {
        self.write(|tx| tokens::revoke_named(tx, name, owner))
    }
}
