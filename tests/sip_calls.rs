//! Call legs of the endpoint, in-process, against SIPp over loopback: outbound calls to a SIPp
//! callee (answer + our BYE, digest challenge, 486, CANCEL, the callee's INFO and BYE), and an
//! inbound call from a SIPp carrier to a DID.

mod common;

use std::time::Duration;

use common::{Sipp, SippOutput};
use redial::config::Config;
use redial::sip::calls::{Credentials, DialRequest, Leg, LegEvent};
use redial::sip::endpoint::{Endpoint, EndpointHandle};
use redial::sip::transaction::Role;
use redial::sip::{Peer, Transport};
use tokio::sync::watch;

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const DID: &str = "+15550100";

fn config(dir: &std::path::Path) -> Config {
    common::endpoint_config(dir, DID)
}

struct Harness {
    ep: EndpointHandle,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (stop, stop_rx) = watch::channel(false);
    let ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
    Harness { ep, _stop: stop, _dir: dir }
}

fn dial_to(port: u16, credentials: Option<Credentials>) -> DialRequest {
    DialRequest {
        request_uri: format!("sip:+15551234567@127.0.0.1:{port}"),
        to: "<sip:+15551234567@carrier.test>".into(),
        from_name: None,
        from_user: DID.into(),
        from_host: "carrier.test".into(),
        destination: Peer { addr: ([127, 0, 0, 1], port).into(), transport: Transport::Udp },
        headers: vec![("X-Redial-Callback-Id".into(), "cb-1".into())],
        sdp: SDP.to_vec(),
        credentials,
    }
}

/// The next event, or a panic after 10 s.
async fn next(leg: &mut Leg) -> LegEvent {
    tokio::time::timeout(Duration::from_secs(10), leg.events.recv()).await.expect("leg event in time").expect("leg open")
}

/// Starts a SIPp callee; it is listening when this returns.
async fn callee(scenario: &str) -> (u16, common::SippChild) {
    let scenario = scenario.to_string();
    let child = tokio::task::spawn_blocking(move || Sipp::new(&scenario).timeout(Duration::from_secs(15)).trace_msg().spawn()).await.unwrap();
    (child.port(), child)
}

async fn finished(child: common::SippChild) -> SippOutput {
    tokio::task::spawn_blocking(move || child.wait()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_answered_then_we_hang_up() {
    let h = start().await;
    let (port, sipp) = callee("calls_uas_answer.xml").await;
    let mut leg = h.ep.calls.dial(dial_to(port, None));
    assert_eq!(next(&mut leg).await, LegEvent::Progress { status: 180, sdp: None });
    let LegEvent::Answered { sdp: Some(answer) } = next(&mut leg).await else { panic!("not answered") };
    assert!(String::from_utf8_lossy(&answer).contains("m=audio"));
    leg.hangup();
    assert_eq!(next(&mut leg).await, LegEvent::Ended { by_remote: false });
    let out = finished(sipp).await;
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("BYE "), 1, "{}", out.messages);
    assert_eq!(h.ep.stats.get(Role::Client, "INVITE", "2xx"), 1);
    assert_eq!(h.ep.stats.get(Role::Client, "BYE", "2xx"), 1);
    let mut text = String::new();
    h.ep.stats.render_prometheus(&mut text);
    assert!(text.contains("redial_sip_transactions_total{method=\"INVITE\",role=\"client\",class=\"2xx\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_digest_challenge_is_answered_once() {
    let h = start().await;
    let (port, sipp) = callee("calls_uas_auth.xml").await;
    let creds = Credentials { username: "trunk1".into(), password: "s3cret".into() };
    let mut leg = h.ep.calls.dial(dial_to(port, Some(creds)));
    assert!(matches!(next(&mut leg).await, LegEvent::Answered { sdp: Some(_) }));
    leg.hangup();
    assert_eq!(next(&mut leg).await, LegEvent::Ended { by_remote: false });
    let out = finished(sipp).await;
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("INVITE "), 2, "{}", out.messages);
    assert_eq!(h.ep.stats.get(Role::Client, "INVITE", "4xx"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_busy_fails_with_486() {
    let h = start().await;
    let (port, sipp) = callee("calls_uas_486.xml").await;
    let mut leg = h.ep.calls.dial(dial_to(port, None));
    assert_eq!(next(&mut leg).await, LegEvent::Failed { status: 486 });
    let out = finished(sipp).await;
    assert!(out.ok(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_ringing_then_hangup_cancels() {
    let h = start().await;
    let (port, sipp) = callee("calls_uas_cancel.xml").await;
    let mut leg = h.ep.calls.dial(dial_to(port, None));
    assert_eq!(next(&mut leg).await, LegEvent::Progress { status: 180, sdp: None });
    leg.hangup();
    assert_eq!(next(&mut leg).await, LegEvent::Failed { status: 487 });
    let out = finished(sipp).await;
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("CANCEL "), 1, "{}", out.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_callee_sends_dtmf_info_then_bye() {
    let h = start().await;
    let (port, sipp) = callee("calls_uas_info_bye.xml").await;
    let mut leg = h.ep.calls.dial(dial_to(port, None));
    assert!(matches!(next(&mut leg).await, LegEvent::Answered { .. }));
    let mut seen = vec![];
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), leg.events.recv()).await {
        let end = matches!(ev, LegEvent::Ended { .. });
        seen.push(ev);
        if end {
            break;
        }
    }
    let out = finished(sipp).await;
    assert_eq!(seen, vec![LegEvent::Dtmf { digit: '5', duration_ms: 160 }, LegEvent::Ended { by_remote: true }], "{out}\n{}", out.messages);
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("SIP/2.0 200"), 2, "{}", out.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_call_to_a_did_rings_answers_and_ends_by_bye() {
    let mut h = start().await;
    let mut incoming = h.ep.incoming.take().unwrap();
    let sip = h.ep.local_addr;
    let caller = tokio::task::spawn_blocking(move || {
        Sipp::new("calls_uac_did.xml").remote(sip).arg("-s").arg(DID).arg("-d").arg("300").timeout(Duration::from_secs(15)).trace_msg().run()
    });
    let mut call = tokio::time::timeout(Duration::from_secs(10), incoming.recv()).await.unwrap().unwrap();
    assert_eq!(call.request_user, DID);
    assert_eq!(call.from_user.as_deref(), Some("+15557654321"));
    assert_eq!(call.asserted_user.as_deref(), Some("+15557654321"));
    assert!(String::from_utf8_lossy(call.sdp.as_deref().unwrap()).contains("m=audio"));
    assert!(call.headers.iter().any(|(n, v)| n == "P-Asserted-Identity" && v.contains("carrier.test")), "{:?}", call.headers);
    call.leg.ring();
    call.leg.answer(SDP.to_vec());
    assert_eq!(next(&mut call.leg).await, LegEvent::Answered { sdp: None });
    assert_eq!(next(&mut call.leg).await, LegEvent::Ended { by_remote: true });
    let out = caller.await.unwrap();
    assert!(out.ok(), "{out}");
    assert_eq!(h.ep.stats.get(Role::Server, "INVITE", "2xx"), 1);
    assert_eq!(h.ep.stats.get(Role::Server, "BYE", "2xx"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_call_without_a_taker_is_480() {
    let mut h = start().await;
    drop(h.ep.incoming.take());
    let sip = h.ep.local_addr;
    let out = tokio::task::spawn_blocking(move || {
        Sipp::new("calls_uac_did.xml").remote(sip).arg("-s").arg(DID).arg("-d").arg("300").timeout(Duration::from_secs(5)).trace_msg().run()
    })
    .await
    .unwrap();
    assert!(!out.ok());
    assert_eq!(out.received("SIP/2.0 480"), 1, "{}", out.messages);
    assert_eq!(h.ep.stats.get(Role::Server, "INVITE", "4xx"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_over_tcp() {
    let h = start().await;
    let sipp = tokio::task::spawn_blocking(|| Sipp::new("calls_uas_answer.xml").tcp().timeout(Duration::from_secs(15)).trace_msg().spawn()).await.unwrap();
    let port = sipp.port();
    let mut req = dial_to(port, None);
    req.destination.transport = Transport::Tcp;
    let mut leg = h.ep.calls.dial(req);
    assert_eq!(next(&mut leg).await, LegEvent::Progress { status: 180, sdp: None });
    assert!(matches!(next(&mut leg).await, LegEvent::Answered { sdp: Some(_) }));
    drop(leg);
    let out = finished(sipp).await;
    assert!(out.ok(), "{out}");
    assert!(out.messages.contains(";transport=tcp>"), "Contact says TCP: {}", out.messages);
    assert_eq!(out.received("BYE "), 1, "dropping the leg hung up: {}", out.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hangs_up_confirmed_calls() {
    let h = start().await;
    let (port, sipp) = callee("calls_uas_answer.xml").await;
    let mut leg = h.ep.calls.dial(dial_to(port, None));
    assert_eq!(next(&mut leg).await, LegEvent::Progress { status: 180, sdp: None });
    assert!(matches!(next(&mut leg).await, LegEvent::Answered { .. }));
    h._stop.send(true).unwrap();
    assert_eq!(next(&mut leg).await, LegEvent::Ended { by_remote: false });
    tokio::time::timeout(Duration::from_secs(5), h.ep.join()).await.expect("endpoint stops");
    let out = finished(sipp).await;
    assert!(out.ok(), "{out}");
}
