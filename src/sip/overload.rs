//! The endpoint's overload state, sans-IO: the driver samples its load
//! (transactions at work, memory held by completed transactions kept for
//! retransmissions, call legs in set-up, messages waiting) at most every
//! [`SAMPLE_EVERY`] and asks, per new INVITE or REGISTER, whether to admit it.
//! Above any limit the answer is 503 with `Retry-After` (RFC 3261 §21.5.4)
//! until every measure is back under `resume_at` of its limit; the queue counts
//! once it has stayed full for [`QUEUE_GRACE`]. Call legs in set-up are a cap on
//! new INVITEs instead, not a state: each sample admits as many new INVITEs as the
//! cap leaves room for, so a flood is served at the rate set-ups complete rather
//! than refused whole until they drain. Sampling, not counting per request, keeps
//! the check O(1) on the hot path.
//!
//! A refusal must cost far less than a call served, or refusing a flood takes the
//! capacity that serving needed: at 4× the sustainable rate, three refusals per call
//! served. So while the endpoint is overloaded, or while received messages wait longer
//! than `max_invite_delay` for it, new INVITEs over UDP are answered 503 by the receive
//! tasks from the raw datagram ([`Gate`], read there), with no decoding, queueing or
//! transaction; the wait is kept short enough that admitted calls are answered before
//! their senders retransmit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::OverloadConfig;
use crate::sip::stats::{Outcome, SipStats};
use crate::sip::transaction::Role;

/// How often the driver measures its load.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How long the queue must stay at its limit before it counts: half of T1
/// (RFC 3261 §17.1.1.1, 500 ms). A backlog that drains sooner is answered
/// before the senders retransmit, so refusing work for it would only turn
/// a scheduling hiccup at tens of thousands of messages/s into 503s.
pub const QUEUE_GRACE: Duration = Duration::from_millis(250);

/// Messages queued behind a late one for it to count as a backlog: one batch's worth.
/// A few messages that waited because the endpoint task was not scheduled for a while
/// (a loaded machine, a slow step) are a stall, not a flood; one batch clears them.
pub const BACKLOG_MIN: usize = 256;

/// One measurement of the endpoint's load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Transactions still at work (not the completed non-INVITE server
    /// transactions that only wait out Timer J).
    pub transactions: usize,
    /// Bytes held by those completed transactions: bounds memory under a flood
    /// without counting a sustainable rate of answered requests as overload.
    pub kept_bytes: usize,
    pub call_setups: usize,
    pub queued: usize,
}

#[derive(Debug)]
pub struct Overload {
    cfg: OverloadConfig,
    overloaded: bool,
    next_sample: Option<Instant>,
    /// Since when every sample found the queue at its limit; a backlog is
    /// overload once it has lasted [`QUEUE_GRACE`].
    queue_full_since: Option<Instant>,
    /// New requests refused since start.
    refused: u64,
    /// Call legs in set-up at the last sample, and new INVITEs admitted since.
    setups: usize,
    admitted: usize,
    /// Messages wait longer than `max_invite_delay` (until under half of it).
    backlogged: bool,
}

impl Overload {
    pub fn new(cfg: OverloadConfig) -> Self {
        Self { cfg, overloaded: false, next_sample: None, queue_full_since: None, refused: 0, setups: 0, admitted: 0, backlogged: false }
    }

    /// How long the oldest message of a batch waited for the endpoint, and how many wait
    /// behind it; returns `Some(new state)` when the backlog state changed. On above
    /// `max_invite_delay` with at least [`BACKLOG_MIN`] queued, off once the wait is under
    /// half of it, so one quick batch does not reopen the gate to a flood.
    pub fn waited(&mut self, waited: Duration, queued: usize) -> Option<bool> {
        let limit = self.cfg.max_invite_delay;
        let next = if self.backlogged { waited >= limit / 2 } else { waited > limit && queued >= BACKLOG_MIN };
        let changed = next != self.backlogged;
        self.backlogged = next;
        changed.then_some(next)
    }

    pub fn is_backlogged(&self) -> bool {
        self.backlogged
    }

    /// Whether a sample is due at `now`.
    pub fn sample_due(&self, now: Instant) -> bool {
        self.next_sample.is_none_or(|at| now >= at)
    }

    /// Takes a sample; returns `Some(new state)` when it changed.
    pub fn sample(&mut self, now: Instant, load: Load) -> Option<bool> {
        self.next_sample = Some(now + SAMPLE_EVERY);
        self.setups = load.call_setups;
        self.admitted = 0;
        let c = &self.cfg;
        self.queue_full_since = if load.queued >= c.max_queued { Some(self.queue_full_since.unwrap_or(now)) } else { None };
        // Entering overload on the queue needs it full for QUEUE_GRACE.
        let lasting = self.queue_full_since.is_some_and(|since| now.duration_since(since) >= QUEUE_GRACE);
        let queued = if self.overloaded || lasting { load.queued } else { 0 };
        let measures = [
            (load.transactions, c.max_transactions),
            (load.kept_bytes, c.max_kept_bytes),
            (queued, c.max_queued),
        ];
        let next = if self.overloaded {
            // Stay until every measure is under its resume mark.
            measures.iter().any(|&(v, max)| v as f64 >= max as f64 * c.resume_at)
        } else {
            measures.iter().any(|&(v, max)| v >= max)
        };
        let changed = next != self.overloaded;
        self.overloaded = next;
        changed.then_some(next)
    }

    /// `Some(Retry-After seconds)` when a new INVITE or REGISTER must be refused.
    pub fn refuse(&mut self) -> Option<u64> {
        if self.overloaded {
            self.refused += 1;
            Some(self.cfg.retry_after.as_secs())
        } else {
            None
        }
    }

    /// As [`Overload::refuse`] for a new INVITE, which is also refused while the
    /// legs in set-up (sampled, plus the INVITEs admitted since) are at `max_call_setups`.
    pub fn refuse_invite(&mut self) -> Option<u64> {
        if !self.overloaded && self.setups + self.admitted < self.cfg.max_call_setups {
            self.admitted += 1;
            return None;
        }
        self.refused += 1;
        Some(self.cfg.retry_after.as_secs())
    }

    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// What the receive tasks read to refuse a new INVITE before it is decoded: the
/// overload state and the backlog state, published by the endpoint task.
#[derive(Debug)]
pub struct Gate {
    overloaded: AtomicBool,
    backlogged: AtomicBool,
    retry_after: u64,
    /// User-Agent substrings (lower-case) of scanners whose requests are dropped, not
    /// answered; empty when `sip.guard.drop_scanners` is off.
    scanners: Vec<String>,
    stats: Arc<SipStats>,
}

impl Gate {
    pub fn new(cfg: &OverloadConfig, stats: Arc<SipStats>) -> Self {
        Self { overloaded: AtomicBool::new(false), backlogged: AtomicBool::new(false), retry_after: cfg.retry_after.as_secs(), scanners: Vec::new(), stats }
    }

    /// Refused INVITEs from these scanners (User-Agent substrings, lower-case) are
    /// dropped without an answer.
    pub fn with_scanners(mut self, scanners: Vec<String>) -> Self {
        self.scanners = scanners;
        self
    }

    pub fn scanners(&self) -> &[String] {
        &self.scanners
    }

    /// Counts a scanner's refused INVITE dropped on arrival, as the endpoint counts its own.
    pub fn dropped_scanner(&self) {
        self.stats.auth(crate::sip::stats::AuthCounter::Scanner);
    }

    pub fn set_overloaded(&self, on: bool) {
        self.overloaded.store(on, Ordering::Relaxed);
    }

    pub fn set_backlogged(&self, on: bool) {
        self.backlogged.store(on, Ordering::Relaxed);
    }

    /// The `Retry-After` of a 503, in seconds.
    pub fn retry_after(&self) -> u64 {
        self.retry_after
    }

    /// `Some(Retry-After seconds)` while a new INVITE must be refused on arrival.
    pub fn refuse_invite(&self) -> Option<u64> {
        (self.overloaded.load(Ordering::Relaxed) || self.backlogged.load(Ordering::Relaxed)).then_some(self.retry_after)
    }

    /// Counts a 503 sent on arrival, as the endpoint counts its own (a retransmitted
    /// INVITE answered again counts again: nothing is kept to tell).
    pub fn refused_invite(&self) {
        self.stats.overload_refused();
        self.stats.record(Role::Server, &rsip::Method::Invite, Outcome::Status(503));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OverloadConfig {
        OverloadConfig { max_transactions: 100, max_kept_bytes: 10_000, max_call_setups: 10, max_queued: 50, retry_after: Duration::from_secs(7), resume_at: 0.8, max_invite_delay: Duration::from_millis(100) }
    }

    #[test]
    fn refuses_above_any_limit_and_resumes_only_under_every_resume_mark() {
        let t0 = Instant::now();
        let mut o = Overload::new(cfg());
        assert!(o.sample_due(t0));
        assert_eq!(o.sample(t0, Load { transactions: 99, call_setups: 9, queued: 49, ..Load::default() }), None);
        assert_eq!(o.refuse(), None);
        assert!(!o.sample_due(t0 + SAMPLE_EVERY / 2), "sampled at most every SAMPLE_EVERY");
        let t1 = t0 + SAMPLE_EVERY;
        assert_eq!(o.sample(t1, Load { transactions: 100, call_setups: 0, queued: 0, ..Load::default() }), Some(true), "one measure at its limit");
        assert_eq!(o.refuse(), Some(7));
        // Under the limit but over 80 % of it: still refusing (no flapping).
        assert_eq!(o.sample(t1 + SAMPLE_EVERY, Load { transactions: 85, call_setups: 0, queued: 0, ..Load::default() }), None);
        assert!(o.is_overloaded());
        assert_eq!(o.sample(t1 + 2 * SAMPLE_EVERY, Load { transactions: 79, call_setups: 7, queued: 39, ..Load::default() }), Some(false));
        assert_eq!(o.refuse(), None);
        assert_eq!(o.refused(), 1);
    }

    #[test]
    fn a_queue_backlog_alone_is_overload_once_it_lasts_half_of_t1() {
        let t0 = Instant::now();
        let mut o = Overload::new(cfg());
        let full = Load { queued: 50, ..Load::default() };
        assert_eq!(o.sample(t0, full), None, "one sample: a burst that may drain");
        assert_eq!(o.sample(t0 + SAMPLE_EVERY, full), None, "still within the grace");
        assert_eq!(o.sample(t0 + 2 * SAMPLE_EVERY, Load { queued: 10, ..Load::default() }), None, "it drained");
        let t1 = t0 + 3 * SAMPLE_EVERY;
        assert_eq!(o.sample(t1, full), None, "full again: the grace starts over");
        assert_eq!(o.sample(t1 + QUEUE_GRACE - Duration::from_millis(1), full), None);
        assert_eq!(o.sample(t1 + QUEUE_GRACE, full), Some(true), "full for the whole grace: overload");
        let t2 = t1 + QUEUE_GRACE;
        assert_eq!(o.sample(t2 + SAMPLE_EVERY, Load { queued: 45, ..Load::default() }), None, "over the resume mark");
        assert_eq!(o.sample(t2 + 2 * SAMPLE_EVERY, Load { queued: 39, ..Load::default() }), Some(false));
    }

    #[test]
    fn kept_responses_count_by_memory_not_by_transaction() {
        let t0 = Instant::now();
        let mut o = Overload::new(cfg());
        // Far more completed transactions than `max_transactions` would allow, in less memory
        // than `max_kept_bytes`: a sustainable rate of answered requests is not overload.
        assert_eq!(o.sample(t0, Load { transactions: 5, kept_bytes: 9_999, ..Load::default() }), None);
        assert_eq!(o.refuse(), None);
        // A flood that fills the memory bound is.
        let t1 = t0 + SAMPLE_EVERY;
        assert_eq!(o.sample(t1, Load { transactions: 5, kept_bytes: 10_000, ..Load::default() }), Some(true));
        assert_eq!(o.refuse(), Some(7));
        assert_eq!(o.sample(t1 + SAMPLE_EVERY, Load { kept_bytes: 8_000, ..Load::default() }), None, "80 % is not yet under the resume mark");
        assert_eq!(o.sample(t1 + 2 * SAMPLE_EVERY, Load { kept_bytes: 7_999, ..Load::default() }), Some(false));
    }

    #[test]
    fn call_set_ups_cap_new_invites_per_sample_without_refusing_registrations() {
        let t0 = Instant::now();
        let mut o = Overload::new(cfg());
        assert_eq!(o.sample(t0, Load { call_setups: 8, ..Load::default() }), None, "set-ups are no overload state");
        assert_eq!(o.refuse_invite(), None);
        assert_eq!(o.refuse_invite(), None);
        assert_eq!(o.refuse_invite(), Some(7), "8 in set-up and 2 admitted since reach the cap of 10");
        assert_eq!(o.refuse(), None, "a REGISTER is still admitted");
        assert_eq!(o.sample(t0 + SAMPLE_EVERY, Load { call_setups: 10, ..Load::default() }), None);
        assert_eq!(o.refuse_invite(), Some(7), "at the cap");
        assert_eq!(o.sample(t0 + 2 * SAMPLE_EVERY, Load { call_setups: 9, ..Load::default() }), None);
        assert_eq!(o.refuse_invite(), None, "one completed: one more admitted at once, no resume mark to wait for");
        assert_eq!(o.refused(), 2);
    }

    #[test]
    fn a_wait_over_max_invite_delay_is_a_backlog_until_under_half_of_it() {
        let mut o = Overload::new(cfg());
        let g = Gate::new(&cfg(), Arc::new(SipStats::new()));
        let q = BACKLOG_MIN;
        assert_eq!(o.waited(Duration::from_millis(100), q), None, "at the limit is not over it");
        assert_eq!(g.refuse_invite(), None);
        assert_eq!(o.waited(Duration::from_secs(2), q - 1), None, "a stall with little behind it is no backlog");
        assert_eq!(o.waited(Duration::from_millis(101), q), Some(true));
        g.set_backlogged(true);
        assert_eq!(g.refuse_invite(), Some(7));
        assert_eq!(o.waited(Duration::from_millis(50), 0), None, "half of the limit: still backlogged");
        assert_eq!(o.waited(Duration::from_millis(49), q), Some(false));
        assert!(!o.is_backlogged());
        g.set_backlogged(false);
        g.set_overloaded(true);
        assert_eq!(g.refuse_invite(), Some(7), "the overload state refuses new INVITEs on arrival too");
        g.refused_invite();
        assert_eq!(g.stats.get(Role::Server, "INVITE", "5xx"), 1);
    }
}
