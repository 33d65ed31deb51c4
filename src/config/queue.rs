//! `[[queues]]`: a callback queue and its dialling policy.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problem::{parse_duration, Collector};
use crate::e164::is_e164;
use crate::window::WeeklyHours;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialMode {
    #[default]
    CustomerFirst,
    AgentFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnershipExpiry {
    #[default]
    Queue,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OnMachine {
    #[default]
    Retry,
    Complete,
    /// Play this WAV after the beep, then hang up.
    Message(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowClose {
    #[default]
    Carry,
    Cancel,
}

/// A validated queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub name: String,
    pub mode: DialMode,
    pub timezone: chrono_tz::Tz,
    pub hours: WeeklyHours,
    pub profile: Option<String>,
    pub caller_id: Option<String>,
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub ring_timeout: Duration,
    pub agent_ring_timeout: Duration,
    pub wrap_up: Duration,
    pub ownership_period: Duration,
    /// How far ahead an owned callback may be booked (1 h to 30 d).
    pub owned_booking_horizon: Duration,
    pub on_ownership_expiry: OwnershipExpiry,
    pub on_machine: OnMachine,
    pub skip_if_reached: bool,
    pub window_close: WindowClose,
    /// Most callback calls up at once for this queue; 0 = no limit.
    pub max_calls: u32,
    /// Inbound: with no agent free, callers whose estimated wait is at most
    /// this hold for an agent before the callback is offered; 0 = offer at
    /// once.
    pub offer_after_wait: Duration,
    /// Whether `POST /v1/detections` may book a callback on this queue when
    /// the request also asks for it (`create: true`).
    pub callback_detection: bool,
    /// Text sent through the queue's trunk when a callback is booked
    /// (`{when}` in the customer's timezone, `{queue}`, `{phone}`).
    pub sms_confirm: Option<String>,
    /// Text sent when a callback ends `exhausted` (same placeholders).
    pub sms_on_exhausted: Option<String>,
    /// Text sent at the due time, instead of a call, for a callback with
    /// `"channel": "sms"` (same placeholders); without it the queue takes
    /// no such callbacks.
    pub sms_callback: Option<String>,
    /// `[compliance] quiet_hours` (copied here at load): the daily local
    /// range outside which no customer is called, whatever `hours` says.
    pub quiet: Option<(crate::window::MinuteOfDay, crate::window::MinuteOfDay)>,
    /// A callback without `timezone` takes the one its number rings in
    /// (country code; +1 by area code), when that is known exactly.
    pub infer_timezone: bool,
    /// An inbound caller who waited at least this long and hung up before
    /// reaching an agent gets a queue callback (origin `abandoned`); `None` = never.
    pub abandoned_callback_after: Option<Duration>,
    /// Whether a customer's 603 Decline is retried like busy; by default it
    /// ends the callback (`failed`, `declined`).
    pub retry_declined: bool,
}

impl Queue {
    /// The hours a customer of this queue may be called, in the customer's
    /// local time: the queue's window within the compliance quiet hours.
    pub fn calling_hours(&self) -> std::borrow::Cow<'_, WeeklyHours> {
        match self.quiet.and_then(|q| self.hours.within_daily(q)) {
            Some(h) => std::borrow::Cow::Owned(h),
            None => std::borrow::Cow::Borrowed(&self.hours),
        }
    }

    /// The built-in `default` queue: UTC, always open.
    pub fn default_queue() -> Self {
        Self::named("default")
    }

    /// A queue with every default, named `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            mode: DialMode::CustomerFirst,
            timezone: chrono_tz::UTC,
            hours: WeeklyHours::always(),
            profile: None,
            caller_id: None,
            max_attempts: 3,
            retry_delay: Duration::from_secs(600),
            ring_timeout: Duration::from_secs(30),
            agent_ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(10),
            ownership_period: Duration::from_secs(4 * 3600),
            owned_booking_horizon: Duration::from_secs(7 * 86_400),
            on_ownership_expiry: OwnershipExpiry::Queue,
            on_machine: OnMachine::Retry,
            skip_if_reached: true,
            window_close: WindowClose::Carry,
            max_calls: 0,
            offer_after_wait: Duration::ZERO,
            callback_detection: false,
            sms_confirm: None,
            sms_on_exhausted: None,
            sms_callback: None,
            retry_declined: false,
            quiet: None,
            infer_timezone: false,
            abandoned_callback_after: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    name: String,
    mode: Option<String>,
    timezone: Option<String>,
    hours: Option<Vec<String>>,
    profile: Option<String>,
    caller_id: Option<String>,
    max_attempts: Option<u32>,
    retry_delay: Option<String>,
    ring_timeout: Option<String>,
    agent_ring_timeout: Option<String>,
    wrap_up: Option<String>,
    ownership_period: Option<String>,
    owned_booking_horizon: Option<String>,
    on_ownership_expiry: Option<String>,
    on_machine: Option<String>,
    skip_if_reached: Option<bool>,
    window_close: Option<String>,
    max_calls: Option<u32>,
    offer_after_wait: Option<String>,
    callback_detection: Option<bool>,
    sms_confirm: Option<String>,
    sms_on_exhausted: Option<String>,
    sms_callback: Option<String>,
    retry_declined: Option<bool>,
    infer_timezone: Option<bool>,
    abandoned_callback_after: Option<String>,
}

pub(crate) fn validate(raw: RawQueue, key: &str, c: &mut Collector<'_>) -> Queue {
    let mut q = Queue::named(&raw.name);
    let k = |field: &str| format!("{key}.{field}");
    if raw.name.is_empty() || !raw.name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
        c.push(k("name"), format!("`{}` is not a queue name (letters, digits, - _ .)", raw.name));
    }
    match raw.mode.as_deref() {
        None | Some("customer_first") => {}
        Some("agent_first") => q.mode = DialMode::AgentFirst,
        Some(m) => c.push(k("mode"), format!("`{m}` is not a mode (use \"customer_first\" or \"agent_first\")")),
    }
    if let Some(tz) = raw.timezone {
        if let Some(tz) = c.check(k("timezone"), tz.parse::<chrono_tz::Tz>().map_err(|_| format!("`{tz}` is not an IANA timezone like America/New_York"))) {
            q.timezone = tz;
        }
    }
    if let Some(hours) = raw.hours {
        if let Some(h) = c.check(k("hours"), WeeklyHours::parse(&hours)) {
            q.hours = h;
        }
    }
    q.profile = raw.profile;
    if let Some(cid) = raw.caller_id {
        if !is_e164(&cid) {
            c.push(k("caller_id"), format!("`{cid}` is not an E.164 number like +15550100"));
        }
        q.caller_id = Some(cid);
    }
    if let Some(n) = raw.max_attempts {
        if !(1..=100).contains(&n) {
            c.push(k("max_attempts"), format!("{n} is out of range (1 to 100)"));
        }
        q.max_attempts = n;
    }
    for (field, value, slot) in [
        ("retry_delay", &raw.retry_delay, &mut q.retry_delay),
        ("ring_timeout", &raw.ring_timeout, &mut q.ring_timeout),
        ("agent_ring_timeout", &raw.agent_ring_timeout, &mut q.agent_ring_timeout),
        ("wrap_up", &raw.wrap_up, &mut q.wrap_up),
        ("ownership_period", &raw.ownership_period, &mut q.ownership_period),
        ("owned_booking_horizon", &raw.owned_booking_horizon, &mut q.owned_booking_horizon),
        ("offer_after_wait", &raw.offer_after_wait, &mut q.offer_after_wait),
    ] {
        if let Some(v) = value {
            if let Some(d) = c.check(k(field), parse_duration(v)) {
                *slot = d;
            }
        }
    }
    // Ownership is about hours and days: under an hour no agent can be
    // expected back, past the 30-day booking limit it would never end.
    for (field, set, v) in [
        ("ownership_period", raw.ownership_period.is_some(), q.ownership_period),
        ("owned_booking_horizon", raw.owned_booking_horizon.is_some(), q.owned_booking_horizon),
    ] {
        if set && !(Duration::from_secs(3600)..=Duration::from_secs(30 * 86_400)).contains(&v) {
            c.push(k(field), format!("{}s is out of range (1h to 30d)", v.as_secs()));
        }
    }
    match raw.on_ownership_expiry.as_deref() {
        None | Some("queue") => {}
        Some("cancel") => q.on_ownership_expiry = OwnershipExpiry::Cancel,
        Some(v) => c.push(k("on_ownership_expiry"), format!("`{v}` is not allowed (use \"queue\" or \"cancel\")")),
    }
    match raw.on_machine.as_deref() {
        None | Some("retry") => {}
        Some("complete") => q.on_machine = OnMachine::Complete,
        Some(v) => match v.strip_prefix("message:") {
            Some(wav) if !wav.is_empty() => q.on_machine = OnMachine::Message(PathBuf::from(wav)),
            _ => c.push(k("on_machine"), format!("`{v}` is not allowed (use \"retry\", \"complete\" or \"message:<file.wav>\")")),
        },
    }
    if let Some(b) = raw.skip_if_reached {
        q.skip_if_reached = b;
    }
    match raw.window_close.as_deref() {
        None | Some("carry") => {}
        Some("cancel") => q.window_close = WindowClose::Cancel,
        Some(v) => c.push(k("window_close"), format!("`{v}` is not allowed (use \"carry\" or \"cancel\")")),
    }
    if let Some(n) = raw.max_calls {
        q.max_calls = n;
    }
    q.callback_detection = raw.callback_detection.unwrap_or(false);
    for (field, text, slot) in [
        ("sms_confirm", raw.sms_confirm, &mut q.sms_confirm),
        ("sms_on_exhausted", raw.sms_on_exhausted, &mut q.sms_on_exhausted),
        ("sms_callback", raw.sms_callback, &mut q.sms_callback),
    ] {
        let Some(text) = text else { continue };
        if let Err(why) = crate::sms::template::check(&text) {
            c.push(k(field), why);
        } else if q.profile.is_none() {
            c.push(k(field), "needs the queue's `profile`: texts go out through its trunk".to_string());
        }
        *slot = Some(text);
    }
    q.retry_declined = raw.retry_declined.unwrap_or(false);
    q.infer_timezone = raw.infer_timezone.unwrap_or(false);
    if let Some(v) = &raw.abandoned_callback_after {
        q.abandoned_callback_after = c.check(k("abandoned_callback_after"), parse_duration(v));
    }
    q
}
