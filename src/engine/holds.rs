//! Legal holds: an operator holds an account, or one transcript of it (with its upload);
//! while a hold is active no path deletes what it covers (the deletion pipeline parks it,
//! a customer deletion is refused), and on release whatever is past its deadline is due
//! at once. Holds and releases are kept for good and logged.

use super::*;
use crate::domain::{AccountId, Artifact, ArtifactId, LegalHold, TranscriptId, HOLD_OWNER};

/// Longest hold reason accepted.
pub const HOLD_REASON_MAX: usize = 1000;

impl Engine {
    /// Places a hold on an account, or on one transcript of it; not found when either is
    /// missing (or the transcript is another account's).
    pub async fn create_hold(
        &self,
        account_id: AccountId,
        transcript_id: Option<TranscriptId>,
        reason: &str,
    ) -> Result<LegalHold> {
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > HOLD_REASON_MAX
            || reason.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(EngineError::Invalid(format!(
                "reason is required: a non-empty text of at most {HOLD_REASON_MAX} characters, without control characters"
            )));
        }
        let account = self.account(account_id).await?;
        if let Some(id) = transcript_id {
            self.transcript(&account, id).await?;
        }
        let now = self.now();
        let hold = LegalHold {
            id: crate::domain::new_id(now),
            account_id,
            transcript_id,
            reason: reason.to_owned(),
            created_at: now,
            released_at: None,
        };
        self.backends.accounts.create_hold(&hold).await?;
        tracing::info!(hold_id = %hold.id, %account_id, transcript_id = ?transcript_id, "legal hold placed");
        Ok(hold)
    }

    /// Releases a hold; what it kept past its deadline is due at once (deleted by the next
    /// pass, which this wakes). Releasing a released hold changes nothing.
    pub async fn release_hold(&self, id: uuid::Uuid) -> Result<LegalHold> {
        let now = self.now();
        let hold = self
            .backends
            .accounts
            .release_hold(id, now)
            .await?
            .ok_or(EngineError::NotFound)?;
        // Unpark what no other active hold still covers.
        let others = self
            .backends
            .accounts
            .active_holds(&[hold.account_id])
            .await?;
        let parked = self.parked_under(&hold).await?;
        let mut free = Vec::new();
        for artifact in parked {
            let transcripts =
                super::deletion::holdable_transcripts(&self.backends, &artifact).await?;
            if !others
                .iter()
                .any(|h| h.covers(artifact.account_id, &transcripts))
            {
                free.push(artifact.id);
            }
        }
        for chunk in free.chunks(500) {
            self.backends.index.unpark(chunk).await?;
        }
        tracing::info!(hold_id = %hold.id, account_id = %hold.account_id, released = free.len(), "legal hold released");
        self.deadlines.notify_one();
        Ok(hold)
    }

    /// Holds, of one account or all, by id after `after`.
    pub async fn holds(
        &self,
        account: Option<AccountId>,
        include_released: bool,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<LegalHold>> {
        Ok(self
            .backends
            .accounts
            .holds(account, include_released, after, limit)
            .await?)
    }

    /// The artifacts parked under the hold's scope.
    async fn parked_under(&self, hold: &LegalHold) -> Result<Vec<Artifact>> {
        let mut found = Vec::new();
        match hold.transcript_id {
            Some(transcript) => {
                found.extend(
                    self.backends
                        .index
                        .artifacts_for_transcript(transcript)
                        .await?,
                );
                if let Some(t) = self.backends.index.transcript(transcript).await? {
                    if let Some(upload) = t.upload_id {
                        found.extend(self.backends.index.artifact(upload).await?);
                    }
                }
            }
            None => {
                let mut after: Option<ArtifactId> = None;
                loop {
                    let page = self
                        .backends
                        .index
                        .live_artifacts_for_account(hold.account_id, after, 1000)
                        .await?;
                    after = page.last().map(|a| a.id);
                    let done = page.len() < 1000;
                    found.extend(page);
                    if done {
                        break;
                    }
                }
            }
        }
        found.retain(|a| a.claimed_by.as_deref() == Some(HOLD_OWNER));
        Ok(found)
    }
}
