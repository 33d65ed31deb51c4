//! Exact retransmission and timeout schedules of the four machines (§17, Table 4).

use std::time::Instant;

use rsip::{Method, SipMessage};

use super::*;

fn is_timeout(s: &Seen) -> bool {
    matches!(s, Seen::Ev(TransactionEvent::Timeout { .. }))
}

fn terminated_at(log: &[(u64, Seen)]) -> Option<u64> {
    log.iter().find(|(_, s)| matches!(s, Seen::Ev(TransactionEvent::Terminated { .. }))).map(|(t, _)| *t)
}

fn timeout_at(log: &[(u64, Seen)]) -> Option<u64> {
    log.iter().find(|(_, s)| is_timeout(s)).map(|(t, _)| *t)
}

#[test]
fn invite_client_udp_timer_a_doubles_until_b_at_64_t1() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.send_request(t0, request("INVITE", "z9hG4bKa", 1), udp(5070)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    // Intervals 500, 1000, 2000, 4000, 8000, 16000 ms.
    assert_eq!(tx_times(&log), vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(timeout_at(&log), Some(32_000));
    assert_eq!(terminated_at(&log), Some(32_000));
    assert_eq!(layer.len(), 0);
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn invite_client_udp_with_t1_100ms() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(fast_timers());
    layer.send_request(t0, request("INVITE", "z9hG4bKa", 1), udp(5070)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    assert_eq!(tx_times(&log), vec![0, 100, 300, 700, 1500, 3100, 6300]);
    assert_eq!(timeout_at(&log), Some(6_400));
}

#[test]
fn invite_client_tcp_no_retransmissions_b_still_fires() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.send_request(t0, request("INVITE", "z9hG4bKa", 1), tcp(5070)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    assert_eq!(tx_times(&log), vec![0]);
    assert_eq!(timeout_at(&log), Some(32_000));
}

#[test]
fn invite_client_provisional_stops_a_and_b() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKa", 1);
    let key = layer.send_request(t0, inv.clone(), udp(5070)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(1000), &mut log);
    layer.handle_message(t0 + ms(1000), SipMessage::Response(response(&inv, 180)), udp(5070));
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Response { key: k, .. }) if k == key));
    assert_eq!(layer.poll_timeout(), None, "Proceeding arms no timer");
    assert_eq!(layer.len(), 1);
}

#[test]
fn invite_client_non_2xx_acked_and_d_is_32s_over_udp() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(fast_timers());
    let inv = request("INVITE", "z9hG4bKa", 7);
    layer.send_request(t0, inv.clone(), udp(5070)).unwrap();
    layer.poll_transmit().unwrap();
    let busy = response(&inv, 486);
    layer.handle_message(t0 + ms(50), SipMessage::Response(busy.clone()), udp(5070));
    let ack = match layer.poll_transmit().unwrap().message {
        SipMessage::Request(r) => r,
        other => panic!("expected ACK, got {other}"),
    };
    // §17.1.1.3: ACK carries the INVITE's Request-URI, top Via, CSeq number and the response's To.
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, inv.uri);
    assert_eq!(ack.cseq_header().unwrap().seq().unwrap(), 7);
    assert_eq!(ack.cseq_header().unwrap().method().unwrap(), Method::Ack);
    assert_eq!(ack.via_header().unwrap(), inv.via_header().unwrap());
    assert_eq!(ack.to_header().unwrap().tag().unwrap().unwrap().to_string(), "b1");
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Response { response, .. }) if response.status_code.code() == 486));
    // A retransmitted 486 is ACKed again and not passed up.
    layer.handle_message(t0 + ms(600), SipMessage::Response(busy), udp(5070));
    assert!(matches!(layer.poll_transmit().map(|t| t.message), Some(SipMessage::Request(r)) if r.method == Method::Ack));
    assert_eq!(layer.poll_event(), None);
    // Timer D: at least 32 s over UDP even with T1 = 100 ms.
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(50 + 32_000)));
    layer.handle_timeout(t0 + ms(50 + 32_000));
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Terminated { .. })));
}

#[test]
fn invite_client_non_2xx_over_tcp_terminates_at_once() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKa", 1);
    layer.send_request(t0, inv.clone(), tcp(5070)).unwrap();
    layer.handle_message(t0, SipMessage::Response(response(&inv, 503)), tcp(5070));
    let mut log = vec![];
    drain(&mut layer, t0, t0, &mut log);
    assert_eq!(tx_times(&log), vec![0, 0], "INVITE and ACK");
    assert_eq!(terminated_at(&log), Some(0), "timer D is zero over TCP");
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_client_2xx_accepted_passes_retransmissions_until_m() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKa", 1);
    layer.send_request(t0, inv.clone(), udp(5070)).unwrap();
    let ok = response(&inv, 200);
    layer.handle_message(t0 + ms(10), SipMessage::Response(ok.clone()), udp(5070));
    layer.handle_message(t0 + ms(600), SipMessage::Response(ok), udp(5070));
    let mut log = vec![];
    drain(&mut layer, t0, t0, &mut log);
    let oks = log.iter().filter(|(_, s)| matches!(s, Seen::Ev(TransactionEvent::Response { .. }))).count();
    assert_eq!(oks, 2, "RFC 6026: 2xx retransmissions reach the TU, which re-ACKs");
    assert_eq!(tx_times(&log).len(), 1, "no ACK from the transaction for a 2xx");
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(10 + 32_000)));
}

#[test]
fn non_invite_client_udp_timer_e_capped_at_t2_until_f() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.send_request(t0, request("OPTIONS", "z9hG4bKo", 1), udp(5070)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    assert_eq!(
        tx_times(&log),
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(timeout_at(&log), Some(32_000));
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_client_with_t1_100ms_t2_400ms() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(fast_timers());
    layer.send_request(t0, request("OPTIONS", "z9hG4bKo", 1), udp(5070)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    let times = tx_times(&log);
    assert_eq!(&times[..6], &[0, 100, 300, 700, 1100, 1500]);
    assert_eq!(*times.last().unwrap(), 6300);
    assert_eq!(timeout_at(&log), Some(6_400));
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let req = request("REGISTER", "z9hG4bKr", 1);
    layer.send_request(t0, req.clone(), udp(5070)).unwrap();
    layer.poll_transmit();
    // 1xx at 100 ms; E still fires at 500 then every T2 (§17.1.2.2).
    layer.handle_message(t0 + ms(100), SipMessage::Response(response(&req, 100)), udp(5070));
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    assert_eq!(tx_times(&log), vec![500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]);
    assert_eq!(timeout_at(&log), Some(32_000));
}

#[test]
fn non_invite_client_k_is_t4_over_udp_zero_over_tcp() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let req = request("OPTIONS", "z9hG4bKo", 1);
    layer.send_request(t0, req.clone(), udp(5070)).unwrap();
    layer.handle_message(t0 + ms(200), SipMessage::Response(response(&req, 200)), udp(5070));
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    assert_eq!(tx_times(&log), vec![0], "no retransmission after the final");
    assert_eq!(terminated_at(&log), Some(5_200));

    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.send_request(t0, req.clone(), tcp(5070)).unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(32_000)), "only F over TCP");
    layer.handle_message(t0 + ms(200), SipMessage::Response(response(&req, 200)), tcp(5070));
    assert_eq!(layer.len(), 0);
}

/// Creates an INVITE server transaction at t0 and returns its key.
fn server_invite(layer: &mut TransactionLayer, t0: Instant, from: Peer) -> (super::super::TransactionKey, Request) {
    let inv = request("INVITE", "z9hG4bKs", 1);
    layer.handle_message(t0, SipMessage::Request(inv.clone()), from);
    match layer.poll_event() {
        Some(TransactionEvent::Request { key, .. }) => (key, inv),
        other => panic!("expected Request, got {other:?}"),
    }
}

#[test]
fn invite_server_final_retransmitted_on_g_until_h() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let (key, inv) = server_invite(&mut layer, t0, udp(5060));
    layer.send_response(t0, &key, response(&inv, 486)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    assert_eq!(
        tx_times(&log),
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(timeout_at(&log), Some(32_000), "H: no ACK within 64*T1");
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_server_ack_stops_g_and_i_is_t4() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let (key, inv) = server_invite(&mut layer, t0, udp(5060));
    layer.send_response(t0, &key, response(&inv, 486)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(2000), &mut log);
    assert_eq!(tx_times(&log), vec![0, 500, 1500]);
    let ack = request("ACK", "z9hG4bKs", 1);
    layer.handle_message(t0 + ms(2000), SipMessage::Request(ack.clone()), udp(5060));
    assert_eq!(layer.poll_event(), None, "the ACK for a non-2xx stays in the transaction");
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(7000)), "I = T4");
    layer.handle_message(t0 + ms(3000), SipMessage::Request(ack), udp(5060));
    assert_eq!(layer.poll_transmit(), None, "ACK retransmission absorbed");
    layer.handle_timeout(t0 + ms(7000));
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Terminated { .. })));
}

#[test]
fn invite_server_over_tcp_has_no_g_and_zero_i() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let (key, inv) = server_invite(&mut layer, t0, tcp(5060));
    layer.send_response(t0 + ms(10), &key, response(&inv, 486)).unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(32_010)), "only H");
    layer.handle_message(t0 + ms(20), SipMessage::Request(request("ACK", "z9hG4bKs", 1)), tcp(5060));
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_server_g_capped_with_configured_t2() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(fast_timers());
    let (key, inv) = server_invite(&mut layer, t0, udp(5060));
    layer.send_response(t0, &key, response(&inv, 480)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(60_000), &mut log);
    let times = tx_times(&log);
    assert_eq!(&times[..6], &[0, 100, 300, 700, 1100, 1500]);
    assert_eq!(timeout_at(&log), Some(6_400));
}

#[test]
fn invite_server_sends_100_trying_after_200ms_only_if_tu_silent() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let (_key, _inv) = server_invite(&mut layer, t0, udp(5060));
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(200)));
    layer.handle_timeout(t0 + ms(200));
    match layer.poll_transmit().map(|t| t.message) {
        Some(SipMessage::Response(r)) => {
            assert_eq!(r.status_code.code(), 100);
            assert_eq!(r.to_header().unwrap().tag().unwrap(), None, "100 Trying carries no To tag");
        }
        other => panic!("expected 100 Trying, got {other:?}"),
    }

    let mut layer = TransactionLayer::new(SipTimers::default());
    let (key, inv) = server_invite(&mut layer, t0, udp(5060));
    layer.send_response(t0 + ms(50), &key, response(&inv, 180)).unwrap();
    let mut log = vec![];
    run_until(&mut layer, t0, ms(10_000), &mut log);
    let codes: Vec<u16> = log
        .iter()
        .filter_map(|(_, s)| match s {
            Seen::Tx(SipMessage::Response(r)) => Some(r.status_code.code()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![180], "TU answered within 200 ms: no 100");
}

#[test]
fn invite_server_absorbs_retransmissions_resending_last_response() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let (key, inv) = server_invite(&mut layer, t0, udp(5060));
    // Retransmission before any response: 100 Trying at once.
    layer.handle_message(t0 + ms(100), SipMessage::Request(inv.clone()), udp(5060));
    assert!(matches!(layer.poll_transmit().map(|t| t.message), Some(SipMessage::Response(r)) if r.status_code.code() == 100));
    layer.send_response(t0 + ms(150), &key, response(&inv, 180)).unwrap();
    layer.poll_transmit();
    layer.handle_message(t0 + ms(500), SipMessage::Request(inv.clone()), udp(5060));
    assert!(matches!(layer.poll_transmit().map(|t| t.message), Some(SipMessage::Response(r)) if r.status_code.code() == 180));
    assert_eq!(layer.poll_event(), None, "the TU saw the INVITE once");
    layer.send_response(t0 + ms(600), &key, response(&inv, 603)).unwrap();
    layer.poll_transmit();
    layer.handle_message(t0 + ms(700), SipMessage::Request(inv), udp(5060));
    assert!(matches!(layer.poll_transmit().map(|t| t.message), Some(SipMessage::Response(r)) if r.status_code.code() == 603));
    assert_eq!(layer.poll_event(), None);
}

#[test]
fn non_invite_server_j_is_64_t1_over_udp_zero_over_tcp() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let opt = request("OPTIONS", "z9hG4bKo", 1);
    layer.handle_message(t0, SipMessage::Request(opt.clone()), udp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!("no request") };
    // Retransmission before the TU answers: absorbed silently.
    layer.handle_message(t0 + ms(500), SipMessage::Request(opt.clone()), udp(5060));
    assert_eq!(layer.poll_transmit(), None);
    assert_eq!(layer.poll_event(), None);
    layer.send_response(t0 + ms(600), &key, response(&opt, 200)).unwrap();
    layer.poll_transmit().unwrap();
    // After the final, a retransmission gets the final again.
    layer.handle_message(t0 + ms(1500), SipMessage::Request(opt.clone()), udp(5060));
    assert!(matches!(layer.poll_transmit().map(|t| t.message), Some(SipMessage::Response(r)) if r.status_code.code() == 200));
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(600 + 32_000)));
    assert_eq!(
        layer.send_response(t0 + ms(700), &key, response(&opt, 500)),
        Err(super::super::TransactionError::AlreadyFinal { key: key.clone(), status: 500 })
    );

    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.handle_message(t0, SipMessage::Request(opt.clone()), tcp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!("no request") };
    layer.send_response(t0, &key, response(&opt, 200)).unwrap();
    assert_eq!(layer.len(), 0, "J is zero over TCP");
}
