-- The webhook outbox: one row per call to make (a transcript's completion webhook),
-- written idempotently before the transcript is recorded settled, retried with backoff.
-- No URL or header is stored here: they are content, read from the transcript's text
-- inputs when delivering.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    account_id       UUID NOT NULL,
    transcript_id    UUID NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
