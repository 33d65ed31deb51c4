//! The callback model: records, statuses, attempts, origins.
//!
//! These types are what the store keeps and what the HTTP API serialises
//! (statuses and outcomes in `snake_case`, as the API shows them).
//! Times are [`Millis`]; the API renders them as RFC 3339.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::config::DialMode;

/// An opaque callback id: 32 bits of creation sequence then 32 random bits,
/// rendered `cb_` + 13 Crockford base32 digits.
///
/// The sequence half keeps inserts at the right edge of the record table (one
/// dirty leaf per batch instead of one per insert); the random half makes ids
/// unguessable enough that probing them is pointless (a guess hits one in 2³²).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallbackId(pub u64);

const B32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

impl CallbackId {
    pub fn new(seq: u32, random: u32) -> Self {
        Self((u64::from(seq) << 32) | u64::from(random))
    }

    /// Parses the canonical rendering; anything else (wrong prefix, length,
    /// case or alphabet) is `None`, which callers treat as "not found".
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix("cb_")?.as_bytes();
        if digits.len() != 13 {
            return None;
        }
        let mut v: u64 = 0;
        for (i, &c) in digits.iter().enumerate() {
            let d = B32.iter().position(|&b| b == c)? as u64;
            // 13 digits carry 65 bits: the first may hold only 4.
            if i == 0 && d > 15 {
                return None;
            }
            v = (v << 5) | d;
        }
        Some(Self(v))
    }
}

impl fmt::Display for CallbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 16];
        out[..3].copy_from_slice(b"cb_");
        for i in 0..13 {
            let shift = 5 * (12 - i);
            out[3 + i] = B32[((self.0 >> shift) & 31) as usize];
        }
        f.write_str(std::str::from_utf8(&out).expect("ascii"))
    }
}

impl FromStr for CallbackId {
    type Err = UnknownId;
    fn from_str(s: &str) -> Result<Self, UnknownId> {
        Self::parse(s).ok_or(UnknownId)
    }
}

impl Serialize for CallbackId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CallbackId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("not a callback id"))
    }
}

/// A string that is not a callback id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a callback id")]
pub struct UnknownId;

/// Generates an enum with a stable one-byte storage code per variant, so
/// adding a variant (as `skipped` was) is one line and never renumbers.
macro_rules! coded_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $code:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v,)+ }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];

            /// The storage code of this variant (never reused).
            pub fn code(self) -> u8 {
                match self { $($name::$v => $code,)+ }
            }

            pub fn from_code(c: u8) -> Option<Self> {
                match c { $($code => Some($name::$v),)+ _ => None }
            }

            /// The snake_case name used by the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => to_snake(stringify!($v)),)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or(())
            }
        }
    };
}

/// `CamelCase` variant names to the API's snake_case, computed once per name.
const fn to_snake(s: &'static str) -> &'static str {
    // Only the few multi-word names need a mapping; keep it explicit.
    match s.as_bytes() {
        b"InProgress" => "in_progress",
        b"NoAnswer" => "no_answer",
        b"AgentUnavailable" => "agent_unavailable",
        b"AgentNoAnswer" => "agent_no_answer",
        b"OwnershipExpired" => "ownership_expired",
        b"WindowClosed" => "window_closed",
        b"Scheduled" => "scheduled",
        b"Completed" => "completed",
        b"Cancelled" => "cancelled",
        b"Exhausted" => "exhausted",
        b"Failed" => "failed",
        b"Skipped" => "skipped",
        b"Human" => "human",
        b"Machine" => "machine",
        b"Unknown" => "unknown",
        b"Busy" => "busy",
        b"Declined" => "declined",
        b"Api" => "api",
        b"Inbound" => "inbound",
        b"Agent" => "agent",
        b"Recovered" => "recovered",
        b"Reached" => "reached",
        b"Abandoned" => "abandoned",
        b"Strict" => "strict",
        b"Preferred" => "preferred",
        b"Request" => "request",
        b"Number" => "number",
        b"Queue" => "queue",
        b"Voice" => "voice",
        b"Sms" => "sms",
        b"Sent" => "sent",
        _ => "?",
    }
}

coded_enum! {
    /// Where a callback is in its life: `scheduled` → `in_progress` → a final status.
    pub enum Status {
        Scheduled = 0,
        InProgress = 1,
        Completed = 2,
        Cancelled = 3,
        Exhausted = 4,
        Failed = 5,
        /// The customer called in and reached an agent of the queue first.
        Skipped = 6,
    }
}

impl Status {
    /// `scheduled` and `in_progress` are active: at most one per phone and queue.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Scheduled | Status::InProgress)
    }
}

coded_enum! {
    /// How one attempt ended.
    pub enum Outcome {
        Human = 0,
        Machine = 1,
        NoAnswer = 2,
        Busy = 3,
        Declined = 4,
        Failed = 5,
        AgentUnavailable = 6,
        AgentNoAnswer = 7,
        Cancelled = 8,
        /// A `"channel": "sms"` callback's text was accepted by the trunk (2xx).
        Sent = 9,
    }
}

coded_enum! {
    /// Who asked for the callback.
    pub enum Origin {
        Api = 0,
        Inbound = 1,
        Agent = 2,
        /// An inbound caller who hung up waiting for an agent.
        Abandoned = 3,
    }
}

coded_enum! {
    /// The answering-machine detector's verdict on an attempt.
    pub enum Amd {
        Human = 0,
        Machine = 1,
        Unknown = 2,
    }
}

coded_enum! {
    /// Why a callback reached a final status other than by an attempt outcome.
    pub enum EndReason {
        /// Cancelled through the API.
        Api = 0,
        /// The owner never became free and the queue cancels on expiry.
        OwnershipExpired = 1,
        /// The window closed and the queue cancels what is still waiting.
        WindowClosed = 2,
        /// Skipped: the customer reached an agent of the queue by calling in.
        Reached = 3,
        /// The customer declined the call (603) and the queue does not retry declines.
        Declined = 4,
    }
}

coded_enum! {
    /// How an owned callback waits for its owners.
    pub enum OwnerMode {
        /// Wait for an owner until the ownership period ends.
        Strict = 0,
        /// An owner if one is free at the due time, else the queue at once.
        Preferred = 1,
    }
}

coded_enum! {
    /// Where the callback's timezone came from.
    pub enum TimezoneSource {
        /// Given in the request.
        Request = 0,
        /// Inferred from the phone number (country code; +1 by area code).
        Number = 1,
        /// The queue's timezone.
        Queue = 2,
    }
}

coded_enum! {
    /// How a callback reaches the customer at its due time.
    pub enum Channel {
        /// A call: the customer and an agent are bridged.
        Voice = 0,
        /// A text through the queue's trunk (SIP MESSAGE) instead of a call.
        Sms = 1,
    }
}

impl Default for Channel {
    fn default() -> Self {
        Channel::Voice
    }
}

impl Default for OwnerMode {
    fn default() -> Self {
        OwnerMode::Strict
    }
}

/// A voice bot's confidence, 0 to 1, kept in ten-thousandths so the record
/// stays `Eq` and encodes as a small integer (four decimals are far more
/// than any bot reports meaningfully).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Confidence(u16);

impl Confidence {
    pub const SCALE: u16 = 10_000;

    /// `None` outside 0–1 (or NaN).
    pub fn from_f64(v: f64) -> Option<Self> {
        (0.0..=1.0).contains(&v).then(|| Self((v * f64::from(Self::SCALE)).round() as u16))
    }

    pub fn from_raw(v: u16) -> Option<Self> {
        (v <= Self::SCALE).then_some(Self(v))
    }

    pub fn raw(self) -> u16 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(Self::SCALE)
    }
}

impl Serialize for Confidence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Self::from_f64(v).ok_or_else(|| serde::de::Error::custom("confidence must be between 0 and 1"))
    }
}

/// A callback record: every field of the API's callback object plus what the
/// engine needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub id: CallbackId,
    pub status: Status,
    pub phone: String,
    pub queue: String,
    /// The agent who owns it, until the ownership period ends.
    pub owner: Option<String>,
    pub mode: DialMode,
    /// The time asked for; `None` = as soon as the window allows.
    pub scheduled_at: Option<Millis>,
    /// When it is next due, after window clipping and retries.
    pub due_at: Millis,
    /// The customer's IANA timezone (the queue's when none was given).
    pub timezone: String,
    /// Attempts started so far (the current one included while `in_progress`).
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_outcome: Option<Outcome>,
    pub origin: Origin,
    pub notes: Option<String>,
    pub interaction_id: Option<String>,
    pub caller_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The first due time (after clipping): the start of the ownership period
    /// and the delay reported by stats.
    pub first_due_at: Millis,
    /// When an owned callback goes to the queue (or is cancelled).
    pub owner_until: Option<Millis>,
    /// Why it ended, when that was not an attempt outcome.
    pub end_reason: Option<EndReason>,
    /// The free text the time was asked with (`when`), if it was.
    pub when: Option<String>,
    /// How precisely `when` named a time; `None` without `when`.
    pub when_resolution: Option<WhenResolution>,
    /// The inbound call (interaction id) that made it `skipped`.
    pub skipped_by: Option<String>,
    /// The display name of the customer INVITE's From.
    pub caller_name: Option<String>,
    /// Why the customer wants the call (a voice bot's or an agent's words).
    pub reason: Option<String>,
    /// How sure the reporter (a voice bot) was that a callback was asked for.
    pub confidence: Option<Confidence>,
    /// Agents who may take it, in order of preference (the first free one
    /// takes it); `owner` is the first of them. Empty when not owned, or
    /// owned by `owner` alone.
    pub owners: Vec<String>,
    /// How it waits for its owners; `Strict` for records written before modes existed.
    pub owner_mode: OwnerMode,
    /// Where `timezone` came from; `None` on records written before this was kept.
    pub timezone_source: Option<TimezoneSource>,
    /// A call, or a text at the due time; `Voice` for records written before channels existed.
    pub channel: Channel,
}

impl Callback {
    /// Every agent who owns it: `owners`, or `owner` alone.
    pub fn all_owners(&self) -> Vec<&str> {
        if self.owners.is_empty() {
            self.owner.as_deref().into_iter().collect()
        } else {
            self.owners.iter().map(String::as_str).collect()
        }
    }
}

/// When each step of an attempt happened; `None` = the step
/// did not happen (or the dialler did not report it). `ended_at` is on the
/// [`Attempt`] itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timeline {
    /// The INVITE to the customer (or, agent first, to the agent) was sent.
    pub dialed_at: Option<Millis>,
    /// The customer leg rang (180/183).
    pub ringing_at: Option<Millis>,
    /// The customer answered (200 OK).
    pub answered_at: Option<Millis>,
    /// The answering-machine detector decided.
    pub amd_at: Option<Millis>,
    /// The agent's softphone rang.
    pub agent_ringing_at: Option<Millis>,
    /// The agent answered.
    pub agent_answered_at: Option<Millis>,
    /// Both legs were bridged.
    pub bridged_at: Option<Millis>,
}

impl Timeline {
    /// The fields in storage order, with their API names.
    pub fn fields(&self) -> [(&'static str, Option<Millis>); 7] {
        [
            ("dialed_at", self.dialed_at),
            ("ringing_at", self.ringing_at),
            ("answered_at", self.answered_at),
            ("amd_at", self.amd_at),
            ("agent_ringing_at", self.agent_ringing_at),
            ("agent_answered_at", self.agent_answered_at),
            ("bridged_at", self.bridged_at),
        ]
    }

    /// Builds a timeline from [`Timeline::fields`] order.
    pub fn from_fields(v: [Option<Millis>; 7]) -> Self {
        let [dialed_at, ringing_at, answered_at, amd_at, agent_ringing_at, agent_answered_at, bridged_at] = v;
        Self { dialed_at, ringing_at, answered_at, amd_at, agent_ringing_at, agent_answered_at, bridged_at }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One attempt of a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    pub started_at: Millis,
    pub ended_at: Millis,
    pub outcome: Outcome,
    pub sip_status: Option<u16>,
    pub amd: Option<Amd>,
    pub agent: Option<String>,
    /// Why the attempt ended without a dialler report (crash recovery).
    pub note: Option<String>,
    pub timeline: Timeline,
}

impl Attempt {
    pub fn duration_s(&self) -> f64 {
        (self.ended_at - self.started_at).max(0) as f64 / 1000.0
    }
}

/// What the dialler reports when an attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub outcome: Outcome,
    pub sip_status: Option<u16>,
    pub amd: Option<Amd>,
    pub agent: Option<String>,
    pub timeline: Timeline,
    /// A `failed` outcome that is still retried by policy (a 5xx, a
    /// transport failure: the number may well be right).
    pub retry: bool,
    /// Why, in a few words, when the outcome alone does not say.
    pub note: Option<String>,
}

impl AttemptOutcome {
    pub fn new(outcome: Outcome) -> Self {
        Self { outcome, sip_status: None, amd: None, agent: None, timeline: Timeline::default(), retry: false, note: None }
    }
}

/// A request to schedule a callback (the API's `POST /v1/callbacks` body).
/// `when` is resolved by the writer at its commit clock
/// ([`when::resolve_request`](crate::scheduler::when::resolve_request)), so
/// the 60 s rule and the resolution see the same `now`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewCallback {
    pub phone: String,
    pub queue: String,
    pub scheduled_at: Option<Millis>,
    pub timezone: Option<String>,
    pub owner: Option<String>,
    pub mode: Option<DialMode>,
    pub caller_id: Option<String>,
    pub notes: Option<String>,
    pub interaction_id: Option<String>,
    pub max_attempts: Option<u32>,
    pub origin: Option<Origin>,
    /// Free text ("tomorrow morning"); exclusive with `scheduled_at`.
    pub when: Option<String>,
    /// An inbound caller's callback: when they joined the queue. With no
    /// other time given it is due from then (the window permitting), so it
    /// keeps the caller's place among callbacks due later.
    pub joined_at: Option<Millis>,
    /// With neither `scheduled_at` nor `when`: due this long after now
    /// (a booking from a live call: 30 min), still clipped to the window.
    pub default_delay_ms: Option<Millis>,
    /// Refuse (409) when an active callback carries the same
    /// `interaction_id` (a booking from a live call).
    pub unique_interaction: bool,
    pub caller_name: Option<String>,
    pub reason: Option<String>,
    pub confidence: Option<Confidence>,
    /// Several owners (the first free takes it); exclusive with `owner`.
    pub owners: Vec<String>,
    pub owner_mode: Option<OwnerMode>,
    /// The callback being dialled on the live call this booking comes
    /// from: it does not count as a duplicate of its own follow-up.
    pub follow_up_of: Option<CallbackId>,
    /// `voice` (default) or `sms`.
    pub channel: Option<Channel>,
}

/// A `PATCH`: each `Some` replaces the field; `Some(None)` clears an optional one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallbackChanges {
    /// `Some(None)` = as soon as the window allows.
    pub scheduled_at: Option<Option<Millis>>,
    pub timezone: Option<String>,
    pub owner: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    /// Moves the callback to another queue: its window, retry policy and
    /// agents from then on (the owner must serve the new queue).
    pub queue: Option<String>,
    pub caller_name: Option<Option<String>>,
    pub reason: Option<Option<String>>,
    pub confidence: Option<Option<Confidence>>,
    /// Replaces the agents who may take it (`[]` = none); exclusive with
    /// `owner`. The first of them becomes `owner`.
    pub owners: Option<Vec<String>>,
    pub owner_mode: Option<OwnerMode>,
    /// The customer's words `scheduled_at` was resolved from, and how
    /// precisely they named a time; kept on the record as `when`.
    pub when: Option<(String, WhenResolution)>,
}

/// A callback handed to the dialler: it is durably `in_progress` with this
/// attempt number before the dialler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub callback: Callback,
    pub attempt: u32,
    /// The agent reserved for it through [`Availability`](crate::scheduler::engine::Availability).
    pub agent: String,
}

/// Counters for `GET /v1/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Stats {
    pub requested: u64,
    pub pending: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub exhausted: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Mean of `due_at − created_at` (first due time) over every callback requested.
    pub avg_delay_s: f64,
}

/// How precisely the text named a time (the API's `when_resolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenResolution {
    /// A clock time ("3pm", "tomorrow at 15:30") or a duration ("in 20 min").
    Exact,
    /// A daypart, a day without a time, or "around"/"about" a time.
    Approximate,
    /// Nothing usable ("later", "busy"): now + the queue's retry delay.
    Fallback,
}

impl WhenResolution {
    /// The storage code (never reused).
    pub fn code(self) -> u8 {
        match self {
            WhenResolution::Exact => 0,
            WhenResolution::Approximate => 1,
            WhenResolution::Fallback => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(WhenResolution::Exact),
            1 => Some(WhenResolution::Approximate),
            2 => Some(WhenResolution::Fallback),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WhenResolution::Exact => "exact",
            WhenResolution::Approximate => "approximate",
            WhenResolution::Fallback => "fallback",
        }
    }
}

/// A scheduled callback with every field set to something plausible, for
/// tests that need one whole record and change a few fields.
#[cfg(test)]
impl Callback {
    pub(crate) fn sample() -> Callback {
        Callback {
            id: CallbackId::new(7, 42),
            status: Status::Scheduled,
            phone: "+15550123".into(),
            queue: "support".into(),
            owner: Some("alice".into()),
            mode: DialMode::CustomerFirst,
            scheduled_at: None,
            due_at: 1_795_000_000_000,
            timezone: "America/New_York".into(),
            attempts: 1,
            max_attempts: 3,
            last_outcome: None,
            origin: Origin::Api,
            notes: None,
            interaction_id: None,
            caller_id: None,
            created_at: 1_794_990_000_000,
            updated_at: 1_794_990_000_000,
            first_due_at: 1_795_000_000_000,
            owner_until: None,
            end_reason: None,
            when: Some("tomorrow 10am".into()),
            when_resolution: None,
            skipped_by: None,
            caller_name: None,
            reason: None,
            confidence: None,
            owners: Vec::new(),
            owner_mode: Default::default(),
            timezone_source: None,
            channel: Channel::Voice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_and_rejects_other_shapes() {
        for v in [0u64, 1, u64::MAX, 0x1234_5678_9abc_def0] {
            let id = CallbackId(v);
            let s = id.to_string();
            assert_eq!(s.len(), 16);
            assert_eq!(CallbackId::parse(&s), Some(id), "{s}");
        }
        for bad in ["", "cb_", "cb_zzzzzzzzzzzzz", "CB_0000000000000", "cb_000000000000", "cb_00000000000000", "cb_000000000000u", "cb_g000000000000"] {
            assert_eq!(CallbackId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_and_codes_are_stable() {
        assert_eq!(Status::InProgress.as_str(), "in_progress");
        assert_eq!(serde_json::to_string(&Status::InProgress).unwrap(), "\"in_progress\"");
        assert_eq!(serde_json::to_string(&Outcome::AgentNoAnswer).unwrap(), "\"agent_no_answer\"");
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_string(o).unwrap(), format!("\"{}\"", o.as_str()));
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(*o));
        }
        for o in Origin::ALL.iter().chain([].iter()) {
            assert_eq!(serde_json::to_string(o).unwrap(), format!("\"{}\"", o.as_str()));
        }
        for r in EndReason::ALL {
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{}\"", r.as_str()));
        }
    }
}
