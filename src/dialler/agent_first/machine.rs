//! The agent-first flow as a sans-IO state machine. Ring the reserved
//! agent (for the agent ring timeout); once they answer, dial the customer
//! while the agent hears ring-back, or the carrier's early media as soon as
//! a 183 comes; ring timeout from the first 18x, then CANCEL. Answered: the
//! legs are bridged, and the first hang-up (or media timeout) on either
//! side ends the call, `human`. Not answered (busy, no answer, failure):
//! the agent hears the busy tone for [`BUSY_TONE`], then the attempt ends
//! with that outcome. An agent who hangs up before the customer answers
//! cancels the customer's leg (`agent_unavailable`). No AMD: the agent
//! listens.

use std::time::{Duration, Instant};

use crate::scheduler::model::Outcome;

use super::super::attempt::Finish;
use super::super::flow::{self, Action, Event, Flow, Step};
use super::super::outcome;

/// How long the agent hears the busy tone before the call ends.
pub const BUSY_TONE: Duration = Duration::from_secs(3);
/// Longest wait for a final response once we CANCELled a ringing leg.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The attempt's fixed parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// The reserved agent.
    pub agent: String,
    pub agent_ring_timeout: Duration,
    /// From the customer's first 18x to CANCEL.
    pub ring_timeout: Duration,
}

#[derive(Debug)]
enum State {
    Idle,
    RingingAgent { deadline: Instant },
    /// `relayed`: the customer's early media reaches the agent.
    Dialling { ring_deadline: Option<Instant>, relayed: bool },
    Cancelling { deadline: Instant, relayed: bool },
    BusyTone { deadline: Instant, finish: Finish },
    Bridging,
    Bridged,
    Done,
}

/// One agent-first attempt.
#[derive(Debug)]
pub struct AgentFirst {
    p: Params,
    state: State,
}

impl AgentFirst {
    pub fn new(p: Params) -> Self {
        Self { p, state: State::Idle }
    }

    fn busy_tone(&mut self, now: Instant, finish: Finish, out: &mut Vec<Action>) {
        out.push(Action::PlayBusyTone);
        self.state = State::BusyTone { deadline: now + BUSY_TONE, finish };
    }

    fn end(&mut self, out: &mut Vec<Action>, f: Finish) {
        self.state = State::Done;
        out.push(Action::End(f));
    }
}

impl Flow for AgentFirst {
    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::RingAgent(self.p.agent.clone()));
        self.state = State::RingingAgent { deadline: now + self.p.agent_ring_timeout };
    }

    fn on_event(&mut self, now: Instant, ev: Event, out: &mut Vec<Action>) {
        match (std::mem::replace(&mut self.state, State::Done), ev) {
            (State::RingingAgent { .. }, Event::AgentAnswered) => {
                out.push(Action::AgentOnCall);
                out.push(Action::ShowLive { agent: Some(self.p.agent.clone()) });
                // The agent hears ring-back until the carrier sends early media.
                out.push(Action::PlayRingback);
                out.push(Action::DialCustomer);
                self.state = State::Dialling { ring_deadline: None, relayed: false };
            }
            (State::RingingAgent { .. }, Event::AgentUnreachable) => self.end(out, Finish::new(Outcome::AgentUnavailable, None)),
            (State::RingingAgent { .. }, Event::AgentFailed { status }) => {
                let status = (![0, 408, 480].contains(&status)).then_some(status);
                self.end(out, Finish::new(Outcome::AgentNoAnswer, status));
            }
            (State::Dialling { ring_deadline, relayed }, Event::CustomerProgress { early_media }) => {
                out.push(Action::Mark(Step::Ringing));
                if early_media && !relayed {
                    out.push(Action::RelayEarlyMedia);
                }
                self.state = State::Dialling { ring_deadline: ring_deadline.or(Some(now + self.p.ring_timeout)), relayed };
            }
            (State::Cancelling { deadline, relayed }, Event::CustomerProgress { early_media }) => {
                out.push(Action::Mark(Step::Ringing));
                if early_media && !relayed {
                    out.push(Action::RelayEarlyMedia);
                }
                self.state = State::Cancelling { deadline, relayed };
            }
            (State::Dialling { ring_deadline, .. }, Event::EarlyMediaRelayed(relayed)) => self.state = State::Dialling { ring_deadline, relayed },
            (State::Cancelling { deadline, .. }, Event::EarlyMediaRelayed(relayed)) => self.state = State::Cancelling { deadline, relayed },
            (State::Dialling { .. }, Event::DialFailed(f)) => self.busy_tone(now, f, out),
            (State::Dialling { .. }, Event::CustomerAnswered { usable }) => {
                out.push(Action::Mark(Step::Answered));
                if usable {
                    out.push(Action::Bridge);
                    self.state = State::Bridging;
                } else {
                    out.push(Action::HangUpCustomer);
                    self.busy_tone(now, Finish { retry: true, ..Finish::new(Outcome::Failed, Some(200)).note("the answer's SDP was unusable") }, out);
                }
            }
            // The 200 crossed our CANCEL: the SIP layer ACKs and BYEs it.
            (s @ State::Cancelling { .. }, Event::CustomerAnswered { .. }) => self.state = s,
            (s @ (State::Dialling { .. } | State::Cancelling { .. }), Event::CustomerFailed { status }) => {
                out.push(Action::CloseCustomerMedia);
                let cancelled = matches!(s, State::Cancelling { .. });
                self.busy_tone(now, outcome::for_status(status, cancelled).into(), out);
            }
            (s @ (State::Dialling { .. } | State::Cancelling { .. }), Event::CustomerEnded) => {
                out.push(Action::CloseCustomerMedia);
                let f = if matches!(s, State::Cancelling { .. }) { outcome::for_status(487, true) } else { outcome::for_status(503, false) };
                self.busy_tone(now, f.into(), out);
            }
            (State::Dialling { .. } | State::Cancelling { .. }, Event::AgentEnded) => {
                out.push(Action::HangUpCustomer);
                self.end(out, Finish::new(Outcome::AgentUnavailable, None).note("the agent hung up before the customer answered"));
            }
            (State::Dialling { .. } | State::Cancelling { .. }, Event::AgentMediaFailed(reason)) => {
                out.push(Action::HangUpCustomer);
                out.push(Action::HangUpAgent);
                self.end(out, flow::agent_media_failed(&reason));
            }
            (State::BusyTone { finish, .. }, Event::AgentPromptDone | Event::AgentMediaFailed(_) | Event::AgentEnded | Event::AgentMediaTimeout) => {
                out.push(Action::HangUpAgent);
                self.end(out, finish);
            }
            (s @ (State::Bridging | State::Bridged), ev) => match flow::bridge_ending(&ev, out) {
                Some(f) => self.end(out, f),
                None => self.state = s,
            },
            // Anything else changes nothing in this state.
            (s, _) => self.state = s,
        }
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.poll_timeout() {
            Some(d) if d <= now => {}
            _ => return,
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::RingingAgent { .. } => {
                out.push(Action::CancelAgent);
                self.end(out, Finish::new(Outcome::AgentNoAnswer, None));
            }
            State::Dialling { relayed, .. } => {
                tracing::info!("ring timeout: cancelling the customer leg");
                out.push(Action::CancelCustomer);
                self.state = State::Cancelling { deadline: now + CANCEL_GRACE, relayed };
            }
            State::Cancelling { .. } => {
                tracing::warn!("no final response after CANCEL");
                out.push(Action::CloseCustomerMedia);
                self.busy_tone(now, outcome::for_status(487, true).into(), out);
            }
            State::BusyTone { finish, .. } => {
                out.push(Action::HangUpAgent);
                self.end(out, finish);
            }
            s => self.state = s,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::RingingAgent { deadline } | State::Cancelling { deadline, .. } | State::BusyTone { deadline, .. } => Some(deadline),
            State::Dialling { ring_deadline, .. } => ring_deadline,
            _ => None,
        }
    }

    fn bridged(&mut self, out: &mut Vec<Action>) {
        if matches!(self.state, State::Bridging) {
            out.push(Action::Mark(Step::Bridged));
            out.push(Action::ShowLive { agent: Some(self.p.agent.clone()) });
            self.state = State::Bridged;
        }
    }

    fn wants_media(&self) -> bool {
        matches!(self.state, State::Bridging | State::Bridged)
    }

    fn takes_answer(&self) -> bool {
        matches!(self.state, State::Dialling { .. })
    }

    fn in_call(&self) -> bool {
        matches!(self.state, State::Bridged)
    }
}
