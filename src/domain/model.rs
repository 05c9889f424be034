//! The entities Lethe tracks. Content never lives in these structs: artifacts point at it
//! through a `content_key`, which is how deletion can be proven by removing one object.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::kinds::*;
use super::settings::RetentionSettings;

pub type AccountId = Uuid;
pub type TranscriptId = Uuid;
pub type ArtifactId = Uuid;

/// Orders ids created within the same millisecond (or under a clock set backwards).
static ID_CONTEXT: std::sync::Mutex<uuid::ContextV7> =
    std::sync::Mutex::new(uuid::ContextV7::new());

/// A UUIDv7 at `now`: ids sort by creation, also within one millisecond, which keyset
/// pagination and "oldest first" listings rely on.
pub fn new_id(now: DateTime<Utc>) -> Uuid {
    let context = ID_CONTEXT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ts = uuid::Timestamp::from_unix(
        &*context,
        now.timestamp().max(0) as u64,
        now.timestamp_subsec_nanos(),
    );
    Uuid::new_v7(ts)
}

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub settings: RetentionSettings,
    /// Bumped on every settings change; artifacts record the version they were scheduled under.
    pub policy_version: i64,
    pub created_at: DateTime<Utc>,
    /// Every policy version the account has had, oldest first, the current one last: what
    /// the retroactive rule (§1) measures an artifact against since it was created.
    pub history: Vec<PolicyRecord>,
    /// The retention change still being carried to the existing artifacts, if any.
    pub retention_job: Option<RetentionJob>,
    /// The account's active legal holds, read with the account (placed and released
    /// through their own calls, never written with the account).
    pub holds: Vec<LegalHold>,
    /// Where `transcript.deleted` events go (set through its own call).
    pub deletion_webhook: Option<DeletionWebhook>,
}

/// An account's deletion webhook: its URL and the secret events are signed with. Neither
/// appears in a debug print, a log line or an export.
#[derive(Clone, PartialEq, Eq)]
pub struct DeletionWebhook {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for DeletionWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeletionWebhook { .. }")
    }
}

impl Account {
    /// Whether an active hold of this account covers the transcript.
    pub fn holds_transcript(&self, transcript: TranscriptId) -> bool {
        self.holds.iter().any(|h| h.covers(self.id, &[transcript]))
    }

    /// A new account's first policy version.
    pub fn new(
        id: AccountId,
        name: String,
        settings: RetentionSettings,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            name,
            history: vec![PolicyRecord {
                version: 1,
                settings: settings.clone(),
                since: now,
            }],
            settings,
            holds: Vec::new(),
            deletion_webhook: None,
            policy_version: 1,
            created_at: now,
            retention_job: None,
        }
    }

    /// The settings of every version from `version` on (inclusive), oldest first, ending
    /// with the settings in force.
    pub fn settings_from(&self, version: i64) -> impl Iterator<Item = &RetentionSettings> {
        let recorded = self
            .history
            .iter()
            .filter(move |r| r.version >= version && r.version < self.policy_version)
            .map(|r| &r.settings);
        recorded.chain(std::iter::once(&self.settings))
    }

    /// The settings of every version after `version`, oldest first; empty when `version`
    /// is the one in force.
    pub fn settings_after(&self, version: i64) -> impl Iterator<Item = &RetentionSettings> {
        let newer = version < self.policy_version;
        self.settings_from(version + 1).filter(move |_| newer)
    }

    /// The account with `settings` as its next policy version, recorded in its history,
    /// and a retention job that carries the change to existing artifacts when the change
    /// can shorten anything.
    pub fn with_settings(&self, settings: RetentionSettings, now: DateTime<Utc>) -> Account {
        let mut next = self.clone();
        next.policy_version += 1;
        if settings.may_shorten(&self.settings) {
            next.retention_job = Some(RetentionJob {
                target_version: next.policy_version,
                cursor: None,
                started_at: now,
                examined: 0,
                rescheduled: 0,
            });
        }
        next.history.push(PolicyRecord {
            version: next.policy_version,
            settings: settings.clone(),
            since: now,
        });
        next.settings = settings;
        next
    }
}

/// One policy version of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub version: i64,
    pub settings: RetentionSettings,
    pub since: DateTime<Utc>,
}

/// A retention change being carried to existing artifacts (§1 decision), recorded with the
/// settings in the same write so that no crash or timeout loses it. Any sweeper advances it
/// in bounded batches by artifact id; a newer change restarts it from the beginning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetentionJob {
    /// The policy version this job carries (the account's version when it was recorded).
    pub target_version: i64,
    /// The last artifact id examined; `None` before the first batch.
    pub cursor: Option<ArtifactId>,
    pub started_at: DateTime<Utc>,
    /// Artifacts examined so far.
    pub examined: u64,
    /// Artifacts whose schedule got shorter so far.
    pub rescheduled: u64,
}

/// How a transcript came to be deleted, which decides its redacted body (api.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranscriptDeletion {
    pub at: DateTime<Utc>,
    pub reason: DeletionReason,
}

/// A transcript's usage metadata and lifecycle. Its content (results, text inputs, the
/// audio URL) is held in artifacts; what is here survives deletion.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    pub id: TranscriptId,
    pub account_id: AccountId,
    pub status: TranscriptStatus,
    pub created_at: DateTime<Utc>,
    /// When it reached a terminal status: the anchor of its final transcript and linked artifacts.
    pub completed_at: Option<DateTime<Utc>>,
    /// The upload it was created from, if its `audio_url` was one of ours.
    pub upload_id: Option<ArtifactId>,
    /// Echoed request options that are not content (`speech_model`, `punctuate`, ...).
    pub options: serde_json::Value,
    pub webhook_auth: bool,
    pub audio_duration: Option<f64>,
    pub error: Option<String>,
    pub policy_version: i64,
    /// The final transcript's schedule once anchored; linked artifacts share it.
    pub delete_after: Option<DateTime<Utc>>,
    pub delete_by: Option<DateTime<Utc>>,
    pub deletion: Option<TranscriptDeletion>,
    /// The final transcript that won the race to finish it: set in the same conditional
    /// write that makes it terminal, so exactly one result is ever served or kept.
    pub final_artifact_id: Option<ArtifactId>,
    /// Whether every artifact of it has the deadlines its anchor gives: false from the
    /// write that makes it terminal until those deadlines are written, so that a crash in
    /// between is finished by the next sweep.
    pub settled: bool,
    /// Optimistic-concurrency counter for status transitions.
    pub revision: i64,
}

impl Transcript {
    /// Whether `artifact` is this transcript's final transcript (the one that won the race
    /// to finish it; any final transcript for rows written before that was recorded).
    pub fn is_final(&self, artifact: &Artifact) -> bool {
        artifact.kind == ArtifactKind::FinalTranscript
            && artifact.transcript_id == Some(self.id)
            && self.final_artifact_id.is_none_or(|id| id == artifact.id)
    }

    /// Whether its content must be served as deleted at `now` (§4: even before a sweep).
    pub fn is_redacted_at(&self, now: DateTime<Utc>) -> bool {
        self.deletion.is_some() || self.delete_after.is_some_and(|after| after <= now)
    }

    /// The reason a reader should see: the recorded one, or the policy's if only expired.
    pub fn redaction_reason_at(&self, now: DateTime<Utc>) -> Option<DeletionReason> {
        match self.deletion {
            Some(deletion) => Some(deletion.reason),
            None if self.is_redacted_at(now) => Some(DeletionReason::Ttl),
            None => None,
        }
    }
}

/// One tracked piece of content and its schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub id: ArtifactId,
    pub account_id: AccountId,
    /// `None` for uploads, which transcripts reference through `Transcript::upload_id`.
    pub transcript_id: Option<TranscriptId>,
    pub kind: ArtifactKind,
    /// A label the pipeline gave it (an intermediate's name); not content.
    pub name: Option<String>,
    pub state: ArtifactState,
    pub created_at: DateTime<Utc>,
    pub anchor_at: Option<DateTime<Utc>>,
    pub schedule: ScheduleKind,
    pub delete_after: Option<DateTime<Utc>>,
    pub delete_by: Option<DateTime<Utc>>,
    /// When a sweeper should act on it; `None` while nothing is scheduled and once deleted
    /// (the due index is sparse).
    pub due_at: Option<DateTime<Utc>>,
    /// The policy version its schedule was last set under.
    pub policy_version: i64,
    /// The policy version it was created under: the retroactive rule (§1) measures every
    /// version from this one on.
    pub created_version: i64,
    pub size_bytes: i64,
    pub content_key: String,
    pub training_eligible: bool,
    /// Set when a deletion was requested (customer, cascade) before it completed.
    pub pending_reason: Option<DeletionReason>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deletion_reason: Option<DeletionReason>,
}

impl Artifact {
    /// A live artifact with no schedule yet; callers set it from the policy.
    pub fn new_live(
        id: ArtifactId,
        account: &Account,
        transcript_id: Option<TranscriptId>,
        kind: ArtifactKind,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            account_id: account.id,
            transcript_id,
            kind,
            name: None,
            state: ArtifactState::Live,
            created_at,
            anchor_at: None,
            schedule: ScheduleKind::Linked,
            delete_after: None,
            delete_by: None,
            due_at: None,
            policy_version: account.policy_version,
            created_version: account.policy_version,
            size_bytes: 0,
            // <account>/<scope>/<artifact>: the scope (transcript, or the upload itself)
            // is what a data key encrypts and crypto-shredding forgets.
            content_key: content_key(account.id, transcript_id.unwrap_or(id), id),
            // An audio URL may carry credentials or a signature: never training data.
            training_eligible: account.settings.training_eligible()
                && kind != ArtifactKind::UrlAudioReference,
            pending_reason: None,
            claimed_by: None,
            claimed_until: None,
            deleted_at: None,
            deletion_reason: None,
        }
    }

    /// Its schedule as stored.
    pub fn schedule(&self) -> super::policy::Schedule {
        super::policy::Schedule {
            kind: self.schedule,
            delete_after: self.delete_after,
            delete_by: self.delete_by,
        }
    }

    /// Whether a sweeper may delete it at `now`: only from `delete_after` on (§4), unless a
    /// deletion was explicitly requested.
    pub fn may_be_deleted_at(&self, now: DateTime<Utc>) -> bool {
        self.pending_reason.is_some() || self.delete_after.is_some_and(|after| after <= now)
    }

    /// The reason recorded when it is deleted now.
    pub fn reason_for_deletion(&self) -> DeletionReason {
        self.pending_reason.unwrap_or(match self.schedule {
            ScheduleKind::Window => DeletionReason::Window,
            ScheduleKind::Linked => DeletionReason::Linked,
            ScheduleKind::Point | ScheduleKind::Indefinite => DeletionReason::Ttl,
        })
    }

    pub fn is_overdue_at(&self, now: DateTime<Utc>) -> bool {
        self.state != ArtifactState::Deleted && self.delete_by.is_some_and(|by| by < now)
    }
}

/// What remains of a deleted artifact, and what confirmation reads (§5).
#[derive(Clone, Debug, PartialEq)]
pub struct Tombstone {
    pub artifact_id: ArtifactId,
    pub account_id: AccountId,
    pub transcript_id: Option<TranscriptId>,
    pub kind: ArtifactKind,
    pub size_bytes: i64,
    pub anchor_at: Option<DateTime<Utc>>,
    pub delete_after: Option<DateTime<Utc>>,
    pub delete_by: Option<DateTime<Utc>>,
    pub deleted_at: DateTime<Utc>,
    pub reason: DeletionReason,
    pub deleted_by: String,
}

impl Tombstone {
    pub fn for_artifact(artifact: &Artifact, deleted_at: DateTime<Utc>, deleted_by: &str) -> Self {
        Self {
            artifact_id: artifact.id,
            account_id: artifact.account_id,
            transcript_id: artifact.transcript_id,
            kind: artifact.kind,
            size_bytes: artifact.size_bytes,
            anchor_at: artifact.anchor_at,
            delete_after: artifact.delete_after,
            delete_by: artifact.delete_by,
            deleted_at,
            reason: artifact.reason_for_deletion(),
            deleted_by: deleted_by.to_owned(),
        }
    }
}

/// A legal hold: while active (not released), nothing of the account — or of the one
/// transcript, with its upload — is deleted by any path. Holds are never deleted: with
/// their creation and release times they are the audit trail of themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegalHold {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub transcript_id: Option<TranscriptId>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

impl LegalHold {
    /// Whether this hold covers an artifact of `account` belonging to `transcripts` (its
    /// own transcript, or for an upload every transcript made from it).
    pub fn covers(&self, account: AccountId, transcripts: &[TranscriptId]) -> bool {
        self.released_at.is_none()
            && self.account_id == account
            && self
                .transcript_id
                .is_none_or(|held| transcripts.contains(&held))
    }
}

/// One webhook call in the outbox. The target is never stored here: a completion
/// webhook's URL and auth header are content, read from the transcript's text inputs when
/// delivering (so they go with the transcript); a deletion event goes to the account's
/// deletion webhook as it is when delivering.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookDelivery {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub transcript_id: TranscriptId,
    pub event: WebhookEvent,
    /// The JSON body sent (ids, status or reason and times; never content).
    pub payload: serde_json::Value,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (never the URL or a header).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The claim owner of artifacts parked by a legal hold.
pub const HOLD_OWNER: &str = "legal-hold";

/// Usage metadata of one LLM Gateway request or streaming session (§2, §6): not content,
/// kept for billing in every mode, also when zero data retention drops the content.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageRecord {
    pub id: Uuid,
    pub account_id: AccountId,
    pub kind: UsageKind,
    pub model: String,
    pub provider: Option<String>,
    pub transcript_id: Option<TranscriptId>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The artifact holding its content; `None` when none was stored (zero data retention).
    pub artifact_id: Option<ArtifactId>,
    pub recorded_at: DateTime<Utc>,
}

impl UsageRecord {
    /// The request's or session's duration, what is billed.
    pub fn duration_seconds(&self) -> f64 {
        (self.ended_at - self.started_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1e6
    }
}

/// The summary of one sweep pass, recorded and returned by the admin API.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SweepReport {
    pub id: Uuid,
    pub instance: String,
    pub state: SweepState,
    pub started_at: DateTime<Utc>,
    /// When it ended; while it runs, its start.
    pub finished_at: DateTime<Utc>,
    /// Existing artifacts whose schedules retention changes shortened in this pass.
    pub rescheduled: u64,
    /// Due artifacts this pass looked at.
    pub examined: u64,
    /// Artifacts this pass deleted, all reasons.
    pub deleted: u64,
    pub deleted_by_reason: std::collections::BTreeMap<String, u64>,
    /// Deletions that failed and stay claimed for a later pass.
    pub failed: u64,
    /// Artifacts found past `delete_by` (deleted late or still not deleted).
    pub overdue: u64,
    /// Transcripts moved to `error` after `max_processing`.
    pub stuck_transcripts_errored: u64,
    /// True when the pass stopped at its per-pass bound with work left.
    pub truncated: bool,
    /// Seconds from `delete_after` to deletion for scheduled (non-requested) deletions.
    #[serde(skip)]
    pub lags: Vec<f64>,
}

impl SweepReport {
    pub fn duration(&self) -> Duration {
        self.finished_at - self.started_at
    }
}

/// At most this many examples of each finding are kept in a reconciliation report.
const SAMPLES: usize = 20;

/// What one reconciliation found (and, with repair, fixed). Ids only, never content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub id: Uuid,
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub repair: bool,
    /// Accounts walked.
    pub accounts: u64,
    /// Artifacts and objects checked.
    pub checked: u64,
    pub overdue_not_deleted: u64,
    pub orphan_objects: u64,
    pub missing_content: u64,
    pub keys_without_scope: u64,
    pub erasures_reapplied: u64,
    /// Findings repaired (with `repair` only).
    pub repaired: u64,
    /// A few of each finding: `kind:id`.
    pub samples: Vec<String>,
}

impl ReconcileReport {
    pub fn sample(&mut self, what: &str, id: impl std::fmt::Display) {
        if self.samples.iter().filter(|s| s.starts_with(what)).count() < SAMPLES {
            self.samples.push(format!("{what}:{id}"));
        }
    }

    /// Findings of every kind.
    pub fn findings(&self) -> u64 {
        self.overdue_not_deleted
            + self.orphan_objects
            + self.missing_content
            + self.keys_without_scope
            + self.erasures_reapplied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_at_the_same_instant_still_sort_by_creation() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let ids: Vec<Uuid> = (0..1000).map(|_| new_id(now)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        // The text form (what SQLite compares) sorts the same way.
        let texts: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let mut sorted_texts = texts.clone();
        sorted_texts.sort();
        assert_eq!(texts, sorted_texts);
    }
}
