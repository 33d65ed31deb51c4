//! Matching rules of the layer: ACK, CANCEL, stray responses, misuse, RFC 2543 requests.

use std::time::Instant;

use rsip::{Method, Request, SipMessage};

use super::super::{Role, TransactionError};
use super::*;

#[test]
fn ack_for_2xx_goes_to_the_tu() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKs", 1);
    layer.handle_message(t0, SipMessage::Request(inv.clone()), udp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
    layer.send_response(t0, &key, response(&inv, 200)).unwrap();
    // The transaction is Accepted (RFC 6026): 2xx retransmissions from the TU pass through.
    layer.send_response(t0 + ms(500), &key, response(&inv, 200)).unwrap();
    assert_eq!(layer.poll_transmit().into_iter().count() + layer.poll_transmit().into_iter().count(), 2);
    // The ACK for a 2xx has its own branch (§17.1.1.3) and matches no transaction.
    let ack = request("ACK", "z9hG4bKother", 1);
    layer.handle_message(t0 + ms(600), SipMessage::Request(ack.clone()), udp(5060));
    assert_eq!(layer.poll_event(), Some(TransactionEvent::Ack { request: ack, from: udp(5060) }));
    // An ACK reusing the INVITE branch reaches the TU too, via the Accepted transaction.
    let ack = request("ACK", "z9hG4bKs", 1);
    layer.handle_message(t0 + ms(700), SipMessage::Request(ack.clone()), udp(5060));
    assert_eq!(layer.poll_event(), Some(TransactionEvent::Ack { request: ack, from: udp(5060) }));
    // INVITE retransmissions are absorbed in Accepted; the TU's retransmitter resends the 2xx.
    layer.handle_message(t0 + ms(800), SipMessage::Request(inv.clone()), udp(5060));
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.poll_transmit(), None);
    // Timer L = 64*T1 ends it.
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(32_000)));
    assert!(matches!(
        layer.send_response(t0, &key, response(&inv, 486)),
        Err(TransactionError::AlreadyFinal { status: 486, .. })
    ));
}

#[test]
fn cancel_gets_its_own_transaction_and_names_its_target() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKs", 1);
    layer.handle_message(t0, SipMessage::Request(inv.clone()), udp(5060));
    let Some(TransactionEvent::Request { key: inv_key, .. }) = layer.poll_event() else { panic!() };
    assert!(layer.is_pending(&inv_key));
    let cancel = request("CANCEL", "z9hG4bKs", 1);
    layer.handle_message(t0 + ms(100), SipMessage::Request(cancel.clone()), udp(5060));
    let Some(TransactionEvent::Cancel { key, target, request, from }) = layer.poll_event() else { panic!() };
    assert_eq!(target.as_ref(), Some(&inv_key));
    assert_ne!(key, inv_key);
    assert_eq!(key.method(), Method::Cancel);
    assert_eq!(request, cancel);
    assert_eq!(from, udp(5060));
    // TU: 200 to the CANCEL, 487 to the INVITE (§9.2).
    layer.send_response(t0 + ms(100), &key, response(&cancel, 200)).unwrap();
    layer.send_response(t0 + ms(100), &inv_key, response(&inv, 487)).unwrap();
    assert!(!layer.is_pending(&inv_key));
    // A retransmitted CANCEL is answered from its transaction, not passed up.
    while layer.poll_transmit().is_some() {}
    layer.handle_message(t0 + ms(600), SipMessage::Request(cancel), udp(5060));
    assert!(matches!(layer.poll_transmit().map(|t| t.message), Some(SipMessage::Response(r)) if r.status_code.code() == 200));
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.len(), 2);
}

#[test]
fn cancel_for_unknown_invite_has_no_target() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.handle_message(t0, SipMessage::Request(request("CANCEL", "z9hG4bKx", 1)), udp(5060));
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Cancel { target: None, .. })));
}

#[test]
fn stray_2xx_to_invite_passed_up_others_dropped() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let ok = response(&request("INVITE", "z9hG4bKgone", 1), 200);
    layer.handle_message(t0, SipMessage::Response(ok.clone()), udp(5070));
    assert_eq!(layer.poll_event(), Some(TransactionEvent::StrayResponse { response: ok, from: udp(5070) }));
    layer.handle_message(t0, SipMessage::Response(response(&request("OPTIONS", "z9hG4bKgone", 1), 200)), udp(5070));
    layer.handle_message(t0, SipMessage::Response(response(&request("INVITE", "z9hG4bKgone", 1), 486)), udp(5070));
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.poll_transmit(), None);
}

#[test]
fn client_matching_uses_branch_and_cseq_method() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKa", 1);
    let key = layer.send_request(t0, inv.clone(), udp(5070)).unwrap();
    assert_eq!(key.role(), Role::Client);
    // A CANCEL shares the INVITE's branch but is a different client transaction (§9.1).
    let cancel = request("CANCEL", "z9hG4bKa", 1);
    let ckey = layer.send_request(t0, cancel.clone(), udp(5070)).unwrap();
    assert_ne!(key, ckey);
    layer.handle_message(t0, SipMessage::Response(response(&cancel, 200)), udp(5070));
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Response { key: k, .. }) if k == ckey));
    layer.handle_message(t0, SipMessage::Response(response(&inv, 487)), udp(5070));
    assert!(matches!(layer.poll_event(), Some(TransactionEvent::Response { key: k, response }) if k == key && response.status_code.code() == 487));
}

#[test]
fn misuse_is_an_error() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    assert_eq!(
        layer.send_request(t0, request("ACK", "z9hG4bKa", 1), udp(5070)),
        Err(TransactionError::AckNotTransactional)
    );
    assert_eq!(
        layer.send_request(t0, request("OPTIONS", "1234", 1), udp(5070)),
        Err(TransactionError::BadBranch { branch: Some("1234".into()) })
    );
    let key = layer.send_request(t0, request("OPTIONS", "z9hG4bKa", 1), udp(5070)).unwrap();
    assert_eq!(
        layer.send_request(t0, request("OPTIONS", "z9hG4bKa", 1), udp(5070)),
        Err(TransactionError::Duplicate { key: key.clone() })
    );
    let resp = response(&request("OPTIONS", "z9hG4bKa", 1), 200);
    assert_eq!(layer.send_response(t0, &key, resp), Err(TransactionError::NotServer { key: key.clone() }));
    let mut bad = request("OPTIONS", "z9hG4bKb", 1);
    bad.method = Method::Info;
    assert!(matches!(layer.send_request(t0, bad, udp(5070)), Err(TransactionError::MethodMismatch { .. })));
}

#[test]
fn transport_error_ends_the_transaction() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let key = layer.send_request(t0, request("INVITE", "z9hG4bKa", 1), tcp(5070)).unwrap();
    layer.report_transport_error(&key);
    assert_eq!(layer.poll_event(), Some(TransactionEvent::TransportError { key: key.clone() }));
    assert_eq!(layer.poll_event(), Some(TransactionEvent::Terminated { key: key.clone() }));
    assert_eq!(layer.len(), 0);
    assert!(matches!(
        layer.send_response(t0, &key, response(&request("INVITE", "z9hG4bKa", 1), 200)),
        Err(TransactionError::UnknownTransaction { .. })
    ));
}

#[test]
fn rfc2543_requests_still_absorb_retransmissions_and_match_ack() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "old1", 1);
    layer.handle_message(t0, SipMessage::Request(inv.clone()), udp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
    layer.handle_message(t0 + ms(100), SipMessage::Request(inv.clone()), udp(5060));
    assert_eq!(layer.poll_event(), None, "retransmission absorbed");
    layer.send_response(t0 + ms(150), &key, response(&inv, 404)).unwrap();
    while layer.poll_transmit().is_some() {}
    layer.handle_message(t0 + ms(200), SipMessage::Request(request("ACK", "old1", 1)), udp(5060));
    assert_eq!(layer.poll_event(), None, "ACK matched the INVITE transaction");
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(5200)), "timer I armed");
}

#[test]
fn poll_timeout_is_minimum_over_transactions() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    layer.send_request(t0, request("OPTIONS", "z9hG4bK1", 1), tcp(5070)).unwrap();
    layer.send_request(t0 + ms(10), request("OPTIONS", "z9hG4bK2", 1), udp(5070)).unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(510)));
    assert_eq!(layer.len(), 2);
}

#[test]
fn cancel_after_final_matches_but_invite_is_no_longer_pending() {
    // §9.2: the CANCEL still gets its 200 from its own transaction; the INVITE is unchanged.
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let inv = request("INVITE", "z9hG4bKs", 1);
    layer.handle_message(t0, SipMessage::Request(inv.clone()), udp(5060));
    let Some(TransactionEvent::Request { key: inv_key, .. }) = layer.poll_event() else { panic!() };
    layer.send_response(t0, &inv_key, response(&inv, 200)).unwrap();
    layer.handle_message(t0 + ms(10), SipMessage::Request(request("CANCEL", "z9hG4bKs", 1)), udp(5060));
    let Some(TransactionEvent::Cancel { target: Some(target), .. }) = layer.poll_event() else { panic!() };
    assert_eq!(target, inv_key);
    assert!(!layer.is_pending(&target));
    assert!(matches!(
        layer.send_response(t0, &target, response(&inv, 487)),
        Err(TransactionError::AlreadyFinal { status: 487, .. })
    ));
}

#[test]
fn top_via_of_a_comma_separated_via_line_is_used() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let text = request("OPTIONS", "z9hG4bKtop", 1).to_string().replace(
        "branch=z9hG4bKtop",
        "branch=z9hG4bKtop, SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlower",
    );
    let req = Request::try_from(text.as_str()).unwrap();
    layer.handle_message(t0, SipMessage::Request(req), udp(5060));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
    assert_eq!(key.branch(), "z9hG4bKtop");
}

#[test]
fn responses_go_to_the_request_source_and_requests_to_the_given_peer() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let opt = request("OPTIONS", "z9hG4bKo", 1);
    layer.handle_message(t0, SipMessage::Request(opt.clone()), tcp(40000));
    let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
    layer.send_response(t0, &key, response(&opt, 200)).unwrap();
    assert_eq!(layer.poll_transmit().unwrap().to, tcp(40000));
    layer.send_request(t0, request("OPTIONS", "z9hG4bKc", 1), udp(5080)).unwrap();
    assert_eq!(layer.poll_transmit().unwrap().to, udp(5080));
}

#[test]
fn completed_non_invite_server_transactions_count_as_kept_bytes_not_pending() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(SipTimers::default());
    let mut wires = Vec::new();
    for i in 0..3 {
        let req = request("REGISTER", &format!("z9hG4bKk{i}"), 1);
        layer.handle_message(t0, SipMessage::Request(req.clone()), udp(5060));
        let Some(TransactionEvent::Request { key, .. }) = layer.poll_event() else { panic!() };
        assert_eq!(layer.pending(), 1, "unanswered: at work");
        layer.send_response(t0, &key, response(&req, 401)).unwrap();
        let t = layer.poll_transmit().unwrap();
        let wire = t.wire.expect("the final response is sent as the bytes kept for retransmissions");
        assert_eq!(wire, crate::sip::codec::encode_response(match &t.message {
            SipMessage::Response(r) => r,
            _ => panic!(),
        }));
        wires.push(wire);
    }
    assert_eq!((layer.len(), layer.pending()), (3, 0), "answered: kept for Timer J, no longer at work");
    let kept = layer.kept_bytes();
    let stored: usize = wires.iter().map(|w| w.len()).sum();
    assert!(kept > stored && kept < stored + 3 * 1024, "kept {kept} for {stored} bytes of responses");

    // A retransmission is answered with the very bytes sent first; nothing changes in the counts.
    layer.handle_message(t0 + ms(500), SipMessage::Request(request("REGISTER", "z9hG4bKk1", 1)), udp(5060));
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.poll_transmit().unwrap().wire.as_ref(), Some(&wires[1]));
    assert_eq!((layer.pending(), layer.kept_bytes()), (0, kept));

    // A new, unanswered request is at work; Timer J frees the kept ones.
    layer.handle_message(t0 + ms(1_000), SipMessage::Request(request("OPTIONS", "z9hG4bKk9", 1)), udp(5060));
    assert_eq!(layer.pending(), 1);
    layer.handle_timeout(t0 + ms(32_000));
    assert_eq!((layer.len(), layer.pending(), layer.kept_bytes()), (1, 1, 0));
}
