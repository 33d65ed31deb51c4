//! What every flow ends with: the agent it holds ([`AgentHold`]: wrap-up
//! after a conversation, else simply freed) and the bridged conversation
//! ([`bridge`]). Used by customer-first, agent-first and inbound calls.

use std::time::Duration;

use crate::config::Queue;
use crate::scheduler::model::Outcome;

use super::attempt::{AttemptLog, Finish};
use super::party::Party;
use super::Dialler;

/// Bridges the customer and the agent, and waits until either hangs up
/// (or media stops for the media timeout); then ends the other.
#[allow(clippy::too_many_arguments)]
pub async fn bridge(
    d: &Dialler,
    hold: &mut AgentHold<'_>,
    mut customer: Party,
    mut agent: Party,
    interaction: &str,
    phone: &str,
    queue: &str,
    log: &mut AttemptLog,
) -> Finish {
    customer.media.stop_playing();
    // Agent-first may have bridged already, for the carrier's early media.
    let bridged = match customer.media.bridge(&mut agent.media) {
        Err(crate::media::call::MediaCallError::AlreadyBridged { .. }) => Ok(()),
        r => r,
    };
    if let Err(e) = bridged {
        tracing::error!(error = %e, "cannot bridge the legs");
        customer.close();
        agent.close();
        return Finish::new(Outcome::AgentNoAnswer, Some(200)).note(format!("bridge failed: {e}"));
    }
    hold.on_call();
    log.mark(|t| &mut t.bridged_at);
    d.live.set(interaction, phone, queue, Some(&hold.agent));
    tracing::info!("customer and agent bridged");
    let ended = tokio::select! {
        ev = customer.until_ended() => format!("customer: {ev:?}"),
        ev = agent.until_ended() => format!("agent: {ev:?}"),
    };
    tracing::info!(by = %ended, "call ended");
    customer.close();
    agent.close();
    hold.finished();
    Finish::new(Outcome::Human, Some(200))
}

/// The agent a flow holds, and what to do with it when the flow lets go:
/// after a conversation it goes to wrap-up, otherwise it is simply freed.
pub struct AgentHold<'a> {
    d: &'a Dialler,
    pub agent: String,
    /// What the agent is held for: the callback id, or an inbound call's id.
    what: String,
    wrap_up: Duration,
    on_call: bool,
    done: bool,
}

impl<'a> AgentHold<'a> {
    pub fn new(d: &'a Dialler, agent: &str, queue: &Queue, what: &str) -> Self {
        Self { d, agent: agent.to_string(), what: what.to_string(), wrap_up: queue.wrap_up, on_call: false, done: false }
    }

    pub fn on_call(&mut self) {
        self.on_call = true;
        self.d.agents.on_call(&self.agent, &self.what);
    }

    /// The conversation ended: wrap-up, then free (and wake the scheduler).
    pub fn finished(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let ms = self.wrap_up.as_millis() as i64;
        self.d.agents.finished(&self.agent, if self.on_call { ms } else { 0 });
        if self.on_call && ms > 0 {
            let agents = self.d.agents.clone();
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
            crate::scheduler::engine::Availability::release(&*self.d.agents, &self.agent);
        }
    }
}

impl Drop for AgentHold<'_> {
    fn drop(&mut self) {
        if self.on_call {
            self.finished();
        } else {
            self.release();
        }
    }
}
