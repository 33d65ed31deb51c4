//! The agent a call holds ([`AgentHold`]): after a conversation the agent
//! goes to wrap-up, otherwise they are simply freed. Used by customer-first,
//! agent-first and inbound calls.

use std::sync::Arc;
use std::time::Duration;

use crate::agents::Registry;

/// The agent a call holds, and what to do with them when the call lets go:
/// after a conversation they go to wrap-up, otherwise they are freed.
/// Dropping the hold does the same.
pub struct AgentHold {
    agents: Arc<Registry>,
    pub agent: String,
    /// What the agent is held for: the callback id, or an inbound call's id.
    what: String,
    wrap_up: Duration,
    on_call: bool,
    done: bool,
}

impl AgentHold {
    pub fn new(agents: &Arc<Registry>, agent: &str, wrap_up: Duration, what: &str) -> Self {
        Self { agents: agents.clone(), agent: agent.to_string(), what: what.to_string(), wrap_up, on_call: false, done: false }
    }

    pub fn on_call(&mut self) {
        self.on_call = true;
        self.agents.on_call(&self.agent, &self.what);
    }

    /// The conversation ended: wrap-up, then free (and wake the scheduler).
    pub fn finished(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let ms = self.wrap_up.as_millis() as i64;
        self.agents.finished(&self.agent, if self.on_call { ms } else { 0 });
        if self.on_call && ms > 0 {
            let agents = self.agents.clone();
            let wrap = self.wrap_up;
            tokio::spawn(async move {
                tokio::time::sleep(wrap).await;
                agents.wake();
            });
        }
    }

    /// Lets go of an agent that took no call.
    pub fn release(&mut self) {
        if !self.done {
            self.done = true;
            crate::scheduler::engine::Availability::release(&*self.agents, &self.agent);
        }
    }
}

impl Drop for AgentHold {
    fn drop(&mut self) {
        if self.on_call {
            self.finished();
        } else {
            self.release();
        }
    }
}
