//! The retroactive rule (§1 decision): every policy version since an artifact was created
//! bounds its schedule. Reads apply it at once ([`Engine::effective_artifact`],
//! [`Engine::effective_transcript`]); retention jobs write it to the stored schedules in
//! bounded, resumable batches.

use std::collections::HashMap;

use super::*;
use crate::domain::policy::{retroactive_schedule, Anchors};
use crate::domain::{
    Account, Artifact, ArtifactKind, ArtifactState, Schedule, ScheduleKind, Transcript,
    TranscriptId,
};
use crate::storage::StorageError;

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
        let mut transcript_ids: Vec<TranscriptId> =
            page.iter().filter_map(|a| a.transcript_id).collect();
        transcript_ids.sort();
        transcript_ids.dedup();
        let transcripts: HashMap<TranscriptId, Transcript> = self
            .backends
            .index
            .transcripts(&transcript_ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let now = self.now();
        let mut rescheduled = 0;
        for artifact in page
            .iter()
            .filter(|a| a.state == ArtifactState::Live && a.pending_reason.is_none())
        {
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
