//! The engine: every operation on accounts, transcripts and artifacts, over the four
//! storage ports, and the only code that touches them. What the HTTP surfaces, the sweeper
//! and the CLI call.
//!
//! Every content write creates a tracked artifact *before* its bytes are stored, so no
//! content escapes tracking; every read of content checks the schedule first (under every
//! policy version since the artifact was created), so nothing is served from
//! `delete_after` on.
//!
//! One `impl Engine` block per resource: [`accounts`], [`retention`] (the retroactive rule
//! and its jobs), [`uploads`], [`transcripts`], [`usage`] (LLM Gateway and streaming),
//! [`training`] (the export); [`deletion`] is the one deletion pipeline,
//! [`log`] the signed deletion log (receipts, consistency proofs) and [`reconcile`] the
//! independent check.

pub mod accounts;
pub mod dashboard;
pub mod deletion;
pub mod holds;
pub mod log;
pub mod operations;
pub mod reconcile;
pub mod retention;
pub mod training;
pub mod transcripts;
pub mod uploads;
pub mod usage;
pub mod webhooks;

pub use log::{ConsistencyProof, LogSigner};
pub use operations::DueBatch;
pub use retention::JobProgress;
pub use training::TrainingExport;
pub use transcripts::{
    ArtifactView, AudioSource, NewTranscript, RetentionView, TranscriptContent, TranscriptPage,
};
pub use uploads::UploadRead;
pub use usage::{LlmGatewayRequest, Recorded, StreamingSession};

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::domain::policy::schedule_for;
use crate::domain::{
    content_scope, Account, Artifact, ArtifactState, Content, PlatformPolicy, ScheduleKind,
    SettingsError, Transcript, TranscriptStatus,
};
use crate::metrics::Metrics;
use crate::storage::{Backends, ByteStream, Claim, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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
    #[error(
        "a legal hold applies to this transcript; it cannot be deleted until the hold is released"
    )]
    Held,
    #[error(
        "a legal hold applies to this content; it cannot be deleted until the hold is released"
    )]
    HeldArtifact,
    #[error("nothing of this transcript has been deleted yet, so there is no receipt; ask again once it is deleted")]
    NothingDeleted,
    /// Requested, and held by another deletion that has not finished (it will, or the
    /// sweeper after its lease): nothing of it is served meanwhile.
    #[error("its deletion is requested and still in progress; repeat the request to confirm it")]
    DeletionInProgress,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The engine: ports, clock and policy, shared by every surface. Its fields are its own:
/// callers go through its methods.
#[derive(Clone, Debug)]
pub struct Engine {
    backends: Backends,
    clock: Arc<dyn Clock>,
    platform: PlatformPolicy,
    /// How long a deletion claim holds before another sweeper may take over.
    claim_lease: Duration,
    /// Identifies this process in claims and tombstones.
    instance: String,
    /// Notified when a deadline earlier than any known may have appeared (a new
    /// schedule, a shortening, a deletion request): whoever schedules passes listens.
    deadlines: Arc<Notify>,
    metrics: Arc<Metrics>,
    /// Signs the deletion log's checkpoints.
    signer: LogSigner,
    leaves: Arc<log::LeafCache>,
    /// Sends webhooks (redirects are not followed: a receiver answers for itself).
    http: reqwest::Client,
    /// Whether webhooks may call loopback, private and link-local addresses.
    private_webhook_targets: bool,
    /// Notified when a webhook delivery is added.
    webhooks_due: Arc<Notify>,
    /// Base of the URLs handed out (a deletion event's `receipt_url`).
    public_base_url: Arc<str>,
}

impl Engine {
    pub fn new(
        backends: Backends,
        clock: Arc<dyn Clock>,
        platform: PlatformPolicy,
        claim_lease: Duration,
        signer: LogSigner,
        public_base_url: &str,
    ) -> Self {
        Self {
            backends,
            clock,
            platform,
            claim_lease,
            instance: format!("lethe-{}", uuid::Uuid::new_v4().simple()),
            deadlines: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::new()),
            signer,
            leaves: Arc::default(),
            http: webhooks::webhook_client(false),
            private_webhook_targets: false,
            webhooks_due: Arc::new(Notify::new()),
            public_base_url: public_base_url.trim_end_matches('/').into(),
        }
    }

    /// Lets webhooks call loopback, private and link-local addresses (off by default).
    pub fn with_private_webhook_targets(mut self, allowed: bool) -> Self {
        self.private_webhook_targets = allowed;
        self.http = webhooks::webhook_client(allowed);
        self
    }

    /// This process, as claims and tombstones name it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The clock everything here reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Event counters and gauges of this process.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Notified when an earlier deadline may have appeared.
    pub fn deadline_changes(&self) -> Arc<Notify> {
        self.deadlines.clone()
    }

    /// The SQLite store whose file is held in memory, if any: released at shutdown.
    pub(crate) fn held_in_memory(&self) -> Option<&Arc<crate::storage::sqlite::SqliteStore>> {
        self.backends.held_in_memory.as_ref()
    }

    /// The ports themselves, for tests and benchmarks that plant or inspect state.
    #[cfg(feature = "test-support")]
    pub fn backends(&self) -> &Backends {
        &self.backends
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

    pub(crate) fn ensure_may_store(account: &Account) -> Result<()> {
        if account.settings.zero_data_retention {
            return Err(EngineError::ZeroDataRetention);
        }
        Ok(())
    }

    /// Tracks, then stores, one artifact's content; the artifact is forgotten if the bytes
    /// never made it (nothing was confirmed to anyone).
    pub(crate) async fn store_artifact(
        &self,
        artifact: Artifact,
        content: Content,
    ) -> Result<Artifact> {
        let bytes = content.into_bytes();
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
        self.store_artifact_stream(artifact, body).await
    }

    /// Like `store_artifact`, for a body that arrives as a stream: tracked first, then the
    /// bytes, then the size.
    pub(crate) async fn store_artifact_stream(
        &self,
        artifact: Artifact,
        body: ByteStream,
    ) -> Result<Artifact> {
        if let Err(e) = self.backends.index.insert_artifact(&artifact).await {
            return Err(self.refused_insert(&artifact, e).await);
        }
        match self
            .backends
            .content
            .put_stream(&artifact.content_key, body)
            .await
        {
            Ok(size) => {
                match self
                    .backends
                    .index
                    .set_artifact_size(artifact.id, size as i64)
                    .await
                {
                    Ok(()) => {}
                    // Deleted while its content was written (its transcript's deletion,
                    // say): what was written goes too, and nobody is told it was stored.
                    Err(StorageError::Conflict { .. }) => {
                        self.discard(&artifact).await;
                        return Err(EngineError::ContentDeleted);
                    }
                    Err(e) => return Err(e.into()),
                }
                if artifact.due_at.is_some() {
                    self.deadlines.notify_one();
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

    /// Why an artifact was not inserted: its transcript was marked deleted meanwhile (a
    /// customer's deletion racing the pipeline), or the error as it is.
    async fn refused_insert(&self, artifact: &Artifact, error: StorageError) -> EngineError {
        let (StorageError::Conflict { .. }, Some(transcript)) = (&error, artifact.transcript_id)
        else {
            return error.into();
        };
        match self.backends.index.transcript(transcript).await {
            Ok(Some(t)) if t.deletion.is_some() => EngineError::ContentDeleted,
            Ok(_) => EngineError::Concurrent,
            Err(e) => e.into(),
        }
    }

    /// Removes the content of an artifact a deletion took while it was being written (or
    /// never confirmed). Its scope's data key goes too where nothing else of the scope is
    /// left: the artifact's own scope, or a transcript marked deleted with every other
    /// artifact deleted (the write may have made a new key after the deletion destroyed
    /// the old). Returns whether the content is gone; failures are logged, and
    /// reconciliation reports what is left.
    async fn discard(&self, artifact: &Artifact) -> bool {
        if let Err(e) = self.backends.content.delete(&artifact.content_key).await {
            tracing::warn!(artifact_id = %artifact.id, error = %e, "cleanup of unconfirmed content failed; the sweeper deletes it on schedule");
            return false;
        }
        let scope_is_gone = match artifact.transcript_id {
            None => true,
            Some(t) => {
                let deleted = matches!(
                    self.backends.index.transcript(t).await,
                    Ok(Some(t)) if t.deletion.is_some()
                );
                deleted
                    && self
                        .backends
                        .index
                        .artifacts_for_transcript(t)
                        .await
                        .is_ok_and(|all| {
                            all.iter()
                                .all(|a| a.id == artifact.id || a.state == ArtifactState::Deleted)
                        })
            }
        };
        if scope_is_gone {
            self.forget_own_scope(artifact).await;
        }
        true
    }

    /// Destroys the data key of the artifact's scope (crypto-shredding what is left).
    async fn forget_own_scope(&self, artifact: &Artifact) {
        let scope = content_scope(&artifact.content_key);
        if let Err(e) = self.backends.content.forget_scope(scope).await {
            tracing::warn!(artifact_id = %artifact.id, error = %e, "a data key of deleted content could not be destroyed; reconciliation reports it");
        }
    }

    pub(crate) async fn abandon(&self, artifact: &Artifact) {
        if !self.discard(artifact).await {
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

    pub(crate) fn scheduled(
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

    /// Whether an artifact's content may be served now: live, nothing pending, not past
    /// its own `delete_after` under every policy version since it was scheduled, and (if
    /// linked) not past its transcript's. `transcript` is read through
    /// [`Engine::effective_transcript`].
    pub(crate) fn is_servable(
        &self,
        artifact: &Artifact,
        transcript: Option<&Transcript>,
        account: &Account,
    ) -> bool {
        let now = self.now();
        let artifact = self.effective_artifact(artifact.clone(), transcript, account);
        let own_expired = artifact.delete_after.is_some_and(|after| after <= now);
        // A transcript marked deleted serves nothing of its own, whatever each artifact's
        // state says (a deletion a crash cut short is finished later).
        let transcript_gone = transcript.is_some_and(|t| {
            t.deletion.is_some()
                || (artifact.schedule == ScheduleKind::Linked && t.is_redacted_at(now))
        });
        artifact.state == ArtifactState::Live
            && artifact.pending_reason.is_none()
            && !own_expired
            && !transcript_gone
    }

    /// Artifacts past their `delete_by` and not deleted (the admin overdue listing).
    pub async fn overdue(&self, limit: u32) -> Result<Vec<Artifact>> {
        Ok(self.backends.index.overdue(self.now(), limit).await?)
    }
}

pub(crate) fn conflict_is_concurrent(error: StorageError) -> EngineError {
    match error {
        StorageError::Conflict { .. } => EngineError::Concurrent,
        other => other.into(),
    }
}
