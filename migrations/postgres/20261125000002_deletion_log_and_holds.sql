-- The deletion log: one leaf per tombstone, in the order tombstones are recorded. Leaves
-- are RFC 6962 leaf hashes of the tombstone's canonical encoding; checkpoints (tree size
-- and root) are computed and signed on demand, so nothing here is ever rewritten.
CREATE TABLE deletion_log (
    leaf_index   BIGINT PRIMARY KEY,
    artifact_id  UUID NOT NULL UNIQUE,
    leaf_hash    BYTEA NOT NULL
);

-- The log's size: appenders take this row's lock, so leaf indexes are dense and commit
-- in order across instances.
-- backfill_pending: tombstones recorded before this migration still need their leaves
-- (appended once, at the first start), so a start never scans the tombstones again.
CREATE TABLE deletion_log_head (
    id                BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    size              BIGINT NOT NULL,
    backfill_pending  BOOLEAN NOT NULL
);
INSERT INTO deletion_log_head (id, size, backfill_pending)
    VALUES (TRUE, 0, EXISTS (SELECT 1 FROM tombstones));

-- Legal holds: an account, or one transcript of it. Never deleted; released_at marks a
-- release.
CREATE TABLE legal_holds (
    id             UUID PRIMARY KEY,
    account_id     UUID NOT NULL,
    transcript_id  UUID,
    reason         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    released_at    TIMESTAMPTZ
);
CREATE INDEX legal_holds_active ON legal_holds (account_id) WHERE released_at IS NULL;
