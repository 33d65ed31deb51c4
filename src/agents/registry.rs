//! The shared agent registry.
//!
//! An agent's state is derived from three things: its softphone
//! registrations, its own choice (`away` or not), and what the dialler is
//! doing with it (its *activity*: idle, reserved, ringing, on a call, in
//! wrap-up). Deriving it means a softphone that re-registers never
//! overrides an agent's own `away` (an agent who set itself away stays away), an expired
//! registration makes an idle agent offline without a timer, and a
//! reservation or wrap-up that outlives its deadline lapses by itself (a
//! safety net should a dialler task die).
//!
//! Every change of state is published as an [`AgentEvent`] on a broadcast
//! channel, for the API and metrics.
//!
//! The scheduler's writer thread calls [`Availability`] while it fires, so
//! everything here is a short critical section on a std mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::scheduler::engine::Availability;

/// What an agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Offline,
    Available,
    Away,
    Reserved,
    Ringing,
    OnCall,
    WrapUp,
}

impl AgentState {
    pub const ALL: &'static [AgentState] = &[
        AgentState::Offline,
        AgentState::Available,
        AgentState::Away,
        AgentState::Reserved,
        AgentState::Ringing,
        AgentState::OnCall,
        AgentState::WrapUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Offline => "offline",
            AgentState::Available => "available",
            AgentState::Away => "away",
            AgentState::Reserved => "reserved",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::WrapUp => "wrap_up",
        }
    }
}

/// One softphone binding (RFC 3261 §10: a contact with its expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub contact: String,
    pub expires_at: Millis,
}

/// A snapshot of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub id: String,
    pub state: AgentState,
    pub queues: Vec<String>,
    pub registrations: Vec<Registration>,
    /// The callback (or `"pending"` between reservation and hand-over) or
    /// inbound call it is held for.
    pub reserved_for: Option<String>,
}

/// A change of an agent's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEvent {
    pub agent: String,
    pub state: AgentState,
    pub at: Millis,
    /// What the agent is held for, if anything.
    pub reserved_for: Option<String>,
}

/// Why a state change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetStateError {
    #[error("no agent named `{id}`")]
    UnknownAgent { id: String },
    #[error("an agent can set itself only `available` or `away`, not `{state}`")]
    NotSettable { state: &'static str },
}

/// What the dialler is doing with an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Activity {
    Idle,
    /// Held for one call until `until` (then it lapses).
    Reserved { what: String, until: Millis },
    Ringing { what: String },
    OnCall { what: String },
    WrapUp { until: Millis },
}

#[derive(Debug)]
struct Entry {
    queues: Vec<String>,
    registrations: Vec<Registration>,
    away: bool,
    activity: Activity,
    /// When the agent last became idle: longest-idle first.
    idle_since: Millis,
}

impl Entry {
    fn state(&self, now: Millis) -> AgentState {
        match &self.activity {
            Activity::Ringing { .. } => return AgentState::Ringing,
            Activity::OnCall { .. } => return AgentState::OnCall,
            Activity::Reserved { until, .. } if *until > now => return AgentState::Reserved,
            Activity::WrapUp { until } if *until > now => return AgentState::WrapUp,
            _ => {}
        }
        if !self.registrations.iter().any(|r| r.expires_at > now) {
            AgentState::Offline
        } else if self.away {
            AgentState::Away
        } else {
            AgentState::Available
        }
    }

    fn held_for(&self, now: Millis) -> Option<&str> {
        match &self.activity {
            Activity::Reserved { what, until } if *until > now => Some(what),
            Activity::Ringing { what } | Activity::OnCall { what } => Some(what),
            _ => None,
        }
    }
}

/// Marks a reservation made by the scheduler before the dialler names the callback.
const PENDING: &str = "pending";

/// How long a reservation holds before it lapses by itself. The dialler
/// moves a reserved agent on (ringing, released) long before this; the
/// deadline only matters if a dialler task died.
pub const RESERVATION_HOLD_MS: Millis = 10 * 60 * 1000;

/// Every configured agent. Cheap to share behind an `Arc`.
pub struct Registry {
    clock: Arc<dyn Clock>,
    agents: Mutex<BTreeMap<String, Entry>>,
    /// Wakes the scheduler when an agent may have become free.
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
    events: broadcast::Sender<AgentEvent>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// One entry per `[[agents]]`, all offline.
    pub fn new(cfg: &Config, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        let agents = cfg
            .agents
            .iter()
            .map(|a| {
                let e = Entry { queues: a.queues.clone(), registrations: vec![], away: false, activity: Activity::Idle, idle_since: now };
                (a.id.clone(), e)
            })
            .collect();
        let (events, _) = broadcast::channel(1024);
        Self { clock, agents: Mutex::new(agents), waker: OnceLock::new(), events }
    }

    /// Sets what to call when an agent may have become free (the scheduler
    /// driver's `agents_changed`). Only the first call takes effect.
    pub fn set_waker(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.waker.set(Box::new(f));
    }

    /// Every state change from now on. A slow reader loses the oldest events
    /// (`RecvError::Lagged`), never blocks the registry.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }

    /// Wakes the scheduler: an agent may have become free.
    pub fn wake(&self) {
        if let Some(w) = self.waker.get() {
            w();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves consistent data (every
        // mutation is a single assignment), so poisoning is ignored.
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn info(id: &str, e: &Entry, now: Millis) -> AgentInfo {
        AgentInfo {
            id: id.to_string(),
            state: e.state(now),
            queues: e.queues.clone(),
            registrations: e.registrations.iter().filter(|r| r.expires_at > now).cloned().collect(),
            reserved_for: e.held_for(now).map(str::to_string),
        }
    }

    /// Applies `change` to one agent and publishes the new state if it
    /// changed. Returns whether the agent exists.
    fn update(&self, id: &str, change: impl FnOnce(&mut Entry, Millis)) -> bool {
        let now = self.clock.now_ms();
        let event = {
            let mut agents = self.lock();
            let Some(e) = agents.get_mut(id) else { return false };
            let (before, held_before) = (e.state(now), e.held_for(now).map(str::to_string));
            change(e, now);
            let after = e.state(now);
            let held = e.held_for(now).map(str::to_string);
            (after != before || held != held_before).then(|| AgentEvent { agent: id.to_string(), state: after, at: now, reserved_for: held })
        };
        if let Some(ev) = event {
            tracing::debug!(agent = %ev.agent, state = ev.state.as_str(), "agent state");
            let _ = self.events.send(ev);
        }
        true
    }

    /// Every agent, by id.
    pub fn list(&self) -> Vec<AgentInfo> {
        let now = self.clock.now_ms();
        self.lock().iter().map(|(id, e)| Self::info(id, e, now)).collect()
    }

    pub fn get(&self, id: &str) -> Option<AgentInfo> {
        let now = self.clock.now_ms();
        self.lock().get(id).map(|e| Self::info(id, e, now))
    }

    /// The agent's own choice: `available` or `away`. Other states are the
    /// system's to set.
    pub fn set_state(&self, id: &str, state: AgentState) -> Result<AgentInfo, SetStateError> {
        let away = match state {
            AgentState::Available => false,
            AgentState::Away => true,
            other => return Err(SetStateError::NotSettable { state: other.as_str() }),
        };
        if !self.update(id, |e, _| e.away = away) {
            return Err(SetStateError::UnknownAgent { id: id.to_string() });
        }
        if !away {
            self.wake();
        }
        Ok(self.get(id).expect("agent exists"))
    }

    /// Applies a reloaded configuration's agents: new ones join offline, removed ones
    /// leave (a call one of them is on goes on; its end is then ignored), the others
    /// keep their state, registrations and choice, with their queues updated.
    pub fn set_agents(&self, cfg: &Config) {
        let now = self.clock.now_ms();
        {
            let mut agents = self.lock();
            agents.retain(|id, _| cfg.agents.iter().any(|a| &a.id == id));
            for a in &cfg.agents {
                match agents.get_mut(&a.id) {
                    Some(e) => e.queues = a.queues.clone(),
                    None => {
                        let e = Entry { queues: a.queues.clone(), registrations: vec![], away: false, activity: Activity::Idle, idle_since: now };
                        agents.insert(a.id.clone(), e);
                    }
                }
            }
        }
        self.wake();
    }

    /// The agents whose own choice is `away` (registered or not), to save across restarts.
    pub fn away_agents(&self) -> std::collections::BTreeSet<String> {
        self.lock().iter().filter(|(_, e)| e.away).map(|(id, _)| id.clone()).collect()
    }

    /// The registrar's view of an agent's bindings changed (a REGISTER was
    /// accepted, refreshed or removed). Unknown agents are ignored: the
    /// registrar only authenticates configured ones.
    pub fn registration_changed(&self, id: &str, bindings: Vec<(String, Millis)>) {
        let known = self.update(id, |e, _| {
            e.registrations = bindings.into_iter().map(|(contact, expires_at)| Registration { contact, expires_at }).collect();
        });
        if known {
            self.wake();
        }
    }

    /// Names what a reservation is for (the dialler, on hand-over) and
    /// restarts its hold.
    pub fn assign(&self, agent: &str, what: &str) {
        self.update(agent, |e, now| {
            if matches!(e.activity, Activity::Reserved { .. }) {
                e.activity = Activity::Reserved { what: what.to_string(), until: now + RESERVATION_HOLD_MS };
            }
        });
    }

    /// The dialler rings the agent's softphone for `what`.
    pub fn ringing(&self, agent: &str, what: &str) {
        self.update(agent, |e, _| e.activity = Activity::Ringing { what: what.to_string() });
    }

    /// The agent answered: it is on the call `what`.
    pub fn on_call(&self, agent: &str, what: &str) {
        self.update(agent, |e, _| e.activity = Activity::OnCall { what: what.to_string() });
    }

    /// The call ended: wrap-up for `wrap_up_ms` (0 = none), then free. The
    /// caller wakes the scheduler when the wrap-up ends ([`Registry::wake`]).
    pub fn finished(&self, agent: &str, wrap_up_ms: Millis) {
        self.update(agent, |e, now| {
            if wrap_up_ms > 0 {
                e.activity = Activity::WrapUp { until: now + wrap_up_ms };
                e.idle_since = now + wrap_up_ms;
            } else {
                e.activity = Activity::Idle;
                e.idle_since = now;
            }
        });
        self.wake();
    }

    /// Reserves a free agent of `queue` other than those in `exclude`, for
    /// `what` (an inbound call, or a second agent for a callback whose first
    /// agent did not answer). Longest-idle first.
    pub fn reserve_for(&self, queue: &str, exclude: &[&str], what: &str) -> Option<String> {
        let now = self.clock.now_ms();
        let id = {
            let mut agents = self.lock();
            let id = pick_longest_idle(&agents, queue, now, |id| !exclude.contains(&id))?;
            let e = agents.get_mut(&id).expect("picked agent exists");
            e.activity = Activity::Reserved { what: what.to_string(), until: now + RESERVATION_HOLD_MS };
            id
        };
        let _ = self.events.send(AgentEvent { agent: id.clone(), state: AgentState::Reserved, at: now, reserved_for: Some(what.to_string()) });
        Some(id)
    }

    /// Whether any agent of `queue` is free now.
    pub fn any_available(&self, queue: &str) -> bool {
        let now = self.clock.now_ms();
        pick_longest_idle(&self.lock(), queue, now, |_| true).is_some()
    }

    /// When the first agent of `queue` still in wrap-up becomes free (the
    /// only wait redial can estimate: a ringing or talking agent may be busy
    /// for any time). `None` when no agent of the queue is in wrap-up.
    pub fn soonest_wrap_up_end(&self, queue: &str) -> Option<Millis> {
        let now = self.clock.now_ms();
        self.lock()
            .values()
            .filter(|e| e.queues.iter().any(|q| q == queue) && !e.away && e.registrations.iter().any(|r| r.expires_at > now))
            .filter_map(|e| match e.activity {
                Activity::WrapUp { until } if until > now => Some(until),
                _ => None,
            })
            .min()
    }

    /// Agents per state, for metrics.
    pub fn count_by_state(&self) -> Vec<(AgentState, usize)> {
        let now = self.clock.now_ms();
        let agents = self.lock();
        AgentState::ALL.iter().map(|s| (*s, agents.values().filter(|e| e.state(now) == *s).count())).collect()
    }
}

/// The free agent of `queue` idle the longest (ties by id), among those
/// `eligible` accepts.
fn pick_longest_idle(agents: &BTreeMap<String, Entry>, queue: &str, now: Millis, eligible: impl Fn(&str) -> bool) -> Option<String> {
    agents
        .iter()
        .filter(|(id, e)| e.state(now) == AgentState::Available && e.queues.iter().any(|q| q == queue) && eligible(id))
        .min_by_key(|(_, e)| e.idle_since)
        .map(|(id, _)| id.clone())
}

impl Availability for Registry {
    /// Free and the reservation's start and lapse are judged at the
    /// scheduler's `now`, not this registry's clock.
    fn reserve(&self, now: Millis, queue: &str, owner: Option<&str>) -> Option<String> {
        let id = {
            let mut agents = self.lock();
            let id = match owner {
                Some(o) => agents.get(o).filter(|e| e.state(now) == AgentState::Available && e.queues.iter().any(|q| q == queue)).map(|_| o.to_string()),
                None => pick_longest_idle(&agents, queue, now, |_| true),
            }?;
            let e = agents.get_mut(&id).expect("picked agent exists");
            e.activity = Activity::Reserved { what: PENDING.to_string(), until: now + RESERVATION_HOLD_MS };
            id
        };
        let _ = self.events.send(AgentEvent { agent: id.clone(), state: AgentState::Reserved, at: now, reserved_for: Some(PENDING.to_string()) });
        Some(id)
    }

    /// Frees the agent without wrap-up (a reservation that led to no call
    /// with it).
    fn release(&self, agent: &str) {
        let mut released = false;
        self.update(agent, |e, now| {
            if !matches!(e.activity, Activity::Idle) {
                released = true;
                // A reservation that led nowhere keeps the agent's place in
                // the longest-idle order.
                if !matches!(e.activity, Activity::Reserved { .. } | Activity::Ringing { .. }) {
                    e.idle_since = now;
                }
                e.activity = Activity::Idle;
            }
        });
        if released {
            self.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::config::Agent;

    fn registry() -> (Registry, FakeClock) {
        let mut cfg = Config::defaults();
        cfg.agents = vec![
            Agent { id: "alice".into(), password: "pw".into(), queues: vec!["default".into()] },
            Agent { id: "bob".into(), password: "pw".into(), queues: vec!["other".into()] },
        ];
        let clock = FakeClock::new(1_000_000);
        (Registry::new(&cfg, Arc::new(clock.clone())), clock)
    }

    #[test]
    fn reloaded_agents_join_leave_and_keep_state_and_choice() {
        let (r, _clock) = registry();
        r.registration_changed("alice", vec![("sip:alice@127.0.0.1:5070".into(), 2_000_000)]);
        r.set_state("alice", AgentState::Away).unwrap();
        let mut cfg = Config::defaults();
        cfg.agents = vec![
            Agent { id: "alice".into(), password: "new".into(), queues: vec!["other".into()] },
            Agent { id: "carol".into(), password: "pw".into(), queues: vec!["default".into()] },
        ];
        r.set_agents(&cfg);
        let alice = r.get("alice").unwrap();
        assert_eq!((alice.state, alice.queues.clone(), alice.registrations.len()), (AgentState::Away, vec!["other".to_string()], 1));
        assert_eq!(r.get("carol").unwrap().state, AgentState::Offline);
        assert!(r.get("bob").is_none());
        assert_eq!(r.away_agents().into_iter().collect::<Vec<_>>(), vec!["alice".to_string()]);
    }

    #[test]
    fn registration_makes_available_unless_away_and_expiry_makes_offline() {
        let (r, clock) = registry();
        assert_eq!(r.get("alice").unwrap().state, AgentState::Offline);
        r.registration_changed("alice", vec![("sip:alice@127.0.0.1:5070".into(), 1_060_000)]);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Available);
        r.set_state("alice", AgentState::Away).unwrap();
        r.registration_changed("alice", vec![("sip:alice@127.0.0.1:5070".into(), 1_120_000)]);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Away, "re-registering keeps away");
        r.set_state("alice", AgentState::Available).unwrap();
        assert_eq!(r.get("alice").unwrap().state, AgentState::Available);
        clock.set(1_120_000);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Offline);
        assert!(r.get("alice").unwrap().registrations.is_empty());
    }

    #[test]
    fn reserve_respects_queue_owner_and_state_and_release_frees() {
        let (r, clock) = registry();
        assert_eq!(r.reserve(clock.now_ms(), "default", None), None, "offline agents are not free");
        r.registration_changed("alice", vec![("sip:a@h".into(), i64::MAX)]);
        r.registration_changed("bob", vec![("sip:b@h".into(), i64::MAX)]);
        assert_eq!(r.reserve(clock.now_ms(), "default", Some("bob")), None, "bob is not in default");
        assert_eq!(r.reserve(clock.now_ms(), "default", None).as_deref(), Some("alice"));
        assert_eq!(r.get("alice").unwrap().state, AgentState::Reserved);
        assert_eq!(r.reserve(clock.now_ms(), "default", None), None, "alice is held");
        r.assign("alice", "cb_x");
        assert_eq!(r.get("alice").unwrap().reserved_for.as_deref(), Some("cb_x"));
        r.release("alice");
        assert_eq!(r.reserve(clock.now_ms(), "default", Some("alice")).as_deref(), Some("alice"));
    }

    #[test]
    fn dialling_states_wrap_up_and_lapse() {
        let (r, clock) = registry();
        let mut events = r.subscribe();
        r.registration_changed("alice", vec![("sip:a@h".into(), i64::MAX)]);
        assert_eq!(r.reserve(clock.now_ms(), "default", None).as_deref(), Some("alice"));
        r.assign("alice", "cb_1");
        r.ringing("alice", "cb_1");
        assert_eq!(r.get("alice").unwrap().state, AgentState::Ringing);
        r.on_call("alice", "cb_1");
        assert_eq!(r.get("alice").unwrap().state, AgentState::OnCall);
        assert_eq!(r.get("alice").unwrap().reserved_for.as_deref(), Some("cb_1"));
        r.finished("alice", 10_000);
        assert_eq!(r.get("alice").unwrap().state, AgentState::WrapUp);
        assert_eq!(r.soonest_wrap_up_end("default"), Some(clock.now_ms() + 10_000));
        assert_eq!(r.soonest_wrap_up_end("other"), None);
        assert_eq!(r.reserve(clock.now_ms(), "default", None), None, "wrap-up is not free");
        clock.advance(10_000);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Available);
        // A reservation nobody moves on lapses.
        assert_eq!(r.reserve(clock.now_ms(), "default", None).as_deref(), Some("alice"));
        clock.advance(RESERVATION_HOLD_MS);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Available);
        let mut seen = vec![];
        while let Ok(ev) = events.try_recv() {
            seen.push(ev.state);
        }
        use AgentState::*;
        assert_eq!(seen, vec![Available, Reserved, Reserved, Ringing, OnCall, WrapUp, Reserved]);
    }

    #[test]
    fn a_reservation_starts_and_lapses_at_the_given_now() {
        let (r, clock) = registry();
        let mut events = r.subscribe();
        r.registration_changed("alice", vec![("sip:a@h".into(), i64::MAX)]);
        // Armed a second ahead of the registry's clock.
        let armed = clock.now_ms() + 1_000;
        assert_eq!(r.reserve(armed, "default", None).as_deref(), Some("alice"));
        let reserved = std::iter::from_fn(|| events.try_recv().ok()).find(|e| e.state == AgentState::Reserved).unwrap();
        assert_eq!(reserved.at, armed);
        clock.advance(RESERVATION_HOLD_MS);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Reserved, "held until the armed time plus the hold");
        clock.advance(1_000);
        assert_eq!(r.get("alice").unwrap().state, AgentState::Available);
    }

    #[test]
    fn queue_reservations_take_the_longest_idle_agent() {
        let mut cfg = Config::defaults();
        cfg.agents = ["a", "b", "c"].iter().map(|id| Agent { id: (*id).into(), password: "pw".into(), queues: vec!["default".into()] }).collect();
        let clock = FakeClock::new(1_000_000);
        let r = Registry::new(&cfg, Arc::new(clock.clone()));
        for id in ["a", "b", "c"] {
            r.registration_changed(id, vec![("sip:x@h".into(), i64::MAX)]);
        }
        // a and b take calls; a finishes first, so b has been idle less long.
        assert_eq!(r.reserve(clock.now_ms(), "default", None).as_deref(), Some("a"));
        assert_eq!(r.reserve(clock.now_ms(), "default", None).as_deref(), Some("b"));
        r.on_call("a", "x");
        r.on_call("b", "y");
        clock.advance(1_000);
        r.finished("a", 0);
        clock.advance(1_000);
        r.finished("b", 0);
        assert_eq!(r.reserve(clock.now_ms(), "default", None).as_deref(), Some("c"), "c never worked");
        assert_eq!(r.reserve_for("default", &[], "inbound").as_deref(), Some("a"));
        assert_eq!(r.reserve_for("default", &["b"], "inbound"), None, "b excluded, others held");
        assert!(r.any_available("default"));
    }

    #[test]
    fn set_state_errors_and_wakes() {
        let (r, _clock) = registry();
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = woken.clone();
        r.set_waker(move || {
            w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(r.set_state("carol", AgentState::Away), Err(SetStateError::UnknownAgent { id: "carol".into() }));
        assert_eq!(r.set_state("alice", AgentState::Offline), Err(SetStateError::NotSettable { state: "offline" }));
        r.set_state("alice", AgentState::Available).unwrap();
        r.registration_changed("alice", vec![]);
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(r.count_by_state().iter().find(|(s, _)| *s == AgentState::Offline).unwrap().1, 2);
    }
}
