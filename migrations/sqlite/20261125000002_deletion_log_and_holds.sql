-- The deletion log: one leaf per tombstone, in the order tombstones are recorded. Leaves
-- are RFC 6962 leaf hashes of the tombstone's canonical encoding; checkpoints (tree size
-- and root) are computed and signed on demand, so nothing here is ever rewritten.
CREATE TABLE deletion_log (
    leaf_index   INTEGER PRIMARY KEY NOT NULL,
    artifact_id  TEXT NOT NULL UNIQUE,
    leaf_hash    BLOB NOT NULL
) STRICT;

-- Whether tombstones recorded before this migration still need their leaves (appended
-- once, at the first start; every later tombstone gets its leaf when it is recorded), so
-- a start never scans the tombstones again.
CREATE TABLE deletion_log_backfill (
    id       INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    pending  INTEGER NOT NULL
) STRICT;
INSERT INTO deletion_log_backfill (id, pending) SELECT 1, EXISTS (SELECT 1 FROM tombstones);

-- Legal holds: an account, or one transcript of it. Never deleted; released_at marks a
-- release.
CREATE TABLE legal_holds (
    id             TEXT PRIMARY KEY NOT NULL,
    account_id     TEXT NOT NULL,
    transcript_id  TEXT,
    reason         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    released_at    INTEGER
) STRICT;
CREATE INDEX legal_holds_active ON legal_holds (account_id) WHERE released_at IS NULL;
