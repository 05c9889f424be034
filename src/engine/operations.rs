//! What the sweeper and operators read and record through the engine: due artifacts and
//! their deletion in batches, sweep and reconciliation records, the gauges.

use chrono::{DateTime, Duration, Utc};

use super::deletion::{self, lag_seconds};
use super::*;
use crate::domain::{
    ArtifactId, ArtifactKind, ArtifactState, ReconcileReport, SweepReport, Tombstone,
};
use std::collections::{HashMap, HashSet};

/// A batch of due artifacts, read and claimed, not yet deleted.
#[derive(Debug)]
pub struct ClaimedBatch {
    /// Rows the due read returned (fewer than asked for means nothing else is due).
    pub read: usize,
    /// Due artifacts this batch took up (read, less those of batches still in flight and
    /// a trailing group cut off for the next batch).
    pub examined: usize,
    claimed: Vec<Artifact>,
    claim: crate::storage::Claim,
}

impl ClaimedBatch {
    /// The artifacts this batch holds a claim on.
    pub fn ids(&self) -> Vec<ArtifactId> {
        self.claimed.iter().map(|a| a.id).collect()
    }
}

/// What deleting one batch of due artifacts did (what its claim found is in
/// [`ClaimedBatch`]).
#[derive(Debug, Default)]
pub struct DueBatch {
    pub deleted: Vec<Tombstone>,
    pub failed: u64,
    /// Deleted after their `delete_by`: each is logged as an incident. A claimed artifact
    /// a legal hold parks is not deleted, so not counted, however often a pass meets it.
    pub overdue: u64,
    /// Seconds from `delete_after` to deletion, for scheduled deletions.
    pub lags: Vec<f64>,
}

impl Engine {
    /// Reads up to `limit` artifacts due at `now` and claims them under a claim of its
    /// own (dated at its own start, not the pass's). The next batch can be read and
    /// claimed while this one is deleted by [`Engine::delete_claimed_batch`]:
    /// - `in_flight` are the artifacts of batches still being deleted. A due index that is
    ///   eventually consistent (DynamoDB's) may still list them; they are skipped, not
    ///   claimed again nor counted.
    /// - A full read ends at a group of artifacts due at one instant that may go on past
    ///   it: that group is left to the next batch, unless it is the whole read. Linked
    ///   artifacts share their final transcript's `due_at`, so where the index reads in
    ///   `due_at` order (SQLite) a transcript is not split between two batches deleted at
    ///   once (see [`deletion`] for what happens when it is).
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        in_flight: &HashSet<ArtifactId>,
    ) -> Result<ClaimedBatch> {
        let mut due = self.backends.index.due(now, limit).await?;
        let read = due.len();
        let claim = self.new_claim(self.now().max(now), "sweep");
        if read == limit as usize {
            if let Some(last) = due.last().and_then(|a| a.due_at) {
                let group = due
                    .iter()
                    .rev()
                    .take_while(|a| a.due_at == Some(last))
                    .count();
                if group < read {
                    due.truncate(read - group);
                }
            }
        }
        due.retain(|a| !in_flight.contains(&a.id));
        let examined = due.len();
        if due.is_empty() {
            return Ok(ClaimedBatch {
                read,
                examined,
                claimed: Vec::new(),
                claim,
            });
        }
        let claimed = self.backends.index.claim_candidates(&due, &claim).await?;
        Ok(ClaimedBatch {
            read,
            examined,
            claimed,
            claim,
        })
    }

    /// Deletes a batch [`Engine::claim_due`] claimed, through the deletion pipeline. An
    /// artifact deleted past its deadline is logged (an operational incident) and counted.
    pub async fn delete_claimed_batch(&self, batch: ClaimedBatch) -> Result<DueBatch> {
        let ClaimedBatch { claimed, claim, .. } = batch;
        let mut done = DueBatch::default();
        if claimed.is_empty() {
            return Ok(done);
        }
        let late: HashMap<ArtifactId, (ArtifactKind, DateTime<Utc>)> = claimed
            .iter()
            .filter(|a| a.is_overdue_at(claim.now))
            .filter_map(|a| Some((a.id, (a.kind, a.delete_by?))))
            .collect();
        let outcome =
            deletion::delete_claimed(&self.backends, &self.metrics, claimed, &claim).await?;
        done.failed = outcome.failed.len() as u64;
        // A deletion that fails past the deadline is counted as failed, and logged as
        // overdue: the miss is reported as soon as it is known, not when it is mended.
        for (id, (kind, delete_by)) in outcome
            .failed
            .iter()
            .filter_map(|(id, _)| late.get(id).map(|late| (id, late)))
        {
            tracing::warn!(
                artifact_id = %id,
                kind = %kind,
                %delete_by,
                "artifact overdue: its deletion failed after its deadline"
            );
        }
        for late in outcome
            .deleted
            .iter()
            .filter(|t| t.delete_by.is_some_and(|by| t.deleted_at > by))
        {
            done.overdue += 1;
            tracing::warn!(
                artifact_id = %late.artifact_id,
                kind = %late.kind,
                delete_by = %late.delete_by.unwrap_or(late.deleted_at),
                "artifact overdue: deleted after its deadline"
            );
        }
        done.lags = outcome.deleted.iter().filter_map(lag_seconds).collect();
        done.deleted = outcome.deleted;
        Ok(done)
    }

    /// Whether anything is due at `now` (a pass that stopped at its bound says so).
    pub async fn anything_due(&self, now: DateTime<Utc>) -> Result<bool> {
        Ok(!self.backends.index.due(now, 1).await?.is_empty())
    }

    /// The earliest `due_at` not under another's claim, if any.
    pub async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.backends.index.next_due(now).await?)
    }

    /// Whether a retention change is still to be carried to existing artifacts (a pass
    /// does it: until then reads are redacted, but nothing is deleted).
    pub async fn has_retention_jobs(&self) -> Result<bool> {
        Ok(!self
            .backends
            .accounts
            .accounts_with_retention_jobs(1)
            .await?
            .is_empty())
    }

    /// How long a deletion claim holds: a claim left by a crashed instance is due again
    /// at most this long after it was taken.
    pub fn claim_lease(&self) -> Duration {
        self.claim_lease
    }

    /// Records a pass (when it starts, and again when it ends).
    pub async fn record_sweep(&self, report: &SweepReport) -> Result<()> {
        Ok(self.backends.audit.record_sweep(report).await?)
    }

    /// One pass by id.
    pub async fn sweep(&self, id: uuid::Uuid) -> Result<Option<SweepReport>> {
        Ok(self.backends.audit.sweep(id).await?)
    }

    /// The most recent passes, newest first.
    pub async fn recent_sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        Ok(self.backends.audit.recent_sweeps(limit).await?)
    }

    /// The most recent reconciliations, newest first.
    pub async fn recent_reconciliations(&self, limit: u32) -> Result<Vec<ReconcileReport>> {
        Ok(self.backends.audit.recent_reconciliations(limit).await?)
    }

    /// Refreshes the tracked-artifact and overdue gauges from the index.
    pub async fn refresh_gauges(&self) -> Result<()> {
        let counts: Vec<(ArtifactKind, ArtifactState, u64)> =
            self.backends.index.count_by_kind_and_state().await?;
        let overdue = self.overdue(10_000).await?.len();
        self.metrics.set_tracked(&counts, overdue);
        Ok(())
    }

    /// Writes what a backend buffers in memory (DynamoDB's counters): before exiting.
    pub async fn flush(&self) {
        self.backends.index.flush().await;
    }
}
