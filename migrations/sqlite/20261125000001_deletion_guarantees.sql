-- Deletion guarantees (retroactive changes as durable jobs, one final transcript per
-- transcript, sweeps recorded while they run).

-- Every policy version of the account (JSON list, oldest first) and the retention change
-- still being carried to existing artifacts (JSON, NULL when none): written in the same
-- UPDATE as the settings, so a crash or a timeout never loses a shortening.
ALTER TABLE accounts ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
ALTER TABLE accounts ADD COLUMN retention_job TEXT;
CREATE INDEX accounts_with_retention_job ON accounts (id) WHERE retention_job IS NOT NULL;

-- The final transcript that won the race to finish the transcript.
ALTER TABLE transcripts ADD COLUMN final_artifact_id TEXT;
UPDATE transcripts SET final_artifact_id = (
    SELECT a.id FROM artifacts a
    WHERE a.transcript_id = transcripts.id AND a.kind = 'final_transcript'
    ORDER BY a.id LIMIT 1
);

-- A pass is recorded when it starts (`running`) and again when it ends (`finished`).
ALTER TABLE sweeps ADD COLUMN state TEXT NOT NULL DEFAULT 'finished';
ALTER TABLE sweeps ADD COLUMN rescheduled INTEGER NOT NULL DEFAULT 0;

-- Reconciliation re-applies each account's erasure record, tombstone by tombstone.
CREATE INDEX tombstones_by_account ON tombstones (account_id, artifact_id);

-- Reconciliation runs (`lethe reconcile`, and daily from the sweeper loop).
CREATE TABLE reconciliations (
    id                   TEXT PRIMARY KEY NOT NULL,
    instance             TEXT NOT NULL,
    started_at           INTEGER NOT NULL,
    finished_at          INTEGER NOT NULL,
    report               TEXT NOT NULL
) STRICT;
CREATE INDEX reconciliations_recent ON reconciliations (started_at);

-- A transcript is "settled" once every artifact of it has the deadlines its anchor gives
-- (set in the same write that makes it terminal: false; true once applied). A crash in
-- between leaves it unsettled, and the next sweep settles it.
ALTER TABLE transcripts ADD COLUMN settled INTEGER NOT NULL DEFAULT 1;
CREATE INDEX transcripts_unsettled ON transcripts (completed_at) WHERE settled = 0;

-- The policy version an artifact was created under (policy_version is the one it is
-- scheduled under, which a retention change moves): the retroactive rule measures every
-- version since creation.
ALTER TABLE artifacts ADD COLUMN created_version INTEGER;
UPDATE artifacts SET created_version = policy_version;

-- The training export mutes, in an upload's audio, the words redacted in the transcripts
-- made from it.
CREATE INDEX transcripts_by_upload ON transcripts (upload_id) WHERE upload_id IS NOT NULL;
