//! The shared agent registry.
//!
//! State is derived, not stored: an agent is `offline` while it has no live
//! registration, `away` when it said so, `reserved` while a callback holds
//! it, `available` otherwise. Deriving it means a softphone that re-registers
//! never overrides an agent's own `away` (DESIGN.md "HTTP API"), and an
//! expired registration makes the agent offline without a timer.
//!
//! The scheduler's writer thread calls [`Availability`] while it fires, so
//! everything here is a short critical section on a std mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::scheduler::engine::Availability;

/// What an agent is doing. Issue 6 adds the dialling states (`ringing`,
/// `on_call`, `wrap_up`); match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentState {
    Offline,
    Available,
    Away,
    Reserved,
}

impl AgentState {
    pub const ALL: &'static [AgentState] = &[AgentState::Offline, AgentState::Available, AgentState::Away, AgentState::Reserved];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Offline => "offline",
            AgentState::Available => "available",
            AgentState::Away => "away",
            AgentState::Reserved => "reserved",
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
    /// The callback (or `"pending"` between reservation and hand-over) it is held for.
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

#[derive(Debug)]
struct Entry {
    queues: Vec<String>,
    registrations: Vec<Registration>,
    away: bool,
    reserved_for: Option<String>,
}

impl Entry {
    fn state(&self, now: Millis) -> AgentState {
        if !self.registrations.iter().any(|r| r.expires_at > now) {
            AgentState::Offline
        } else if self.reserved_for.is_some() {
            AgentState::Reserved
        } else if self.away {
            AgentState::Away
        } else {
            AgentState::Available
        }
    }
}

/// Marks a reservation made by the scheduler before the dialler names the callback.
const PENDING: &str = "pending";

/// Every configured agent. Cheap to share behind an `Arc`.
pub struct Registry {
    clock: Arc<dyn Clock>,
    agents: Mutex<BTreeMap<String, Entry>>,
    /// Wakes the scheduler when an agent may have become free.
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// One entry per `[[agents]]`, all offline.
    pub fn new(cfg: &Config, clock: Arc<dyn Clock>) -> Self {
        let agents = cfg
            .agents
            .iter()
            .map(|a| (a.id.clone(), Entry { queues: a.queues.clone(), registrations: vec![], away: false, reserved_for: None }))
            .collect();
        Self { clock, agents: Mutex::new(agents), waker: OnceLock::new() }
    }

    /// Sets what to call when an agent may have become free (the scheduler
    /// driver's `agents_changed`). Only the first call takes effect.
    pub fn set_waker(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.waker.set(Box::new(f));
    }

    fn wake(&self) {
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
            reserved_for: e.reserved_for.clone(),
        }
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
        let now = self.clock.now_ms();
        let info = {
            let mut agents = self.lock();
            let e = agents.get_mut(id).ok_or_else(|| SetStateError::UnknownAgent { id: id.to_string() })?;
            e.away = away;
            Self::info(id, e, now)
        };
        if !away {
            self.wake();
        }
        Ok(info)
    }

    /// The registrar's view of an agent's bindings changed (a REGISTER was
    /// accepted, refreshed or removed). Unknown agents are ignored: the
    /// registrar only authenticates configured ones.
    pub fn registration_changed(&self, id: &str, bindings: Vec<(String, Millis)>) {
        let known = {
            let mut agents = self.lock();
            match agents.get_mut(id) {
                Some(e) => {
                    e.registrations = bindings.into_iter().map(|(contact, expires_at)| Registration { contact, expires_at }).collect();
                    true
                }
                None => false,
            }
        };
        if known {
            self.wake();
        }
    }

    /// Names the callback a reservation is for (the dialler, on hand-over).
    pub fn assign(&self, agent: &str, callback_id: &str) {
        if let Some(e) = self.lock().get_mut(agent) {
            e.reserved_for = Some(callback_id.to_string());
        }
    }

    /// Agents per state, for metrics.
    pub fn count_by_state(&self) -> Vec<(AgentState, usize)> {
        let now = self.clock.now_ms();
        let agents = self.lock();
        AgentState::ALL.iter().map(|s| (*s, agents.values().filter(|e| e.state(now) == *s).count())).collect()
    }
}

impl Availability for Registry {
    fn reserve(&self, queue: &str, owner: Option<&str>) -> Option<String> {
        let now = self.clock.now_ms();
        let mut agents = self.lock();
        let free = |e: &Entry| e.state(now) == AgentState::Available && e.queues.iter().any(|q| q == queue);
        let id = match owner {
            Some(o) => agents.get(o).filter(|e| free(e)).map(|_| o.to_string()),
            None => agents.iter().find(|(_, e)| free(e)).map(|(id, _)| id.clone()),
        }?;
        if let Some(e) = agents.get_mut(&id) {
            e.reserved_for = Some(PENDING.to_string());
        }
        Some(id)
    }

    fn release(&self, agent: &str) {
        let released = match self.lock().get_mut(agent) {
            Some(e) => e.reserved_for.take().is_some(),
            None => false,
        };
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
        let (r, _clock) = registry();
        assert_eq!(r.reserve("default", None), None, "offline agents are not free");
        r.registration_changed("alice", vec![("sip:a@h".into(), i64::MAX)]);
        r.registration_changed("bob", vec![("sip:b@h".into(), i64::MAX)]);
        assert_eq!(r.reserve("default", Some("bob")), None, "bob is not in default");
        assert_eq!(r.reserve("default", None).as_deref(), Some("alice"));
        assert_eq!(r.get("alice").unwrap().state, AgentState::Reserved);
        assert_eq!(r.reserve("default", None), None, "alice is held");
        r.assign("alice", "cb_x");
        assert_eq!(r.get("alice").unwrap().reserved_for.as_deref(), Some("cb_x"));
        r.release("alice");
        assert_eq!(r.reserve("default", Some("alice")).as_deref(), Some("alice"));
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
