//! One inbound call: answered, then an agent if one is free, else the
//! callback offer, else hold until an agent frees up. The rules are in
//! [`machine`]; [`handle`] is its thin driver: it performs the actions on
//! the caller's and the agent's legs and feeds their events back with `now`.

pub mod machine;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::calls::hold::AgentHold;
use crate::calls::party::{self, with, Party, PartyEvent};
use crate::calls::ring::{self, AgentCall, RingEvent, Ringing};
use crate::calls::{new_interaction_id, CallKit};
use crate::config::Queue;
use crate::media::call::MediaEvent;
use crate::media::player::Prompt;
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::model::{NewCallback, Origin};
use crate::scheduler::store::ScheduleError;
use crate::sip::calls::{IncomingCall, LegEvent};

use super::number;
use super::route::Route;
use machine::{Action, Booking, Event, InboundCall, Params, Say};

/// Longest wait for the ACK of our 200.
const ACK_TIMEOUT: Duration = Duration::from_secs(32);
/// While the caller holds for an agent, availability is checked at least
/// this often: wrap-ups and lapsed reservations end without an event.
const AVAILABILITY_CHECK: Duration = Duration::from_millis(500);

/// Serves one inbound call to its end, in a span naming it (Call-ID, the
/// interaction, then the agent and the booked callback as they are known).
pub async fn handle(kit: &CallKit, c: IncomingCall, route: Route) {
    let interaction = new_interaction_id();
    let span = tracing::info_span!(
        "inbound",
        call_id = %c.leg.call_id,
        interaction = %interaction,
        did = %route.did,
        queue = %route.queue,
        agent = Empty,
        callback = Empty,
    );
    answer_and_serve(kit, c, route, interaction).instrument(span).await
}

async fn answer_and_serve(kit: &CallKit, c: IncomingCall, route: Route, interaction: String) {
    let IncomingCall { leg, from_user, asserted_user, sdp, .. } = c;
    let cfg = kit.live_cfg.get();
    let Some(queue) = cfg.queue(&route.queue) else {
        leg.reject(480);
        return;
    };
    // A delayed offer (INVITE without SDP) is not supported.
    let Some(offer) = sdp else {
        leg.reject(488);
        return;
    };
    let mut media = match kit.media.open().await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "no media for an inbound call");
            leg.reject(503);
            return;
        }
    };
    let codecs = cfg.profiles.get(&route.profile).map(|p| party::codecs(&p.codecs)).unwrap_or_default();
    media.set_srtp(cfg.profiles.get(&route.profile).map(|p| p.srtp).unwrap_or_default());
    let answer = match media.answer_offer(&String::from_utf8_lossy(&offer), &codecs) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(error = %e, "inbound offer not acceptable");
            media.close();
            leg.reject(488);
            return;
        }
    };
    leg.answer(answer.into_bytes());
    let mut caller = Party { sip: leg, media };
    if !confirmed(&mut caller).await {
        caller.close();
        return;
    }
    let phone = number::caller(asserted_user.as_deref(), from_user.as_deref());
    tracing::info!(caller = ?phone, interaction = %interaction, "inbound call answered");
    kit.live.set(&interaction, phone.as_deref().unwrap_or(""), &queue.name, None);
    kit.metrics.calls_active_add(1);
    drive(kit, caller, queue, &route, phone, &interaction).await;
    kit.metrics.calls_active_add(-1);
    kit.live.remove(&interaction);
}

/// Waits for the ACK of our 200; false when the caller left first.
async fn confirmed(caller: &mut Party) -> bool {
    let wait = async {
        loop {
            match caller.sip.events.recv().await {
                Some(LegEvent::Answered { .. }) => return true,
                Some(LegEvent::Failed { .. } | LegEvent::Ended { .. }) | None => return false,
                Some(_) => {}
            }
        }
    };
    tokio::time::timeout(ACK_TIMEOUT, wait).await.unwrap_or(false)
}

/// The prompts of one call: the shared ones and the DID's greeting.
struct Sayings {
    prompts: Arc<crate::media::call::Prompts>,
    greeting: Option<Arc<Prompt>>,
}

impl Sayings {
    fn prompt(&self, say: Say) -> Arc<Prompt> {
        let p = &self.prompts;
        match say {
            Say::Greeting => self.greeting.clone().unwrap_or_else(|| p.please_hold.clone()),
            Say::CallbackOffer => p.callback_offer.clone(),
            Say::EnterNumber => p.enter_number.clone(),
            Say::YouEntered => p.you_entered.clone(),
            Say::Digit(d) => p.digits[usize::from(d.min(9))].clone(),
            Say::PressOneToConfirm => p.press_1_to_confirm.clone(),
            Say::CallbackConfirm => p.callback_confirm.clone(),
            Say::CallbackExists => p.callback_exists.clone(),
            Say::Apology => p.apology.clone(),
        }
    }
}

/// Runs the call's machine to its end on the real legs.
async fn drive(kit: &CallKit, caller: Party, queue: &Queue, route: &Route, phone: Option<String>, interaction: &str) {
    let greeting = route.greeting.as_ref().and_then(|g| match Prompt::from_wav(g) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            tracing::error!(file = %g.display(), error = %e, "cannot load the DID's greeting");
            None
        }
    });
    let sayings = Arc::new(Sayings { prompts: kit.prompts.clone(), greeting });
    let caller_phone = phone.clone();
    let lengths = sayings.clone();
    let mut m = InboundCall::new(Params {
        phone,
        greeting: sayings.greeting.is_some(),
        agent_ring_timeout: queue.agent_ring_timeout,
        offer_after_wait: queue.offer_after_wait,
        skip_if_reached: queue.skip_if_reached,
        length: Box::new(move |say| lengths.prompt(say).duration()),
    });
    let joined = kit.clock.now_ms();
    let mut caller = Some(caller);
    let mut agent: Option<Party> = None;
    let mut ringing: Option<Ringing> = None;
    let mut hold: Option<AgentHold> = None;
    let mut changes = kit.agents.subscribe();
    let mut out = Vec::new();
    let mut bridged = false;
    m.start(Instant::now().into_std(), &mut out);
    loop {
        // Perform the actions; some answer at once with an event, whose
        // actions follow in turn.
        let mut i = 0;
        while i < out.len() {
            let action = out[i].clone();
            i += 1;
            let now = Instant::now().into_std();
            match action {
                Action::Play(say) => with(&mut caller, |c| c.media.play(sayings.prompt(say), false)),
                Action::PlayHoldMusic => with(&mut caller, |c| c.media.play(kit.prompts.hold_music.clone(), true)),
                Action::StopPlaying => with(&mut caller, |c| c.media.stop_playing()),
                Action::ReserveAgent { exclude } => {
                    let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
                    let ev = match kit.agents.reserve_for(&queue.name, &exclude, interaction) {
                        Some(a) => {
                            Span::current().record("agent", tracing::field::display(&a));
                            hold = Some(AgentHold::new(&kit.agents, &a, queue.wrap_up, interaction));
                            Event::Reserved(a)
                        }
                        None => {
                            let now_ms = kit.clock.now_ms();
                            let soonest = kit.agents.soonest_wrap_up_end(&queue.name).map(|t| Duration::from_millis((t - now_ms).max(0) as u64));
                            Event::NoAgentFree { soonest }
                        }
                    };
                    m.on_event(now, ev, &mut out);
                }
                Action::RingAgent(a) => {
                    let shown = m.phone().unwrap_or("anonymous").to_string();
                    let call = AgentCall { dispatch: None, caller: &shown, queue: &queue.name, interaction };
                    ringing = ring::start_ringing(kit, &a, &call).await;
                    if ringing.is_none() {
                        m.on_event(now, Event::AgentUnreachable, &mut out);
                    }
                }
                Action::CancelAgent => {
                    if let Some(r) = ringing.take() {
                        r.cancel();
                    }
                }
                Action::ReleaseAgent => {
                    if let Some(mut h) = hold.take() {
                        h.release();
                    }
                }
                Action::SkipPending(p) => match kit.book.skip_reached(&p, &queue.name, interaction).await {
                    Ok(Some(cb)) => tracing::info!(callback = %cb.id, "the caller reached an agent: pending callback skipped"),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "cannot skip the pending callback"),
                },
                Action::Bridge => {
                    let (Some(c), Some(a)) = (&mut caller, &mut agent) else { unreachable!("both legs are up when the call bridges") };
                    match party::bridge(c, a, &kit.prompts.hold_music) {
                        Ok(()) => {
                            if let Some(h) = &mut hold {
                                h.on_call();
                            }
                            m.bridged(&mut out);
                            bridged = true;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot bridge the legs");
                            m.on_event(now, Event::BridgeFailed(e.to_string()), &mut out);
                        }
                    }
                }
                Action::ShowLive { agent } => kit.live.set(interaction, m.phone().unwrap_or(""), &queue.name, agent.as_deref()),
                Action::Book(p) => {
                    let b = book(kit, queue, p, interaction, joined).await;
                    m.on_event(now, Event::Booked(b), &mut out);
                }
                Action::HangUpCaller => {
                    if let Some(c) = caller.take() {
                        c.close();
                    }
                }
                Action::HangUpAgent => {
                    if let Some(a) = agent.take() {
                        a.close();
                        // The caller's media serves the caller alone again (prompts,
                        // another agent's bridge).
                        if let Some(c) = &mut caller {
                            c.media.partner_closed();
                        }
                    }
                }
                // Dropping `hold` puts the agent in wrap-up after a call.
                Action::End(ended) => {
                    tracing::info!(?ended, "inbound call ended");
                    if ended == machine::Ended::CallerLeft {
                        crate::ops::abandoned::caller_left(&*kit.book, queue, caller_phone.as_deref(), interaction, joined, kit.clock.now_ms()).await;
                    }
                    return;
                }
            }
        }
        // The bridge is announced once the actions it queued are done (the live call
        // then names its agent), so whoever reads the line can book on the call with
        // `owner: "me"` at once.
        if std::mem::take(&mut bridged) {
            tracing::info!("customer and agent bridged");
        }
        out.clear();

        let now = Instant::now().into_std();
        if m.holding() && kit.agents.any_available(&queue.name) {
            m.on_event(now, Event::AgentFree, &mut out);
            continue;
        }
        let holding = m.holding();
        let deadline = m.poll_timeout().map(Instant::from_std);
        let wake = tokio::select! {
            ev = caller_event(caller.as_mut(), m.in_call()) => Wake::Event(ev),
            r = ring::next_of(ringing.as_mut()) => Wake::Ring(r),
            ev = agent_event(agent.as_mut(), m.in_call()) => Wake::Event(ev),
            _ = changes.recv(), if holding => Wake::Check,
            _ = tokio::time::sleep(AVAILABILITY_CHECK), if holding => Wake::Check,
            _ = crate::calls::sleep_until(deadline) => Wake::Timer,
        };
        let now = Instant::now().into_std();
        match wake {
            Wake::Event(Some(ev)) => m.on_event(now, ev, &mut out),
            Wake::Event(None) | Wake::Check => {}
            Wake::Ring(r) => {
                ringing = None;
                let ev = match r {
                    RingEvent::Answered(p) => {
                        agent = Some(*p);
                        Event::AgentAnswered
                    }
                    RingEvent::Failed(status) => Event::AgentFailed { status },
                };
                m.on_event(now, ev, &mut out);
            }
            Wake::Timer => m.on_timeout(now, &mut out),
        }
    }
}

/// Books the callback the caller accepted.
async fn book(kit: &CallKit, queue: &Queue, phone: String, interaction: &str, joined: i64) -> Booking {
    let req = NewCallback {
        phone,
        queue: queue.name.clone(),
        origin: Some(Origin::Inbound),
        interaction_id: Some(interaction.to_string()),
        joined_at: Some(joined),
        ..NewCallback::default()
    };
    match kit.book.schedule(req).await {
        Ok(cb) => {
            Span::current().record("callback", tracing::field::display(&cb.id));
            tracing::info!(callback = %cb.id, "callback booked from the inbound offer");
            Booking::Booked
        }
        Err(ScheduleError::Rule(RuleError::Duplicate { existing_id })) => {
            tracing::info!(callback = %existing_id, "the caller already has a callback");
            Booking::Duplicate
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot book the callback");
            Booking::Failed
        }
    }
}

/// What woke the driver.
enum Wake {
    Event(Option<Event>),
    Ring(RingEvent),
    /// Look again whether an agent is available.
    Check,
    Timer,
}

/// The caller's next event, as the machine sees it (`None`: nothing for
/// it). Re-offers are applied here.
async fn caller_event(p: Option<&mut Party>, in_call: bool) -> Option<Event> {
    let Some(p) = p else { return std::future::pending().await };
    let ev = p.next().await;
    p.absorb(&ev, "caller", in_call);
    match ev {
        PartyEvent::Media(MediaEvent::Dtmf { digit, .. }) | PartyEvent::Sip(LegEvent::Dtmf { digit, .. }) => Some(Event::Digit(digit)),
        PartyEvent::Media(MediaEvent::PlayDone) => Some(Event::PromptDone),
        ev if ev.ends_call() => Some(Event::CallerEnded),
        _ => None,
    }
}

/// The answered agent's next event, as the machine sees it: media that never
/// came up is the agent's failure, any other end of the leg a hang-up.
async fn agent_event(p: Option<&mut Party>, in_call: bool) -> Option<Event> {
    let Some(p) = p else { return std::future::pending().await };
    let ev = p.next().await;
    if let PartyEvent::Media(MediaEvent::Failed { reason, set_up: false }) = &ev {
        tracing::info!(reason = %reason, "agent media failed: the next agent is tried");
        return Some(Event::AgentMediaFailed(reason.clone()));
    }
    p.absorb(&ev, "agent", in_call);
    ev.ends_call().then_some(Event::AgentEnded)
}
