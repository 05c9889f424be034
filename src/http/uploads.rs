//! Uploads: `POST /v2/upload` streams the body into the content store (never whole in
//! memory) and the pipeline reads it back through `GET /internal/v1/uploads/{id}`.

use super::body::UploadResponse;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use super::error::*;
use super::extract::*;
use super::AppState;
use crate::engine::EngineError;

/// `POST /v2/upload`
#[utoipa::path(post, path = "/v2/upload", tag = "public", security(("api_key" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The audio bytes, streamed"),
    responses((status = 200, description = "Where the upload can be referenced", body = super::body::UploadResponse),
        (status = 400, description = "Empty body", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 409, description = "Zero data retention account", body = super::body::ErrorBody), (status = 413, description = "Larger than LETHE_MAX_UPLOAD_BYTES; nothing stored", body = super::body::ErrorBody),
        (status = 403, description = "Cannot access uploaded file", body = super::body::ErrorBody),
        (status = 404, description = "Not found", body = super::body::ErrorBody),
        (status = 429, description = "Too many requests", body = super::body::ErrorBody),
        (status = 500, description = "An error occurred while processing the request", body = super::body::ErrorBody),
        (status = 503, description = "Service unavailable", body = super::body::ErrorBody),
        (status = 504, description = "Gateway timeout", body = super::body::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    Customer(account): Customer,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadResponse>, ApiError> {
    let limit = state.config.max_upload_bytes;
    if account.settings.zero_data_retention {
        return Err(EngineError::ZeroDataRetention.into());
    }
    let (stream, outcome) =
        limited_body(&headers, body, limit, state.config.body_idle_timeout()).await?;
    let artifact = state
        .engine
        .upload(&account, stream)
        .await
        .map_err(|e| outcome.error(e, limit))?;
    Ok(Json(UploadResponse {
        upload_url: format!("{}/v2/upload/{}", state.base_url, artifact.id),
    }))
}

/// `GET /internal/v1/uploads/{id}`: the bytes while live, 410 once deleted or expired.
#[utoipa::path(get, path = "/internal/v1/uploads/{id}", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "The last path segment of the upload_url")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such upload", body = super::body::ErrorBody), (status = 410, description = "Deleted, or past delete_after", body = super::body::ErrorBody)))]
pub async fn read_upload(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Resource::Upload.id(&id)?;
    match state.engine.read_upload_stream(id).await {
        Ok(Some(stream)) => Ok(octet_stream(stream)),
        Ok(None) => Err(ApiError::Gone(
            "this upload has been deleted under its retention policy or by the customer".into(),
        )),
        Err(EngineError::NotFound) => Err(ApiError::NotFound(Resource::Upload)),
        Err(e) => Err(e.into()),
    }
}
