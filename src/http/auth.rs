//! Who is calling: a customer (raw API key, as AssemblyAI's API takes it), the pipeline
//! (internal bearer token) or an operator (admin bearer token). Each surface has its own
//! credential; none is ever logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::SecretString;

use super::error::ApiError;
use super::AppState;
use crate::domain::{Account, ApiKey};
use crate::startup::token_matches;

/// The authenticated customer account.
pub struct Customer(pub Account);

impl FromRequestParts<AppState> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let account = state
            .engine
            .authenticate(&ApiKey::from_presented(raw))
            .await?;
        account.map(Customer).ok_or(ApiError::Unauthorized)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn check_bearer(
    parts: &Parts,
    expected: &SecretString,
    surface: &'static str,
) -> Result<(), ApiError> {
    match bearer(parts) {
        Some(token) if token_matches(expected, token) => Ok(()),
        _ => Err(ApiError::UnauthorizedBearer(surface)),
    }
}

/// The transcription pipeline.
pub struct Internal;

impl FromRequestParts<AppState> for Internal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_bearer(parts, &state.tokens.internal, "internal").map(|()| Internal)
    }
}

/// An operator.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_bearer(parts, &state.tokens.admin, "admin").map(|()| Admin)
    }
}
