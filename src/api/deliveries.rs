//! Parked webhook deliveries (admin): `GET /v1/webhooks/deliveries?status=failed`
//! lists the deliveries given up after a day of failures, and
//! `POST /v1/webhooks/deliveries/{id}/retry` sends one again now.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::feed::actor_of;
use super::views::rfc3339;
use super::state::{AppState, Caller};
use crate::config::Scope;
use crate::events::outbox::RetryOutcome;
use crate::events::Parked;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks/deliveries", get(list_deliveries))
        .route("/v1/webhooks/deliveries/{id}/retry", post(retry_delivery))
}

/// A parked delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "dlv_3", "status": "failed", "endpoint": "https://crm.example/hooks/redial", "event_id": "evt_812", "type": "callback.completed", "failures": 153, "first_failure_at": "2026-12-03T08:00:00.000Z", "last_failure_at": "2026-12-04T07:59:12.000Z", "last_error": "HTTP 500"}))]
pub struct DeliveryView {
    pub id: String,
    /// `failed` (parked), or `delivered` in a retry's answer.
    pub status: String,
    pub endpoint: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub failures: u32,
    pub first_failure_at: String,
    pub last_failure_at: String,
    pub last_error: String,
}

impl From<&Parked> for DeliveryView {
    fn from(p: &Parked) -> Self {
        Self {
            id: format!("dlv_{}", p.id),
            status: "failed".into(),
            endpoint: p.endpoint.clone(),
            event_id: format!("evt_{}", p.seq),
            kind: p.kind.clone(),
            failures: p.failures,
            first_failure_at: rfc3339(p.first_failure),
            last_failure_at: rfc3339(p.last_failure),
            last_error: p.last_error.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// Only `failed` (parked deliveries) is kept; the default.
    pub status: Option<String>,
    /// 1–500, default 100.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn require_admin(s: &AppState, caller: Option<Extension<Caller>>) -> Result<(), ApiError> {
    let actor = actor_of(s, caller);
    if actor.has(Scope::Admin) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("token `{}` lacks the `admin` scope", actor.name())))
    }
}

fn parse_id(id: &str) -> Option<u64> {
    id.strip_prefix("dlv_").and_then(|n| n.parse().ok())
}

/// Webhook deliveries parked after a day of failures, oldest first.
#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "webhooks", params(DeliveriesQuery),
    responses(
        (status = 200, description = "Parked deliveries", body = DeliveryList),
        (status = 400, description = "Bad status, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks admin", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_deliveries(State(s): State<AppState>, caller: Option<Extension<Caller>>, q: Result<Query<DeliveriesQuery>, QueryRejection>) -> Result<Json<DeliveryList>, ApiError> {
    require_admin(&s, caller)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if let Some(st) = q.status.as_deref().filter(|st| *st != "failed") {
        return Err(ApiError::bad_request("invalid_status", format!("status `{st}` is not kept: only `failed` (parked) deliveries are listed")).field("status"));
    }
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(ApiError::bad_request("invalid_limit", "limit must be 1 to 500").field("limit")),
        },
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(parse_id(c).ok_or_else(|| ApiError::bad_request("invalid_cursor", "unknown cursor").field("cursor"))?),
    };
    let mut items = s.outbox.parked(limit + 1, after).await?;
    let more = items.len() > limit;
    items.truncate(limit);
    Ok(Json(DeliveryList {
        next_cursor: if more { items.last().map(|p| format!("dlv_{}", p.id)) } else { None },
        items: items.iter().map(DeliveryView::from).collect(),
    }))
}

/// Sends a parked delivery again now, once, with its original body and a
/// fresh signature. Delivered: it leaves the list. Failed: it stays, with
/// one more failure.
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/retry", tag = "webhooks",
    params(("id" = String, Path, description = "`dlv_...`")),
    responses(
        (status = 200, description = "Tried: `status` is `delivered` or `failed`", body = DeliveryView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks admin", body = ErrorBody),
        (status = 404, description = "No such parked delivery", body = ErrorBody),
        (status = 409, description = "Its endpoint is no longer configured", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn retry_delivery(State(s): State<AppState>, caller: Option<Extension<Caller>>, Path(id): Path<String>) -> Result<Json<DeliveryView>, ApiError> {
    require_admin(&s, caller)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no parked delivery `{id}`"));
    let n = parse_id(&id).ok_or_else(not_found)?;
    let p = s.outbox.parked_get(n).await?.ok_or_else(not_found)?;
    let Some(hook) = s.cfg.webhooks.iter().find(|h| h.url == p.endpoint).cloned() else {
        return Err(ApiError::new(StatusCode::CONFLICT, "endpoint_removed", format!("`{}` is no longer a configured webhook", p.endpoint)));
    };
    let body = p.body.clone();
    let event_id = format!("evt_{}", p.seq);
    let sent = tokio::task::spawn_blocking(move || crate::webhooks::send::post(&crate::webhooks::send::agent(), &hook.url, &hook.secret, &event_id, &body))
        .await
        .unwrap_or_else(|e| Err(format!("sender failed: {e}")));
    let now = s.ops.clock.now_ms();
    let mut view = DeliveryView::from(&p);
    match sent {
        Ok(_) => {
            s.outbox.retried(n, RetryOutcome::Delivered).await?;
            view.status = "delivered".into();
        }
        Err(error) => {
            s.outbox.retried(n, RetryOutcome::Failed { at: now, error: error.clone() }).await?;
            view.failures += 1;
            view.last_failure_at = rfc3339(now);
            view.last_error = error;
        }
    }
    tracing::info!(delivery = %view.id, status = %view.status, "parked webhook delivery retried");
    Ok(Json(view))
}
