//! The calls redial is handling now, as booking a callback sees them
//! (a callback booked from a live call takes its defaults).
//!
//! `POST /v1/callbacks` with an `interaction_id` asks [`LiveCalls::lookup`];
//! when it names a live call, the call supplies the defaults (phone, queue,
//! `owner: "me"` = its agent, due in 30 min) and at most one active callback
//! may be booked for it. The dialler and the inbound handler implement the
//! trait; [`NoLiveCalls`] is the implementation for a process without them.

/// A call in progress, as far as booking a callback needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCall {
    /// The customer's number (E.164).
    pub phone: String,
    /// The queue the call belongs to.
    pub queue: String,
    /// The agent on the call, if one is connected.
    pub agent: Option<String>,
}

/// Looks up live calls by interaction id. Called on the request path for
/// every create that carries an `interaction_id`: it must not block (a map
/// lookup under a short lock).
pub trait LiveCalls: Send + Sync {
    fn lookup(&self, interaction_id: &str) -> Option<LiveCall>;
}

/// No calls are live: every `interaction_id` is just stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLiveCalls;

impl LiveCalls for NoLiveCalls {
    fn lookup(&self, _: &str) -> Option<LiveCall> {
        None
    }
}
