//! The OpenAPI document of all three surfaces. Routes are registered with `utoipa-axum`
//! together with their `#[utoipa::path]` annotations (see [`super::router`]), so the
//! document is generated from the same table that serves requests. The schemas below
//! describe bodies that handlers build; `docs/openapi.json` is the checked-in copy, kept
//! equal to the generated one by a test.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lethe",
        description = "Retention and TTL lifecycle engine. Public API compatible with AssemblyAI's /v2 transcript API; internal API for the transcription pipeline; admin API for operators.",
        version = "0.1.0"
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "public", description = "Customers, with their API key in `Authorization` (no `Bearer`)"),
        (name = "internal", description = "The transcription pipeline, with `Authorization: Bearer <internal token>`"),
        (name = "admin", description = "Operators, with `Authorization: Bearer <admin token>`"),
        (name = "operations", description = "Health and metrics, no authentication"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        );
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("internal_token", bearer());
        components.add_security_scheme("admin_token", bearer());
    }
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

/// The Transcript object, as AssemblyAI's. Result fields the pipeline stored appear too.
/// Once deleted (or past `delete_after`): `text` is `Deleted by user.` or `Deleted by
/// retention policy.`, `audio_url`/`webhook_url` the matching sentinel URL, `id`,
/// `status` and `audio_duration` kept, every result and echoed field null.
#[derive(Serialize, ToSchema)]
#[schema(as = Transcript)]
pub struct TranscriptObject {
    pub id: uuid::Uuid,
    pub status: TranscriptStatusDoc,
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
    pub words: Option<Vec<serde_json::Value>>,
    pub utterances: Option<Vec<serde_json::Value>>,
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

/// The status of a transcript.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = TranscriptStatus)]
pub enum TranscriptStatusDoc {
    Queued,
    Processing,
    Completed,
    Error,
}

#[derive(Serialize, ToSchema)]
pub struct TranscriptListItem {
    pub id: uuid::Uuid,
    pub resource_url: String,
    pub status: TranscriptStatusDoc,
    /// Naive ISO-8601 UTC with microseconds.
    pub created: String,
    #[schema(required = true)]
    pub completed: Option<String>,
    /// `http://deleted_by_user` or `http://deleted_by_retention_policy` once deleted.
    pub audio_url: String,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The query of `GET /v2/transcript`, as AssemblyAI's.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler parses it with its own messages
pub struct ListTranscriptParams {
    /// Maximum amount of transcripts to retrieve
    #[param(minimum = 1, maximum = 200, default = 10)]
    pub limit: Option<i64>,
    /// Filter by transcript status
    #[param(inline)]
    pub status: Option<TranscriptStatusDoc>,
    /// Only get transcripts created on this date
    pub created_on: Option<chrono::NaiveDate>,
    /// Get transcripts that were created before this transcript ID
    pub before_id: Option<uuid::Uuid>,
    /// Get transcripts that were created after this transcript ID
    pub after_id: Option<uuid::Uuid>,
    /// Only get throttled transcripts, overrides the status filter (Lethe never throttles:
    /// `true` lists none)
    #[param(default = false)]
    pub throttled_only: Option<bool>,
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
    pub id: String,
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

/// Every artifact of a transcript, including the upload it was created from.
#[derive(Serialize, ToSchema)]
pub struct RetentionViewBody {
    pub transcript_id: String,
    /// Whether an active legal hold covers the transcript: nothing of it is deleted until
    /// the hold is released.
    pub legal_hold: bool,
    pub policy: RetentionPolicy,
    pub artifacts: Vec<ArtifactRetention>,
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
    pub deletion_webhook_secret: Option<String>,
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

/// The customer-settable fields; `baa`, `region` and `zero_data_retention` are refused with 403.
#[derive(Serialize, ToSchema)]
pub struct AccountRetentionUpdate {
    /// 3600 or more (at most 259200 with a BAA); null removes the TTL.
    pub transcript_ttl_seconds: Option<i64>,
    pub upload_ttl_seconds: Option<i64>,
    pub model_training_opt_out: Option<bool>,
    /// An absolute http(s) URL for `transcript.deleted` events, or null to stop them; a new
    /// signing secret is made and shown once in the answer.
    pub deletion_webhook_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    pub id: String,
    pub status: String,
}

/// `POST /internal/v1/llm-gateway/requests`. Without `input` and `output` only usage is recorded.
#[derive(Serialize, ToSchema)]
pub struct LlmGatewayRequestBody {
    pub account_id: String,
    /// `anthropic`, `google`, `openai`, ...: with a BAA, `anthropic` and `google` get zero data retention.
    pub provider: String,
    pub model: String,
    /// Any JSON: stored as content unless zero data retention applies.
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    /// For speech understanding: stored as a `speech_understanding` artifact linked to it.
    pub transcript_id: Option<String>,
    /// RFC 3339; default: `ended_at`.
    pub started_at: Option<String>,
    /// RFC 3339; default: now.
    pub ended_at: Option<String>,
}

/// `POST /internal/v1/streaming/sessions`. Without `audio` and `transcript` only usage is recorded.
#[derive(Serialize, ToSchema)]
pub struct StreamingSessionBody {
    pub account_id: String,
    pub model: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, not in the future: the anchor of the session's retention.
    pub ended_at: String,
    /// Base64-encoded audio.
    pub audio: Option<String>,
    /// Any JSON.
    pub transcript: Option<serde_json::Value>,
}

/// What a reported request or session left.
#[derive(Serialize, ToSchema)]
pub struct RecordedBody {
    pub usage_id: String,
    /// False under zero data retention: only usage metadata was kept.
    pub stored: bool,
    pub artifact: Option<ArtifactRetention>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageRecordBody {
    pub id: String,
    /// `llm_gateway` or `streaming`.
    pub kind: String,
    pub model: String,
    pub provider: Option<String>,
    pub transcript_id: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    pub content_stored: bool,
    pub artifact_id: Option<String>,
    pub recorded_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct UsagePage {
    pub usage: Vec<UsageRecordBody>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TrainingArtifact {
    pub id: String,
    pub account_id: String,
    pub transcript_id: Option<String>,
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
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ArtifactCreated {
    pub id: String,
    pub kind: String,
}

/// The pipeline's result: becomes the final transcript. Any further result fields are kept.
#[derive(Serialize, ToSchema)]
pub struct CompleteRequest {
    pub text: Option<String>,
    pub words: Option<Vec<serde_json::Value>>,
    pub utterances: Option<Vec<serde_json::Value>>,
    /// From 0 to 1.
    pub confidence: Option<f64>,
    /// Seconds; usage metadata, kept after deletion.
    pub audio_duration: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorRequest {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountCreate {
    pub name: String,
    pub baa: Option<bool>,
    pub region: Option<String>,
    pub zero_data_retention: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountCreated {
    pub id: String,
    /// Shown only in this response; Lethe keeps only its hash.
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountBody {
    pub id: String,
    pub name: String,
    pub created_at: String,
    #[serde(flatten)]
    pub settings: AccountRetention,
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

/// What a retention change would do to the account's existing artifacts. Retention only
/// ever gets shorter retroactively, so a change that only lengthens shortens nothing.
#[derive(Serialize, ToSchema)]
pub struct RetentionImpact {
    /// Live artifacts of the account examined.
    pub artifacts_examined: u64,
    /// By artifact kind (retention.md §2), every kind among the artifacts examined.
    pub by_kind: std::collections::BTreeMap<String, KindImpact>,
    /// Live artifacts whose `delete_after` would become earlier than it is now (or a
    /// deadline where they have none).
    pub shortened: u64,
    /// Of those, the ones whose new `delete_after` has passed: the next pass deletes them.
    pub due_immediately: u64,
    /// The earliest new `delete_after` among those shortened; null when none is.
    pub earliest_new_delete_after: Option<String>,
}

/// What a retention change would do to the existing artifacts of one kind.
#[derive(Serialize, ToSchema)]
pub struct KindImpact {
    pub shortened: u64,
    pub due_immediately: u64,
    pub earliest_new_delete_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountPatch {
    pub baa: Option<bool>,
    pub region: Option<String>,
    pub zero_data_retention: Option<bool>,
    pub transcript_ttl_seconds: Option<i64>,
    pub upload_ttl_seconds: Option<i64>,
    pub model_training_opt_out: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct SweepBody {
    pub id: String,
    pub instance: String,
    /// `running` or `finished`.
    pub state: String,
    pub started_at: String,
    /// Null while running.
    pub finished_at: Option<String>,
    /// Null while running.
    pub duration_ms: Option<i64>,
    /// Existing artifacts whose schedules a retention change shortened in this pass.
    pub rescheduled: u64,
    pub examined: u64,
    pub deleted: u64,
    pub deleted_by_reason: std::collections::BTreeMap<String, u64>,
    pub failed: u64,
    pub overdue: u64,
    pub stuck_transcripts_errored: u64,
    pub truncated: bool,
}

/// A pass started on request and still running.
#[derive(Serialize, ToSchema)]
pub struct SweepStarted {
    pub id: String,
    /// `running`.
    pub state: String,
    /// True when a pass was already running in this instance and this is its id.
    pub already_running: bool,
    /// Where to poll it.
    pub status_url: String,
}

/// One reconciliation run: what it checked and found (ids only, never content).
#[derive(Serialize, ToSchema)]
pub struct Reconciliation {
    pub id: String,
    pub instance: String,
    pub started_at: String,
    pub finished_at: String,
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

#[derive(Serialize, ToSchema)]
pub struct ReconciliationList {
    pub reconciliations: Vec<Reconciliation>,
}

/// Where to mute an audio artifact of the training export.
#[derive(Serialize, ToSchema)]
pub struct TrainingRedactions {
    pub artifact_id: String,
    /// `[start_ms, end_ms]` of every redacted word, sorted and merged.
    pub ranges_ms: Vec<[i64; 2]>,
}

#[derive(Serialize, ToSchema)]
pub struct SweepList {
    pub sweeps: Vec<SweepBody>,
}

#[derive(Serialize, ToSchema)]
pub struct OverdueArtifact {
    pub id: String,
    pub account_id: String,
    pub transcript_id: Option<String>,
    pub kind: String,
    pub state: String,
    pub delete_after: Option<String>,
    pub delete_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OverdueList {
    pub artifacts: Vec<OverdueArtifact>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// The document, generated once from the router's registrations.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| super::api_routes().into_openapi())
}

/// The document as pretty JSON, as checked in under `docs/openapi.json`.
pub fn document_json() -> String {
    document()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /openapi.json`
pub async fn serve() -> Response {
    let mut response = document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
