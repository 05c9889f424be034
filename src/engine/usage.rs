//! LLM Gateway requests and streaming sessions (§6): usage metadata always, content where
//! the policy keeps it; customers confirm and request deletion of their own.

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::policy::{
    llm_gateway_has_zero_data_retention, streaming_has_zero_data_retention,
};
use crate::domain::{
    new_id, Account, AccountId, Artifact, ArtifactId, ArtifactKind, ArtifactState, Content,
    TranscriptId, UsageKind, UsageRecord,
};

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

impl Engine {
    /// Checks a reported time span: it ends after it starts, and not in the future.
    pub(crate) fn check_span(
        &self,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
    ) -> Result<()> {
        if ended_at < started_at {
            return Err(EngineError::Invalid(
                "ended_at must not be before started_at".into(),
            ));
        }
        if ended_at > self.now() {
            return Err(EngineError::Invalid(
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
    pub(crate) async fn record_usage(
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
            _ => Err(EngineError::NotFound),
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
        let transcripts: Vec<_> = artifact.transcript_id.into_iter().collect();
        if artifact.state != ArtifactState::Deleted
            && account
                .holds
                .iter()
                .any(|h| h.covers(account.id, &transcripts))
        {
            return Err(EngineError::HeldArtifact);
        }
        if artifact.state != ArtifactState::Deleted {
            let now = self.now();
            let outcome = self.delete_now(&[id], now).await?;
            if let Some((artifact_id, error)) = outcome.failed.into_iter().next() {
                tracing::warn!(%artifact_id, "customer deletion incomplete; the sweeper retries it");
                return Err(error.into());
            }
            tracing::info!(artifact_id = %id, account_id = %account.id, kind = %kind, "artifact deleted at customer request");
        }
        // Another request or pass may hold it and be deleting it right now: the answer
        // waits for its end (briefly: a crashed holder's claim lasts its lease).
        for _ in 0..100 {
            let now = self.standalone_artifact(account, kind, id).await?;
            if now.state == ArtifactState::Deleted {
                return Ok(now);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(EngineError::DeletionInProgress)
    }
}
