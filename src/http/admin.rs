//! The operators' API: accounts and keys, sweeps, overdue artifacts. Bearer-authenticated
//! with the admin token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::collections::HashMap;

use super::body::*;
use super::error::*;
use super::extract::*;
use super::AppState;
use crate::domain::{RetentionSettings, SettingsPatch, SweepReport, SweepState};

/// `POST /admin/v1/accounts`: the API key is in this response only.
#[utoipa::path(post, path = "/admin/v1/accounts", tag = "admin", security(("admin_token" = [])),
    request_body = super::openapi::AccountCreate,
    responses((status = 201, description = "Created; the API key is shown only here", body = super::body::AccountCreated),
        (status = 400, description = "Invalid or unknown fields", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn create_account(
    State(state): State<AppState>,
    _: Admin,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<(StatusCode, Json<AccountCreated>), ApiError> {
    let name = take_text(&mut body, "name", 200)?;
    let settings = RetentionSettings {
        baa: take_bool(&mut body, "baa")?.unwrap_or(false),
        region: take_region(&mut body)?.unwrap_or_default(),
        zero_data_retention: take_bool(&mut body, "zero_data_retention")?.unwrap_or(false),
        ..RetentionSettings::default()
    };
    reject_unknown(&body, &["name", "baa", "region", "zero_data_retention"])?;
    let (account, key) = state.engine.create_account(&name, settings).await?;
    Ok((
        StatusCode::CREATED,
        Json(AccountCreated {
            id: account.id,
            api_key: key.expose().to_owned(),
        }),
    ))
}

/// `GET /admin/v1/accounts/{id}`
#[utoipa::path(get, path = "/admin/v1/accounts/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = super::body::AccountBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such account", body = super::body::ErrorBody)))]
pub async fn get_account(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<AccountBody>, ApiError> {
    let account = state
        .engine
        .account(Resource::Account.id(&id)?)
        .await
        .or_not_found(Resource::Account)?;
    Ok(Json((&account).into()))
}

/// `PATCH /admin/v1/accounts/{id}`. With `?dry_run=true` nothing changes either way: the
/// body is validated alike and the answer is what the change would do to the existing
/// artifacts.
#[utoipa::path(patch, path = "/admin/v1/accounts/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Account id"),
        ("dry_run" = Option<bool>, Query, description = "true: validate and report what the change would do (settings, mode, existing artifacts it would shorten) without changing anything")),
    request_body = super::openapi::AccountPatch,
    responses((status = 200, description = "The account after the change; with dry_run=true, what the change would do, nothing changed", body = super::body::AccountPatched),
        (status = 400, description = "Invalid settings, or a dry_run other than true or false; nothing changed", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such account", body = super::body::ErrorBody), (status = 409, description = "Changed concurrently", body = super::body::ErrorBody)))]
pub async fn patch_account(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    AppJson(mut body): AppJson<JsonObject>,
) -> Result<Json<AccountPatched>, ApiError> {
    let dry_run = query_bool(&query, "dry_run")?;
    let id = Resource::Account.id(&id)?;
    let patch = SettingsPatch {
        transcript_ttl: take_ttl(&mut body, "transcript_ttl_seconds", true)?,
        upload_ttl: take_ttl(&mut body, "upload_ttl_seconds", false)?.flatten(),
        baa: take_bool(&mut body, "baa")?,
        region: take_region(&mut body)?,
        model_training_opt_out: take_bool(&mut body, "model_training_opt_out")?,
        zero_data_retention: take_bool(&mut body, "zero_data_retention")?,
    };
    reject_unknown(
        &body,
        &[
            "baa",
            "region",
            "zero_data_retention",
            "transcript_ttl_seconds",
            "upload_ttl_seconds",
            "model_training_opt_out",
        ],
    )?;
    if dry_run {
        let (next, impact) = state
            .engine
            .preview_settings(id, &patch)
            .await
            .or_not_found(Resource::Account)?;
        return Ok(Json(AccountPatched::DryRun(AccountDryRun::new(
            &next, &impact,
        ))));
    }
    let account = state
        .engine
        .update_settings(id, &patch)
        .await
        .or_not_found(Resource::Account)?;
    Ok(Json(AccountPatched::Applied((&account).into())))
}

/// `POST /admin/v1/accounts/{id}/keys`: another key; earlier ones keep working.
#[utoipa::path(post, path = "/admin/v1/accounts/{id}/keys", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Account id")),
    responses((status = 201, description = "Another API key; earlier ones keep working", body = super::body::KeyCreated), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such account", body = super::body::ErrorBody)))]
pub async fn new_key(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let key = state
        .engine
        .new_api_key(Resource::Account.id(&id)?)
        .await
        .or_not_found(Resource::Account)?;
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            api_key: key.expose().to_owned(),
        }),
    ))
}

/// `POST /admin/v1/sweeps`: starts a pass now, detached from this request (a timeout or a
/// client going away never cuts it short), and answers 202 with its id; poll
/// `GET /admin/v1/sweeps/{id}`. With `?wait=true` the answer waits for the pass to end
/// (200 with its summary), at most the request timeout (then 202 as without). A pass
/// already running in this instance is answered with instead of starting another.
#[utoipa::path(post, path = "/admin/v1/sweeps", tag = "admin", security(("admin_token" = [])),
    params(("wait" = Option<bool>, Query, description = "Wait for the pass to end (bounded by the request timeout)")),
    responses((status = 200, description = "The summary of the pass (with wait=true)", body = super::body::SweepBody),
        (status = 202, description = "The pass is running; poll its status_url", body = super::body::SweepStarted),
        (status = 400, description = "Bad wait", body = super::body::ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn run_sweep(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Json<SweepAnswer>), ApiError> {
    let wait = match query.get("wait").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "wait must be true or false; got {other:?}"
            )))
        }
    };
    let mut finished = state.sweeper.last_report();
    let started = state.sweeper.start_pass().await;
    if wait {
        // Ends when the pass does; the request timeout bounds the wait, never the pass.
        let ended = finished
            .wait_for(|r| r.as_ref().is_some_and(|r| r.id == started.id))
            .await
            .ok()
            .and_then(|r| r.clone());
        if let Some(report) = ended {
            return Ok((
                StatusCode::OK,
                Json(SweepAnswer::Finished(report.as_ref().into())),
            ));
        }
        if let Some(report) = state.engine.sweep(started.id).await? {
            if report.state != SweepState::Running {
                return Ok((
                    StatusCode::OK,
                    Json(SweepAnswer::Finished((&report).into())),
                ));
            }
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(SweepAnswer::Started(SweepStarted {
            id: started.id,
            state: "running".to_owned(),
            already_running: started.already_running,
            status_url: format!("{}/admin/v1/sweeps/{}", state.base_url, started.id),
        })),
    ))
}

/// `GET /admin/v1/sweeps/{id}`: one pass, running or finished.
#[utoipa::path(get, path = "/admin/v1/sweeps/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Sweep id")),
    responses((status = 200, description = "The pass", body = super::body::SweepBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody),
        (status = 404, description = "No such sweep", body = super::body::ErrorBody)))]
pub async fn get_sweep(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<SweepBody>, ApiError> {
    let id = Resource::Sweep.id(&id)?;
    let report = match state.engine.sweep(id).await? {
        Some(report) => report,
        // Started a moment ago in this instance, not recorded yet.
        None if state.sweeper.running_pass() == Some(id) => SweepReport {
            id,
            instance: state.engine.instance().to_owned(),
            state: SweepState::Running,
            started_at: state.engine.now(),
            finished_at: state.engine.now(),
            ..Default::default()
        },
        None => return Err(ApiError::NotFound(Resource::Sweep)),
    };
    Ok(Json((&report).into()))
}

/// `GET /admin/v1/sweeps`: recent passes, newest first.
#[utoipa::path(get, path = "/admin/v1/sweeps", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u32>, Query, description = "1 to 200, default 20")),
    responses((status = 200, description = "Recent passes, newest first", body = super::body::SweepList), (status = 400, description = "Bad limit", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn list_sweeps(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SweepList>, ApiError> {
    let sweeps = state.engine.recent_sweeps(limit(&query, 20, 200)?).await?;
    Ok(Json(SweepList {
        sweeps: sweeps.iter().map(SweepBody::from).collect(),
    }))
}

/// `GET /admin/v1/reconciliations`: recent reconciliation runs, newest first.
#[utoipa::path(get, path = "/admin/v1/reconciliations", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u32>, Query, description = "1 to 200, default 20")),
    responses((status = 200, description = "Recent reconciliation runs, newest first", body = super::body::ReconciliationList),
        (status = 400, description = "Bad limit", body = super::body::ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn list_reconciliations(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ReconciliationList>, ApiError> {
    let runs = state
        .engine
        .recent_reconciliations(limit(&query, 20, 200)?)
        .await?;
    Ok(Json(ReconciliationList {
        reconciliations: runs.iter().map(Reconciliation::from).collect(),
    }))
}

/// `GET /admin/v1/overdue`: artifacts past `delete_by` and not deleted.
#[utoipa::path(get, path = "/admin/v1/overdue", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, description = "Artifacts past delete_by and not deleted", body = super::body::OverdueList), (status = 400, description = "Bad limit", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn overdue(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<OverdueList>, ApiError> {
    let artifacts = state.engine.overdue(limit(&query, 100, 1000)?).await?;
    Ok(Json(OverdueList {
        artifacts: artifacts.iter().map(OverdueArtifact::from).collect(),
    }))
}

/// `GET /admin/v1/accounts/{id}/usage`: usage metadata of LLM Gateway requests and
/// streaming sessions, kept for billing also when their content was not (§6).
#[utoipa::path(get, path = "/admin/v1/accounts/{id}/usage", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Account id"),
        ("after" = Option<String>, Query, description = "The `next_after` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, description = "Usage records, oldest first", body = super::body::UsagePage),
        (status = 400, description = "Bad after or limit", body = super::body::ErrorBody), (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody), (status = 404, description = "No such account", body = super::body::ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<UsagePage>, ApiError> {
    let id = Resource::Account.id(&id)?;
    let (after, limit) = page_query(&query, 100, 1000)?;
    let records = state
        .engine
        .usage(id, after, limit)
        .await
        .or_not_found(Resource::Account)?;
    let next_after = next_after(records.iter().map(|u| u.id), limit);
    Ok(Json(UsagePage {
        usage: records.iter().map(UsageRecordBody::from).collect(),
        next_after,
    }))
}
