//! The inbound call as a sans-IO state machine: it takes what the caller
//! and the agents did and the clock, and says what to do next. No sockets,
//! no clock of its own: the driver (`super::handle`) performs the actions
//! and feeds the events back with `now`.
//!
//! The call, once answered: the DID's greeting, if any. Then an available
//! agent of the queue rings for the agent ring timeout while the caller
//! hears hold music; a decline, no answer or unreachable agent tries the
//! next available one. Answered: a callback the caller still had pending is
//! skipped (queues with `skip_if_reached`), and the two are bridged until
//! either hangs up. An answered agent whose media never comes up (a browser
//! leg's ICE or DTLS failing) counts as one who did not answer: the caller
//! hears hold music again and the next agent is tried.
//!
//! No agent free: when one ends their wrap-up within the queue's
//! `offer_after_wait`, the caller holds for them first. Otherwise (or when
//! that wait passes) the callback offer plays, at most twice; a key may be
//! pressed during it or within [`INPUT_TIMEOUT`] after it. `1` accepts: the
//! callback is booked for the caller's number and the confirmation plays
//! (or "you already have one" for a duplicate), then the call ends. When
//! the caller's number is unknown it is typed on the keypad (digits, then
//! `#` or a pause), read back and confirmed with `1`; three tries. Any other
//! key, or none after two offers, keeps the caller on the line: hold music
//! until an agent frees up (at most [`MAX_HOLD`]), then an agent or the
//! offer again. A caller hanging up at any point ends the call; an agent
//! ringing then is cancelled and freed.

use std::time::{Duration, Instant};

use crate::inbound::number;

/// How long the caller has to press a key after a prompt ends, and between
/// the keys of a typed number.
pub const INPUT_TIMEOUT: Duration = Duration::from_secs(6);
/// Longest wait on hold before the callback is offered again.
pub const MAX_HOLD: Duration = Duration::from_secs(120);
/// A prompt played to its end is waited for its length plus this.
pub const PROMPT_SLACK: Duration = Duration::from_secs(1);
/// Digits of a number typed on the keypad (E.164 has at most 15).
pub const MAX_DIGITS: usize = 15;
/// Times the callback offer is played when no key is pressed.
const OFFERS: u8 = 2;
/// Tries at typing a number.
const NUMBER_TRIES: u8 = 3;

/// A prompt the caller hears once (hold music is looped and has its own
/// action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Say {
    /// The DID's greeting.
    Greeting,
    CallbackOffer,
    EnterNumber,
    YouEntered,
    /// One digit of the typed number, read back.
    Digit(u8),
    PressOneToConfirm,
    /// The callback is booked.
    CallbackConfirm,
    /// The caller already had a callback booked.
    CallbackExists,
    Apology,
}

/// How booking the callback went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    Booked,
    /// The caller already has an active callback on this queue.
    Duplicate,
    /// The book refused or failed.
    Failed,
}

/// What happened, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key, by RFC 4733 telephone-event or SIP INFO.
    Digit(char),
    /// The prompt played to the caller finished.
    PromptDone,
    /// The caller's leg ended: BYE, transport loss, or media timeout.
    CallerEnded,
    /// Answer to [`Action::ReserveAgent`]: this agent is held for the call.
    Reserved(String),
    /// Answer to [`Action::ReserveAgent`]: nobody is free; the soonest end
    /// of an agent's wrap-up, from now, if any.
    NoAgentFree { soonest: Option<Duration> },
    /// While holding: an agent of the queue is available.
    AgentFree,
    /// The agent has no contact to ring.
    AgentUnreachable,
    AgentAnswered,
    /// Every contact of the agent failed; the last status seen (0: none).
    AgentFailed { status: u16 },
    /// The answered agent's leg ended (or its media stopped).
    AgentEnded,
    /// The answered agent's media never came up (a browser leg whose ICE, DTLS or
    /// fingerprint check failed): the agent took no call, so the next one is sought.
    AgentMediaFailed(String),
    BridgeFailed(String),
    /// Answer to [`Action::Book`].
    Booked(Booking),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play a prompt to the caller; `PromptDone` follows its end.
    Play(Say),
    /// Hold music to the caller, looped.
    PlayHoldMusic,
    StopPlaying,
    /// Reserve an available agent of the queue, not one of these; answer
    /// with `Reserved` or `NoAgentFree`.
    ReserveAgent { exclude: Vec<String> },
    /// Ring every registered contact of the reserved agent.
    RingAgent(String),
    /// Cancel every leg still ringing the agent.
    CancelAgent,
    /// Free the reserved agent, who took no call.
    ReleaseAgent,
    /// Skip the caller's pending callback on this queue: they reached an
    /// agent.
    SkipPending(String),
    /// Bridge the caller and the answered agent; the agent is on a call.
    Bridge,
    /// Show the call in the live-call table, with its agent once known.
    ShowLive { agent: Option<String> },
    /// Book a callback on the queue for this number; answer with `Booked`.
    Book(String),
    HangUpCaller,
    HangUpAgent,
    /// The call is over.
    End(Ended),
}

/// How an inbound call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The caller hung up before talking to anyone or booking.
    CallerLeft,
    /// The caller talked to an agent.
    Talked,
    /// The caller and the agent could not be bridged.
    BridgeFailed,
    /// Ended after the offer was accepted: booked, already booked, or the
    /// book failed.
    Offered(Booking),
    /// The offer was accepted but no valid number was typed.
    NoNumber,
}

/// The call's fixed parameters.
pub struct Params {
    /// The caller's number, when caller ID gave a valid one.
    pub phone: Option<String>,
    /// Whether the DID has a greeting.
    pub greeting: bool,
    pub agent_ring_timeout: Duration,
    /// Hold for an agent ending wrap-up within this before the offer (zero:
    /// never).
    pub offer_after_wait: Duration,
    /// Skip the caller's pending callback when they reach an agent.
    pub skip_if_reached: bool,
    /// The length of each prompt.
    pub length: Box<dyn Fn(Say) -> Duration + Send + Sync>,
}

#[derive(Debug)]
enum State {
    Idle,
    /// A prompt that is simply played to its end.
    Greeting { deadline: Instant },
    Reserving,
    AgentRinging { deadline: Instant },
    Bridging { agent: String },
    Bridged,
    /// Hold music until an agent is free. `long`: the caller stayed on the
    /// line after the offer (else: a short wait for a wrap-up to end).
    Holding { deadline: Instant, long: bool },
    /// The callback offer, the `round`th time.
    Offer { round: u8, deadline: Instant },
    /// Typing a number, the `attempt`th try; `keyed`: a key came already.
    Keying { attempt: u8, digits: String, keyed: bool, deadline: Instant },
    /// Reading the number back: the prompts still to play.
    ReadBack { attempt: u8, number: String, rest: Vec<Say>, deadline: Instant },
    Confirming { attempt: u8, number: String, deadline: Instant },
    Booking,
    /// The last prompt; then hang up.
    Closing { deadline: Instant, ended: Ended },
    Done,
}

/// One inbound call, from answer to hang-up.
pub struct InboundCall {
    p: Params,
    state: State,
    /// Agents tried since the caller last waited on hold.
    tried: Vec<String>,
}

impl InboundCall {
    pub fn new(p: Params) -> Self {
        Self { p, state: State::Idle, tried: Vec::new() }
    }

    /// The caller's number as known now (from caller ID or typed).
    pub fn phone(&self) -> Option<&str> {
        self.p.phone.as_deref()
    }

    /// Starts the call: the greeting, or an agent.
    pub fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.p.greeting {
            let deadline = self.play(now, Say::Greeting, out);
            self.state = State::Greeting { deadline };
        } else {
            self.seek_agent(out);
        }
    }

    /// While true the driver reports `AgentFree` as soon as an agent of the
    /// queue is available.
    pub fn holding(&self) -> bool {
        matches!(self.state, State::Holding { .. })
    }

    /// The caller and the agent are talking.
    pub fn in_call(&self) -> bool {
        matches!(self.state, State::Bridged)
    }

    /// The next moment [`on_timeout`](Self::on_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Greeting { deadline }
            | State::AgentRinging { deadline }
            | State::Holding { deadline, .. }
            | State::Offer { deadline, .. }
            | State::Keying { deadline, .. }
            | State::ReadBack { deadline, .. }
            | State::Confirming { deadline, .. }
            | State::Closing { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.poll_timeout() {
            Some(d) if d <= now => {}
            _ => return,
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Greeting { .. } => self.seek_agent(out),
            State::AgentRinging { .. } => {
                out.push(Action::CancelAgent);
                self.agent_missed(out);
            }
            State::Holding { long, .. } => self.held(now, long, false, out),
            State::Offer { round, .. } => self.offer_unanswered(now, round, out),
            State::Keying { attempt, digits, .. } => self.typed(now, attempt, digits, out),
            State::ReadBack { attempt, number, rest, .. } => self.read_back(now, attempt, number, rest, out),
            State::Confirming { attempt, .. } => self.next_try(now, attempt, out),
            State::Closing { ended, .. } => self.hang_up(ended, out),
            s => self.state = s,
        }
    }

    pub fn on_event(&mut self, now: Instant, ev: Event, out: &mut Vec<Action>) {
        match (std::mem::replace(&mut self.state, State::Done), ev) {
            (State::Done, _) => {}
            // The caller hanging up ends the call wherever it was.
            (State::AgentRinging { .. }, Event::CallerEnded) => {
                out.push(Action::CancelAgent);
                out.push(Action::ReleaseAgent);
                self.hang_up(Ended::CallerLeft, out);
            }
            (State::Bridging { .. } | State::Bridged, Event::CallerEnded | Event::AgentEnded) => {
                out.push(Action::HangUpAgent);
                self.hang_up(Ended::Talked, out);
            }
            (State::Bridging { .. } | State::Bridged, Event::AgentMediaFailed(_)) => {
                // Like an agent who did not answer: hold music again while the next is
                // sought; this one is freed, not put in wrap-up.
                out.push(Action::HangUpAgent);
                out.push(Action::ShowLive { agent: None });
                out.push(Action::PlayHoldMusic);
                self.agent_missed(out);
            }
            (State::Bridging { .. }, Event::BridgeFailed(_)) => {
                out.push(Action::HangUpAgent);
                self.hang_up(Ended::BridgeFailed, out);
            }
            (State::Closing { ended, .. }, Event::CallerEnded | Event::PromptDone) => self.hang_up(ended, out),
            (_, Event::CallerEnded) => self.hang_up(Ended::CallerLeft, out),

            (State::Greeting { .. }, Event::PromptDone) => self.seek_agent(out),
            (State::Reserving, Event::Reserved(agent)) => {
                self.tried.push(agent.clone());
                out.push(Action::PlayHoldMusic);
                out.push(Action::RingAgent(agent));
                self.state = State::AgentRinging { deadline: now + self.p.agent_ring_timeout };
            }
            (State::Reserving, Event::NoAgentFree { soonest }) => {
                let wait = self.p.offer_after_wait;
                if !wait.is_zero() && soonest.is_some_and(|s| s <= wait) {
                    out.push(Action::PlayHoldMusic);
                    self.state = State::Holding { deadline: now + wait, long: false };
                } else {
                    self.offer(now, 1, out);
                }
            }
            (State::AgentRinging { .. }, Event::AgentAnswered) => {
                let agent = self.tried.last().cloned().unwrap_or_default();
                if let (true, Some(p)) = (self.p.skip_if_reached, &self.p.phone) {
                    out.push(Action::SkipPending(p.clone()));
                }
                out.push(Action::Bridge);
                self.state = State::Bridging { agent };
            }
            (State::AgentRinging { .. }, Event::AgentFailed { .. } | Event::AgentUnreachable) => self.agent_missed(out),
            (State::Holding { long, .. }, Event::AgentFree) => self.held(now, long, true, out),
            (State::Offer { .. }, Event::Digit(k)) => {
                out.push(Action::StopPlaying);
                if k == '1' {
                    self.accepted(now, out);
                } else {
                    self.stay_on_line(now, out);
                }
            }
            (State::Offer { round, .. }, Event::PromptDone) => self.state = State::Offer { round, deadline: now + INPUT_TIMEOUT },
            (State::Keying { attempt, mut digits, keyed, .. }, Event::Digit(k)) => {
                if !keyed {
                    out.push(Action::StopPlaying);
                }
                if k == '#' {
                    return self.typed(now, attempt, digits, out);
                }
                if let Some(d) = k.to_digit(10) {
                    digits.push(char::from(b'0' + d as u8));
                    if digits.len() >= MAX_DIGITS {
                        return self.typed(now, attempt, digits, out);
                    }
                }
                self.state = State::Keying { attempt, digits, keyed: true, deadline: now + INPUT_TIMEOUT };
            }
            (State::Keying { attempt, digits, keyed: false, .. }, Event::PromptDone) => {
                self.state = State::Keying { attempt, digits, keyed: false, deadline: now + INPUT_TIMEOUT };
            }
            (State::ReadBack { attempt, number, rest, .. }, Event::PromptDone) => self.read_back(now, attempt, number, rest, out),
            (State::Confirming { attempt, number, .. }, Event::Digit(k)) => {
                out.push(Action::StopPlaying);
                if k == '1' {
                    self.p.phone = Some(number.clone());
                    self.book(number, out);
                } else {
                    self.next_try(now, attempt, out);
                }
            }
            (State::Confirming { attempt, number, .. }, Event::PromptDone) => {
                self.state = State::Confirming { attempt, number, deadline: now + INPUT_TIMEOUT };
            }
            (State::Booking, Event::Booked(b)) => {
                let say = match b {
                    Booking::Booked => Say::CallbackConfirm,
                    Booking::Duplicate => Say::CallbackExists,
                    Booking::Failed => Say::Apology,
                };
                self.close(now, say, Ended::Offered(b), out);
            }
            // Anything else changes nothing in this state.
            (s, _) => self.state = s,
        }
    }

    /// The bridge asked for with [`Action::Bridge`] is up.
    pub fn bridged(&mut self, out: &mut Vec<Action>) {
        if let State::Bridging { agent } = &self.state {
            out.push(Action::ShowLive { agent: Some(agent.clone()) });
            self.state = State::Bridged;
        }
    }

    /// Plays `say` and returns when it is over at the latest.
    fn play(&self, now: Instant, say: Say, out: &mut Vec<Action>) -> Instant {
        out.push(Action::Play(say));
        now + (self.p.length)(say) + PROMPT_SLACK
    }

    fn seek_agent(&mut self, out: &mut Vec<Action>) {
        out.push(Action::ReserveAgent { exclude: self.tried.clone() });
        self.state = State::Reserving;
    }

    /// The agent declined, did not answer, or could not be rung: the next.
    fn agent_missed(&mut self, out: &mut Vec<Action>) {
        out.push(Action::ReleaseAgent);
        self.seek_agent(out);
    }

    /// The hold is over: an agent is free (`free`), or the time passed.
    fn held(&mut self, now: Instant, long: bool, free: bool, out: &mut Vec<Action>) {
        if long {
            // After the long hold every agent may be tried again.
            self.tried.clear();
            self.seek_agent(out);
        } else if free {
            self.seek_agent(out);
        } else {
            self.offer(now, 1, out);
        }
    }

    fn offer(&mut self, now: Instant, round: u8, out: &mut Vec<Action>) {
        out.push(Action::StopPlaying);
        let deadline = self.play(now, Say::CallbackOffer, out) + INPUT_TIMEOUT;
        self.state = State::Offer { round, deadline };
    }

    fn offer_unanswered(&mut self, now: Instant, round: u8, out: &mut Vec<Action>) {
        if round < OFFERS {
            self.offer(now, round + 1, out);
        } else {
            self.stay_on_line(now, out);
        }
    }

    fn stay_on_line(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::PlayHoldMusic);
        self.state = State::Holding { deadline: now + MAX_HOLD, long: true };
    }

    fn accepted(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.p.phone.clone() {
            Some(p) => self.book(p, out),
            None => self.ask_number(now, 1, out),
        }
    }

    fn ask_number(&mut self, now: Instant, attempt: u8, out: &mut Vec<Action>) {
        let deadline = self.play(now, Say::EnterNumber, out) + INPUT_TIMEOUT;
        self.state = State::Keying { attempt, digits: String::new(), keyed: false, deadline };
    }

    /// The number is typed (`#`, the longest number, or a pause): read it
    /// back when it is a valid E.164 number, else try again.
    fn typed(&mut self, now: Instant, attempt: u8, digits: String, out: &mut Vec<Action>) {
        let Some(number) = number::to_e164(&format!("+{digits}")) else { return self.next_try(now, attempt, out) };
        let mut rest: Vec<Say> = digits.bytes().map(|b| Say::Digit(b - b'0')).collect();
        rest.reverse();
        let deadline = self.play(now, Say::YouEntered, out);
        self.state = State::ReadBack { attempt, number, rest, deadline };
    }

    fn read_back(&mut self, now: Instant, attempt: u8, number: String, mut rest: Vec<Say>, out: &mut Vec<Action>) {
        match rest.pop() {
            Some(say) => {
                let deadline = self.play(now, say, out);
                self.state = State::ReadBack { attempt, number, rest, deadline };
            }
            None => {
                let deadline = self.play(now, Say::PressOneToConfirm, out) + INPUT_TIMEOUT;
                self.state = State::Confirming { attempt, number, deadline };
            }
        }
    }

    fn next_try(&mut self, now: Instant, attempt: u8, out: &mut Vec<Action>) {
        if attempt < NUMBER_TRIES {
            self.ask_number(now, attempt + 1, out);
        } else {
            self.close(now, Say::Apology, Ended::NoNumber, out);
        }
    }

    fn book(&mut self, phone: String, out: &mut Vec<Action>) {
        out.push(Action::Book(phone));
        self.state = State::Booking;
    }

    /// Plays the last prompt, then hangs up.
    fn close(&mut self, now: Instant, say: Say, ended: Ended, out: &mut Vec<Action>) {
        let deadline = self.play(now, say, out);
        self.state = State::Closing { deadline, ended };
    }

    fn hang_up(&mut self, ended: Ended, out: &mut Vec<Action>) {
        out.push(Action::HangUpCaller);
        out.push(Action::End(ended));
        self.state = State::Done;
    }
}

#[cfg(test)]
impl crate::calls::sim::Machine for InboundCall {
    type Event = Event;
    type Action = Action;
    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        InboundCall::start(self, now, out)
    }
    fn on_event(&mut self, now: Instant, ev: Event, out: &mut Vec<Action>) {
        InboundCall::on_event(self, now, ev, out)
    }
    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        InboundCall::on_timeout(self, now, out)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        InboundCall::poll_timeout(self)
    }
}
