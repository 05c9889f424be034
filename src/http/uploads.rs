//! Uploads: `POST /v2/upload` streams the body into the content store (never whole in
//! memory) and the pipeline reads it back through `GET /internal/v1/uploads/{id}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use super::auth::{Customer, Internal};
use super::error::ApiError;
use super::AppState;
use crate::engine::EngineError;
use crate::storage::ByteStream;

/// What happened to a streamed request body: past the size limit, or broken off by the
/// client (a malformed chunked body, a disconnect, a stall past the idle timeout).
#[derive(Clone, Debug, Default)]
pub struct BodyOutcome {
    exceeded: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
}

/// A request body as a byte stream that fails once it passes `limit` bytes, or when no
/// chunk arrives for `idle` (a stalled client), and what happened to it. Refuses an empty
/// body up front.
pub async fn limited_body(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    idle: std::time::Duration,
) -> Result<(ByteStream, BodyOutcome), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let outcome = BodyOutcome::default();
    let (exceeded, broken, stalled) = (
        outcome.exceeded.clone(),
        outcome.broken.clone(),
        outcome.stalled.clone(),
    );
    let mut total = 0u64;
    // Each chunk must arrive within `idle` of the previous one; the stream ends at the
    // first failure.
    let chunks = futures::stream::unfold(
        (body.into_data_stream(), false),
        move |(mut chunks, failed)| async move {
            if failed {
                return None;
            }
            match tokio::time::timeout(idle, chunks.next()).await {
                Err(_elapsed) => Some((Err(None), (chunks, true))),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(Some(e)), (chunks, true))),
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (chunks, false))),
            }
        },
    );
    let stream = chunks.map(move |next| match next {
        Err(None) => {
            stalled.store(true, Ordering::SeqCst);
            Err(std::io::Error::other("the request body stalled"))
        }
        Err(Some(e)) => {
            broken.store(true, Ordering::SeqCst);
            Err(std::io::Error::other(e))
        }
        Ok(chunk) => {
            total += chunk.len() as u64;
            if total > limit {
                exceeded.store(true, Ordering::SeqCst);
                return Err(std::io::Error::other("request body exceeds the size limit"));
            }
            Ok(chunk)
        }
    });
    let mut stream = Box::pin(stream.peekable());
    match stream.as_mut().peek().await {
        None => {
            return Err(ApiError::bad_request(
                "the request body is empty; send the audio bytes as the body",
            ))
        }
        Some(Err(_)) => return Err(outcome.client_error(limit)),
        Some(Ok(_)) => {}
    }
    Ok((boxed(stream), outcome))
}

impl BodyOutcome {
    /// The client's part in a failed streamed write, if it had one.
    fn client_error(&self, limit: u64) -> ApiError {
        if self.exceeded.load(Ordering::SeqCst) {
            too_large(limit)
        } else if self.stalled.load(Ordering::SeqCst) {
            ApiError::RequestTimeout("the request body stopped arriving; send it again".into())
        } else {
            ApiError::bad_request(
                "the request body could not be read (malformed chunked encoding, or the connection was closed)",
            )
        }
    }

    /// Maps a failed streamed write: the client's fault (too large, stalled, broken off)
    /// as a 4xx, anything else as it is.
    pub fn error(&self, error: EngineError, limit: u64) -> ApiError {
        let client = self.exceeded.load(Ordering::SeqCst)
            || self.broken.load(Ordering::SeqCst)
            || self.stalled.load(Ordering::SeqCst);
        if client {
            self.client_error(limit)
        } else {
            error.into()
        }
    }
}

fn boxed(stream: impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static) -> ByteStream {
    Box::pin(stream)
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the body exceeds the maximum size of {limit} bytes"
    ))
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
        return Err(EngineError::ZeroDataRetention.into());
    }
    let (stream, outcome) =
        limited_body(&headers, body, limit, state.config.body_idle_timeout()).await?;
    let artifact = state
        .engine
        .upload(&account, stream)
        .await
        .map_err(|e| outcome.error(e, limit))?;
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
    match state.engine.read_upload_stream(id).await {
        Ok(Some(stream)) => Ok(octet_stream(stream)),
        Ok(None) => Err(ApiError::Gone(
            "this upload has been deleted under its retention policy or by the customer".into(),
        )),
        Err(EngineError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}
