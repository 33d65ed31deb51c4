//! Hold from a SIP softphone (RFC 3264 §8.4), end to end: the real `redial` binary, a
//! SIPp carrier and a SIPp agent that holds and resumes with re-INVITEs, each with a
//! test phone carrying its RTP. The scenario itself requires redial's answers to mirror
//! the direction (`recvonly` to `sendonly`, `sendrecv` to `sendrecv`); the phones show
//! the bridge paused both ways while held and carrying audio again once resumed.

mod common;

use std::time::{Duration, Instant};

use common::phone::Phone;
use common::world::*;
use serde_json::json;

const FAST: &str = "max_attempts = 1\nretry_delay = \"1s\"\nring_timeout = \"3s\"\nagent_ring_timeout = \"3s\"\nwrap_up = \"0s\"\n";

/// How long the agent stays on hold: room for the two stretches below on a loaded machine.
const HOLD_MS: u32 = 10_000;

/// Upper bound on waits for what happens at once on loopback; never a measure of speed.
const WAIT: Duration = Duration::from_secs(30);

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sip_agent_on_hold_is_answered_recvonly_and_the_bridge_pauses_both_ways_until_it_resumes() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_hold.xml", 1, Some(&agent_phone), HOLD_MS);
    let id = schedule(&r, json!({}));

    let state = || std::fs::read_to_string(w.path("agent.hold")).unwrap_or_default().trim().to_owned();
    wait_for("the agent's hold answered", || state() == "held");
    assert!(customer.received() > 0 && agent_phone.received() > 0, "audio flowed before the hold");

    // Both phones keep sending throughout. A first stretch of 25 packets lets what was
    // already on its way land; over the next 50 nothing may cross the bridge.
    let stretch = |n: u64| {
        let (c, a) = (customer.sent(), agent_phone.sent());
        wait_for("both phones sending", || customer.sent() >= c + n && agent_phone.sent() >= a + n);
    };
    stretch(25);
    let (c0, a0) = (customer.received(), agent_phone.received());
    stretch(50);
    let (c1, a1) = (customer.received(), agent_phone.received());
    assert_eq!(state(), "held", "the hold lasted past the measurement (read after the counters)");
    assert_eq!(a1 - a0, 0, "the held agent is sent nothing");
    assert_eq!(c1 - c0, 0, "the customer hears nothing from the held agent");

    let agent_out = agent.wait();
    assert!(agent_out.ok(), "the agent's scenario (recvonly, then sendrecv answers): {agent_out}");
    let carrier_out = carrier.wait();
    assert!(carrier_out.ok(), "{carrier_out}");
    // After the resume (2 s of talk before the BYE) audio crossed both ways again.
    assert!(agent_phone.received() > a1 + 25, "the agent hears the customer again: {} → {}", a1, agent_phone.received());
    assert!(customer.received() > c1 + 25, "the customer hears the agent again: {} → {}", c1, customer.received());
    let cb = wait_final(&r, &id, WAIT);
    assert_eq!(cb["status"], "completed", "{cb}");
    assert_eq!(r.logs.matching(&["bridge paused: the leg is on hold"]).len(), 1, "{:?}", r.logs.lines());
    assert_eq!(r.logs.matching(&["bridge resumed: the leg is off hold"]).len(), 1);
}
