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
    pub status: Option<super::body::Status>,
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
pub struct AccountPatch {
    pub baa: Option<bool>,
    pub region: Option<String>,
    pub zero_data_retention: Option<bool>,
    pub transcript_ttl_seconds: Option<i64>,
    pub upload_ttl_seconds: Option<i64>,
    pub model_training_opt_out: Option<bool>,
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
