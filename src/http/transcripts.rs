//! `/v2/transcript`: create, get, list, delete and the retention view, shaped like
//! AssemblyAI's transcript API so its SDKs work unchanged.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

use super::auth::Customer;
use super::dto::{TranscriptRequest, TRANSCRIPT_REQUEST_FIELDS};
use super::error::{ApiError, JsonObject};
use super::AppState;
use crate::domain::{Artifact, Content, DeletionReason, Transcript, TranscriptStatus};
use crate::engine::{AudioSource, EngineError, NewTranscript, RetentionView, TranscriptContent};
use crate::storage::TranscriptQuery;

/// Result fields nulled in a redacted transcript, beyond whatever the pipeline stored.
const RESULT_FIELDS: &[&str] = &["text", "words", "utterances", "confidence"];

pub const DELETED_BY_USER_URL: &str = "http://deleted_by_user";
pub const DELETED_BY_POLICY_URL: &str = "http://deleted_by_retention_policy";

fn transcript_not_found() -> ApiError {
    ApiError::NotFound("Transcript lookup error, transcript id not found".into())
}

fn transcript_error(error: EngineError) -> ApiError {
    match error {
        EngineError::NotFound => transcript_not_found(),
        other => other.into(),
    }
}

fn parse_transcript_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| transcript_not_found())
}

/// Naive ISO-8601 UTC with microseconds, as AssemblyAI's list items are.
pub fn naive_micros(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The audio source of a request: one of this server's upload URLs, or any http(s) URL.
fn audio_source(state: &AppState, audio_url: &str) -> Result<AudioSource, ApiError> {
    let parsed = url::Url::parse(audio_url)
        .map_err(|_| ApiError::bad_request("audio_url must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::bad_request(
            "audio_url must be an absolute http(s) URL",
        ));
    }
    let upload_prefix = format!("{}/v2/upload/", state.base_url);
    if let Some(rest) = audio_url.strip_prefix(&upload_prefix) {
        let id = Uuid::parse_str(rest)
            .map_err(|_| ApiError::Forbidden("Cannot access uploaded file".into()))?;
        return Ok(AudioSource::Upload(id));
    }
    Ok(AudioSource::Url(Content::new(audio_url.to_owned())))
}

/// `POST /v2/transcript`
#[utoipa::path(post, path = "/v2/transcript", tag = "public", security(("api_key" = [])),
    request_body = super::dto::TranscriptRequest,
    responses((status = 200, description = "The queued transcript", body = super::openapi::TranscriptObject),
        (status = 400, description = "Malformed JSON, wrong types or missing audio_url; nothing stored", body = super::openapi::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody),
        (status = 403, description = "audio_url is another account's upload", body = super::openapi::ErrorBody), (status = 409, description = "Zero data retention account", body = super::openapi::ErrorBody)))]
pub async fn create_transcript(
    State(state): State<AppState>,
    Customer(account): Customer,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
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
    let transcript = state.engine.create_transcript(&account, new).await?;
    let view = state
        .engine
        .transcript_content(&account, transcript.id)
        .await?;
    Ok(Json(render_transcript(&state, &view)))
}

/// The Transcript object (api.md), redacted when its content is deleted or expired.
pub fn render_transcript(state: &AppState, view: &TranscriptContent) -> Value {
    let t = &view.transcript;
    let mut obj = Map::new();
    obj.insert("id".into(), json!(t.id));
    obj.insert("status".into(), json!(t.status));
    obj.insert("language_model".into(), json!("assemblyai_default"));
    obj.insert("acoustic_model".into(), json!("assemblyai_default"));
    obj.insert(
        "audio_duration".into(),
        json!(t.audio_duration.map(|d| d.round() as i64)),
    );
    obj.insert("error".into(), json!(t.error));
    for field in RESULT_FIELDS
        .iter()
        .chain(TRANSCRIPT_REQUEST_FIELDS)
        .filter(|f| **f != "audio_url")
    {
        obj.insert((*field).into(), Value::Null);
    }
    obj.remove("webhook_auth_header_value");
    for flag in ["redact_pii", "auto_highlights", "summarization"] {
        obj.insert(flag.into(), json!(false));
    }
    if let Some(reason) = view.redacted {
        let (text, url) = match reason {
            DeletionReason::CustomerRequest => ("Deleted by user.", DELETED_BY_USER_URL),
            _ => ("Deleted by retention policy.", DELETED_BY_POLICY_URL),
        };
        obj.insert("text".into(), json!(text));
        obj.insert("audio_url".into(), json!(url));
        obj.insert("webhook_url".into(), json!(url));
        obj.insert("webhook_auth".into(), json!(false));
        return Value::Object(obj);
    }
    obj.insert("webhook_auth".into(), json!(t.webhook_auth));
    obj.insert(
        "audio_url".into(),
        json!(audio_url_of(state, t, view.audio_url.as_ref())),
    );
    if let Value::Object(options) = &t.options {
        obj.extend(options.clone());
    }
    if let Some(inputs) = view
        .text_inputs
        .as_ref()
        .and_then(|c| serde_json::from_slice::<Map<String, Value>>(c.expose()).ok())
    {
        for (field, value) in inputs {
            if field != "webhook_auth_header_value" {
                obj.insert(field, value);
            }
        }
    }
    if let Some(result) = view
        .result
        .as_ref()
        .and_then(|c| serde_json::from_slice::<Map<String, Value>>(c.expose()).ok())
    {
        for (field, value) in result {
            if !matches!(
                field.as_str(),
                "id" | "status" | "audio_duration" | "error" | "audio_url"
            ) {
                obj.insert(field, value);
            }
        }
    }
    Value::Object(obj)
}

fn audio_url_of(state: &AppState, t: &Transcript, url: Option<&Content>) -> String {
    match (t.upload_id, url) {
        (Some(upload), _) => format!("{}/v2/upload/{upload}", state.base_url),
        (None, Some(url)) => String::from_utf8_lossy(url.expose()).into_owned(),
        (None, None) => DELETED_BY_POLICY_URL.to_owned(),
    }
}

/// `GET /v2/transcript/{id}`
#[utoipa::path(get, path = "/v2/transcript/{id}", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    responses((status = 200, description = "The transcript; redacted once deleted or past delete_after", body = super::openapi::TranscriptObject),
        (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::openapi::ErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_transcript_id(&id)?;
    let view = state
        .engine
        .transcript_content(&account, id)
        .await
        .map_err(transcript_error)?;
    Ok(Json(render_transcript(&state, &view)))
}

/// `DELETE /v2/transcript/{id}`
#[utoipa::path(delete, path = "/v2/transcript/{id}", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    responses((status = 200, description = "The redacted transcript; idempotent", body = super::openapi::TranscriptObject),
        (status = 400, description = "Still queued or processing; nothing changed", body = super::openapi::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::openapi::ErrorBody)))]
pub async fn delete_transcript(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_transcript_id(&id)?;
    let view = state
        .engine
        .delete_transcript(&account, id)
        .await
        .map_err(transcript_error)?;
    Ok(Json(render_transcript(&state, &view)))
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
        let limit = match query.get("limit") {
            None => 10,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "limit must be an integer from 1 to 200; got {raw:?}"
                    ))
                })?,
        };
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
    params(
        ("limit" = Option<u32>, Query, description = "1 to 200, default 10"),
        ("status" = Option<String>, Query, description = "queued, processing, completed or error"),
        ("created_on" = Option<String>, Query, description = "YYYY-MM-DD"),
        ("before_id" = Option<String>, Query, description = "Only transcripts older than this id"),
        ("after_id" = Option<String>, Query, description = "Only transcripts newer than this id"),
    ),
    responses((status = 200, description = "Newest first, keyset-paginated; deleted transcripts included", body = super::openapi::TranscriptList),
        (status = 400, description = "A bad parameter, or a before_id/after_id pair that bounds nothing", body = super::openapi::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody)))]
pub async fn list_transcripts(
    State(state): State<AppState>,
    Customer(account): Customer,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = ListParams::parse(&query)?;
    let lethe = &state.engine;
    let page = lethe
        .list_transcripts(
            &account,
            &params.query(params.before_id, params.after_id, params.limit),
        )
        .await?;
    // Each link carries its own cursor only, so following it never re-applies a bound
    // that no longer fits; a link is null when there is no such page.
    let (prev_url, next_url) = match (page.first(), page.last()) {
        (Some(newest), Some(oldest)) => {
            let older = lethe
                .list_transcripts(&account, &params.query(Some(oldest.id), None, 1))
                .await?;
            let newer = lethe
                .list_transcripts(&account, &params.query(None, Some(newest.id), 1))
                .await?;
            (
                (!older.is_empty()).then(|| params.url(&state.base_url, Some(oldest.id), None)),
                (!newer.is_empty()).then(|| params.url(&state.base_url, None, Some(newest.id))),
            )
        }
        _ => (None, None),
    };
    let mut items = Vec::with_capacity(page.len());
    for t in &page {
        items.push(list_item(&state, &account, t).await?);
    }
    Ok(Json(json!({
        "page_details": {
            "limit": params.limit,
            "result_count": page.len(),
            "current_url": params.url(&state.base_url, params.before_id, params.after_id),
            "prev_url": prev_url,
            "next_url": next_url,
        },
        "transcripts": items,
    })))
}

async fn list_item(
    state: &AppState,
    account: &crate::domain::Account,
    t: &Transcript,
) -> Result<Value, ApiError> {
    let now = state.engine.now();
    let audio_url = match t.redaction_reason_at(now) {
        Some(DeletionReason::CustomerRequest) => DELETED_BY_USER_URL.to_owned(),
        Some(_) => DELETED_BY_POLICY_URL.to_owned(),
        None if t.upload_id.is_some() => audio_url_of(state, t, None),
        None => {
            let url = state.engine.audio_url(account, t).await?;
            audio_url_of(state, t, url.as_ref())
        }
    };
    Ok(json!({
        "id": t.id,
        "resource_url": format!("{}/v2/transcript/{}", state.base_url, t.id),
        "status": t.status,
        "created": naive_micros(t.created_at),
        "completed": t.completed_at.map(naive_micros),
        "audio_url": audio_url,
        "error": t.error,
    }))
}

/// `GET /v2/transcript/{id}/retention`: every artifact's schedule and tombstone.
#[utoipa::path(get, path = "/v2/transcript/{id}/retention", tag = "public", security(("api_key" = [])),
    params(("id" = String, Path, description = "Transcript id")),
    responses((status = 200, description = "Each artifact's schedule and tombstone", body = super::openapi::RetentionViewBody),
        (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody), (status = 404, description = "Unknown id, or another account's", body = super::openapi::ErrorBody)))]
pub async fn retention(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_transcript_id(&id)?;
    let view = state
        .engine
        .retention_view(&account, id)
        .await
        .map_err(transcript_error)?;
    Ok(Json(render_retention(&view)))
}

/// One artifact of a retention view: its schedule (a linked artifact shows its
/// transcript's) and, once deleted, its tombstone fields. No content.
pub fn render_artifact_retention(
    artifact: &Artifact,
    delete_after: Option<DateTime<Utc>>,
    delete_by: Option<DateTime<Utc>>,
) -> Value {
    let deleted = artifact.state == crate::domain::ArtifactState::Deleted;
    json!({
        "id": artifact.id,
        "kind": artifact.kind,
        "state": if deleted { "deleted" } else { "live" },
        "created_at": rfc3339(artifact.created_at),
        "delete_after": delete_after.map(rfc3339),
        "delete_by": delete_by.map(rfc3339),
        "deleted_at": artifact.deleted_at.map(rfc3339),
        "deletion_reason": artifact.deletion_reason,
        "training_eligible": artifact.training_eligible && !deleted,
    })
}

fn render_retention(view: &RetentionView) -> Value {
    let settings = &view.account.settings;
    let artifacts: Vec<Value> = view
        .artifacts
        .iter()
        .map(|a| render_artifact_retention(&a.artifact, a.delete_after, a.delete_by))
        .collect();
    let scheduled_under = view
        .artifacts
        .iter()
        .filter(|a| a.artifact.transcript_id == Some(view.transcript.id))
        .map(|a| a.artifact.policy_version)
        .max()
        .unwrap_or(view.transcript.policy_version);
    json!({
        "transcript_id": view.transcript.id,
        "policy": {
            "mode": settings.mode(),
            "transcript_ttl_seconds": settings.effective_transcript_ttl().map(|d| d.num_seconds()),
            "scheduled_under": format!("v{scheduled_under}"),
        },
        "artifacts": artifacts,
    })
}

/// A JSON object body's field helpers shared by the account and admin handlers.
pub fn take_bool(body: &mut JsonObject, field: &str) -> Result<Option<bool>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(ApiError::bad_request(format!(
            "{field} must be true or false"
        ))),
    }
}
