-- Usage metadata of LLM Gateway requests and streaming sessions (retention.md §2, §6):
-- kept for billing in every mode, also when zero data retention drops the content.
CREATE TABLE usage_records (
    id            TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    model         TEXT NOT NULL,
    provider      TEXT,
    transcript_id TEXT,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER NOT NULL,
    artifact_id   TEXT,
    recorded_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX usage_by_account ON usage_records (account_id, id);

-- Sparse: only live, eligible artifacts with no deletion pending. The training export
-- pages through it by id, and an artifact leaves it the moment a deletion is requested.
CREATE INDEX artifacts_training ON artifacts (id)
    WHERE training_eligible = 1 AND state = 'live' AND pending_reason IS NULL;
