//! The sweeper: [`Sweeper::run_once`] is one bounded deletion pass that tests call
//! directly; [`Sweeper::run`] is the loop that runs passes on the cron schedule **and** at
//! the next due time, so deletion lags `delete_after` by the time a pass takes, not by a
//! sweep period.
//!
//! A pass: moves transcripts stuck past `max_processing` to `error` (anchoring them), then
//! repeatedly reads a batch of due artifacts, claims it (conditional, so two sweepers
//! never both act), and hands it to [`crate::deletion`]; it stops when nothing is due or
//! its per-pass bound is reached, and records a summary.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::deletion::{self, lag_seconds};
use crate::domain::{new_id, SweepReport};
use crate::lifecycle::{Lethe, LifecycleError};
use crate::storage::StorageError;

#[derive(Clone, Debug)]
pub struct SweeperConfig {
    pub schedule: cron::Schedule,
    /// Artifacts read and claimed per batch.
    pub batch_size: u32,
    /// Artifacts examined per pass at most; the rest wait for the next pass.
    pub max_per_pass: u64,
    /// A transcript still unfinished this long after creation is moved to `error` (§4).
    pub max_processing: Duration,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            schedule: "0 * * * * *"
                .parse()
                .expect("valid built-in cron expression"),
            batch_size: 500,
            max_per_pass: 200_000,
            max_processing: Duration::hours(24),
        }
    }
}

#[derive(Debug)]
pub struct Sweeper {
    lethe: Lethe,
    config: SweeperConfig,
    passes: watch::Sender<u64>,
    last_report: watch::Sender<Option<Arc<SweepReport>>>,
}

impl Sweeper {
    pub fn new(lethe: Lethe, config: SweeperConfig) -> Self {
        Self {
            lethe,
            config,
            passes: watch::Sender::new(0),
            last_report: watch::Sender::new(None),
        }
    }

    /// Counts finished passes; tests wait on it instead of sleeping.
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    pub fn last_report(&self) -> watch::Receiver<Option<Arc<SweepReport>>> {
        self.last_report.subscribe()
    }

    /// One pass at `now`. Never deletes anything before its `delete_after`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<SweepReport, StorageError> {
        let started = std::time::Instant::now();
        let mut report = SweepReport {
            id: new_id(now),
            instance: self.lethe.instance.clone(),
            started_at: now,
            ..Default::default()
        };
        report.stuck_transcripts_errored = self.error_stuck_transcripts(now).await?;

        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            if report.examined >= self.config.max_per_pass {
                report.truncated = !self.lethe.backends.index.due(now, 1).await?.is_empty();
                break;
            }
            let due = self
                .lethe
                .backends
                .index
                .due(now, self.config.batch_size)
                .await?;
            if due.is_empty() {
                break;
            }
            // A short batch was everything due (and not claimed by others) at `now`.
            let last_batch = due.len() < self.config.batch_size as usize;
            report.examined += due.len() as u64;
            let claim = self.lethe.sweep_claim(now);
            let claimed = self
                .lethe
                .backends
                .index
                .claim_candidates(&due, &claim)
                .await?;
            for artifact in claimed.iter().filter(|a| a.is_overdue_at(now)) {
                report.overdue += 1;
                tracing::warn!(
                    artifact_id = %artifact.id,
                    kind = %artifact.kind,
                    delete_by = %artifact.delete_by.unwrap_or(now),
                    "artifact overdue: deleted after its deadline"
                );
            }
            let outcome = deletion::delete_claimed(&self.lethe.backends, claimed, &claim).await?;
            self.lethe
                .metrics
                .record_deletions(&outcome.deleted, outcome.failed.len());
            report.failed += outcome.failed.len() as u64;
            for t in &outcome.deleted {
                *by_reason.entry(t.reason.to_string()).or_default() += 1;
                report.lags.extend(lag_seconds(t));
            }
            report.deleted += outcome.deleted.len() as u64;
            if last_batch {
                break;
            }
        }
        report.deleted_by_reason = by_reason;
        // Wall time of the pass: the clock may be manual, so measure it separately.
        report.finished_at = now + Duration::from_std(started.elapsed()).unwrap_or_default();
        self.lethe.metrics.record_sweep(&report);
        self.lethe.backends.audit.record_sweep(&report).await?;
        if report.deleted > 0 || report.failed > 0 || report.overdue > 0 {
            tracing::info!(
                deleted = report.deleted,
                failed = report.failed,
                overdue = report.overdue,
                stuck_transcripts_errored = report.stuck_transcripts_errored,
                duration_ms = started.elapsed().as_millis() as u64,
                "sweep pass finished"
            );
        }
        Ok(report)
    }

    async fn error_stuck_transcripts(&self, now: DateTime<Utc>) -> Result<u64, StorageError> {
        let cutoff = now - self.config.max_processing;
        let mut errored = 0;
        loop {
            let stuck = self
                .lethe
                .backends
                .index
                .stuck_transcripts(cutoff, self.config.batch_size)
                .await?;
            if stuck.is_empty() {
                return Ok(errored);
            }
            let mut progressed = false;
            for t in stuck {
                match self
                    .lethe
                    .fail(t.id, "transcript exceeded max_processing and was stopped")
                    .await
                {
                    Ok(_) => {
                        errored += 1;
                        progressed = true;
                        tracing::warn!(transcript_id = %t.id, "transcript stuck past max_processing moved to error");
                    }
                    // Finished meanwhile, or raced by another sweeper: nothing to do.
                    Err(LifecycleError::AlreadyFinished { .. } | LifecycleError::Concurrent) => {
                        progressed = true
                    }
                    Err(LifecycleError::Storage(e)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(transcript_id = %t.id, error = %e, "could not move stuck transcript to error")
                    }
                }
            }
            if !progressed {
                return Ok(errored);
            }
        }
    }

    /// When the loop should wake next: the next cron tick or the next due artifact.
    async fn next_wake(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let cron_next = self
            .config
            .schedule
            .after(&now)
            .next()
            .unwrap_or(now + Duration::days(365));
        match self.lethe.backends.index.next_due(now).await {
            Ok(Some(due)) => due.min(cron_next),
            Ok(None) => cron_next,
            Err(error) => {
                tracing::warn!(error = %error, "could not read the next due time; waiting for the cron tick");
                cron_next
            }
        }
    }

    /// Runs passes until `shutdown`; the pass in progress always finishes.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let clock = self.lethe.clock.clone();
        let wake = self.lethe.wake_sweeper.clone();
        let mut idle = false;
        loop {
            let now = clock.now();
            let mut wake_at = self.next_wake(now).await;
            // A pass that achieved nothing must not spin on the same due time.
            if idle {
                wake_at = wake_at.max(now + Duration::seconds(1));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // An earlier deadline may have appeared: recompute the wake time.
                _ = wake.notified() => continue,
                _ = clock.sleep_until(wake_at) => {}
            }
            match self.run_once(clock.now()).await {
                Ok(report) => {
                    idle = report.deleted == 0 && report.stuck_transcripts_errored == 0;
                    self.last_report.send_replace(Some(Arc::new(report)));
                }
                Err(error) => {
                    idle = true;
                    tracing::error!(error = %error, "sweep pass failed; the next one retries");
                }
            }
            self.passes.send_modify(|n| *n += 1);
        }
        tracing::info!("sweeper stopped");
    }
}
