-- Lethe's PostgreSQL schema (AWS profile): accounts, API-key hashes, tombstones (the
-- deletion audit trail) and sweep records. Artifacts are tracked in DynamoDB.

CREATE TABLE accounts (
    id                      UUID PRIMARY KEY,
    name                    TEXT NOT NULL,
    transcript_ttl_seconds  BIGINT,
    upload_ttl_seconds      BIGINT NOT NULL,
    baa                     BOOLEAN NOT NULL,
    region                  TEXT NOT NULL,
    model_training_opt_out  BOOLEAN NOT NULL,
    zero_data_retention     BOOLEAN NOT NULL,
    policy_version          BIGINT NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts (id),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE tombstones (
    artifact_id    UUID PRIMARY KEY,
    account_id     UUID NOT NULL,
    transcript_id  UUID,
    kind           TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    anchor_at      TIMESTAMPTZ,
    delete_after   TIMESTAMPTZ,
    delete_by      TIMESTAMPTZ,
    deleted_at     TIMESTAMPTZ NOT NULL,
    reason         TEXT NOT NULL,
    deleted_by     TEXT NOT NULL
);
CREATE INDEX tombstones_by_transcript ON tombstones (transcript_id);

CREATE TABLE sweeps (
    id                        UUID PRIMARY KEY,
    instance                  TEXT NOT NULL,
    started_at                TIMESTAMPTZ NOT NULL,
    finished_at               TIMESTAMPTZ NOT NULL,
    examined                  BIGINT NOT NULL,
    deleted                   BIGINT NOT NULL,
    deleted_by_reason         JSONB NOT NULL,
    failed                    BIGINT NOT NULL,
    overdue                   BIGINT NOT NULL,
    stuck_transcripts_errored BIGINT NOT NULL,
    truncated                 BOOLEAN NOT NULL
);
CREATE INDEX sweeps_recent ON sweeps (started_at);
