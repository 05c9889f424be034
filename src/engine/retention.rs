//! The retroactive rule (§1 decision): every policy version since an artifact was created
//! bounds its schedule. Reads apply it at once ([`Engine::effective_artifact`],
//! [`Engine::effective_transcript`]); retention jobs write it to the stored schedules in
//! bounded, resumable batches.

use std::collections::{BTreeMap, HashMap};

use chrono::SecondsFormat;
use serde::{Serialize, Serializer};

use super::*;
use crate::domain::policy::{retroactive_schedule, Anchors};
use crate::domain::{
    Account, Artifact, ArtifactKind, ArtifactState, Schedule, ScheduleKind, Transcript,
    TranscriptId,
};
use crate::storage::StorageError;

/// Live artifacts read per page by a dry run's walk.
const IMPACT_PAGE: u32 = 500;

/// What carrying retention changes to existing artifacts did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobProgress {
    /// Artifacts examined.
    pub examined: u64,
    /// Artifacts whose schedule got shorter.
    pub rescheduled: u64,
    /// Retention jobs that reached their end.
    pub finished: u64,
}

/// What a settings change would do to an account's existing artifacts (a dry run): which
/// live artifacts the retroactive rule would give an earlier `delete_after` than the one
/// they have now (reads included, so a change still being carried counts as had).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionImpact {
    /// Live artifacts of the account walked.
    pub artifacts_examined: u64,
    /// By artifact kind, every kind among the artifacts examined.
    pub by_kind: BTreeMap<&'static str, KindImpact>,
    #[serde(flatten)]
    pub total: KindImpact,
}

/// The shortenings of one artifact kind (or of all) in a [`RetentionImpact`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindImpact {
    /// Artifacts whose `delete_after` would become earlier (or appear).
    pub shortened: u64,
    /// Of those, the ones the next pass would delete: new `delete_after` at or before now.
    pub due_immediately: u64,
    /// The earliest new `delete_after` among the shortened; `None` when none is.
    #[serde(serialize_with = "rfc3339")]
    pub earliest_new_delete_after: Option<DateTime<Utc>>,
}

impl KindImpact {
    fn add(&mut self, delete_after: DateTime<Utc>, now: DateTime<Utc>) {
        self.shortened += 1;
        self.due_immediately += u64::from(delete_after <= now);
        self.earliest_new_delete_after = Some(
            self.earliest_new_delete_after
                .map_or(delete_after, |t| t.min(delete_after)),
        );
    }
}

/// Instants as the API writes them everywhere: RFC 3339, UTC, microseconds.
fn rfc3339<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .serialize(s)
}

impl Engine {
    /// **(decision §1)** Carries recorded retention changes to existing artifacts: walks
    /// each such account's live artifacts by id, `batch` at a time and at most `budget` in
    /// all, and shortens every schedule a policy version since the artifact was created
    /// makes shorter. The job's cursor is saved after every batch, so a crash or another
    /// instance resumes where it stopped; a newer change restarts the walk.
    pub async fn advance_retention_jobs(&self, batch: u32, budget: u64) -> Result<JobProgress> {
        let mut progress = JobProgress::default();
        let accounts = self
            .backends
            .accounts
            .accounts_with_retention_jobs(100)
            .await?;
        for account in accounts {
            let Some(mut job) = account.retention_job.clone() else {
                continue;
            };
            loop {
                if progress.examined >= budget {
                    return Ok(progress);
                }
                let page = self
                    .backends
                    .index
                    .live_artifacts_for_account(account.id, job.cursor, batch)
                    .await?;
                let rescheduled = self.reschedule_page(&account, &page).await?;
                job.cursor = page.last().map(|a| a.id).or(job.cursor);
                job.examined += page.len() as u64;
                job.rescheduled += rescheduled;
                progress.examined += page.len() as u64;
                progress.rescheduled += rescheduled;
                let done = page.len() < batch as usize;
                let saved = self
                    .backends
                    .accounts
                    .save_retention_job(account.id, job.target_version, (!done).then_some(&job))
                    .await?;
                if !saved {
                    // A newer change restarted the job; the next pass takes it from the top.
                    break;
                }
                if done {
                    progress.finished += 1;
                    tracing::info!(account_id = %account.id, policy_version = job.target_version, examined = job.examined, rescheduled = job.rescheduled, "retention change applied to existing artifacts");
                    break;
                }
            }
        }
        Ok(progress)
    }

    /// Shortens what a page of an account's live artifacts must keep; returns how many
    /// schedules changed.
    pub(crate) async fn reschedule_page(
        &self,
        account: &Account,
        page: &[Artifact],
    ) -> Result<u64> {
        let transcripts = self.transcripts_of_page(page).await?;
        let now = self.now();
        let mut rescheduled = 0;
        for artifact in reschedulable(page) {
            let transcript = artifact.transcript_id.and_then(|t| transcripts.get(&t));
            let Some(schedule) = self.tightened_schedule(artifact, transcript, account) else {
                continue;
            };
            if !self
                .backends
                .index
                .reschedule(artifact.id, &schedule, account.policy_version, now)
                .await?
            {
                continue;
            }
            rescheduled += 1;
            if let Some(t) = transcript.filter(|t| t.is_final(artifact)) {
                self.set_transcript_schedule(t.id, &schedule).await?;
            }
        }
        if rescheduled > 0 {
            tracing::info!(account_id = %account.id, rescheduled, "existing schedules shortened");
            self.deadlines.notify_one();
        }
        Ok(rescheduled)
    }

    /// **(decision §1)** What making `next` the account's settings would do to `current`'s
    /// existing artifacts, changing nothing: walks its live artifacts by id, a bounded page
    /// at a time, as a retention job does, and asks of each what the job would ask
    /// ([`Engine::tightened_schedule`] under `next`); an artifact counts when the answer
    /// begins deletion earlier than the schedule it is read with now (under `current`).
    pub(crate) async fn retention_impact(
        &self,
        current: &Account,
        next: &Account,
    ) -> Result<RetentionImpact> {
        let now = self.now();
        let mut impact = RetentionImpact::default();
        let mut cursor = None;
        loop {
            let page = self
                .backends
                .index
                .live_artifacts_for_account(current.id, cursor, IMPACT_PAGE)
                .await?;
            impact.artifacts_examined += page.len() as u64;
            let transcripts = self.transcripts_of_page(&page).await?;
            for artifact in reschedulable(&page) {
                let kind = impact.by_kind.entry(artifact.kind.as_str()).or_default();
                let transcript = artifact.transcript_id.and_then(|t| transcripts.get(&t));
                let Some(proposed) = self.tightened_schedule(artifact, transcript, next) else {
                    continue;
                };
                let now_read = self.effective_artifact(artifact.clone(), transcript, current);
                let shortened = match (now_read.delete_after, proposed.delete_after) {
                    (None, Some(after)) => Some(after),
                    (Some(had), Some(after)) if after < had => Some(after),
                    _ => None,
                };
                if let Some(after) = shortened {
                    kind.add(after, now);
                    impact.total.add(after, now);
                }
            }
            match page.last() {
                Some(last) if page.len() == IMPACT_PAGE as usize => cursor = Some(last.id),
                _ => return Ok(impact),
            }
        }
    }

    /// The transcripts a page of artifacts belongs to, by id.
    async fn transcripts_of_page(
        &self,
        page: &[Artifact],
    ) -> Result<HashMap<TranscriptId, Transcript>> {
        let mut ids: Vec<TranscriptId> = page.iter().filter_map(|a| a.transcript_id).collect();
        ids.sort();
        ids.dedup();
        Ok(self
            .backends
            .index
            .transcripts(&ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect())
    }

    /// The schedule `artifact` must keep under every policy version since it was
    /// scheduled, when that is shorter than the one it has; `None` otherwise.
    pub(crate) fn tightened_schedule(
        &self,
        artifact: &Artifact,
        transcript: Option<&Transcript>,
        account: &Account,
    ) -> Option<Schedule> {
        let anchors = Anchors {
            own: artifact.anchor_at.unwrap_or(artifact.created_at),
            transcript: transcript.and_then(|t| t.completed_at),
        };
        // What is always deleted with the final transcript shares its schedule: every
        // version since the transcript was created. Anything else: every version since it
        // was created (not since it was last rescheduled: a version whose "linked" had no
        // deadline then may have one once the transcript is anchored).
        let origin = match (artifact.kind.always_linked(), transcript) {
            (true, Some(t)) => t.policy_version,
            _ => artifact.created_version,
        };
        let proposed = retroactive_schedule(
            artifact.kind,
            anchors,
            account.settings_from(origin),
            &self.platform,
        )?;
        artifact.schedule().tightened_by(&proposed)
    }

    /// `artifact` as it must be read now: with any shorter schedule a policy version since
    /// it was scheduled imposes, even before a retention job has rewritten it.
    pub(crate) fn effective_artifact(
        &self,
        mut artifact: Artifact,
        transcript: Option<&Transcript>,
        account: &Account,
    ) -> Artifact {
        if let Some(s) = self.tightened_schedule(&artifact, transcript, account) {
            artifact.schedule = s.kind;
            artifact.delete_after = s.delete_after;
            artifact.delete_by = s.delete_by;
        }
        artifact
    }

    /// `t` as it must be read now: its final transcript's schedule under every policy
    /// version since the transcript was created, even before a retention job has run.
    pub(crate) fn effective_transcript(&self, mut t: Transcript, account: &Account) -> Transcript {
        let Some(completed) = t.completed_at else {
            return t;
        };
        let anchors = Anchors {
            own: completed,
            transcript: Some(completed),
        };
        let proposed = retroactive_schedule(
            ArtifactKind::FinalTranscript,
            anchors,
            account.settings_from(t.policy_version),
            &self.platform,
        );
        let current = Schedule {
            kind: ScheduleKind::Point,
            delete_after: t.delete_after,
            delete_by: t.delete_by,
        };
        if let Some(s) = proposed.and_then(|p| current.tightened_by(&p)) {
            t.delete_after = s.delete_after;
            t.delete_by = s.delete_by;
        }
        t
    }

    pub(crate) async fn set_transcript_schedule(
        &self,
        id: TranscriptId,
        schedule: &Schedule,
    ) -> Result<()> {
        for _ in 0..5 {
            let Some(mut t) = self.backends.index.transcript(id).await? else {
                return Ok(());
            };
            t.delete_after = schedule.delete_after;
            t.delete_by = schedule.delete_by;
            match self.backends.index.update_transcript(&t).await {
                Err(StorageError::Conflict { .. }) => continue,
                other => return Ok(other?),
            }
        }
        Err(EngineError::Concurrent)
    }
}

/// The artifacts of a page a retention change may reschedule: live, no deletion pending.
fn reschedulable(page: &[Artifact]) -> impl Iterator<Item = &Artifact> {
    page.iter()
        .filter(|a| a.state == ArtifactState::Live && a.pending_reason.is_none())
}
