//! `GET|PUT /v2/account/retention`: the customer's view of their retention settings.

use axum::extract::{Query, State};
use axum::Json;
use std::collections::HashMap;

use super::body::{AccountRetention, AccountRetentionUpdated, RetentionDryRun};
use super::error::*;
use super::extract::*;
use super::raw;
use super::AppState;
use crate::domain::SettingsPatch;

/// `GET /v2/account/retention`
#[utoipa::path(get, path = "/v2/account/retention", tag = "public", security(("api_key" = [])),
    responses((status = 200, description = "The account's retention settings and derived mode", body = super::body::AccountRetention), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn get_retention(Customer(account): Customer) -> Json<AccountRetention> {
    Json((&account).into())
}

/// `PUT /v2/account/retention`: customer-settable fields only; invalid → nothing changes.
/// With `?dry_run=true` nothing changes either way: the body is validated alike and the
/// answer is what the change would do to the existing artifacts.
#[utoipa::path(put, path = "/v2/account/retention", tag = "public", security(("api_key" = [])),
    params(("dry_run" = Option<bool>, Query, description = "true: validate and report what the change would do (settings, mode, existing artifacts it would shorten) without changing anything")),
    request_body = super::openapi::AccountRetentionUpdate,
    responses((status = 200, description = "The settings now in force; with dry_run=true, what the change would do, nothing changed", body = super::body::AccountRetentionUpdated),
        (status = 400, description = "An invalid value or unknown field, or a dry_run other than true or false; nothing changed", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 403, description = "baa, region or zero_data_retention, which only the operator sets", body = super::body::ErrorBody)))]
pub async fn put_retention(
    State(state): State<AppState>,
    Customer(account): Customer,
    Query(query): Query<HashMap<String, String>>,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<Json<AccountRetentionUpdated>, ApiError> {
    let dry_run = query_bool(&query, "dry_run")?;
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
    // Some(Some(url)): set (a new secret); Some(None): remove; None: unchanged.
    let webhook = match body.remove("deletion_webhook_url") {
        None => None,
        Some(value) if raw::is_null(&value) => Some(None),
        Some(value) if raw::is_string(&value) => {
            let url: String = raw::parse(&value).unwrap_or_default();
            crate::engine::webhooks::check_webhook_url(&url)?;
            Some(Some(url))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "deletion_webhook_url must be an absolute http(s) URL, or null",
            ))
        }
    };
    reject_unknown(
        &body,
        &[
            "transcript_ttl_seconds",
            "upload_ttl_seconds",
            "model_training_opt_out",
        ],
    )?;
    if dry_run {
        let (next, impact) = state.engine.preview_settings(account.id, &patch).await?;
        return Ok(Json(AccountRetentionUpdated::DryRun(RetentionDryRun::new(
            &next, &impact,
        ))));
    }
    let changes_settings = patch.transcript_ttl.is_some()
        || patch.upload_ttl.is_some()
        || patch.model_training_opt_out.is_some()
        || webhook.is_none();
    let mut account = match changes_settings {
        true => state.engine.update_settings(account.id, &patch).await?,
        false => account,
    };
    let mut secret = None;
    if let Some(url) = webhook {
        secret = state
            .engine
            .set_deletion_webhook(account.id, url.as_deref())
            .await?;
        account = state.engine.account(account.id).await?;
    }
    let mut settings = AccountRetention::from(&account);
    // Shown this once: only its holder can check the signatures.
    settings.deletion_webhook_secret = secret;
    Ok(Json(AccountRetentionUpdated::Applied(settings)))
}
