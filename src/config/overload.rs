//! `[sip.overload]`: when the endpoint refuses new work. Above any limit,
//! new INVITEs and REGISTERs are answered 503 with `Retry-After` (RFC 3261
//! §21.5.4) while calls already set up, in-dialog requests, OPTIONS and the
//! HTTP API go on. The state is left once every measure is back under
//! `resume_at` of its limit, so the endpoint does not flap at the edge.

use std::time::Duration;

use serde::Deserialize;

use super::problem::{parse_duration, Collector};

/// The validated `[sip.overload]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct OverloadConfig {
    /// `max_transactions`: live SIP transactions still at work — not yet
    /// answered, or retransmitting — (default 300000). Completed non-INVITE
    /// server transactions, kept 32 s only to answer retransmissions, are
    /// bounded by `max_kept_bytes` instead.
    pub max_transactions: usize,
    /// `max_kept_bytes`: memory held by completed non-INVITE server
    /// transactions, their stored responses and bookkeeping (default 2 GiB:
    /// about 1 kB per transaction, two per digest registration, so about
    /// 32,000 registrations/s for 32 s).
    pub max_kept_bytes: usize,
    /// `max_call_setups`: call legs ringing or answering, not yet confirmed (default 2000).
    /// A cap on new INVITEs (the legs sampled plus the INVITEs admitted since), not a
    /// measure of the overload state: REGISTERs are not refused for it.
    pub max_call_setups: usize,
    /// `max_queued`: received messages waiting for the endpoint (default 4000).
    pub max_queued: usize,
    /// `retry_after`: the `Retry-After` of a 503, whole seconds (default 5s).
    pub retry_after: Duration,
    /// `resume_at`: the share of each limit under which work is admitted again (default 0.8).
    pub resume_at: f64,
    /// `max_invite_delay`: while received messages wait longer than this for the endpoint
    /// (the oldest of a batch), new INVITEs over UDP are answered 503 by the receive tasks
    /// before they are decoded or queued, until the wait is back under half of it
    /// (default 100ms, a fifth of T1: the backlog is cut before senders retransmit).
    pub max_invite_delay: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self { max_transactions: 300_000, max_kept_bytes: 1 << 31, max_call_setups: 2_000, max_queued: 4_000, retry_after: Duration::from_secs(5), resume_at: 0.8, max_invite_delay: Duration::from_millis(100) }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverload {
    max_transactions: Option<usize>,
    max_kept_bytes: Option<usize>,
    max_call_setups: Option<usize>,
    max_queued: Option<usize>,
    retry_after: Option<String>,
    resume_at: Option<f64>,
    max_invite_delay: Option<String>,
}

pub(super) fn validate(raw: RawOverload, c: &mut Collector<'_>) -> OverloadConfig {
    let mut o = OverloadConfig::default();
    for (key, v, slot) in [
        ("sip.overload.max_transactions", raw.max_transactions, &mut o.max_transactions),
        ("sip.overload.max_kept_bytes", raw.max_kept_bytes, &mut o.max_kept_bytes),
        ("sip.overload.max_call_setups", raw.max_call_setups, &mut o.max_call_setups),
        ("sip.overload.max_queued", raw.max_queued, &mut o.max_queued),
    ] {
        match v {
            Some(0) => c.push(key, "must be at least 1"),
            Some(n) => *slot = n,
            None => {}
        }
    }
    if let Some(d) = raw.retry_after.as_deref().and_then(|v| c.check("sip.overload.retry_after", parse_duration(v))) {
        if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
            c.push("sip.overload.retry_after", "must be a whole number of seconds, at least 1s");
        } else {
            o.retry_after = d;
        }
    }
    if let Some(d) = raw.max_invite_delay.as_deref().and_then(|v| c.check("sip.overload.max_invite_delay", parse_duration(v))) {
        if d < Duration::from_millis(1) {
            c.push("sip.overload.max_invite_delay", "must be at least 1ms");
        } else {
            o.max_invite_delay = d;
        }
    }
    if let Some(r) = raw.resume_at {
        if r > 0.0 && r <= 1.0 {
            o.resume_at = r;
        } else {
            c.push("sip.overload.resume_at", "must be more than 0 and at most 1");
        }
    }
    o
}
