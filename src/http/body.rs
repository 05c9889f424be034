//! Response bodies: one struct per body, deriving both `Serialize` (what handlers send)
//! and `ToSchema` (what `/openapi.json` says), each built from the domain value it shows.
//! A handler returns `Json<SomeBody>`, never a hand-assembled `json!` value, so the
//! document and the responses cannot drift apart.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

use super::dto::{RESULT_FIELDS, TRANSCRIPT_REQUEST_FIELDS};
use super::raw::{self, RawObject};
use super::AppState;
use crate::domain::{
    Account, Artifact, ArtifactState, Content, DeletionReason, ReconcileReport, SweepReport,
    SweepState, Transcript, TranscriptStatus, UsageRecord,
};
use crate::engine::{Recorded, RetentionView, TranscriptContent};

pub const DELETED_BY_USER_URL: &str = "http://deleted_by_user";

pub const DELETED_BY_POLICY_URL: &str = "http://deleted_by_retention_policy";

/// Naive ISO-8601 UTC with microseconds, as AssemblyAI's list items are.
pub fn naive_micros(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Every 4xx/5xx body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A sentence a person can act on.
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct UploadResponse {
    /// Use as `audio_url` of `POST /v2/transcript`.
    pub upload_url: String,
}

/// The status of a transcript.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = TranscriptStatus)]
pub enum Status {
    Queued,
    Processing,
    Completed,
    Error,
}

impl From<TranscriptStatus> for Status {
    fn from(s: TranscriptStatus) -> Self {
        match s {
            TranscriptStatus::Queued => Status::Queued,
            TranscriptStatus::Processing => Status::Processing,
            TranscriptStatus::Completed => Status::Completed,
            TranscriptStatus::Error => Status::Error,
        }
    }
}

/// The Transcript object, as AssemblyAI's. Result fields the pipeline stored appear too,
/// except those that are the transcript's own (its id, status, audio, error and webhook).
/// Once deleted (or past `delete_after`): `text` is `Deleted by user.` or `Deleted by
/// retention policy.`, `audio_url`/`webhook_url` the matching sentinel URL, `id`,
/// `status` and `audio_duration` kept, every result and echoed field null.
#[derive(Serialize, ToSchema)]
#[schema(as = Transcript)]
pub struct TranscriptBody {
    pub id: Uuid,
    pub status: Status,
    pub audio_url: String,
    /// The speech model requested, or null.
    #[schema(required = true)]
    pub speech_model: Option<String>,
    /// Requested language-confidence threshold, 0 to 1, or null.
    #[schema(required = true, minimum = 0, maximum = 1)]
    pub language_confidence_threshold: Option<f64>,
    /// Confidence of the detected language, 0 to 1, or null.
    #[schema(required = true, minimum = 0, maximum = 1)]
    pub language_confidence: Option<f64>,
    pub text: Option<String>,
    // Served as the pipeline sent them: a long transcript's words are never parsed here.
    #[schema(value_type = Option<Vec<Value>>)]
    pub words: Option<Box<RawValue>>,
    #[schema(value_type = Option<Vec<Value>>)]
    pub utterances: Option<Box<RawValue>>,
    pub confidence: Option<f64>,
    /// Seconds.
    pub audio_duration: Option<i64>,
    pub error: Option<String>,
    pub language_model: String,
    pub acoustic_model: String,
    pub webhook_url: Option<String>,
    pub webhook_auth: bool,
    pub webhook_auth_header_name: Option<String>,
    pub redact_pii: bool,
    pub auto_highlights: bool,
    pub summarization: bool,
    /// Every other request option echoed, and every further field of the pipeline's
    /// result (null once redacted).
    #[serde(flatten)]
    #[schema(ignore)]
    pub more: RawObject,
}

/// `field` of `map`, taken out, if it has the declared type; `default` otherwise.
fn take<T: DeserializeOwned>(map: &mut RawObject, field: &str, default: T) -> T {
    map.remove(field)
        .and_then(|value| raw::parse(&value))
        .unwrap_or(default)
}

/// `field` of `map`, taken out, if it is a list; kept as sent.
fn take_list(map: &mut RawObject, field: &str) -> Option<Box<RawValue>> {
    map.remove(field).filter(|value| raw::is_array(value))
}

impl TranscriptBody {
    /// The Transcript object (api.md), redacted when its content is deleted or expired.
    pub fn new(state: &AppState, view: &TranscriptContent) -> Self {
        let t = &view.transcript;
        let mut fields = RawObject::default();
        for field in RESULT_FIELDS
            .iter()
            .chain(TRANSCRIPT_REQUEST_FIELDS)
            .filter(|f| !matches!(**f, "audio_url" | "webhook_auth_header_value"))
        {
            fields.insert(*field, raw::null());
        }
        let (audio_url, webhook_auth) = match view.redacted {
            Some(reason) => {
                let (text, url) = match reason {
                    DeletionReason::CustomerRequest => ("Deleted by user.", DELETED_BY_USER_URL),
                    _ => ("Deleted by retention policy.", DELETED_BY_POLICY_URL),
                };
                fields.insert("text", raw::raw(text));
                fields.insert("webhook_url", raw::raw(url));
                (url.to_owned(), false)
            }
            None => {
                if let Value::Object(options) = &t.options {
                    for (field, value) in options {
                        fields.insert(field.as_str(), raw::raw(value));
                    }
                }
                for (field, value) in json_object(view.text_inputs.as_ref()) {
                    if field != "webhook_auth_header_value" {
                        fields.insert(field, value);
                    }
                }
                // The webhook settings shown are the ones Lethe delivers to: the request's,
                // never a result field of the same name.
                for (field, value) in json_object(view.result.as_ref()) {
                    if !matches!(
                        field.as_str(),
                        "id" | "status"
                            | "audio_duration"
                            | "error"
                            | "audio_url"
                            | "webhook_url"
                            | "webhook_auth"
                            | "webhook_auth_header_name"
                            | "webhook_auth_header_value"
                    ) {
                        fields.insert(field, value);
                    }
                }
                (
                    audio_url_of(state, t, view.audio_url.as_ref()),
                    t.webhook_auth,
                )
            }
        };
        let default_model = || "assemblyai_default".to_owned();
        Self {
            id: t.id,
            status: t.status.into(),
            audio_url,
            speech_model: take(&mut fields, "speech_model", None),
            language_confidence_threshold: take(&mut fields, "language_confidence_threshold", None),
            language_confidence: take(&mut fields, "language_confidence", None),
            text: take(&mut fields, "text", None),
            words: take_list(&mut fields, "words"),
            utterances: take_list(&mut fields, "utterances"),
            confidence: take(&mut fields, "confidence", None),
            audio_duration: t.audio_duration.map(|d| d.round() as i64),
            error: t.error.clone(),
            language_model: take(&mut fields, "language_model", default_model()),
            acoustic_model: take(&mut fields, "acoustic_model", default_model()),
            webhook_url: take(&mut fields, "webhook_url", None),
            webhook_auth: {
                fields.remove("webhook_auth");
                webhook_auth
            },
            webhook_auth_header_name: take(&mut fields, "webhook_auth_header_name", None),
            redact_pii: take(&mut fields, "redact_pii", false),
            auto_highlights: take(&mut fields, "auto_highlights", false),
            summarization: take(&mut fields, "summarization", false),
            more: {
                // A secret the request carried is never echoed, whatever stored it.
                fields.remove("webhook_auth_header_value");
                fields
            },
        }
    }
}

fn json_object(content: Option<&Content>) -> RawObject {
    content
        .and_then(|c| RawObject::from_slice(c.expose()).ok())
        .unwrap_or_default()
}

pub fn audio_url_of(state: &AppState, t: &Transcript, url: Option<&Content>) -> String {
    match (t.upload_id, url) {
        (Some(upload), _) => format!("{}/v2/upload/{upload}", state.base_url),
        (None, Some(url)) => String::from_utf8_lossy(url.expose()).into_owned(),
        (None, None) => DELETED_BY_POLICY_URL.to_owned(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct PageDetails {
    pub limit: u32,
    pub result_count: u32,
    pub current_url: String,
    /// The page of older transcripts, or null.
    #[schema(required = true)]
    pub prev_url: Option<String>,
    /// The page of newer transcripts, or null.
    #[schema(required = true)]
    pub next_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TranscriptListItem {
    pub id: Uuid,
    pub resource_url: String,
    pub status: Status,
    /// Naive ISO-8601 UTC with microseconds.
    pub created: String,
    #[schema(required = true)]
    pub completed: Option<String>,
    /// `http://deleted_by_user` or `http://deleted_by_retention_policy` once deleted.
    pub audio_url: String,
    #[schema(required = true)]
    pub error: Option<String>,
}

impl TranscriptListItem {
    pub fn new(state: &AppState, t: &Transcript, audio_url: String) -> Self {
        Self {
            id: t.id,
            resource_url: format!("{}/v2/transcript/{}", state.base_url, t.id),
            status: t.status.into(),
            created: naive_micros(t.created_at),
            completed: t.completed_at.map(naive_micros),
            audio_url,
            error: t.error.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TranscriptList {
    pub page_details: PageDetails,
    /// Newest first.
    pub transcripts: Vec<TranscriptListItem>,
}

#[derive(Serialize, ToSchema)]
pub struct RetentionPolicy {
    /// `ttl`, `baa`, `default` or `zdr`.
    pub mode: String,
    pub transcript_ttl_seconds: Option<i64>,
    /// The policy version the transcript's artifacts were scheduled under.
    pub scheduled_under: String,
}

#[derive(Serialize, ToSchema)]
pub struct ArtifactRetention {
    pub id: Uuid,
    /// One of the artifact kinds of retention.md §2.
    pub kind: String,
    /// `live` or `deleted`.
    pub state: String,
    pub created_at: String,
    pub delete_after: Option<String>,
    pub delete_by: Option<String>,
    pub deleted_at: Option<String>,
    /// `ttl`, `window`, `customer_request`, `linked` or `zdr`.
    pub deletion_reason: Option<String>,
    pub training_eligible: bool,
}

impl ArtifactRetention {
    /// One artifact of a retention view: its schedule (a linked artifact shows its
    /// transcript's) and, once deleted, its tombstone fields. No content.
    pub fn new(
        artifact: &Artifact,
        delete_after: Option<DateTime<Utc>>,
        delete_by: Option<DateTime<Utc>>,
    ) -> Self {
        let deleted = artifact.state == ArtifactState::Deleted;
        Self {
            id: artifact.id,
            kind: artifact.kind.to_string(),
            state: if deleted { "deleted" } else { "live" }.to_owned(),
            created_at: rfc3339(artifact.created_at),
            delete_after: delete_after.map(rfc3339),
            delete_by: delete_by.map(rfc3339),
            deleted_at: artifact.deleted_at.map(rfc3339),
            deletion_reason: artifact.deletion_reason.map(|r| r.to_string()),
            training_eligible: artifact.training_eligible && !deleted,
        }
    }
}

impl From<&Artifact> for ArtifactRetention {
    /// As its own schedule says (a standalone artifact).
    fn from(a: &Artifact) -> Self {
        Self::new(a, a.delete_after, a.delete_by)
    }
}

/// Every artifact of a transcript, including the upload it was created from.
#[derive(Serialize, ToSchema)]
pub struct RetentionViewBody {
    pub transcript_id: Uuid,
    /// Whether an active legal hold covers the transcript: nothing of it is deleted until
    /// the hold is released.
    pub legal_hold: bool,
    pub policy: RetentionPolicy,
    pub artifacts: Vec<ArtifactRetention>,
}

impl From<&RetentionView> for RetentionViewBody {
    fn from(view: &RetentionView) -> Self {
        let settings = &view.account.settings;
        let scheduled_under = view
            .artifacts
            .iter()
            .filter(|a| a.artifact.transcript_id == Some(view.transcript.id))
            .map(|a| a.artifact.policy_version)
            .max()
            .unwrap_or(view.transcript.policy_version);
        Self {
            transcript_id: view.transcript.id,
            legal_hold: view.legal_hold,
            policy: RetentionPolicy {
                mode: settings.mode().as_str().to_owned(),
                transcript_ttl_seconds: settings
                    .effective_transcript_ttl()
                    .map(|d| d.num_seconds()),
                scheduled_under: format!("v{scheduled_under}"),
            },
            artifacts: view
                .artifacts
                .iter()
                .map(|a| ArtifactRetention::new(&a.artifact, a.delete_after, a.delete_by))
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountRetention {
    pub transcript_ttl_seconds: Option<i64>,
    pub upload_ttl_seconds: i64,
    pub model_training_opt_out: bool,
    pub baa: bool,
    /// `us` or `eu`.
    pub region: String,
    pub zero_data_retention: bool,
    /// Derived: `ttl`, `baa`, `default` or `zdr`.
    pub mode: String,
    /// Bumped on every settings change.
    pub policy_version: i64,
    /// A change that shortens existing schedules, while it is being applied to them
    /// (reads already honour it); null when none is in progress.
    pub retention_change: Option<RetentionChange>,
    /// Where `transcript.deleted` events go; null when none is set.
    pub deletion_webhook_url: Option<String>,
    /// The secret events are signed with (HMAC-SHA256 of the body, header
    /// `X-Lethe-Signature: sha256=<hex>`): only in the answer of the PUT that set the URL.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_webhook_secret: Option<String>,
}

impl From<&Account> for AccountRetention {
    fn from(account: &Account) -> Self {
        let s = &account.settings;
        Self {
            transcript_ttl_seconds: s.transcript_ttl.map(|d| d.num_seconds()),
            upload_ttl_seconds: s.upload_ttl.num_seconds(),
            model_training_opt_out: s.model_training_opt_out,
            baa: s.baa,
            region: s.region.as_str().to_owned(),
            zero_data_retention: s.zero_data_retention,
            mode: s.mode().as_str().to_owned(),
            policy_version: account.policy_version,
            retention_change: account.retention_job.as_ref().map(|job| RetentionChange {
                state: "in_progress".to_owned(),
                policy_version: job.target_version,
                started_at: rfc3339(job.started_at),
                artifacts_examined: job.examined,
                artifacts_rescheduled: job.rescheduled,
            }),
            deletion_webhook_url: account.deletion_webhook.as_ref().map(|w| w.url.clone()),
            deletion_webhook_secret: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RetentionChange {
    /// `in_progress`.
    pub state: String,
    pub policy_version: i64,
    pub started_at: String,
    pub artifacts_examined: u64,
    pub artifacts_rescheduled: u64,
}

#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    pub id: Uuid,
    pub status: Status,
}

impl From<&Transcript> for StatusBody {
    fn from(t: &Transcript) -> Self {
        Self {
            id: t.id,
            status: t.status.into(),
        }
    }
}

/// What a reported request or session left.
#[derive(Serialize, ToSchema)]
pub struct RecordedBody {
    pub usage_id: Uuid,
    /// False under zero data retention: only usage metadata was kept.
    pub stored: bool,
    pub artifact: Option<ArtifactRetention>,
}

impl From<&Recorded> for RecordedBody {
    fn from(recorded: &Recorded) -> Self {
        Self {
            usage_id: recorded.usage.id,
            stored: recorded.artifact.is_some(),
            artifact: recorded.artifact.as_ref().map(ArtifactRetention::from),
        }
    }
}

/// One usage record as the operator's billing view shows it.
#[derive(Serialize, ToSchema)]
pub struct UsageRecordBody {
    pub id: Uuid,
    /// `llm_gateway` or `streaming`.
    pub kind: String,
    pub model: String,
    pub provider: Option<String>,
    pub transcript_id: Option<Uuid>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    pub content_stored: bool,
    pub artifact_id: Option<Uuid>,
    pub recorded_at: String,
}

impl From<&UsageRecord> for UsageRecordBody {
    fn from(u: &UsageRecord) -> Self {
        Self {
            id: u.id,
            kind: u.kind.to_string(),
            model: u.model.clone(),
            provider: u.provider.clone(),
            transcript_id: u.transcript_id,
            started_at: rfc3339(u.started_at),
            ended_at: rfc3339(u.ended_at),
            duration_seconds: u.duration_seconds(),
            content_stored: u.artifact_id.is_some(),
            artifact_id: u.artifact_id,
            recorded_at: rfc3339(u.recorded_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UsagePage {
    pub usage: Vec<UsageRecordBody>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct TrainingArtifact {
    pub id: Uuid,
    pub account_id: Uuid,
    pub transcript_id: Option<Uuid>,
    pub kind: String,
    pub created_at: String,
    pub size_bytes: i64,
    /// Where its content can be read while it is live, PII redacted (text) or as stored
    /// (audio).
    pub content_url: String,
    /// Audio only: where the time ranges to mute (the redacted words) are listed.
    pub redactions_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TrainingPage {
    pub artifacts: Vec<TrainingArtifact>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<Uuid>,
}

/// Where to mute an audio artifact of the training export.
#[derive(Serialize, ToSchema)]
pub struct TrainingRedactions {
    pub artifact_id: Uuid,
    /// `[start_ms, end_ms]` of every redacted word, sorted and merged.
    pub ranges_ms: Vec<[i64; 2]>,
}

/// An artifact the pipeline stored.
#[derive(Serialize, ToSchema)]
pub struct ArtifactCreated {
    pub id: Uuid,
    pub kind: String,
    /// Bytes stored (of the content as sent).
    pub size_bytes: i64,
}

impl From<&Artifact> for ArtifactCreated {
    fn from(a: &Artifact) -> Self {
        Self {
            id: a.id,
            kind: a.kind.to_string(),
            size_bytes: a.size_bytes,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountCreated {
    pub id: Uuid,
    /// Shown only in this response; Lethe keeps only its hash.
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountBody {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
    #[serde(flatten)]
    pub settings: AccountRetention,
}

impl From<&Account> for AccountBody {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id,
            name: account.name.clone(),
            created_at: rfc3339(account.created_at),
            settings: account.into(),
        }
    }
}

/// The answer of `PUT /v2/account/retention`: the settings now in force, or with
/// `dry_run=true` what the change would do.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AccountRetentionUpdated {
    Applied(AccountRetention),
    DryRun(RetentionDryRun),
}

/// The answer of `PATCH /admin/v1/accounts/{id}`: the account after the change, or with
/// `dry_run=true` what the change would do.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AccountPatched {
    Applied(AccountBody),
    DryRun(AccountDryRun),
}

/// A dry run of `PUT /v2/account/retention`: nothing was changed.
#[derive(Serialize, ToSchema)]
pub struct RetentionDryRun {
    /// Always true.
    pub dry_run: bool,
    /// The settings that would be in force, as the change itself would answer them.
    pub settings: AccountRetention,
    /// The mode they would derive: `ttl`, `baa`, `default` or `zdr`.
    pub mode: String,
    pub impact: RetentionImpact,
}

impl RetentionDryRun {
    pub fn new(next: &Account, impact: &crate::engine::retention::RetentionImpact) -> Self {
        Self {
            dry_run: true,
            settings: next.into(),
            mode: next.settings.mode().as_str().to_owned(),
            impact: impact.into(),
        }
    }
}

/// A dry run of `PATCH /admin/v1/accounts/{id}`: nothing was changed.
#[derive(Serialize, ToSchema)]
pub struct AccountDryRun {
    /// Always true.
    pub dry_run: bool,
    /// The account as the change would leave it, as the change itself would answer it.
    pub settings: AccountBody,
    /// The mode it would derive: `ttl`, `baa`, `default` or `zdr`.
    pub mode: String,
    pub impact: RetentionImpact,
}

impl AccountDryRun {
    pub fn new(next: &Account, impact: &crate::engine::retention::RetentionImpact) -> Self {
        Self {
            dry_run: true,
            settings: next.into(),
            mode: next.settings.mode().as_str().to_owned(),
            impact: impact.into(),
        }
    }
}

/// What a retention change would do to the account's existing artifacts. Retention only
/// ever gets shorter retroactively, so a change that only lengthens shortens nothing.
#[derive(Serialize, ToSchema)]
pub struct RetentionImpact {
    /// Live artifacts of the account examined.
    pub artifacts_examined: u64,
    /// By artifact kind (retention.md §2), every kind among the artifacts examined.
    pub by_kind: BTreeMap<String, KindImpact>,
    /// Live artifacts whose `delete_after` would become earlier than it is now (or a
    /// deadline where they have none).
    pub shortened: u64,
    /// Of those, the ones whose new `delete_after` has passed: the next pass deletes them.
    pub due_immediately: u64,
    /// The earliest new `delete_after` among those shortened; null when none is.
    pub earliest_new_delete_after: Option<String>,
}

impl From<&crate::engine::retention::RetentionImpact> for RetentionImpact {
    fn from(i: &crate::engine::retention::RetentionImpact) -> Self {
        Self {
            artifacts_examined: i.artifacts_examined,
            by_kind: i
                .by_kind
                .iter()
                .map(|(kind, k)| ((*kind).to_owned(), k.into()))
                .collect(),
            shortened: i.total.shortened,
            due_immediately: i.total.due_immediately,
            earliest_new_delete_after: i.total.earliest_new_delete_after.map(rfc3339),
        }
    }
}

/// What a retention change would do to the existing artifacts of one kind.
#[derive(Serialize, ToSchema)]
pub struct KindImpact {
    pub shortened: u64,
    pub due_immediately: u64,
    pub earliest_new_delete_after: Option<String>,
}

impl From<&crate::engine::retention::KindImpact> for KindImpact {
    fn from(k: &crate::engine::retention::KindImpact) -> Self {
        Self {
            shortened: k.shortened,
            due_immediately: k.due_immediately,
            earliest_new_delete_after: k.earliest_new_delete_after.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct SweepBody {
    pub id: Uuid,
    pub instance: String,
    /// `running`, `finished`, or `failed` (stopped by an error; its counts are what it did
    /// until then, and the next pass takes up the rest).
    pub state: String,
    pub started_at: String,
    /// Null while running.
    pub finished_at: Option<String>,
    /// Null while running.
    pub duration_ms: Option<i64>,
    pub examined: u64,
    pub deleted: u64,
    pub deleted_by_reason: BTreeMap<String, u64>,
    pub failed: u64,
    pub overdue: u64,
    pub stuck_transcripts_errored: u64,
    /// Existing artifacts whose schedules a retention change shortened in this pass.
    pub rescheduled: u64,
    pub truncated: bool,
}

impl From<&SweepReport> for SweepBody {
    fn from(report: &SweepReport) -> Self {
        let finished = report.state != SweepState::Running;
        Self {
            id: report.id,
            instance: report.instance.clone(),
            state: report.state.to_string(),
            started_at: rfc3339(report.started_at),
            finished_at: finished.then(|| rfc3339(report.finished_at)),
            duration_ms: finished.then(|| report.duration().num_milliseconds()),
            examined: report.examined,
            deleted: report.deleted,
            deleted_by_reason: report.deleted_by_reason.clone(),
            failed: report.failed,
            overdue: report.overdue,
            stuck_transcripts_errored: report.stuck_transcripts_errored,
            rescheduled: report.rescheduled,
            truncated: report.truncated,
        }
    }
}

/// A pass started on request and still running.
#[derive(Serialize, ToSchema)]
pub struct SweepStarted {
    pub id: Uuid,
    /// `running`.
    pub state: String,
    /// True when a pass was already running in this instance and this is its id.
    pub already_running: bool,
    /// Where to poll it.
    pub status_url: String,
}

/// The answer of `POST /admin/v1/sweeps`: the finished pass (with `wait=true`), or the
/// pass still running.
#[derive(Serialize)]
#[serde(untagged)]
pub enum SweepAnswer {
    Finished(SweepBody),
    Started(SweepStarted),
}

#[derive(Serialize, ToSchema)]
pub struct SweepList {
    pub sweeps: Vec<SweepBody>,
}

/// One reconciliation run: what it checked and found (ids only, never content).
#[derive(Serialize, ToSchema)]
pub struct Reconciliation {
    pub id: Uuid,
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub repair: bool,
    pub accounts: u64,
    pub checked: u64,
    pub overdue_not_deleted: u64,
    pub orphan_objects: u64,
    pub missing_content: u64,
    pub keys_without_scope: u64,
    pub erasures_reapplied: u64,
    pub repaired: u64,
    /// A few examples of each finding, `kind:id`.
    pub samples: Vec<String>,
}

impl From<&ReconcileReport> for Reconciliation {
    fn from(r: &ReconcileReport) -> Self {
        Self {
            id: r.id,
            instance: r.instance.clone(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            repair: r.repair,
            accounts: r.accounts,
            checked: r.checked,
            overdue_not_deleted: r.overdue_not_deleted,
            orphan_objects: r.orphan_objects,
            missing_content: r.missing_content,
            keys_without_scope: r.keys_without_scope,
            erasures_reapplied: r.erasures_reapplied,
            repaired: r.repaired,
            samples: r.samples.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReconciliationList {
    pub reconciliations: Vec<Reconciliation>,
}

#[derive(Serialize, ToSchema)]
pub struct OverdueArtifact {
    pub id: Uuid,
    pub account_id: Uuid,
    pub transcript_id: Option<Uuid>,
    pub kind: String,
    pub state: String,
    pub delete_after: Option<String>,
    pub delete_by: Option<String>,
}

impl From<&Artifact> for OverdueArtifact {
    fn from(a: &Artifact) -> Self {
        Self {
            id: a.id,
            account_id: a.account_id,
            transcript_id: a.transcript_id,
            kind: a.kind.to_string(),
            state: a.state.to_string(),
            delete_after: a.delete_after.map(rfc3339),
            delete_by: a.delete_by.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OverdueList {
    pub artifacts: Vec<OverdueArtifact>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
