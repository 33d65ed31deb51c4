//! The non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! Over UDP every answered request keeps its transaction 64·T1 in Completed (Timer J), so at
//! 10,000 OPTIONS/s about 320,000 are live. To keep each small, the response retransmitted on a
//! request retransmission is kept as its wire bytes (one allocation) rather than an rsip struct
//! (a vector of headers, one allocation each), and parsed back in the rare case it is resent.

use std::time::Instant;

use bytes::Bytes;
use rsip::{Request, Response, SipMessage};

use super::output::{Output, Up};
use super::server_invite::SendRefused;
use super::timers::{Durations, Timer, TimerTable};

#[derive(Debug)]
enum State {
    /// Request passed to the TU; retransmissions are absorbed silently.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding { last: Bytes },
    /// The final was sent; retransmissions get it again until J.
    Completed { response: Bytes },
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    state: State,
    timers: TimerTable,
    d: Durations,
}

impl ServerNonInvite {
    /// A new request, passed to the TU. Arms the safety limit: a TU that never sends a final
    /// response does not keep the transaction forever (see [`Timer::Unanswered`]).
    pub fn new(now: Instant, d: Durations) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Unanswered, now + d.timeout());
        Self { state: State::Trying, timers, d }
    }

    /// A retransmission of the request matched this transaction.
    pub fn on_request(&mut self, _request: Request, out: &mut Vec<Output>) {
        match &self.state {
            State::Proceeding { last: wire } | State::Completed { response: wire } => {
                // Parsed back only for the driver's routing (the top Via); the stored bytes are
                // what is sent.
                match SipMessage::try_from(wire.clone()) {
                    Ok(msg) => out.push(Output::SendWire(msg, wire.clone())),
                    // Cannot happen for a response we serialised ourselves; never worth a panic.
                    Err(error) => tracing::warn!(%error, "stored response does not parse back; not resent"),
                }
            }
            State::Trying | State::Terminated => {}
        }
    }

    /// The TU sends a response.
    pub fn send(&mut self, now: Instant, response: Response, out: &mut Vec<Output>) -> Result<(), SendRefused> {
        if matches!(self.state, State::Completed { .. } | State::Terminated) {
            return Err(SendRefused::AlreadyFinal);
        }
        let provisional = response.status_code.code() < 200;
        let bytes = wire(&response);
        match (&self.state, provisional) {
            (State::Trying | State::Proceeding { .. }, true) => {
                self.state = State::Proceeding { last: bytes.clone() };
            }
            (State::Trying | State::Proceeding { .. }, false) => {
                self.timers.stop(Timer::Unanswered);
                let j = self.d.j();
                if j.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::J, now + j);
                    self.state = State::Completed { response: bytes.clone() };
                }
            }
            _ => return Err(SendRefused::AlreadyFinal),
        }
        // Written once: the bytes kept for retransmissions are the ones sent now.
        out.push(Output::SendWire(SipMessage::Response(response), bytes));
        Ok(())
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (&self.state, timer) {
                (State::Completed { .. }, Timer::J) => self.terminate(),
                (State::Trying | State::Proceeding { .. }, Timer::Unanswered) => {
                    // The client gave up by now (its Timer F also runs 64·T1, from an earlier
                    // start), so no response is sent: a 408 is forbidden for non-INVITE
                    // (RFC 4320 §4.2) and a 500 would reach nobody. The TU is told.
                    tracing::warn!("non-INVITE request never answered by the TU; transaction ended");
                    out.push(Output::Up(Up::Timeout));
                    self.terminate();
                }
                _ => {}
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

    /// The length of the final response kept to answer retransmissions in Completed (Timer J);
    /// `None` in any other state.
    pub fn kept_len(&self) -> Option<usize> {
        match &self.state {
            State::Completed { response } => Some(response.len()),
            _ => None,
        }
    }
}

/// The response as it goes on the wire, by the codec's writer (the body as raw bytes; rsip's
/// `Display` would pass it through `from_utf8_lossy`, and costs three times as much, on every
/// answered request).
fn wire(response: &Response) -> Bytes {
    let buf = crate::sip::codec::encode_response(response);
    // Exactly sized: the formatting buffer's spare capacity would be kept for 32 s.
    Bytes::from(buf.into_boxed_slice())
}
