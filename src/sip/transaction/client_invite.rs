//! The INVITE client transaction (RFC 3261 §17.1.1, with RFC 6026's Accepted state).

use std::time::{Duration, Instant};

use rsip::{Request, Response, SipMessage};

use super::message::ack_for_non_2xx;
use super::output::{Output, Up};
use super::timers::{Durations, Timer, TimerTable};

#[derive(Debug)]
enum State {
    /// INVITE sent, nothing heard yet. `interval` is the next timer A interval.
    Calling { interval: Duration },
    /// A provisional response arrived: no more retransmissions, no timeout.
    Proceeding,
    /// RFC 6026: a 2xx was passed up; further 2xx retransmissions are passed up too, until M.
    Accepted,
    /// A non-2xx final was ACKed; retransmissions of it are ACKed again until D.
    Completed { ack: Request },
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ClientInvite {
    request: Request,
    state: State,
    timers: TimerTable,
    d: Durations,
}

impl ClientInvite {
    /// Starts the transaction: sends the INVITE, arms A (UDP only) and B.
    pub fn start(now: Instant, request: Request, d: Durations, out: &mut Vec<Output>) -> Self {
        let mut timers = TimerTable::default();
        if d.unreliable {
            timers.set(Timer::A, now + d.t1);
        }
        timers.set(Timer::B, now + d.timeout());
        out.push(Output::Send(SipMessage::Request(request.clone())));
        Self { request, state: State::Calling { interval: d.t1 * 2 }, timers, d }
    }

    pub fn on_response(&mut self, now: Instant, response: Response, out: &mut Vec<Output>) {
        let code = response.status_code.code();
        match (&self.state, code) {
            (State::Calling { .. } | State::Proceeding, 100..=199) => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                self.state = State::Proceeding;
                out.push(Output::Up(Up::Response(response)));
            }
            (State::Calling { .. } | State::Proceeding, 200..=299) => {
                self.timers.stop_all();
                self.timers.set(Timer::M, now + self.d.timeout());
                self.state = State::Accepted;
                out.push(Output::Up(Up::Response(response)));
            }
            (State::Calling { .. } | State::Proceeding, _) => {
                self.timers.stop_all();
                let ack = ack_for_non_2xx(&self.request, &response);
                out.push(Output::Send(SipMessage::Request(ack.clone())));
                out.push(Output::Up(Up::Response(response)));
                let wait = self.d.d();
                if wait.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::D, now + wait);
                    self.state = State::Completed { ack };
                }
            }
            // RFC 6026 §8.4: 2xx retransmissions go to the TU, which re-sends its ACK.
            (State::Accepted, 200..=299) => out.push(Output::Up(Up::Response(response))),
            (State::Completed { ack }, 300..=699) => {
                out.push(Output::Send(SipMessage::Request(ack.clone())));
            }
            _ => tracing::trace!(code, state = ?self.state, "response absorbed by INVITE client transaction"),
        }
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (&mut self.state, timer) {
                (State::Calling { interval }, Timer::A) => {
                    out.push(Output::Send(SipMessage::Request(self.request.clone())));
                    // §17.1.1.2: timer A doubles with no cap.
                    let next = *interval;
                    self.timers.set(Timer::A, now + next);
                    *interval = next * 2;
                }
                (State::Calling { .. }, Timer::B) => {
                    out.push(Output::Up(Up::Timeout));
                    self.terminate();
                }
                (State::Completed { .. }, Timer::D) | (State::Accepted, Timer::M) => self.terminate(),
                _ => {}
            }
        }
    }

    /// §17.1.4: a transport error ends the transaction.
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

    pub fn request(&self) -> &Request {
        &self.request
    }
}
