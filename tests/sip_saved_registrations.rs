//! Agents' registrations and away choices survive a SIGKILL: the real binary, SIPp
//! softphones that register once, a kill, a restart on the same data directory, and a
//! callback whose agent INVITE must reach the contact registered before the kill.

mod common;

use std::time::Duration;

use common::phone::Phone;
use common::world::*;
use serde_json::json;

const LOG: (&str, &str) = ("RUST_LOG", "info,redial::serve::saved=debug");

fn agent_state(r: &common::Redial, id: &str) -> serde_json::Value {
    let (s, v) = r.api("GET", "/v1/agents", None);
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap_or_else(|| panic!("no agent {id}: {v}"))
}

#[test]
fn agents_registered_before_a_sigkill_are_reachable_after_it_without_registering_again() {
    let w = World::new();
    let queue = "mode = \"agent_first\"\nmax_attempts = 1\nring_timeout = \"5s\"\nagent_ring_timeout = \"5s\"\nwrap_up = \"0s\"\n";
    let mut r = w.redial_env(&["alice", "bob"], queue, "127.0.0.1", "", &[LOG]);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h005.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h006.wav"));
    // Each softphone registers once, before the kill, and never again.
    let alice = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 3000);
    let bob = w.agent(&r, "bob", "dial_agent_answer.xml", 1, None, 1000);
    let (s, v) = r.api("PUT", "/v1/agents/bob/state", Some(json!({"state": "away"})));
    assert_eq!(s, 200, "{v}");
    let contact = agent_state(&r, "alice")["registrations"][0]["contact"].clone();
    assert!(contact.is_string(), "{}", agent_state(&r, "alice"));
    // Written behind about once a second: wait for the write that carries bob's choice
    // (the registrations, made before it, are in it or in an earlier one).
    assert!(
        r.logs.wait_for(&["registrations saved", "away_choices=1"], Duration::from_secs(10)).is_some(),
        "{}",
        r.logs.lines().join("\n")
    );

    r.restart(&[(LOG.0.to_string(), LOG.1.to_string())]);
    assert!(r.logs.wait_for(&["saved registrations restored", "bindings=2"], Duration::from_secs(5)).is_some(), "{}", r.logs.lines().join("\n"));
    let a = r.wait_json("/v1/agents", Duration::from_secs(5), |v| {
        let items = v["items"].as_array().unwrap();
        let state = |id: &str| items.iter().find(|a| a["id"] == id).map(|a| a["state"].clone());
        state("alice") == Some(json!("available")) && state("bob") == Some(json!("away"))
    });
    let alice_now = a["items"].as_array().unwrap().iter().find(|a| a["id"] == "alice").unwrap().clone();
    assert_eq!(alice_now["registrations"][0]["contact"], contact, "{alice_now}");

    // Bob is away, so the callback goes to alice, at the contact saved before the kill.
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}\n{}", r.logs.lines().join("\n"));
    assert_eq!(attempts(&r, &id)[0]["outcome"], "human");
    let out = alice.wait();
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("INVITE"), 1, "{out}");
    assert!(carrier.wait().ok());
    assert_eq!(bob.stop().received("INVITE"), 0, "an away agent is not rung");
}

#[test]
fn an_agent_who_unregisters_before_the_kill_is_offline_after_it() {
    let w = World::new();
    let mut r = w.redial_env(&["alice"], "", "127.0.0.1", "", &[LOG]);
    let _alice = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    assert!(r.logs.wait_for(&["registrations saved", "agents=1"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));
    let before = r.logs.matching(&["registrations saved"]).len();
    let reg = common::Sipp::new("dial_agent_unregister.xml").remote(r.sip).args_auth("alice", "alice-pw").run();
    assert!(reg.ok(), "{reg}");
    r.wait_json("/v1/agents", Duration::from_secs(5), |v| v["items"][0]["state"] == "offline");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while r.logs.matching(&["registrations saved"]).len() <= before {
        assert!(std::time::Instant::now() < deadline, "{}", r.logs.lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
    r.restart(&[(LOG.0.to_string(), LOG.1.to_string())]);
    let a = agent_state(&r, "alice");
    assert_eq!(a["state"], "offline", "{a}");
    assert!(r.logs.matching(&["saved registrations restored"]).is_empty(), "{}", r.logs.lines().join("\n"));
}
