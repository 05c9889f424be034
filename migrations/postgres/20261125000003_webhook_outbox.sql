-- The webhook outbox: one row per call to make — a transcript's completion webhook
-- (written idempotently before the transcript is recorded settled) or an account's
-- deletion event (written in the transaction that records the tombstones) — retried with
-- backoff. No URL, header or secret is stored here: a completion's target is read from
-- the transcript's text inputs when delivering, a deletion event's from the account.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    account_id       UUID NOT NULL,
    transcript_id    UUID NOT NULL,
    event            TEXT NOT NULL,
    payload          JSONB NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (transcript_id, event)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- An account's deletion webhook: where `transcript.deleted` events go, and the secret
-- they are signed with (HMAC-SHA256, `X-Lethe-Signature`).
ALTER TABLE accounts ADD COLUMN deletion_webhook_url TEXT;
ALTER TABLE accounts ADD COLUMN deletion_webhook_secret TEXT;
