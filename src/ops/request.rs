//! The requests that create and change callbacks, as the REST API and the
//! console receive them, and their checks before the book sees them.

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::error::OpsError;
use crate::calls::LiveCall;
use crate::clock::{parse_rfc3339, Millis};
use crate::config::DialMode;
use crate::scheduler::model::{CallbackChanges, Channel, Confidence, NewCallback, Origin, OwnerMode, WhenResolution};

/// Parses an RFC 3339 time (any offset) given in `field`.
pub fn parse_time(field: &'static str, s: &str) -> Result<Millis, OpsError> {
    parse_rfc3339(s).map_err(|e| OpsError::InvalidTime { field, value: s.to_string(), reason: e.to_string() })
}

/// Present-and-null vs absent for PATCH: `Some(None)` clears.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /v1/callbacks`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone": "+15550123", "queue": "support", "when": "tomorrow morning", "timezone": "America/New_York", "notes": "billing question"}))]
pub struct CreateCallback {
    /// E.164, e.g. `+15550123`. Required unless `interaction_id` names a
    /// live call (then it defaults to the call's customer).
    #[schema(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub phone: Option<String>,
    /// Required unless `interaction_id` names a live call (then the call's queue).
    #[schema(min_length = 1)]
    pub queue: Option<String>,
    /// RFC 3339; absent = as soon as the calling window allows (30 min from
    /// now for a live call). Exclusive with `when`.
    #[schema(format = DateTime)]
    pub scheduled_at: Option<String>,
    /// Free text ("in half an hour", "tomorrow morning", "kal subah", "next
    /// Tuesday at 3"), resolved in the customer's timezone and clipped to the
    /// window; text naming no time falls back to the queue's `retry_delay`.
    /// Exclusive with `scheduled_at`.
    #[schema(min_length = 1, max_length = 200, example = "tomorrow morning")]
    pub when: Option<String>,
    /// IANA timezone of the customer; default the queue's.
    pub timezone: Option<String>,
    /// Agent id that owns the callback; `"me"` = the agent on the live call
    /// named by `interaction_id`.
    pub owner: Option<String>,
    /// `customer_first` or `agent_first`; default the queue's.
    #[schema(value_type = Option<String>, example = "customer_first")]
    pub mode: Option<DialMode>,
    pub caller_id: Option<String>,
    pub notes: Option<String>,
    /// The CRM's or redial's id of the conversation. When it names a call
    /// redial is handling now, the call supplies defaults and at most one
    /// active callback may exist for it (409 `duplicate`).
    pub interaction_id: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// The display name of the From of the call to the customer (with
    /// `caller_id` as its number), e.g. "Acme Support".
    #[schema(max_length = 64)]
    pub caller_name: Option<String>,
    /// Why the customer wants the call ("busy", "driving", "billing"); shown
    /// to the agent and sent in `X-Redial-Reason`.
    #[schema(max_length = 200)]
    pub reason: Option<String>,
    /// How sure a voice bot was that a callback was asked for, 0 to 1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<f64>,
    /// Several agents who may take it (the first free one does); instead of `owner`.
    pub owners: Option<Vec<String>>,
    /// `strict` (default: wait for an owner until the ownership period
    /// ends) or `preferred` (an owner if one is free at the due time, else
    /// the queue at once).
    #[schema(value_type = Option<String>, example = "preferred")]
    pub owner_mode: Option<OwnerMode>,
    /// `voice` (default: a call) or `sms`: at its due time, inside the
    /// calling window, the queue's `sms_callback` text is sent through its
    /// trunk instead of a call; it ends `completed` when the trunk accepts
    /// it. Needs a queue with `sms_callback`; takes no owner.
    #[schema(value_type = Option<String>, example = "sms")]
    pub channel: Option<Channel>,
}

/// `owner` value meaning "the agent on the live call".
pub const OWNER_ME: &str = "me";
/// Due time of a live-call booking with neither `scheduled_at` nor `when`.
pub const LIVE_DEFAULT_DELAY_MS: Millis = 30 * 60_000;
/// Longest `when` text accepted.
pub const MAX_WHEN: usize = 200;

impl CreateCallback {
    /// The scheduler's request; `live` is the call `interaction_id` names, if any.
    pub fn into_request(self, live: Option<LiveCall>) -> Result<NewCallback, OpsError> {
        if self.when.is_some() && self.scheduled_at.is_some() {
            return Err(OpsError::ConflictingWhen);
        }
        if let Some(w) = &self.when {
            if w.trim().is_empty() {
                return Err(OpsError::EmptyWhen);
            }
            if w.len() > MAX_WHEN {
                return Err(OpsError::WhenTooLong { max: MAX_WHEN });
            }
        }
        let confidence = match self.confidence {
            None => None,
            Some(v) => Some(Confidence::from_f64(v).ok_or(OpsError::InvalidConfidence { value: v })?),
        };
        let missing = |f: &'static str| OpsError::MissingField { field: f };
        let scheduled_at = self.scheduled_at.as_deref().map(|s| parse_time("scheduled_at", s)).transpose()?;
        let (phone, queue, owner, origin, live_defaults) = match live {
            None => (self.phone.ok_or_else(|| missing("phone"))?, self.queue.ok_or_else(|| missing("queue"))?, self.owner, Origin::Api, false),
            Some(call) => {
                let owner = match self.owner {
                    Some(o) if o == OWNER_ME => Some(call.agent.clone().ok_or(OpsError::NoAgentOnCall)?),
                    o => o,
                };
                // An agent on the call books it; otherwise the customer did (IVR).
                let origin = if call.agent.is_some() { Origin::Agent } else { Origin::Inbound };
                (self.phone.unwrap_or(call.phone), self.queue.unwrap_or(call.queue), owner, origin, true)
            }
        };
        Ok(NewCallback {
            phone,
            queue,
            scheduled_at,
            timezone: self.timezone,
            owner,
            mode: self.mode,
            caller_id: self.caller_id,
            notes: self.notes,
            interaction_id: self.interaction_id,
            max_attempts: self.max_attempts,
            origin: Some(origin),
            when: self.when,
            default_delay_ms: live_defaults.then_some(LIVE_DEFAULT_DELAY_MS),
            unique_interaction: live_defaults,
            joined_at: None,
            caller_name: self.caller_name,
            reason: self.reason,
            confidence,
            owners: self.owners.unwrap_or_default(),
            owner_mode: self.owner_mode,
            follow_up_of: None,
            channel: self.channel,
        })
    }
}

/// `PATCH /v1/callbacks/{id}`: each present field replaces; `null` clears
/// `scheduled_at` (= as soon as the window allows), `owner`, `notes`,
/// `caller_name`, `reason` and `confidence`. The rules of `POST` apply.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scheduled_at": "2026-11-24T10:00:00Z", "notes": "prefers mornings"}))]
pub struct ChangeCallback {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Option<String>>,
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    /// Moves the callback to another queue (its window, retries and agents
    /// from then on); the owner, if any, must serve it.
    #[schema(min_length = 1)]
    pub queue: Option<String>,
    /// Free text for the new time, resolved like `POST`'s in the callback's
    /// (or the new) timezone and queue, and kept as the callback's `when`.
    /// Exclusive with `scheduled_at`.
    #[schema(min_length = 1, max_length = 200, example = "tomorrow morning")]
    pub when: Option<String>,
    /// The display name of the From of the call to the customer.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 64)]
    pub caller_name: Option<Option<String>>,
    /// Why the customer wants the call.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub reason: Option<Option<String>>,
    /// How sure a voice bot was that a callback was asked for, 0 to 1.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>, minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<Option<f64>>,
    /// Replaces the agents who may take it (the first free one does; `[]` =
    /// nobody); instead of `owner`. The ownership period starts again.
    pub owners: Option<Vec<String>>,
    /// `strict` or `preferred`; needs an owner.
    #[schema(value_type = Option<String>, example = "preferred")]
    pub owner_mode: Option<OwnerMode>,
}

impl ChangeCallback {
    /// The book's change; `when` is the time this request's `when` resolved
    /// to, with how precisely it named one (the caller resolves it: that
    /// needs the callback's queue and timezone).
    pub fn into_changes(self, when: Option<(Millis, WhenResolution)>) -> Result<CallbackChanges, OpsError> {
        let scheduled_at = match (self.scheduled_at, when) {
            (Some(_), Some(_)) => return Err(OpsError::ConflictingWhen),
            (None, Some((at, _))) => Some(Some(at)),
            (None, None) => None,
            (Some(None), None) => Some(None),
            (Some(Some(s)), None) => Some(Some(parse_time("scheduled_at", &s)?)),
        };
        let confidence = match self.confidence {
            None => None,
            Some(None) => Some(None),
            Some(Some(v)) => Some(Some(Confidence::from_f64(v).ok_or(OpsError::InvalidConfidence { value: v })?)),
        };
        let when = match (self.when, when) {
            (Some(words), Some((_, resolution))) => Some((words.trim().to_string(), resolution)),
            _ => None,
        };
        Ok(CallbackChanges {
            scheduled_at,
            timezone: self.timezone,
            owner: self.owner,
            notes: self.notes,
            queue: self.queue,
            caller_name: self.caller_name,
            reason: self.reason,
            confidence,
            owners: self.owners,
            owner_mode: self.owner_mode,
            when,
        })
    }
}

