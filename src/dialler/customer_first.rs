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
use super::connect::{bridge, AgentHold};
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
    let mut hold = AgentHold::new(d, &dispatch.agent, queue, &cb.id.to_string());
    let mut customer = match party::dial_customer(d, dispatch, queue, log, |_, _| {}).await {
        Dialled::Answered(p) => p,
        Dialled::NotAnswered(f) => return f,
    };
    d.live.set(interaction, &cb.phone, &cb.queue, None);

    // AMD on the customer's first seconds.
    customer.media.start_amd();
    let verdict = match amd_verdict(&mut customer).await {
        Ok(v) => v,
        Err(party::Hangup) => {
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
                        hold = AgentHold::new(d, &a, queue, &cb.id.to_string());
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
async fn amd_verdict(customer: &mut Party) -> Result<AmdResult, party::Hangup> {
    let verdict = customer
        .wait_for(AMD_LIMIT, |e| match e {
            PartyEvent::Media(MediaEvent::Amd(decision)) => Some(decision.result),
            _ => None,
        })
        .await?;
    // A detector that never decides counts as unknown: treated as a person.
    Ok(verdict.unwrap_or(AmdResult::Unknown))
}

/// The queue's `on_machine`: retry later, count it as done, or leave a
/// message after the beep (or the end of the greeting).
async fn on_machine(queue: &Queue, mut customer: Party) -> Finish {
    match &queue.on_machine {
        OnMachine::Retry | OnMachine::Complete => {}
        OnMachine::Message(path) => match Prompt::from_wav(path) {
            Ok(prompt) => {
                // The beep, the end of the greeting, or BEEP_LIMIT: then the
                // message, unless the machine hung up.
                let heard = customer.wait_for(BEEP_LIMIT, |e| matches!(e, PartyEvent::Media(MediaEvent::Beep { .. } | MediaEvent::GreetingEnded)).then_some(())).await;
                if heard.is_ok() {
                    let _ = party::play_and_wait(&mut customer, std::sync::Arc::new(prompt)).await;
                }
            }
            Err(e) => tracing::error!(file = %path.display(), error = %e, "cannot load the machine message"),
        },
    }
    customer.close();
    Finish::new(Outcome::Machine, Some(200))
}
