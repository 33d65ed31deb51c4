//! Call limits per trunk and per queue (issue 6 §6), enforced where the
//! scheduler reserves an agent.
//!
//! The gate wraps the agents' registry as the scheduler's
//! [`Availability`]: a callback whose trunk or queue is at its limit (too
//! many calls up, or too many new calls this second) gets no agent, so it
//! stays due and keeps its place in priority order exactly like a callback
//! waiting for a free agent. When capacity returns (a call ends, the
//! calls-per-second bucket refills) the gate wakes the scheduler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agents::Registry;
use crate::config::Config;
use crate::scheduler::engine::Availability;

/// A limit of 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Limit {
    max_calls: u32,
    /// New calls per second; 0 = unlimited.
    max_cps: f64,
}

#[derive(Debug, Default)]
struct Usage {
    calls: u32,
    /// Token bucket for new calls per second: tokens, as of `at`.
    tokens: f64,
    at: Option<Instant>,
}

impl Usage {
    fn refill(&mut self, now: Instant, cps: f64) {
        if cps <= 0.0 {
            return;
        }
        let burst = cps.max(1.0);
        self.tokens = match self.at {
            Some(at) => (self.tokens + now.saturating_duration_since(at).as_secs_f64() * cps).min(burst),
            None => burst,
        };
        self.at = Some(now);
    }

    /// Whether one more call fits; if not, how long until a token is due
    /// (`None` when only a call ending can make room).
    fn admits(&mut self, now: Instant, limit: Limit) -> Result<(), Option<Duration>> {
        if limit.max_calls > 0 && self.calls >= limit.max_calls {
            return Err(None);
        }
        self.refill(now, limit.max_cps);
        if limit.max_cps > 0.0 && self.tokens < 1.0 {
            return Err(Some(Duration::from_secs_f64((1.0 - self.tokens) / limit.max_cps)));
        }
        Ok(())
    }

    fn take(&mut self, limit: Limit) {
        self.calls += 1;
        if limit.max_cps > 0.0 {
            self.tokens -= 1.0;
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Usage>,
    trunks: HashMap<String, Usage>,
    /// Calls counted per agent reserved through the gate, by queue: the
    /// scheduler releases by agent name.
    held: HashMap<String, Vec<String>>,
}

/// The scheduler's view of who can be called now.
pub struct Gate {
    agents: Arc<Registry>,
    queue_limits: HashMap<String, Limit>,
    /// queue → (trunk, its limit)
    queue_trunk: HashMap<String, (String, Limit)>,
    state: Mutex<State>,
    /// A wake-up for a refilling cps bucket is already on its way.
    wake_pending: Arc<AtomicBool>,
    /// The scheduler's writer thread calls in without a runtime context.
    runtime: tokio::runtime::Handle,
}

impl Gate {
    pub fn new(cfg: &Config, agents: Arc<Registry>, runtime: tokio::runtime::Handle) -> Self {
        let mut queue_limits = HashMap::new();
        let mut queue_trunk = HashMap::new();
        for q in &cfg.queues {
            queue_limits.insert(q.name.clone(), Limit { max_calls: q.max_calls, max_cps: 0.0 });
            if let Some(p) = q.profile.as_ref().and_then(|p| cfg.profiles.get(p)) {
                queue_trunk.insert(q.name.clone(), (p.name.clone(), Limit { max_calls: p.max_calls, max_cps: p.max_cps }));
            }
        }
        Self { agents, queue_limits, queue_trunk, state: Mutex::new(State::default()), wake_pending: Arc::default(), runtime }
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
            Some(q) => held.iter().position(|h| h == q),
            None => held.len().checked_sub(1),
        }) else {
            return false;
        };
        let queue = held.swap_remove(i);
        if held.is_empty() {
            st.held.remove(agent);
        }
        if let Some(u) = st.queues.get_mut(&queue) {
            u.calls = u.calls.saturating_sub(1);
        }
        if let Some(u) = self.queue_trunk.get(&queue).and_then(|(t, _)| st.trunks.get_mut(t)) {
            u.calls = u.calls.saturating_sub(1);
        }
        true
    }

    /// Wakes the scheduler after `after`, once (a refilled cps bucket).
    fn wake_later(&self, after: Duration) {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let (agents, pending) = (self.agents.clone(), self.wake_pending.clone());
        self.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            pending.store(false, Ordering::Release);
            agents.wake();
        });
    }
}

impl Availability for Gate {
    fn reserve(&self, queue: &str, owner: Option<&str>) -> Option<String> {
        let now = Instant::now();
        let qlimit = self.queue_limits.get(queue).copied().unwrap_or_default();
        let trunk = self.queue_trunk.get(queue);
        let mut st = self.lock();
        let q_ok = st.queues.entry(queue.to_string()).or_default().admits(now, qlimit);
        let t_ok = match trunk {
            Some((t, l)) => st.trunks.entry(t.clone()).or_default().admits(now, *l),
            None => Ok(()),
        };
        for r in [q_ok, t_ok] {
            if let Err(wait) = r {
                if let Some(w) = wait {
                    self.wake_later(w);
                }
                return None;
            }
        }
        let agent = self.agents.reserve(queue, owner)?;
        st.queues.get_mut(queue).expect("entry made above").take(qlimit);
        if let Some((t, l)) = trunk {
            st.trunks.get_mut(t).expect("entry made above").take(*l);
        }
        st.held.entry(agent.clone()).or_default().push(queue.to_string());
        Some(agent)
    }

    /// The scheduler could not hand the reservation over: free the agent
    /// and the capacity counted for it.
    fn release(&self, agent: &str) {
        self.free(agent, None);
        self.agents.release(agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::config::{Agent, Queue};

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
        let reg = Arc::new(Registry::new(&cfg, Arc::new(FakeClock::new(1_000))));
        for i in 0..10 {
            reg.registration_changed(&format!("a{i}"), vec![("sip:x@h".into(), i64::MAX)]);
        }
        (Gate::new(&cfg, reg.clone(), tokio::runtime::Handle::current()), reg)
    }

    #[tokio::test]
    async fn trunk_call_limit_holds_until_a_call_ends() {
        let (g, _) = setup(2, 0.0, 0);
        let a = g.reserve("q", None).unwrap();
        let _b = g.reserve("q", None).unwrap();
        assert_eq!(g.reserve("q", None), None, "the trunk carries two calls");
        g.call_ended(&a, "q");
        assert!(g.reserve("q", None).is_some());
        assert_eq!(g.calls_up("q"), 2);
    }

    #[tokio::test]
    async fn queue_limit_and_release_give_capacity_back() {
        let (g, reg) = setup(0, 0.0, 1);
        let a = g.reserve("q", None).unwrap();
        assert_eq!(g.reserve("q", None), None);
        g.release(&a);
        assert_eq!(reg.get(&a).unwrap().state, crate::agents::AgentState::Available);
        assert!(g.reserve("q", None).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_per_second_refill_and_wake_the_scheduler() {
        let (g, reg) = setup(0, 2.0, 0);
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = woken.clone();
        reg.set_waker(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert!(g.reserve("q", None).is_some());
        assert!(g.reserve("q", None).is_some());
        assert_eq!(g.reserve("q", None), None, "a burst of 2 per second");
        let before = woken.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(600)).await;
        tokio::task::yield_now().await;
        assert!(woken.load(Ordering::SeqCst) > before, "the refill wakes the scheduler");
    }
}
