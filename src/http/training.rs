//! The model-training export (retention.md §6): live artifacts that were eligible when
//! they were created, paged by id, and their content while it is still live.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use std::collections::HashMap;

use super::body::{rfc3339, TrainingArtifact, TrainingPage, TrainingRedactions};
use super::error::*;
use super::extract::*;
use super::AppState;
use crate::domain::ArtifactKind;
use crate::engine::{EngineError, TrainingExport};
use axum::response::IntoResponse;

/// `GET /internal/v1/training/eligible`
#[utoipa::path(get, path = "/internal/v1/training/eligible", tag = "internal", security(("internal_token" = [])),
    params(("after" = Option<String>, Query, description = "The `next_after` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, description = "Live eligible artifacts in id order; no content", body = super::body::TrainingPage),
        (status = 400, description = "Bad after or limit", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn eligible(
    State(state): State<AppState>,
    _: Internal,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TrainingPage>, ApiError> {
    let (after, limit) = page_query(&query, 100, 1000)?;
    let artifacts = state.engine.training_eligible(after, limit).await?;
    let next_after = next_after(artifacts.iter().map(|a| a.id), limit);
    let items: Vec<TrainingArtifact> = artifacts
        .iter()
        // Audio URLs are no training data (they may carry credentials); rows written before
        // that was recorded at creation are left out here.
        .filter(|a| crate::engine::training::is_training_data(a.kind))
        .map(|a| {
            let base = format!("{}/internal/v1/training/eligible/{}", state.base_url, a.id);
            let audio = matches!(
                a.kind,
                ArtifactKind::UploadedAudio
                    | ArtifactKind::Intermediate
                    | ArtifactKind::StreamingSession
            );
            TrainingArtifact {
                id: a.id,
                account_id: a.account_id,
                transcript_id: a.transcript_id,
                kind: a.kind.to_string(),
                created_at: rfc3339(a.created_at),
                size_bytes: a.size_bytes,
                content_url: format!("{base}/content"),
                redactions_url: audio.then(|| format!("{base}/redactions")),
            }
        })
        .collect();
    Ok(Json(TrainingPage {
        artifacts: items,
        next_after,
    }))
}

/// `GET /internal/v1/training/eligible/{id}/content`
#[utoipa::path(get, path = "/internal/v1/training/eligible/{id}/content", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "An artifact id from the listing")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such artifact, or never eligible", body = super::body::ErrorBody),
        (status = 410, description = "Deleted, or past delete_after", body = super::body::ErrorBody)))]
pub async fn content(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Resource::TrainingArtifact.id(&id)?;
    match state.engine.training_content(id).await {
        Ok(Some(TrainingExport::Audio(stream))) => Ok(octet_stream(stream)),
        Ok(Some(TrainingExport::Redacted {
            bytes,
            content_type,
        })) => {
            let mut response = axum::body::Body::from(bytes).into_response();
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static(content_type),
            );
            Ok(response)
        }
        Ok(None) => Err(ApiError::Gone(
            "this artifact has been deleted under its retention policy or by the customer".into(),
        )),
        Err(EngineError::NotFound) => Err(ApiError::NotFound(Resource::TrainingArtifact)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /internal/v1/training/eligible/{id}/redactions`: the time ranges to mute in an
/// audio artifact's export, the words redacted in the transcripts made from it.
#[utoipa::path(get, path = "/internal/v1/training/eligible/{id}/redactions", tag = "internal", security(("internal_token" = [])),
    params(("id" = String, Path, description = "An artifact id from the listing")),
    responses((status = 200, description = "Milliseconds ranges to mute, sorted and merged", body = super::body::TrainingRedactions),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such artifact, or never eligible", body = super::body::ErrorBody),
        (status = 410, description = "Deleted, or past delete_after", body = super::body::ErrorBody)))]
pub async fn redactions(
    State(state): State<AppState>,
    _: Internal,
    Path(id): Path<String>,
) -> Result<Json<TrainingRedactions>, ApiError> {
    let id = Resource::TrainingArtifact.id(&id)?;
    match state.engine.training_redactions(id).await {
        Ok(Some(ranges)) => Ok(Json(TrainingRedactions {
            artifact_id: id,
            ranges_ms: ranges.iter().map(|(s, e)| [*s, *e]).collect(),
        })),
        Ok(None) => Err(ApiError::Gone(
            "this artifact has been deleted under its retention policy or by the customer".into(),
        )),
        Err(EngineError::NotFound) => Err(ApiError::NotFound(Resource::TrainingArtifact)),
        Err(e) => Err(e.into()),
    }
}
