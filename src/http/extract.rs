//! What handlers take from a request: who is calling (a customer (raw API key, as AssemblyAI's API takes it), the pipeline
//! (internal bearer token) or an operator (admin bearer token). Each surface has its own
//! credential; none is ever logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::SecretString;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use super::error::{ApiError, JsonObject};
use super::raw;
use super::tokens::token_matches;
use super::AppState;
use crate::domain::settings::ttl_from_seconds;
use crate::domain::{Account, ApiKey};
use crate::domain::{Content, Region};
use crate::engine::EngineError;
use crate::storage::ByteStream;

/// The authenticated customer account.
pub struct Customer(pub Account);

impl FromRequestParts<AppState> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let account = state
            .engine
            .authenticate(&ApiKey::from_presented(raw))
            .await?;
        account.map(Customer).ok_or(ApiError::Unauthorized)
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub fn check_bearer(
    parts: &Parts,
    expected: &SecretString,
    surface: &'static str,
) -> Result<(), ApiError> {
    match bearer(parts) {
        Some(token) if token_matches(expected, token) => Ok(()),
        _ => Err(ApiError::UnauthorizedBearer(surface)),
    }
}

/// The transcription pipeline.
pub struct Internal;

impl FromRequestParts<AppState> for Internal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_bearer(parts, &state.tokens.internal, "internal").map(|()| Internal)
    }
}

/// An operator.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_bearer(parts, &state.tokens.admin, "admin").map(|()| Admin)
    }
}

// ---- body and query fields --------------------------------------------------------

/// A JSON object body's field helpers shared by the account and admin handlers.
pub fn take_bool(body: &mut JsonObject, field: &str) -> Result<Option<bool>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(value) => raw::parse(&value)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{field} must be true or false"))),
    }
}

/// `transcript_ttl_seconds`: absent → unchanged, `null` → removed, a number → set.
pub fn take_ttl(
    body: &mut JsonObject,
    field: &'static str,
    nullable: bool,
) -> Result<Option<Option<chrono::Duration>>, ApiError> {
    let Some(value) = body.remove(field) else {
        return Ok(None);
    };
    if nullable && raw::is_null(&value) {
        return Ok(Some(None));
    }
    match raw::parse::<serde_json::Number>(&value) {
        Some(n) => {
            let seconds = n.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!("{field} must be a whole number of seconds"))
            })?;
            Ok(Some(Some(
                ttl_from_seconds(field, seconds)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            )))
        }
        None if nullable => Err(ApiError::bad_request(format!(
            "{field} must be a whole number of seconds, or null to remove it"
        ))),
        None => Err(ApiError::bad_request(format!(
            "{field} must be a whole number of seconds"
        ))),
    }
}

pub fn reject_unknown(body: &JsonObject, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().next() {
        None => Ok(()),
        Some(field) => Err(ApiError::bad_request(format!(
            "unknown field {field:?}; the fields you can set are {}",
            allowed.join(", ")
        ))),
    }
}

pub fn take_region(body: &mut JsonObject) -> Result<Option<Region>, ApiError> {
    match body.remove("region") {
        None => Ok(None),
        Some(value) => match raw::parse::<String>(&value) {
            Some(r) => Region::parse(&r)
                .map(Some)
                .map_err(|e| ApiError::bad_request(e.to_string())),
            None => Err(ApiError::bad_request("region must be \"us\" or \"eu\"")),
        },
    }
}

/// A `true`/`false` query parameter (absent: false); anything else is a 400 naming it.
pub fn query_bool(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false; got {other:?}"
        ))),
    }
}

pub fn limit(query: &HashMap<String, String>, default: u32, max: u32) -> Result<u32, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be an integer from 1 to {max}; got {raw:?}"
                ))
            }),
    }
}

/// The `after` and `limit` of a keyset-paged listing.
pub fn page_query(
    query: &HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<(Option<Uuid>, u32), ApiError> {
    let after = query
        .get("after")
        .map(|raw| {
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::bad_request("after must be the next_after of a page"))
        })
        .transpose()?;
    Ok((after, limit(query, default, max)?))
}

/// The `next_after` of a page: its last id when it is full, else none.
pub fn next_after(
    ids: impl DoubleEndedIterator<Item = Uuid> + ExactSizeIterator,
    limit: u32,
) -> Option<Uuid> {
    let len = ids.len();
    (len == limit as usize).then(|| ids.last()).flatten()
}

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

pub fn boxed(
    stream: impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
) -> ByteStream {
    Box::pin(stream)
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the body exceeds the maximum size of {limit} bytes"
    ))
}

/// Content bytes as a streamed `application/octet-stream` response.
pub fn octet_stream(stream: ByteStream) -> Response {
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

pub fn take_text(body: &mut JsonObject, field: &str, max: usize) -> Result<String, ApiError> {
    match body.remove(field).and_then(|v| raw::parse::<String>(&v)) {
        Some(v) if !v.trim().is_empty() && v.chars().count() <= max => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "{field} is required: a non-empty string of at most {max} characters"
        ))),
    }
}

pub fn take_id(body: &mut JsonObject, field: &str) -> Result<Option<Uuid>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(value) if raw::is_null(&value) => Ok(None),
        Some(value) => raw::parse::<String>(&value)
            .and_then(|v| Uuid::parse_str(&v).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{field} must be an id"))),
    }
}

pub fn take_time(body: &mut JsonObject, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(value) if raw::is_null(&value) => Ok(None),
        Some(value) => raw::parse::<String>(&value)
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| Some(t.with_timezone(&Utc)))
            .ok_or_else(|| ApiError::bad_request(format!("{field} must be an RFC 3339 timestamp"))),
    }
}

/// The content fields present (and not null), as one JSON object, each value as sent;
/// `None` if there are none.
pub fn take_content(body: &mut JsonObject, fields: &[&str]) -> Option<Content> {
    let mut content = JsonObject::default();
    for field in fields {
        match body.remove(field) {
            Some(value) if !raw::is_null(&value) => content.insert(*field, value),
            _ => {}
        }
    }
    (!content.is_empty()).then(|| Content::new(content.to_json()))
}
