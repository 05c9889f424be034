//! The operations of Lethe on accounts, transcripts and artifacts, built on the storage
//! ports: what the HTTP surfaces and the CLI call. Every content write creates a tracked
//! artifact *before* the bytes are stored, so no content escapes tracking, and every read
//! of content checks the schedule first, so nothing is served from `delete_after` on.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::deletion::{self, DeletionOutcome};
use crate::domain::policy::{
    llm_gateway_has_zero_data_retention, retroactive_schedule, schedule_for,
    streaming_has_zero_data_retention, Anchors,
};
use crate::domain::{
    new_id, Account, AccountId, ApiKey, Artifact, ArtifactId, ArtifactKind, ArtifactState, Content,
    DeletionReason, PlatformPolicy, RetentionSettings, Schedule, ScheduleKind, SettingsError,
    SettingsPatch, Transcript, TranscriptDeletion, TranscriptId, TranscriptStatus, UsageKind,
    UsageRecord,
};
use crate::metrics::Metrics;
use crate::storage::{Backends, ByteStream, Claim, StorageError, TranscriptQuery};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Missing, or another account's: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    #[error("transcript is still being processed and cannot be deleted yet")]
    StillProcessing,
    #[error("transcript is already {status}; {action} is only possible while it is queued or processing")]
    AlreadyFinished {
        status: TranscriptStatus,
        action: &'static str,
    },
    #[error("content of this transcript has been deleted")]
    ContentDeleted,
    #[error("cannot access uploaded file")]
    UploadNotAccessible,
    #[error("account has zero data retention; content is not stored")]
    ZeroDataRetention,
    #[error(transparent)]
    InvalidSettings(#[from] SettingsError),
    /// A request the rules refuse (bad timestamps, ...); nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error("the account changed concurrently; retry the request")]
    Concurrent,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T, E = LifecycleError> = std::result::Result<T, E>;

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
}

/// An LLM Gateway request as the gateway reports it (§6).
#[derive(Clone, Debug)]
pub struct LlmGatewayRequest {
    pub account_id: AccountId,
    /// Lower-case provider name (`anthropic`, `google`, `openai`, ...).
    pub provider: String,
    pub model: String,
    /// The inputs and outputs; `None` when the gateway sends usage only.
    pub content: Option<Content>,
    /// Set for speech understanding on a transcript: stored linked to it.
    pub transcript_id: Option<TranscriptId>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// A finished real-time streaming session (§6).
#[derive(Clone, Debug)]
pub struct StreamingSession {
    pub account_id: AccountId,
    pub model: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// Its audio and transcript; `None` when the streaming service sends usage only.
    pub content: Option<Content>,
}

/// What an LLM Gateway request or streaming session left: always its usage record, and
/// the artifact holding its content unless zero data retention dropped it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub usage: UsageRecord,
    pub artifact: Option<Artifact>,
}

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

/// What the training export hands out for one artifact (§6).
pub enum TrainingExport {
    /// Text content with its PII redacted.
    Redacted {
        bytes: bytes::Bytes,
        content_type: &'static str,
    },
    /// Audio as stored; mute the ranges [`Lethe::training_redactions`] gives.
    Audio(ByteStream),
}

/// Reading an upload through the internal API.
#[derive(Debug)]
pub enum UploadRead {
    Live(Content),
    Deleted,
}

/// The engine: ports, clock and policy, shared by every surface.
#[derive(Clone, Debug)]
pub struct Lethe {
    pub backends: Backends,
    pub clock: Arc<dyn Clock>,
    pub platform: PlatformPolicy,
    /// How long a deletion claim holds before another sweeper may take over.
    pub claim_lease: Duration,
    /// Identifies this process in claims and tombstones.
    pub instance: String,
    /// Wakes the sweeper loop when an earlier deadline appears.
    pub wake_sweeper: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl Lethe {
    pub fn new(backends: Backends, clock: Arc<dyn Clock>, platform: PlatformPolicy) -> Self {
        Self {
            backends,
            clock,
            platform,
            claim_lease: Duration::minutes(5),
            instance: format!("lethe-{}", uuid::Uuid::new_v4().simple()),
            wake_sweeper: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::new()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A claim no other pass or request shares: `<instance>/<what>/<unique id>`, so two
    /// passes of one instance never both act on an artifact.
    pub fn new_claim(&self, now: DateTime<Utc>, what: &str) -> Claim {
        Claim {
            owner: format!("{}/{what}/{}", self.instance, uuid::Uuid::new_v4().simple()),
            now,
            until: now + self.claim_lease,
        }
    }

    // ---- accounts -------------------------------------------------------------------

    /// Creates an account; returns it with its API key, which is never retrievable again.
    pub async fn create_account(
        &self,
        name: &str,
        settings: RetentionSettings,
    ) -> Result<(Account, ApiKey)> {
        settings.validate()?;
        let now = self.now();
        let account = Account::new(new_id(now), name.to_owned(), settings, now);
        let key = ApiKey::generate();
        self.backends
            .accounts
            .create_account(&account, &key.hash())
            .await?;
        tracing::info!(account_id = %account.id, "account created");
        Ok((account, key))
    }

    pub async fn authenticate(&self, key: &ApiKey) -> Result<Option<Account>> {
        Ok(self
            .backends
            .accounts
            .account_by_key_hash(&key.hash())
            .await?)
    }

    pub async fn account(&self, id: AccountId) -> Result<Account> {
        self.backends
            .accounts
            .account(id)
            .await?
            .ok_or(LifecycleError::NotFound)
    }

    pub async fn new_api_key(&self, id: AccountId) -> Result<ApiKey> {
        self.account(id).await?;
        let key = ApiKey::generate();
        self.backends
            .accounts
            .add_api_key(id, &key.hash(), self.now())
            .await?;
        Ok(key)
    }

    /// Applies a settings change (§1): validated as a whole and refused without change when
    /// invalid. A change that can shorten existing schedules is recorded together with a
    /// retention job in the same write; any sweeper carries it to the existing artifacts
    /// in bounded batches ([`Lethe::advance_retention_jobs`]), and reads apply it at once,
    /// so nothing is served past the new deadline meanwhile.
    pub async fn update_settings(&self, id: AccountId, patch: &SettingsPatch) -> Result<Account> {
        let current = self.account(id).await?;
        let settings = current.settings.patched(patch)?;
        if settings == current.settings {
            return Ok(current);
        }
        let next = current.with_settings(settings, self.now());
        match self
            .backends
            .accounts
            .update_account(&next, current.policy_version)
            .await
        {
            Err(StorageError::Conflict { .. }) => return Err(LifecycleError::Concurrent),
            other => other?,
        }
        tracing::info!(account_id = %id, policy_version = next.policy_version, mode = next.settings.mode().as_str(), retention_job = next.retention_job.is_some(), "retention settings changed");
        if next.retention_job.is_some() {
            self.wake_sweeper.notify_one();
        }
        Ok(next)
    }

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
    async fn reschedule_page(&self, account: &Account, page: &[Artifact]) -> Result<u64> {
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
            self.wake_sweeper.notify_one();
        }
        Ok(rescheduled)
    }

    /// The schedule `artifact` must keep under every policy version since it was
    /// scheduled, when that is shorter than the one it has; `None` otherwise.
    fn tightened_schedule(
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
    fn effective_transcript(&self, mut t: Transcript, account: &Account) -> Transcript {
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

    async fn set_transcript_schedule(&self, id: TranscriptId, schedule: &Schedule) -> Result<()> {
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
        Err(LifecycleError::Concurrent)
    }

    fn ensure_may_store(account: &Account) -> Result<()> {
        if account.settings.zero_data_retention {
            return Err(LifecycleError::ZeroDataRetention);
        }
        Ok(())
    }

    /// Tracks, then stores, one artifact's content; the artifact is forgotten if the bytes
    /// never made it (nothing was confirmed to anyone).
    async fn store_artifact(&self, artifact: Artifact, content: Content) -> Result<Artifact> {
        let bytes = content.into_bytes();
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
        self.store_artifact_stream(artifact, body).await
    }

    /// Like `store_artifact`, for a body that arrives as a stream: tracked first, then the
    /// bytes, then the size.
    async fn store_artifact_stream(
        &self,
        artifact: Artifact,
        body: ByteStream,
    ) -> Result<Artifact> {
        self.backends.index.insert_artifact(&artifact).await?;
        match self
            .backends
            .content
            .put_stream(&artifact.content_key, body)
            .await
        {
            Ok(size) => {
                self.backends
                    .index
                    .set_artifact_size(artifact.id, size as i64)
                    .await?;
                if artifact.due_at.is_some() {
                    self.wake_sweeper.notify_one();
                }
                Ok(Artifact {
                    size_bytes: size as i64,
                    ..artifact
                })
            }
            Err(error) => {
                self.abandon(&artifact).await;
                Err(error.into())
            }
        }
    }

    async fn abandon(&self, artifact: &Artifact) {
        if let Err(e) = self.backends.content.delete(&artifact.content_key).await {
            tracing::warn!(artifact_id = %artifact.id, error = %e, "cleanup of unconfirmed content failed; the sweeper deletes it on schedule");
            return;
        }
        if let Err(e) = self
            .backends
            .index
            .remove_unconfirmed_artifact(artifact.id)
            .await
        {
            tracing::warn!(artifact_id = %artifact.id, error = %e, "cleanup of unconfirmed artifact failed; the sweeper deletes it on schedule");
        }
    }

    fn scheduled(
        &self,
        mut artifact: Artifact,
        account: &Account,
        anchor: Option<DateTime<Utc>>,
    ) -> Artifact {
        if let Some(anchor) = anchor {
            let schedule = schedule_for(artifact.kind, &account.settings, anchor, &self.platform);
            artifact.anchor_at = Some(anchor);
            artifact.schedule = schedule.kind;
            artifact.delete_after = schedule.delete_after;
            artifact.delete_by = schedule.delete_by;
            artifact.due_at = schedule.delete_after;
        }
        artifact
    }

    // ---- uploads ----------------------------------------------------------------------

    /// `POST /v2/upload`: streams the bytes into the content store as `uploaded_audio`.
    pub async fn upload(&self, account: &Account, body: ByteStream) -> Result<Artifact> {
        Self::ensure_may_store(account)?;
        let now = self.now();
        let artifact =
            Artifact::new_live(new_id(now), account, None, ArtifactKind::UploadedAudio, now);
        let artifact = self.scheduled(artifact, account, Some(now));
        let artifact = self.store_artifact_stream(artifact, body).await?;
        tracing::info!(artifact_id = %artifact.id, size = artifact.size_bytes, "upload stored");
        Ok(artifact)
    }

    /// An upload's bytes for the pipeline, streamed: `Deleted` from `delete_after` on (§4).
    pub async fn read_upload_stream(&self, id: ArtifactId) -> Result<Option<ByteStream>> {
        let artifact = self
            .backends
            .index
            .artifact(id)
            .await?
            .ok_or(LifecycleError::NotFound)?;
        if artifact.kind != ArtifactKind::UploadedAudio {
            return Err(LifecycleError::NotFound);
        }
        let account = self.account(artifact.account_id).await?;
        if !self.is_servable(&artifact, None, &account) {
            return Ok(None);
        }
        Ok(self
            .backends
            .content
            .get_stream(&artifact.content_key)
            .await?)
    }

    /// An upload's bytes for the pipeline, whole: `Deleted` from `delete_after` on (§4).
    /// The same checks as [`Lethe::read_upload_stream`], which it reads through.
    pub async fn read_upload(&self, id: ArtifactId) -> Result<UploadRead> {
        let Some(mut stream) = self.read_upload_stream(id).await? else {
            return Ok(UploadRead::Deleted);
        };
        let mut bytes = bytes::BytesMut::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| StorageError::Other {
                backend: "content",
                source: Box::new(e),
            })?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(UploadRead::Live(Content::new(bytes.freeze())))
    }

    /// Whether an artifact's content may be served now: live, nothing pending, not past
    /// its own `delete_after` under every policy version since it was scheduled, and (if
    /// linked) not past its transcript's. `transcript` is read through
    /// [`Lethe::effective_transcript`].
    fn is_servable(
        &self,
        artifact: &Artifact,
        transcript: Option<&Transcript>,
        account: &Account,
    ) -> bool {
        let now = self.now();
        let artifact = self.effective_artifact(artifact.clone(), transcript, account);
        let own_expired = artifact.delete_after.is_some_and(|after| after <= now);
        let transcript_gone = artifact.schedule == ScheduleKind::Linked
            && transcript.is_some_and(|t| t.is_redacted_at(now));
        artifact.state == ArtifactState::Live
            && artifact.pending_reason.is_none()
            && !own_expired
            && !transcript_gone
    }

    // ---- transcripts ------------------------------------------------------------------

    /// `POST /v2/transcript`: a queued transcript, its text inputs and URL as artifacts.
    pub async fn create_transcript(
        &self,
        account: &Account,
        new: NewTranscript,
    ) -> Result<Transcript> {
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
                    return Err(LifecycleError::UploadNotAccessible);
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
        if let AudioSource::Url(url) = new.audio {
            let a = Artifact::new_live(
                new_id(now),
                account,
                Some(transcript.id),
                ArtifactKind::UrlAudioReference,
                now,
            );
            self.store_artifact(a, url).await?;
        }
        if let Some(inputs) = new.text_inputs {
            let a = Artifact::new_live(
                new_id(now),
                account,
                Some(transcript.id),
                ArtifactKind::TextInput,
                now,
            );
            self.store_artifact(a, inputs).await?;
        }
        tracing::info!(transcript_id = %transcript.id, account_id = %account.id, "transcript queued");
        Ok(transcript)
    }

    /// A transcript of this account, or `NotFound` (also for another account's).
    /// A transcript of this account, or `NotFound` (also for another account's), with the
    /// schedule every policy version since its creation imposes.
    pub async fn transcript(&self, account: &Account, id: TranscriptId) -> Result<Transcript> {
        match self.backends.index.transcript(id).await? {
            Some(t) if t.account_id == account.id => Ok(self.effective_transcript(t, account)),
            _ => Err(LifecycleError::NotFound),
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

    async fn transcript_for_pipeline(&self, id: TranscriptId) -> Result<(Transcript, Account)> {
        let t = self
            .backends
            .index
            .transcript(id)
            .await?
            .ok_or(LifecycleError::NotFound)?;
        let account = self.account(t.account_id).await?;
        Ok((self.effective_transcript(t, &account), account))
    }

    /// `queued → processing`; repeating it is fine.
    pub async fn mark_processing(&self, id: TranscriptId) -> Result<Transcript> {
        let (mut t, _) = self.transcript_for_pipeline(id).await?;
        match t.status {
            TranscriptStatus::Processing => return Ok(t),
            TranscriptStatus::Queued => {}
            status => {
                return Err(LifecycleError::AlreadyFinished {
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
            return Err(LifecycleError::AlreadyFinished {
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

    async fn link_speech_understanding(
        &self,
        t: &Transcript,
        account: &Account,
        content: Content,
    ) -> Result<Artifact> {
        Self::ensure_may_store(account)?;
        if t.is_redacted_at(self.now()) {
            return Err(LifecycleError::ContentDeleted);
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

    // ---- LLM Gateway and streaming (§6) -------------------------------------------------

    /// Checks a reported time span: it ends after it starts, and not in the future.
    fn check_span(&self, started_at: DateTime<Utc>, ended_at: DateTime<Utc>) -> Result<()> {
        if ended_at < started_at {
            return Err(LifecycleError::Invalid(
                "ended_at must not be before started_at".into(),
            ));
        }
        if ended_at > self.now() {
            return Err(LifecycleError::Invalid(
                "ended_at is in the future; report a request or session once it has ended".into(),
            ));
        }
        Ok(())
    }

    /// `POST /internal/v1/llm-gateway/requests` (§6). Content of a ZDR account is refused
    /// with nothing written; with a BAA and an Anthropic or Google model it is dropped and
    /// only usage kept; otherwise it is an `llm_gateway_io` artifact (hourly deletion with
    /// an account TTL), or a `speech_understanding` one linked to its transcript.
    pub async fn record_llm_request(&self, request: LlmGatewayRequest) -> Result<Recorded> {
        self.check_span(request.started_at, request.ended_at)?;
        let account = self.account(request.account_id).await?;
        if request.content.is_some() {
            Self::ensure_may_store(&account)?;
        }
        let transcript = match request.transcript_id {
            Some(id) => Some(self.transcript(&account, id).await?),
            None => None,
        };
        let zdr = llm_gateway_has_zero_data_retention(
            &account.settings,
            &request.provider,
            &request.model,
        );
        let artifact = match request.content {
            Some(content) if !zdr => Some(match &transcript {
                Some(t) => self.link_speech_understanding(t, &account, content).await?,
                None => {
                    let now = self.now();
                    let a = Artifact::new_live(
                        new_id(now),
                        &account,
                        None,
                        ArtifactKind::LlmGatewayIo,
                        now,
                    );
                    let a = self.scheduled(a, &account, Some(now));
                    self.store_artifact(a, content).await?
                }
            }),
            _ => None,
        };
        let usage = self
            .record_usage(
                &account,
                UsageKind::LlmGateway,
                request.model,
                Some(request.provider),
                request.transcript_id,
                (request.started_at, request.ended_at),
                artifact.as_ref(),
            )
            .await?;
        Ok(Recorded { usage, artifact })
    }

    /// `POST /internal/v1/streaming/sessions` (§6). Content of a ZDR account is refused
    /// with nothing written; an account that opted out of model training gets zero data
    /// retention (content dropped, usage kept); otherwise a `streaming_session` artifact
    /// anchored at the session's end under the `final_transcript` column.
    pub async fn record_streaming_session(&self, session: StreamingSession) -> Result<Recorded> {
        self.check_span(session.started_at, session.ended_at)?;
        let account = self.account(session.account_id).await?;
        if session.content.is_some() {
            Self::ensure_may_store(&account)?;
        }
        let artifact = match session.content {
            Some(content) if !streaming_has_zero_data_retention(&account.settings) => {
                let now = self.now();
                let a = Artifact::new_live(
                    new_id(now),
                    &account,
                    None,
                    ArtifactKind::StreamingSession,
                    now,
                );
                let a = self.scheduled(a, &account, Some(session.ended_at));
                // A session reported after its deadline is never written: it would be
                // stored only to be due at once (§4: nothing kept past delete_after).
                if a.delete_after.is_some_and(|after| after <= now) {
                    tracing::info!(account_id = %account.id, "streaming session reported past its deletion time; content not stored");
                    None
                } else {
                    Some(self.store_artifact(a, content).await?)
                }
            }
            _ => None,
        };
        let usage = self
            .record_usage(
                &account,
                UsageKind::Streaming,
                session.model,
                None,
                None,
                (session.started_at, session.ended_at),
                artifact.as_ref(),
            )
            .await?;
        Ok(Recorded { usage, artifact })
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_usage(
        &self,
        account: &Account,
        kind: UsageKind,
        model: String,
        provider: Option<String>,
        transcript_id: Option<TranscriptId>,
        (started_at, ended_at): (DateTime<Utc>, DateTime<Utc>),
        artifact: Option<&Artifact>,
    ) -> Result<UsageRecord> {
        let now = self.now();
        let usage = UsageRecord {
            id: new_id(now),
            account_id: account.id,
            kind,
            model,
            provider,
            transcript_id,
            started_at,
            ended_at,
            artifact_id: artifact.map(|a| a.id),
            recorded_at: now,
        };
        self.backends.audit.record_usage(&usage).await?;
        tracing::info!(usage_id = %usage.id, account_id = %account.id, kind = %kind, stored = artifact.is_some(), "usage recorded");
        Ok(usage)
    }

    /// An account's usage records, oldest first (the operator's billing view).
    pub async fn usage(
        &self,
        account: AccountId,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>> {
        self.account(account).await?;
        Ok(self.backends.audit.usage(account, after, limit).await?)
    }

    /// An LLM Gateway request's or streaming session's artifact as its owner sees it: its
    /// schedule and, once deleted, its tombstone fields. Another account's is `NotFound`.
    pub async fn standalone_artifact(
        &self,
        account: &Account,
        kind: ArtifactKind,
        id: ArtifactId,
    ) -> Result<Artifact> {
        match self.backends.index.artifact(id).await? {
            Some(a)
                if a.account_id == account.id && a.kind == kind && a.transcript_id.is_none() =>
            {
                Ok(a)
            }
            _ => Err(LifecycleError::NotFound),
        }
    }

    /// A customer's deletion request for an LLM Gateway request or streaming session (§6):
    /// deleted at once. Idempotent.
    pub async fn delete_standalone(
        &self,
        account: &Account,
        kind: ArtifactKind,
        id: ArtifactId,
    ) -> Result<Artifact> {
        let artifact = self.standalone_artifact(account, kind, id).await?;
        if artifact.state != ArtifactState::Deleted {
            let now = self.now();
            self.backends
                .index
                .request_deletion(&[id], DeletionReason::CustomerRequest, now)
                .await?;
            let outcome = self.delete_now(&[id], now).await?;
            if let Some((artifact_id, error)) = outcome.failed.into_iter().next() {
                tracing::warn!(%artifact_id, "customer deletion incomplete; the sweeper retries it");
                return Err(error.into());
            }
            tracing::info!(artifact_id = %id, account_id = %account.id, kind = %kind, "artifact deleted at customer request");
        }
        self.standalone_artifact(account, kind, id).await
    }

    // ---- model training (§6) ----------------------------------------------------------

    /// Live artifacts eligible for model training, in id order after `after`.
    pub async fn training_eligible(
        &self,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        Ok(self
            .backends
            .index
            .training_eligible(self.now(), after, limit)
            .await?)
    }

    /// An eligible artifact, servable now, with its transcript (read through the policy
    /// history); `Ok(None)` once deleted or past `delete_after`; `NotFound` if it never
    /// was eligible or is no training data at all (an audio URL).
    async fn training_artifact(
        &self,
        id: ArtifactId,
    ) -> Result<Option<(Artifact, Option<Transcript>)>> {
        let artifact = self
            .backends
            .index
            .artifact(id)
            .await?
            .ok_or(LifecycleError::NotFound)?;
        let eligible =
            artifact.training_eligible && crate::training::is_training_data(artifact.kind);
        if !eligible && artifact.state != ArtifactState::Deleted {
            return Err(LifecycleError::NotFound);
        }
        let account = self.account(artifact.account_id).await?;
        let transcript = match artifact.transcript_id {
            Some(t) => self
                .backends
                .index
                .transcript(t)
                .await?
                .map(|t| self.effective_transcript(t, &account)),
            None => None,
        };
        let servable = self.is_servable(&artifact, transcript.as_ref(), &account)
            && transcript.as_ref().is_none_or(|t| {
                artifact.kind != ArtifactKind::FinalTranscript || t.is_final(&artifact)
            });
        if !eligible || !servable {
            return Ok(None);
        }
        Ok(Some((artifact, transcript)))
    }

    /// An eligible artifact's content for the training export, PII redacted (§6): text as
    /// redacted JSON or text, audio as it is (see [`Lethe::training_redactions`]).
    /// `None` once it is deleted or past `delete_after`.
    pub async fn training_content(&self, id: ArtifactId) -> Result<Option<TrainingExport>> {
        let Some((artifact, _)) = self.training_artifact(id).await? else {
            return Ok(None);
        };
        let content = &self.backends.content;
        if artifact.kind == ArtifactKind::UploadedAudio {
            return Ok(content
                .get_stream(&artifact.content_key)
                .await?
                .map(TrainingExport::Audio));
        }
        // Anything else may be text (intermediates include model outputs): read whole and
        // redacted as text when it is text.
        let Some(bytes) = content.get(&artifact.content_key).await? else {
            return Ok(None);
        };
        Ok(Some(
            match crate::training::redact(artifact.kind, bytes.expose()) {
                Some((redacted, content_type)) => TrainingExport::Redacted {
                    bytes: redacted.into(),
                    content_type,
                },
                None => TrainingExport::Audio(Box::pin(futures::stream::once(async move {
                    Ok(bytes.into_bytes())
                }))),
            },
        ))
    }

    /// The time ranges (milliseconds) to mute in an eligible artifact's audio: the words
    /// redacted in the transcripts made from it (an upload's transcripts, an
    /// intermediate's transcript, a streaming session's own transcript). `None` once it is
    /// deleted or past `delete_after`.
    pub async fn training_redactions(&self, id: ArtifactId) -> Result<Option<Vec<(i64, i64)>>> {
        let Some((artifact, transcript)) = self.training_artifact(id).await? else {
            return Ok(None);
        };
        let transcripts = match artifact.kind {
            ArtifactKind::UploadedAudio => {
                self.backends
                    .index
                    .transcripts_for_upload(artifact.id)
                    .await?
            }
            ArtifactKind::StreamingSession => {
                let content = self.backends.content.get(&artifact.content_key).await?;
                return Ok(Some(
                    content
                        .map(|c| crate::training::session_ranges(c.expose()))
                        .unwrap_or_default(),
                ));
            }
            _ => transcript.into_iter().collect(),
        };
        let mut ranges = Vec::new();
        for t in transcripts {
            let Some(final_id) = t.final_artifact_id else {
                continue;
            };
            let Some(result) = self.backends.index.artifact(final_id).await? else {
                continue;
            };
            if let Some(content) = self.backends.content.get(&result.content_key).await? {
                if let Ok(json) = serde_json::from_slice(content.expose()) {
                    ranges.extend(crate::training::redact_result(&json).1);
                }
            }
        }
        Ok(Some(crate::training::merge_ranges(ranges)))
    }

    /// `completed`, with its result as the final transcript, anchored now (§4).
    pub async fn complete(
        &self,
        id: TranscriptId,
        result: Content,
        audio_duration: Option<f64>,
    ) -> Result<Transcript> {
        self.finish_transcript(
            id,
            TranscriptStatus::Completed,
            Some(result),
            audio_duration,
            None,
        )
        .await
    }

    /// `error`, anchored now. Its (contentless) result still carries the schedule for the
    /// linked artifacts; a zero-data-retention account gets no result artifact at all.
    pub async fn fail(&self, id: TranscriptId, error: &str) -> Result<Transcript> {
        let result = Content::new(serde_json::json!({"status": "error"}).to_string());
        self.finish_transcript(
            id,
            TranscriptStatus::Error,
            Some(result),
            None,
            Some(error.to_owned()),
        )
        .await
    }

    /// Makes the transcript terminal. Each attempt stores its own result first, then
    /// makes the transcript terminal with a conditional write that names that result:
    /// of racing attempts exactly one wins, the losers remove what they stored, and no
    /// reader ever sees a terminal transcript without its result.
    async fn finish_transcript(
        &self,
        id: TranscriptId,
        status: TranscriptStatus,
        result: Option<Content>,
        audio_duration: Option<f64>,
        error: Option<String>,
    ) -> Result<Transcript> {
        let (t, account) = self.transcript_for_pipeline(id).await?;
        let already_finished = |status| LifecycleError::AlreadyFinished {
            status,
            action: "finishing it",
        };
        if t.status.is_terminal() {
            return Err(already_finished(t.status));
        }
        let zdr = account.settings.zero_data_retention;
        if zdr && status == TranscriptStatus::Completed {
            return Err(LifecycleError::ZeroDataRetention);
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
                    _ => LifecycleError::Concurrent,
                },
                other => other.into(),
            });
        }
        next.revision += 1;
        let next = self.settle(next, &account).await?;
        if schedule.delete_after.is_some() {
            self.wake_sweeper.notify_one();
        }
        tracing::info!(transcript_id = %id, status = %status, "transcript finished");
        Ok(next)
    }

    /// From its anchor on, everything of a terminal transcript has its deadlines (§4):
    /// linked artifacts join the due index with the final transcript's, and any artifact a
    /// policy version since its creation makes shorter is shortened; then the transcript
    /// is recorded as settled. Idempotent, so the sweeper can finish what a crash left.
    async fn settle(&self, mut t: Transcript, account: &Account) -> Result<Transcript> {
        let now = self.now();
        for a in self
            .backends
            .index
            .artifacts_for_transcript(t.id)
            .await?
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
                Err(LifecycleError::Concurrent) => {}
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

    /// The audio URL of a URL-based transcript, while it may be served.
    pub async fn audio_url(&self, account: &Account, t: &Transcript) -> Result<Option<Content>> {
        if t.account_id != account.id || t.is_redacted_at(self.now()) {
            return Ok(None);
        }
        for artifact in self.backends.index.artifacts_for_transcript(t.id).await? {
            if artifact.kind == ArtifactKind::UrlAudioReference
                && self.is_servable(&artifact, Some(t), account)
            {
                return Ok(self.backends.content.get(&artifact.content_key).await?);
            }
        }
        Ok(None)
    }

    /// Artifacts past their `delete_by` and not deleted (the admin overdue listing).
    pub async fn overdue(&self, limit: u32) -> Result<Vec<Artifact>> {
        Ok(self.backends.index.overdue(self.now(), limit).await?)
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
            transcript,
            account: account.clone(),
            artifacts,
        })
    }

    /// `DELETE /v2/transcript/{id}` (§3): deletes every artifact of the transcript and the
    /// upload it was created from, now; keeps its usage metadata. Idempotent. Refused while
    /// queued or processing, with nothing changed.
    pub async fn delete_transcript(
        &self,
        account: &Account,
        id: TranscriptId,
    ) -> Result<Transcript> {
        let transcript = self.transcript(account, id).await?;
        if !transcript.status.is_terminal() {
            return Err(LifecycleError::StillProcessing);
        }
        let now = self.now();
        // The transcript reads as deleted from here on, even if a step below fails.
        let deletion = TranscriptDeletion {
            at: now,
            reason: DeletionReason::CustomerRequest,
        };
        self.backends
            .index
            .mark_transcripts_deleted(&[(id, deletion)])
            .await?;
        let mut ids: Vec<ArtifactId> = self
            .backends
            .index
            .artifacts_for_transcript(id)
            .await?
            .into_iter()
            .filter(|a| a.state != ArtifactState::Deleted)
            .map(|a| a.id)
            .collect();
        if let Some(upload) = transcript.upload_id {
            ids.push(upload);
        }
        if !ids.is_empty() {
            // Due now: should anything below fail, the sweeper finishes it.
            self.backends
                .index
                .request_deletion(&ids, DeletionReason::CustomerRequest, now)
                .await?;
            let outcome = self.delete_now(&ids, now).await?;
            if let Some((artifact_id, error)) = outcome.failed.into_iter().next() {
                tracing::warn!(%artifact_id, transcript_id = %id, "customer deletion incomplete; the sweeper retries it");
                return Err(error.into());
            }
        }
        tracing::info!(transcript_id = %id, account_id = %account.id, "transcript deleted at customer request");
        self.transcript(account, id).await
    }

    /// Claims and deletes due artifacts right away (customer requests), under a claim of
    /// its own: what another pass or request holds is left to it.
    async fn delete_now(&self, ids: &[ArtifactId], now: DateTime<Utc>) -> Result<DeletionOutcome> {
        let claim = self.new_claim(now, "request");
        let claimed = self.backends.index.claim(ids, &claim).await?;
        Ok(deletion::delete_claimed(&self.backends, &self.metrics, claimed, &claim).await?)
    }
}

fn conflict_is_concurrent(error: StorageError) -> LifecycleError {
    match error {
        StorageError::Conflict { .. } => LifecycleError::Concurrent,
        other => other.into(),
    }
}
