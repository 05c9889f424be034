//! Transcripts: creation with their text inputs and audio URL, the pipeline's steps
//! (processing, intermediates, speech understanding, complete/error and settling), what a
//! reader may see, the retention view, and the customer's deletion.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use super::deletion::{self, DeletionOutcome};
use super::*;
use crate::domain::policy::{retroactive_schedule, Anchors};
use crate::domain::{
    new_id, Account, Artifact, ArtifactId, ArtifactKind, ArtifactState, Content, DeletionReason,
    Schedule, ScheduleKind, Transcript, TranscriptDeletion, TranscriptId, TranscriptStatus,
};
use crate::storage::encrypted::ReadWithPage;
use crate::storage::{durability, ByteStream, StorageError, TranscriptQuery};

/// Where a transcript's audio comes from.
#[derive(Clone, Debug)]
pub enum AudioSource {
    /// One of our uploads (the id is the last segment of its `upload_url`).
    Upload(ArtifactId),
    /// A URL we do not host; it is itself content (it may carry credentials).
    Url(Content),
}

#[derive(Clone, Debug)]
pub struct NewTranscript {
    pub audio: AudioSource,
    /// Echoed request options that are not content (`speech_model`, `punctuate`, ...).
    pub options: serde_json::Value,
    /// Text inputs (prompts, key terms, webhook URL and auth, ...), stored as a `text_input`.
    pub text_inputs: Option<Content>,
    pub webhook_auth: bool,
}

/// A page of `GET /v2/transcript` ([`Engine::transcript_page`]).
#[derive(Clone, Debug)]
pub struct TranscriptPage {
    /// Newest first.
    pub transcripts: Vec<Transcript>,
    /// Whether an older page exists (the `prev_url` link).
    pub older: bool,
    /// Whether a newer page exists (the `next_url` link).
    pub newer: bool,
    /// The URL of each listed transcript whose URL may be served now.
    pub audio_urls: HashMap<TranscriptId, Content>,
}

/// A transcript with the content a reader may see at the time of reading.
#[derive(Clone, Debug)]
pub struct TranscriptContent {
    pub transcript: Transcript,
    /// `Some` reason when the transcript must be served redacted.
    pub redacted: Option<DeletionReason>,
    pub result: Option<Content>,
    pub text_inputs: Option<Content>,
    pub audio_url: Option<Content>,
}

/// One artifact as the retention view shows it, with its effective schedule (a linked
/// artifact shows its transcript's).
#[derive(Clone, Debug)]
pub struct ArtifactView {
    pub artifact: Artifact,
    pub delete_after: Option<DateTime<Utc>>,
    pub delete_by: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct RetentionView {
    pub transcript: Transcript,
    pub account: Account,
    pub artifacts: Vec<ArtifactView>,
    /// Whether an active legal hold covers the transcript.
    pub legal_hold: bool,
}

impl Engine {
    /// `POST /v2/transcript`: a queued transcript, its text inputs and URL as artifacts,
    /// durable when it returns (one sync for all of its writes).
    pub async fn create_transcript(
        &self,
        account: &Account,
        new: NewTranscript,
    ) -> Result<Transcript> {
        Ok(self
            .create_transcript_content(account, new)
            .await?
            .transcript)
    }

    /// [`create_transcript`](Self::create_transcript), answered with what a read of the new
    /// transcript would show (its content from what was just stored, not read back).
    pub async fn create_transcript_content(
        &self,
        account: &Account,
        new: NewTranscript,
    ) -> Result<TranscriptContent> {
        let account = account.clone();
        self.to_completion(|lethe| async move { lethe.queue_transcript(&account, new).await })
            .await
    }

    /// Runs a request's writes in a task of their own, in one deferred-durability scope,
    /// so they run to their end even if the client goes away or the request times out: a
    /// statement cut off mid-flight would end the group of every concurrent write as
    /// failed, since whether it ran, and whether the transaction survived it, is unknown.
    async fn to_completion<T, F>(&self, work: impl FnOnce(Engine) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        tokio::spawn(durability::deferred(work(self.clone())))
            .await
            .map_err(|e| {
                EngineError::Storage(StorageError::Other {
                    backend: "engine",
                    source: Box::new(e),
                })
            })?
    }

    async fn queue_transcript(
        &self,
        account: &Account,
        new: NewTranscript,
    ) -> Result<TranscriptContent> {
        let has_content = new.text_inputs.is_some() || matches!(new.audio, AudioSource::Url(_));
        if has_content {
            Self::ensure_may_store(account)?;
        }
        let upload_id = match &new.audio {
            AudioSource::Upload(id) => {
                let upload = self.backends.index.artifact(*id).await?;
                let usable = upload.as_ref().is_some_and(|u| {
                    u.account_id == account.id
                        && u.kind == ArtifactKind::UploadedAudio
                        && self.is_servable(u, None, account)
                });
                if !usable {
                    return Err(EngineError::UploadNotAccessible);
                }
                Some(*id)
            }
            AudioSource::Url(_) => None,
        };
        let now = self.now();
        let transcript = Transcript {
            id: new_id(now),
            account_id: account.id,
            status: TranscriptStatus::Queued,
            created_at: now,
            completed_at: None,
            upload_id,
            options: new.options,
            webhook_auth: new.webhook_auth,
            audio_duration: None,
            error: None,
            policy_version: account.policy_version,
            delete_after: None,
            delete_by: None,
            deletion: None,
            final_artifact_id: None,
            settled: true,
            revision: 0,
        };
        self.backends.index.insert_transcript(&transcript).await?;
        let mut view = TranscriptContent {
            redacted: transcript.redaction_reason_at(now),
            transcript,
            result: None,
            text_inputs: None,
            audio_url: None,
        };
        let stored = [
            match new.audio {
                AudioSource::Url(url) => Some((ArtifactKind::UrlAudioReference, url)),
                AudioSource::Upload(_) => None,
            },
            new.text_inputs
                .map(|inputs| (ArtifactKind::TextInput, inputs)),
        ];
        for (kind, content) in stored.into_iter().flatten() {
            let a = Artifact::new_live(new_id(now), account, Some(view.transcript.id), kind, now);
            let a = self.store_artifact(a, content.clone()).await?;
            // As `transcript_content` would serve it.
            if view.redacted.is_none() && self.is_servable(&a, Some(&view.transcript), account) {
                match kind {
                    ArtifactKind::UrlAudioReference => view.audio_url = Some(content),
                    _ => view.text_inputs = Some(content),
                }
            }
        }
        tracing::info!(transcript_id = %view.transcript.id, account_id = %account.id, "transcript queued");
        Ok(view)
    }

    /// A transcript of this account, or `NotFound` (also for another account's), with the
    /// schedule every policy version since its creation imposes.
    pub async fn transcript(&self, account: &Account, id: TranscriptId) -> Result<Transcript> {
        match self.backends.index.transcript(id).await? {
            Some(t) if t.account_id == account.id => Ok(self.effective_transcript(t, account)),
            _ => Err(EngineError::NotFound),
        }
    }

    pub async fn list_transcripts(
        &self,
        account: &Account,
        query: &TranscriptQuery,
    ) -> Result<Vec<Transcript>> {
        Ok(self
            .backends
            .index
            .list_transcripts(account.id, query)
            .await?
            .into_iter()
            .map(|t| self.effective_transcript(t, account))
            .collect())
    }

    /// A page of `GET /v2/transcript`: its transcripts with the audio URLs that may be
    /// served now, and whether older and newer transcripts pass the same filters (its
    /// links). The first page (no bound) reads one row more, which says whether there is
    /// an older page; nothing is newer than the newest. A bounded page asks both questions
    /// in one more read.
    pub async fn transcript_page(
        &self,
        account: &Account,
        query: &TranscriptQuery,
    ) -> Result<TranscriptPage> {
        let first = query.before_id.is_none() && query.after_id.is_none();
        let probe = TranscriptQuery {
            limit: query.limit.saturating_add(u32::from(first)),
            ..query.clone()
        };
        let listed = self
            .backends
            .index
            .list_transcripts_with_artifacts(account.id, &probe, ArtifactKind::UrlAudioReference)
            .await?;
        let mut transcripts: Vec<Transcript> = listed
            .transcripts
            .into_iter()
            .map(|t| self.effective_transcript(t, account))
            .collect();
        let (mut older, mut newer) = (false, false);
        if first {
            older = transcripts.len() > query.limit as usize;
            transcripts.truncate(query.limit as usize);
        } else if let (Some(newest), Some(oldest)) = (transcripts.first(), transcripts.last()) {
            (older, newer) = self
                .backends
                .index
                .has_neighbors(account.id, query, oldest.id, newest.id)
                .await?;
        }
        let audio_urls = self
            .audio_urls(account, &transcripts, listed.artifacts, listed.content)
            .await?;
        Ok(TranscriptPage {
            transcripts,
            older,
            newer,
            audio_urls,
        })
    }

    pub(crate) async fn transcript_for_pipeline(
        &self,
        id: TranscriptId,
    ) -> Result<(Transcript, Account)> {
        let (t, account) = self
            .backends
            .index
            .transcript_and_account(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let account = match account {
            Some(account) => account,
            None => self.account(t.account_id).await?,
        };
        Ok((self.effective_transcript(t, &account), account))
    }

    /// `queued → processing`; repeating it is fine.
    pub async fn mark_processing(&self, id: TranscriptId) -> Result<Transcript> {
        let (mut t, _) = self.transcript_for_pipeline(id).await?;
        match t.status {
            TranscriptStatus::Processing => return Ok(t),
            TranscriptStatus::Queued => {}
            status => {
                return Err(EngineError::AlreadyFinished {
                    status,
                    action: "starting processing",
                })
            }
        }
        t.status = TranscriptStatus::Processing;
        self.backends
            .index
            .update_transcript(&t)
            .await
            .map_err(conflict_is_concurrent)?;
        t.revision += 1;
        Ok(t)
    }

    /// Stores an intermediate the pipeline produced while processing.
    pub async fn put_intermediate(
        &self,
        id: TranscriptId,
        name: &str,
        body: ByteStream,
    ) -> Result<Artifact> {
        let (t, account) = self.transcript_for_pipeline(id).await?;
        Self::ensure_may_store(&account)?;
        if t.status.is_terminal() {
            return Err(EngineError::AlreadyFinished {
                status: t.status,
                action: "storing an intermediate",
            });
        }
        let now = self.now();
        let mut a = Artifact::new_live(
            new_id(now),
            &account,
            Some(id),
            ArtifactKind::Intermediate,
            now,
        );
        a.name = Some(name.to_owned());
        let a = self.scheduled(a, &account, Some(now));
        self.store_artifact_stream(a, body).await
    }

    /// Stores a speech-understanding result, linked to its transcript.
    pub async fn add_speech_understanding(
        &self,
        id: TranscriptId,
        content: Content,
    ) -> Result<Artifact> {
        let (t, account) = self.transcript_for_pipeline(id).await?;
        self.link_speech_understanding(&t, &account, content).await
    }

    pub(crate) async fn link_speech_understanding(
        &self,
        t: &Transcript,
        account: &Account,
        content: Content,
    ) -> Result<Artifact> {
        Self::ensure_may_store(account)?;
        if t.is_redacted_at(self.now()) {
            return Err(EngineError::ContentDeleted);
        }
        let now = self.now();
        let mut a = Artifact::new_live(
            new_id(now),
            account,
            Some(t.id),
            ArtifactKind::SpeechUnderstanding,
            now,
        );
        // Created after anchoring: it takes the transcript's deadline at once.
        a.anchor_at = t.completed_at;
        a.delete_after = t.delete_after;
        a.delete_by = t.delete_by;
        a.due_at = t.delete_after;
        self.store_artifact(a, content).await
    }

    /// `completed`, with its result as the final transcript, anchored now (§4); durable
    /// when it returns (one sync for all of its writes).
    pub async fn complete(
        &self,
        id: TranscriptId,
        result: Content,
        audio_duration: Option<f64>,
    ) -> Result<Transcript> {
        self.to_completion(move |lethe| async move {
            lethe
                .finish_transcript(
                    id,
                    TranscriptStatus::Completed,
                    Some(result),
                    audio_duration,
                    None,
                )
                .await
        })
        .await
    }

    /// `error`, anchored now. Its (contentless) result still carries the schedule for the
    /// linked artifacts; a zero-data-retention account gets no result artifact at all.
    /// Durable when it returns.
    pub async fn fail(&self, id: TranscriptId, error: &str) -> Result<Transcript> {
        let result = Content::new(serde_json::json!({"status": "error"}).to_string());
        let error = error.to_owned();
        self.to_completion(move |lethe| async move {
            lethe
                .finish_transcript(id, TranscriptStatus::Error, Some(result), None, Some(error))
                .await
        })
        .await
    }

    /// Makes the transcript terminal. Each attempt stores its own result first, then
    /// makes the transcript terminal with a conditional write that names that result:
    /// of racing attempts exactly one wins, the losers remove what they stored, and no
    /// reader ever sees a terminal transcript without its result.
    pub(crate) async fn finish_transcript(
        &self,
        id: TranscriptId,
        status: TranscriptStatus,
        result: Option<Content>,
        audio_duration: Option<f64>,
        error: Option<String>,
    ) -> Result<Transcript> {
        let (t, account) = self.transcript_for_pipeline(id).await?;
        let already_finished = |status| EngineError::AlreadyFinished {
            status,
            action: "finishing it",
        };
        if t.status.is_terminal() {
            return Err(already_finished(t.status));
        }
        let zdr = account.settings.zero_data_retention;
        if zdr && status == TranscriptStatus::Completed {
            return Err(EngineError::ZeroDataRetention);
        }
        let now = self.now();
        // The shortest schedule of every policy version since the transcript was created.
        let anchors = Anchors {
            own: now,
            transcript: Some(now),
        };
        let schedule = retroactive_schedule(
            ArtifactKind::FinalTranscript,
            anchors,
            account.settings_from(t.policy_version),
            &self.platform,
        )
        .unwrap_or(Schedule::INDEFINITE);
        let final_transcript = match result.filter(|_| !zdr) {
            Some(result) => {
                let mut a = Artifact::new_live(
                    new_id(now),
                    &account,
                    Some(id),
                    ArtifactKind::FinalTranscript,
                    now,
                );
                a.anchor_at = Some(now);
                a.schedule = schedule.kind;
                a.delete_after = schedule.delete_after;
                a.delete_by = schedule.delete_by;
                a.due_at = schedule.delete_after;
                Some(self.store_artifact(a, result).await?)
            }
            None => None,
        };
        let mut next = t.clone();
        next.status = status;
        next.completed_at = Some(now);
        next.audio_duration = audio_duration.or(t.audio_duration);
        next.error = error;
        next.delete_after = schedule.delete_after;
        next.delete_by = schedule.delete_by;
        next.final_artifact_id = final_transcript.as_ref().map(|a| a.id);
        // Unsettled until every artifact has its deadlines: a crash in between is settled
        // by the next sweep.
        next.settled = false;
        if let Err(e) = self.backends.index.update_transcript(&next).await {
            if let Some(lost) = &final_transcript {
                self.abandon(lost).await;
            }
            return Err(match e {
                StorageError::Conflict { .. } => match self.backends.index.transcript(id).await? {
                    Some(now_stored) if now_stored.status.is_terminal() => {
                        already_finished(now_stored.status)
                    }
                    _ => EngineError::Concurrent,
                },
                other => other.into(),
            });
        }
        next.revision += 1;
        let next = self.settle(next, &account).await?;
        if schedule.delete_after.is_some() {
            self.deadlines.notify_one();
        }
        tracing::info!(transcript_id = %id, status = %status, "transcript finished");
        Ok(next)
    }

    /// From its anchor on, everything of a terminal transcript has its deadlines (§4):
    /// linked artifacts join the due index with the final transcript's, and any artifact a
    /// policy version since its creation makes shorter is shortened; its completion webhook
    /// is in the outbox; then the transcript is recorded as settled. Idempotent, so the sweeper can finish what a crash left.
    pub(crate) async fn settle(&self, t: Transcript, account: &Account) -> Result<Transcript> {
        let now = self.now();
        let artifacts = self.backends.index.artifacts_for_transcript(t.id).await?;
        if let Some(deletion) = t
            .deletion
            .filter(|d| d.reason == DeletionReason::CustomerRequest)
        {
            // A customer's deletion a crash cut short: its artifacts' deletion (and its
            // upload's, §3) is requested (due now) and the next pass deletes them. A
            // transcript deleted by its schedule settles as any other: its upload keeps
            // its own deadline.
            let mut ids: Vec<ArtifactId> = artifacts
                .iter()
                .filter(|a| a.state != ArtifactState::Deleted)
                .map(|a| a.id)
                .collect();
            ids.extend(t.upload_id);
            self.backends
                .index
                .request_deletion(&ids, deletion.reason, now)
                .await?;
            self.deadlines.notify_one();
            return self.mark_settled(t).await;
        }
        // The completion webhook joins the outbox before the transcript is settled.
        let text_inputs = artifacts
            .iter()
            .find(|a| a.kind == ArtifactKind::TextInput && a.state == ArtifactState::Live);
        self.enqueue_completion_webhook(&t, text_inputs).await?;
        for a in artifacts
            .iter()
            .filter(|a| a.state == ArtifactState::Live && a.pending_reason.is_none())
            .filter(|a| a.kind != ArtifactKind::FinalTranscript)
        {
            if let Some(s) = self.tightened_schedule(a, Some(&t), account) {
                self.backends
                    .index
                    .reschedule(a.id, &s, account.policy_version, now)
                    .await?;
            }
        }
        self.mark_settled(t).await
    }

    /// Marks the stored transcript deleted at a customer's request and unsettled, unless
    /// another request marked it first. Returns the transcript as stored, and whether
    /// this call marked it.
    async fn mark_deleted_unsettled(
        &self,
        stored: Transcript,
        now: DateTime<Utc>,
    ) -> Result<(Transcript, bool)> {
        let id = stored.id;
        let mut read = Some(stored);
        // Each retry follows another writer's change; a few are plenty.
        for _ in 0..5 {
            let found = match read.take() {
                Some(t) => Some(t),
                None => self.backends.index.transcript(id).await?,
            };
            let Some(mut t) = found else {
                return Err(EngineError::NotFound);
            };
            if t.deletion.is_some() {
                return Ok((t, false));
            }
            t.deletion = Some(TranscriptDeletion {
                at: now,
                reason: DeletionReason::CustomerRequest,
            });
            t.settled = false;
            match self.backends.index.update_transcript(&t).await {
                Ok(()) => {
                    t.revision += 1;
                    return Ok((t, true));
                }
                // Changed meanwhile (another deletion, a settling): read it again.
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Concurrent)
    }

    async fn mark_settled(&self, mut t: Transcript) -> Result<Transcript> {
        t.settled = true;
        self.backends
            .index
            .update_transcript(&t)
            .await
            .map_err(conflict_is_concurrent)?;
        t.revision += 1;
        Ok(t)
    }

    /// Settles terminal transcripts a crash left unsettled (made terminal before
    /// `completed_before`, so a finish in flight is left to itself). Returns (settled,
    /// failed).
    pub async fn settle_transcripts(
        &self,
        completed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<(u64, u64)> {
        let (mut settled, mut failed) = (0, 0);
        for t in self
            .backends
            .index
            .unsettled_transcripts(completed_before, limit)
            .await?
        {
            let account = self.account(t.account_id).await?;
            match self.settle(t.clone(), &account).await {
                Ok(_) => {
                    settled += 1;
                    tracing::warn!(transcript_id = %t.id, "settled a transcript a crash left unscheduled");
                }
                Err(EngineError::Concurrent) => {}
                Err(e) => {
                    failed += 1;
                    tracing::warn!(transcript_id = %t.id, error = %e, "could not settle a transcript; the next pass retries");
                }
            }
        }
        Ok((settled, failed))
    }

    /// The transcript with the content a reader may see now: redacted from `delete_after`
    /// on, even before a sweep has removed the bytes (§4).
    pub async fn transcript_content(
        &self,
        account: &Account,
        id: TranscriptId,
    ) -> Result<TranscriptContent> {
        let transcript = self.transcript(account, id).await?;
        let now = self.now();
        let redacted = transcript.redaction_reason_at(now);
        let mut view = TranscriptContent {
            transcript,
            redacted,
            result: None,
            text_inputs: None,
            audio_url: None,
        };
        if redacted.is_some() {
            return Ok(view);
        }
        for artifact in self.backends.index.artifacts_for_transcript(id).await? {
            if !self.is_servable(&artifact, Some(&view.transcript), account) {
                continue;
            }
            let slot = match artifact.kind {
                ArtifactKind::FinalTranscript
                    if view.transcript.status == TranscriptStatus::Completed
                        && view.transcript.is_final(&artifact) =>
                {
                    &mut view.result
                }
                ArtifactKind::TextInput => &mut view.text_inputs,
                ArtifactKind::UrlAudioReference => &mut view.audio_url,
                _ => continue,
            };
            *slot = self.backends.content.get(&artifact.content_key).await?;
        }
        Ok(view)
    }

    /// The audio URLs of these transcripts that may be served now, by transcript, from
    /// their URL artifacts (read with the page) and the URLs' keys and rows where the
    /// index read them with the page (`read`, one per artifact), else one batch read of
    /// the URLs: a page of list items costs the same few round trips whatever its length.
    async fn audio_urls(
        &self,
        account: &Account,
        transcripts: &[Transcript],
        artifacts: Vec<Artifact>,
        read: Option<ReadWithPage>,
    ) -> Result<HashMap<TranscriptId, Content>> {
        let now = self.now();
        let readable: HashMap<TranscriptId, &Transcript> = transcripts
            .iter()
            .filter(|t| t.account_id == account.id && t.upload_id.is_none())
            .filter(|t| !t.is_redacted_at(now))
            .map(|t| (t.id, t))
            .collect();
        if readable.is_empty() {
            return Ok(HashMap::new());
        }
        // What the index read with each artifact, if it did: kept for those served.
        let (source, read) = match read {
            Some(read) if read.objects.len() != artifacts.len() => {
                return Err(StorageError::Other {
                    backend: "index",
                    source: "a page read a different number of objects than artifacts".into(),
                }
                .into())
            }
            Some(read) => (
                Some(read.source),
                read.objects.into_iter().map(Some).collect(),
            ),
            None => (None, vec![None; artifacts.len()]),
        };
        let mut owners = Vec::new();
        let mut keys = Vec::new();
        let mut kept = Vec::new();
        for (artifact, with) in artifacts.into_iter().zip(read) {
            let Some(t) = artifact.transcript_id.and_then(|id| readable.get(&id)) else {
                continue;
            };
            if artifact.account_id != account.id {
                continue;
            }
            if artifact.kind == ArtifactKind::UrlAudioReference
                && self.is_servable(&artifact, Some(t), account)
            {
                owners.push(t.id);
                keys.push(artifact.content_key);
                kept.push(with);
            }
        }
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let kept: Option<Vec<_>> = kept.into_iter().collect();
        let contents = match (source, kept) {
            (Some(source), Some(objects)) => {
                let read = ReadWithPage { source, objects };
                self.backends.content.get_many_read(&keys, read).await?
            }
            _ => self.backends.content.get_many(&keys).await?,
        };
        if contents.len() != keys.len() {
            return Err(StorageError::Other {
                backend: "content",
                source: "a batch read answered the wrong number of objects".into(),
            }
            .into());
        }
        Ok(owners
            .into_iter()
            .zip(contents)
            .filter_map(|(id, url)| url.map(|url| (id, url)))
            .collect())
    }

    /// The proof a customer or auditor asks for: every artifact of the transcript,
    /// including the upload it was created from, with schedules and tombstones.
    pub async fn retention_view(
        &self,
        account: &Account,
        id: TranscriptId,
    ) -> Result<RetentionView> {
        let transcript = self.transcript(account, id).await?;
        let mut artifacts = self.backends.index.artifacts_for_transcript(id).await?;
        if let Some(upload) = transcript.upload_id {
            if let Some(upload) = self.backends.index.artifact(upload).await? {
                artifacts.insert(0, upload);
            }
        }
        let artifacts = artifacts
            .into_iter()
            .map(|artifact| {
                let effective = match artifact.state {
                    ArtifactState::Deleted => artifact.clone(),
                    _ => self.effective_artifact(artifact.clone(), Some(&transcript), account),
                };
                let (delete_after, delete_by) = match effective.schedule {
                    ScheduleKind::Linked if effective.delete_after.is_none() => {
                        (transcript.delete_after, transcript.delete_by)
                    }
                    _ => (effective.delete_after, effective.delete_by),
                };
                ArtifactView {
                    artifact,
                    delete_after,
                    delete_by,
                }
            })
            .collect();
        Ok(RetentionView {
            legal_hold: account.holds_transcript(transcript.id),
            transcript,
            account: account.clone(),
            artifacts,
        })
    }

    /// `DELETE /v2/transcript/{id}` (§3): deletes every artifact of the transcript and the
    /// upload it was created from, now; keeps its usage metadata. Idempotent. Refused while
    /// queued or processing, with nothing changed. Returns the transcript as it now reads
    /// (redacted).
    ///
    /// Nine store calls at most: the transcript read, its deletion recorded with the
    /// transcript unsettled (so it reads as deleted, and the sweeper finishes it, if a
    /// later step fails), its artifacts read, every one of them (and the upload) requested
    /// and claimed in one conditional write, the transcript settled, then the deletion
    /// pipeline with what is already read: content, keys, tombstones, the index.
    pub async fn delete_transcript(
        &self,
        account: &Account,
        id: TranscriptId,
    ) -> Result<TranscriptContent> {
        let stored = match self.backends.index.transcript(id).await? {
            Some(t) if t.account_id == account.id => t,
            _ => return Err(EngineError::NotFound),
        };
        let mut transcript = self.effective_transcript(stored.clone(), account);
        if !transcript.status.is_terminal() {
            return Err(EngineError::StillProcessing);
        }
        if account.holds_transcript(id) {
            return Err(EngineError::Held);
        }
        let now = self.now();
        let reason = DeletionReason::CustomerRequest;
        // Marked deleted, and unsettled until its artifacts' deletion is requested below: a
        // crash in between leaves it to the sweeper's settling ([`Engine::settle`]).
        let marked = match transcript.deletion {
            Some(_) => None,
            None => {
                let (stored, ours) = self.mark_deleted_unsettled(stored, now).await?;
                // The mark of whichever request made it (a racing one's, perhaps).
                transcript.deletion = stored.deletion;
                ours.then_some(stored)
            }
        };
        let live: Vec<Artifact> = self
            .backends
            .index
            .artifacts_for_transcript(id)
            .await?
            .into_iter()
            .filter(|a| a.state != ArtifactState::Deleted)
            .collect();
        let mut ids: Vec<ArtifactId> = live.iter().map(|a| a.id).collect();
        ids.extend(transcript.upload_id);
        // Due now: should anything below fail, the sweeper finishes it.
        let claimed = match ids.is_empty() {
            true => None,
            false => {
                let claim = self.new_claim(now, "request");
                let claimed = self
                    .backends
                    .index
                    .request_and_claim(&ids, reason, &claim)
                    .await?;
                Some((claim, claimed))
            }
        };
        if let Some(stored) = marked {
            // Settled already by a sweeper racing this request, or left to the next.
            match self.mark_settled(stored).await {
                Ok(_) | Err(EngineError::Concurrent) => {}
                Err(e) => {
                    tracing::warn!(transcript_id = %id, error = %e, "a deleted transcript stays unsettled; the sweeper settles it");
                }
            }
        }
        if let Some((claim, claimed)) = claimed {
            let held: std::collections::HashSet<ArtifactId> =
                claimed.iter().map(|a| a.id).collect();
            let known = deletion::Known {
                transcripts: std::collections::HashMap::from([(id, transcript.clone())]),
                // What another pass holds right now: it finishes those.
                remaining: Some(live.into_iter().filter(|a| !held.contains(&a.id)).collect()),
                account: Some(account.clone()),
            };
            let outcome = deletion::delete_claimed_knowing(
                &self.backends,
                &self.metrics,
                claimed,
                &claim,
                known,
            )
            .await?;
            if let Some((artifact_id, error)) = outcome.failed.into_iter().next() {
                tracing::warn!(%artifact_id, transcript_id = %id, "customer deletion incomplete; the sweeper retries it");
                return Err(error.into());
            }
        }
        tracing::info!(transcript_id = %id, account_id = %account.id, "transcript deleted at customer request");
        Ok(TranscriptContent {
            redacted: transcript.redaction_reason_at(now),
            transcript,
            result: None,
            text_inputs: None,
            audio_url: None,
        })
    }

    /// Requests, claims and deletes artifacts right away (customer requests), under a
    /// claim of its own: what another pass or request holds is left to it.
    pub(crate) async fn delete_now(
        &self,
        ids: &[ArtifactId],
        now: DateTime<Utc>,
    ) -> Result<DeletionOutcome> {
        let claim = self.new_claim(now, "request");
        let claimed = self
            .backends
            .index
            .request_and_claim(ids, DeletionReason::CustomerRequest, &claim)
            .await?;
        Ok(deletion::delete_claimed(&self.backends, &self.metrics, claimed, &claim).await?)
    }

    /// Moves transcripts created before `cutoff` and still unfinished to `error` (§4,
    /// `max_processing`). One that
    /// cannot be moved (a storage error) is logged and counted, and the pass goes on:
    /// a full disk must not stop every deletion. Returns (errored, failed).
    pub async fn error_stuck_transcripts(
        &self,
        cutoff: DateTime<Utc>,
        batch: u32,
    ) -> Result<(u64, u64)> {
        let (mut errored, mut failed) = (0, 0);
        let mut given_up: std::collections::HashSet<TranscriptId> =
            std::collections::HashSet::new();
        loop {
            let stuck = self.backends.index.stuck_transcripts(cutoff, batch).await?;
            let mut progressed = false;
            let stuck: Vec<_> = stuck
                .into_iter()
                .filter(|t| !given_up.contains(&t.id))
                .collect();
            for t in stuck {
                match self
                    .fail(t.id, "transcript exceeded max_processing and was stopped")
                    .await
                {
                    Ok(_) => {
                        errored += 1;
                        progressed = true;
                        tracing::warn!(transcript_id = %t.id, "transcript stuck past max_processing moved to error");
                    }
                    // Finished meanwhile, or raced by another sweeper: nothing to do.
                    Err(EngineError::AlreadyFinished { .. } | EngineError::Concurrent) => {
                        progressed = true
                    }
                    Err(e) => {
                        failed += 1;
                        given_up.insert(t.id);
                        tracing::warn!(transcript_id = %t.id, error = %e, "could not move a stuck transcript to error; the next pass retries");
                    }
                }
            }
            if !progressed {
                return Ok((errored, failed));
            }
        }
    }
}
