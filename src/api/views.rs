//! The JSON shapes of the API and their conversions
//! from the model. Times are RFC 3339 UTC with milliseconds.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::agents::AgentInfo;
use crate::clock::Millis;
use crate::config::DialMode;
use crate::scheduler::model::{Attempt, Callback, Confidence, Stats, Timeline};

pub use crate::clock::rfc3339;
pub use crate::ops::request::{ChangeCallback, CreateCallback, LIVE_DEFAULT_DELAY_MS, MAX_WHEN, OWNER_ME};

/// Decodes a JSON body, naming the offending field in the 400.
pub fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body is larger than 64 KiB")
        } else {
            ApiError::bad_request("unreadable_body", r.body_text())
        }
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() { "invalid_json" } else { "invalid_field" };
        // An unknown field's name is in serde's message, not in the path.
        let msg = inner.to_string();
        let field = unknown_field_name(&msg).map(str::to_string).or_else(|| (path != "." && !path.is_empty()).then_some(path));
        let mut err = ApiError::bad_request(code, msg);
        err.detail.field = field;
        err
    })?;
    Ok(value)
}

fn unknown_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The callback object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "cb_00000001c4k2p", "status": "scheduled", "phone": "+15550123", "queue": "support", "owner": null, "mode": "customer_first", "scheduled_at": "2026-11-23T14:00:00.000Z", "due_at": "2026-11-23T14:00:00.000Z", "timezone": "America/New_York", "attempts": 0, "max_attempts": 3, "last_outcome": null, "origin": "api", "notes": "billing question", "interaction_id": null, "caller_id": null, "created_at": "2026-11-22T09:00:00.000Z", "updated_at": "2026-11-22T09:00:00.000Z", "end_reason": null, "when": "tomorrow morning", "when_resolution": "approximate", "skipped_by": null, "caller_name": "Acme Support", "reason": "billing question", "confidence": 0.9, "owners": [], "owner_mode": "strict", "timezone_source": "request", "channel": "voice"}))]
pub struct CallbackView {
    pub id: String,
    /// `scheduled`, `in_progress`, `completed`, `cancelled`, `exhausted`, `failed`, `skipped`.
    pub status: String,
    pub phone: String,
    pub queue: String,
    pub owner: Option<String>,
    /// `customer_first` or `agent_first`.
    pub mode: String,
    #[schema(format = DateTime)]
    pub scheduled_at: Option<String>,
    /// When it is next due, after calling-window clipping and retries.
    #[schema(format = DateTime)]
    pub due_at: String,
    pub timezone: String,
    pub attempts: u32,
    pub max_attempts: u32,
    /// Outcome of the last finished attempt.
    pub last_outcome: Option<String>,
    /// `api`, `inbound`, `agent` or `abandoned`.
    pub origin: String,
    pub notes: Option<String>,
    pub interaction_id: Option<String>,
    pub caller_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Why it ended when no attempt outcome ended it: `api` (cancelled
    /// through the API), `ownership_expired`, `window_closed`, `reached`
    /// (skipped); null otherwise.
    pub end_reason: Option<String>,
    /// The free text the time was asked with; null when `scheduled_at` was given.
    pub when: Option<String>,
    /// `exact`, `approximate` or `fallback` when `when` was given, else null.
    pub when_resolution: Option<String>,
    /// The inbound call (interaction id) that made it `skipped`.
    pub skipped_by: Option<String>,
    /// The display name of the From of the call to the customer.
    pub caller_name: Option<String>,
    /// Why the customer wants the call.
    pub reason: Option<String>,
    /// A voice bot's confidence that a callback was asked for, 0 to 1.
    pub confidence: Option<f64>,
    /// The agents who may take it (the first free one does); `[owner]`
    /// for a single owner, empty when not owned.
    pub owners: Vec<String>,
    /// `strict` or `preferred`.
    pub owner_mode: String,
    /// Where `timezone` came from: `request`, `number` or `queue`; null on
    /// callbacks booked before this was recorded.
    pub timezone_source: Option<String>,
    /// `voice` (a call) or `sms` (a text at the due time instead).
    pub channel: String,
}

fn mode_str(m: DialMode) -> &'static str {
    match m {
        DialMode::CustomerFirst => "customer_first",
        DialMode::AgentFirst => "agent_first",
    }
}

impl From<&Callback> for CallbackView {
    fn from(c: &Callback) -> Self {
        Self {
            id: c.id.to_string(),
            status: c.status.as_str().to_string(),
            phone: c.phone.clone(),
            queue: c.queue.clone(),
            owner: c.owner.clone(),
            mode: mode_str(c.mode).to_string(),
            scheduled_at: c.scheduled_at.map(rfc3339),
            due_at: rfc3339(c.due_at),
            timezone: c.timezone.clone(),
            attempts: c.attempts,
            max_attempts: c.max_attempts,
            last_outcome: c.last_outcome.map(|o| o.as_str().to_string()),
            origin: c.origin.as_str().to_string(),
            notes: c.notes.clone(),
            interaction_id: c.interaction_id.clone(),
            caller_id: c.caller_id.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            end_reason: c.end_reason.map(|r| r.as_str().to_string()),
            when: c.when.clone(),
            when_resolution: c.when_resolution.map(|r| r.as_str().to_string()),
            skipped_by: c.skipped_by.clone(),
            caller_name: c.caller_name.clone(),
            reason: c.reason.clone(),
            confidence: c.confidence.map(Confidence::as_f64),
            owners: c.all_owners().into_iter().map(str::to_string).collect(),
            owner_mode: c.owner_mode.as_str().to_string(),
            timezone_source: c.timezone_source.map(|t| t.as_str().to_string()),
            channel: c.channel.as_str().to_string(),
        }
    }
}

/// One attempt of a callback.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"attempt": 1, "started_at": "2026-11-23T15:00:00.120Z", "ended_at": "2026-11-23T15:00:31.000Z", "outcome": "no_answer", "sip_status": 408, "amd": null, "agent": "alice", "duration_s": 30.88, "timeline": {"dialed_at": "2026-11-23T15:00:00.130Z", "ringing_at": "2026-11-23T15:00:00.900Z", "answered_at": null, "amd_at": null, "agent_ringing_at": null, "agent_answered_at": null, "bridged_at": null}}))]
pub struct AttemptView {
    /// 1-based.
    pub attempt: u32,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub ended_at: String,
    pub outcome: String,
    pub sip_status: Option<u16>,
    /// `human`, `machine`, `unknown` or null.
    pub amd: Option<String>,
    pub agent: Option<String>,
    pub duration_s: f64,
    /// When each step happened; every key is present, null when the step
    /// did not happen or was not reported.
    pub timeline: TimelineView,
}

/// An attempt's steps, RFC 3339 or null.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TimelineView {
    /// INVITE sent (to the customer; to the agent first in `agent_first`).
    #[schema(format = DateTime)]
    pub dialed_at: Option<String>,
    /// The customer leg rang (180/183).
    #[schema(format = DateTime)]
    pub ringing_at: Option<String>,
    /// The customer answered.
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
    /// The answering-machine detector decided.
    #[schema(format = DateTime)]
    pub amd_at: Option<String>,
    /// The agent's softphone rang.
    #[schema(format = DateTime)]
    pub agent_ringing_at: Option<String>,
    /// The agent answered.
    #[schema(format = DateTime)]
    pub agent_answered_at: Option<String>,
    /// The legs were bridged.
    #[schema(format = DateTime)]
    pub bridged_at: Option<String>,
}

impl From<&Timeline> for TimelineView {
    fn from(t: &Timeline) -> Self {
        let f = |v: Option<Millis>| v.map(rfc3339);
        Self {
            dialed_at: f(t.dialed_at),
            ringing_at: f(t.ringing_at),
            answered_at: f(t.answered_at),
            amd_at: f(t.amd_at),
            agent_ringing_at: f(t.agent_ringing_at),
            agent_answered_at: f(t.agent_answered_at),
            bridged_at: f(t.bridged_at),
        }
    }
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: rfc3339(a.started_at),
            ended_at: rfc3339(a.ended_at),
            outcome: a.outcome.as_str().to_string(),
            sip_status: a.sip_status,
            amd: a.amd.map(|m| m.as_str().to_string()),
            agent: a.agent.clone(),
            duration_s: a.duration_s(),
            timeline: TimelineView::from(&a.timeline),
        }
    }
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"requested": 120, "pending": 14, "completed": 88, "cancelled": 6, "exhausted": 8, "failed": 2, "skipped": 2, "avg_delay_s": 5321.5,
    "by_origin": {
        "api": {"requested": 100, "pending": 10, "completed": 75, "cancelled": 5, "exhausted": 7, "failed": 2, "skipped": 1, "avg_delay_s": 6000.0},
        "inbound": {"requested": 12, "pending": 2, "completed": 8, "cancelled": 1, "exhausted": 1, "failed": 0, "skipped": 0, "avg_delay_s": 300.0},
        "agent": {"requested": 6, "pending": 1, "completed": 4, "cancelled": 0, "exhausted": 0, "failed": 0, "skipped": 1, "avg_delay_s": 1800.0},
        "abandoned": {"requested": 2, "pending": 1, "completed": 1, "cancelled": 0, "exhausted": 0, "failed": 0, "skipped": 0, "avg_delay_s": 0.0}}}))]
pub struct StatsView {
    pub requested: u64,
    /// `scheduled` + `in_progress`.
    pub pending: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub exhausted: u64,
    pub failed: u64,
    /// Ended because the customer reached an agent by calling in.
    pub skipped: u64,
    /// Mean of first due time − creation, seconds.
    pub avg_delay_s: f64,
    /// The same counters for each origin (`api`, `agent`, `inbound`,
    /// `abandoned`) of the queue asked for, or of all queues.
    #[schema(value_type = Object)]
    pub by_origin: std::collections::BTreeMap<String, OriginStatsView>,
}

/// One origin's counters in `by_origin`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OriginStatsView {
    pub requested: u64,
    pub pending: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub exhausted: u64,
    pub failed: u64,
    pub skipped: u64,
    pub avg_delay_s: f64,
}

impl From<Stats> for OriginStatsView {
    fn from(s: Stats) -> Self {
        Self {
            requested: s.requested,
            pending: s.pending,
            completed: s.completed,
            cancelled: s.cancelled,
            exhausted: s.exhausted,
            failed: s.failed,
            skipped: s.skipped,
            avg_delay_s: s.avg_delay_s,
        }
    }
}

impl From<Stats> for StatsView {
    fn from(s: Stats) -> Self {
        Self {
            requested: s.requested,
            pending: s.pending,
            completed: s.completed,
            cancelled: s.cancelled,
            exhausted: s.exhausted,
            failed: s.failed,
            skipped: s.skipped,
            avg_delay_s: s.avg_delay_s,
            by_origin: Default::default(),
        }
    }
}

/// A softphone registration of an agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistrationView {
    pub contact: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// An agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "alice", "state": "available", "queues": ["support"], "registrations": [{"contact": "sip:alice@127.0.0.1:5070", "expires_at": "2026-11-22T10:00:00.000Z"}], "reserved_for": null}))]
pub struct AgentView {
    pub id: String,
    /// `offline`, `available`, `away`, `reserved`.
    pub state: String,
    pub queues: Vec<String>,
    pub registrations: Vec<RegistrationView>,
    /// The callback id the agent is held for.
    pub reserved_for: Option<String>,
}

impl From<&AgentInfo> for AgentView {
    fn from(a: &AgentInfo) -> Self {
        Self {
            id: a.id.clone(),
            state: a.state.as_str().to_string(),
            queues: a.queues.clone(),
            registrations: a
                .registrations
                .iter()
                .map(|r| RegistrationView { contact: r.contact.clone(), expires_at: rfc3339(r.expires_at) })
                .collect(),
            reserved_for: a.reserved_for.clone(),
        }
    }
}

/// `PUT /v1/agents/{id}/state`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"state": "away"}))]
pub struct SetAgentState {
    pub state: SettableState,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettableState {
    Available,
    Away,
}

/// A carrier trunk.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "carrier1", "registered": true, "expires_in": 287, "up": true, "last_error": null}))]
pub struct TrunkInfo {
    pub name: String,
    pub registered: bool,
    /// Seconds until the registration expires; null when not registered.
    pub expires_in: Option<u64>,
    /// OPTIONS keepalive verdict; null while unknown.
    pub up: Option<bool>,
    pub last_error: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The texts sent for a callback as `GET /v1/callbacks/{id}` shows them.
pub fn texts_json(texts: &[crate::sms::TextRecord]) -> serde_json::Value {
    texts
        .iter()
        .map(|t| {
            serde_json::json!({
                "at": rfc3339(t.at),
                "purpose": t.purpose,
                "to": t.to,
                "text": t.text,
                "parts": t.parts,
                "status": t.status,
                "sip_status": t.sip_status,
            })
        })
        .collect()
}
