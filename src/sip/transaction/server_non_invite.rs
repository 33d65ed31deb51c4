//! The non-INVITE server transaction (RFC 3261 §17.2.2).

use std::time::Instant;

use rsip::{Request, Response, SipMessage};

use super::output::Output;
use super::server_invite::SendRefused;
use super::timers::{Durations, Timer, TimerTable};

#[derive(Debug)]
enum State {
    /// Request passed to the TU; retransmissions are absorbed silently.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding { last: Response },
    /// The final was sent; retransmissions get it again until J.
    Completed { response: Response },
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    state: State,
    timers: TimerTable,
    d: Durations,
}

impl ServerNonInvite {
    pub fn new(d: Durations) -> Self {
        Self { state: State::Trying, timers: TimerTable::default(), d }
    }

    /// A retransmission of the request matched this transaction.
    pub fn on_request(&mut self, _request: Request, out: &mut Vec<Output>) {
        match &self.state {
            State::Proceeding { last: response } | State::Completed { response } => {
                out.push(Output::Send(SipMessage::Response(response.clone())))
            }
            State::Trying | State::Terminated => {}
        }
    }

    /// The TU sends a response.
    pub fn send(&mut self, now: Instant, response: Response, out: &mut Vec<Output>) -> Result<(), SendRefused> {
        let provisional = response.status_code.code() < 200;
        match (&self.state, provisional) {
            (State::Trying | State::Proceeding { .. }, true) => {
                self.state = State::Proceeding { last: response.clone() };
            }
            (State::Trying | State::Proceeding { .. }, false) => {
                let j = self.d.j();
                if j.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::J, now + j);
                    self.state = State::Completed { response: response.clone() };
                }
            }
            _ => return Err(SendRefused::AlreadyFinal),
        }
        out.push(Output::Send(SipMessage::Response(response)));
        Ok(())
    }

    pub fn on_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            if let (State::Completed { .. }, Timer::J) = (&self.state, timer) {
                self.terminate();
            }
        }
    }

    pub fn on_transport_error(&mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}
