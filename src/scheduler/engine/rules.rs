//! The callback rules (E.164, 60 s to 30 days ahead, one active callback
//! per phone and queue, calling windows, retries) as pure functions of
//! (now, request, configuration): validation, window clipping, and the
//! retry policy applied when an attempt ends.

use chrono_tz::Tz;

use crate::clock::Millis;
use crate::config::{Config, OnMachine, Queue, WindowClose};
use crate::e164::is_e164;
use crate::scheduler::model::{Callback, CallbackChanges, CallbackId, Channel, NewCallback, Outcome, OwnerMode, Status, TimezoneSource};

use crate::scheduler::window as windows;

/// A schedule must be at least this far ahead.
pub const MIN_LEAD_MS: Millis = 60_000;
/// And at most this far ahead.
pub const MAX_AHEAD_MS: Millis = 30 * 86_400_000;
/// Longest `notes` accepted (bytes); they travel in a SIP header.
pub const MAX_NOTES: usize = 1_000;
/// Longest `interaction_id` accepted (bytes).
pub const MAX_INTERACTION_ID: usize = 200;
/// Longest `caller_name` accepted (characters): the From display name.
pub const MAX_CALLER_NAME: usize = 64;
/// Longest `reason` accepted (characters).
pub const MAX_REASON: usize = 200;

/// Why a schedule or reschedule was refused. The API maps each to a status
/// and an error code (422 for rules, 409 for `Duplicate`/`WrongState`, 404
/// for `NotFound`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("`{phone}` is not an E.164 number like +15550100")]
    InvalidPhone { phone: String },
    #[error("`{caller_id}` is not an E.164 number like +15550100")]
    InvalidCallerId { caller_id: String },
    #[error("scheduled time is less than 60 s ahead (earliest {earliest_ms})")]
    TooSoon { earliest_ms: Millis },
    #[error("scheduled time is more than 30 days ahead (latest {latest_ms})")]
    TooLate { latest_ms: Millis },
    #[error("no queue named `{queue}`")]
    UnknownQueue { queue: String },
    #[error("no agent named `{owner}`")]
    UnknownOwner { owner: String },
    #[error("agent `{owner}` is not in queue `{queue}`")]
    OwnerNotInQueue { owner: String, queue: String },
    #[error("`{timezone}` is not an IANA timezone like America/New_York")]
    UnknownTimezone { timezone: String },
    #[error("max_attempts {max_attempts} is out of range (1 to 100)")]
    InvalidMaxAttempts { max_attempts: u32 },
    #[error("{field} is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} is longer than {max} characters")]
    TooManyChars { field: &'static str, max: usize },
    #[error("{field} must not contain control characters")]
    ControlChars { field: &'static str },
    #[error("`owners` lists `{owner}`, who is not an agent")]
    UnknownListedOwner { owner: String },
    #[error("`owners` lists `{owner}`, who is not in queue `{queue}`")]
    ListedOwnerNotInQueue { owner: String, queue: String },
    #[error("give `owner` or `owners`, not both")]
    OwnerAndOwners,
    #[error("`owner_mode` needs an owner (`owner` or `owners`)")]
    OwnerModeWithoutOwner,
    #[error("queue `{queue}` is single-day (window_close = \"cancel\"): a callback must be due before today's close")]
    SingleDay { queue: String },
    #[error("an owned callback may be booked at most {horizon_s} s ahead (latest {latest_ms})")]
    BeyondOwnedHorizon { horizon_s: u64, latest_ms: Millis },
    #[error("queue `{queue}` takes no `\"channel\": \"sms\"` callbacks: it has no `sms_callback` text (and `profile` to send it through)")]
    SmsNotOffered { queue: String },
    #[error("a `\"channel\": \"sms\"` callback is a text, not a call: it takes no `owner` or `owners`")]
    SmsOwned,
    #[error("an active callback already exists for this phone in this queue: {existing_id}")]
    Duplicate { existing_id: CallbackId },
}

impl RuleError {
    /// The API's stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::InvalidPhone { .. } => "invalid_phone",
            RuleError::InvalidCallerId { .. } => "invalid_caller_id",
            RuleError::TooSoon { .. } => "too_soon",
            RuleError::TooLate { .. } => "too_late",
            RuleError::UnknownQueue { .. } => "unknown_queue",
            RuleError::UnknownOwner { .. } => "unknown_owner",
            RuleError::OwnerNotInQueue { .. } => "owner_not_in_queue",
            RuleError::UnknownTimezone { .. } => "unknown_timezone",
            RuleError::InvalidMaxAttempts { .. } => "invalid_max_attempts",
            RuleError::TooLong { .. } | RuleError::TooManyChars { .. } => "too_long",
            RuleError::ControlChars { .. } => "invalid_field",
            RuleError::Duplicate { .. } => "duplicate",
            RuleError::UnknownListedOwner { .. } => "unknown_owner",
            RuleError::ListedOwnerNotInQueue { .. } => "owner_not_in_queue",
            RuleError::OwnerAndOwners => "conflicting_fields",
            RuleError::OwnerModeWithoutOwner => "owner_mode_without_owner",
            RuleError::BeyondOwnedHorizon { .. } => "beyond_owned_horizon",
            RuleError::SingleDay { .. } => "single_day_queue",
            RuleError::SmsNotOffered { .. } => "sms_not_offered",
            RuleError::SmsOwned => "conflicting_fields",
        }
    }

    /// The HTTP status: 409 for a duplicate, else 422 (a rule broken).
    pub fn http_status(&self) -> u16 {
        match self {
            RuleError::Duplicate { .. } => 409,
            _ => 422,
        }
    }

    /// The request field the error is about, for the API's `field`.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            RuleError::InvalidPhone { .. } | RuleError::Duplicate { .. } => "phone",
            RuleError::InvalidCallerId { .. } => "caller_id",
            RuleError::TooSoon { .. } | RuleError::TooLate { .. } => "scheduled_at",
            RuleError::UnknownQueue { .. } => "queue",
            RuleError::UnknownOwner { .. } | RuleError::OwnerNotInQueue { .. } => "owner",
            RuleError::UnknownTimezone { .. } => "timezone",
            RuleError::InvalidMaxAttempts { .. } => "max_attempts",
            RuleError::UnknownListedOwner { .. } | RuleError::ListedOwnerNotInQueue { .. } | RuleError::OwnerAndOwners => "owners",
            RuleError::OwnerModeWithoutOwner => "owner_mode",
            RuleError::SmsNotOffered { .. } | RuleError::SmsOwned => "channel",
            RuleError::BeyondOwnedHorizon { .. } | RuleError::SingleDay { .. } => "scheduled_at",
            RuleError::TooLong { field, .. } | RuleError::TooManyChars { field, .. } | RuleError::ControlChars { field } => field,
        })
    }
}

/// The customer's timezone: the callback's own, else the queue's.
pub fn parse_tz(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// Checks the scheduled time against now: ≥ now + 60 s and ≤ now + 30 days
/// (both edges included).
pub fn check_time(now: Millis, at: Millis) -> Result<(), RuleError> {
    if at < now + MIN_LEAD_MS {
        return Err(RuleError::TooSoon { earliest_ms: now + MIN_LEAD_MS });
    }
    if at > now + MAX_AHEAD_MS {
        return Err(RuleError::TooLate { latest_ms: now + MAX_AHEAD_MS });
    }
    Ok(())
}

/// The due time of a request: the asked time (or now) moved to the next
/// window opening in the customer's timezone.
pub fn due_for(queue: &Queue, tz: Tz, now: Millis, scheduled_at: Option<Millis>) -> Millis {
    windows::next_open(&queue.calling_hours(), tz, scheduled_at.unwrap_or(now))
}

fn check_owner(cfg: &Config, queue: &Queue, owner: &str) -> Result<(), RuleError> {
    let agent = cfg.agent(owner).ok_or_else(|| RuleError::UnknownOwner { owner: owner.to_string() })?;
    if !agent.queues.contains(&queue.name) {
        return Err(RuleError::OwnerNotInQueue { owner: owner.to_string(), queue: queue.name.clone() });
    }
    Ok(())
}

/// A request that passed every rule but uniqueness (which needs the store).
#[derive(Debug, Clone)]
pub struct Validated {
    pub tz: Tz,
    pub timezone: String,
    pub timezone_source: TimezoneSource,
    pub due_at: Millis,
    pub owner_until: Option<Millis>,
    pub max_attempts: u32,
}

/// Validates a new callback against the rules and computes its due time.
pub fn validate_new(now: Millis, req: &NewCallback, cfg: &Config) -> Result<Validated, RuleError> {
    if !is_e164(&req.phone) {
        return Err(RuleError::InvalidPhone { phone: req.phone.clone() });
    }
    let queue = cfg.queue(&req.queue).ok_or_else(|| RuleError::UnknownQueue { queue: req.queue.clone() })?;
    if req.channel == Some(Channel::Sms) {
        check_sms(queue)?;
        if req.owner.is_some() || !req.owners.is_empty() {
            return Err(RuleError::SmsOwned);
        }
    }
    if let Some(cid) = &req.caller_id {
        if !is_e164(cid) {
            return Err(RuleError::InvalidCallerId { caller_id: cid.clone() });
        }
    }
    let (tz, timezone, timezone_source) = match &req.timezone {
        Some(name) => (
            parse_tz(name).ok_or_else(|| RuleError::UnknownTimezone { timezone: name.clone() })?,
            name.clone(),
            TimezoneSource::Request,
        ),
        None => (queue.timezone, queue.timezone.name().to_string(), TimezoneSource::Queue),
    };
    if let Some(at) = req.scheduled_at {
        check_time(now, at)?;
    }
    if let Some(owner) = &req.owner {
        check_owner(cfg, queue, owner)?;
    }
    if !req.owners.is_empty() && req.owner.is_some() {
        return Err(RuleError::OwnerAndOwners);
    }
    for o in &req.owners {
        check_owner(cfg, queue, o).map_err(|e| match e {
            RuleError::OwnerNotInQueue { owner, queue } => RuleError::ListedOwnerNotInQueue { owner, queue },
            _ => RuleError::UnknownListedOwner { owner: o.clone() },
        })?;
    }
    let owned = req.owner.is_some() || !req.owners.is_empty();
    if req.owner_mode.is_some() && !owned {
        return Err(RuleError::OwnerModeWithoutOwner);
    }

    let max_attempts = req.max_attempts.unwrap_or(queue.max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(RuleError::InvalidMaxAttempts { max_attempts });
    }
    check_lengths(req.notes.as_deref(), req.interaction_id.as_deref())?;
    check_text("caller_name", req.caller_name.as_deref(), MAX_CALLER_NAME)?;
    check_text("reason", req.reason.as_deref(), MAX_REASON)?;
    let due_at = match (req.scheduled_at, req.joined_at) {
        // An inbound caller keeps their place: due from when they joined.
        (None, Some(joined)) if windows::is_open(&queue.calling_hours(), tz, now) => joined.min(now),
        _ => due_for(queue, tz, now, req.scheduled_at),
    };
    if owned {
        check_owned_horizon(queue, now, due_at)?;
    }
    if !same_window_day(queue, tz, now, due_at) {
        return Err(RuleError::SingleDay { queue: queue.name.clone() });
    }
    let owner_until = owned.then(|| due_at + queue.ownership_period.as_millis() as Millis);
    Ok(Validated { tz, timezone, timezone_source, due_at, owner_until, max_attempts })
}

/// Whether `queue` can deliver a `"channel": "sms"` callback: a text to
/// send (`sms_callback`) and a trunk to send it through. (Config loading
/// already refuses the text without the trunk.)
pub fn check_sms(queue: &Queue) -> Result<(), RuleError> {
    if queue.sms_callback.is_none() || queue.profile.is_none() {
        return Err(RuleError::SmsNotOffered { queue: queue.name.clone() });
    }
    Ok(())
}

/// With the queue's `infer_timezone`, a request without `timezone` takes the
/// zone its number rings in: by country code, and for +1 by area code. Only
/// a zone known exactly is used (a guess could ring someone at night);
/// otherwise the queue's stays. Returns whether one was inferred.
pub fn infer_timezone(cfg: &Config, req: &mut NewCallback) -> bool {
    let Some(queue) = cfg.queue(&req.queue) else { return false };
    if req.timezone.is_some() || !queue.infer_timezone {
        return false;
    }
    match crate::phone_tz::timezone_for(&req.phone) {
        Some((tz, crate::phone_tz::Precision::Exact)) => {
            req.timezone = Some(tz.name().to_string());
            true
        }
        _ => false,
    }
}

/// A `window_close = "cancel"` queue is single-day: what it calls must be
/// due on the customer's local day of `now`, before that day's close.
/// Other queues carry over, so any day is the same.
pub fn same_window_day(queue: &Queue, tz: Tz, now: Millis, due_at: Millis) -> bool {
    queue.window_close != WindowClose::Cancel || windows::local_date(tz, now) == windows::local_date(tz, due_at)
}

/// An owned callback may be due at most `owned_booking_horizon` ahead: an
/// agent's promise to call back is not kept for weeks.
fn check_owned_horizon(queue: &Queue, now: Millis, due_at: Millis) -> Result<(), RuleError> {
    let horizon = queue.owned_booking_horizon.as_millis() as Millis;
    if due_at > now + horizon {
        return Err(RuleError::BeyondOwnedHorizon { horizon_s: queue.owned_booking_horizon.as_secs(), latest_ms: now + horizon });
    }
    Ok(())
}

/// A short text shown to people and carried in SIP headers: at most `max`
/// characters, no control characters (a header value cannot carry them).
pub fn check_text(field: &'static str, v: Option<&str>, max: usize) -> Result<(), RuleError> {
    let Some(v) = v else { return Ok(()) };
    if v.chars().count() > max {
        return Err(RuleError::TooManyChars { field, max });
    }
    if v.chars().any(char::is_control) {
        return Err(RuleError::ControlChars { field });
    }
    Ok(())
}

fn check_lengths(notes: Option<&str>, interaction_id: Option<&str>) -> Result<(), RuleError> {
    if notes.is_some_and(|n| n.len() > MAX_NOTES) {
        return Err(RuleError::TooLong { field: "notes", max: MAX_NOTES });
    }
    if interaction_id.is_some_and(|n| n.len() > MAX_INTERACTION_ID) {
        return Err(RuleError::TooLong { field: "interaction_id", max: MAX_INTERACTION_ID });
    }
    Ok(())
}

/// The fields a valid `PATCH` produces.
#[derive(Debug, Clone)]
pub struct Rescheduled {
    pub queue: String,
    pub scheduled_at: Option<Millis>,
    pub timezone: String,
    pub due_at: Millis,
    pub owner: Option<String>,
    pub owners: Vec<String>,
    pub owner_mode: OwnerMode,
    pub owner_until: Option<Millis>,
    pub notes: Option<String>,
    pub caller_name: Option<String>,
    pub reason: Option<String>,
}

/// Validates a `PATCH` of the scheduled callback `old` and computes its new
/// due time and ownership. The due time only moves when the time, timezone
/// or queue changed; the ownership period starts again when the due time
/// moved or the owners changed; a change of notes, caller name, reason or
/// confidence keeps the callback's place.
pub fn validate_changes(now: Millis, cfg: &Config, old: &Callback, ch: &CallbackChanges) -> Result<Rescheduled, RuleError> {
    let new_queue = ch.queue.as_deref().unwrap_or(&old.queue);
    let queue = cfg.queue(new_queue).ok_or_else(|| RuleError::UnknownQueue { queue: new_queue.to_string() })?;
    let requeued = new_queue != old.queue;
    let new_tz_name = ch.timezone.clone().unwrap_or_else(|| old.timezone.clone());
    let tz = parse_tz(&new_tz_name).ok_or_else(|| RuleError::UnknownTimezone { timezone: new_tz_name.clone() })?;
    let new_at = ch.scheduled_at.unwrap_or(old.scheduled_at);
    if let Some(Some(at)) = ch.scheduled_at {
        check_time(now, at)?;
    }
    let (new_owner, new_owners) = match (&ch.owner, &ch.owners) {
        (Some(_), Some(_)) => return Err(RuleError::OwnerAndOwners),
        (Some(o), None) => (o.clone(), Vec::new()),
        (None, Some(list)) => (list.first().cloned(), list.clone()),
        (None, None) => (old.owner.clone(), old.owners.clone()),
    };
    if ch.owners.is_some() || requeued {
        for o in &new_owners {
            check_owner(cfg, queue, o).map_err(|e| match e {
                RuleError::OwnerNotInQueue { owner, queue } => RuleError::ListedOwnerNotInQueue { owner, queue },
                _ => RuleError::UnknownListedOwner { owner: o.clone() },
            })?;
        }
    }
    if let Some(o) = new_owner.as_ref().filter(|_| new_owners.is_empty()) {
        if ch.owner.is_some() || requeued {
            check_owner(cfg, queue, o)?;
        }
    }
    let owner_mode = match (ch.owner_mode, new_owner.is_some()) {
        (Some(_), false) => return Err(RuleError::OwnerModeWithoutOwner),
        (Some(m), true) => m,
        (None, true) => old.owner_mode,
        // Cleared owners start over as `strict`; a change of other fields
        // keeps the mode of one whose ownership already ended.
        (None, false) if ch.owner.is_some() || ch.owners.is_some() => OwnerMode::Strict,
        (None, false) => old.owner_mode,
    };
    let new_notes = ch.notes.clone().unwrap_or_else(|| old.notes.clone());
    check_lengths(new_notes.as_deref(), None)?;
    let caller_name = ch.caller_name.clone().unwrap_or_else(|| old.caller_name.clone());
    check_text("caller_name", caller_name.as_deref(), MAX_CALLER_NAME)?;
    let reason = ch.reason.clone().unwrap_or_else(|| old.reason.clone());
    check_text("reason", reason.as_deref(), MAX_REASON)?;
    // Another queue has its own window: the due time is clipped to it again.
    let moved = ch.scheduled_at.is_some() || ch.timezone.is_some() || requeued;
    let new_due = if moved { due_for(queue, tz, now, new_at) } else { old.due_at };
    let owner_changed = new_owner != old.owner || new_owners != old.owners;
    if new_owner.is_some() && (moved || owner_changed) {
        check_owned_horizon(queue, now, new_due)?;
    }
    if moved && !same_window_day(queue, tz, now, new_due) {
        return Err(RuleError::SingleDay { queue: queue.name.clone() });
    }
    let new_owner_until = match &new_owner {
        None => None,
        Some(_) if moved || owner_changed || old.owner_until.is_none() => {
            Some(new_due + queue.ownership_period.as_millis() as Millis)
        }
        Some(_) => old.owner_until,
    };
    Ok(Rescheduled {
        queue: queue.name.clone(),
        scheduled_at: new_at,
        timezone: new_tz_name,
        due_at: new_due,
        owner: new_owner,
        owners: new_owners,
        owner_mode,
        owner_until: new_owner_until,
        notes: new_notes,
        caller_name,
        reason,
    })
}

/// What happens to a callback after an attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Final with this status.
    Done(Status),
    /// Scheduled again, due at this (window-clipped) time.
    Retry { due_at: Millis },
    /// A retry would fall after today's close on a single-day queue:
    /// cancelled (`window_closed`).
    WindowClosed,
}

/// The retry policy: `human` (bridged) completes; `machine` completes when
/// the queue handles machines (`complete`, `message:`), else retries;
/// `failed` is not retryable; `cancelled` ends as cancelled; everything else
/// retries after `retry_delay` while attempts remain, then `exhausted`.
/// `declined` ends `failed` unless the queue has `retry_declined`.
/// `recovered` marks an attempt closed by crash recovery: it is recorded as
/// `failed` but retried, because the customer may never have been dialled.
pub fn after_attempt(
    now: Millis,
    queue: &Queue,
    tz: Tz,
    attempts: u32,
    max_attempts: u32,
    outcome: Outcome,
    recovered: bool,
) -> Next {
    let retryable = match outcome {
        // A text accepted by the trunk: the `sms` channel's delivery.
        Outcome::Human | Outcome::Sent => return Next::Done(Status::Completed),
        Outcome::Machine => match queue.on_machine {
            OnMachine::Complete | OnMachine::Message(_) => return Next::Done(Status::Completed),
            OnMachine::Retry => true,
        },
        Outcome::Failed => recovered,
        Outcome::Cancelled => return Next::Done(Status::Cancelled),
        // A customer who declined (603, RFC 3261 §21.6.2) said no: not rung
        // again unless the queue says so.
        Outcome::Declined => queue.retry_declined,
        Outcome::NoAnswer | Outcome::Busy | Outcome::AgentUnavailable | Outcome::AgentNoAnswer => true,
    };
    if !retryable {
        return Next::Done(Status::Failed);
    }
    if attempts >= max_attempts {
        return Next::Done(Status::Exhausted);
    }
    let at = now + queue.retry_delay.as_millis() as Millis;
    let due_at = windows::next_open(&queue.calling_hours(), tz, at);
    if !same_window_day(queue, tz, now, due_at) {
        return Next::WindowClosed;
    }
    Next::Retry { due_at }
}
