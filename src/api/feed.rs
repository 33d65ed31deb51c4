//! `GET /v1/audit` (the audit log, admin) and `GET /v1/events` (server-sent
//! events from the event bus). The console's own event stream is the same
//! [`event_stream`] behind its session instead of a bearer token.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::sync::watch;

use super::error::{ApiError, ErrorBody};
use super::views::{rfc3339, AgentView, AttemptView, CallbackView};
use super::state::{AppState, Caller};
use crate::config::Scope;
use crate::events::{Bus, Event, Kind, Outbox, Payload};
use crate::ops::Actor;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit", get(audit)).route("/v1/events", get(events))
}

/// The actor behind an authenticated API request.
pub fn actor_of(s: &super::state::Shared, caller: Option<Extension<Caller>>) -> Actor {
    let name = caller.map(|Extension(c)| c.0).unwrap_or_default();
    let scopes = s.tokens.scopes_of(&name);
    Actor::Token { name, scopes }
}

/// `GET /v1/audit` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1 to 500, default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (`au_<n>`).
    pub cursor: Option<String>,
}

/// One change made through the API or the console.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"at": "2026-11-22T09:00:00.000Z", "actor": "crm", "action": "callback.reschedule", "target": "cb_00000001c4k2p", "detail": "when `tomorrow 10am` → 2026-11-23T10:00:00.000Z"}))]
pub struct AuditView {
    #[schema(format = DateTime)]
    pub at: String,
    /// The token's name, or `agent:<id>`.
    pub actor: String,
    /// e.g. `callback.create`, `callback.cancel`, `callback.move`, `bulk.cancel`, `agent.state`.
    pub action: String,
    /// A callback id, an agent id, or what a bulk action covered.
    pub target: String,
    pub detail: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

/// The audit log: every change made through the API or the console, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "ops", params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditList),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks admin", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn audit(State(s): State<AppState>, caller: Option<Extension<Caller>>, q: Result<Query<AuditQuery>, QueryRejection>) -> Result<Json<AuditList>, ApiError> {
    let actor = actor_of(&s, caller);
    if !actor.has(Scope::Admin) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("token `{}` lacks the `admin` scope", actor.name())));
    }
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(ApiError::bad_request("invalid_limit", "limit must be 1 to 500").field("limit")),
        },
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.strip_prefix("au_").and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| ApiError::bad_request("invalid_cursor", "unknown cursor").field("cursor"))?),
    };
    let page = s.book.audit_page(limit, before).await?;
    Ok(Json(AuditList {
        items: page
            .items
            .into_iter()
            .map(|(_, e)| AuditView { at: rfc3339(e.at), actor: e.actor, action: e.action, target: e.target, detail: e.detail })
            .collect(),
        next_cursor: page.next_cursor.map(|c| format!("au_{c}")),
    }))
}

/// `GET /v1/events` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Comma-separated event types (`callback.created,attempt.ended`); absent = all.
    pub types: Option<String>,
    /// Only events about this queue's callbacks.
    pub queue: Option<String>,
}

/// Which events a subscriber receives.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kinds: Option<HashSet<Kind>>,
    pub queue: Option<String>,
    /// Only what this actor may see (agents: their own and their queues').
    pub viewer: Option<Actor>,
}

impl EventFilter {
    pub fn parse(types: Option<&str>, queue: Option<String>) -> Result<Self, ApiError> {
        let kinds = match types.filter(|t| !t.trim().is_empty()) {
            None => None,
            Some(t) => Some(
                t.split(',')
                    .map(|n| Kind::parse(n.trim()).ok_or_else(|| ApiError::bad_request("invalid_types", format!("`{}` is not an event type", n.trim())).field("types")))
                    .collect::<Result<HashSet<_>, _>>()?,
            ),
        };
        Ok(Self { kinds, queue, viewer: None })
    }

    pub fn admits(&self, e: &Event) -> bool {
        if self.kinds.as_ref().is_some_and(|k| !k.contains(&e.kind)) {
            return false;
        }
        if let Some(q) = &self.queue {
            if e.queue() != Some(q.as_str()) {
                return false;
            }
        }
        match (&self.viewer, e.callback()) {
            (Some(v), Some(cb)) => v.sees(cb),
            _ => true,
        }
    }
}

/// The JSON object the REST routes return for the event's object: the
/// callback, the attempt (with `callback_id`), the agent, or the trunk.
pub fn event_data(e: &Event) -> serde_json::Value {
    let v = match &e.payload {
        Payload::Callback(c) => serde_json::to_value(CallbackView::from(&**c)),
        Payload::AttemptStarted { callback, attempt } => Ok(serde_json::json!({
            "callback_id": callback.id.to_string(),
            "attempt": attempt,
            "callback": CallbackView::from(&**callback),
        })),
        Payload::AttemptEnded { callback, attempt } => serde_json::to_value(AttemptView::from(&**attempt)).map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.insert("callback_id".into(), callback.id.to_string().into());
            }
            v
        }),
        Payload::Agent(a) => serde_json::to_value(AgentView::from(&**a)),
        Payload::Trunk(t) => {
            let now = std::time::Instant::now();
            Ok(serde_json::json!({
                "name": t.name,
                "registered": t.registered,
                "expires_in": t.expires_at.map(|x| x.saturating_duration_since(now).as_secs()),
                "up": t.up,
                "last_error": t.last_error,
            }))
        }
        Payload::Text(t) => Ok(serde_json::json!({
            "at": crate::api::views::rfc3339(t.at),
            "trunk": t.trunk,
            "from": t.from,
            "to": t.to,
            "text": t.text,
        })),
    };
    v.unwrap_or_default()
}

fn to_sse(e: &Event) -> SseEvent {
    let data = e.rendered.get_or_init(|| {
        let mut data = event_data(e);
        if let Some(o) = data.as_object_mut() {
            // The precise type (`callback.cancelled`) besides the topic in `event:`.
            o.insert("type".into(), e.kind.name().into());
        }
        data.to_string().into()
    });
    SseEvent::default().event(e.kind.topic().as_str()).id(e.seq.to_string()).data(&**data)
}

/// Events read from the outbox per page while a stream catches up.
const PAGE: usize = 256;

struct Feed {
    outbox: Arc<dyn Outbox>,
    backlog: VecDeque<Arc<Event>>,
    rx: Receiver<Arc<Event>>,
    /// The last sequence handed on (or skipped by the filter).
    last: u64,
    /// Still reading history from the outbox before following the bus.
    catching_up: bool,
    filter: EventFilter,
    stopping: watch::Receiver<bool>,
}

/// An SSE stream of the events admitted by `filter`. With `last` (the
/// `Last-Event-ID`), it first replays every event after it from the durable
/// outbox (across restarts too), then follows the bus; a subscriber that
/// falls behind the bus catches up from the outbox again, so it misses
/// nothing. The stream ends when `stopping` turns true.
pub fn event_stream(bus: &Bus, outbox: Arc<dyn Outbox>, filter: EventFilter, last: Option<u64>, stopping: watch::Receiver<bool>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // Subscribed before the outbox is read: nothing falls between the two,
    // and what both hold is skipped by sequence.
    let rx = bus.subscribe();
    let feed = Feed { outbox, backlog: VecDeque::new(), rx, last: last.unwrap_or(0), catching_up: last.is_some(), filter, stopping };
    let s = stream::unfold(feed, |mut f| async move {
        loop {
            let ev = match f.backlog.pop_front() {
                Some(e) => e,
                None if f.catching_up => {
                    match f.outbox.after(f.last, PAGE).await {
                        Ok(page) => {
                            f.catching_up = page.len() == PAGE;
                            f.backlog.extend(page.into_iter().map(Arc::new));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the outbox for an event stream; it ends");
                            return None;
                        }
                    }
                    continue;
                }
                None => match tokio::select! {
                    r = f.rx.recv() => r,
                    _ = f.stopping.wait_for(|s| *s) => return None,
                } {
                    Ok(e) => e,
                    // Fell behind the bus: read what was missed from the outbox.
                    Err(RecvError::Lagged(_)) => {
                        f.catching_up = true;
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if ev.seq <= f.last {
                continue;
            }
            f.last = ev.seq;
            if f.filter.admits(&ev) {
                return Some((Ok(to_sse(&ev)), f));
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

pub fn last_event_id(h: &HeaderMap) -> Option<u64> {
    h.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// Server-sent events: `event:` is `callback`, `attempt`, `agent` or `trunk`;
/// `data:` is the object the REST routes return, with `type` (e.g.
/// `callback.cancelled`); `id:` is a sequence to resume from with
/// `Last-Event-ID`. A reader too slow for the stream gets `event: lagged`.
#[utoipa::path(get, path = "/v1/events", tag = "callbacks",
    params(EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id while the server still holds it")),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 400, description = "Unknown event type", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn events(State(s): State<AppState>, headers: HeaderMap, q: Result<Query<EventsQuery>, QueryRejection>) -> Response {
    let r = (|| {
        let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        EventFilter::parse(q.types.as_deref(), q.queue)
    })();
    match r {
        Ok(filter) => event_stream(&s.bus, s.outbox.clone(), filter, last_event_id(&headers), s.stopping.clone()).into_response(),
        Err(e) => e.into_response(),
    }
}
