//! Uploads: `POST /v2/upload` streams the body into the content store (never whole in
//! memory) and the pipeline reads it back through `GET /internal/v1/uploads/{id}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use super::auth::{Customer, Internal};
use super::error::ApiError;
use super::AppState;
use crate::lifecycle::LifecycleError;
use crate::storage::ByteStream;

/// A request body as a byte stream that fails once it passes `limit` bytes, and whether
/// it did. Refuses an empty body up front.
pub async fn limited_body(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> Result<(ByteStream, Arc<AtomicBool>), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = exceeded.clone();
    let mut total = 0u64;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .map(move |chunk| {
            let chunk = chunk?;
            total += chunk.len() as u64;
            if total > limit {
                flag.store(true, Ordering::SeqCst);
                return Err(std::io::Error::other("request body exceeds the size limit"));
            }
            Ok(chunk)
        });
    let mut stream = Box::pin(stream.peekable());
    if stream.as_mut().peek().await.is_none() {
        return Err(ApiError::bad_request(
            "the request body is empty; send the audio bytes as the body",
        ));
    }
    Ok((boxed(stream), exceeded))
}

fn boxed(stream: impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static) -> ByteStream {
    Box::pin(stream)
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the body exceeds the maximum size of {limit} bytes"
    ))
}

/// Maps a failed streamed write: the size limit if it was hit, the error otherwise.
pub fn stream_error(error: LifecycleError, exceeded: &AtomicBool, limit: u64) -> ApiError {
    if exceeded.load(Ordering::SeqCst) {
        too_large(limit)
    } else {
        error.into()
    }
}

/// `POST /v2/upload`
#[utoipa::path(post, path = "/v2/upload", tag = "public", security(("api_key" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The audio bytes, streamed"),
    responses((status = 200, description = "Where the upload can be referenced", body = super::openapi::UploadResponse),
        (status = 400, description = "Empty body", body = super::openapi::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody), (status = 409, description = "Zero data retention account", body = super::openapi::ErrorBody), (status = 413, description = "Larger than LETHE_MAX_UPLOAD_BYTES; nothing stored", body = super::openapi::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    Customer(account): Customer,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let limit = state.config.max_upload_bytes;
    if account.settings.zero_data_retention {
        return Err(LifecycleError::ZeroDataRetention.into());
    }
    let (stream, exceeded) = limited_body(&headers, body, limit).await?;
    let artifact = state
        .lethe
        .upload(&account, stream)
        .await
        .map_err(|e| stream_error(e, &exceeded, limit))?;
    Ok(Json(
        json!({ "upload_url": format!("{}/v2/upload/{}", state.base_url, artifact.id) }),
    ))
}

/// Content bytes as a streamed `application/octet-stream` response.
pub(super) fn octet_stream(stream: ByteStream) -> Response {
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// `GET /internal/v1/uploads/{id}`: the bytes while live, 410 once deleted or expired.
#[utoipa::path(get, path = "/internal/v1/uploads/{id}", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "The last path segment of the upload_url")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody), (status = 404, description = "No such upload", body = super::openapi::ErrorBody), (status = 410, description = "Deleted, or past delete_after", body = super::openapi::ErrorBody)))]
pub async fn read_upload(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no upload with this id".into());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    match state.lethe.read_upload_stream(id).await {
        Ok(Some(stream)) => Ok(octet_stream(stream)),
        Ok(None) => Err(ApiError::Gone(
            "this upload has been deleted under its retention policy or by the customer".into(),
        )),
        Err(LifecycleError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}
