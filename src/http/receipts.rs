//! Deletion you can prove: a transcript's signed receipt, the log's public key and
//! current checkpoint (public, for anyone verifying), and consistency proofs between two
//! sizes of the log (operators and auditors, admin token).

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

use super::error::*;
use super::extract::*;
use super::AppState;
use crate::engine::ConsistencyProof;
use crate::receipts::Receipt;

/// `GET /v2/transcript/{id}/receipt`: each deleted artifact's tombstone with its inclusion
/// proof in a signed checkpoint of the deletion log; `lethe receipt verify` checks it
/// offline with the log's public key.
#[utoipa::path(get, path = "/v2/transcript/{transcript_id}/receipt", tag = "public", security(("api_key" = [])),
    params(("transcript_id" = String, Path, description = "ID of the transcript")),
    responses((status = 200, description = "The signed deletion receipt", body = Receipt),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "Unknown id, or another account's", body = super::body::ErrorBody),
        (status = 409, description = "Nothing of this transcript is deleted yet", body = super::body::ErrorBody)))]
pub async fn receipt(
    State(state): State<AppState>,
    Customer(account): Customer,
    Path(id): Path<String>,
) -> Result<Json<Receipt>, ApiError> {
    let id = Resource::Transcript.id(&id)?;
    let receipt = state
        .engine
        .receipt(&account, id)
        .await
        .or_not_found(Resource::Transcript)?;
    Ok(Json(receipt))
}

/// `GET /v2/retention/public-key`: the deletion log's Ed25519 verifying key (PEM).
#[utoipa::path(get, path = "/v2/retention/public-key", tag = "public",
    responses((status = 200, description = "The deletion log's verifying key, PEM (SPKI)", content_type = "application/x-pem-file", body = String)))]
pub async fn public_key(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.engine.log_public_key_pem(),
    )
        .into_response()
}

/// `GET /v2/retention/checkpoint`: the deletion log's current checkpoint, a C2SP signed
/// note; keep it to ask later for a consistency proof from it.
#[utoipa::path(get, path = "/v2/retention/checkpoint", tag = "public",
    responses((status = 200, description = "The current checkpoint (C2SP tlog-checkpoint, signed note)", content_type = "text/plain", body = String)))]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let note = state.engine.log_checkpoint().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `GET /admin/v1/log/consistency?from=N&to=M`: proof that the log of size M extends the
/// log of size N (to: the current size when absent), with the signed checkpoint at M.
#[utoipa::path(get, path = "/admin/v1/log/consistency", tag = "admin", security(("admin_token" = [])),
    params(("from" = u64, Query, description = "The older size (at least 1)"),
        ("to" = Option<u64>, Query, description = "The newer size; the log's current size when absent")),
    responses((status = 200, description = "The consistency proof and the checkpoint at `to`", body = ConsistencyProof),
        (status = 400, description = "Sizes out of range", body = super::body::ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn consistency(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let size = |name: &str| -> Result<Option<u64>, ApiError> {
        query
            .get(name)
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name} must be a log size (a whole number); got {raw:?}"
                    ))
                })
            })
            .transpose()
    };
    let from = size("from")?.ok_or_else(|| ApiError::bad_request("from is required"))?;
    let proof = state.engine.log_consistency(from, size("to")?).await?;
    Ok(Json(proof))
}
