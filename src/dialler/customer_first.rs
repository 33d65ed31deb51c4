//! Customer-first (issue 6 §2): dial the customer, run AMD on their first
//! seconds, then ring the reserved agent while the customer hears the hold
//! prompt, and bridge.

use std::time::Duration;

use crate::amd::AmdResult;
use crate::config::{OnMachine, Queue};
use crate::media::call::MediaEvent;
use crate::media::player::Prompt;
use crate::scheduler::model::{Amd, Dispatch, Outcome};

use super::attempt::{AttemptLog, Finish};
use super::party::{self, AgentCall, Dialled, Party, PartyEvent, Rung};
use super::Dialler;

/// Longest wait for the AMD verdict after answer (the detector itself
/// decides within its configured total, 5 s by default).
const AMD_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for a machine's beep or the end of its greeting before the
/// message is played anyway.
const BEEP_LIMIT: Duration = Duration::from_secs(20);

pub async fn run(d: &Dialler, dispatch: &Dispatch, queue: &Queue, interaction: &str, log: &mut AttemptLog) -> Finish {
    let cb = &dispatch.callback;
    let mut hold = AgentHold::new(d, &dispatch.agent, queue);
    let mut customer = match party::dial_customer(d, dispatch, queue, log, |_, _| {}).await {
        Dialled::Answered(p) => p,
        Dialled::NotAnswered(f) => return f,
    };
    d.live.set(interaction, &cb.phone, &cb.queue, None);

    // AMD on the customer's first seconds.
    customer.media.start_amd();
    let verdict = match amd_verdict(&mut customer).await {
        Ok(v) => v,
        Err(()) => {
            // Answered, then gone before we knew who: try again later.
            customer.close();
            return Finish::new(Outcome::NoAnswer, Some(200)).note("the customer hung up during answering-machine detection");
        }
    };
    log.mark(|t| &mut t.amd_at);
    log.amd = Some(match verdict {
        AmdResult::Human => Amd::Human,
        AmdResult::Machine => Amd::Machine,
        _ => Amd::Unknown,
    });
    if verdict == AmdResult::Machine {
        return on_machine(queue, customer).await;
    }

    // A person (or unknown, treated as one): hold prompt, ring agents.
    customer.media.play(d.prompts.please_hold.clone(), true);
    let mut tried: Vec<String> = vec![dispatch.agent.clone()];
    loop {
        let call = AgentCall { dispatch: Some(dispatch), caller: &cb.phone, queue: &cb.queue, interaction };
        let rung = party::ring_agent(d, &hold.agent, &call, queue.agent_ring_timeout, Some(&mut customer), log).await;
        match rung {
            Rung::Answered(agent) => {
                log.agent = hold.agent.clone();
                return bridge(d, &mut hold, customer, *agent, interaction, cb.phone.as_str(), &cb.queue, log).await;
            }
            Rung::OtherGone => {
                hold.release();
                customer.close();
                return Finish::new(Outcome::NoAnswer, Some(200)).note("the customer hung up while the agent was ringing");
            }
            Rung::NoAnswer | Rung::Declined(_) | Rung::Unreachable => {
                tracing::info!(agent = %hold.agent, "agent did not answer");
                hold.release();
                // Owned callbacks wait for their owner: retried later. A
                // queue callback tries one more agent.
                let next = if cb.owner.is_none() && tried.len() < 2 {
                    let exclude: Vec<&str> = tried.iter().map(String::as_str).collect();
                    d.agents.reserve_for(&cb.queue, &exclude, &cb.id.to_string())
                } else {
                    None
                };
                match next {
                    Some(a) => {
                        tried.push(a.clone());
                        hold = AgentHold::new(d, &a, queue);
                        log.agent = a;
                    }
                    None => {
                        customer.media.stop_playing();
                        let _ = party::play_and_wait(&mut customer, d.prompts.apology.clone()).await;
                        customer.close();
                        return Finish::new(Outcome::AgentNoAnswer, Some(200));
                    }
                }
            }
        }
    }
}

/// Waits for the detector's verdict; `Err` when the customer hung up first.
async fn amd_verdict(customer: &mut Party) -> Result<AmdResult, ()> {
    let wait = async {
        loop {
            let ev = customer.next().await;
            customer.absorb(&ev);
            match ev {
                PartyEvent::Media(MediaEvent::Amd(decision)) => return Ok(decision.result),
                ev if ev.ends_call() => return Err(()),
                _ => {}
            }
        }
    };
    // A detector that never decides counts as unknown: treated as a person.
    tokio::time::timeout(AMD_LIMIT, wait).await.unwrap_or(Ok(AmdResult::Unknown))
}

/// The queue's `on_machine`: retry later, count it as done, or leave a
/// message after the beep (or the end of the greeting).
async fn on_machine(queue: &Queue, mut customer: Party) -> Finish {
    match &queue.on_machine {
        OnMachine::Retry | OnMachine::Complete => {}
        OnMachine::Message(path) => match Prompt::from_wav(path) {
            Ok(prompt) => {
                let heard = tokio::time::timeout(BEEP_LIMIT, async {
                    loop {
                        match customer.next().await {
                            PartyEvent::Media(MediaEvent::Beep { .. } | MediaEvent::GreetingEnded) => return true,
                            ev if ev.ends_call() => return false,
                            _ => {}
                        }
                    }
                })
                .await;
                if heard != Ok(false) {
                    let _ = party::play_and_wait(&mut customer, std::sync::Arc::new(prompt)).await;
                }
            }
            Err(e) => tracing::error!(file = %path.display(), error = %e, "cannot load the machine message"),
        },
    }
    customer.close();
    Finish::new(Outcome::Machine, Some(200))
}

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
    wrap_up: Duration,
    on_call: bool,
    done: bool,
}

impl<'a> AgentHold<'a> {
    pub fn new(d: &'a Dialler, agent: &str, queue: &Queue) -> Self {
        Self { d, agent: agent.to_string(), wrap_up: queue.wrap_up, on_call: false, done: false }
    }

    pub fn on_call(&mut self) {
        self.on_call = true;
        // The id the agent is held for stays what the reservation named.
        let what = self.d.agents.get(&self.agent).and_then(|a| a.reserved_for).unwrap_or_default();
        self.d.agents.on_call(&self.agent, &what);
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
