//! Legal holds (operators, admin token): place one on an account or one transcript,
//! list them, release one. While a hold is active nothing it covers is deleted.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

use super::error::*;
use super::extract::*;
use super::AppState;
use crate::domain::LegalHold;

/// `POST /admin/v1/holds` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The account held (all of it, unless `transcript_id` narrows the hold).
    pub account_id: Uuid,
    /// One transcript of the account (with its upload) instead of the whole account.
    #[serde(default)]
    pub transcript_id: Option<Uuid>,
    /// Why (a case or matter reference); at most 1000 characters.
    pub reason: String,
}

/// A legal hold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldBody {
    pub id: Uuid,
    pub account_id: Uuid,
    pub transcript_id: Option<Uuid>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// When it was released; null while it is active.
    pub released_at: Option<DateTime<Utc>>,
    pub active: bool,
}

impl From<&LegalHold> for HoldBody {
    fn from(h: &LegalHold) -> Self {
        HoldBody {
            id: h.id,
            account_id: h.account_id,
            transcript_id: h.transcript_id,
            reason: h.reason.clone(),
            created_at: h.created_at,
            released_at: h.released_at,
            active: h.released_at.is_none(),
        }
    }
}

/// `GET /admin/v1/holds` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldList {
    pub holds: Vec<HoldBody>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<Uuid>,
}

/// `POST /admin/v1/holds`: places a hold; nothing it covers is deleted until released.
#[utoipa::path(post, path = "/admin/v1/holds", tag = "admin", security(("admin_token" = [])),
    request_body = HoldRequest,
    responses((status = 201, description = "The hold, active", body = HoldBody),
        (status = 400, description = "Invalid or unknown fields", body = super::body::ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "No such account, or no such transcript in it", body = super::body::ErrorBody)))]
pub async fn create_hold(
    State(state): State<AppState>,
    _: Admin,
    AppJson(body): AppJson<HoldRequest>,
) -> Result<(StatusCode, Json<HoldBody>), ApiError> {
    let hold = state
        .engine
        .create_hold(body.account_id, body.transcript_id, &body.reason)
        .await
        .or_not_found(Resource::AccountOrTranscript)?;
    Ok((StatusCode::CREATED, Json(HoldBody::from(&hold))))
}

/// `GET /admin/v1/holds`: holds by id, active ones only unless `include_released=true`.
#[utoipa::path(get, path = "/admin/v1/holds", tag = "admin", security(("admin_token" = [])),
    params(("account_id" = Option<String>, Query, description = "Only this account's holds"),
        ("include_released" = Option<bool>, Query, description = "Also released holds (default false)"),
        ("after" = Option<String>, Query, description = "The next_after of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, description = "Holds by id", body = HoldList),
        (status = 400, description = "Bad parameter", body = super::body::ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn list_holds(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<HoldList>, ApiError> {
    let (after, limit) = page_query(&query, 50, 200)?;
    let account = query
        .get("account_id")
        .map(|raw| {
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::bad_request("account_id must be an account id"))
        })
        .transpose()?;
    let include_released = query_bool(&query, "include_released")?;
    let holds = state
        .engine
        .holds(account, include_released, after, limit)
        .await?;
    Ok(Json(HoldList {
        next_after: next_after(holds.iter().map(|h| h.id), limit),
        holds: holds.iter().map(HoldBody::from).collect(),
    }))
}

/// `DELETE /admin/v1/holds/{id}`: releases the hold; what it kept past its deadline is
/// deleted by the next pass.
#[utoipa::path(delete, path = "/admin/v1/holds/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Hold id")),
    responses((status = 200, description = "The hold, released", body = HoldBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "No such hold", body = super::body::ErrorBody)))]
pub async fn release_hold(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<HoldBody>, ApiError> {
    let id = Resource::Hold.id(&id)?;
    let hold = state
        .engine
        .release_hold(id)
        .await
        .or_not_found(Resource::Hold)?;
    Ok(Json(HoldBody::from(&hold)))
}
