//! The customer-first flow as a sans-IO state machine: it takes what
//! happened on the customer's leg, the agent's ringing and the clock, and
//! says what to do next. No sockets, no clock of its own: the driver
//! (`super::run`) performs the actions and feeds the events back with `now`.
//!
//! The flow: dial the customer; ring timeout from the first 18x, then
//! CANCEL (`no_answer`, whatever the carrier answers then). Answered: AMD on
//! the first seconds (at most [`AMD_LIMIT`]; no verdict counts as a person).
//! A machine: the queue's `on_machine` (retry later, count as done, or a
//! message after the beep or end of greeting, waited for at most
//! [`BEEP_LIMIT`]). A person: hold prompt while the reserved agent rings for
//! the agent ring timeout; a decline or no answer tries a second agent for
//! a queue callback, never for an owned one; with no agent left, the
//! apology prompt and `agent_no_answer`. A customer hang-up while the agent
//! rings cancels the agent's legs. Bridged: the first hang-up (or media
//! timeout) on either side ends the call, `human`.

use std::time::{Duration, Instant};

use crate::amd::AmdResult;
use crate::scheduler::model::{Amd, Outcome};

use super::super::attempt::Finish;
use super::super::flow::{self, Action, Event, Flow, Step};
use super::super::outcome;

/// Longest wait for the AMD verdict after answer (the detector itself
/// decides within its configured total, 5 s by default).
pub const AMD_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for a machine's beep or the end of its greeting before the
/// message is played anyway.
pub const BEEP_LIMIT: Duration = Duration::from_secs(20);
/// Longest wait for a final response once we CANCELled a ringing leg.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// A prompt played to its end is waited for its length plus this.
pub const PROMPT_SLACK: Duration = Duration::from_secs(1);
/// Agents tried for one queue callback: the reserved one and one more.
const MAX_AGENTS: usize = 2;

/// What the queue says to do when a machine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachinePlan {
    Retry,
    Complete,
    /// Leave the queue's message after the beep, then hang up.
    Message,
}

/// The attempt's fixed parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// The reserved agent.
    pub agent: String,
    /// From the first 18x to CANCEL.
    pub ring_timeout: Duration,
    pub agent_ring_timeout: Duration,
    pub on_machine: MachinePlan,
    /// An owned callback waits for its owner: no second agent.
    pub owned: bool,
    /// Length of the apology prompt.
    pub apology: Duration,
}

#[derive(Debug)]
enum State {
    Idle,
    Dialling { ring_deadline: Option<Instant> },
    Cancelling { deadline: Instant },
    Detecting { deadline: Instant },
    LoadingMessage,
    AwaitingBeep { deadline: Instant, message: Duration },
    PlayingMessage { deadline: Instant },
    AgentRinging { deadline: Instant },
    Reserving,
    Apology { deadline: Instant },
    Bridging,
    Bridged,
    Done,
}

/// One customer-first attempt.
#[derive(Debug)]
pub struct CustomerFirst {
    p: Params,
    state: State,
    /// Agents tried so far, the current one last.
    tried: Vec<String>,
}

impl CustomerFirst {
    pub fn new(p: Params) -> Self {
        let tried = vec![p.agent.clone()];
        Self { p, state: State::Idle, tried }
    }

    /// The agent taking part now.
    pub fn agent(&self) -> &str {
        self.tried.last().map_or("", String::as_str)
    }

    /// Starts the attempt: dial the customer.
    pub fn start(&mut self, out: &mut Vec<Action>) {
        self.state = State::Dialling { ring_deadline: None };
        out.push(Action::DialCustomer);
    }

    /// Before answer only the SIP leg matters; media events wait.
    pub fn wants_media(&self) -> bool {
        !matches!(self.state, State::Idle | State::Dialling { .. } | State::Cancelling { .. })
    }

    /// Whether a 2xx now is taken (not one that crossed our CANCEL).
    pub fn takes_answer(&self) -> bool {
        matches!(self.state, State::Dialling { .. })
    }

    /// The next moment [`on_timeout`](Self::on_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Dialling { ring_deadline } => ring_deadline,
            State::Cancelling { deadline }
            | State::Detecting { deadline }
            | State::AwaitingBeep { deadline, .. }
            | State::PlayingMessage { deadline }
            | State::AgentRinging { deadline }
            | State::Apology { deadline } => Some(deadline),
            _ => None,
        }
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.poll_timeout() {
            Some(d) if d <= now => {}
            _ => return,
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Dialling { .. } => {
                tracing::info!("ring timeout: cancelling the customer leg");
                out.push(Action::CancelCustomer);
                self.state = State::Cancelling { deadline: now + CANCEL_GRACE };
            }
            State::Cancelling { .. } => {
                tracing::warn!("no final response after CANCEL");
                out.push(Action::CloseCustomerMedia);
                self.end(out, outcome::for_status(487, true).into());
            }
            // A detector that never decides counts as unknown: a person.
            State::Detecting { .. } => self.verdict(now, AmdResult::Unknown, out),
            State::AwaitingBeep { message, .. } => self.play_message(now, message, out),
            State::PlayingMessage { .. } => self.hang_up_machine(out),
            State::AgentRinging { .. } => {
                out.push(Action::CancelAgent);
                self.agent_missed(now, out);
            }
            State::Apology { .. } => self.apologised(out),
            s => self.state = s,
        }
    }

    pub fn on_event(&mut self, now: Instant, ev: Event, out: &mut Vec<Action>) {
        match (std::mem::replace(&mut self.state, State::Done), ev) {
            (State::Dialling { ring_deadline }, Event::CustomerProgress { .. }) => {
                out.push(Action::Mark(Step::Ringing));
                let ring_deadline = ring_deadline.or(Some(now + self.p.ring_timeout));
                self.state = State::Dialling { ring_deadline };
            }
            (s @ State::Cancelling { .. }, Event::CustomerProgress { .. }) => self.state = s,
            (State::Dialling { .. }, Event::DialFailed(f)) => self.end(out, f),
            (State::Dialling { .. }, Event::CustomerAnswered { usable }) => {
                out.push(Action::Mark(Step::Answered));
                if !usable {
                    out.push(Action::HangUpCustomer);
                    let f = Finish { retry: true, ..Finish::new(Outcome::Failed, Some(200)).note("the answer's SDP was unusable") };
                    return self.end(out, f);
                }
                out.push(Action::ShowLive { agent: None });
                out.push(Action::StartAmd);
                self.state = State::Detecting { deadline: now + AMD_LIMIT };
            }
            // The 200 crossed our CANCEL: the SIP layer ACKs and BYEs it.
            (s @ State::Cancelling { .. }, Event::CustomerAnswered { .. }) => self.state = s,
            (s @ (State::Dialling { .. } | State::Cancelling { .. }), Event::CustomerFailed { status }) => {
                out.push(Action::CloseCustomerMedia);
                let cancelled = matches!(s, State::Cancelling { .. });
                self.end(out, outcome::for_status(status, cancelled).into());
            }
            (s @ (State::Dialling { .. } | State::Cancelling { .. }), Event::CustomerEnded) => {
                out.push(Action::CloseCustomerMedia);
                let f = if matches!(s, State::Cancelling { .. }) { outcome::for_status(487, true) } else { outcome::for_status(503, false) };
                self.end(out, f.into());
            }
            (State::Detecting { .. }, Event::Amd(v)) => self.verdict(now, v, out),
            (State::Detecting { .. }, Event::CustomerEnded) => {
                // Answered, then gone before we knew who: try again later.
                out.push(Action::HangUpCustomer);
                self.end(out, Finish::new(Outcome::NoAnswer, Some(200)).note("the customer hung up during answering-machine detection"));
            }
            (State::LoadingMessage, Event::MessageLoaded(Some(message))) => {
                self.state = State::AwaitingBeep { deadline: now + BEEP_LIMIT, message };
            }
            (State::LoadingMessage, Event::MessageLoaded(None)) => self.hang_up_machine(out),
            (State::AwaitingBeep { message, .. }, Event::Beep) => self.play_message(now, message, out),
            (State::AwaitingBeep { .. } | State::PlayingMessage { .. }, Event::CustomerEnded) => self.hang_up_machine(out),
            (State::PlayingMessage { .. }, Event::PromptDone) => self.hang_up_machine(out),
            (State::AgentRinging { .. }, Event::AgentAnswered) => {
                out.push(Action::Bridge);
                self.state = State::Bridging;
            }
            (s @ (State::Bridging | State::Bridged), ev) => match flow::bridge_ending(&ev, out) {
                Some(f) => self.end(out, f),
                None => self.state = s,
            },
            (State::AgentRinging { .. }, Event::AgentFailed { .. } | Event::AgentUnreachable) => self.agent_missed(now, out),
            (State::AgentRinging { .. }, Event::CustomerEnded) => {
                out.push(Action::CancelAgent);
                out.push(Action::ReleaseAgent);
                out.push(Action::HangUpCustomer);
                self.end(out, Finish::new(Outcome::NoAnswer, Some(200)).note("the customer hung up while the agent was ringing"));
            }
            (State::Reserving, Event::Reserved(Some(agent))) => {
                self.tried.push(agent.clone());
                out.push(Action::HoldAgent(agent));
                self.ring(now, out);
            }
            (State::Reserving, Event::Reserved(None)) => {
                out.push(Action::StopPlaying);
                out.push(Action::PlayApology);
                self.state = State::Apology { deadline: now + self.p.apology + PROMPT_SLACK };
            }
            (State::Apology { .. }, Event::PromptDone | Event::CustomerEnded) => self.apologised(out),
            // Anything else changes nothing in this state.
            (s, _) => self.state = s,
        }
    }

    /// The bridge is up (the driver performed [`Action::Bridge`]).
    pub fn bridged(&mut self, out: &mut Vec<Action>) {
        if matches!(self.state, State::Bridging) {
            out.push(Action::Mark(Step::Bridged));
            out.push(Action::ShowLive { agent: Some(self.agent().to_string()) });
            self.state = State::Bridged;
        }
    }

    fn verdict(&mut self, now: Instant, v: AmdResult, out: &mut Vec<Action>) {
        out.push(Action::Mark(Step::Amd));
        out.push(Action::SetAmd(match v {
            AmdResult::Human => Amd::Human,
            AmdResult::Machine => Amd::Machine,
            _ => Amd::Unknown,
        }));
        if v == AmdResult::Machine {
            match self.p.on_machine {
                MachinePlan::Retry | MachinePlan::Complete => self.hang_up_machine(out),
                MachinePlan::Message => {
                    out.push(Action::LoadMessage);
                    self.state = State::LoadingMessage;
                }
            }
            return;
        }
        // A person (or unknown, treated as one): hold prompt, ring the agent.
        out.push(Action::PlayHold);
        self.ring(now, out);
    }

    fn ring(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::RingAgent(self.agent().to_string()));
        self.state = State::AgentRinging { deadline: now + self.p.agent_ring_timeout };
    }

    /// The agent declined, did not answer, or could not be rung.
    fn agent_missed(&mut self, now: Instant, out: &mut Vec<Action>) {
        tracing::info!(agent = %self.agent(), "agent did not answer");
        out.push(Action::ReleaseAgent);
        if !self.p.owned && self.tried.len() < MAX_AGENTS {
            out.push(Action::ReserveAgent { exclude: self.tried.clone() });
            self.state = State::Reserving;
        } else {
            // No second agent: as if nobody was free.
            self.state = State::Reserving;
            self.on_event(now, Event::Reserved(None), out);
        }
    }

    fn play_message(&mut self, now: Instant, message: Duration, out: &mut Vec<Action>) {
        out.push(Action::PlayMessage);
        self.state = State::PlayingMessage { deadline: now + message + PROMPT_SLACK };
    }

    fn hang_up_machine(&mut self, out: &mut Vec<Action>) {
        out.push(Action::HangUpCustomer);
        self.end(out, Finish::new(Outcome::Machine, Some(200)));
    }

    fn apologised(&mut self, out: &mut Vec<Action>) {
        out.push(Action::HangUpCustomer);
        self.end(out, Finish::new(Outcome::AgentNoAnswer, Some(200)));
    }

    fn end(&mut self, out: &mut Vec<Action>, f: Finish) {
        self.state = State::Done;
        out.push(Action::End(f));
    }
}

impl Flow for CustomerFirst {
    fn start(&mut self, _now: Instant, out: &mut Vec<Action>) {
        CustomerFirst::start(self, out)
    }
    fn on_event(&mut self, now: Instant, ev: Event, out: &mut Vec<Action>) {
        CustomerFirst::on_event(self, now, ev, out)
    }
    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        CustomerFirst::on_timeout(self, now, out)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        CustomerFirst::poll_timeout(self)
    }
    fn bridged(&mut self, out: &mut Vec<Action>) {
        CustomerFirst::bridged(self, out)
    }
    fn wants_media(&self) -> bool {
        CustomerFirst::wants_media(self)
    }
    fn takes_answer(&self) -> bool {
        CustomerFirst::takes_answer(self)
    }
    fn in_call(&self) -> bool {
        matches!(self.state, State::Bridged)
    }
}
