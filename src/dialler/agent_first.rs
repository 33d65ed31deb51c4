//! Agent-first (issue 6 §3): ring the reserved agent; once they answer,
//! dial the customer while the agent hears the call's progress (the
//! carrier's early media, else a ring-back tone), and bridge on answer. A
//! customer who is busy or does not answer is heard by the agent as a busy
//! tone before the call ends with that outcome. No AMD: the agent listens.

use std::time::Duration;

use crate::config::Queue;
use crate::media::call::MediaEvent;
use crate::scheduler::model::{Dispatch, Outcome};

use super::attempt::{AttemptLog, Finish};
use super::connect::{bridge, AgentHold};
use super::party::{self, AgentCall, Dialled, PartyEvent, Rung};
use super::Dialler;

/// How long the agent hears the busy tone before the call ends.
const BUSY_TONE: Duration = Duration::from_secs(3);

pub async fn run(d: &Dialler, dispatch: &Dispatch, queue: &Queue, interaction: &str, log: &mut AttemptLog) -> Finish {
    let cb = &dispatch.callback;
    let mut hold = AgentHold::new(d, &dispatch.agent, queue, &cb.id.to_string());
    let call = AgentCall { dispatch: Some(dispatch), caller: &cb.phone, queue: &cb.queue, interaction };
    let mut agent = match party::ring_agent(d, &hold.agent, &call, queue.agent_ring_timeout, None, log).await {
        Rung::Answered(p) => *p,
        Rung::Unreachable => return Finish::new(Outcome::AgentUnavailable, None),
        Rung::NoAnswer | Rung::OtherGone => return Finish::new(Outcome::AgentNoAnswer, None),
        Rung::Declined(s) => return Finish::new(Outcome::AgentNoAnswer, Some(s)),
    };
    hold.on_call();
    d.live.set(interaction, &cb.phone, &cb.queue, Some(&hold.agent));
    // The agent hears ring-back until the carrier sends early media.
    agent.media.play(d.prompts.ringback.clone(), true);
    let mut early_bridged = false;
    let dialled = {
        let agent_media = &mut agent.media;
        let dial = party::dial_customer(d, dispatch, queue, log, |customer, status| {
            if status == 183 && !early_bridged {
                agent_media.stop_playing();
                match customer.media.bridge(agent_media) {
                    Ok(()) => early_bridged = true,
                    Err(e) => tracing::warn!(error = %e, "cannot relay early media to the agent"),
                }
            }
        });
        // The agent may give up while the customer's phone rings.
        tokio::select! {
            r = dial => Some(r),
            _ = agent_gone(&mut agent.sip.events) => None,
        }
    };
    let Some(dialled) = dialled else {
        // Dropping the dial future dropped the customer's leg, which
        // hangs it up (CANCEL).
        hold.finished();
        return Finish::new(Outcome::AgentUnavailable, None).note("the agent hung up before the customer answered");
    };
    match dialled {
        Dialled::Answered(customer) => bridge(d, &mut hold, customer, agent, interaction, &cb.phone, &cb.queue, log).await,
        Dialled::NotAnswered(f) => {
            agent.media.play(d.prompts.busy_tone.clone(), true);
            let _ = agent.wait_for(BUSY_TONE, |e| matches!(e, PartyEvent::Media(MediaEvent::PlayDone)).then_some(())).await;
            agent.close();
            hold.finished();
            f
        }
    }
}

/// Completes when the agent's leg ends.
async fn agent_gone(events: &mut tokio::sync::mpsc::UnboundedReceiver<crate::sip::calls::LegEvent>) {
    use crate::sip::calls::LegEvent;
    loop {
        match events.recv().await {
            Some(LegEvent::Ended { .. } | LegEvent::Failed { .. }) | None => return,
            Some(_) => {}
        }
    }
}
