//! The pipeline's API: everything it produces is stored through here, so nothing escapes
//! tracking. Bearer-authenticated with the internal token.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::value::RawValue;

use super::body::{ArtifactCreated, StatusBody};

use super::error::*;
use super::extract::*;
use super::raw;
use super::AppState;
use crate::domain::{Content, Transcript};
use crate::engine::EngineError;

fn status_body(t: &Transcript) -> Json<StatusBody> {
    Json(t.into())
}

/// `POST /internal/v1/transcripts/{id}/processing`
#[utoipa::path(post, path = "/internal/v1/transcripts/{id}/processing", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    responses((status = 200, description = "Now processing", body = super::body::StatusBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such transcript", body = super::body::ErrorBody), (status = 409, description = "Already completed or error", body = super::body::ErrorBody)))]
pub async fn processing(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
) -> Result<Json<StatusBody>, ApiError> {
    let t = state
        .engine
        .mark_processing(Resource::PipelineTranscript.id(&id)?)
        .await
        .or_not_found(Resource::PipelineTranscript)?;
    Ok(status_body(&t))
}

/// `PUT /internal/v1/transcripts/{id}/intermediates/{name}`: the body's bytes.
#[utoipa::path(put, path = "/internal/v1/transcripts/{id}/intermediates/{name}", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "Transcript id"), ("name" = String, Path, description = "1 to 128 of A-Z a-z 0-9 . _ -")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored as a tracked intermediate", body = super::body::ArtifactCreated),
        (status = 400, description = "Bad name or empty body", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such transcript", body = super::body::ErrorBody),
        (status = 409, description = "Transcript finished, or zero data retention", body = super::body::ErrorBody), (status = 413, description = "Too large", body = super::body::ErrorBody)))]
pub async fn put_intermediate(
    State(state): State<AppState>,
    _: Internal,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ArtifactCreated>), ApiError> {
    let id = Resource::PipelineTranscript.id(&id)?;
    let valid_name = (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_name {
        return Err(ApiError::bad_request(
            "an intermediate's name must be 1 to 128 of A-Z a-z 0-9 . _ -",
        ));
    }
    let limit = state.config.max_upload_bytes;
    let (stream, outcome) =
        limited_body(&headers, body, limit, state.config.body_idle_timeout()).await?;
    let artifact = state
        .engine
        .put_intermediate(id, &name, stream)
        .await
        .map_err(|e| match e {
            EngineError::NotFound => ApiError::NotFound(Resource::PipelineTranscript),
            e => outcome.error(e, limit),
        })?;
    Ok((StatusCode::CREATED, Json(ArtifactCreated::from(&artifact))))
}

/// `POST /internal/v1/transcripts/{id}/complete`: the result becomes the final transcript.
#[utoipa::path(post, path = "/internal/v1/transcripts/{id}/complete", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    request_body = super::openapi::CompleteRequest,
    responses((status = 200, description = "Completed; its retention is anchored now", body = super::body::StatusBody),
        (status = 400, description = "Wrong types", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such transcript", body = super::body::ErrorBody), (status = 409, description = "Already finished, or zero data retention", body = super::body::ErrorBody)))]
pub async fn complete(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
    AppJson(mut result): AppJson<JsonObject>,
) -> Result<Json<StatusBody>, ApiError> {
    let id = Resource::PipelineTranscript.id(&id)?;
    let audio_duration =
        match result.remove("audio_duration") {
            None => None,
            Some(value) if raw::is_null(&value) => None,
            Some(value) => Some(raw::parse::<f64>(&value).filter(|d| *d >= 0.0).ok_or_else(
                || ApiError::bad_request("audio_duration must be a non-negative number of seconds"),
            )?),
        };
    type Check = (&'static str, fn(&RawValue) -> bool, &'static str);
    let checks: [Check; 4] = [
        ("text", |v| raw::is_string(v) || raw::is_null(v), "a string"),
        ("words", |v| raw::is_array(v) || raw::is_null(v), "a list"),
        (
            "utterances",
            |v| raw::is_array(v) || raw::is_null(v),
            "a list",
        ),
        (
            "confidence",
            |v| raw::is_null(v) || raw::parse::<f64>(v).is_some_and(|c| (0.0..=1.0).contains(&c)),
            "a number from 0 to 1",
        ),
    ];
    for (field, ok, expected) in checks {
        if let Some(value) = result.get(field) {
            if !ok(value) {
                return Err(ApiError::bad_request(format!("{field} must be {expected}")));
            }
        }
    }
    let content = Content::new(result.to_json());
    let t = state
        .engine
        .complete(id, content, audio_duration)
        .await
        .or_not_found(Resource::PipelineTranscript)?;
    Ok(status_body(&t))
}

/// `POST /internal/v1/transcripts/{id}/error`
#[utoipa::path(post, path = "/internal/v1/transcripts/{id}/error", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    request_body = super::openapi::ErrorRequest,
    responses((status = 200, description = "Failed; its retention is anchored now", body = super::body::StatusBody),
        (status = 400, description = "Missing error message", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such transcript", body = super::body::ErrorBody), (status = 409, description = "Already finished", body = super::body::ErrorBody)))]
pub async fn error(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<Json<StatusBody>, ApiError> {
    let id = Resource::PipelineTranscript.id(&id)?;
    let message = match body.remove("error").and_then(|m| raw::parse::<String>(&m)) {
        Some(m) if !m.trim().is_empty() && m.chars().count() <= 2000 => m,
        _ => {
            return Err(ApiError::bad_request(
                "error is required: a non-empty message of at most 2000 characters",
            ))
        }
    };
    let t = state
        .engine
        .fail(id, &message)
        .await
        .or_not_found(Resource::PipelineTranscript)?;
    Ok(status_body(&t))
}

/// `POST /internal/v1/transcripts/{id}/speech-understanding`
#[utoipa::path(post, path = "/internal/v1/transcripts/{id}/speech-understanding", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    request_body(content = Object, description = "The result, any JSON object"),
    responses((status = 201, description = "Stored, linked to its transcript", body = super::body::ArtifactCreated),
        (status = 400, description = "Not a JSON object", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such transcript", body = super::body::ErrorBody), (status = 409, description = "Zero data retention", body = super::body::ErrorBody), (status = 410, description = "The transcript's content is deleted", body = super::body::ErrorBody)))]
pub async fn speech_understanding(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
    AppJson(result): AppJson<JsonObject>,
) -> Result<(StatusCode, Json<ArtifactCreated>), ApiError> {
    let id = Resource::PipelineTranscript.id(&id)?;
    let content = Content::new(result.to_json());
    let artifact = state
        .engine
        .add_speech_understanding(id, content)
        .await
        .or_not_found(Resource::PipelineTranscript)?;
    Ok((StatusCode::CREATED, Json(ArtifactCreated::from(&artifact))))
}
