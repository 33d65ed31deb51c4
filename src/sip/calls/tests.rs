//! Call legs on both sides of two in-memory transaction layers (`transaction::tests::pair`),
//! in virtual time, routed as the endpoint driver routes them.

use std::time::Instant;

use tokio::sync::mpsc;

use super::table::Ctx;
use super::*;
use crate::config::{Config, SipTimers};
use crate::sip::endpoint::reply::reply;
use crate::sip::stats::SipStats;
use crate::sip::transaction::tests::pair::{Pair, Tu};
use crate::sip::transaction::{TransactionEvent, TransactionLayer};

/// What the UAS side does with each incoming call.
#[derive(Clone, Copy, PartialEq)]
enum Uas {
    /// 180 then 200.
    Answer,
    /// 180 only (the caller will cancel).
    Ring,
}

struct Side {
    calls: Calls,
    commands: mpsc::UnboundedReceiver<Command>,
    incoming: mpsc::Receiver<IncomingCall>,
    control: CallControl,
    stats: SipStats,
    /// Legs we hold, with every event each saw.
    legs: Vec<(Leg, Vec<LegEvent>)>,
}

impl Side {
    fn new(port: u16) -> Self {
        let (control, commands) = CallControl::new();
        let (tx, incoming) = mpsc::channel(4096);
        let local = format!("127.0.0.1:{port}").parse().unwrap();
        Self { calls: Calls::new(&Config::defaults(), local, control.clone(), tx), commands, incoming, control, stats: SipStats::new(), legs: vec![] }
    }

    fn drain_commands(&mut self, now: Instant, layer: &mut TransactionLayer) {
        let mut cx = Ctx { now, layer, stats: &self.stats };
        while let Ok(c) = self.commands.try_recv() {
            self.calls.handle_command(&mut cx, c);
        }
    }

    /// The driver's routing of transaction events, for the call legs only.
    fn route(&mut self, now: Instant, layer: &mut TransactionLayer, ev: &TransactionEvent) {
        let mut cx = Ctx { now, layer, stats: &self.stats };
        match ev.clone() {
            TransactionEvent::Request { key, request, from } => {
                if crate::sip::transaction::message::to_tag_of(&request).is_some() {
                    self.calls.on_in_dialog(&mut cx, key, request);
                } else if request.method == rsip::Method::Invite {
                    self.calls.on_invite(&mut cx, key, request, from);
                } else {
                    cx.respond(&key, reply(&request, 501));
                }
            }
            TransactionEvent::Cancel { key, target, request, .. } => {
                cx.respond(&key, reply(&request, if target.is_some() { 200 } else { 481 }));
                if let Some(t) = target {
                    if cx.layer.is_pending(&t) {
                        let invite = cx.layer.invite_request(&t).cloned().unwrap();
                        cx.respond(&t, reply(&invite, 487));
                    }
                    self.calls.on_cancelled(&t);
                }
            }
            TransactionEvent::Response { key, response } => {
                // Only the re-INVITE test sends requests of its own.
                let ours = self.calls.on_response(&mut cx, &key, response);
                assert!(ours || key.method() == rsip::Method::Invite);
            }
            TransactionEvent::Timeout { key } => {
                self.calls.on_failure(&mut cx, &key, 408);
            }
            TransactionEvent::TransportError { key } => {
                self.calls.on_failure(&mut cx, &key, 503);
            }
            TransactionEvent::Terminated { key } => self.calls.forget_txn(&key),
            TransactionEvent::Ack { request, .. } => self.calls.on_ack(&request),
            TransactionEvent::StrayResponse { response, .. } => self.calls.on_stray(&mut cx, &response),
        }
    }

    /// Moves new leg events into `legs`; returns the indexes of legs that got some.
    fn collect(&mut self) -> Vec<(usize, LegEvent)> {
        let mut out = vec![];
        for (i, (leg, seen)) in self.legs.iter_mut().enumerate() {
            while let Ok(ev) = leg.events.try_recv() {
                seen.push(ev.clone());
                out.push((i, ev));
            }
        }
        out
    }
}

/// Side 0 places calls, side 1 takes them.
struct Call {
    sides: [Side; 2],
    uas: Uas,
    /// Side 0 hangs up when its leg is answered / on the first progress.
    hangup_on_answer: bool,
    hangup_on_progress: bool,
    /// The body of side 0's INVITEs.
    offer: Vec<u8>,
}

impl Call {
    fn new(uas: Uas) -> Self {
        Self { sides: [Side::new(5060), Side::new(5070)], uas, hangup_on_answer: true, hangup_on_progress: false, offer: b"v=0\r\n".to_vec() }
    }

    fn dial(&mut self, pair: &mut Pair, n: usize) {
        for i in 0..n {
            let leg = self.sides[0].control.dial(DialRequest {
                request_uri: "sip:+15551234567@127.0.0.1:5070".into(),
                to: "<sip:+15551234567@carrier.test>".into(),
                from_name: None,
                from_user: "+15550100".into(),
                from_host: "carrier.test".into(),
                destination: pair.peers[1],
                headers: vec![("X-Redial-Callback-Id".into(), format!("cb{i}"))],
                sdp: self.offer.clone(),
                credentials: None,
            });
            self.sides[0].legs.push((leg, vec![]));
        }
        let now = pair.now;
        self.sides[0].drain_commands(now, &mut pair.layers[0]);
    }

    fn react(&mut self, side: usize, now: Instant, layer: &mut TransactionLayer) {
        if side == 1 {
            while let Ok(call) = self.sides[1].incoming.try_recv() {
                assert_eq!(call.request_user, "+15551234567");
                assert_eq!(call.from_user.as_deref(), Some("+15550100"));
                assert!(call.headers.iter().any(|(n, v)| n == "X-Redial-Callback-Id" && v.starts_with("cb")), "{:?}", call.headers);
                call.leg.ring();
                if self.uas == Uas::Answer {
                    call.leg.answer(b"v=0\r\ns=answer\r\n".to_vec());
                }
                self.sides[1].legs.push((call.leg, vec![]));
            }
        }
        for (i, ev) in self.sides[side].collect() {
            let leg = &self.sides[side].legs[i].0;
            match ev {
                LegEvent::Answered { .. } if side == 0 && self.hangup_on_answer => leg.hangup(),
                LegEvent::Progress { .. } if side == 0 && self.hangup_on_progress => leg.hangup(),
                _ => {}
            }
        }
        self.sides[side].drain_commands(now, layer);
    }
}

impl Tu for Call {
    fn on_event(&mut self, side: usize, now: Instant, layer: &mut TransactionLayer, ev: &TransactionEvent) {
        self.sides[side].route(now, layer, ev);
        self.react(side, now, layer);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sides.iter().filter_map(|s| s.calls.poll_timeout()).min()
    }

    fn handle_timeout(&mut self, now: Instant, layers: &mut [TransactionLayer; 2]) {
        for (side, layer) in layers.iter_mut().enumerate() {
            let s = &mut self.sides[side];
            s.calls.handle_timeout(&mut Ctx { now, layer, stats: &s.stats });
            self.react(side, now, layer);
        }
    }
}

fn finish(call: &mut Call, pair: &Pair) {
    for s in &mut call.sides {
        s.collect();
    }
    assert!(call.sides[0].calls.holds_nothing(), "UAC side keeps {} legs", call.sides[0].calls.leg_count());
    assert!(call.sides[1].calls.holds_nothing(), "UAS side keeps {} legs", call.sides[1].calls.leg_count());
    assert_eq!(pair.layers[0].len() + pair.layers[1].len(), 0);
}

#[test]
fn a_thousand_calls_answered_and_hung_up_leave_nothing_behind() {
    let mut pair = Pair::new(SipTimers::default(), 7, 0.0);
    let mut call = Call::new(Uas::Answer);
    call.dial(&mut pair, 1000);
    pair.run(&mut call);
    finish(&mut call, &pair);
    for (leg, seen) in &call.sides[0].legs {
        assert_eq!(
            seen,
            &vec![
                LegEvent::Progress { status: 180, sdp: None },
                LegEvent::Answered { sdp: Some(b"v=0\r\ns=answer\r\n".to_vec()) },
                LegEvent::Ended { by_remote: false }
            ],
            "UAC leg {}",
            leg.id
        );
    }
    assert_eq!(call.sides[1].legs.len(), 1000);
    for (leg, seen) in &call.sides[1].legs {
        assert_eq!(seen, &vec![LegEvent::Answered { sdp: None }, LegEvent::Ended { by_remote: true }], "UAS leg {}", leg.id);
    }
    let s0 = &call.sides[0].stats;
    assert_eq!(s0.get(crate::sip::transaction::Role::Client, "INVITE", "2xx"), 0, "the driver counts client finals, not the legs");
    assert_eq!(call.sides[1].stats.get(crate::sip::transaction::Role::Server, "INVITE", "2xx"), 1000);
    assert_eq!(call.sides[1].stats.get(crate::sip::transaction::Role::Server, "BYE", "2xx"), 1000);
}

#[test]
fn calls_complete_despite_20_percent_loss() {
    for seed in 0..10 {
        let mut pair = Pair::new(SipTimers::default(), seed, 0.2);
        let mut call = Call::new(Uas::Answer);
        call.dial(&mut pair, 20);
        pair.run(&mut call);
        finish(&mut call, &pair);
        for (_, seen) in &call.sides[0].legs {
            // Timer B may end an INVITE whose every copy was lost; otherwise the call completes.
            let last = seen.last().cloned();
            assert!(
                last == Some(LegEvent::Ended { by_remote: false }) || last == Some(LegEvent::Failed { status: 408 }),
                "seed {seed}: {seen:?}"
            );
            assert!(seen.contains(&LegEvent::Answered { sdp: Some(b"v=0\r\ns=answer\r\n".to_vec()) }) || last == Some(LegEvent::Failed { status: 408 }));
        }
        for (_, seen) in &call.sides[1].legs {
            assert_eq!(seen.last(), Some(&LegEvent::Ended { by_remote: true }), "seed {seed}: {seen:?}");
        }
    }
}

#[test]
fn hangup_while_ringing_cancels_both_legs_with_487() {
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    let mut call = Call::new(Uas::Ring);
    call.hangup_on_progress = true;
    call.dial(&mut pair, 10);
    pair.run(&mut call);
    finish(&mut call, &pair);
    for (_, seen) in &call.sides[0].legs {
        assert_eq!(seen, &vec![LegEvent::Progress { status: 180, sdp: None }, LegEvent::Failed { status: 487 }]);
    }
    for (_, seen) in &call.sides[1].legs {
        assert_eq!(seen, &vec![LegEvent::Failed { status: 487 }]);
    }
}

#[test]
fn hangup_before_any_provisional_waits_for_it_then_cancels() {
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    let mut call = Call::new(Uas::Ring);
    call.dial(&mut pair, 3);
    for (leg, _) in &call.sides[0].legs {
        leg.hangup();
    }
    let now = pair.now;
    call.sides[0].drain_commands(now, &mut pair.layers[0]);
    pair.run(&mut call);
    finish(&mut call, &pair);
    for (_, seen) in &call.sides[0].legs {
        // The UAS's 100 Trying allows the CANCEL; its 180 may or may not come first.
        assert_eq!(seen.last(), Some(&LegEvent::Failed { status: 487 }), "{seen:?}");
    }
    for (_, seen) in &call.sides[1].legs {
        assert_eq!(seen, &vec![LegEvent::Failed { status: 487 }]);
    }
}

#[test]
fn dropping_the_leg_hangs_up() {
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    let mut call = Call::new(Uas::Answer);
    call.hangup_on_answer = false;
    call.dial(&mut pair, 1);
    pair.run(&mut call);
    assert_eq!(call.sides[0].calls.leg_count(), 1, "answered, still up");
    call.sides[0].legs.clear();
    let now = pair.now;
    call.sides[0].drain_commands(now, &mut pair.layers[0]);
    pair.run(&mut call);
    finish(&mut call, &pair);
    assert_eq!(call.sides[1].legs[0].1.last(), Some(&LegEvent::Ended { by_remote: true }));
}

/// Side 0 is a bare UA driven by the test: it sends an INVITE, never ACKs the 2xx, and
/// answers the BYE. Side 1 is the call legs.
struct NoAck {
    uas: Side,
    byes: usize,
}

impl Tu for NoAck {
    fn on_event(&mut self, side: usize, now: Instant, layer: &mut TransactionLayer, ev: &TransactionEvent) {
        if side == 0 {
            if let TransactionEvent::Request { key, request, .. } = ev {
                assert_eq!(request.method, rsip::Method::Bye);
                self.byes += 1;
                layer.send_response(now, key, reply(request, 200)).unwrap();
            }
            return;
        }
        self.uas.route(now, layer, ev);
        while let Ok(call) = self.uas.incoming.try_recv() {
            call.leg.answer(b"v=0\r\n".to_vec());
            self.uas.legs.push((call.leg, vec![]));
        }
        self.uas.collect();
        self.uas.drain_commands(now, layer);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.uas.calls.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, layers: &mut [TransactionLayer; 2]) {
        let s = &mut self.uas;
        s.calls.handle_timeout(&mut Ctx { now, layer: &mut layers[1], stats: &s.stats });
        s.collect();
    }
}

fn raw_invite() -> rsip::Request {
    let text = "INVITE sip:+15550100@127.0.0.1:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnoack\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@127.0.0.1>;tag=c1\r\n\
         To: <sip:+15550100@127.0.0.1>\r\n\
         Call-ID: noack@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:5060>\r\n\
         Content-Length: 0\r\n\r\n";
    rsip::Request::try_from(text).unwrap()
}

#[test]
fn a_2xx_never_acked_is_retransmitted_then_the_call_is_hung_up_after_64_t1() {
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    let mut tu = NoAck { uas: Side::new(5070), byes: 0 };
    let now = pair.now;
    pair.layers[0].send_request(now, raw_invite(), pair.peers[1]).unwrap();
    pair.run(&mut tu);
    let oks = pair.count(0, |e| {
        matches!(e, TransactionEvent::Response { response, .. } | TransactionEvent::StrayResponse { response, .. } if response.status_code.code() == 200
            && crate::sip::transaction::message::cseq_of(&response.headers).unwrap().1 == rsip::Method::Invite)
    });
    // T1 = 500 ms doubling to T2 = 4 s within 32 s: 0.5, 1, 2, 4, 4, ... → 11 copies after the first.
    assert!(oks >= 10, "2xx retransmitted: {oks}");
    assert_eq!(tu.byes, 1);
    assert_eq!(tu.uas.legs[0].1, vec![LegEvent::Ended { by_remote: false }]);
    assert!(tu.uas.calls.holds_nothing());
}

#[test]
fn reinvite_is_answered_with_our_sdp_mirroring_its_direction_and_reported() {
    const OURS: &str = "v=0\r\no=redial 9 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    let hold = |dir: &str| format!("v=0\r\no=agent 4 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na={dir}\r\n").into_bytes();
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    let mut call = Call::new(Uas::Answer);
    call.hangup_on_answer = false;
    call.offer = OURS.as_bytes().to_vec();
    call.dial(&mut pair, 1);
    pair.run(&mut call);
    let did = call.sides[1].calls.dialogs.iter().next().unwrap().id().clone();
    // The UAS side sends re-INVITEs in the confirmed dialog through its Dialog; returns
    // the final response and whether side 0's leg was told.
    use rsip::prelude::HeadersExt;
    let mut reinvite = |body: Vec<u8>| {
        let via = crate::sip::dialog::new_via(crate::sip::Transport::Udp, "127.0.0.1:5070");
        let d = call.sides[1].calls.dialogs.get_mut(&did).unwrap();
        let req = d.reinvite(via, Some(body.clone())).unwrap();
        let seq = req.cseq_header().unwrap().seq().unwrap();
        let now = pair.now;
        pair.layers[1].send_request(now, req, pair.peers[0]).unwrap();
        pair.run(&mut call);
        let resp = pair.events[1]
            .iter()
            .find_map(|(_, e)| match e {
                TransactionEvent::Response { response, .. } if response.status_code.code() >= 200 && response.cseq_header().unwrap().seq().unwrap() == seq => Some(response.clone()),
                _ => None,
            })
            .expect("a final response to the re-INVITE");
        let d = call.sides[1].calls.dialogs.get_mut(&did).unwrap();
        d.on_reinvite_response(&resp).unwrap();
        let told = call.sides[0].legs[0].1.last() == Some(&LegEvent::Reoffer { sdp: body });
        (resp, told)
    };
    let (held, told) = reinvite(hold("sendonly"));
    assert_eq!(held.status_code.code(), 200);
    assert!(told, "the leg hears of the re-offer");
    let body = String::from_utf8(held.body.clone()).unwrap();
    assert!(body.contains("a=recvonly") && !body.contains("a=sendrecv"), "hold mirrored (RFC 3264 §8.4): {body}");
    assert!(body.contains("m=audio 30000 RTP/AVP 0 101") && body.contains("o=redial 9 2 "), "{body}");
    let (resumed, _) = reinvite(hold("sendrecv"));
    let body = String::from_utf8(resumed.body.clone()).unwrap();
    assert!(body.contains("a=sendrecv") && body.contains("o=redial 9 3 "), "{body}");
    // An offer that does not parse is refused and leaves the session as it was (§14.2).
    let (refused, told) = reinvite(b"v=0\r\ns=new\r\n".to_vec());
    assert_eq!(refused.status_code.code(), 400);
    assert!(!told);
}

#[test]
fn a_2xx_racing_our_cancel_is_acked_then_byed() {
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    // The callee sends 180 and 200 at once; we hang up on the 180, so the CANCEL crosses the 200.
    let mut call = Call::new(Uas::Answer);
    call.hangup_on_answer = false;
    call.hangup_on_progress = true;
    call.dial(&mut pair, 5);
    pair.run(&mut call);
    finish(&mut call, &pair);
    for (_, seen) in &call.sides[0].legs {
        assert_eq!(seen, &vec![LegEvent::Progress { status: 180, sdp: None }, LegEvent::Ended { by_remote: false }]);
    }
    for (_, seen) in &call.sides[1].legs {
        // Our ACK confirmed the callee's leg, then our BYE ended it.
        assert_eq!(seen, &vec![LegEvent::Answered { sdp: None }, LegEvent::Ended { by_remote: true }]);
    }
    let cancels = pair.count(1, |e| matches!(e, TransactionEvent::Cancel { .. }));
    assert_eq!(cancels, 5, "the CANCELs were sent");
}

#[test]
fn a_callee_that_never_answers_our_cancel_is_abandoned_after_64_t1() {
    // Side 1 is a bare UA: 180 to the INVITE, 200 to the CANCEL, and never a final.
    struct Mute {
        uac: Side,
    }
    impl Tu for Mute {
        fn on_event(&mut self, side: usize, now: Instant, layer: &mut TransactionLayer, ev: &TransactionEvent) {
            if side == 1 {
                match ev {
                    TransactionEvent::Request { key, request, .. } => {
                        let mut r = reply(request, 180);
                        r.headers.push(rsip::Header::Contact(<rsip::headers::Contact as rsip::headers::UntypedHeader>::new("<sip:callee@127.0.0.1:5070>")));
                        layer.send_response(now, key, r).unwrap();
                    }
                    TransactionEvent::Cancel { key, request, .. } => layer.send_response(now, key, reply(request, 200)).unwrap(),
                    _ => {}
                }
                return;
            }
            self.uac.route(now, layer, ev);
            for (i, ev) in self.uac.collect() {
                if matches!(ev, LegEvent::Progress { .. }) {
                    self.uac.legs[i].0.hangup();
                }
            }
            self.uac.drain_commands(now, layer);
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.uac.calls.poll_timeout()
        }
        fn handle_timeout(&mut self, now: Instant, layers: &mut [TransactionLayer; 2]) {
            let s = &mut self.uac;
            s.calls.handle_timeout(&mut Ctx { now, layer: &mut layers[0], stats: &s.stats });
            s.collect();
        }
    }
    let mut pair = Pair::new(SipTimers::default(), 1, 0.0);
    let mut tu = Mute { uac: Side::new(5060) };
    let leg = tu.uac.control.dial(DialRequest {
        request_uri: "sip:bob@127.0.0.1:5070".into(),
        to: "<sip:bob@127.0.0.1>".into(),
        from_name: None,
        from_user: "a".into(),
        from_host: "127.0.0.1".into(),
        destination: pair.peers[1],
        headers: vec![],
        sdp: b"v=0\r\n".to_vec(),
        credentials: None,
    });
    tu.uac.legs.push((leg, vec![]));
    let now = pair.now;
    tu.uac.drain_commands(now, &mut pair.layers[0]);
    pair.run(&mut tu);
    assert_eq!(tu.uac.legs[0].1, vec![LegEvent::Progress { status: 180, sdp: None }, LegEvent::Failed { status: 487 }]);
    assert!(tu.uac.calls.holds_nothing());
    assert_eq!(pair.layers[0].len(), 0, "the stuck INVITE client transaction was destroyed");
    assert!(pair.now - pair.t0 >= SipTimers::default().t1 * 64);
}

#[test]
fn a_closed_connection_ends_its_legs_at_once_without_a_bye() {
    // Confirmed calls: each leg ends as if the peer had hung up.
    let mut pair = Pair::new(SipTimers::default(), 3, 0.0);
    let mut call = Call::new(Uas::Answer);
    call.hangup_on_answer = false;
    call.dial(&mut pair, 2);
    pair.run(&mut call);
    call.sides[0].collect();
    let answered = LegEvent::Answered { sdp: Some(b"v=0\r\ns=answer\r\n".to_vec()) };
    assert!(call.sides[0].legs.iter().all(|(_, seen)| seen.contains(&answered)), "{:?}", call.sides[0].legs.iter().map(|l| &l.1).collect::<Vec<_>>());
    assert_eq!(call.sides[0].calls.connection_closed(pair.peers[1]), 2);
    call.sides[0].collect();
    for (_, seen) in &call.sides[0].legs {
        assert_eq!(seen.last(), Some(&LegEvent::Ended { by_remote: true }), "{seen:?}");
    }
    assert!(call.sides[0].calls.holds_nothing());
    assert_eq!(pair.layers[0].len(), 0, "no BYE toward the closed connection");
    assert_eq!(call.sides[0].calls.connection_closed(pair.peers[1]), 0, "nothing left to end");

    // A call still ringing there fails with 503, as a request to a closed connection does.
    let mut pair = Pair::new(SipTimers::default(), 4, 0.0);
    let mut call = Call::new(Uas::Ring);
    call.dial(&mut pair, 1);
    for _ in 0..1000 {
        if !call.sides[0].collect().is_empty() || !pair.step(&mut call) {
            break;
        }
    }
    assert_eq!(call.sides[0].legs[0].1, vec![LegEvent::Progress { status: 180, sdp: None }]);
    assert_eq!(call.sides[0].calls.connection_closed(pair.peers[1]), 1);
    call.sides[0].collect();
    assert_eq!(call.sides[0].legs[0].1.last(), Some(&LegEvent::Failed { status: 503 }));
    assert_eq!(call.sides[0].calls.connection_closed(pair.peers[0]), 0, "another peer's legs are not touched");
}
