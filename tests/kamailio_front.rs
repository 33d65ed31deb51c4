//! The Kamailio front shipped for cluster mode (`deploy/kamailio/redial-front.cfg`),
//! run from Debian's package against SIPp nodes on loopback: calls are spread over
//! the nodes, a dead node is failed over and taken out by OPTIONS probing, and a
//! second INVITE for the same `X-Redial-Attempt` is refused.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::kamailio::{exchange, Front};
use common::{Sipp, SippChild};

fn node() -> (SocketAddr, SippChild) {
    let child = Sipp::new("front_node.xml").calls(1000).arg("-aa").timeout(Duration::from_secs(120)).timeout_ok().trace_msg().spawn();
    (([127, 0, 0, 1], child.port()).into(), child)
}

fn calls(front: SocketAddr, n: u32) -> common::SippOutput {
    Sipp::new("front_carrier.xml").remote(front).calls(n).arg("-l").arg("1").timeout(Duration::from_secs(60)).trace_msg().run()
}

fn invites(out: &common::SippOutput) -> usize {
    out.received("INVITE ")
}

#[test]
fn calls_spread_over_live_nodes_and_fail_over_when_one_dies() {
    let (a_addr, a) = node();
    let (b_addr, b) = node();
    let front = Front::start(&[a_addr, b_addr], &[]);

    let first = calls(front.addr, 4);
    assert!(first.ok(), "{first}\n{}", front.log());

    // Node A dies: what it got so far is read, then it is gone.
    let a_out = a.stop();
    let a_calls = invites(&a_out);
    assert!(a_calls >= 1, "round robin gave node A nothing: {a_out}");

    let second = calls(front.addr, 4);
    assert!(second.ok(), "calls after node A died: {second}\n{}", front.log());
    let b_out = b.stop();
    // Every call after A died landed on B (A got none of them: it was gone).
    assert_eq!(a_calls + invites(&b_out), 8, "node A: {a_out}\nnode B: {b_out}");
    assert!(a_calls <= 3, "round robin gave node B nothing before A died: {a_out}");
}

fn invite(ruri: &str, from: SocketAddr, call_id: &str, attempt: &str) -> String {
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550100@{from}>;tag={call_id}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}@test\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:redial@{from}>\r\nX-Redial-Attempt: {attempt}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_second_invite_for_the_same_attempt_is_refused() {
    // The "node" dialling out is this test's socket (set 2); the "carrier" is a
    // socket that takes the INVITE and never answers.
    let node = UdpSocket::bind("127.0.0.1:0").unwrap();
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = node.local_addr().unwrap();
    let front = Front::start(&[], &[me]);
    let ruri = format!("sip:+15551234567@{}", carrier.local_addr().unwrap());

    let first = exchange(&node, front.addr, &invite(&ruri, me, "one", "cb_7/1"), Duration::from_secs(5));
    assert!(first.as_deref().is_some_and(|l| !l.contains(" 482 ")), "first INVITE: {first:?}\n{}", front.log());
    let mut buf = [0u8; 4096];
    carrier.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = carrier.recv_from(&mut buf).expect("the first INVITE reaches the carrier");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("X-Redial-Attempt: cb_7/1"));

    let second = exchange(&node, front.addr, &invite(&ruri, me, "two", "cb_7/1"), Duration::from_secs(5));
    assert!(second.as_deref().is_some_and(|l| l.contains(" 482 ")), "second INVITE: {second:?}\n{}", front.log());
    let next = exchange(&node, front.addr, &invite(&ruri, me, "three", "cb_7/2"), Duration::from_secs(5));
    assert!(next.as_deref().is_some_and(|l| !l.contains(" 482 ")), "the next attempt goes through: {next:?}");
    // An agent's INVITEs carry the attempt too, one per registered contact:
    // only calls to customers (E.164 users) are fenced.
    let agent = format!("sip:alice@{}", carrier.local_addr().unwrap());
    for (i, call) in ["four", "five"].iter().enumerate() {
        let r = exchange(&node, front.addr, &invite(&agent, me, call, "cb_7/2"), Duration::from_secs(5));
        assert!(r.as_deref().is_some_and(|l| !l.contains(" 482 ")), "agent INVITE {i}: {r:?}");
    }
}
