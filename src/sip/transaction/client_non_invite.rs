//! The non-INVITE client transaction (RFC 3261 §17.1.2).

use std::time::{Duration, Instant};

use rsip::{Request, Response, SipMessage};

use super::output::{Output, Up};
use super::timers::{Durations, Timer, TimerTable};

#[derive(Debug)]
enum State {
    /// Request sent; `interval` is the next timer E interval (doubling, capped at T2).
    Trying { interval: Duration },
    /// A provisional arrived; retransmit every T2 (§17.1.2.2).
    Proceeding,
    /// Final received; absorb its retransmissions until K.
    Completed,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    request: Request,
    state: State,
    timers: TimerTable,
    d: Durations,
}

impl ClientNonInvite {
    /// Starts the transaction: sends the request, arms E (UDP only) and F.
    pub fn start(now: Instant, request: Request, d: Durations, out: &mut Vec<Output>) -> Self {
        let mut timers = TimerTable::default();
        if d.unreliable {
            timers.set(Timer::E, now + d.t1);
        }
        timers.set(Timer::F, now + d.timeout());
        out.push(Output::Send(SipMessage::Request(request.clone())));
        let interval = (d.t1 * 2).min(d.t2);
        Self { request, state: State::Trying { interval }, timers, d }
    }

    pub fn on_response(&mut self, now: Instant, response: Response, out: &mut Vec<Output>) {
        let code = response.status_code.code();
        match (&self.state, code) {
            (State::Trying { .. } | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                out.push(Output::Up(Up::Response(response)));
            }
            (State::Trying { .. } | State::Proceeding, _) => {
                self.timers.stop_all();
                out.push(Output::Up(Up::Response(response)));
                let k = self.d.t4_or_zero();
                if k.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::K, now + k);
                    self.state = State::Completed;
                }
            }
            _ => tracing::trace!(code, "response absorbed by completed non-INVITE client transaction"),
        }
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (&mut self.state, timer) {
                (State::Trying { interval }, Timer::E) => {
                    out.push(Output::Send(SipMessage::Request(self.request.clone())));
                    let next = *interval;
                    self.timers.set(Timer::E, now + next);
                    *interval = (next * 2).min(self.d.t2);
                }
                (State::Proceeding, Timer::E) => {
                    out.push(Output::Send(SipMessage::Request(self.request.clone())));
                    self.timers.set(Timer::E, now + self.d.t2);
                }
                (State::Trying { .. } | State::Proceeding, Timer::F) => {
                    out.push(Output::Up(Up::Timeout));
                    self.terminate();
                }
                (State::Completed, Timer::K) => self.terminate(),
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
}
