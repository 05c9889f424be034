//! The HTTP surfaces over the engine: the public AssemblyAI-compatible `/v2` API, the
//! pipeline's internal API and the operators' admin API, plus `/healthz`, `/metrics` and
//! `/openapi.json`. One file per resource; every error body is `{"error": "..."}`.
//!
//! Requests are bounded: JSON bodies by size, every request but the streaming ones by
//! time; uploads and intermediates stream straight into the content store.

pub mod account;
pub mod admin;
pub mod auth;
pub mod error;
pub mod internal;
pub mod openapi;
pub mod transcripts;
pub mod uploads;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{middleware, Json, Router};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::lifecycle::Lethe;
use crate::startup::Tokens;
use crate::sweeper::Sweeper;
use error::error_body;

/// Largest JSON body of the public and admin APIs.
pub const PUBLIC_JSON_LIMIT: usize = 1 << 20;
/// Largest JSON body of the internal API (a long transcript's words).
pub const INTERNAL_JSON_LIMIT: usize = 256 << 20;

#[derive(Clone, Debug)]
pub struct AppState {
    pub lethe: Lethe,
    pub sweeper: Arc<Sweeper>,
    pub config: Arc<Config>,
    pub tokens: Tokens,
    /// Base of every absolute URL we hand out (`upload_url`, `resource_url`, page URLs).
    pub base_url: Arc<str>,
    /// When the tracked-artifact gauges were last read from the index.
    pub gauges_read_at: Arc<Mutex<Option<Instant>>>,
}

pub fn router(state: AppState) -> Router {
    let public_and_admin = Router::new()
        .route(
            "/v2/transcript",
            post(transcripts::create_transcript).get(transcripts::list_transcripts),
        )
        .route(
            "/v2/transcript/{id}",
            get(transcripts::get_transcript).delete(transcripts::delete_transcript),
        )
        .route("/v2/transcript/{id}/retention", get(transcripts::retention))
        .route(
            "/v2/account/retention",
            get(account::get_retention).put(account::put_retention),
        )
        .route("/admin/v1/accounts", post(admin::create_account))
        .route(
            "/admin/v1/accounts/{id}",
            get(admin::get_account).patch(admin::patch_account),
        )
        .route("/admin/v1/accounts/{id}/keys", post(admin::new_key))
        .route(
            "/admin/v1/sweeps",
            post(admin::run_sweep).get(admin::list_sweeps),
        )
        .route("/admin/v1/overdue", get(admin::overdue))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve))
        .layer(DefaultBodyLimit::max(PUBLIC_JSON_LIMIT));
    let internal_json = Router::new()
        .route(
            "/internal/v1/transcripts/{id}/processing",
            post(internal::processing),
        )
        .route(
            "/internal/v1/transcripts/{id}/complete",
            post(internal::complete),
        )
        .route("/internal/v1/transcripts/{id}/error", post(internal::error))
        .route(
            "/internal/v1/transcripts/{id}/speech-understanding",
            post(internal::speech_understanding),
        )
        .layer(DefaultBodyLimit::max(INTERNAL_JSON_LIMIT));
    let timed = public_and_admin
        .merge(internal_json)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state
                .config
                .request_timeout
                .to_std()
                .unwrap_or(Duration::from_secs(60)),
        ));
    // Streaming bodies are bounded by size (max_upload_bytes), not by time.
    let streaming = Router::new()
        .route("/v2/upload", post(uploads::upload))
        .route("/internal/v1/uploads/{id}", get(uploads::read_upload))
        .route(
            "/internal/v1/transcripts/{id}/intermediates/{name}",
            put(internal::put_intermediate),
        )
        .layer(DefaultBodyLimit::disable());
    timed
        .merge(streaming)
        .fallback(unknown_endpoint)
        .layer(middleware::map_response(json_errors))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // Method and route template only: no query string, no ids, no bodies.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::info_span!("http", method = %request.method(), route)
            }),
        )
        .with_state(state)
}

async fn unknown_endpoint() -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        "no such endpoint; the API is described at /openapi.json",
    )
}

/// Gives error responses that axum or tower produced themselves our JSON shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "this endpoint does not accept that method; see /openapi.json"
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was stopped; retry it",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported content type",
        s if s.is_server_error() => "internal error; retry the request",
        _ => "the request could not be handled",
    };
    error_body(status, message)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Prometheus text; gauges are re-read from the index at most every 10 seconds.
async fn metrics(State(state): State<AppState>) -> Result<Response, error::ApiError> {
    {
        let mut read_at = state.gauges_read_at.lock().await;
        if read_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            let counts = state.lethe.backends.index.count_by_kind_and_state().await?;
            let overdue = state.lethe.overdue(10_000).await?.len();
            state.lethe.metrics.set_tracked(&counts, overdue);
            *read_at = Some(Instant::now());
        }
    }
    let mut response = state.lethe.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
