//! Property tests: schedules for arbitrary T1/T2, computed independently of the machines, and
//! retransmission absorption under arbitrary arrival times.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rsip::SipMessage;

use super::*;

/// Send times (ms) of a retransmitting sender: first at 0, intervals from T1 doubling up to
/// `cap`, strictly before the 64·T1 timeout.
fn expected(t1: u64, cap: Option<u64>) -> Vec<u64> {
    let (mut t, mut interval, mut out) = (0, t1, vec![0]);
    loop {
        t += interval;
        if t >= 64 * t1 {
            return out;
        }
        out.push(t);
        interval *= 2;
        if let Some(cap) = cap {
            interval = interval.min(cap);
        }
    }
}

fn timers(t1: u64, t2_factor: u64) -> SipTimers {
    SipTimers { t1: ms(t1), t2: ms(t1 * t2_factor), t4: ms(5000) }
}

fn first_timeout(log: &[(u64, Seen)]) -> Option<u64> {
    log.iter().find(|(_, s)| matches!(s, Seen::Ev(TransactionEvent::Timeout { .. }))).map(|(t, _)| *t)
}

proptest! {
    #[test]
    fn non_invite_client_schedule(t1 in 10u64..2000, k in 1u64..16) {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(timers(t1, k));
        layer.send_request(t0, request("OPTIONS", "z9hG4bKp", 1), udp(5070)).unwrap();
        let mut log = vec![];
        run_until(&mut layer, t0, Duration::from_secs(1000), &mut log);
        prop_assert_eq!(tx_times(&log), expected(t1, Some(t1 * k)));
        prop_assert_eq!(first_timeout(&log), Some(64 * t1));
    }

    #[test]
    fn invite_client_schedule(t1 in 10u64..2000, k in 1u64..16) {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(timers(t1, k));
        layer.send_request(t0, request("INVITE", "z9hG4bKp", 1), udp(5070)).unwrap();
        let mut log = vec![];
        run_until(&mut layer, t0, Duration::from_secs(1000), &mut log);
        // Timer A is not capped by T2 (§17.1.1.2).
        prop_assert_eq!(tx_times(&log), expected(t1, None));
        prop_assert_eq!(first_timeout(&log), Some(64 * t1));
    }

    #[test]
    fn invite_server_final_schedule(t1 in 10u64..2000, k in 1u64..16) {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(timers(t1, k));
        let inv = request("INVITE", "z9hG4bKp", 1);
        layer.handle_message(t0, SipMessage::Request(inv.clone()), udp(5060));
        let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
        layer.send_response(t0, &key, response(&inv, 500)).unwrap();
        let mut log = vec![];
        run_until(&mut layer, t0, Duration::from_secs(1000), &mut log);
        prop_assert_eq!(tx_times(&log), expected(t1, Some(t1 * k)));
        prop_assert_eq!(first_timeout(&log), Some(64 * t1));
    }

    /// However retransmissions interleave with the TU's answer, the TU sees one request and every
    /// retransmission after the answer is answered exactly once.
    #[test]
    fn server_absorbs_retransmissions(
        invite in any::<bool>(),
        answer_at in 0u64..5000,
        mut arrivals in proptest::collection::vec(1u64..10_000, 0..12),
    ) {
        arrivals.sort_unstable();
        let method = if invite { "INVITE" } else { "OPTIONS" };
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(SipTimers::default());
        let req = request(method, "z9hG4bKp", 1);
        // Timer-driven retransmissions (G) are drained separately; over UDP the transaction
        // outlives the 10 s of arrivals (J, H = 32 s).
        layer.handle_message(t0, SipMessage::Request(req.clone()), udp(5060));
        let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
        let mut answered = false;
        let mut expected_replies = 0;
        let mut replies = 0;
        for at in arrivals {
            if !answered && at >= answer_at {
                layer.send_response(t0 + ms(answer_at), &key, response(&req, 486)).unwrap();
                answered = true;
                while layer.poll_transmit().is_some() {}
            }
            layer.handle_timeout(t0 + ms(at));
            while layer.poll_transmit().is_some() {}
            layer.handle_message(t0 + ms(at), SipMessage::Request(req.clone()), udp(5060));
            if answered || invite {
                // Answered: the final again. Unanswered INVITE: 100 Trying (once sent, resent).
                expected_replies += 1;
            }
            while layer.poll_transmit().is_some() {
                replies += 1;
            }
            while let Some(ev) = layer.poll_event() {
                prop_assert!(!matches!(ev, TransactionEvent::Request { .. }), "request passed up twice");
            }
        }
        prop_assert_eq!(replies, expected_replies);
    }
}
