use super::core::{dispatch, Decision};
use super::Directory;
use crate::sip::codec;

fn req(method: &str, user: &str, to_tag: bool) -> rsip::Request {
    let tag = if to_tag { ";tag=x" } else { "" };
    let raw = format!(
        "{method} sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
         From: <sip:p@127.0.0.1>;tag=f\r\nTo: <sip:{user}@127.0.0.1>{tag}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    match codec::decode(raw.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

fn dir() -> Directory {
    let mut cfg = crate::config::Config::defaults();
    cfg.agents.push(crate::config::Agent { id: "alice".into(), password: "pw".into(), queues: vec![] });
    Directory::from_config(&cfg)
}

fn status(d: Decision) -> (u16, String) {
    match d {
        Decision::Respond(r) => (r.status_code.code(), String::from_utf8(codec::encode(&rsip::SipMessage::Response(r))).unwrap()),
        Decision::Register => (0, String::new()),
        // Taken by the call legs: an inbound call, or an in-dialog request (481 without a dialog).
        Decision::Invite => (1, String::new()),
        Decision::InDialog => (2, String::new()),
        // A text: the carrier check and the hand-over are in `message`.
        Decision::Message => (3, String::new()),
    }
}

#[test]
fn options_is_200_with_capabilities() {
    let (code, text) = status(dispatch(&req("OPTIONS", "anyone", false), &dir()));
    assert_eq!(code, 200);
    assert!(text.contains(&format!("Allow: {}\r\n", codec::ALLOW)), "{text}");
    assert!(text.contains("Accept: application/sdp\r\n"));
    assert!(text.contains("Supported:"));
    assert!(text.contains("To: <sip:anyone@127.0.0.1>;tag="), "a To tag is added: {text}");
}

#[test]
fn method_table() {
    let d = dir();
    assert_eq!(status(dispatch(&req("INVITE", "nobody", false), &d)).0, 404);
    assert_eq!(status(dispatch(&req("INVITE", "alice", false), &d)).0, 1);
    assert_eq!(status(dispatch(&req("INVITE", "alice", true), &d)).0, 2);
    assert_eq!(status(dispatch(&req("BYE", "alice", true), &d)).0, 2);
    assert_eq!(status(dispatch(&req("BYE", "alice", false), &d)).0, 481);
    assert_eq!(status(dispatch(&req("INFO", "alice", true), &d)).0, 2);
    assert_eq!(status(dispatch(&req("OPTIONS", "alice", true), &d)).0, 2);
    assert_eq!(status(dispatch(&req("MESSAGE", "alice", false), &d)).0, 3);
    let (code, text) = status(dispatch(&req("SUBSCRIBE", "alice", false), &d));
    assert_eq!(code, 501);
    assert!(text.contains("Allow: "), "{text}");
    assert!(matches!(dispatch(&req("REGISTER", "alice", false), &d), Decision::Register));
}

#[test]
fn require_is_420_with_unsupported() {
    let mut r = req("INVITE", "alice", false);
    r.headers.push(rsip::Header::Require(<rsip::headers::Require as rsip::headers::UntypedHeader>::new("100rel, timer")));
    let (code, text) = status(dispatch(&r, &dir()));
    assert_eq!(code, 420);
    assert!(text.contains("Unsupported: 100rel, timer\r\n"), "{text}");
}

#[test]
fn dids_are_known_with_and_without_plus() {
    let mut cfg = crate::config::Config::defaults();
    let p = crate::config::Profile {
        name: "c".into(),
        proxy: "sip:127.0.0.1:5080".into(),
        proxy_host: "127.0.0.1".into(),
        proxy_port: 5080,
        domain: "c.test".into(),
        register: false,
        username: None,
        password: None,
        expires: std::time::Duration::from_secs(300),
        transport: crate::config::Transport::Udp,
        caller_id: None,
        codecs: vec!["PCMU".into()],
        dids: vec!["+15550100".into()],
        inbound_queue: None,
        options_ping: None,
        max_calls: 0,
        max_cps: 0.0,
            inbound_auth: false,
            srtp: Default::default(),
    };
    cfg.profiles.insert("c".into(), p);
    let d = Directory::from_config(&cfg);
    assert!(d.knows("+15550100") && d.knows("15550100") && !d.knows("+15550101"));
}
