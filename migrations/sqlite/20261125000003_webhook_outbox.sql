-- The webhook outbox: one row per call to make (a transcript's completion webhook),
-- written idempotently before the transcript is recorded settled, retried with backoff.
-- No URL or header is stored here: they are content, read from the transcript's text
-- inputs when delivering.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    account_id       TEXT NOT NULL,
    transcript_id    TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
