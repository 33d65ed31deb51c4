//! The UAS core's 2xx retransmission until the ACK arrives (RFC 3261 §13.3.1.4), sans-IO.
//!
//! The INVITE server transaction leaves the 2xx to the TU (it is Accepted, RFC 6026). After
//! sending the 2xx through `TransactionLayer::send_response`, the TU creates one of these and,
//! in its run loop, sends whatever `poll_transmit` returns (with `send_stateless`), calls
//! `handle_timeout` at `poll_timeout`, and `on_ack` when the dialog's ACK arrives. If
//! `poll_event` reports [`Retransmit2xxEvent::GaveUp`] the dialog must be ended with BYE.

use std::time::{Duration, Instant};

use rsip::{Response, SipMessage};

use crate::config::SipTimers;
use crate::sip::transaction::Transmit;
use crate::sip::Peer;

/// What the retransmitter reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmit2xxEvent {
    /// 64·T1 passed without an ACK: end the dialog with BYE (§13.3.1.4).
    GaveUp,
}

#[derive(Debug)]
enum State {
    Waiting { next: Instant, interval: Duration, give_up: Instant },
    Acked,
    GaveUp { reported: bool },
}

/// Retransmits a 2xx with intervals T1, 2·T1, … capped at T2 until an ACK, for at most 64·T1.
#[derive(Debug)]
pub struct Uas2xxRetransmitter {
    response: Response,
    to: Peer,
    t2: Duration,
    state: State,
    pending: Option<Transmit>,
}

impl Uas2xxRetransmitter {
    /// `now` is when the 2xx was first sent; the first retransmission is at `now + T1`.
    pub fn new(now: Instant, response: Response, to: Peer, timers: SipTimers) -> Self {
        Self {
            response,
            to,
            t2: timers.t2,
            state: State::Waiting { next: now + timers.t1, interval: timers.t1, give_up: now + timers.t1 * 64 },
            pending: None,
        }
    }

    /// The ACK for the 2xx arrived: stop.
    pub fn on_ack(&mut self) {
        if matches!(self.state, State::Waiting { .. }) {
            self.state = State::Acked;
        }
    }

    /// Sends the due retransmission, or gives up at 64·T1. Call at `poll_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Waiting { next, interval, give_up } = &mut self.state {
            if now >= *give_up {
                self.state = State::GaveUp { reported: false };
            } else if now >= *next {
                self.pending = Some(Transmit { to: self.to, message: SipMessage::Response(self.response.clone()), wire: None });
                *interval = (*interval * 2).min(self.t2);
                *next = (now + *interval).min(*give_up);
            }
        }
    }

    /// The 2xx to retransmit (at most one per timeout). Call after every `handle_timeout`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.pending.take()
    }

    /// `GaveUp` once, when 64·T1 passed without an ACK.
    pub fn poll_event(&mut self) -> Option<Retransmit2xxEvent> {
        match &mut self.state {
            State::GaveUp { reported } if !*reported => {
                *reported = true;
                Some(Retransmit2xxEvent::GaveUp)
            }
            _ => None,
        }
    }

    /// When to call `handle_timeout` next; `None` once acknowledged or given up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { next, give_up, .. } => Some(next.min(give_up)),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        !matches!(self.state, State::Waiting { .. })
    }
}
