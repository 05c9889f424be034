-- The webhook outbox: one row per call to make — a transcript's completion webhook
-- (written idempotently before the transcript is recorded settled) or an account's
-- deletion event (written in the transaction that records the tombstones) — retried with
-- backoff. No URL, header or secret is stored here: a completion's target is read from
-- the transcript's text inputs when delivering, a deletion event's from the account.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    account_id       TEXT NOT NULL,
    transcript_id    TEXT NOT NULL,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    UNIQUE (transcript_id, event)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- An account's deletion webhook: where `transcript.deleted` events go, and the secret
-- they are signed with (HMAC-SHA256, `X-Lethe-Signature`).
ALTER TABLE accounts ADD COLUMN deletion_webhook_url TEXT;
ALTER TABLE accounts ADD COLUMN deletion_webhook_secret TEXT;
