//! The INVITE server transaction (RFC 3261 §17.2.1, with RFC 6026's Accepted state).

use std::time::{Duration, Instant};

use rsip::{Method, Request, Response, SipMessage, StatusCode};

use super::message::response_for;
use super::output::{Output, Up};
use super::timers::{Durations, Timer, TimerTable, TRYING_DELAY};

#[derive(Debug)]
enum State {
    /// Waiting for the TU; `last` is the latest provisional sent (resent on INVITE retransmits).
    Proceeding { last: Option<Response> },
    /// A 3xx–6xx was sent; retransmit it on G until an ACK arrives or H fires.
    Completed { response: Response, interval: Duration },
    /// RFC 6026: a 2xx was sent; INVITE retransmissions are absorbed, ACKs go to the TU, until L.
    Accepted,
    /// The ACK for the non-2xx arrived; absorb ACK retransmissions until I.
    Confirmed,
    Terminated,
}

/// Why the TU's response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendRefused {
    AlreadyFinal,
}

#[derive(Debug)]
pub(crate) struct ServerInvite {
    request: Request,
    state: State,
    timers: TimerTable,
    d: Durations,
}

impl ServerInvite {
    /// A new INVITE arrived; the layer passes it to the TU. Arms the 200 ms 100 Trying timer.
    pub fn new(now: Instant, request: Request, d: Durations) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Trying, now + TRYING_DELAY);
        Self { request, state: State::Proceeding { last: None }, timers, d }
    }

    /// A retransmitted INVITE or an ACK matched this transaction.
    pub fn on_request(&mut self, now: Instant, request: Request, out: &mut Vec<Output>) {
        let is_ack = request.method == Method::Ack;
        match (&mut self.state, is_ack) {
            (State::Proceeding { last }, false) => {
                // §17.2.1: resend the latest provisional; if none was sent yet, 100 Trying now.
                let resp = match last {
                    Some(r) => r.clone(),
                    None => {
                        self.timers.stop(Timer::Trying);
                        let trying = response_for(&self.request, StatusCode::Trying);
                        *last = Some(trying.clone());
                        trying
                    }
                };
                out.push(Output::Send(SipMessage::Response(resp)));
            }
            (State::Completed { response, .. }, false) => {
                out.push(Output::Send(SipMessage::Response(response.clone())));
            }
            (State::Completed { .. }, true) => {
                self.timers.stop(Timer::G);
                self.timers.stop(Timer::H);
                let i = self.d.t4_or_zero();
                if i.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::I, now + i);
                    self.state = State::Confirmed;
                }
            }
            // RFC 6026 §8.7: in Accepted the ACK (for the 2xx) is passed to the TU.
            (State::Accepted, true) => out.push(Output::Up(Up::Ack(request))),
            _ => tracing::trace!(is_ack, state = ?self.state, "request absorbed by INVITE server transaction"),
        }
    }

    /// The TU sends a response.
    pub fn send(&mut self, now: Instant, response: Response, out: &mut Vec<Output>) -> Result<(), SendRefused> {
        let code = response.status_code.code();
        match (&mut self.state, code) {
            (State::Proceeding { last }, 100..=199) => {
                self.timers.stop(Timer::Trying);
                *last = Some(response.clone());
            }
            (State::Proceeding { .. }, 200..=299) => {
                self.timers.stop_all();
                // The TU (Uas2xxRetransmitter) retransmits the 2xx; the transaction only absorbs
                // INVITE retransmissions until L (RFC 6026 §8.7).
                self.timers.set(Timer::L, now + self.d.timeout());
                self.state = State::Accepted;
            }
            (State::Proceeding { .. }, _) => {
                self.timers.stop_all();
                if self.d.unreliable {
                    self.timers.set(Timer::G, now + self.d.t1);
                }
                self.timers.set(Timer::H, now + self.d.timeout());
                let interval = (self.d.t1 * 2).min(self.d.t2);
                self.state = State::Completed { response: response.clone(), interval };
            }
            // 2xx retransmissions from the TU pass straight through (RFC 6026 §8.7).
            (State::Accepted, 200..=299) => {}
            _ => return Err(SendRefused::AlreadyFinal),
        }
        out.push(Output::Send(SipMessage::Response(response)));
        Ok(())
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (&mut self.state, timer) {
                (State::Proceeding { last }, Timer::Trying) if last.is_none() => {
                    let trying = response_for(&self.request, StatusCode::Trying);
                    *last = Some(trying.clone());
                    out.push(Output::Send(SipMessage::Response(trying)));
                }
                (State::Completed { response, interval }, Timer::G) => {
                    out.push(Output::Send(SipMessage::Response(response.clone())));
                    let next = *interval;
                    self.timers.set(Timer::G, now + next);
                    *interval = (next * 2).min(self.d.t2);
                }
                (State::Completed { .. }, Timer::H) => {
                    // §17.2.1: no ACK; tell the TU.
                    out.push(Output::Up(Up::Timeout));
                    self.terminate();
                }
                (State::Confirmed, Timer::I) | (State::Accepted, Timer::L) => self.terminate(),
                _ => {}
            }
        }
    }

    /// §17.2.4: a transport error ends the transaction (alternate-address retry is not done).
    pub fn on_transport_error(&mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }

    /// Whether no final response has been sent yet (a CANCEL can still cancel it, §9.2).
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Proceeding { .. })
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
