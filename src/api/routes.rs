//! The handlers of the REST API. Each answers JSON; errors go
//! through [`ApiError`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::idempotency::{self, Stored};
use crate::metrics::{family, label};
use super::views::*;
use super::state::{AppState, Caller};
use crate::agents::AgentState;
use crate::scheduler::model::{Confidence, Origin, Status};
use crate::scheduler::store::ListFilter;

/// Every route template, for metrics labels (a fixed set, so label
/// cardinality stays bounded whatever paths clients send).
pub const ROUTES: &[&str] = &[
    "/v1/callbacks",
    "/v1/callbacks/{id}",
    "/v1/callbacks/{id}/attempts",
    "/v1/callbacks/{id}/cancel",
    "/v1/detections",
    "/v1/stats",
    "/v1/agents",
    "/v1/agents/{id}/state",
    "/v1/trunks",
    "/v1/admin/backup",
    "/v1/cluster",
    "/v1/audit",
    "/v1/events",
    "/v1/openapi.json",
    "/healthz",
    "/metrics",
];

pub fn template(matched: Option<&str>) -> &'static str {
    matched.and_then(|m| ROUTES.iter().find(|r| **r == m).copied()).unwrap_or("other")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/callbacks", post(create_callback).get(list_callbacks))
        .route("/v1/callbacks/{id}", get(get_callback).patch(change_callback))
        .route("/v1/callbacks/{id}/attempts", get(list_attempts))
        .route("/v1/callbacks/{id}/cancel", post(cancel_callback))
        .route("/v1/detections", post(super::detections::detect))
        .route("/v1/stats", get(stats))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{id}/state", put(set_agent_state))
        .route("/v1/trunks", get(list_trunks))
        .route("/v1/admin/backup", post(super::admin::backup))
        .route("/v1/cluster", get(super::admin::cluster))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn to_bytes<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn id_of(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    // A path that does not even decode is just another unknown id.
    p.map(|Path(id)| id).map_err(|_| ApiError::not_found("callback"))
}

/// A callback id; any other shape is an unknown id (404).
fn callback_id(id: &str) -> Result<crate::scheduler::model::CallbackId, ApiError> {
    crate::scheduler::model::CallbackId::parse(id).ok_or_else(|| ApiError::not_found("callback"))
}

/// Schedule a callback.
#[utoipa::path(post, path = "/v1/callbacks", tag = "callbacks",
    request_body = CreateCallback,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$", description = "Same key and body within 24 h returns the first response")),
    responses(
        (status = 201, description = "Scheduled (durable)", body = CallbackView),
        (status = 400, description = "Malformed JSON, unknown field, wrong type", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:write", body = ErrorBody),
        (status = 409, description = "An active callback exists for this phone in this queue, or for this live call's interaction (`existing_id`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A rule is broken (time, queue, owner, phone, timezone), both `when` and `scheduled_at` given, or the idempotency key was reused with another body", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_callback(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let key = match headers.get("idempotency-key").map(|v| v.to_str().map(str::to_string)) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= idempotency::MAX_KEY_LEN => Some(k),
        Some(_) => {
            return ApiError::bad_request("invalid_idempotency_key", format!("Idempotency-Key must be 1 to {} visible ASCII characters", idempotency::MAX_KEY_LEN))
                .field("Idempotency-Key")
                .into_response()
        }
    };
    let actor = super::feed::actor_of(&s, caller);
    let Some(key) = key else { return create(&s, &actor, body).await };
    let body = match body {
        Ok(b) => b,
        Err(e) => return create(&s, &actor, Err(e)).await,
    };
    let token = actor.name();
    let now = Instant::now();
    let slot = s.idempotency.slot(&token, &key, now);
    let mut held = slot.lock().await;
    let h = idempotency::hash(&body);
    if let Some(st) = held.as_ref().filter(|st| now.duration_since(st.at) < idempotency::TTL) {
        if st.body_hash != h {
            return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", "this Idempotency-Key was used with a different body")
                .field("Idempotency-Key")
                .into_response();
        }
        let mut r = json_response(st.status, st.body.clone());
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        return r;
    }
    let resp = create(&s, &actor, Ok(body)).await;
    let status = resp.status();
    // Remember definite answers only: a 5xx or 503 may succeed on retry.
    if status.is_success() || (status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS) {
        let (parts, b) = resp.into_parts();
        let bytes = axum::body::to_bytes(b, usize::MAX).await.unwrap_or_default();
        *held = Some(Stored { body_hash: h, status, body: bytes.clone(), at: now });
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    resp
}

async fn create(s: &AppState, actor: &crate::ops::Actor, body: Result<Bytes, BytesRejection>) -> Response {
    let r: Result<Response, ApiError> = async {
        let req: CreateCallback = json_body(body)?;
        let cb = s.ops.create(actor, req).await?;
        let mut r = json_response(StatusCode::CREATED, to_bytes(&CallbackView::from(&cb)));
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/callbacks/{}", cb.id)) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Ok(r)
    }
    .await;
    r.unwrap_or_else(|e| e.into_response())
}

/// The statuses a list can filter on (schema only; parsed as [`Status`]).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum StatusParam {
    Scheduled,
    InProgress,
    Completed,
    Cancelled,
    Exhausted,
    Failed,
    Skipped,
}

/// The origins a list or stats can filter on (schema only; parsed as [`Origin`]).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OriginParam {
    Api,
    Agent,
    Inbound,
    Abandoned,
}

/// `GET /v1/callbacks` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<StatusParam>)]
    pub status: Option<String>,
    pub queue: Option<String>,
    pub owner: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// `api`, `agent`, `inbound` or `abandoned`.
    #[param(value_type = Option<OriginParam>)]
    pub origin: Option<String>,
    /// Callbacks whose `reason` contains these words (any case).
    pub reason: Option<String>,
    /// Callbacks with at least this `confidence` (0 to 1).
    #[param(value_type = Option<f64>, minimum = 0.0, maximum = 1.0)]
    pub min_confidence: Option<String>,
    /// 1 to 500, default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List callbacks, oldest first.
#[utoipa::path(get, path = "/v1/callbacks", tag = "callbacks", params(ListQuery),
    responses(
        (status = 200, description = "A page", body = List<CallbackView>),
        (status = 400, description = "Bad filter or limit", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_callbacks(State(s): State<AppState>, q: Result<Query<ListQuery>, QueryRejection>) -> Result<Json<List<CallbackView>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let status = q
        .status
        .as_deref()
        .map(|v| v.parse::<Status>().map_err(|_| ApiError::bad_request("invalid_query", format!("`{v}` is not a status")).field("status")))
        .transpose()?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(ApiError::bad_request("invalid_query", format!("limit `{v}` must be 1 to 500")).field("limit")),
        },
    };
    let origin = q
        .origin
        .as_deref()
        .map(|v| v.parse::<Origin>().map_err(|_| ApiError::bad_request("invalid_query", format!("`{v}` is not an origin")).field("origin")))
        .transpose()?;
    let min_confidence = q
        .min_confidence
        .as_deref()
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .and_then(Confidence::from_f64)
                .ok_or_else(|| ApiError::bad_request("invalid_query", format!("min_confidence `{v}` must be a number from 0 to 1")).field("min_confidence"))
        })
        .transpose()?;
    let reason = q.reason.filter(|r| !r.is_empty());
    let filter = ListFilter { status, queue: q.queue, owner: q.owner, phone: q.phone, origin, reason, min_confidence };
    let page = s.book.list(&filter, limit, q.cursor.as_deref()).await?;
    Ok(Json(List { items: page.items.iter().map(CallbackView::from).collect(), next_cursor: page.next_cursor }))
}

/// One callback.
#[utoipa::path(get, path = "/v1/callbacks/{id}", tag = "callbacks", params(("id" = String, Path, description = "Callback id")),
    responses(
        (status = 200, description = "The callback", body = CallbackView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
        (status = 404, description = "No such callback", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_callback(State(s): State<AppState>, id: Result<Path<String>, PathRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id_of(id)?;
    let cb = s.book.get_str(&id).await?.ok_or_else(|| ApiError::not_found("callback"))?;
    let mut v = serde_json::to_value(CallbackView::from(&cb)).map_err(|e| ApiError::internal(&e))?;
    // Every text sent for it (`sms_confirm`, `sms_on_exhausted`), oldest
    // first; absent when none was, so GET answers what POST did.
    let texts = s.outbox.texts(cb.id.0).await?;
    if !texts.is_empty() {
        v["texts"] = crate::api::views::texts_json(&texts);
    }
    Ok(Json(v))
}

/// Every attempt of a callback, in order.
#[utoipa::path(get, path = "/v1/callbacks/{id}/attempts", tag = "callbacks", params(("id" = String, Path, description = "Callback id")),
    responses(
        (status = 200, description = "Attempts", body = List<AttemptView>),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
        (status = 404, description = "No such callback", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_attempts(State(s): State<AppState>, id: Result<Path<String>, PathRejection>) -> Result<Json<List<AttemptView>>, ApiError> {
    let id = id_of(id)?;
    let id = callback_id(&id)?;
    let attempts = s.book.attempts(id).await?.ok_or_else(|| ApiError::not_found("callback"))?;
    Ok(Json(List { items: attempts.iter().map(AttemptView::from).collect(), next_cursor: None }))
}

/// Change a scheduled callback.
#[utoipa::path(patch, path = "/v1/callbacks/{id}", tag = "callbacks", params(("id" = String, Path, description = "Callback id")),
    request_body = ChangeCallback,
    responses(
        (status = 200, description = "Changed", body = CallbackView),
        (status = 400, description = "Malformed JSON, unknown field, wrong type", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:write", body = ErrorBody),
        (status = 404, description = "No such callback", body = ErrorBody),
        (status = 409, description = "Not `scheduled` any more", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A rule is broken", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn change_callback(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CallbackView>, ApiError> {
    let id = id_of(id)?;
    let changes: ChangeCallback = json_body(body)?;
    callback_id(&id)?;
    let cb = s.ops.change(&super::feed::actor_of(&s, caller), &id, changes).await?;
    Ok(Json(CallbackView::from(&cb)))
}

/// Cancel a scheduled callback.
#[utoipa::path(post, path = "/v1/callbacks/{id}/cancel", tag = "callbacks", params(("id" = String, Path, description = "Callback id")),
    responses(
        (status = 200, description = "Cancelled", body = CallbackView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:write", body = ErrorBody),
        (status = 404, description = "No such callback", body = ErrorBody),
        (status = 409, description = "Already in progress or final", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn cancel_callback(State(s): State<AppState>, caller: Option<Extension<Caller>>, id: Result<Path<String>, PathRejection>) -> Result<Json<CallbackView>, ApiError> {
    let id = id_of(id)?;
    callback_id(&id)?;
    let cb = s.ops.cancel(&super::feed::actor_of(&s, caller), &id).await?;
    Ok(Json(CallbackView::from(&cb)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// A queue name; absent = all queues.
    pub queue: Option<String>,
    /// Count only callbacks of this origin; `by_origin` still splits the queue's by every origin.
    #[param(value_type = Option<OriginParam>)]
    pub origin: Option<String>,
}

/// Counters for one queue or all.
#[utoipa::path(get, path = "/v1/stats", tag = "callbacks", params(StatsQuery),
    responses(
        (status = 200, description = "Counters", body = StatsView),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn stats(State(s): State<AppState>, q: Result<Query<StatsQuery>, QueryRejection>) -> Result<Json<StatsView>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if let Some(name) = &q.queue {
        if s.live_cfg.get().queue(name).is_none() {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no queue named `{name}`")).field("queue"));
        }
    }
    let origin = q
        .origin
        .as_deref()
        .map(|v| v.parse::<Origin>().map_err(|_| ApiError::bad_request("invalid_query", format!("`{v}` is not an origin")).field("origin")))
        .transpose()?;
    let (total, split) = s.book.stats_by_origin(q.queue.as_deref(), origin).await?;
    let mut view = StatsView::from(total);
    view.by_origin = split.into_iter().map(|(o, st)| (o.as_str().to_string(), OriginStatsView::from(st))).collect();
    Ok(Json(view))
}

/// Every configured agent.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    responses(
        (status = 200, description = "Agents", body = List<AgentView>),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_agents(State(s): State<AppState>) -> Json<List<AgentView>> {
    Json(List { items: s.agents.list().iter().map(AgentView::from).collect(), next_cursor: None })
}

/// Set an agent `available` or `away`.
#[utoipa::path(put, path = "/v1/agents/{id}/state", tag = "agents", params(("id" = String, Path, description = "Agent id")),
    request_body = SetAgentState,
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 400, description = "Malformed JSON or unknown state", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks admin", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_agent_state(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AgentView>, ApiError> {
    let id = id.map(|Path(id)| id).map_err(|_| ApiError::not_found("agent"))?;
    if s.agents.get(&id).is_none() {
        return Err(ApiError::not_found("agent"));
    }
    let req: SetAgentState = json_body(body)?;
    let state = match req.state {
        SettableState::Available => AgentState::Available,
        SettableState::Away => AgentState::Away,
    };
    Ok(Json(AgentView::from(&s.ops.set_agent_state(&super::feed::actor_of(&s, caller), &id, state).await?)))
}

/// Carrier trunks.
#[utoipa::path(get, path = "/v1/trunks", tag = "trunks",
    responses(
        (status = 200, description = "Trunks", body = List<TrunkInfo>),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_trunks(State(s): State<AppState>) -> Json<List<TrunkInfo>> {
    Json(List { items: s.trunks.trunks(), next_cursor: None })
}

/// Liveness; no token needed.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

fn status_counts(st: &crate::scheduler::model::Stats) -> [(&'static str, u64); 6] {
    [("pending", st.pending), ("completed", st.completed), ("cancelled", st.cancelled), ("exhausted", st.exhausted), ("failed", st.failed), ("skipped", st.skipped)]
}

/// Prometheus metrics; no token needed (bind to loopback or firewall it).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let mut out = String::with_capacity(8192);
    family(&mut out, "redial_callbacks", "gauge", "Callbacks by queue and status (pending = scheduled + in_progress).");
    let mut requested = BTreeMap::new();
    let mut by_origin = Vec::new();
    let cfg = s.live_cfg.get();
    for q in &cfg.queues {
        let (st, split) = s.book.stats_by_origin(Some(&q.name), None).await?;
        let ql = label(&q.name);
        for (status, n) in status_counts(&st) {
            let _ = writeln!(out, "redial_callbacks{{queue=\"{ql}\",status=\"{status}\"}} {n}");
        }
        requested.insert(ql.clone(), st.requested);
        by_origin.push((ql, split));
    }
    family(&mut out, "redial_callbacks_requested_total", "counter", "Callbacks ever requested, by queue.");
    for (q, n) in requested {
        let _ = writeln!(out, "redial_callbacks_requested_total{{queue=\"{q}\"}} {n}");
    }
    // The same counts split by origin, in their own families so that summing
    // a family never counts a callback twice.
    family(&mut out, "redial_callbacks_by_origin", "gauge", "Callbacks by queue, origin and status (pending = scheduled + in_progress).");
    for (ql, split) in &by_origin {
        for (origin, st) in split {
            for (status, n) in status_counts(st) {
                let _ = writeln!(out, "redial_callbacks_by_origin{{queue=\"{ql}\",origin=\"{origin}\",status=\"{status}\"}} {n}");
            }
        }
    }
    family(&mut out, "redial_callbacks_requested_by_origin_total", "counter", "Callbacks ever requested, by queue and origin.");
    for (ql, split) in &by_origin {
        for (origin, st) in split {
            let _ = writeln!(out, "redial_callbacks_requested_by_origin_total{{queue=\"{ql}\",origin=\"{origin}\"}} {}", st.requested);
        }
    }
    family(&mut out, "redial_callbacks_waiting_for_agent", "gauge", "Callbacks due but waiting for a free agent.");
    let _ = writeln!(out, "redial_callbacks_waiting_for_agent {}", s.book.waiting_for_agent());
    family(&mut out, "redial_agents", "gauge", "Agents by state.");
    for (state, n) in s.agents.count_by_state() {
        let _ = writeln!(out, "redial_agents{{state=\"{}\"}} {n}", state.as_str());
    }
    let trunks = s.trunks.trunks();
    family(&mut out, "redial_trunk_registered", "gauge", "1 when the trunk's registration is current.");
    for t in &trunks {
        let _ = writeln!(out, "redial_trunk_registered{{trunk=\"{}\"}} {}", label(&t.name), u8::from(t.registered));
    }
    family(&mut out, "redial_trunk_up", "gauge", "1 when the trunk answers OPTIONS; absent while unknown.");
    for t in &trunks {
        if let Some(up) = t.up {
            let _ = writeln!(out, "redial_trunk_up{{trunk=\"{}\"}} {}", label(&t.name), u8::from(up));
        }
    }
    family(&mut out, "redial_webhook_deliveries_parked", "gauge", "Webhook deliveries parked after a day of failures (GET /v1/webhooks/deliveries?status=failed).");
    let _ = writeln!(out, "redial_webhook_deliveries_parked {}", s.outbox.parked_count().await?);
    family(&mut out, "redial_events_next_seq", "gauge", "The sequence the next event will get (events written to the outbox so far, plus one).");
    let _ = writeln!(out, "redial_events_next_seq {}", s.outbox.next_seq().await?);
    s.metrics.render_own(&mut out);
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], out).into_response())
}
