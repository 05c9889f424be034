-- Deletion guarantees (retroactive changes as durable jobs, sweeps recorded while they run).

-- Every policy version of the account (oldest first) and the retention change still being
-- carried to existing artifacts (NULL when none): written in the same UPDATE as the
-- settings, so a crash or a timeout never loses a shortening.
ALTER TABLE accounts ADD COLUMN history JSONB NOT NULL DEFAULT '[]';
ALTER TABLE accounts ADD COLUMN retention_job JSONB;
CREATE INDEX accounts_with_retention_job ON accounts (id) WHERE retention_job IS NOT NULL;

-- A pass is recorded when it starts (`running`) and again when it ends (`finished`).
ALTER TABLE sweeps ADD COLUMN state TEXT NOT NULL DEFAULT 'finished';
ALTER TABLE sweeps ADD COLUMN rescheduled BIGINT NOT NULL DEFAULT 0;

-- Reconciliation re-applies each account's erasure record, tombstone by tombstone.
CREATE INDEX tombstones_by_account ON tombstones (account_id, artifact_id);

-- Reconciliation runs (`lethe reconcile`, and daily from the sweeper loop).
CREATE TABLE reconciliations (
    id          UUID PRIMARY KEY,
    instance    TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    report      JSONB NOT NULL
);
CREATE INDEX reconciliations_recent ON reconciliations (started_at);
