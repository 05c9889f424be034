-- Lethe's embedded profile schema. Timestamps are INTEGER microseconds since the Unix
-- epoch (UTC); ids are lowercase hyphenated UUIDs, v7 where order matters.
-- No column holds customer content: content lives in the content store, keyed by artifact.

CREATE TABLE accounts (
    id                      TEXT PRIMARY KEY NOT NULL,
    name                    TEXT NOT NULL,
    transcript_ttl_seconds  INTEGER,
    upload_ttl_seconds      INTEGER NOT NULL,
    baa                     INTEGER NOT NULL,
    region                  TEXT NOT NULL,
    model_training_opt_out  INTEGER NOT NULL,
    zero_data_retention     INTEGER NOT NULL,
    policy_version          INTEGER NOT NULL,
    created_at              INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE transcripts (
    id              TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    upload_id       TEXT,
    options         TEXT NOT NULL,
    webhook_auth    INTEGER NOT NULL,
    audio_duration  REAL,
    error           TEXT,
    policy_version  INTEGER NOT NULL,
    delete_after    INTEGER,
    delete_by       INTEGER,
    deleted_at      INTEGER,
    deletion_reason TEXT,
    revision        INTEGER NOT NULL
) STRICT;
-- Listing newest first, with and without a status filter (keyset on id).
CREATE INDEX transcripts_by_account ON transcripts (account_id, id);
CREATE INDEX transcripts_by_account_status ON transcripts (account_id, status, id);
-- The sweeper's stuck-transcript scan only ever sees unfinished transcripts.
CREATE INDEX transcripts_unfinished ON transcripts (created_at)
    WHERE status IN ('queued', 'processing');

CREATE TABLE artifacts (
    id                TEXT PRIMARY KEY NOT NULL,
    account_id        TEXT NOT NULL,
    transcript_id     TEXT,
    kind              TEXT NOT NULL,
    name              TEXT,
    state             TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    anchor_at         INTEGER,
    schedule          TEXT NOT NULL,
    delete_after      INTEGER,
    delete_by         INTEGER,
    due_at            INTEGER,
    policy_version    INTEGER NOT NULL,
    size_bytes        INTEGER NOT NULL,
    content_key       TEXT NOT NULL,
    training_eligible INTEGER NOT NULL,
    pending_reason    TEXT,
    claimed_by        TEXT,
    claimed_until     INTEGER,
    deleted_at        INTEGER,
    deletion_reason   TEXT
) STRICT;
CREATE INDEX artifacts_by_transcript ON artifacts (transcript_id) WHERE transcript_id IS NOT NULL;
-- Sparse: only artifacts with something scheduled and not yet deleted. The due query and
-- the next-wake query read this index from its low end, so their cost follows the number
-- due, not the number tracked.
CREATE INDEX artifacts_due ON artifacts (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX artifacts_deadline ON artifacts (delete_by) WHERE due_at IS NOT NULL;
CREATE INDEX artifacts_live_by_account ON artifacts (account_id, id) WHERE state <> 'deleted';

CREATE TABLE tombstones (
    artifact_id    TEXT PRIMARY KEY NOT NULL,
    account_id     TEXT NOT NULL,
    transcript_id  TEXT,
    kind           TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    anchor_at      INTEGER,
    delete_after   INTEGER,
    delete_by      INTEGER,
    deleted_at     INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    deleted_by     TEXT NOT NULL
) STRICT;

CREATE TABLE sweeps (
    id                        TEXT PRIMARY KEY NOT NULL,
    instance                  TEXT NOT NULL,
    started_at                INTEGER NOT NULL,
    finished_at               INTEGER NOT NULL,
    examined                  INTEGER NOT NULL,
    deleted                   INTEGER NOT NULL,
    deleted_by_reason         TEXT NOT NULL,
    failed                    INTEGER NOT NULL,
    overdue                   INTEGER NOT NULL,
    stuck_transcripts_errored INTEGER NOT NULL,
    truncated                 INTEGER NOT NULL
) STRICT;
CREATE INDEX sweeps_recent ON sweeps (started_at);
-- Metrics count artifacts by kind and state from this covering index.
CREATE INDEX artifacts_kind_state ON artifacts (kind, state);
-- `created_on` filters read one day of one account.
CREATE INDEX transcripts_by_account_created ON transcripts (account_id, created_at);
