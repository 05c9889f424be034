//! Read-only queries behind the retention dashboard ([`crate::http::dashboard`]): an
//! account's upcoming deletions over the next hours by artifact kind, its recent deletions
//! (tombstones) and their lag, and the operators' view of the platform — overdue artifacts,
//! legal holds, retention changes in progress, sweeps and the deletion lag. Nothing here
//! writes; every read goes through the ports, paged and bounded.

use std::collections::{BTreeSet, HashMap};

use super::deletion::lag_seconds;
use super::*;
use crate::domain::{
    AccountId, ArtifactId, ArtifactKind, LegalHold, SweepReport, Tombstone, TranscriptId,
    HOLD_OWNER,
};

/// Live artifacts read per page by a timeline.
const TIMELINE_PAGE: u32 = 1000;
/// A timeline examines at most this many live artifacts of an account (it says when it
/// stopped there).
pub const TIMELINE_MAX_EXAMINED: u64 = 100_000;
/// Tombstones read per page for the recent deletions.
const TOMBSTONE_PAGE: u32 = 1000;
/// The recent deletions are found among at most this many tombstones of an account (the
/// audit port lists them by artifact id, not by deletion time).
pub const DELETIONS_MAX_EXAMINED: u64 = 100_000;
/// Accounts read per page by the operators' account list.
pub const ACCOUNTS_PAGE_MAX: u32 = 500;

/// One artifact the timeline expects to be deleted soon.
#[derive(Clone, Debug, PartialEq)]
pub struct UpcomingDeletion {
    pub artifact_id: ArtifactId,
    pub transcript_id: Option<TranscriptId>,
    pub kind: ArtifactKind,
    /// When its deletion may begin (as reads apply it: every policy version since it was
    /// scheduled, and its transcript's schedule when it is linked).
    pub delete_after: DateTime<Utc>,
    pub delete_by: Option<DateTime<Utc>>,
}

/// Deletions whose `delete_after` falls in `[start, end)`, counted by artifact kind.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// One count per [`ArtifactKind::ALL`], in that order.
    pub counts: Vec<u64>,
}

impl TimelineBucket {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// An account's live artifacts by when they will be deleted, from now over the horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct DeletionTimeline {
    pub now: DateTime<Utc>,
    pub buckets: Vec<TimelineBucket>,
    /// Past `delete_after`, or a deletion already requested: the next pass deletes them.
    pub due_now: u64,
    /// Under an active legal hold: not deleted while the hold lasts.
    pub held: u64,
    /// Scheduled after the horizon.
    pub later: u64,
    /// No deletion time yet: indefinite retention, or a transcript still being processed.
    pub unscheduled: u64,
    /// The soonest deletions within the horizon, soonest first.
    pub soonest: Vec<UpcomingDeletion>,
    /// Live artifacts examined.
    pub examined: u64,
    /// True when the walk stopped at [`TIMELINE_MAX_EXAMINED`].
    pub truncated: bool,
}

impl DeletionTimeline {
    /// The end of the horizon.
    pub fn end(&self) -> DateTime<Utc> {
        self.buckets.last().map_or(self.now, |b| b.end)
    }

    /// Deletions within the horizon, by kind ([`ArtifactKind::ALL`] order).
    pub fn kind_totals(&self) -> Vec<u64> {
        let mut totals = vec![0; ArtifactKind::ALL.len()];
        for bucket in &self.buckets {
            for (total, n) in totals.iter_mut().zip(&bucket.counts) {
                *total += n;
            }
        }
        totals
    }

    pub fn total(&self) -> u64 {
        self.buckets.iter().map(TimelineBucket::total).sum()
    }
}

/// Percentiles of deletion lags (seconds from `delete_after` to deletion), nearest rank.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LagSummary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Exact percentiles of `lags` (nearest rank); `None` when there are none.
pub fn lag_summary(lags: &[f64]) -> Option<LagSummary> {
    let mut sorted: Vec<f64> = lags.iter().copied().filter(|l| l.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Some(LagSummary {
        count: sorted.len(),
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: sorted[sorted.len() - 1],
    })
}

/// An account's most recent deletions.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentDeletions {
    /// Newest deletion first.
    pub tombstones: Vec<Tombstone>,
    /// Tombstones of the account examined.
    pub examined: u64,
    /// True when the walk stopped at [`DELETIONS_MAX_EXAMINED`].
    pub truncated: bool,
    /// The lag of the scheduled deletions (`ttl`, `window`) among those examined.
    pub lag: Option<LagSummary>,
}

/// Percentiles read from a histogram: each is the upper bound of the bucket it falls in
/// (`None`: above the largest finite bound).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistogramLag {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// What operators watch.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationsView {
    pub now: DateTime<Utc>,
    /// Past `delete_by` and not deleted, earliest deadline first.
    pub overdue: Vec<Artifact>,
    /// More are overdue than listed.
    pub overdue_more: bool,
    /// Active legal holds of every account, by id.
    pub holds: Vec<LegalHold>,
    pub holds_more: bool,
    /// Accounts whose retention change is still being carried to existing artifacts.
    pub retention_changes: Vec<Account>,
    /// The most recent sweep passes, newest first.
    pub sweeps: Vec<SweepReport>,
    /// This process's deletion lag histogram (`lethe_deletion_lag_seconds`).
    pub lag_histogram: Option<HistogramLag>,
}

impl Engine {
    /// The account's live artifacts by when they will be deleted: `buckets` buckets of
    /// `bucket` each from now, by kind, plus what is due now, held, later or unscheduled,
    /// and the `list` soonest deletions. Schedules are read as reads apply them (every
    /// policy version since each artifact was scheduled; linked artifacts carry their
    /// transcript's).
    pub async fn deletion_timeline(
        &self,
        account: &Account,
        bucket: Duration,
        buckets: usize,
        list: usize,
    ) -> Result<DeletionTimeline> {
        if bucket <= Duration::zero() || buckets == 0 {
            return Err(EngineError::Invalid(
                "a timeline needs at least one bucket of a positive length".into(),
            ));
        }
        let now = self.now();
        let mut timeline = DeletionTimeline {
            now,
            buckets: (0..buckets)
                .map(|i| TimelineBucket {
                    start: now + bucket * i as i32,
                    end: now + bucket * (i as i32 + 1),
                    counts: vec![0; ArtifactKind::ALL.len()],
                })
                .collect(),
            due_now: 0,
            held: 0,
            later: 0,
            unscheduled: 0,
            soonest: Vec::new(),
            examined: 0,
            truncated: false,
        };
        let horizon = timeline.end();
        let active_holds: Vec<&LegalHold> = account
            .holds
            .iter()
            .filter(|h| h.released_at.is_none())
            .collect();
        // An upload is held with any held transcript made from it: one read per hold.
        let mut held_uploads: BTreeSet<ArtifactId> = BTreeSet::new();
        for id in active_holds.iter().filter_map(|h| h.transcript_id) {
            if let Some(upload) = self
                .backends
                .index
                .transcript(id)
                .await?
                .and_then(|t| t.upload_id)
            {
                held_uploads.insert(upload);
            }
        }
        let mut after: Option<ArtifactId> = None;
        loop {
            let page = self
                .backends
                .index
                .live_artifacts_for_account(account.id, after, TIMELINE_PAGE)
                .await?;
            after = page.last().map(|a| a.id);
            let ids: Vec<TranscriptId> = page
                .iter()
                .filter_map(|a| a.transcript_id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let transcripts: HashMap<TranscriptId, Transcript> = self
                .backends
                .index
                .transcripts(&ids)
                .await?
                .into_iter()
                .map(|t| (t.id, self.effective_transcript(t, account)))
                .collect();
            for artifact in &page {
                if artifact.state == ArtifactState::Deleted {
                    continue;
                }
                timeline.examined += 1;
                let transcript = artifact.transcript_id.and_then(|id| transcripts.get(&id));
                let covering: Vec<TranscriptId> = artifact.transcript_id.into_iter().collect();
                let held = artifact.claimed_by.as_deref() == Some(HOLD_OWNER)
                    || held_uploads.contains(&artifact.id)
                    || active_holds.iter().any(|h| h.covers(account.id, &covering));
                if held {
                    timeline.held += 1;
                    continue;
                }
                let linked_gone = artifact.kind.always_linked()
                    && transcript.is_some_and(|t| t.deletion.is_some());
                if artifact.pending_reason.is_some()
                    || artifact.state == ArtifactState::Deleting
                    || linked_gone
                {
                    timeline.due_now += 1;
                    continue;
                }
                let effective = self.effective_artifact(artifact.clone(), transcript, account);
                let (delete_after, delete_by) = match effective.schedule {
                    ScheduleKind::Linked if effective.delete_after.is_none() => {
                        transcript.map_or((None, None), |t| (t.delete_after, t.delete_by))
                    }
                    _ => (effective.delete_after, effective.delete_by),
                };
                match delete_after {
                    None => timeline.unscheduled += 1,
                    Some(at) if at <= now => timeline.due_now += 1,
                    Some(at) if at >= horizon => timeline.later += 1,
                    Some(at) => {
                        let index = ((at - now).num_milliseconds() / bucket.num_milliseconds())
                            .clamp(0, buckets as i64 - 1)
                            as usize;
                        let kind = kind_index(artifact.kind);
                        timeline.buckets[index].counts[kind] += 1;
                        timeline.soonest.push(UpcomingDeletion {
                            artifact_id: artifact.id,
                            transcript_id: artifact.transcript_id,
                            kind: artifact.kind,
                            delete_after: at,
                            delete_by,
                        });
                    }
                }
            }
            timeline
                .soonest
                .sort_by_key(|d| (d.delete_after, d.artifact_id));
            timeline.soonest.truncate(list);
            if page.len() < TIMELINE_PAGE as usize {
                break;
            }
            if timeline.examined >= TIMELINE_MAX_EXAMINED {
                timeline.truncated = true;
                break;
            }
        }
        Ok(timeline)
    }

    /// The account's `limit` most recent deletions, newest first, with the lag of its
    /// scheduled deletions; found among at most [`DELETIONS_MAX_EXAMINED`] tombstones.
    pub async fn recent_deletions(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<RecentDeletions> {
        let mut recent: Vec<Tombstone> = Vec::new();
        let mut lags = Vec::new();
        let mut examined = 0u64;
        let mut truncated = false;
        let mut after: Option<ArtifactId> = None;
        loop {
            let page = self
                .backends
                .audit
                .tombstones(account, after, TOMBSTONE_PAGE)
                .await?;
            after = page.last().map(|t| t.artifact_id);
            examined += page.len() as u64;
            let full = page.len() == TOMBSTONE_PAGE as usize;
            for tombstone in page {
                if tombstone.account_id != account {
                    continue;
                }
                lags.extend(lag_seconds(&tombstone));
                recent.push(tombstone);
            }
            recent.sort_by_key(|t| std::cmp::Reverse((t.deleted_at, t.artifact_id)));
            recent.truncate(limit);
            if !full {
                break;
            }
            if examined >= DELETIONS_MAX_EXAMINED {
                truncated = true;
                break;
            }
        }
        Ok(RecentDeletions {
            tombstones: recent,
            examined,
            truncated,
            lag: lag_summary(&lags),
        })
    }

    /// Accounts by id after `after`, at most `limit` (the operators' account list).
    pub async fn accounts_page(
        &self,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<Vec<Account>> {
        Ok(self
            .backends
            .accounts
            .accounts(after, limit.clamp(1, ACCOUNTS_PAGE_MAX))
            .await?)
    }

    /// The operators' view: up to `limit` overdue artifacts, active holds and accounts
    /// with a retention change in progress; the `sweeps` most recent passes; this
    /// process's deletion lag histogram.
    pub async fn operations_view(&self, limit: u32, sweeps: u32) -> Result<OperationsView> {
        let limit = limit.max(1);
        let mut overdue = self.overdue(limit + 1).await?;
        let overdue_more = overdue.len() > limit as usize;
        overdue.truncate(limit as usize);
        let mut holds = self.holds(None, false, None, limit + 1).await?;
        let holds_more = holds.len() > limit as usize;
        holds.truncate(limit as usize);
        let retention_changes = self
            .backends
            .accounts
            .accounts_with_retention_jobs(limit)
            .await?;
        Ok(OperationsView {
            now: self.now(),
            overdue,
            overdue_more,
            holds,
            holds_more,
            retention_changes,
            sweeps: self.recent_sweeps(sweeps).await?,
            lag_histogram: histogram_lag(&self.metrics.encode(), "lethe_deletion_lag_seconds"),
        })
    }
}

/// The position of `kind` in [`ArtifactKind::ALL`].
pub fn kind_index(kind: ArtifactKind) -> usize {
    ArtifactKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

/// Reads the percentiles of histogram `name` from Prometheus text: its cumulative
/// `_bucket{le="..."}` lines; `None` when it has no observation.
pub fn histogram_lag(text: &str, name: &str) -> Option<HistogramLag> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, rest) = rest.split_once("\"}")?;
            let count = rest.split_whitespace().next()?.parse::<u64>().ok()?;
            let bound = match bound {
                "+Inf" => f64::INFINITY,
                b => b.parse::<f64>().ok()?,
            };
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = buckets.last()?.1;
    if count == 0 {
        return None;
    }
    let at = |q: f64| {
        let wanted = ((q * count as f64).ceil() as u64).max(1);
        buckets
            .iter()
            .find(|(_, n)| *n >= wanted)
            .map(|(bound, _)| *bound)
            .filter(|b| b.is_finite())
    };
    Some(HistogramLag {
        count,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_are_nearest_rank() {
        assert_eq!(lag_summary(&[]), None);
        let lags: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = lag_summary(&lags).expect("some");
        assert_eq!(
            (s.count, s.p50, s.p90, s.p99, s.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let s = lag_summary(&[7.0]).expect("some");
        assert_eq!((s.p50, s.p99, s.max), (7.0, 7.0, 7.0));
    }

    #[test]
    fn histogram_percentiles_are_bucket_bounds() {
        let text = "# TYPE lethe_deletion_lag_seconds histogram\n\
            lethe_deletion_lag_seconds_sum 10.0\n\
            lethe_deletion_lag_seconds_count 10\n\
            lethe_deletion_lag_seconds_bucket{le=\"1.0\"} 5\n\
            lethe_deletion_lag_seconds_bucket{le=\"2.0\"} 9\n\
            lethe_deletion_lag_seconds_bucket{le=\"+Inf\"} 10\n";
        let h = histogram_lag(text, "lethe_deletion_lag_seconds").expect("some");
        assert_eq!(
            (h.count, h.p50, h.p90, h.p99),
            (10, Some(1.0), Some(2.0), None)
        );
        let empty = "lethe_deletion_lag_seconds_bucket{le=\"+Inf\"} 0\n";
        assert_eq!(histogram_lag(empty, "lethe_deletion_lag_seconds"), None);
    }
}
