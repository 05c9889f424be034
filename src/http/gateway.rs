//! LLM Gateway requests and streaming sessions (retention.md §6): the internal endpoints
//! that report them, and the public ones a customer uses to confirm or request their
//! deletion. Usage metadata is recorded for every request and session; content only where
//! the policy keeps it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use uuid::Uuid;

use super::body::{ArtifactRetention, RecordedBody};
use super::error::*;
use super::extract::*;
use super::raw;
use super::AppState;
use crate::domain::{Account, Artifact, ArtifactKind};
use crate::engine::{EngineError, LlmGatewayRequest, StreamingSession};

// ---- body fields ---------------------------------------------------------------------------

fn account_required(body: &mut JsonObject) -> Result<Uuid, ApiError> {
    take_id(body, "account_id")?.ok_or_else(|| ApiError::bad_request("account_id is required"))
}

// ---- internal: report ------------------------------------------------------------------------

/// `POST /internal/v1/llm-gateway/requests`
#[utoipa::path(post, path = "/internal/v1/llm-gateway/requests", tag = "internal", security(("internal_token" = [])),
    request_body = super::openapi::LlmGatewayRequestBody,
    responses((status = 201, description = "Usage recorded; content stored per retention.md §6 or dropped (zero data retention)", body = super::body::RecordedBody),
        (status = 400, description = "Missing or malformed fields; nothing recorded", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "No such account, or no such transcript in it", body = super::body::ErrorBody), (status = 409, description = "Content for a zero-data-retention account; nothing recorded", body = super::body::ErrorBody),
        (status = 410, description = "The transcript's content is deleted", body = super::body::ErrorBody)))]
pub async fn llm_gateway_request(
    State(state): State<AppState>,
    _: Internal,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<(StatusCode, Json<RecordedBody>), ApiError> {
    let account_id = account_required(&mut body)?;
    let provider = take_text(&mut body, "provider", 64)?.to_ascii_lowercase();
    let model = take_text(&mut body, "model", 256)?;
    let transcript_id = take_id(&mut body, "transcript_id")?;
    let ended_at = take_time(&mut body, "ended_at")?;
    let started_at = take_time(&mut body, "started_at")?;
    let content = take_content(&mut body, &["input", "output"]);
    reject_unknown(
        &body,
        &[
            "account_id",
            "provider",
            "model",
            "input",
            "output",
            "transcript_id",
            "started_at",
            "ended_at",
        ],
    )?;
    let ended_at = ended_at.unwrap_or_else(|| state.engine.now());
    let request = LlmGatewayRequest {
        account_id,
        provider,
        model,
        content,
        transcript_id,
        started_at: started_at.unwrap_or(ended_at),
        ended_at,
    };
    let recorded = state
        .engine
        .record_llm_request(request)
        .await
        .map_err(|e| match e {
            EngineError::NotFound if transcript_id.is_some() => {
                ApiError::NotFound(Resource::AccountOrTranscript)
            }
            EngineError::NotFound => ApiError::NotFound(Resource::Account),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(RecordedBody::from(&recorded))))
}

/// `POST /internal/v1/streaming/sessions`
#[utoipa::path(post, path = "/internal/v1/streaming/sessions", tag = "internal", security(("internal_token" = [])),
    request_body = super::openapi::StreamingSessionBody,
    responses((status = 201, description = "Usage recorded; content stored per retention.md §6 or dropped (zero data retention)", body = super::body::RecordedBody),
        (status = 400, description = "Missing or malformed fields; nothing recorded", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "No such account", body = super::body::ErrorBody), (status = 409, description = "Content for a zero-data-retention account; nothing recorded", body = super::body::ErrorBody)))]
pub async fn streaming_session(
    State(state): State<AppState>,
    _: Internal,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<(StatusCode, Json<RecordedBody>), ApiError> {
    let account_id = account_required(&mut body)?;
    let model = take_text(&mut body, "model", 256)?;
    let started_at = take_time(&mut body, "started_at")?
        .ok_or_else(|| ApiError::bad_request("started_at is required"))?;
    let ended_at = take_time(&mut body, "ended_at")?
        .ok_or_else(|| ApiError::bad_request("ended_at is required"))?;
    if let Some(audio) = body.get("audio").filter(|v| !raw::is_null(v)) {
        let valid = raw::parse::<String>(audio)
            .is_some_and(|a| base64::engine::general_purpose::STANDARD.decode(a).is_ok());
        if !valid {
            return Err(ApiError::bad_request("audio must be base64-encoded bytes"));
        }
    }
    let content = take_content(&mut body, &["audio", "transcript"]);
    reject_unknown(
        &body,
        &[
            "account_id",
            "model",
            "started_at",
            "ended_at",
            "audio",
            "transcript",
        ],
    )?;
    let session = StreamingSession {
        account_id,
        model,
        started_at,
        ended_at,
        content,
    };
    let recorded = state
        .engine
        .record_streaming_session(session)
        .await
        .map_err(|e| match e {
            EngineError::NotFound => ApiError::NotFound(Resource::Account),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(RecordedBody::from(&recorded))))
}

// ---- public: confirm and delete --------------------------------------------------------------

async fn show(
    state: &AppState,
    account: &Account,
    kind: ArtifactKind,
    id: &str,
    delete: bool,
) -> Result<Json<ArtifactRetention>, ApiError> {
    let what = match kind {
        ArtifactKind::StreamingSession => Resource::StreamingSession,
        _ => Resource::LlmGatewayRequest,
    };
    let id = what.id(id)?;
    let result: Result<Artifact, EngineError> = if delete {
        state.engine.delete_standalone(account, kind, id).await
    } else {
        state.engine.standalone_artifact(account, kind, id).await
    };
    let artifact = result.or_not_found(what)?;
    Ok(Json(ArtifactRetention::from(&artifact)))
}

/// `GET /v2/llm-gateway/requests/{id}` (Lethe's own): the stored request's schedule, or its tombstone.
#[utoipa::path(get, path = "/v2/llm-gateway/requests/{id}", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "The artifact id the gateway returned")),
    responses((status = 200, description = "Its schedule and, once deleted, its tombstone; never its content", body = super::body::ArtifactRetention),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody)))]
pub async fn get_llm_request(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<ArtifactRetention>, ApiError> {
    show(&state, &account, ArtifactKind::LlmGatewayIo, &id, false).await
}

/// `DELETE /v2/llm-gateway/requests/{id}` (Lethe's own): deletes its inputs and outputs now. Idempotent.
#[utoipa::path(delete, path = "/v2/llm-gateway/requests/{id}", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "The artifact id the gateway returned")),
    responses((status = 200, description = "Deleted; its tombstone", body = super::body::ArtifactRetention),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody)))]
pub async fn delete_llm_request(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<ArtifactRetention>, ApiError> {
    show(&state, &account, ArtifactKind::LlmGatewayIo, &id, true).await
}

/// `GET /v2/streaming/sessions/{id}` (Lethe's own): the stored session's schedule, or its tombstone.
#[utoipa::path(get, path = "/v2/streaming/sessions/{id}", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "The artifact id the streaming service returned")),
    responses((status = 200, description = "Its schedule and, once deleted, its tombstone; never its content", body = super::body::ArtifactRetention),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody)))]
pub async fn get_streaming_session(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<ArtifactRetention>, ApiError> {
    show(&state, &account, ArtifactKind::StreamingSession, &id, false).await
}

/// `DELETE /v2/streaming/sessions/{id}` (Lethe's own): deletes its audio and transcript now. Idempotent.
#[utoipa::path(delete, path = "/v2/streaming/sessions/{id}", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "The artifact id the streaming service returned")),
    responses((status = 200, description = "Deleted; its tombstone", body = super::body::ArtifactRetention),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody)))]
pub async fn delete_streaming_session(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<ArtifactRetention>, ApiError> {
    show(&state, &account, ArtifactKind::StreamingSession, &id, true).await
}
