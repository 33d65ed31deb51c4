//! The RFC 3261 §17 timers as an enum, and a small deadline table per transaction.
//!
//! A transaction arms at most a handful of timers at once; the next time it must be woken is the
//! minimum of the armed deadlines. Durations derive from the configured T1/T2/T4 (§17, Table 4).

use std::time::{Duration, Instant};

use crate::config::SipTimers;
use crate::sip::Transport;

/// One timer of RFC 3261 Table 4 (plus RFC 6026's L and M, and the 200 ms "send 100 Trying" timer
/// of §17.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmission (client, UDP only).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmissions after a non-2xx final (client INVITE).
    D,
    /// Non-INVITE request retransmission (client, UDP only).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmission (server, UDP only).
    G,
    /// Wait time for ACK receipt (server INVITE).
    H,
    /// Wait time for ACK retransmissions (server INVITE).
    I,
    /// Wait time for non-INVITE request retransmissions (server).
    J,
    /// Wait time for response retransmissions (client non-INVITE).
    K,
    /// RFC 6026: wait time for INVITE retransmissions / ACKs after a 2xx (server).
    L,
    /// RFC 6026: wait time for 2xx retransmissions (client INVITE).
    M,
    /// §17.2.1: send 100 Trying if the TU has not answered within 200 ms.
    Trying,
    /// Not in RFC 3261: a non-INVITE server transaction whose TU sends no final response within
    /// 64·T1 of the request ends with a `Timeout` event, so it cannot stay live forever. The
    /// client's Timer F has fired by then, so nothing is sent.
    Unanswered,
}

/// Every timer, timeouts first: when a retransmission timer and a timeout fall due at the same
/// instant, the timeout wins and nothing is sent in vain (`pop_expired` breaks ties in this order).
const ALL: [Timer; 14] = [
    Timer::B,
    Timer::F,
    Timer::H,
    Timer::Unanswered,
    Timer::D,
    Timer::I,
    Timer::J,
    Timer::K,
    Timer::L,
    Timer::M,
    Timer::A,
    Timer::E,
    Timer::G,
    Timer::Trying,
];

impl Timer {
    /// Rank in [`ALL`]: the tie-break order of `pop_expired`.
    fn rank(self) -> usize {
        ALL.iter().position(|t| *t == self).unwrap_or(ALL.len())
    }
}

/// How many timers a transaction arms at once. The machines never need more than two (A+B,
/// E+F, G+H); one spare. A slot per armed timer instead of one per [`Timer`] keeps the table
/// 72 bytes instead of 224, which matters with a million live transactions.
const SLOTS: usize = 3;

/// The armed deadlines of one transaction.
#[derive(Debug, Clone, Default)]
pub struct TimerTable {
    armed: [Option<(Timer, Instant)>; SLOTS],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.stop(timer);
        match self.armed.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some((timer, at)),
            None => {
                // Unreachable with the four machines (at most two armed); if a new machine ever
                // arms more, keep the earliest deadlines rather than panic.
                debug_assert!(false, "more than {SLOTS} timers armed");
                tracing::error!(?timer, "timer table full; latest deadline dropped");
                if let Some(latest) = self.armed.iter_mut().max_by_key(|s| s.map(|(_, t)| t)) {
                    if latest.is_some_and(|(_, t)| t > at) {
                        *latest = Some((timer, at));
                    }
                }
            }
        }
    }

    pub fn stop(&mut self, timer: Timer) {
        for slot in &mut self.armed {
            if slot.is_some_and(|(t, _)| t == timer) {
                *slot = None;
            }
        }
    }

    pub fn stop_all(&mut self) {
        self.armed = Default::default();
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.armed.iter().flatten().find(|(t, _)| *t == timer).map(|(_, at)| *at)
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.armed.iter().flatten().map(|(_, at)| *at).min()
    }

    /// Disarms and returns the earliest timer whose deadline is `<= now`, if any; on a tie, the
    /// first in [`ALL`] order (timeouts first). Callers loop until `None` so that several timers
    /// expiring at once fire in deadline order.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (timer, _) = self
            .armed
            .iter()
            .flatten()
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(t, at)| (*at, t.rank()))
            .copied()?;
        self.stop(timer);
        Some(timer)
    }
}

/// Timer durations derived from T1/T2/T4 for one transport (§17 Table 4).
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Whether the transport is unreliable (UDP): retransmission timers run, wait timers are long.
    pub unreliable: bool,
}

impl Durations {
    pub fn new(timers: SipTimers, transport: Transport) -> Self {
        Self { t1: timers.t1, t2: timers.t2, t4: timers.t4, unreliable: transport == Transport::Udp }
    }

    /// 64·T1: timers B, F, H, J(UDP), L, M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s over UDP, zero over TCP (§17.1.1.2).
    pub fn d(&self) -> Duration {
        if self.unreliable {
            self.timeout().max(Duration::from_secs(32))
        } else {
            Duration::ZERO
        }
    }

    /// Timers I and K: T4 over UDP, zero over TCP.
    pub fn t4_or_zero(&self) -> Duration {
        if self.unreliable {
            self.t4
        } else {
            Duration::ZERO
        }
    }

    /// Timer J: 64·T1 over UDP, zero over TCP (§17.2.2).
    pub fn j(&self) -> Duration {
        if self.unreliable {
            self.timeout()
        } else {
            Duration::ZERO
        }
    }
}

/// The 200 ms after which a server INVITE transaction sends 100 Trying itself (§17.2.1).
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_deadline_is_minimum_and_pop_in_order() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_deadline(), None);
        t.set(Timer::B, t0 + Duration::from_secs(32));
        t.set(Timer::A, t0 + Duration::from_millis(500));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(t.pop_expired(t0), None);
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::A));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::B));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), None);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn durations_per_transport() {
        let udp = Durations::new(SipTimers::default(), Transport::Udp);
        assert_eq!(udp.timeout(), Duration::from_secs(32));
        assert_eq!(udp.d(), Duration::from_secs(32));
        assert_eq!(udp.t4_or_zero(), Duration::from_secs(5));
        let tcp = Durations::new(SipTimers::default(), Transport::Tcp);
        assert_eq!(tcp.d(), Duration::ZERO);
        assert_eq!(tcp.j(), Duration::ZERO);
        assert_eq!(tcp.t4_or_zero(), Duration::ZERO);
        let fast = SipTimers { t1: Duration::from_millis(100), ..SipTimers::default() };
        // D stays at least 32 s even with a small T1.
        assert_eq!(Durations::new(fast, Transport::Udp).d(), Duration::from_secs(32));
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn re_arming_reuses_the_slot_and_ties_go_to_the_timeout() {
        let t0 = Instant::now();
        let at = t0 + Duration::from_secs(1);
        let mut t = TimerTable::default();
        // Re-arming the same timer replaces it: the three slots never fill up with copies.
        for i in 0..10 {
            t.set(Timer::G, t0 + Duration::from_millis(100 * i));
        }
        t.set(Timer::H, at);
        t.set(Timer::G, at);
        assert_eq!(t.get(Timer::G), Some(at));
        // Same instant: H (a timeout) fires before G (a retransmission), in either arming order.
        assert_eq!(t.pop_expired(at), Some(Timer::H));
        assert_eq!(t.pop_expired(at), Some(Timer::G));
        assert_eq!(t.pop_expired(at), None);
        t.set(Timer::E, at);
        t.set(Timer::F, at);
        t.set(Timer::Trying, at);
        assert_eq!(t.pop_expired(at), Some(Timer::F));
        assert_eq!(t.pop_expired(at), Some(Timer::E));
        assert_eq!(t.pop_expired(at), Some(Timer::Trying));
        t.set(Timer::J, at);
        t.stop(Timer::J);
        assert_eq!(t.next_deadline(), None);
    }
}
