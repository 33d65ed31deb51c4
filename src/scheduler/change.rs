//! What each change does to a callback record, as pure functions of (now,
//! configuration, the record as stored): building a new callback, a
//! `PATCH`, a cancel, an attempt's end with the retry policy, a skip, and
//! the engine's actions of a firing round. Every backend of the book
//! (redb's writer, PostgreSQL's) reads the record, calls these, and writes
//! what they return, so the rules live in one place and the backends only
//! differ in how they store.

use crate::clock::Millis;
use crate::config::{Config, OwnershipExpiry};
use crate::events::{Kind, Payload};
use crate::scheduler::engine::rules::{self, Next, Validated};
use crate::scheduler::engine::{Action, DueEntry};
use crate::scheduler::model::{
    Attempt, AttemptOutcome, Callback, CallbackChanges, CallbackId, Channel, Dispatch, EndReason, NewCallback, Origin, Outcome,
    OwnerMode, Status, TimezoneSource, WhenResolution,
};
use crate::scheduler::store::{CancelError, ReportError, ScheduleError};

/// The engine's view of a scheduled callback (its timezone falls back to
/// the queue's, then UTC when the queue left the configuration).
pub fn due_entry(cfg: &Config, cb: &Callback) -> DueEntry {
    let tz = cfg.queue(&cb.queue).map_or(chrono_tz::UTC, |q| q.timezone);
    DueEntry::of(cb, tz)
}

/// Resolves a request's free-text time and checks every rule but the ones
/// that need the book (one active callback per phone and queue, one per
/// interaction).
pub fn validate_new(now: Millis, cfg: &Config, req: &mut NewCallback) -> Result<(Validated, Option<WhenResolution>), ScheduleError> {
    let inferred = rules::infer_timezone(cfg, req);
    let when_resolution = crate::scheduler::when::resolve_request(now, req, cfg);
    let mut v = rules::validate_new(now, req, cfg)?;
    if inferred {
        v.timezone_source = TimezoneSource::Number;
    }
    Ok((v, when_resolution))
}

/// The record of a new callback that passed every rule.
pub fn new_record(cfg: &Config, now: Millis, id: CallbackId, req: NewCallback, v: Validated, when_resolution: Option<WhenResolution>) -> Callback {
    let mode = req.mode.unwrap_or_else(|| cfg.queue(&req.queue).expect("validated").mode);
    Callback {
        id,
        status: Status::Scheduled,
        mode,
        caller_id: req.caller_id,
        phone: req.phone,
        queue: req.queue,
        owner: req.owner.or_else(|| req.owners.first().cloned()),
        scheduled_at: req.scheduled_at,
        due_at: v.due_at,
        timezone: v.timezone,
        attempts: 0,
        max_attempts: v.max_attempts,
        last_outcome: None,
        origin: req.origin.unwrap_or(Origin::Api),
        notes: req.notes,
        interaction_id: req.interaction_id,
        created_at: now,
        updated_at: now,
        first_due_at: v.due_at,
        owner_until: v.owner_until,
        end_reason: None,
        when: req.when,
        when_resolution,
        skipped_by: None,
        caller_name: req.caller_name,
        reason: req.reason,
        confidence: req.confidence,
        owners: req.owners,
        owner_mode: req.owner_mode.unwrap_or_default(),
        timezone_source: Some(v.timezone_source),
        channel: req.channel.unwrap_or_default(),
    }
}

/// A `PATCH` of a scheduled callback (possibly to another queue: the
/// caller checks that the customer has no active callback there). A
/// callback not yet tried takes the
/// new due time as its first due time (priority, the ownership period and
/// the delay in stats start from it).
pub fn rescheduled(now: Millis, cfg: &Config, old: &Callback, ch: &CallbackChanges) -> Result<Callback, ScheduleError> {
    if old.status != Status::Scheduled {
        return Err(ScheduleError::WrongState { status: old.status });
    }
    let r = rules::validate_changes(now, cfg, old, ch)?;
    // A text stays deliverable: its new queue must send such texts, and
    // nobody owns it.
    if old.channel == Channel::Sms {
        if r.queue != old.queue {
            rules::check_sms(cfg.queue(&r.queue).expect("validated"))?;
        }
        if r.owner.is_some() {
            return Err(rules::RuleError::SmsOwned.into());
        }
    }
    let mut new = old.clone();
    new.queue = r.queue;
    new.scheduled_at = r.scheduled_at;
    new.timezone = r.timezone;
    if ch.timezone.is_some() {
        new.timezone_source = Some(TimezoneSource::Request);
    }
    new.due_at = r.due_at;
    new.owner = r.owner;
    new.owners = r.owners;
    new.owner_mode = r.owner_mode;
    new.owner_until = r.owner_until;
    new.notes = r.notes;
    new.caller_name = r.caller_name;
    new.reason = r.reason;
    if let Some(c) = ch.confidence {
        new.confidence = c;
    }
    if let Some((words, resolution)) = &ch.when {
        new.when = Some(words.clone());
        new.when_resolution = Some(*resolution);
    }
    new.updated_at = now;
    if new.attempts == 0 {
        new.first_due_at = new.due_at;
    }
    Ok(new)
}

/// A cancel through the API: only a scheduled callback can be cancelled.
pub fn cancelled(now: Millis, old: &Callback) -> Result<Callback, CancelError> {
    if old.status != Status::Scheduled {
        return Err(CancelError::WrongState { status: old.status });
    }
    let mut new = old.clone();
    new.status = Status::Cancelled;
    new.end_reason = Some(EndReason::Api);
    new.updated_at = now;
    Ok(new)
}

/// The end of attempt `n` with the retry policy applied: the new record and
/// the attempt to record. `note` marks an attempt closed by recovery (it is
/// retried: the customer may never have been dialled).
pub fn reported(now: Millis, cfg: &Config, old: &Callback, n: u32, o: AttemptOutcome, note: Option<&str>) -> Result<(Callback, Attempt), ReportError> {
    if old.status != Status::InProgress || old.attempts != n {
        return Err(ReportError::NotInProgress { status: old.status, attempts: old.attempts });
    }
    let attempt = Attempt {
        attempt: n,
        // The record's last change was the arming that started it; an
        // attempt armed ahead starts at its due time (the hand-over).
        started_at: old.updated_at.max(old.due_at),
        ended_at: now.max(old.updated_at).max(old.due_at),
        outcome: o.outcome,
        sip_status: o.sip_status,
        amd: o.amd,
        agent: o.agent,
        note: note.map(str::to_string).or_else(|| o.note.clone()),
        timeline: o.timeline,
    };
    let mut new = old.clone();
    new.last_outcome = Some(o.outcome);
    new.updated_at = now;
    let next = match cfg.queue(&old.queue) {
        Some(q) => {
            let tz = rules::parse_tz(&old.timezone).unwrap_or(q.timezone);
            rules::after_attempt(now, q, tz, old.attempts, old.max_attempts, o.outcome, note.is_some() || o.retry)
        }
        // The queue left the configuration: nothing can dial it again.
        None => Next::Done(if matches!(o.outcome, Outcome::Human | Outcome::Sent) { Status::Completed } else { Status::Failed }),
    };
    match next {
        Next::Done(s) => {
            new.status = s;
            if s == Status::Failed && o.outcome == Outcome::Declined {
                new.end_reason = Some(EndReason::Declined);
            }
        }
        Next::WindowClosed => {
            new.status = Status::Cancelled;
            new.end_reason = Some(EndReason::WindowClosed);
        }
        Next::Retry { due_at } => {
            new.status = Status::Scheduled;
            new.due_at = due_at;
        }
    }
    Ok((new, attempt))
}

/// The customer reached an agent of the queue by calling in: a `scheduled`
/// callback ends `skipped` (an `in_progress` one is being dialled and is
/// left alone).
pub fn skipped(now: Millis, old: &Callback, interaction: &str) -> Option<Callback> {
    if old.status != Status::Scheduled {
        return None;
    }
    let mut new = old.clone();
    new.status = Status::Skipped;
    new.end_reason = Some(EndReason::Reached);
    new.skipped_by = Some(interaction.to_string());
    new.updated_at = now;
    Some(new)
}

/// What one engine action does to the record it names.
#[derive(Debug, Default)]
pub struct Applied {
    /// The record to write, when it changed.
    pub write: Option<Callback>,
    /// The attempt to hand over (the record is `write`).
    pub dispatch: Option<Dispatch>,
    /// The callback stays scheduled unchanged: the engine must hold it again.
    pub keep: Option<DueEntry>,
    /// The agent reserved for a fire that did not happen: give it back.
    pub release: Option<String>,
}

/// Applies one engine action armed for `now` (possibly ahead of the clock)
/// to the record as stored; `wall` is the clock's time, recorded as the
/// change's time. The record is the truth: a change made since the engine
/// last saw it (cancel, reschedule) overtakes the action.
pub fn apply_action(now: Millis, wall: Millis, cfg: &Config, old: &Callback, a: Action) -> Applied {
    let current = old.status == Status::Scheduled && old.due_at <= now;
    let mut out = Applied::default();
    if !current && old.status == Status::Scheduled {
        // The engine gave it up; it stays scheduled, so it must stay in
        // memory too.
        out.keep = Some(due_entry(cfg, old));
    }
    let mut new = old.clone();
    new.updated_at = wall;
    match a {
        Action::Fire { agent, .. } => {
            if !current {
                out.release = Some(agent);
                return out;
            }
            new.status = Status::InProgress;
            new.attempts += 1;
            out.dispatch = Some(Dispatch { attempt: new.attempts, callback: new.clone(), agent });
        }
        _ if !current => return out,
        Action::Defer { due_at, .. } => new.due_at = due_at,
        Action::ExpireOwnership { .. } => match expiry_policy(cfg, old) {
            OwnershipExpiry::Queue => {
                new.owner = None;
                new.owners.clear();
                new.owner_until = None;
            }
            OwnershipExpiry::Cancel => {
                new.status = Status::Cancelled;
                new.end_reason = Some(EndReason::OwnershipExpired);
            }
        },
        Action::CloseWindow { .. } => {
            new.status = Status::Cancelled;
            new.end_reason = Some(EndReason::WindowClosed);
        }
    }
    out.write = Some(new);
    out
}

/// The callback as it was before `cb`'s attempt started, for a start that
/// was written but never handed to the dialler (its commit's answer was
/// lost): scheduled again under the previous attempt number, due as it was.
/// `None` when `cb` is not that attempt in progress any more.
pub fn unstarted(wall: Millis, cb: &Callback, attempt: u32) -> Option<Callback> {
    if cb.status != Status::InProgress || cb.attempts != attempt || attempt == 0 {
        return None;
    }
    let mut new = cb.clone();
    new.status = Status::Scheduled;
    new.attempts -= 1;
    new.updated_at = wall;
    Some(new)
}

/// What an ended ownership does: `preferred` ones (no owner was free at the
/// due time) go to the queue at once; `strict` ones follow the queue's
/// `on_ownership_expiry`.
fn expiry_policy(cfg: &Config, cb: &Callback) -> OwnershipExpiry {
    match cb.owner_mode {
        OwnerMode::Preferred => OwnershipExpiry::Queue,
        OwnerMode::Strict => cfg.queue(&cb.queue).map_or(OwnershipExpiry::Queue, |q| q.on_ownership_expiry),
    }
}

/// The callback an action is about.
pub fn action_id(a: &Action) -> CallbackId {
    match a {
        Action::Fire { id, .. } | Action::Defer { id, .. } | Action::ExpireOwnership { id } | Action::CloseWindow { id } => *id,
    }
}

/// The event a committed change of a callback is: by its new status when
/// that changed, else an update (rescheduled, reassigned, deferred, or a
/// retry's new due time).
pub fn change_kind(old: Option<&Callback>, new: &Callback) -> Kind {
    let Some(old) = old else { return Kind::CallbackCreated };
    if old.status == new.status {
        return Kind::CallbackUpdated;
    }
    match new.status {
        Status::Scheduled => Kind::CallbackUpdated,
        Status::InProgress => Kind::CallbackInProgress,
        Status::Completed => Kind::CallbackCompleted,
        Status::Cancelled => Kind::CallbackCancelled,
        Status::Exhausted => Kind::CallbackExhausted,
        Status::Failed => Kind::CallbackFailed,
        Status::Skipped => Kind::CallbackSkipped,
    }
}

/// The events a committed write of `new` over `old` publishes, in order.
pub fn change_events(old: Option<&Callback>, new: &Callback) -> Vec<(Kind, Payload)> {
    let kind = change_kind(old, new);
    let mut out = vec![(kind, Payload::Callback(Box::new(new.clone())))];
    if kind == Kind::CallbackInProgress {
        out.push((Kind::AttemptStarted, Payload::AttemptStarted { callback: Box::new(new.clone()), attempt: new.attempts }));
    }
    out
}

/// The event of an attempt's end, published before the callback's change.
pub fn attempt_event(new: &Callback, attempt: &Attempt) -> (Kind, Payload) {
    (Kind::AttemptEnded, Payload::AttemptEnded { callback: Box::new(new.clone()), attempt: Box::new(attempt.clone()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with a queue that texts (`texts`) and one that does not (`calls`).
    fn cfg() -> Config {
        let mut cfg = Config::defaults();
        let mut texts = crate::config::Queue::named("texts");
        texts.profile = Some("carrier".into());
        texts.sms_callback = Some("Hello from {queue}".into());
        cfg.queues = vec![texts, crate::config::Queue::named("calls")];
        cfg.agents.push(crate::config::Agent { id: "alice".into(), password: "pw".into(), queues: vec!["texts".into(), "calls".into()] });
        cfg
    }

    #[test]
    fn a_text_stays_deliverable_through_a_patch() {
        let cfg = cfg();
        let text = Callback { queue: "texts".into(), owner: None, channel: Channel::Sms, attempts: 0, ..Callback::sample() };
        let now = text.created_at;
        // To a queue without `sms_callback`: refused, naming the channel.
        let to_calls = CallbackChanges { queue: Some("calls".into()), ..Default::default() };
        let err = rescheduled(now, &cfg, &text, &to_calls).unwrap_err();
        assert!(matches!(&err, ScheduleError::Rule(e) if e.field() == Some("channel") && e.code() == "sms_not_offered"), "{err:?}");
        // An owner: refused.
        let owned = CallbackChanges { owner: Some(Some("alice".into())), ..Default::default() };
        let err = rescheduled(now, &cfg, &text, &owned).unwrap_err();
        assert!(matches!(&err, ScheduleError::Rule(rules::RuleError::SmsOwned)), "{err:?}");
        // Notes change as for any callback; a voice callback moves freely.
        let notes = CallbackChanges { notes: Some(Some("prefers texts".into())), ..Default::default() };
        assert_eq!(rescheduled(now, &cfg, &text, &notes).unwrap().notes.as_deref(), Some("prefers texts"));
        let voice = Callback { channel: Channel::Voice, ..text.clone() };
        assert_eq!(rescheduled(now, &cfg, &voice, &to_calls).unwrap().queue, "calls");
    }

    #[test]
    fn an_unconfirmed_start_is_put_back_as_it_was() {
        let cfg = cfg();
        let due = Callback { queue: "calls".into(), attempts: 1, ..Callback::sample() };
        let now = due.due_at;
        let started = apply_action(now, now + 5, &cfg, &due, Action::Fire { id: due.id, agent: "alice".into() });
        let started = started.write.expect("fired");
        let back = unstarted(now + 9, &started, 2).expect("attempt 2 in progress");
        assert_eq!(back, Callback { updated_at: now + 9, ..due.clone() });
        // Another attempt, or one that already ended, is left alone.
        assert_eq!(unstarted(now, &started, 1), None);
        assert_eq!(unstarted(now, &Callback { status: Status::Completed, ..started.clone() }, 2), None);
        assert_eq!(unstarted(now, &due, 1), None);
    }
}
