//! What the sweeper and operators read and record through the engine: due artifacts and
//! their deletion in batches, sweep and reconciliation records, the gauges.

use chrono::{DateTime, Utc};

use super::deletion::{self, lag_seconds};
use super::*;
use crate::domain::{ArtifactKind, ArtifactState, ReconcileReport, SweepReport, Tombstone};

/// What deleting one batch of due artifacts did.
#[derive(Debug, Default)]
pub struct DueBatch {
    /// Due artifacts read (at most the batch size; fewer means nothing else is due).
    pub examined: usize,
    /// Claimed artifacts that were past their `delete_by` when claimed.
    pub overdue: u64,
    pub deleted: Vec<Tombstone>,
    pub failed: u64,
    /// Seconds from `delete_after` to deletion, for scheduled deletions.
    pub lags: Vec<f64>,
}

impl Engine {
    /// Reads up to `limit` artifacts due at `now`, claims them under a claim of this pass's
    /// own, and deletes them through the deletion pipeline. An artifact found past its
    /// deadline is logged (an operational incident) and counted.
    pub async fn delete_due(&self, now: DateTime<Utc>, limit: u32) -> Result<DueBatch> {
        let due = self.backends.index.due(now, limit).await?;
        let mut batch = DueBatch {
            examined: due.len(),
            ..Default::default()
        };
        if due.is_empty() {
            return Ok(batch);
        }
        // Each batch is claimed (and its tombstones dated) at its own start, not the pass's:
        // in a long pass, a later batch's deletions happen later and say so.
        let claim = self.new_claim(self.now().max(now), "sweep");
        let claimed = self.backends.index.claim_candidates(&due, &claim).await?;
        for artifact in claimed.iter().filter(|a| a.is_overdue_at(claim.now)) {
            batch.overdue += 1;
            tracing::warn!(
                artifact_id = %artifact.id,
                kind = %artifact.kind,
                delete_by = %artifact.delete_by.unwrap_or(claim.now),
                "artifact overdue: deleted after its deadline"
            );
        }
        let outcome =
            deletion::delete_claimed(&self.backends, &self.metrics, claimed, &claim).await?;
        batch.failed = outcome.failed.len() as u64;
        batch.lags = outcome.deleted.iter().filter_map(lag_seconds).collect();
        batch.deleted = outcome.deleted;
        Ok(batch)
    }

    /// Whether anything is due at `now` (a pass that stopped at its bound says so).
    pub async fn anything_due(&self, now: DateTime<Utc>) -> Result<bool> {
        Ok(!self.backends.index.due(now, 1).await?.is_empty())
    }

    /// The earliest `due_at` not under another's claim, if any.
    pub async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.backends.index.next_due(now).await?)
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
