//! `POST /v1/detections`: whether a conversation's transcript asks for a
//! callback ([`crate::detect`]), when (the time resolver over the customer's
//! words), and — only when the queue's `callback_detection` and the request's
//! `create` are both on — the callback booked through the same operation as
//! `POST /v1/callbacks`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::Json;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::views::{json_body, rfc3339, CallbackView, CreateCallback};
use super::state::{AppState, Caller};
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::model::WhenResolution;
use crate::scheduler::when;

/// Longest transcript accepted, in characters.
pub const MAX_TRANSCRIPT: usize = 20_000;

/// `POST /v1/detections`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"transcript": "Agent: Is this a good time?\nCustomer: I'm driving, call me tomorrow at 5 pm", "queue": "support", "phone": "+15550123", "timezone": "Asia/Kolkata", "create": false}))]
pub struct DetectRequest {
    /// The conversation, one utterance a line; `Agent:`/`Customer:` labels
    /// say who spoke (unlabelled lines are the customer's).
    #[schema(required = true, max_length = 20000)]
    pub transcript: Option<String>,
    /// The queue whose window and timezone resolve the time words, and whose
    /// `callback_detection` allows booking.
    #[schema(required = true, min_length = 1)]
    pub queue: Option<String>,
    /// The customer, E.164.
    #[schema(required = true, pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub phone: Option<String>,
    /// IANA timezone of the customer; default the queue's.
    pub timezone: Option<String>,
    /// Book the callback when one was requested and the queue has
    /// `callback_detection = true`.
    #[serde(default)]
    pub create: bool,
}

/// What the transcript says, and the callback booked from it, if any.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DetectionView {
    pub requested: bool,
    /// The customer's (or the agent's promised) time words, verbatim.
    pub when: Option<String>,
    /// A short reason: `busy`, `driving`, `not free right now`, …
    pub reason: Option<String>,
    /// 0.9 for a clear ask down to 0.3 for an implied one; 0 when none.
    pub confidence: f64,
    /// `when` resolved now in the customer's timezone and the queue's window;
    /// null when nothing was requested or the words name no time.
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    /// The callback booked (both gates on), else null.
    pub callback: Option<CallbackView>,
}

/// Detect a callback request in a transcript, and optionally book it.
#[utoipa::path(post, path = "/v1/detections", tag = "callbacks",
    request_body = DetectRequest,
    responses(
        (status = 200, description = "The detection; `callback` is set when one was booked", body = DetectionView),
        (status = 400, description = "Malformed JSON, missing or wrong-typed field, transcript over 20,000 characters", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks callbacks:write", body = ErrorBody),
        (status = 409, description = "Booking: an active callback exists for this phone in this queue (`existing_id`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Unknown queue, phone not E.164, unknown timezone, or a booking rule broken", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn detect(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DetectionView>, ApiError> {
    let req: DetectRequest = json_body(body)?;
    // Required fields are checked here rather than by serde, so the error
    // names the missing one.
    let missing = |f: &'static str| ApiError::bad_request("invalid_field", format!("missing field `{f}`")).field(f);
    let transcript = req.transcript.ok_or_else(|| missing("transcript"))?;
    let queue_name = req.queue.ok_or_else(|| missing("queue"))?;
    let phone = req.phone.ok_or_else(|| missing("phone"))?;
    if transcript.chars().count() > MAX_TRANSCRIPT {
        return Err(ApiError::bad_request("too_long", format!("transcript is longer than {MAX_TRANSCRIPT} characters")).field("transcript"));
    }
    if !crate::e164::is_e164(&phone) {
        return Err(RuleError::InvalidPhone { phone: phone.clone() }.into());
    }
    let cfg = s.live_cfg.get();
    let queue = cfg.queue(&queue_name).ok_or_else(|| ApiError::from(RuleError::UnknownQueue { queue: queue_name.clone() }))?;
    let tz: Tz = match &req.timezone {
        Some(name) => name.parse().map_err(|_| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_timezone", format!("`{name}` is not an IANA timezone")).field("timezone")
        })?,
        None => queue.timezone,
    };

    let d = crate::detect::detect(&transcript);
    // The same resolver `POST /v1/callbacks` applies to its `when`; words it
    // can only answer with the queue's retry delay name no time.
    let due_at = match (&d.when, d.requested) {
        (Some(words), true) => {
            let r = when::resolve(words, s.ops.clock.now_ms(), tz, &queue.calling_hours(), queue.retry_delay);
            (r.resolution != WhenResolution::Fallback).then(|| rfc3339(r.due_ms))
        }
        _ => None,
    };

    let callback = if d.requested && req.create && queue.callback_detection {
        let actor = super::feed::actor_of(&s, caller);
        let create = CreateCallback {
            phone: Some(phone),
            queue: Some(queue_name),
            scheduled_at: None,
            when: d.when.clone(),
            timezone: req.timezone.clone(),
            owner: None,
            mode: None,
            caller_id: None,
            notes: None,
            interaction_id: None,
            max_attempts: None,
            reason: d.reason.map(str::to_string),
            confidence: Some(d.confidence),
            ..CreateCallback::default()
        };
        let cb = s.ops.create(&actor, create).await?;
        Some(CallbackView::from(&cb))
    } else {
        None
    };
    tracing::debug!(requested = d.requested, confidence = d.confidence, booked = callback.is_some(), "detection");
    Ok(Json(DetectionView {
        requested: d.requested,
        when: d.when,
        reason: d.reason.map(str::to_string),
        confidence: d.confidence,
        due_at,
        callback,
    }))
}
