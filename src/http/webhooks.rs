//! The webhook outbox as operators see it (admin token): every delivery with its state,
//! attempts and last outcome — never a URL or a header, which are content.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

use super::error::*;
use super::extract::*;
use super::AppState;
use crate::domain::WebhookDelivery;

/// One delivery of the outbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryBody {
    pub id: Uuid,
    pub account_id: Uuid,
    pub transcript_id: Uuid,
    /// `transcript.status` (AssemblyAI's completion webhook) or `transcript.deleted`.
    pub event: String,
    /// `pending`, `delivered`, `failed` (attempts ran out) or `abandoned` (the transcript,
    /// and with it the webhook URL, was deleted first).
    pub state: String,
    pub attempts: u32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: DateTime<Utc>,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<&WebhookDelivery> for DeliveryBody {
    fn from(d: &WebhookDelivery) -> Self {
        DeliveryBody {
            id: d.id,
            account_id: d.account_id,
            transcript_id: d.transcript_id,
            event: d.event.as_str().to_owned(),
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// `GET /admin/v1/webhooks/deliveries` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryBody>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<Uuid>,
}

/// `GET /admin/v1/webhooks/deliveries`: the outbox by id.
#[utoipa::path(get, path = "/admin/v1/webhooks/deliveries", tag = "admin", security(("admin_token" = [])),
    params(("after" = Option<String>, Query, description = "The next_after of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, description = "Deliveries by id", body = DeliveryList),
        (status = 400, description = "Bad parameter", body = super::body::ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = super::body::ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryList>, ApiError> {
    let (after, limit) = page_query(&query, 50, 200)?;
    let deliveries = state.engine.webhook_deliveries(after, limit).await?;
    Ok(Json(DeliveryList {
        next_after: next_after(deliveries.iter().map(|d| d.id), limit),
        deliveries: deliveries.iter().map(DeliveryBody::from).collect(),
    }))
}
