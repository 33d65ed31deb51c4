//! The layer's timer index at scale: deadlines of many transactions fire in order and at their
//! exact instant, re-armed or answered transactions leave no stale firing, the index stays
//! proportional to live transactions, and an unanswered non-INVITE request cannot live forever.

use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rsip::{Header, Headers, Request, SipMessage};

use super::super::{TransactionError, TransactionKey};
use super::*;

/// `template` with another top Via branch: a new transaction without re-parsing text.
fn with_branch(template: &Request, branch: &str) -> Request {
    let mut headers = Headers::default();
    for h in template.headers.iter() {
        match h {
            Header::Via(_) => headers.push(Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"
            )))),
            other => headers.push(other.clone()),
        }
    }
    Request { headers, ..template.clone() }
}

/// Steps from deadline to deadline until nothing is armed, checking that `poll_timeout` never
/// goes back and is never early (each wake-up must produce something or end a transaction).
fn run_all(layer: &mut TransactionLayer, t0: Instant, start: Instant, log: &mut Vec<(u64, Seen)>) {
    let mut now = start;
    while let Some(at) = layer.poll_timeout() {
        assert!(at >= now, "poll_timeout went back in time");
        now = at;
        let before = (layer.len(), log.len());
        layer.handle_timeout(now);
        drain(layer, t0, now, log);
        assert_ne!((layer.len(), log.len()), before, "woken at {:?} for nothing (stale deadline)", now - t0);
    }
}

fn key_of(ev: &TransactionEvent) -> Option<&TransactionKey> {
    match ev {
        TransactionEvent::Timeout { key } | TransactionEvent::Terminated { key } => Some(key),
        _ => None,
    }
}

#[test]
fn interleaved_deadlines_of_many_transactions_fire_in_order_at_their_instant() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let mut rng = SmallRng::seed_from_u64(7);
    let opt = request("OPTIONS", "z9hG4bKx", 1);
    let inv = request("INVITE", "z9hG4bKx", 1);
    // 600 client transactions (INVITE and OPTIONS) started at random instants in the first
    // 10 s: their timers A/E and B/F interleave across transactions.
    let mut started: HashMap<TransactionKey, (u64, bool)> = HashMap::new();
    let mut starts: Vec<(u64, bool)> = (0..600).map(|i| (rng.random_range(0..10_000), i % 2 == 0)).collect();
    starts.sort();
    let mut log = Vec::new();
    for (i, &(at, is_invite)) in starts.iter().enumerate() {
        let now = t0 + ms(at);
        // Fire whatever is due before this start, as a driver would.
        while let Some(due) = layer.poll_timeout().filter(|d| *d <= now) {
            layer.handle_timeout(due);
            drain(&mut layer, t0, due, &mut log);
        }
        let req = with_branch(if is_invite { &inv } else { &opt }, &format!("z9hG4bK{i}"));
        let key = layer.send_request(now, req, udp(5070)).unwrap();
        drain(&mut layer, t0, now, &mut log);
        started.insert(key, (at, is_invite));
    }
    run_all(&mut layer, t0, t0 + ms(10_000), &mut log);
    assert!(layer.is_empty());
    // Virtual time in the log never goes back.
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0));
    // Each transaction timed out at exactly start + 64·T1 and sent exactly its schedule.
    let mut timeouts = 0;
    for (t, seen) in &log {
        if let Seen::Ev(TransactionEvent::Timeout { key }) = seen {
            assert_eq!(*t, started[key].0 + 32_000, "{key}");
            timeouts += 1;
        }
    }
    assert_eq!(timeouts, 600);
    let mut sends: HashMap<String, Vec<u64>> = HashMap::new();
    for (t, seen) in &log {
        if let Seen::Tx(SipMessage::Request(r)) = seen {
            let branch = r.via_header().unwrap().typed().unwrap().branch().unwrap().to_string();
            sends.entry(branch).or_default().push(*t);
        }
    }
    for (key, (at, is_invite)) in &started {
        let offsets: Vec<u64> = sends[key.branch()].iter().map(|t| t - at).collect();
        let expected: Vec<u64> = if *is_invite {
            vec![0, 500, 1500, 3500, 7500, 15500, 31500]
        } else {
            vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        };
        assert_eq!(offsets, expected, "{key}");
    }
}

#[test]
fn a_transaction_answered_before_its_deadline_leaves_no_stale_firing() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    // INVITE client: A at 0.5 s, B at 32 s. A 180 at 0.1 s stops both (§17.1.1.2).
    let inv = request("INVITE", "z9hG4bKc", 1);
    let key = layer.send_request(t0, inv.clone(), udp(5070)).unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(500)));
    layer.handle_message(t0 + ms(100), SipMessage::Response(response(&inv, 180)), udp(5070));
    assert_eq!(layer.poll_timeout(), None, "the stale A and B entries must not show");
    layer.handle_timeout(t0 + ms(40_000));
    assert_eq!(layer.poll_transmit().map(|t| t.message.to_string().starts_with("INVITE")), Some(true));
    assert_eq!(layer.poll_transmit(), None, "no retransmission after the 180");
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Response { .. })));
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.len(), 1, "Proceeding has no timer; the TU's final ends it");
    // Its 486 arms D (32 s) from 50 s.
    layer.handle_message(t0 + ms(50_000), SipMessage::Response(response(&inv, 486)), udp(5070));
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(82_000)));
    while layer.poll_event().is_some() {}
    layer.handle_timeout(t0 + ms(82_000));
    assert_eq!(layer.poll_event(), Some(TransactionEvent::Terminated { key }));
    assert_eq!(layer.poll_timeout(), None);

    // A non-INVITE server transaction: the safety limit (32 s) is replaced by J when answered.
    let opt = request("OPTIONS", "z9hG4bKs", 1);
    let t1 = t0 + ms(100_000);
    layer.handle_message(t1, SipMessage::Request(opt.clone()), udp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
    assert_eq!(layer.poll_timeout(), Some(t1 + ms(32_000)));
    layer.send_response(t1 + ms(1_000), &key, response(&opt, 200)).unwrap();
    assert_eq!(layer.poll_timeout(), Some(t1 + ms(33_000)));
    layer.handle_timeout(t1 + ms(32_000));
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.len(), 1);
    layer.handle_timeout(t1 + ms(33_000));
    assert_eq!(layer.poll_event(), Some(TransactionEvent::Terminated { key }));
    assert!(layer.is_empty());
}

#[test]
fn stale_entries_are_purged_so_the_index_stays_proportional_to_live_transactions() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let opt = request("OPTIONS", "z9hG4bKx", 1);
    // Over TCP an answered OPTIONS ends at once (J = 0) and leaves its 32 s safety-limit entry
    // behind: without purging, 20,000 stale entries for no live transaction.
    for i in 0..20_000u64 {
        let now = t0 + std::time::Duration::from_micros(i * 100);
        layer.handle_message(now, SipMessage::Request(with_branch(&opt, &format!("z9hG4bK{i}"))), tcp(5060));
        let Some(TransactionEvent::Request { key, request, .. }) = layer.poll_event() else { panic!() };
        layer.send_response(now + ms(1), &key, response(&request, 200)).unwrap();
        assert!(layer.timer_entries() <= 2 * layer.len() + 1024, "{} entries", layer.timer_entries());
        while layer.poll_event().is_some() {}
    }
    assert!(layer.is_empty());
    assert!(layer.timer_entries() <= 1024);
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn a_hundred_thousand_server_transactions_expire_on_timer_j_exactly() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let opt = request("OPTIONS", "z9hG4bKx", 1);
    let n = 100_000u64;
    // Created 10 µs apart over 1 s; the odd ones are answered first (5 ms after creation), then
    // the even ones (3 ms after), so deadlines enter the index out of order.
    let created = |i: u64| t0 + std::time::Duration::from_micros(i * 10);
    let mut keys = Vec::new();
    for i in 0..n {
        layer.handle_message(created(i), SipMessage::Request(with_branch(&opt, &format!("z9hG4bK{i}"))), udp(5060));
        let Some(TransactionEvent::Request { key, request, .. }) = layer.poll_event() else { panic!() };
        keys.push((key, request));
    }
    let answered = |i: u64| created(i) + ms(if i % 2 == 1 { 5 } else { 3 });
    for i in (1..n).step_by(2).chain((0..n).step_by(2)) {
        let (key, req) = &keys[i as usize];
        layer.send_response(answered(i), key, response(req, 200)).unwrap();
    }
    while layer.poll_transmit().is_some() {}
    assert_eq!(layer.len(), n as usize);
    assert_eq!(layer.pending(), 0, "all answered: none at work");
    let per = layer.kept_bytes() / n as usize;
    assert!((300..2_000).contains(&per), "about {per} bytes kept per completed transaction");
    // Nothing before the first J.
    layer.handle_timeout(answered(0) + ms(31_999));
    assert_eq!(layer.poll_event(), None);
    // Checkpoints every 97 ms: exactly those whose J (answer + 32 s) has passed are gone, and
    // they end in deadline order.
    let mut expected_order: Vec<u64> = (0..n).collect();
    expected_order.sort_by_key(|&i| (answered(i), i));
    let mut ended = Vec::new();
    let mut now = answered(0) + ms(31_999);
    while !layer.is_empty() {
        now += ms(97);
        layer.handle_timeout(now);
        while let Some(ev) = layer.poll_event() {
            let Some(key) = key_of(&ev) else { panic!("{ev:?}") };
            assert!(matches!(ev, TransactionEvent::Terminated { .. }));
            ended.push(key.branch()[7..].parse::<u64>().unwrap());
        }
        let due = expected_order.iter().filter(|&&i| answered(i) + ms(32_000) <= now).count();
        assert_eq!(ended.len(), due, "at {:?}", now - t0);
        assert_eq!(layer.len(), n as usize - due);
    }
    let ended_at: Vec<Instant> = ended.iter().map(|&i| answered(i)).collect();
    assert!(ended_at.windows(2).all(|w| w[0] <= w[1]), "transactions ended out of deadline order");
    assert_eq!(ended.len(), n as usize);
    assert_eq!(layer.poll_timeout(), None);
    assert_eq!(layer.timer_entries(), 0, "no stale entry left behind");
    assert_eq!(layer.kept_bytes(), 0);
}

#[test]
fn an_unanswered_non_invite_request_ends_at_64_t1_with_a_timeout() {
    for (peer, timers, limit) in [(udp(5060), SipTimers::default(), 32_000), (tcp(5060), fast_timers(), 6_400)] {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(timers);
        let info = request("INFO", "z9hG4bKq", 1);
        layer.handle_message(t0, SipMessage::Request(info.clone()), peer);
        let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
        // A provisional does not extend the limit, and retransmissions get it again.
        layer.send_response(t0 + ms(1_000), &key, response(&info, 100)).unwrap();
        assert!(layer.poll_transmit().is_some());
        layer.handle_message(t0 + ms(2_000), SipMessage::Request(info.clone()), peer);
        let resent = layer.poll_transmit().expect("the 100 again");
        assert_eq!(resent.message, SipMessage::Response(response(&info, 100)));
        let mut log = Vec::new();
        run_until(&mut layer, t0, ms(100_000), &mut log);
        assert_eq!(
            log,
            vec![
                (limit, Seen::Ev(TransactionEvent::Timeout { key: key.clone() })),
                (limit, Seen::Ev(TransactionEvent::Terminated { key: key.clone() })),
            ]
        );
        assert!(matches!(
            layer.send_response(t0 + ms(limit), &key, response(&info, 200)),
            Err(TransactionError::UnknownTransaction { .. })
        ));
    }
}

#[test]
fn completed_non_invite_server_retransmits_the_exact_final_response() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let opt = request("OPTIONS", "z9hG4bKr", 1);
    layer.handle_message(t0, SipMessage::Request(opt.clone()), udp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
    let mut ok = response(&opt, 200);
    ok.headers.push(Header::ContentType(rsip::headers::ContentType::new("application/octet-stream")));
    ok.body = vec![0xff, 0x00, 0xfe, b'\r', b'\n'];
    ok.headers.retain(|h| !matches!(h, Header::ContentLength(_)));
    ok.headers.push(Header::ContentLength(rsip::headers::ContentLength::new("5")));
    layer.send_response(t0, &key, ok.clone()).unwrap();
    assert_eq!(layer.poll_transmit().unwrap().message, SipMessage::Response(ok.clone()));
    layer.handle_message(t0 + ms(700), SipMessage::Request(opt), udp(5060));
    assert_eq!(layer.poll_transmit().unwrap().message, SipMessage::Response(ok), "binary body kept as is");
}
