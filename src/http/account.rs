//! `GET|PUT /v2/account/retention`: the customer's view of their retention settings.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Customer;
use super::error::{ApiError, AppJson, JsonObject};
use super::transcripts::take_bool;
use super::AppState;
use crate::domain::settings::ttl_from_seconds;
use crate::domain::{Account, SettingsPatch};

pub fn render_settings(account: &Account) -> Value {
    let s = &account.settings;
    let change = account.retention_job.as_ref().map(|job| {
        json!({
            "state": "in_progress",
            "policy_version": job.target_version,
            "started_at": super::transcripts::rfc3339(job.started_at),
            "artifacts_examined": job.examined,
            "artifacts_rescheduled": job.rescheduled,
        })
    });
    json!({
        "transcript_ttl_seconds": s.transcript_ttl.map(|d| d.num_seconds()),
        "upload_ttl_seconds": s.upload_ttl.num_seconds(),
        "model_training_opt_out": s.model_training_opt_out,
        "baa": s.baa,
        "region": s.region,
        "zero_data_retention": s.zero_data_retention,
        "mode": s.mode(),
        "policy_version": account.policy_version,
        "retention_change": change,
    })
}

/// `transcript_ttl_seconds`: absent → unchanged, `null` → removed, a number → set.
pub fn take_ttl(
    body: &mut JsonObject,
    field: &'static str,
    nullable: bool,
) -> Result<Option<Option<chrono::Duration>>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(Some(None)),
        Some(Value::Number(n)) => {
            let seconds = n.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!("{field} must be a whole number of seconds"))
            })?;
            Ok(Some(Some(
                ttl_from_seconds(field, seconds)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            )))
        }
        Some(_) if nullable => Err(ApiError::bad_request(format!(
            "{field} must be a whole number of seconds, or null to remove it"
        ))),
        Some(_) => Err(ApiError::bad_request(format!(
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

/// `GET /v2/account/retention`
#[utoipa::path(get, path = "/v2/account/retention", tag = "public", security(("api_key" = [])),
    responses((status = 200, description = "The account's retention settings and derived mode", body = super::openapi::AccountRetention), (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody)))]
pub async fn get_retention(Customer(account): Customer) -> Json<Value> {
    Json(render_settings(&account))
}

/// `PUT /v2/account/retention`: customer-settable fields only; invalid → nothing changes.
#[utoipa::path(put, path = "/v2/account/retention", tag = "public", security(("api_key" = [])),
    request_body = super::openapi::AccountRetentionUpdate,
    responses((status = 200, description = "The settings now in force", body = super::openapi::AccountRetention),
        (status = 400, description = "An invalid value or unknown field; nothing changed", body = super::openapi::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::openapi::ErrorBody),
        (status = 403, description = "baa, region or zero_data_retention, which only the operator sets", body = super::openapi::ErrorBody)))]
pub async fn put_retention(
    State(state): State<AppState>,
    Customer(account): Customer,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<Json<Value>, ApiError> {
    for operator_field in ["baa", "region", "zero_data_retention"] {
        if body.contains_key(operator_field) {
            return Err(ApiError::Forbidden(format!(
                "{operator_field} is set by the operator, not through the API; contact your provider to change it"
            )));
        }
    }
    let patch = SettingsPatch {
        transcript_ttl: take_ttl(&mut body, "transcript_ttl_seconds", true)?,
        upload_ttl: take_ttl(&mut body, "upload_ttl_seconds", false)?.flatten(),
        model_training_opt_out: take_bool(&mut body, "model_training_opt_out")?,
        ..SettingsPatch::default()
    };
    reject_unknown(
        &body,
        &[
            "transcript_ttl_seconds",
            "upload_ttl_seconds",
            "model_training_opt_out",
        ],
    )?;
    let account = state.engine.update_settings(account.id, &patch).await?;
    Ok(Json(render_settings(&account)))
}
