//! Call limits per trunk and per queue, enforced where the
//! scheduler reserves an agent.
//!
//! The gate wraps the agents' registry as the scheduler's
//! [`Availability`]: a callback whose trunk or queue is at its limit (too
//! many calls up, or too many new calls this second) gets no agent, so it
//! stays due and keeps its place in priority order exactly like a callback
//! waiting for a free agent. The gate decides on the scheduler's `now` and
//! reads no clock. When a call ends it wakes the scheduler; when only the
//! calls-per-second bucket holds callbacks back, it records when the next
//! token is due ([`Availability::take_retry_at`]) and the scheduler's driver
//! rounds again then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::agents::Registry;
use crate::clock::Millis;
use crate::config::{Config, LiveConfig};
use crate::scheduler::engine::Availability;

/// A limit of 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Limit {
    max_calls: u32,
    /// New calls per second; 0 = unlimited.
    max_cps: f64,
}

/// One call's token in a calls-per-second bucket, in the integer units the
/// bucket counts, so pacing on whole milliseconds is exact (no float drift
/// making a token due a millisecond late).
const TOKEN: i64 = 1_000_000;

impl Limit {
    /// The calls-per-second bucket, if any: units gained per ms, and its
    /// size (a burst of `max_cps` calls, at least one).
    fn bucket(&self) -> Option<(i64, i64)> {
        (self.max_cps > 0.0).then(|| {
            let per_ms = ((self.max_cps * (TOKEN / 1000) as f64).round() as i64).max(1);
            let size = (self.max_cps.max(1.0) * TOKEN as f64).round() as i64;
            (per_ms, size)
        })
    }
}

#[derive(Debug, Default)]
struct Usage {
    calls: u32,
    /// Calls-per-second bucket: units (see [`TOKEN`]) as of `at`.
    tokens: i64,
    at: Option<Millis>,
}

impl Usage {
    fn refill(&mut self, now: Millis, per_ms: i64, size: i64) {
        self.tokens = match self.at {
            // A `now` behind the last one adds nothing.
            Some(at) => self.tokens.saturating_add((now - at).max(0).saturating_mul(per_ms)).min(size),
            None => size,
        };
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
    }

    /// Whether one more call fits at `now`; if not, when the next token is
    /// due (`None` when only a call ending can make room).
    fn admits(&mut self, now: Millis, limit: Limit) -> Result<(), Option<Millis>> {
        if limit.max_calls > 0 && self.calls >= limit.max_calls {
            return Err(None);
        }
        let Some((per_ms, size)) = limit.bucket() else { return Ok(()) };
        self.refill(now, per_ms, size);
        if self.tokens < TOKEN {
            let at = self.at.unwrap_or(now);
            return Err(Some(at + (TOKEN - self.tokens + per_ms - 1) / per_ms));
        }
        Ok(())
    }

    fn take(&mut self, limit: Limit) {
        self.calls += 1;
        if limit.bucket().is_some() {
            self.tokens -= TOKEN;
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Usage>,
    trunks: HashMap<String, Usage>,
    /// Calls counted per agent reserved through the gate, by queue and the
    /// trunk counted then (a reload may move the queue to another): the
    /// scheduler releases by agent name.
    held: HashMap<String, Vec<(String, Option<String>)>>,
    /// The earliest time a refused callback's cps bucket has a token again,
    /// not yet taken by the driver.
    retry_at: Option<Millis>,
}

/// The scheduler's view of who can be called now.
pub struct Gate {
    agents: Arc<Registry>,
    /// Queues' and trunks' limits as the last reload left them, read per
    /// reservation; the calls already counted stay counted.
    cfg: LiveConfig,
    state: Mutex<State>,
}

/// `queue`'s own limit, and its trunk with the trunk's limit.
fn limits(cfg: &Config, queue: &str) -> (Limit, Option<(String, Limit)>) {
    let Some(q) = cfg.queue(queue) else { return (Limit::default(), None) };
    let trunk = q.profile.as_ref().and_then(|p| cfg.profiles.get(p)).map(|p| (p.name.clone(), Limit { max_calls: p.max_calls, max_cps: p.max_cps }));
    (Limit { max_calls: q.max_calls, max_cps: 0.0 }, trunk)
}

impl Gate {
    pub fn new(cfg: LiveConfig, agents: Arc<Registry>) -> Self {
        Self { agents, cfg, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls up in `queue` through the gate.
    pub fn calls_up(&self, queue: &str) -> u32 {
        self.lock().queues.get(queue).map_or(0, |u| u.calls)
    }

    /// A call reserved through the gate for `agent` in `queue` ended: its
    /// capacity is free again.
    pub fn call_ended(&self, agent: &str, queue: &str) {
        if self.free(agent, Some(queue)) {
            self.agents.wake();
        }
    }

    /// Gives back the capacity counted for one call of `agent` (in `queue`,
    /// else its latest); whether there was one.
    fn free(&self, agent: &str, queue: Option<&str>) -> bool {
        let mut st = self.lock();
        let Some(held) = st.held.get_mut(agent) else { return false };
        let Some(i) = (match queue {
            Some(q) => held.iter().position(|(h, _)| h == q),
            None => held.len().checked_sub(1),
        }) else {
            return false;
        };
        let (queue, trunk) = held.swap_remove(i);
        if held.is_empty() {
            st.held.remove(agent);
        }
        if let Some(u) = st.queues.get_mut(&queue) {
            u.calls = u.calls.saturating_sub(1);
        }
        if let Some(u) = trunk.and_then(|t| st.trunks.get_mut(&t)) {
            u.calls = u.calls.saturating_sub(1);
        }
        true
    }
}

impl Availability for Gate {
    fn reserve(&self, now: Millis, queue: &str, owner: Option<&str>) -> Option<String> {
        let (qlimit, trunk) = limits(&self.cfg.get(), queue);
        let trunk = trunk.as_ref();
        let mut st = self.lock();
        let q_ok = st.queues.entry(queue.to_string()).or_default().admits(now, qlimit);
        let t_ok = match trunk {
            Some((t, l)) => st.trunks.entry(t.clone()).or_default().admits(now, *l),
            None => Ok(()),
        };
        for r in [q_ok, t_ok] {
            if let Err(retry) = r {
                if let Some(t) = retry {
                    st.retry_at = Some(st.retry_at.map_or(t, |r| r.min(t)));
                }
                return None;
            }
        }
        let agent = self.agents.reserve(now, queue, owner)?;
        st.queues.get_mut(queue).expect("entry made above").take(qlimit);
        if let Some((t, l)) = trunk {
            st.trunks.get_mut(t).expect("entry made above").take(*l);
        }
        st.held.entry(agent.clone()).or_default().push((queue.to_string(), trunk.map(|(t, _)| t.clone())));
        Some(agent)
    }

    /// The scheduler could not hand the reservation over: free the agent
    /// and the capacity counted for it.
    fn release(&self, agent: &str) {
        self.free(agent, None);
        self.agents.release(agent);
    }

    fn take_retry_at(&self) -> Option<Millis> {
        self.lock().retry_at.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::config::{Agent, Queue};

    const T0: Millis = 1_000_000;

    fn setup(max_calls: u32, max_cps: f64, queue_max: u32) -> (Gate, Arc<Registry>) {
        let mut cfg = Config::defaults();
        let mut q = Queue::named("q");
        q.profile = Some("carrier".into());
        q.max_calls = queue_max;
        cfg.queues.push(q);
        let mut p = crate::sip::registration::tests::profile(300);
        p.name = "carrier".into();
        p.max_calls = max_calls;
        p.max_cps = max_cps;
        cfg.profiles.insert("carrier".into(), p);
        cfg.agents = (0..10).map(|i| Agent { id: format!("a{i}"), password: "pw".into(), queues: vec!["q".into()] }).collect();
        let reg = Arc::new(Registry::new(&cfg, Arc::new(FakeClock::new(T0))));
        for i in 0..10 {
            reg.registration_changed(&format!("a{i}"), vec![("sip:x@h".into(), i64::MAX)]);
        }
        (Gate::new(LiveConfig::new(Arc::new(cfg)), reg.clone()), reg)
    }

    #[test]
    fn trunk_call_limit_holds_until_a_call_ends() {
        let (g, reg) = setup(2, 0.0, 0);
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = woken.clone();
        reg.set_waker(move || {
            w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let a = g.reserve(T0, "q", None).unwrap();
        let _b = g.reserve(T0, "q", None).unwrap();
        assert_eq!(g.reserve(T0, "q", None), None, "the trunk carries two calls");
        assert_eq!(g.take_retry_at(), None, "only a call ending makes room");
        g.call_ended(&a, "q");
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1, "a call ending wakes the scheduler");
        assert!(g.reserve(T0, "q", None).is_some());
        assert_eq!(g.calls_up("q"), 2);
    }

    #[test]
    fn queue_limit_and_release_give_capacity_back() {
        let (g, reg) = setup(0, 0.0, 1);
        let a = g.reserve(T0, "q", None).unwrap();
        assert_eq!(g.reserve(T0, "q", None), None);
        g.release(&a);
        assert_eq!(reg.get(&a).unwrap().state, crate::agents::AgentState::Available);
        assert!(g.reserve(T0, "q", None).is_some());
    }

    #[test]
    fn calls_per_second_pace_by_the_given_now() {
        let (g, _) = setup(0, 2.0, 0);
        assert!(g.reserve(T0, "q", None).is_some());
        assert!(g.reserve(T0, "q", None).is_some());
        assert_eq!(g.reserve(T0, "q", None), None, "a burst of 2 per second");
        assert_eq!(g.take_retry_at(), Some(T0 + 500), "one token every 500 ms");
        assert_eq!(g.take_retry_at(), None, "taken once");
        assert_eq!(g.reserve(T0 + 499, "q", None), None);
        assert_eq!(g.take_retry_at(), Some(T0 + 500));
        assert_eq!(g.reserve(T0 + 100, "q", None), None, "an earlier now adds no tokens");
        assert_eq!(g.take_retry_at(), Some(T0 + 500));
        assert!(g.reserve(T0 + 500, "q", None).is_some());
        assert_eq!(g.reserve(T0 + 500, "q", None), None);
        assert_eq!(g.take_retry_at(), Some(T0 + 1_000));
        // A long pause refills only the burst.
        assert!(g.reserve(T0 + 60_000, "q", None).is_some());
        assert!(g.reserve(T0 + 60_000, "q", None).is_some());
        assert_eq!(g.reserve(T0 + 60_000, "q", None), None);
        assert_eq!(g.take_retry_at(), Some(T0 + 60_500));
    }

    #[test]
    fn a_rate_below_one_per_second_bursts_one_call() {
        let (g, _) = setup(0, 0.5, 0);
        assert!(g.reserve(T0, "q", None).is_some());
        assert_eq!(g.reserve(T0, "q", None), None);
        assert_eq!(g.take_retry_at(), Some(T0 + 2_000));
        assert_eq!(g.reserve(T0 + 1_999, "q", None), None);
        assert!(g.reserve(T0 + 2_000, "q", None).is_some());
    }
}
