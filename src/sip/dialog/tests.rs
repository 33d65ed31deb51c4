//! Dialog tests: route sets, request builders, CSeq checks, CANCEL, 2xx retransmission.

use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use super::*;
use crate::config::SipTimers;
use crate::sip::{Peer, Transport};

// rsip prints the transport parameter upper-case (equivalent, RFC 3261 §19.1.4).
const INVITE: &str = "INVITE sip:+15550123@carrier.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv1\r\n\
Max-Forwards: 70\r\n\
From: \"Redial\" <sip:+15550100@redial.test>;tag=ours1\r\n\
To: <sip:+15550123@carrier.test>\r\n\
Call-ID: c1@redial\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:redial@127.0.0.1:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

const OK_WITH_RR: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv1\r\n\
Record-Route: <sip:p3.carrier.test;lr>\r\n\
Record-Route: <sip:p2.carrier.test;lr>, <sip:p1.carrier.test;lr>\r\n\
From: \"Redial\" <sip:+15550100@redial.test>;tag=ours1\r\n\
To: <sip:+15550123@carrier.test>;tag=theirs1\r\n\
Call-ID: c1@redial\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:gw7@10.0.0.7:5080;transport=udp>\r\n\
Content-Length: 0\r\n\r\n";

fn invite() -> Request {
    Request::try_from(INVITE).unwrap()
}

fn ok_rr() -> Response {
    Response::try_from(OK_WITH_RR).unwrap()
}

fn via() -> rsip::headers::Via {
    new_via(Transport::Udp, "127.0.0.1:5060")
}

fn routes(req: &Request) -> Vec<String> {
    req.headers
        .iter()
        .filter_map(|h| match h {
            Header::Route(r) => Some(r.value().to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn uac_bye_uses_contact_reversed_record_route_and_next_cseq() {
    let mut d = Dialog::uac(&invite(), &ok_rr()).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.role(), DialogRole::Uac);
    assert_eq!(
        d.id(),
        &DialogId { call_id: "c1@redial".into(), local_tag: "ours1".into(), remote_tag: "theirs1".into() }
    );
    let bye = d.bye(via()).unwrap();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:gw7@10.0.0.7:5080;transport=UDP");
    // §12.1.2: the UAC's route set is the Record-Route in reverse order.
    assert_eq!(
        routes(&bye),
        vec!["<sip:p1.carrier.test;lr>", "<sip:p2.carrier.test;lr>", "<sip:p3.carrier.test;lr>"]
    );
    assert_eq!(bye.cseq_header().unwrap().seq().unwrap(), 11);
    assert_eq!(bye.cseq_header().unwrap().method().unwrap(), Method::Bye);
    assert_eq!(bye.from_header().unwrap().tag().unwrap().unwrap().to_string(), "ours1");
    assert_eq!(bye.to_header().unwrap().tag().unwrap().unwrap().to_string(), "theirs1");
    assert_eq!(bye.call_id_header().unwrap().value(), "c1@redial");
    assert!(bye.via_header().unwrap().value().contains("branch=z9hG4bK"));
    assert_eq!(d.state(), DialogState::Terminated);
    // What we build parses back.
    Request::try_from(bye.to_string().as_str()).unwrap();
}

#[test]
fn in_dialog_requests_increment_cseq_and_ack_reuses_invite_cseq() {
    let mut d = Dialog::uac(&invite(), &ok_rr()).unwrap();
    let ack = d.ack(via()).unwrap();
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.cseq_header().unwrap().seq().unwrap(), 10, "§13.2.2.4: ACK has the INVITE's CSeq number");
    assert_eq!(ack.uri.to_string(), "sip:gw7@10.0.0.7:5080;transport=UDP");
    assert_eq!(routes(&ack).len(), 3);
    let opt = d.options(via()).unwrap();
    assert_eq!(opt.cseq_header().unwrap().seq().unwrap(), 11);
    let info = d.info(via(), "application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n".to_vec()).unwrap();
    assert_eq!(info.cseq_header().unwrap().seq().unwrap(), 12);
    assert_eq!(info.body, b"Signal=5\r\nDuration=160\r\n");
    let reinv = d.reinvite(via(), Some(b"v=0\n".to_vec())).unwrap();
    assert_eq!(reinv.cseq_header().unwrap().seq().unwrap(), 13);
    assert!(reinv.contact_header().is_ok(), "target refresh carries Contact");
    let ack2 = d.ack(via()).unwrap();
    assert_eq!(ack2.cseq_header().unwrap().seq().unwrap(), 13, "ACK for the re-INVITE's 2xx");
    // Two requests get different branches.
    assert_ne!(d.options(via()).unwrap().via_header().unwrap(), opt.via_header().unwrap());
}

#[test]
fn early_dialog_confirmed_by_2xx_recomputes_route_set() {
    let ringing = OK_WITH_RR
        .replace("200 OK", "180 Ringing")
        .replace("Record-Route: <sip:p3.carrier.test;lr>\r\n", "");
    let ringing = Response::try_from(ringing.as_str()).unwrap();
    let mut d = Dialog::uac(&invite(), &ringing).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    assert_eq!(d.route_set().len(), 2);
    d.on_response(&ok_rr()).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.route_set().len(), 3);
    assert_eq!(d.route_set()[0], "<sip:p1.carrier.test;lr>");
}

#[test]
fn responses_without_to_tag_or_final_errors_do_not_create_dialogs() {
    let no_tag = Response::try_from(OK_WITH_RR.replace(";tag=theirs1", "").as_str()).unwrap();
    assert_eq!(Dialog::uac(&invite(), &no_tag), Err(DialogError::NotDialogCreating { status: 200 }));
    let busy = Response::try_from(OK_WITH_RR.replace("200 OK", "486 Busy Here").as_str()).unwrap();
    assert_eq!(Dialog::uac(&invite(), &busy), Err(DialogError::NotDialogCreating { status: 486 }));
}

#[test]
fn strict_router_becomes_request_uri() {
    let ok = Response::try_from(
        OK_WITH_RR
            .replace("Record-Route: <sip:p3.carrier.test;lr>\r\n", "")
            .replace("<sip:p1.carrier.test;lr>", "<sip:p1.carrier.test>")
            .as_str(),
    )
    .unwrap();
    let mut d = Dialog::uac(&invite(), &ok).unwrap();
    let bye = d.bye(via()).unwrap();
    // §12.2.1.1: strict first route → Request-URI; the remote target is appended last.
    assert_eq!(bye.uri.to_string(), "sip:p1.carrier.test");
    assert_eq!(
        routes(&bye),
        vec!["<sip:p2.carrier.test;lr>".to_string(), "<sip:gw7@10.0.0.7:5080;transport=UDP>".to_string()]
    );
}

/// The INVITE as the UAS receives it (with Record-Route from proxies) and our 200.
fn uas_pair() -> (Request, Response) {
    let inv = INVITE.replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 69\r\nRecord-Route: <sip:p1.carrier.test;lr>, <sip:p2.carrier.test;lr>\r\n",
    );
    let inv = Request::try_from(inv.as_str()).unwrap();
    let mut ok = crate::sip::transaction::response_for(&inv, rsip::StatusCode::OK);
    ok.to_header_mut().unwrap().mut_tag(rsip::param::Tag::new("uas9")).unwrap();
    ok.headers.push(Header::Contact(rsip::headers::Contact::new("<sip:redial@127.0.0.1:5070>")));
    (inv, ok)
}

#[test]
fn uas_dialog_keeps_record_route_order_and_rejects_lower_cseq() {
    let (inv, ok) = uas_pair();
    let mut d = Dialog::uas(&inv, &ok).unwrap();
    assert_eq!(d.id().local_tag, "uas9");
    assert_eq!(d.id().remote_tag, "ours1");
    assert_eq!(d.remote_seq(), Some(10));
    let bye = d.clone().bye(via()).unwrap();
    assert_eq!(routes(&bye), vec!["<sip:p1.carrier.test;lr>", "<sip:p2.carrier.test;lr>"]);
    assert_eq!(bye.uri.to_string(), "sip:redial@127.0.0.1:5060");
    assert_eq!(bye.cseq_header().unwrap().seq().unwrap(), 1);
    assert_eq!(bye.from_header().unwrap().tag().unwrap().unwrap().to_string(), "uas9");

    // The peer's in-dialog requests: UAS perspective, To tag = ours.
    let peer_req = |method: &str, seq: u32| {
        let text = format!(
            "{method} sip:redial@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{method}{seq}\r\n\
             From: <sip:+15550100@redial.test>;tag=ours1\r\nTo: <sip:+15550123@carrier.test>;tag=uas9\r\n\
             Call-ID: c1@redial\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    };
    assert_eq!(d.handle_request(&peer_req("ACK", 10)), Ok(InDialogRequest::Ack));
    assert_eq!(d.handle_request(&peer_req("OPTIONS", 11)), Ok(InDialogRequest::Options));
    let err = d.handle_request(&peer_req("INFO", 9)).unwrap_err();
    assert_eq!(err, DialogError::CSeqOutOfOrder { got: 9, last: 11 });
    assert_eq!(err.status_code(), 500);
    assert_eq!(d.remote_seq(), Some(11));

    // Through the map: unknown dialogs are 481.
    let mut set = Dialogs::new();
    set.insert(d);
    let (id, kind) = set.handle_request(&peer_req("BYE", 12)).unwrap();
    assert_eq!(kind, InDialogRequest::Bye);
    assert_eq!(set.get(&id).unwrap().state(), DialogState::Terminated);
    let stranger = peer_req("BYE", 13).to_string().replace("tag=uas9", "tag=nope");
    let err = set.handle_request(&Request::try_from(stranger.as_str()).unwrap()).unwrap_err();
    assert_eq!(err, DialogError::UnknownDialog);
    assert_eq!(err.status_code(), 481);
}

#[test]
fn reinvite_answered_with_the_same_sdp_and_refreshes_target() {
    let (inv, mut ok) = uas_pair();
    ok.body = b"v=0\r\no=redial 1 1 IN IP4 127.0.0.1\r\n".to_vec();
    ok.headers.push(Header::ContentType(rsip::headers::ContentType::new("application/sdp")));
    let mut d = Dialog::uas(&inv, &ok).unwrap();
    let reinv =
        "INVITE sip:redial@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKre\r\n\
         From: <sip:+15550100@redial.test>;tag=ours1\r\nTo: <sip:+15550123@carrier.test>;tag=uas9\r\n\
         Call-ID: c1@redial\r\nCSeq: 11 INVITE\r\nContact: <sip:moved@127.0.0.1:6000>\r\n\
         Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
    let reinv = Request::try_from(reinv).unwrap();
    assert_eq!(d.handle_request(&reinv), Ok(InDialogRequest::ReInvite { offer: Some(b"v=0\n".to_vec()) }));
    assert_eq!(d.remote_target().to_string(), "sip:moved@127.0.0.1:6000");
    let answer = d.reinvite_answer(&reinv);
    assert_eq!(answer.status_code.code(), 200);
    assert_eq!(answer.body, ok.body);
    assert_eq!(answer.cseq_header().unwrap().seq().unwrap(), 11);
    assert!(answer.contact_header().is_ok());
    rsip::Response::try_from(answer.to_string().as_str()).unwrap();
}

#[test]
fn cancel_follows_section_9_1() {
    let inv = invite();
    let cancel = cancel_for(&inv);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, inv.uri);
    assert_eq!(cancel.call_id_header().unwrap(), inv.call_id_header().unwrap());
    assert_eq!(cancel.from_header().unwrap(), inv.from_header().unwrap());
    assert_eq!(cancel.to_header().unwrap(), inv.to_header().unwrap());
    assert_eq!(cancel.via_header().unwrap(), inv.via_header().unwrap(), "same top Via, same branch");
    assert_eq!(cancel.cseq_header().unwrap().seq().unwrap(), 10);
    assert_eq!(cancel.cseq_header().unwrap().method().unwrap(), Method::Cancel);
    assert!(cancel.body.is_empty());
    assert!(cancel.contact_header().is_err());
}

#[test]
fn late_2xx_after_cancel_is_acked_then_byed() {
    // §9.1 race: the 200 to the INVITE crossed our CANCEL.
    let mut d = Dialog::uac(&invite(), &ok_rr()).unwrap();
    let (ack, bye) = d.ack_and_bye(via(), via()).unwrap();
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.cseq_header().unwrap().seq().unwrap(), 10);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.cseq_header().unwrap().seq().unwrap(), 11);
    assert_eq!(d.state(), DialogState::Terminated);
    assert_eq!(d.options(via()), Err(DialogError::Terminated));
}

fn run_retransmitter(r: &mut Uas2xxRetransmitter, t0: Instant, until: Duration) -> (Vec<u64>, Option<u64>) {
    let mut sent = vec![];
    let mut gave_up = None;
    while let Some(at) = r.poll_timeout() {
        if at > t0 + until {
            break;
        }
        r.handle_timeout(at);
        if r.poll_transmit().is_some() {
            sent.push((at - t0).as_millis() as u64);
        }
        if r.poll_event() == Some(Retransmit2xxEvent::GaveUp) {
            gave_up = Some((at - t0).as_millis() as u64);
        }
    }
    (sent, gave_up)
}

#[test]
fn uas_2xx_retransmitted_t1_doubling_to_t2_gives_up_at_64_t1() {
    let t0 = Instant::now();
    let peer = Peer { addr: "127.0.0.1:5060".parse().unwrap(), transport: Transport::Udp };
    let (_, ok) = uas_pair();
    let mut r = Uas2xxRetransmitter::new(t0, ok.clone(), peer, SipTimers::default());
    let (sent, gave_up) = run_retransmitter(&mut r, t0, Duration::from_secs(100));
    assert_eq!(sent, vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert_eq!(gave_up, Some(32_000));
    assert!(r.is_done());
    assert_eq!(r.poll_event(), None, "reported once");

    let mut r = Uas2xxRetransmitter::new(t0, ok, peer, SipTimers::default());
    let (sent, _) = run_retransmitter(&mut r, t0, Duration::from_millis(2000));
    assert_eq!(sent, vec![500, 1500]);
    r.on_ack();
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.poll_event(), None);
}

#[test]
fn reinvite_glare_is_491_until_our_reinvite_completes() {
    let mut d = Dialog::uac(&invite(), &ok_rr()).unwrap();
    let ours = d.reinvite(via(), Some(b"v=0\n".to_vec())).unwrap();
    assert_eq!(d.reinvite(via(), None), Err(DialogError::ReInviteInProgress));
    let theirs = |seq: u32| {
        let text = format!(
            "INVITE sip:redial@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bKg{seq}\r\n\
             From: <sip:+15550123@carrier.test>;tag=theirs1\r\nTo: \"Redial\" <sip:+15550100@redial.test>;tag=ours1\r\n\
             Call-ID: c1@redial\r\nCSeq: {seq} INVITE\r\nContact: <sip:gw7@10.0.0.7:5080>\r\nContent-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    };
    let err = d.handle_request(&theirs(1)).unwrap_err();
    assert_eq!(err, DialogError::Glare);
    assert_eq!(err.status_code(), 491);
    let mut ok = crate::sip::transaction::response_for(&ours, rsip::StatusCode::OK);
    ok.headers.push(Header::Contact(rsip::headers::Contact::new("<sip:gw8@10.0.0.8:5080>")));
    d.on_reinvite_response(&ok).unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:gw8@10.0.0.8:5080");
    assert_eq!(d.handle_request(&theirs(2)), Ok(InDialogRequest::ReInvite { offer: None }));
}

#[test]
fn overlapping_reinvite_from_peer_is_500_with_retry_after_until_the_first_is_answered() {
    let (inv, ok) = uas_pair();
    let mut d = Dialog::uas(&inv, &ok).unwrap();
    let reinvite = |seq: u32| {
        let text = format!(
            "INVITE sip:redial@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKov{seq}\r\n\
             From: <sip:+15550100@redial.test>;tag=ours1\r\nTo: <sip:+15550123@carrier.test>;tag=uas9\r\n\
             Call-ID: c1@redial\r\nCSeq: {seq} INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    };
    let first = reinvite(11);
    assert_eq!(d.handle_request(&first), Ok(InDialogRequest::ReInvite { offer: None }));
    // §14.2: a second INVITE before the final to the first → 500 with Retry-After 0–10 s.
    let mut seen = std::collections::BTreeSet::new();
    for seq in 12..60 {
        let second = reinvite(seq);
        let err = d.handle_request(&second).unwrap_err();
        let DialogError::OverlappingReInvite { pending, retry_after_secs } = err.clone() else {
            panic!("expected an overlap, got {err:?}")
        };
        assert_eq!(pending, 11);
        assert!(retry_after_secs <= 10);
        seen.insert(retry_after_secs);
        assert_eq!(err.status_code(), 500);
        let answer = Dialog::overlap_answer(&second, retry_after_secs);
        assert_eq!(answer.status_code.code(), 500);
        let wire = answer.to_string();
        assert!(wire.contains(&format!("Retry-After: {retry_after_secs}\r\n")), "{wire}");
        assert!(wire.contains(&format!("CSeq: {seq} INVITE")), "{wire}");
        rsip::Response::try_from(wire.as_str()).unwrap();
    }
    assert!(seen.len() > 1, "Retry-After is random: {seen:?}");
    // A provisional does not end the window; the final does.
    let mut ringing = crate::sip::transaction::response_for(&first, rsip::StatusCode::Ringing);
    d.on_reinvite_answered(&ringing);
    assert!(matches!(d.handle_request(&reinvite(60)), Err(DialogError::OverlappingReInvite { .. })));
    ringing.status_code = rsip::StatusCode::NotAcceptableHere;
    d.on_reinvite_answered(&ringing);
    assert_eq!(d.handle_request(&reinvite(61)), Ok(InDialogRequest::ReInvite { offer: None }));
    // The ACK for a 2xx ends the window too, even if the TU did not report its answer.
    assert!(matches!(d.handle_request(&reinvite(62)), Err(DialogError::OverlappingReInvite { pending: 61, .. })));
    let ack = reinvite(61).to_string().replace("INVITE", "ACK");
    assert_eq!(d.handle_request(&Request::try_from(ack.as_str()).unwrap()), Ok(InDialogRequest::Ack));
    assert_eq!(d.handle_request(&reinvite(63)), Ok(InDialogRequest::ReInvite { offer: None }));
}
