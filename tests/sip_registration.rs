//! Carrier registration against SIPp registrars, and agents registering to redial.

mod common;

use std::time::{Duration, Instant};

use common::{Setup, Sipp};

fn trunk_profile(carrier_port: u16, transport: &str, expires: u32) -> String {
    format!(
        "proxy = \"sip:127.0.0.1:{carrier_port}\"\ndomain = \"carrier.test\"\nregister = true\n\
         username = \"trunk1\"\npassword = \"s3cret\"\nexpires = {expires}\ntransport = \"{transport}\"\noptions_ping = \"0\"\n"
    )
}

fn carrier_challenge_then_refreshes(transport: &str) {
    let mut sipp = Sipp::new("carrier_registrar.xml").timeout(Duration::from_secs(20)).trace_msg();
    if transport == "tcp" {
        sipp = sipp.tcp();
    }
    let carrier = sipp.spawn();
    let carrier_port = carrier.port();
    let started = Instant::now();
    let r = Setup::new().profile("carrier1", &trunk_profile(carrier_port, transport, 300)).start();
    let out = carrier.wait();
    assert!(out.ok(), "{out}\nredial:\n{}", r.logs.lines().join("\n"));
    // 401 round + 2 refreshes, each refresh before the 10 s lifetime ran out (the
    // scenario's recv timeouts), and the whole run well inside 2 lifetimes.
    assert_eq!(out.received("REGISTER "), 4, "{}", out.messages);
    assert!(started.elapsed() < Duration::from_secs(19), "{:?}", started.elapsed());
    assert!(r.logs.wait_for(&["trunk registered", "carrier1"], Duration::from_secs(1)).is_some());
}

#[test]
fn carrier_401_then_short_expiry_is_refreshed_udp() {
    carrier_challenge_then_refreshes("udp");
}

#[test]
fn carrier_401_then_short_expiry_is_refreshed_tcp() {
    carrier_challenge_then_refreshes("tcp");
}

#[test]
fn carrier_403_backs_off() {
    // A 7 s window: exponential back-off (2 s, 4 s, ±20 %) allows 2 to 4 attempts.
    let carrier = Sipp::new("carrier_registrar_403.xml").timeout(Duration::from_secs(7)).timeout_ok().trace_msg().spawn();
    let carrier_port = carrier.port();
    let r = Setup::new().profile("carrier1", &trunk_profile(carrier_port, "udp", 300)).start();
    let out = carrier.wait();
    let n = out.received("REGISTER ");
    assert!((2..=4).contains(&n), "{n} REGISTERs in 7 s\n{out}");
    let failed = r.logs.matching(&["trunk registration failed", "403"]);
    assert!(!failed.is_empty(), "{}", r.logs.lines().join("\n"));
}

#[test]
fn unregisters_on_sigterm_and_exits_zero() {
    let carrier = Sipp::new("carrier_unregister.xml").timeout(Duration::from_secs(15)).trace_msg().spawn();
    let carrier_port = carrier.port();
    let mut r = Setup::new().profile("carrier1", &trunk_profile(carrier_port, "udp", 300)).start();
    assert!(r.logs.wait_for(&["trunk registered"], Duration::from_secs(5)).is_some(), "{}", r.logs.lines().join("\n"));
    let t0 = Instant::now();
    r.terminate();
    let status = r.wait_exit(Duration::from_secs(8)).expect("redial exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(t0.elapsed() < Duration::from_secs(6));
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
    assert!(r.logs.matching(&["trunk unregistered"]).len() == 1, "{}", r.logs.lines().join("\n"));
}

#[test]
fn agent_softphone_registers_with_digest() {
    let r = Setup::new().agent("alice", "alice-pw").start();
    let ok = Sipp::new("agent_register.xml").remote(r.sip).args_auth("alice", "alice-pw").run();
    assert!(ok.ok(), "{ok}\nredial:\n{}", r.logs.lines().join("\n"));
    assert!(r.logs.wait_for(&["agent registered", "alice"], Duration::from_secs(2)).is_some());
    let tcp = Sipp::new("agent_register.xml").remote(r.sip).tcp().args_auth("alice", "alice-pw").run();
    assert!(tcp.ok(), "{tcp}");
    let bad = Sipp::new("agent_register_rejected.xml").remote(r.sip).args_auth("alice", "wrong").run();
    assert!(bad.ok(), "{bad}");
    // Not an agent: challenged, then refused like a wrong password (no enumeration).
    let unknown = Sipp::new("register_unknown_user.xml").remote(r.sip).args_auth("mallory", "any").run();
    assert!(unknown.ok(), "{unknown}");
}
