//! Throttling of failed digest attempts, per source address and per account,
//! sans-IO (every call takes `now`).
//!
//! Rules (the keys are `[sip.guard]`, see [`GuardConfig`]):
//! - Each failed attempt counts against its source IP and its account (the
//!   user it tried). The first `free_failures` of a record are answered at
//!   once; the n-th after those is held `base_delay · 2^(n−1)`, at most
//!   `max_delay`, after the previous held answer of the same record (so
//!   parallel guesses are answered one delay apart, not all at once).
//! - At `block_after` failures the record is blocked for `block_for`. A
//!   blocked source has its REGISTERs dropped unanswered. A blocked account
//!   drops attempts only from sources that themselves failed (on anything):
//!   the right password from a clean address still works, so an attacker
//!   cannot lock an agent out from elsewhere.
//! - A record with no failure for `forget_after` (and no block running) is
//!   forgotten; a success from a source forgets that source.
//! - Each table holds at most `max_tracked` records: when full, expired
//!   records go first, then the one with the oldest failure.
//!
//! Only failures and admissions of sources already on record touch the
//! tables; while both are empty, [`AuthGuard::admit`] is two length checks.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::GuardConfig;

/// What to do with an incoming authenticated request before verifying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Verify,
    /// Blocked: drop it, unanswered.
    Drop,
}

/// What to do with the answer to a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// Answer now.
    None,
    /// Hold the answer until then.
    Hold(Instant),
    /// This failure started a block: drop the answer.
    Block,
}

#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    last_failure: Instant,
    /// The earliest time the next held answer may go out.
    next_slot: Instant,
    blocked_until: Option<Instant>,
}

impl Record {
    fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|t| now < t)
    }

    fn expired(&self, now: Instant, forget_after: Duration) -> bool {
        !self.blocked(now) && now.saturating_duration_since(self.last_failure) >= forget_after
    }
}

/// Per-source and per-account failure records.
#[derive(Debug)]
pub struct AuthGuard {
    cfg: GuardConfig,
    sources: HashMap<IpAddr, Record>,
    accounts: HashMap<String, Record>,
}

impl AuthGuard {
    pub fn new(cfg: GuardConfig) -> Self {
        Self { cfg, sources: HashMap::new(), accounts: HashMap::new() }
    }

    /// Before verifying credentials for `user` (None: no credentials) from `source`.
    pub fn admit(&self, now: Instant, source: IpAddr, user: Option<&str>) -> Admission {
        if self.sources.is_empty() {
            return Admission::Verify;
        }
        let Some(src) = self.sources.get(&source).filter(|r| !r.expired(now, self.cfg.forget_after)) else {
            return Admission::Verify;
        };
        if src.blocked(now) {
            return Admission::Drop;
        }
        if user.and_then(|u| self.accounts.get(u)).is_some_and(|a| a.blocked(now)) {
            return Admission::Drop;
        }
        Admission::Verify
    }

    /// Whether `source` is blocked at `now` (for a cheap check before any parsing).
    pub fn source_blocked(&self, now: Instant, source: IpAddr) -> bool {
        !self.sources.is_empty() && self.sources.get(&source).is_some_and(|r| r.blocked(now))
    }

    /// Records a failed attempt for `user` from `source`; says what to do with its answer.
    pub fn failure(&mut self, now: Instant, source: IpAddr, user: &str) -> Penalty {
        let cfg = &self.cfg;
        let a = bump(&mut self.sources, source, now, cfg);
        let b = if user.is_empty() { Penalty::None } else { bump_str(&mut self.accounts, user, now, cfg) };
        match (a, b) {
            (Penalty::Block, _) => Penalty::Block,
            // An account block drops only answers to sources that failed, which this one now has.
            (_, Penalty::Block) => Penalty::Block,
            (Penalty::Hold(x), Penalty::Hold(y)) => Penalty::Hold(x.max(y)),
            (Penalty::Hold(x), Penalty::None) | (Penalty::None, Penalty::Hold(x)) => Penalty::Hold(x),
            (Penalty::None, Penalty::None) => Penalty::None,
        }
    }

    /// A successful authentication from `source`: its record is forgotten.
    pub fn success(&mut self, source: IpAddr) {
        if !self.sources.is_empty() {
            self.sources.remove(&source);
        }
    }

    /// Records currently held (sources, accounts).
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.len(), self.accounts.len())
    }

    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }
}

fn bump(map: &mut HashMap<IpAddr, Record>, key: IpAddr, now: Instant, cfg: &GuardConfig) -> Penalty {
    make_room(map, &key, now, cfg);
    let rec = map.entry(key).or_insert_with(|| fresh(now));
    step(rec, now, cfg)
}

fn bump_str(map: &mut HashMap<String, Record>, key: &str, now: Instant, cfg: &GuardConfig) -> Penalty {
    if !map.contains_key(key) {
        make_room(map, key, now, cfg);
        map.insert(key.to_string(), fresh(now));
    }
    let rec = map.get_mut(key).expect("inserted above");
    step(rec, now, cfg)
}

fn fresh(now: Instant) -> Record {
    Record { failures: 0, last_failure: now, next_slot: now, blocked_until: None }
}

/// Keeps `map` under `max_tracked` before `key` is inserted.
fn make_room<K: Hash + Eq + Clone + std::borrow::Borrow<Q>, Q: Hash + Eq + ?Sized>(
    map: &mut HashMap<K, Record>,
    key: &Q,
    now: Instant,
    cfg: &GuardConfig,
) {
    if map.len() < cfg.max_tracked || map.contains_key(key) {
        return;
    }
    map.retain(|_, r| !r.expired(now, cfg.forget_after));
    if map.len() >= cfg.max_tracked {
        if let Some(oldest) = map.iter().min_by_key(|(_, r)| r.last_failure).map(|(k, _)| k.clone()) {
            map.remove::<K>(&oldest);
        }
    }
}

fn step(rec: &mut Record, now: Instant, cfg: &GuardConfig) -> Penalty {
    if rec.expired(now, cfg.forget_after) {
        *rec = fresh(now);
    }
    rec.failures = rec.failures.saturating_add(1);
    rec.last_failure = now;
    if rec.failures >= cfg.block_after {
        rec.blocked_until = Some(now + cfg.block_for);
        return Penalty::Block;
    }
    if rec.failures <= cfg.free_failures {
        return Penalty::None;
    }
    let n = rec.failures - cfg.free_failures - 1;
    let delay = cfg.base_delay.saturating_mul(1u32 << n.min(20)).min(cfg.max_delay);
    let at = rec.next_slot.max(now) + delay;
    rec.next_slot = at;
    Penalty::Hold(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig {
            free_failures: 2,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            block_after: 7,
            block_for: Duration::from_secs(60),
            forget_after: Duration::from_secs(120),
            max_tracked: 8,
            ..GuardConfig::default()
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn delays_grow_exponentially_then_block() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(cfg());
        let s = Duration::from_secs;
        // Sequential guesses, each sent when the previous answer arrived.
        let mut now = t0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            assert_eq!(g.admit(now, ip(1), Some("alice")), Admission::Verify);
            let p = g.failure(now, ip(1), "alice");
            seen.push(p);
            if let Penalty::Hold(at) = p {
                now = at;
            }
        }
        assert_eq!(
            seen,
            vec![
                Penalty::None,
                Penalty::None,
                Penalty::Hold(t0 + s(1)),
                Penalty::Hold(t0 + s(3)),
                Penalty::Hold(t0 + s(7)),
                Penalty::Hold(t0 + s(11)), // capped at max_delay
                Penalty::Block,
            ]
        );
        // Blocked: dropped, whatever the user, until block_for has passed.
        assert_eq!(g.admit(now, ip(1), Some("bob")), Admission::Drop);
        assert_eq!(g.admit(now, ip(1), None), Admission::Drop);
        assert!(g.source_blocked(now + s(59), ip(1)));
        assert!(!g.source_blocked(now + s(60), ip(1)));
        // Another address may still try alice: it is verified (the right
        // password then works), though the account is blocked too.
        assert_eq!(g.admit(now, ip(2), Some("alice")), Admission::Verify);
        // But once that address failed as well, it is dropped for alice only.
        assert_eq!(g.failure(now, ip(2), "alice"), Penalty::Block);
        assert_eq!(g.admit(now, ip(2), Some("alice")), Admission::Drop);
        assert_eq!(g.admit(now, ip(2), Some("bob")), Admission::Verify);
    }

    #[test]
    fn parallel_failures_are_answered_one_delay_apart() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(GuardConfig { free_failures: 0, max_delay: Duration::from_secs(1), block_after: 100, ..cfg() });
        let holds: Vec<_> = (0..4).map(|_| g.failure(t0, ip(1), "")).collect();
        let s = Duration::from_secs;
        assert_eq!(holds, vec![Penalty::Hold(t0 + s(1)), Penalty::Hold(t0 + s(2)), Penalty::Hold(t0 + s(3)), Penalty::Hold(t0 + s(4))]);
    }

    #[test]
    fn records_are_forgotten_after_quiet_time_and_on_success() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(cfg());
        for _ in 0..3 {
            g.failure(t0, ip(1), "alice");
        }
        // After forget_after without failure, the count starts again.
        let later = t0 + Duration::from_secs(120);
        assert_eq!(g.failure(later, ip(1), "alice"), Penalty::None);
        // A success forgets the source (not the account).
        g.success(ip(1));
        assert_eq!(g.tracked(), (0, 1));
        // A block lasts block_for even beyond forget_after; then a quiet
        // record is forgotten and the count starts over.
        let mut g = AuthGuard::new(GuardConfig { block_for: Duration::from_secs(300), ..cfg() });
        let mut p = Penalty::None;
        for _ in 0..7 {
            p = g.failure(t0, ip(3), "carol");
        }
        assert_eq!(p, Penalty::Block);
        assert_eq!(g.admit(t0 + Duration::from_secs(200), ip(3), None), Admission::Drop);
        assert_eq!(g.admit(t0 + Duration::from_secs(300), ip(3), None), Admission::Verify);
        assert_eq!(g.failure(t0 + Duration::from_secs(300), ip(3), "carol"), Penalty::None);
        // A block shorter than forget_after: the count is kept, so the next
        // failure after the block blocks again at once.
        let mut g = AuthGuard::new(cfg());
        for _ in 0..7 {
            g.failure(t0, ip(4), "dave");
        }
        let after = t0 + Duration::from_secs(60);
        assert_eq!(g.admit(after, ip(4), Some("dave")), Admission::Verify);
        assert_eq!(g.failure(after, ip(4), "dave"), Penalty::Block);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(cfg());
        for i in 0..200u32 {
            let now = t0 + Duration::from_millis(i.into());
            g.failure(now, IpAddr::from([10, 1, (i >> 8) as u8, i as u8]), &format!("user{i}"));
            let (s, a) = g.tracked();
            assert!(s <= 8 && a <= 8, "{s} {a}");
        }
        // The newest records are the ones kept.
        let now = t0 + Duration::from_millis(200);
        assert!(g.sources.contains_key(&IpAddr::from([10, 1, 0, 199])));
        assert!(!g.sources.contains_key(&IpAddr::from([10, 1, 0, 0])));
        assert_eq!(g.admit(now, IpAddr::from([10, 1, 0, 199]), Some("user199")), Admission::Verify);
    }

    #[test]
    fn admit_is_free_while_nothing_failed() {
        let g = AuthGuard::new(cfg());
        assert_eq!(g.admit(Instant::now(), ip(1), Some("alice")), Admission::Verify);
        assert_eq!(g.tracked(), (0, 0));
    }
}
