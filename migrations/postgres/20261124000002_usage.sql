-- Usage metadata of LLM Gateway requests and streaming sessions (retention.md §2, §6):
-- kept for billing in every mode, also when zero data retention drops the content.
CREATE TABLE usage_records (
    id            UUID PRIMARY KEY,
    account_id    UUID NOT NULL,
    kind          TEXT NOT NULL,
    model         TEXT NOT NULL,
    provider      TEXT,
    transcript_id UUID,
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ NOT NULL,
    artifact_id   UUID,
    recorded_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_by_account ON usage_records (account_id, id);
