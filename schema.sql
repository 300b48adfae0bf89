-- postd schema. Embedded in the binary; the single source of the layout.
--
-- The file is a sequence of sections, each opened by a version marker line. A new
-- database runs every section; a database at PRAGMA user_version = K runs the sections
-- numbered above K. All of it happens in one IMMEDIATE transaction that ends by setting
-- user_version to the last section's number. Sections are append-only: change the layout
-- by adding a section, never by editing an old one.

-- @version 1: users, posts with soft delete, comments, views, full-text search

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TEXT    NOT NULL
);
-- Usernames are unique regardless of case; NOCASE folds ASCII, and usernames are ASCII.
CREATE UNIQUE INDEX users_username_unique ON users (username COLLATE NOCASE);

-- AUTOINCREMENT: a permanently deleted post's id is never handed out again, so a stale
-- link can not silently point at somebody else's new post.
CREATE TABLE posts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         TEXT    NOT NULL,
    slug          TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    deleted_at    TEXT,
    deleted_by_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- deleted_by_id may become NULL later (its user removed), but never without deleted_at.
    CHECK (deleted_at IS NOT NULL OR deleted_by_id IS NULL)
);
-- Only active posts hold their slug; a soft-deleted post lets it go.
CREATE UNIQUE INDEX posts_active_slug ON posts (slug) WHERE deleted_at IS NULL;
-- Public listing filtered by author, newest first (id order is creation order).
CREATE INDEX posts_active_author ON posts (author_id, id) WHERE deleted_at IS NULL;
-- The trash, most recently deleted first, for everybody (admin) or one author.
CREATE INDEX posts_trash ON posts (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX posts_trash_author ON posts (author_id, deleted_at, id) WHERE deleted_at IS NOT NULL;

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX comments_by_post ON comments (post_id, id);
CREATE INDEX comments_by_author ON comments (author_id);

-- The read paths. Ordinary reads use active_posts / active_comments only; the trash and
-- restore use deleted_posts. Nothing else reads the posts table.
CREATE VIEW active_posts AS
    SELECT id, author_id, title, slug, body, created_at, updated_at
    FROM posts WHERE deleted_at IS NULL;

CREATE VIEW deleted_posts AS
    SELECT id, author_id, title, slug, body, created_at, updated_at, deleted_at, deleted_by_id
    FROM posts WHERE deleted_at IS NOT NULL;

CREATE VIEW active_comments AS
    SELECT c.id, c.post_id, c.author_id, c.body, c.created_at
    FROM comments AS c JOIN active_posts AS p ON p.id = c.post_id;

-- Full-text index for `q`, external content: it stores only the index, not a second copy
-- of every title and body.
CREATE VIRTUAL TABLE posts_fts USING fts5 (
    title, body, content = 'posts', content_rowid = 'id', tokenize = 'unicode61'
);
CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
-- Soft delete and restore touch only deleted_at / deleted_by_id: no index rewrite for them.
CREATE TRIGGER posts_fts_update AFTER UPDATE OF title, body ON posts
WHEN old.title IS NOT new.title OR old.body IS NOT new.body BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO posts_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;

-- @version 2: Idempotency-Key records for POST /posts and POST /posts/bulk
-- One per (user, key), kept 24 h, written in the same transaction as the writes they
-- describe.
CREATE TABLE idempotency_keys (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB    NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- @version 3: a revision per post, for ETag and If-Match
-- Counts the changes a client can see through the API: 1 when created, one more on every
-- update and on every restore. A soft delete leaves it, so the tag a client saw before
-- the delete still matches for the restore. The views carry it; the tag is id and
-- revision together, so a slug that passes to another post changes the tag too.
ALTER TABLE posts ADD COLUMN revision INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1);
DROP VIEW active_posts;
CREATE VIEW active_posts AS
    SELECT id, author_id, title, slug, body, created_at, updated_at, revision
    FROM posts WHERE deleted_at IS NULL;
DROP VIEW deleted_posts;
CREATE VIEW deleted_posts AS
    SELECT id, author_id, title, slug, body, created_at, updated_at, deleted_at, deleted_by_id,
           revision
    FROM posts WHERE deleted_at IS NOT NULL;

-- @version 4: the audit log
-- One row per change an operator may need to account for: soft deletes, permanent
-- deletes, restores, purges, role changes and user deletions. Each is written in the same
-- transaction as the change it records (store/audit.rs), so neither is ever seen without
-- the other. actor_id is NULL for the command line and the retention sweep; it is not a
-- foreign key, since removing a user must not rewrite who did what.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    actor_id   INTEGER,
    action     TEXT    NOT NULL CHECK (action IN (
                   'post.delete', 'post.delete_permanent', 'post.restore',
                   'posts.bulk_delete', 'posts.bulk_delete_permanent', 'posts.bulk_restore',
                   'trash.purge', 'user.role', 'user.delete')),
    -- A JSON array of the ids actually changed (post ids; user ids for user.*).
    target_ids TEXT    NOT NULL CHECK (json_valid(target_ids) AND json_type(target_ids) = 'array'),
    count      INTEGER NOT NULL CHECK (count >= 1),
    detail     TEXT    NOT NULL
);
-- GET /admin/audit filtered by action or by actor, newest first.
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, id) WHERE actor_id IS NOT NULL;
-- The log is append-only: what happened stays written.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- @version 5: progress of `postd import`
-- One row per input (the SHA-256 of its bytes) and user, advanced in the same transaction
-- as each chunk of posts the import writes: a re-run after any interruption continues
-- exactly after the last committed line, and a finished input is not imported twice.
CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    input_sha256  TEXT    NOT NULL,
    mode          TEXT    NOT NULL CHECK (mode IN ('skip-bad-lines', 'all-or-nothing')),
    state         TEXT    NOT NULL CHECK (state IN ('importing', 'undoing', 'done')),
    lines_done    INTEGER NOT NULL,
    bytes_done    INTEGER NOT NULL,
    posts_created INTEGER NOT NULL,
    lines_refused INTEGER NOT NULL,
    started_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    UNIQUE (user_id, input_sha256)
);
-- The posts each chunk of an all-or-nothing import created (one transaction, so one run
-- of ids), kept until it is done: if a line turns bad after the file was validated (a
-- concurrent writer took its slug), these are removed again and nothing stays written.
CREATE TABLE import_chunks (
    import_id     INTEGER NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    first_post_id INTEGER NOT NULL,
    last_post_id  INTEGER NOT NULL,
    PRIMARY KEY (import_id, first_post_id)
) WITHOUT ROWID;

-- @version 6: the audit log refuses INSERT OR REPLACE
-- REPLACE deletes the row it conflicts with without firing DELETE triggers (unless
-- recursive_triggers is on), so `INSERT OR REPLACE` rewrote an event past the triggers
-- above. An insert that names the id of an existing event is refused before it runs.
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id) BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- @version 7: what nodes of a cluster share
-- Values the whole deployment shares, replicated with everything else in cluster mode:
-- the cluster's id (a node's data directory names it, so a directory of another cluster is
-- refused) and the token signing key (unless POSTD_JWT_SECRET is set). A single-file
-- deployment keeps its key in postd.key and leaves this empty.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
-- Work that one node at a time does (the trash retention sweep): whoever holds the lease
-- until `until` does it; a lease not renewed in time passes to the next node that asks.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
) WITHOUT ROWID;

-- @version 8: revisions, erasure and audit retention
-- Who saved a post's current title, slug and body (NULL: its author, for posts saved
-- before this version), so an old version names who made it.
ALTER TABLE posts ADD COLUMN updated_by_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
-- Every version of a post's title, slug and body that a change replaced: written by the
-- trigger below in the statement (so the transaction) that replaces it, removed with the
-- post. `revision` is the post's revision while that version was current.
CREATE TABLE post_revisions (
    post_id     INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL,
    title       TEXT    NOT NULL,
    slug        TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    saved_at    TEXT    NOT NULL,
    saved_by_id INTEGER,
    PRIMARY KEY (post_id, revision)
) WITHOUT ROWID;
CREATE TRIGGER posts_keep_revision BEFORE UPDATE OF title, slug, body ON posts
WHEN OLD.title IS NOT NEW.title OR OLD.slug IS NOT NEW.slug OR OLD.body IS NOT NEW.body BEGIN
    INSERT INTO post_revisions (post_id, revision, title, slug, body, saved_at, saved_by_id)
    VALUES (OLD.id, OLD.revision, OLD.title, OLD.slug, OLD.body, OLD.updated_at,
            coalesce(OLD.updated_by_id, OLD.author_id));
END;
-- The audit log gains the actions of v1.2, and two exceptions to append-only, each only
-- while the store holds its key in `settings` inside the transaction that needs it: an
-- erasure may rewrite `detail` (to take a name out), the retention sweep may delete
-- events other than erasures. A CHECK can not be altered: the table is made again.
CREATE TABLE audit_events_v8 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    actor_id   INTEGER,
    action     TEXT    NOT NULL CHECK (action IN (
                   'post.create', 'post.update', 'post.revert', 'post.delete',
                   'post.delete_permanent', 'post.restore',
                   'posts.bulk_create', 'posts.bulk_update', 'posts.bulk_delete',
                   'posts.bulk_delete_permanent', 'posts.bulk_restore', 'posts.filter_delete',
                   'trash.purge', 'user.role', 'user.delete', 'user.erase',
                   'token.create', 'token.revoke')),
    target_ids TEXT    NOT NULL CHECK (json_valid(target_ids) AND json_type(target_ids) = 'array'),
    count      INTEGER NOT NULL CHECK (count >= 1),
    detail     TEXT    NOT NULL
);
INSERT INTO audit_events_v8 (id, at, actor_id, action, target_ids, count, detail)
    SELECT id, at, actor_id, action, target_ids, count, detail FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_v8 RENAME TO audit_events;
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_at ON audit_events (at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM settings WHERE name = 'audit.erasing')
    OR NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.actor_id IS NOT OLD.actor_id
    OR NEW.action IS NOT OLD.action OR NEW.target_ids IS NOT OLD.target_ids
    OR NEW.count IS NOT OLD.count BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM settings WHERE name = 'audit.retention')
    OR OLD.action = 'user.erase' BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id) BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- @version 9: API tokens
-- Long-lived tokens for scripts, each limited to some scopes. Only a SHA-256 of the
-- token is kept (tokens are 32 random bytes: a hash needs no salt and no slowness); the
-- token itself is shown once, when made. Names are unique per user.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    scopes     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT,
    UNIQUE (user_id, name)
);
