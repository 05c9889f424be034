//! `/v2/transcript`: create, get, list, delete and the retention view, shaped like
//! AssemblyAI's transcript API so its SDKs work unchanged.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

use super::body::*;
use super::dto::*;
use super::error::*;
use super::extract::*;
use super::AppState;
use crate::domain::{Content, DeletionReason, Transcript, TranscriptStatus};
use crate::engine::{AudioSource, NewTranscript, TranscriptPage};
use crate::storage::TranscriptQuery;

/// The audio source of a request: one of this server's upload URLs, or any http(s) URL.
fn audio_source(state: &AppState, audio_url: &str) -> Result<AudioSource, ApiError> {
    let parsed = url::Url::parse(audio_url)
        .map_err(|_| ApiError::bad_request("audio_url must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::bad_request(
            "audio_url must be an absolute http(s) URL",
        ));
    }
    if let Some(rest) = upload_path(&state.base_url, &parsed) {
        let id = Uuid::parse_str(&rest)
            .map_err(|_| ApiError::Forbidden("Cannot access uploaded file".into()))?;
        return Ok(AudioSource::Upload(id));
    }
    Ok(AudioSource::Url(Content::new(audio_url.to_owned())))
}

/// What follows `/v2/upload/` when `url` points into this server's uploads, compared as
/// parsed URLs: scheme and host in any case, the default port written or not, empty path
/// segments ignored. `None` for any other URL.
fn upload_path(base_url: &str, url: &url::Url) -> Option<String> {
    let base = url::Url::parse(base_url).ok()?;
    let same_origin = base.scheme() == url.scheme()
        && base.host() == url.host()
        && base.port_or_known_default() == url.port_or_known_default();
    if !same_origin {
        return None;
    }
    let segments = |u: &url::Url| -> Vec<String> {
        u.path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut prefix = segments(&base);
    prefix.extend(["v2".to_owned(), "upload".to_owned()]);
    let path = segments(url);
    match path.strip_prefix(prefix.as_slice()) {
        Some(rest) if !rest.is_empty() => Some(rest.join("/")),
        _ => None,
    }
}

/// `POST /v2/transcript`
#[utoipa::path(post, path = "/v2/transcript", tag = "public", security(("api_key" = [])),
    request_body = super::dto::TranscriptRequest,
    responses((status = 200, description = "The queued transcript", body = super::body::TranscriptBody),
        (status = 400, description = "Malformed JSON, wrong types or missing audio_url; nothing stored", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 403, description = "audio_url is another account's upload", body = super::body::ErrorBody), (status = 409, description = "Zero data retention account", body = super::body::ErrorBody),
        (status = 404, description = "Not found", body = super::body::ErrorBody),
        (status = 429, description = "Too many requests", body = super::body::ErrorBody),
        (status = 500, description = "An error occurred while processing the request", body = super::body::ErrorBody),
        (status = 503, description = "Service unavailable", body = super::body::ErrorBody),
        (status = 504, description = "Gateway timeout", body = super::body::ErrorBody)))]
pub async fn create_transcript(
    State(state): State<AppState>,
    Customer(account): Customer,
    body: axum::body::Bytes,
) -> Result<Json<TranscriptBody>, ApiError> {
    let request = TranscriptRequest::parse(&body)?;
    let audio = audio_source(&state, &request.audio_url)?;
    let webhook_auth = request
        .text_inputs
        .contains_key("webhook_auth_header_value");
    let text_inputs = (!request.text_inputs.is_empty())
        .then(|| Content::new(Value::Object(request.text_inputs).to_string()));
    let new = NewTranscript {
        audio,
        options: Value::Object(request.options),
        text_inputs,
        webhook_auth,
    };
    let view = state
        .engine
        .create_transcript_content(&account, new)
        .await?;
    Ok(Json(TranscriptBody::new(&state, &view)))
}

/// `GET /v2/transcript/{id}`
#[utoipa::path(get, path = "/v2/transcript/{transcript_id}", tag = "public", security(("api_key" = [])),
    params(("transcript_id" = String, Path, description = "ID of the transcript")),
    responses((status = 200, description = "The transcript; redacted once deleted or past delete_after", body = super::body::TranscriptBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody),
        (status = 400, description = "Bad request", body = super::body::ErrorBody),
        (status = 429, description = "Too many requests", body = super::body::ErrorBody),
        (status = 500, description = "An error occurred while processing the request", body = super::body::ErrorBody),
        (status = 503, description = "Service unavailable", body = super::body::ErrorBody),
        (status = 504, description = "Gateway timeout", body = super::body::ErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Resource::Transcript.id(&id)?;
    let view = state
        .engine
        .transcript_content(&account, id)
        .await
        .or_not_found(Resource::Transcript)?;
    // A long result is copied into the answer on a blocking thread, so that it does not
    // hold up the requests sharing this worker.
    let body = tokio::task::spawn_blocking(move || {
        serde_json::to_vec(&TranscriptBody::new(&state, &view))
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `DELETE /v2/transcript/{id}`
#[utoipa::path(delete, path = "/v2/transcript/{transcript_id}", tag = "public", security(("api_key" = [])),
    params(("transcript_id" = String, Path, description = "ID of the transcript")),
    responses((status = 200, description = "The redacted transcript; idempotent", body = super::body::TranscriptBody),
        (status = 400, description = "Still queued or processing; nothing changed", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody),
        (status = 429, description = "Too many requests", body = super::body::ErrorBody),
        (status = 500, description = "An error occurred while processing the request", body = super::body::ErrorBody),
        (status = 503, description = "Service unavailable", body = super::body::ErrorBody),
        (status = 504, description = "Gateway timeout", body = super::body::ErrorBody)))]
pub async fn delete_transcript(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<TranscriptBody>, ApiError> {
    let id = Resource::Transcript.id(&id)?;
    let view = state
        .engine
        .delete_transcript(&account, id)
        .await
        .or_not_found(Resource::Transcript)?;
    Ok(Json(TranscriptBody::new(&state, &view)))
}

/// The validated query of `GET /v2/transcript`.
#[derive(Debug, Clone)]
struct ListParams {
    limit: u32,
    status: Option<TranscriptStatus>,
    created_on: Option<NaiveDate>,
    before_id: Option<Uuid>,
    after_id: Option<Uuid>,
}

impl ListParams {
    fn parse(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let limit = limit(query, 10, 200)?;
        let status = match query.get("status") {
            None => None,
            Some(raw) => Some(TranscriptStatus::parse(raw).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status must be one of queued, processing, completed, error; got {raw:?}"
                ))
            })?),
        };
        let created_on = match query.get("created_on") {
            None => None,
            Some(raw) => Some(
                NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .ok()
                    // Within the range a transcript can have been created in; a date like
                    // +262142-12-31 once overflowed the list query.
                    .filter(|d| (1970..=9999).contains(&chrono::Datelike::year(d)))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "created_on must be a date like 2024-03-11 between 1970 and 9999; got {raw:?}"
                        ))
                    })?,
            ),
        };
        let id = |name: &str| -> Result<Option<Uuid>, ApiError> {
            query
                .get(name)
                .map(|raw| {
                    Uuid::parse_str(raw).map_err(|_| {
                        ApiError::bad_request(format!(
                            "{name} must be a transcript id; got {raw:?}"
                        ))
                    })
                })
                .transpose()
        };
        let (before_id, after_id) = (id("before_id")?, id("after_id")?);
        if let (Some(before), Some(after)) = (before_id, after_id) {
            if after >= before {
                return Err(ApiError::bad_request(
                    "before_id and after_id bound no transcript: after_id must be older than before_id",
                ));
            }
        }
        Ok(Self {
            limit,
            status,
            created_on,
            before_id,
            after_id,
        })
    }

    fn query(
        &self,
        before_id: Option<Uuid>,
        after_id: Option<Uuid>,
        limit: u32,
    ) -> TranscriptQuery {
        TranscriptQuery {
            status: self.status,
            created_on: self.created_on,
            before_id,
            after_id,
            limit,
        }
    }

    fn url(&self, base: &str, before_id: Option<Uuid>, after_id: Option<Uuid>) -> String {
        let mut url = url::Url::parse(&format!("{base}/v2/transcript")).unwrap_or_else(|_| {
            url::Url::parse("http://localhost/v2/transcript").expect("static URL parses")
        });
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &self.limit.to_string());
            if let Some(status) = self.status {
                q.append_pair("status", status.as_str());
            }
            if let Some(day) = self.created_on {
                q.append_pair("created_on", &day.to_string());
            }
            if let Some(before) = before_id {
                q.append_pair("before_id", &before.to_string());
            }
            if let Some(after) = after_id {
                q.append_pair("after_id", &after.to_string());
            }
        }
        url.to_string()
    }
}

/// `GET /v2/transcript`: newest first, keyset paging; `prev_url` is the older page and
/// `next_url` the newer one, each `null` when there is no such page.
#[utoipa::path(get, path = "/v2/transcript", tag = "public", security(("api_key" = [])),
    params(super::openapi::ListTranscriptParams),
    responses((status = 200, description = "Newest first, keyset-paginated; deleted transcripts included", body = super::body::TranscriptList),
        (status = 400, description = "A bad parameter, or a before_id/after_id pair that bounds nothing", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "Not found", body = super::body::ErrorBody),
        (status = 429, description = "Too many requests", body = super::body::ErrorBody),
        (status = 500, description = "An error occurred while processing the request", body = super::body::ErrorBody),
        (status = 503, description = "Service unavailable", body = super::body::ErrorBody),
        (status = 504, description = "Gateway timeout", body = super::body::ErrorBody)))]
pub async fn list_transcripts(
    State(state): State<AppState>,
    Customer(account): Customer,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TranscriptList>, ApiError> {
    let params = ListParams::parse(&query)?;
    let lethe = &state.engine;
    // Lethe never throttles a transcript: `throttled_only=true` lists none.
    let TranscriptPage {
        transcripts: page,
        older,
        newer,
        audio_urls: urls,
    } = match query_bool(&query, "throttled_only")? {
        true => TranscriptPage {
            transcripts: Vec::new(),
            older: false,
            newer: false,
            audio_urls: HashMap::new(),
        },
        false => {
            lethe
                .transcript_page(
                    &account,
                    &params.query(params.before_id, params.after_id, params.limit),
                )
                .await?
        }
    };
    // Each link carries its own cursor only, so following it never re-applies a bound
    // that no longer fits; a link is null when there is no such page.
    let prev_url = page
        .last()
        .filter(|_| older)
        .map(|oldest| params.url(&state.base_url, Some(oldest.id), None));
    let next_url = page
        .first()
        .filter(|_| newer)
        .map(|newest| params.url(&state.base_url, None, Some(newest.id)));
    let items = page
        .iter()
        .map(|t| list_item(&state, t, urls.get(&t.id)))
        .collect();
    Ok(Json(TranscriptList {
        page_details: PageDetails {
            limit: params.limit,
            result_count: page.len() as u32,
            current_url: params.url(&state.base_url, params.before_id, params.after_id),
            prev_url,
            next_url,
        },
        transcripts: items,
    }))
}

fn list_item(state: &AppState, t: &Transcript, url: Option<&Content>) -> TranscriptListItem {
    let audio_url = match t.redaction_reason_at(state.engine.now()) {
        Some(DeletionReason::CustomerRequest) => DELETED_BY_USER_URL.to_owned(),
        Some(_) => DELETED_BY_POLICY_URL.to_owned(),
        None => audio_url_of(state, t, url),
    };
    TranscriptListItem::new(state, t, audio_url)
}

/// `GET /v2/transcript/{id}/retention`: every artifact's schedule and tombstone.
#[utoipa::path(get, path = "/v2/transcript/{transcript_id}/retention", tag = "public", security(("api_key" = [])),
    params(("transcript_id" = String, Path, description = "ID of the transcript")),
    responses((status = 200, description = "Each artifact's schedule and tombstone", body = super::body::RetentionViewBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody)))]
pub async fn retention(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<RetentionViewBody>, ApiError> {
    let id = Resource::Transcript.id(&id)?;
    let view = state
        .engine
        .retention_view(&account, id)
        .await
        .or_not_found(Resource::Transcript)?;
    Ok(Json((&view).into()))
}
