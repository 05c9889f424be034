//! Prometheus metrics. Event counters (deletions, overdue, sweep durations, deletion lag)
//! are updated as things happen; gauges of tracked artifacts and overdue ones are read
//! from the index when scraped.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::{
    ArtifactKind, ArtifactState, ReconcileReport, SweepReport, SweepState, Tombstone,
};
use crate::engine::deletion::lag_seconds;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ArtifactLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    deletions: Family<ReasonLabel, Counter>,
    overdue_deletions: Counter,
    failed_deletions: Counter,
    sweep_duration: Histogram,
    deletion_lag: Histogram,
    sweeps: Counter,
    failed_sweeps: Counter,
    tracked: Family<ArtifactLabels, Gauge>,
    overdue_now: Gauge,
    reconcile_findings: Family<FindingLabel, Gauge>,
    reconciliations: Counter,
    reconcile_repaired: Counter,
    http_responses: Family<StatusLabel, Counter>,
    /// Every deletion recorded, all reasons: `lethe_deletions_total` summed, readable
    /// without encoding the exposition (a benchmark polls it every few milliseconds).
    deleted: AtomicU64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `2xx`, `4xx`, `5xx`...
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabel {
    pub kind: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lethe");
        let deletions = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "deletions",
            "Artifacts deleted, by reason",
            deletions.clone(),
        );
        let overdue_deletions = Counter::default();
        registry.register(
            "overdue_deletions",
            "Artifacts a sweep found past their delete_by",
            overdue_deletions.clone(),
        );
        let failed_deletions = Counter::default();
        registry.register(
            "failed_deletions",
            "Artifact deletions that failed and were left for a retry",
            failed_deletions.clone(),
        );
        let sweep_duration = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "sweep_duration_seconds",
            "Duration of sweep passes",
            sweep_duration.clone(),
        );
        let deletion_lag = Histogram::new(exponential_buckets(0.0005, 2.0, 26));
        registry.register(
            "deletion_lag_seconds",
            "Time from delete_after to deletion, for scheduled deletions",
            deletion_lag.clone(),
        );
        let sweeps = Counter::default();
        registry.register(
            "sweeps",
            "Sweep passes run by this instance",
            sweeps.clone(),
        );
        let failed_sweeps = Counter::default();
        registry.register(
            "failed_sweeps",
            "Sweep passes an error stopped before they were done (counted in sweeps too)",
            failed_sweeps.clone(),
        );
        let tracked = Family::<ArtifactLabels, Gauge>::default();
        registry.register(
            "tracked_artifacts",
            "Tracked artifacts by kind and state",
            tracked.clone(),
        );
        let overdue_now = Gauge::default();
        registry.register(
            "overdue_artifacts",
            "Artifacts past delete_by and not deleted (capped at 10000)",
            overdue_now.clone(),
        );
        let reconcile_findings = Family::<FindingLabel, Gauge>::default();
        registry.register(
            "reconcile_findings",
            "What the last reconciliation run found, by kind",
            reconcile_findings.clone(),
        );
        let reconciliations = Counter::default();
        registry.register(
            "reconciliations",
            "Reconciliation runs by this instance",
            reconciliations.clone(),
        );
        let reconcile_repaired = Counter::default();
        registry.register(
            "reconcile_repaired",
            "Findings reconciliation repaired",
            reconcile_repaired.clone(),
        );
        let http_responses = Family::<StatusLabel, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses by status class",
            http_responses.clone(),
        );
        Self {
            registry,
            http_responses,
            reconcile_findings,
            reconciliations,
            reconcile_repaired,
            deletions,
            overdue_deletions,
            failed_deletions,
            sweep_duration,
            deletion_lag,
            sweeps,
            failed_sweeps,
            tracked,
            overdue_now,
            deleted: AtomicU64::new(0),
        }
    }

    pub fn record_deletions(&self, tombstones: &[Tombstone], failed: usize) {
        // One counter update per reason, not per tombstone: a batch is mostly one reason.
        let mut by_reason: Vec<(crate::domain::DeletionReason, u64)> = Vec::new();
        for t in tombstones {
            match by_reason.iter_mut().find(|(reason, _)| *reason == t.reason) {
                Some((_, n)) => *n += 1,
                None => by_reason.push((t.reason, 1)),
            }
            if let Some(lag) = lag_seconds(t) {
                self.deletion_lag.observe(lag.max(0.0));
            }
        }
        for (reason, n) in by_reason {
            self.deletions
                .get_or_create(&ReasonLabel {
                    reason: reason.to_string(),
                })
                .inc_by(n);
        }
        self.deleted
            .fetch_add(tombstones.len() as u64, Ordering::Relaxed);
        self.failed_deletions.inc_by(failed as u64);
    }

    /// Deletions recorded so far, all reasons (the sum of `lethe_deletions_total`).
    pub fn deletions_total(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    pub fn record_sweep(&self, report: &SweepReport) {
        self.sweeps.inc();
        if report.state == SweepState::Failed {
            self.failed_sweeps.inc();
        }
        self.overdue_deletions.inc_by(report.overdue);
        let seconds = report.duration().num_microseconds().unwrap_or(0) as f64 / 1e6;
        self.sweep_duration.observe(seconds.max(0.0));
    }

    /// One HTTP response.
    pub fn record_response(&self, status: u16) {
        self.http_responses
            .get_or_create(&StatusLabel {
                class: format!("{}xx", status / 100),
            })
            .inc();
    }

    /// What a reconciliation found: the findings gauges show the last run.
    pub fn record_reconciliation(&self, report: &ReconcileReport) {
        self.reconciliations.inc();
        self.reconcile_repaired.inc_by(report.repaired);
        for (kind, n) in [
            ("overdue_not_deleted", report.overdue_not_deleted),
            ("orphan_objects", report.orphan_objects),
            ("missing_content", report.missing_content),
            ("keys_without_scope", report.keys_without_scope),
            ("erasures_reapplied", report.erasures_reapplied),
        ] {
            self.reconcile_findings
                .get_or_create(&FindingLabel { kind: kind.into() })
                .set(n as i64);
        }
    }

    /// Sets the gauges read from the index at scrape time.
    pub fn set_tracked(&self, counts: &[(ArtifactKind, ArtifactState, u64)], overdue: usize) {
        for kind in ArtifactKind::ALL {
            for state in ArtifactState::ALL {
                let n = counts
                    .iter()
                    .find(|(k, s, _)| k == kind && s == state)
                    .map_or(0, |(_, _, n)| *n);
                self.tracked
                    .get_or_create(&ArtifactLabels {
                        kind: kind.to_string(),
                        state: state.to_string(),
                    })
                    .set(n as i64);
            }
        }
        self.overdue_now.set(overdue as i64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeletionReason;

    fn tombstone(reason: DeletionReason) -> Tombstone {
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a valid instant");
        Tombstone {
            artifact_id: uuid::Uuid::new_v4(),
            account_id: uuid::Uuid::new_v4(),
            transcript_id: None,
            kind: ArtifactKind::UploadedAudio,
            size_bytes: 1,
            anchor_at: Some(now),
            delete_after: Some(now - chrono::Duration::seconds(2)),
            delete_by: None,
            deleted_at: now,
            reason,
            deleted_by: "test".into(),
        }
    }

    /// The value of a sample line of the exposition, or 0 when it is absent or not a number.
    fn sample(text: &str, name_and_labels: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    #[test]
    fn deletions_are_counted_per_reason_and_in_total() {
        let metrics = Metrics::new();
        let mut batch: Vec<Tombstone> = (0..3).map(|_| tombstone(DeletionReason::Ttl)).collect();
        batch.push(tombstone(DeletionReason::CustomerRequest));
        batch.push(tombstone(DeletionReason::Ttl));
        metrics.record_deletions(&batch, 2);
        metrics.record_deletions(&[tombstone(DeletionReason::CustomerRequest)], 0);

        let text = metrics.encode();
        assert_eq!(sample(&text, "lethe_deletions_total{reason=\"ttl\"}"), 4.0);
        assert_eq!(
            sample(&text, "lethe_deletions_total{reason=\"customer_request\"}"),
            2.0
        );
        assert_eq!(sample(&text, "lethe_failed_deletions_total"), 2.0);
        // Only the scheduled deletions have a lag.
        assert_eq!(sample(&text, "lethe_deletion_lag_seconds_count"), 4.0);
        assert_eq!(metrics.deletions_total(), 6);
    }
}
