//! `POST /v1/admin/test-clock`: moves the server's clock forward, so an
//! end-to-end test can let an ownership period or a night pass in a moment.
//!
//! The route exists only when `redial serve` runs on an [`OffsetClock`]
//! (`REDIAL_TEST_CLOCK=advance`, which also needs a loopback `http.listen`);
//! it then needs the `admin` scope and a loopback peer. A production server
//! has no such route: the request gets the usual 404.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::clock::{rfc3339, Clock, Millis, OffsetClock};

/// The longest single jump: more than any rule's period (30 days), short of
/// anything that could overflow a time.
const MAX_ADVANCE_S: u64 = 400 * 86_400;

/// `POST /v1/admin/test-clock` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    /// Seconds to move the clock forward (at least 1).
    pub advance_s: u64,
}

/// Where the clock is after the jump.
#[derive(Debug, Serialize)]
pub struct ClockView {
    /// The server's time now (RFC 3339 UTC).
    pub now: String,
    /// How far the server's clock runs ahead of the real one, in ms.
    pub offset_ms: Millis,
}

/// The route, over the server's test clock.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/admin/test-clock", post(advance))
}

async fn advance(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClockView>, ApiError> {
    let clock: &Arc<OffsetClock> = s.test_clock.as_ref().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"))?;
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the test clock is moved from a loopback address only"));
    }
    let body = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let req: Advance = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    if req.advance_s == 0 || req.advance_s > MAX_ADVANCE_S {
        let msg = format!("advance_s must be 1–{MAX_ADVANCE_S} (the clock only moves forward)");
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_advance", msg).field("advance_s"));
    }
    let offset = clock.advance(req.advance_s as Millis * 1000).expect("a positive jump");
    let now = clock.now_ms();
    tracing::warn!(advance_s = req.advance_s, offset_ms = offset, now = %rfc3339(now), "test clock moved forward");
    // Whatever became due or expired is looked at now, not at the
    // scheduler's next idle wake-up.
    s.agents.wake();
    Ok(Json(ClockView { now: rfc3339(now), offset_ms: offset }))
}
