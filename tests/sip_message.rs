//! Texts through the trunk: the endpoint sends a SIP MESSAGE (RFC 3428) to a
//! SIPp carrier, answers its digest challenge, and reports the final status.

mod common;

use std::time::Duration;

use common::Sipp;
use redial::sip::calls::pager::MessageRequest;
use redial::sip::calls::Credentials;
use redial::sip::endpoint::Endpoint;
use redial::sip::{Peer, Transport};
use tokio::sync::watch;

fn text_to(port: u16, credentials: Option<Credentials>) -> MessageRequest {
    MessageRequest {
        request_uri: format!("sip:+15551234567@127.0.0.1:{port}"),
        to: "<sip:+15551234567@carrier.test>".into(),
        from_user: "+15550100".into(),
        from_host: "carrier.test".into(),
        destination: Peer { addr: ([127, 0, 0, 1], port).into(), transport: Transport::Udp },
        text: "Your callback is booked for tomorrow 3 PM. Reply STOP to cancel.".into(),
        credentials,
        headers: vec![("X-Redial-Callback-Id".into(), "cb_1".into())],
    }
}

async fn send(scenario: &str, credentials: Option<Credentials>) -> (Result<u16, u16>, common::SippOutput) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::endpoint_config(dir.path(), "+15550100");
    let (_stop, stop_rx) = watch::channel(false);
    let ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
    let scenario = scenario.to_string();
    let sipp = tokio::task::spawn_blocking(move || Sipp::new(&scenario).timeout(Duration::from_secs(20)).trace_msg().spawn()).await.unwrap();
    let port = sipp.port();
    let result = tokio::time::timeout(Duration::from_secs(40), ep.calls.message(text_to(port, credentials))).await;
    let out = tokio::task::spawn_blocking(move || sipp.wait()).await.unwrap();
    let result = result.unwrap_or_else(|_| panic!("no final result within Timer F; SIPp: {out}")).expect("the endpoint answers");
    (result, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_is_accepted_after_a_digest_challenge() {
    let creds = Credentials { username: "trunk1".into(), password: "s3cret".into() };
    let (result, out) = send("sms_carrier_auth.xml", Some(creds)).await;
    assert_eq!(result, Ok(202), "{out}");
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("MESSAGE "), 2, "{}", out.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_from_the_carrier_is_a_failure() {
    let (result, out) = send("sms_carrier_unavailable.xml", None).await;
    assert_eq!(result, Err(503), "{out}");
    assert!(out.ok(), "{out}");
}
