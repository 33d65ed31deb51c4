//! What the dial flows share: the events a flow machine takes, the actions
//! it returns, and the thin async driver that performs those actions on
//! the real SIP and media legs and feeds their events back with `now`.
//!
//! The machines ([`customer_first::machine`](super::customer_first::machine),
//! [`agent_first::machine`](super::agent_first::machine)) hold the rules
//! and the timers; the driver holds the legs and owns no rule of its own
//! beyond "an action is performed, an event is reported".

use std::sync::Arc;
use std::time::Instant as StdInstant;

use tokio::time::Instant;

use crate::amd::AmdResult;
use crate::config::{OnMachine, Queue};
use crate::media::call::MediaEvent;
use crate::media::player::Prompt;
use crate::scheduler::model::{Amd, Dispatch};
use crate::sip::calls::LegEvent;

use crate::calls::hold::AgentHold;
use crate::calls::party::{self as legs, with, Party, PartyEvent};
use crate::calls::ring::{self, AgentCall, RingEvent, Ringing};
use crate::scheduler::model::Outcome;

use super::attempt::{AttemptLog, Finish};
use super::party;
use super::Dialler;



/// A moment of the attempt's timeline the machine records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ringing,
    Answered,
    Amd,
    Bridged,
}

/// What happened, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The customer's INVITE could not be sent; how to record it.
    DialFailed(Finish),
    /// A 18x on the customer's INVITE; `early_media` for a 183.
    CustomerProgress { early_media: bool },
    /// A 2xx; `usable` is false when its SDP answer could not be applied.
    CustomerAnswered { usable: bool },
    /// A final failure response to the customer's INVITE.
    CustomerFailed { status: u16 },
    /// The customer's leg ended: BYE, transport loss, or media timeout.
    CustomerEnded,
    Amd(AmdResult),
    /// The machine's beep or the end of its greeting.
    Beep,
    /// The prompt played to the customer (not a looped one) finished.
    PromptDone,
    /// The machine message was loaded (its length), or could not be.
    MessageLoaded(Option<std::time::Duration>),
    /// The agent has no contact to ring.
    AgentUnreachable,
    AgentAnswered,
    /// Every contact of the agent failed; the last status seen (0: none).
    AgentFailed { status: u16 },
    /// The answered agent's SIP leg ended.
    AgentEnded,
    /// No RTP from the answered agent for the media timeout.
    AgentMediaTimeout,
    /// The answered agent's media never came up (a browser agent's DTLS handshake
    /// failed or its certificate did not match the answer's fingerprint); the reason.
    AgentMediaFailed(String),
    /// The prompt played to the agent (not a looped one) finished.
    AgentPromptDone,
    /// Answer to [`Action::RelayEarlyMedia`]: whether the legs are bridged.
    EarlyMediaRelayed(bool),
    /// Answer to [`Action::ReserveAgent`].
    Reserved(Option<String>),
    /// The two legs could not be bridged.
    BridgeFailed(String),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// INVITE the customer through the queue's trunk (answers with
    /// `DialFailed` when it cannot be sent).
    DialCustomer,
    Mark(Step),
    /// CANCEL the ringing customer leg.
    CancelCustomer,
    /// Show the call in the live-call table, with its agent once known.
    ShowLive { agent: Option<String> },
    StartAmd,
    SetAmd(Amd),
    /// Load the queue's machine message; answer with `MessageLoaded`.
    LoadMessage,
    PlayMessage,
    /// The hold prompt to the customer, looped, while the agent rings.
    PlayHold,
    StopPlaying,
    PlayApology,
    /// Ring-back to the agent, looped, while the customer's phone rings.
    PlayRingback,
    /// The busy tone to the agent, looped.
    PlayBusyTone,
    /// Bridge the customer's early media (183) to the agent.
    RelayEarlyMedia,
    /// Ring every registered contact of this agent.
    RingAgent(String),
    /// Cancel every leg still ringing the agent.
    CancelAgent,
    /// The held agent is in a call now (wrap-up follows when it ends).
    AgentOnCall,
    /// Free the held agent, who took no call.
    ReleaseAgent,
    /// Reserve one more agent of the queue, not one of these.
    ReserveAgent { exclude: Vec<String> },
    /// Hold this newly reserved agent for the attempt.
    HoldAgent(String),
    /// Bridge the customer and the answered agent.
    Bridge,
    /// Hang up the customer's leg and release its media.
    HangUpCustomer,
    /// Release the customer's media only (the leg is already over).
    CloseCustomerMedia,
    HangUpAgent,
    /// The attempt is over.
    End(Finish),
}

/// A dial flow's state machine, as the driver sees it.
pub trait Flow {
    fn start(&mut self, now: StdInstant, out: &mut Vec<Action>);
    fn on_event(&mut self, now: StdInstant, ev: Event, out: &mut Vec<Action>);
    fn on_timeout(&mut self, now: StdInstant, out: &mut Vec<Action>);
    /// The next moment `on_timeout` must be called.
    fn poll_timeout(&self) -> Option<StdInstant>;
    /// The bridge asked for with [`Action::Bridge`] is up.
    fn bridged(&mut self, out: &mut Vec<Action>);
    /// Before answer only the customer's SIP leg is read; media events wait.
    fn wants_media(&self) -> bool;
    /// Whether a 2xx now is taken (not one that crossed our CANCEL), so its
    /// SDP is applied.
    fn takes_answer(&self) -> bool;
    /// The customer and the agent are talking.
    fn in_call(&self) -> bool;
}

/// How a call being bridged, or bridged, ends on `ev`, if it does; both
/// legs are hung up. A bridge that failed, or an agent whose media never came
/// up, is `agent_no_answer` (the agent took no call); once bridged, a hang-up
/// or a media timeout on either side is `human`.
pub fn bridge_ending(ev: &Event, out: &mut Vec<Action>) -> Option<Finish> {
    let f = match ev {
        Event::BridgeFailed(e) => Finish::new(Outcome::AgentNoAnswer, Some(200)).note(format!("bridge failed: {e}")),
        Event::AgentMediaFailed(e) => agent_media_failed(e),
        Event::CustomerEnded | Event::AgentEnded | Event::AgentMediaTimeout => Finish::new(Outcome::Human, Some(200)),
        _ => return None,
    };
    out.push(Action::HangUpCustomer);
    out.push(Action::HangUpAgent);
    Some(f)
}

/// How an attempt ends when the answered agent's media never came up.
pub fn agent_media_failed(reason: &str) -> Finish {
    Finish::new(Outcome::AgentNoAnswer, Some(200)).note(format!("agent media failed: {reason}"))
}

/// Runs `m` to its end on the real legs: performs its actions, feeds it
/// the legs' events and its deadlines, and returns how the attempt ended.
/// The held agent is freed (or put in wrap-up after a call) on return.
pub async fn drive(d: &Dialler, dispatch: &Dispatch, queue: &Queue, interaction: &str, log: &mut AttemptLog, m: &mut impl Flow) -> Finish {
    let cb = &dispatch.callback;
    let what = cb.id.to_string();
    let mut hold = AgentHold::new(&d.agents, &dispatch.agent, queue.wrap_up, &what);
    let mut customer: Option<Party> = None;
    let mut agent: Option<Party> = None;
    let mut ringing: Option<Ringing> = None;
    let mut message: Option<Arc<Prompt>> = None;
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
                Action::DialCustomer => match party::dial(d, dispatch, queue).await {
                    Ok(p) => {
                        tracing::Span::current().record("call_id", tracing::field::display(&p.sip.call_id));
                        customer = Some(p);
                        log.mark(|t| &mut t.dialed_at);
                    }
                    Err(f) => m.on_event(now, Event::DialFailed(f), &mut out),
                },
                Action::Mark(step) => log.mark(match step {
                    Step::Ringing => |t| &mut t.ringing_at,
                    Step::Answered => |t| &mut t.answered_at,
                    Step::Amd => |t| &mut t.amd_at,
                    Step::Bridged => |t| &mut t.bridged_at,
                }),
                Action::CancelCustomer => {
                    if let Some(c) = &customer {
                        c.sip.hangup();
                    }
                }
                Action::ShowLive { agent } => d.live.set(interaction, &cb.phone, &cb.queue, agent.as_deref()),
                Action::StartAmd => with(&mut customer, |c| c.media.start_amd()),
                Action::SetAmd(a) => log.amd = Some(a),
                Action::LoadMessage => {
                    let loaded = match &queue.on_machine {
                        OnMachine::Message(path) => match Prompt::from_wav(path) {
                            Ok(p) => Some(Arc::new(p)),
                            Err(e) => {
                                tracing::error!(file = %path.display(), error = %e, "cannot load the machine message");
                                None
                            }
                        },
                        _ => None,
                    };
                    let len = loaded.as_ref().map(|p| p.duration());
                    message = loaded;
                    m.on_event(now, Event::MessageLoaded(len), &mut out);
                }
                Action::PlayMessage => {
                    if let (Some(c), Some(p)) = (&mut customer, &message) {
                        c.media.play(p.clone(), false);
                    }
                }
                Action::PlayHold => with(&mut customer, |c| c.media.play(d.prompts.please_hold.clone(), true)),
                Action::StopPlaying => with(&mut customer, |c| c.media.stop_playing()),
                Action::PlayApology => with(&mut customer, |c| c.media.play(d.prompts.apology.clone(), false)),
                Action::PlayRingback => with(&mut agent, |a| a.media.play(d.prompts.ringback.clone(), true)),
                Action::PlayBusyTone => with(&mut agent, |a| a.media.play(d.prompts.busy_tone.clone(), true)),
                Action::RelayEarlyMedia => {
                    let relayed = match (&mut customer, &mut agent) {
                        (Some(c), Some(a)) => {
                            a.media.stop_playing();
                            match c.media.bridge(&mut a.media) {
                                Ok(()) => true,
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot relay early media to the agent");
                                    false
                                }
                            }
                        }
                        _ => false,
                    };
                    m.on_event(now, Event::EarlyMediaRelayed(relayed), &mut out);
                }
                Action::RingAgent(a) => {
                    let call = AgentCall { dispatch: Some(dispatch), caller: &cb.phone, queue: &cb.queue, interaction };
                    ringing = ring::start_ringing(d, &a, &call).await;
                    match ringing {
                        Some(_) => log.mark(|t| &mut t.agent_ringing_at),
                        None => m.on_event(now, Event::AgentUnreachable, &mut out),
                    }
                }
                Action::CancelAgent => {
                    if let Some(r) = ringing.take() {
                        r.cancel();
                    }
                }
                Action::AgentOnCall => hold.on_call(),
                Action::ReleaseAgent => hold.release(),
                Action::ReserveAgent { exclude } => {
                    let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
                    let next = d.agents.reserve_for(&cb.queue, &exclude, &what);
                    m.on_event(now, Event::Reserved(next), &mut out);
                }
                Action::HoldAgent(a) => {
                    tracing::Span::current().record("agent", tracing::field::display(&a));
                    hold = AgentHold::new(&d.agents, &a, queue.wrap_up, &what);
                    log.agent = a;
                }
                Action::Bridge => {
                    log.agent = hold.agent.clone();
                    let (Some(c), Some(a)) = (&mut customer, &mut agent) else { unreachable!("both legs are up when the flow bridges") };
                    match legs::bridge(c, a, &d.prompts.hold_music) {
                        Ok(()) => {
                            hold.on_call();
                            m.bridged(&mut out);
                            bridged = true;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot bridge the legs");
                            m.on_event(now, Event::BridgeFailed(e.to_string()), &mut out);
                        }
                    }
                }
                Action::HangUpCustomer => {
                    if let Some(c) = customer.take() {
                        c.close();
                    }
                }
                Action::CloseCustomerMedia => {
                    if let Some(c) = customer.take() {
                        c.media.close();
                    }
                }
                Action::HangUpAgent => {
                    if let Some(a) = agent.take() {
                        a.close();
                    }
                }
                // Dropping `hold` puts the agent in wrap-up after a call, or
                // frees them.
                Action::End(f) => return f,
            }
        }
        // The bridge is announced once the actions it queued are done (the live call
        // then names its agent), so whoever reads the line can book on the call with
        // `owner: "me"` at once.
        if std::mem::take(&mut bridged) {
            tracing::info!("customer and agent bridged");
        }
        out.clear();

        // Wait for the next event or deadline.
        let deadline = m.poll_timeout().map(Instant::from_std);
        let wake = tokio::select! {
            ev = customer_event(customer.as_mut(), m.wants_media(), m.takes_answer(), m.in_call()) => Wake::Event(ev),
            r = ring::next_of(ringing.as_mut()) => Wake::Ring(r),
            ev = agent_event(agent.as_mut(), m.in_call()) => Wake::Event(ev),
            _ = crate::calls::sleep_until(deadline) => Wake::Timer,
        };
        let now = Instant::now().into_std();
        match wake {
            Wake::Event(Some(ev)) => m.on_event(now, ev, &mut out),
            Wake::Event(None) => {}
            Wake::Ring(r) => {
                ringing = None;
                let ev = match r {
                    RingEvent::Answered(p) => {
                        log.mark(|t| &mut t.agent_answered_at);
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

/// What woke the driver.
enum Wake {
    Event(Option<Event>),
    Ring(RingEvent),
    Timer,
}

/// The customer's next event, as a machine sees it (`None`: nothing for
/// it). Re-offers are applied here.
async fn customer_event(p: Option<&mut Party>, wants_media: bool, takes_answer: bool, in_call: bool) -> Option<Event> {
    let Some(p) = p else { return std::future::pending().await };
    let ev = if wants_media {
        p.next().await
    } else {
        match p.sip.events.recv().await {
            Some(e) => PartyEvent::Sip(e),
            None => PartyEvent::Gone,
        }
    };
    p.absorb(&ev, "customer", in_call);
    match ev {
        PartyEvent::Sip(LegEvent::Progress { status, sdp }) => {
            p.accept(&sdp);
            Some(Event::CustomerProgress { early_media: status == 183 })
        }
        PartyEvent::Sip(LegEvent::Answered { sdp }) => Some(Event::CustomerAnswered { usable: !takes_answer || p.accept(&sdp) }),
        PartyEvent::Sip(LegEvent::Failed { status }) => Some(Event::CustomerFailed { status }),
        PartyEvent::Media(MediaEvent::Amd(decision)) => Some(Event::Amd(decision.result)),
        PartyEvent::Media(MediaEvent::Beep { .. } | MediaEvent::GreetingEnded) => Some(Event::Beep),
        PartyEvent::Media(MediaEvent::PlayDone) => Some(Event::PromptDone),
        ev if ev.ends_call() => Some(Event::CustomerEnded),
        _ => None,
    }
}

/// The answered agent's next event, as a machine sees it.
async fn agent_event(p: Option<&mut Party>, in_call: bool) -> Option<Event> {
    let Some(p) = p else { return std::future::pending().await };
    let ev = p.next().await;
    p.absorb(&ev, "agent", in_call);
    match ev {
        PartyEvent::Media(MediaEvent::Timeout) => Some(Event::AgentMediaTimeout),
        // Media that never came up: the agent took no call. Once it had flowed, a
        // failure (ICE consent lost) ends the call like a hang-up.
        PartyEvent::Media(MediaEvent::Failed { reason, set_up: false }) => Some(Event::AgentMediaFailed(reason)),
        PartyEvent::Media(MediaEvent::PlayDone) => Some(Event::AgentPromptDone),
        ev if ev.ends_call() => Some(Event::AgentEnded),
        _ => None,
    }
}

#[cfg(test)]
impl<F: Flow> crate::calls::sim::Machine for F {
    type Event = Event;
    type Action = Action;
    fn start(&mut self, now: StdInstant, out: &mut Vec<Action>) {
        Flow::start(self, now, out)
    }
    fn on_event(&mut self, now: StdInstant, ev: Event, out: &mut Vec<Action>) {
        Flow::on_event(self, now, ev, out)
    }
    fn on_timeout(&mut self, now: StdInstant, out: &mut Vec<Action>) {
        Flow::on_timeout(self, now, out)
    }
    fn poll_timeout(&self) -> Option<StdInstant> {
        Flow::poll_timeout(self)
    }
}

/// What the flows' tests share: the timeouts their queue is set up with,
/// and reading how an attempt ended.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Duration;

    use super::{Action, Finish};

    pub const RING: Duration = Duration::from_secs(30);
    pub const AGENT_RING: Duration = Duration::from_secs(15);

    /// The outcome the last action ends the attempt with.
    pub fn finish(out: &[Action]) -> &Finish {
        match out.last() {
            Some(Action::End(f)) => f,
            other => panic!("not ended: {other:?} in {out:?}"),
        }
    }
}
