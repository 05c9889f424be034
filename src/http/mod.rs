//! The HTTP surfaces over the engine: the public AssemblyAI-compatible `/v2` API, the
//! pipeline's internal API and the operators' admin API, plus `/healthz`, `/metrics` and
//! `/openapi.json`. One file per resource; every error body is `{"error": "..."}`.
//!
//! Requests are bounded: JSON bodies by size, every request but the streaming ones by
//! time; uploads and intermediates stream straight into the content store.

pub mod account;
pub mod admin;
pub mod body;
pub mod dashboard;
pub mod dto;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod holds;
pub mod internal;
pub mod openapi;
pub mod raw;
pub mod receipts;
pub mod server;
pub mod tokens;
pub mod training;
pub mod transcripts;
pub mod uploads;
pub mod webhooks;

pub use openapi::document_json as openapi_json;
pub use tokens::{token_matches, Tokens};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::engine::Engine;
use crate::sweeper::Sweeper;
use error::error_body;

/// Largest JSON body of the public and admin APIs.
pub const PUBLIC_JSON_LIMIT: usize = 1 << 20;
/// Largest JSON body of the internal API (a long transcript's words).
pub const INTERNAL_JSON_LIMIT: usize = 256 << 20;

#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Engine,
    pub sweeper: Arc<Sweeper>,
    pub config: Arc<Config>,
    pub tokens: Tokens,
    /// Base of every absolute URL we hand out (`upload_url`, `resource_url`, page URLs).
    pub base_url: Arc<str>,
    /// When the tracked-artifact gauges were last read from the index.
    pub gauges_read_at: Arc<Mutex<Option<Instant>>>,
}

/// Every documented route, registered with its OpenAPI description: the router and the
/// document come from this one table.
pub fn api_routes() -> OpenApiRouter<AppState> {
    api_routes_with_timeout(Duration::from_secs(60))
}

fn api_routes_with_timeout(timeout: Duration) -> OpenApiRouter<AppState> {
    let timeout = || TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout);
    let public_and_admin = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(
            transcripts::create_transcript,
            transcripts::list_transcripts
        ))
        .routes(routes!(
            transcripts::get_transcript,
            transcripts::delete_transcript
        ))
        .routes(routes!(transcripts::retention))
        .routes(routes!(receipts::receipt))
        .routes(routes!(receipts::public_key))
        .routes(routes!(receipts::checkpoint))
        .routes(routes!(receipts::consistency))
        .routes(routes!(holds::create_hold, holds::list_holds))
        .routes(routes!(holds::release_hold))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(account::get_retention, account::put_retention))
        .routes(routes!(admin::create_account))
        .routes(routes!(admin::get_account, admin::patch_account))
        .routes(routes!(admin::new_key))
        .routes(routes!(admin::run_sweep, admin::list_sweeps))
        .routes(routes!(admin::get_sweep))
        .routes(routes!(admin::list_reconciliations))
        .routes(routes!(admin::overdue))
        .routes(routes!(admin::usage))
        .routes(routes!(
            gateway::get_llm_request,
            gateway::delete_llm_request
        ))
        .routes(routes!(
            gateway::get_streaming_session,
            gateway::delete_streaming_session
        ))
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .layer(DefaultBodyLimit::max(PUBLIC_JSON_LIMIT))
        // A declared length over the limit is refused before the body is awaited.
        .layer(RequestBodyLimitLayer::new(PUBLIC_JSON_LIMIT))
        .layer(timeout());
    let internal_json = OpenApiRouter::new()
        .routes(routes!(internal::processing))
        .routes(routes!(internal::complete))
        .routes(routes!(internal::error))
        .routes(routes!(internal::speech_understanding))
        .routes(routes!(gateway::llm_gateway_request))
        .routes(routes!(gateway::streaming_session))
        .routes(routes!(training::eligible))
        .routes(routes!(training::redactions))
        .layer(DefaultBodyLimit::max(INTERNAL_JSON_LIMIT))
        .layer(RequestBodyLimitLayer::new(INTERNAL_JSON_LIMIT))
        .layer(timeout());
    // Streaming bodies are bounded by size (max_upload_bytes), not by time.
    let streaming = OpenApiRouter::new()
        .routes(routes!(uploads::upload))
        .routes(routes!(uploads::read_upload))
        .routes(routes!(internal::put_intermediate))
        .routes(routes!(training::content))
        .layer(DefaultBodyLimit::disable());
    public_and_admin.merge(internal_json).merge(streaming)
}

pub fn router(state: AppState) -> Router {
    let timeout = state
        .config
        .request_timeout
        .to_std()
        .unwrap_or(Duration::from_secs(60));
    let (routes, _) = api_routes_with_timeout(timeout).split_for_parts();
    routes
        .route("/openapi.json", get(openapi::serve))
        .fallback(unknown_endpoint)
        .layer(middleware::from_fn(one_value_per_parameter))
        .layer(middleware::map_response(json_errors))
        .layer({
            let metrics = state.engine.metrics().clone();
            middleware::map_response(move |response: Response| {
                metrics.record_response(response.status().as_u16());
                std::future::ready(response)
            })
        })
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
        .merge(dashboard::routes(state.clone()))
        .with_state(state)
}

async fn unknown_endpoint() -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        "no such endpoint; the API is described at /openapi.json",
    )
}

/// Gives error responses that axum or tower produced themselves our JSON shape.
/// A query parameter given twice (`?dry_run=true&dry_run=false`) is refused: which one
/// wins is not something a request should leave to chance.
async fn one_value_per_parameter(request: Request, next: middleware::Next) -> Response {
    if let Some(query) = request.uri().query() {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(name.clone()) {
                return error::error_body(
                    StatusCode::BAD_REQUEST,
                    &format!("the query parameter {name:?} is given more than once"),
                );
            }
        }
    }
    next.run(request).await
}

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

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The server is up", body = body::Health)))]
async fn healthz() -> Json<body::Health> {
    Json(body::Health {
        status: "ok".to_owned(),
    })
}

/// Prometheus text; gauges are re-read from the index at most every 10 seconds.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus (OpenMetrics) text", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(state): State<AppState>) -> Result<Response, error::ApiError> {
    {
        let mut read_at = state.gauges_read_at.lock().await;
        if read_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            state.engine.refresh_gauges().await?;
            *read_at = Some(Instant::now());
        }
    }
    let mut response = state.engine.metrics().encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
