//! The SIP endpoint and the HTTP API in one process: what softphones and
//! carriers do over SIP shows in `GET /v1/agents` and `GET /v1/trunks`.

mod common;

use std::time::{Duration, Instant};

use common::{Setup, Sipp};
use serde_json::Value;

const TOKENS: &str = "[[tokens]]\nname = \"admin\"\nsecret = \"admin-secret-0001\"\nscopes = [\"admin\"]\n";

fn get(r: &common::Redial, path: &str) -> Value {
    let (status, body) =
        common::api::request(r.http.port(), "GET", path, Some("admin-secret-0001"), None, &[]).expect("HTTP request");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Polls `path` until `pred` holds on its body, or panics after `timeout`.
fn wait_json(r: &common::Redial, path: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let body = get(r, path);
        if pred(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never matched; last: {body}\nredial:\n{}", r.logs.lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_registered_softphone_makes_its_agent_available() {
    let r = Setup::new()
        .agent("alice", "alice-pw")
        .extra_toml(&format!("{TOKENS}\n[[queues]]\nname = \"support\"\n"))
        .start();
    let before = get(&r, "/v1/agents");
    assert_eq!(before["items"][0]["id"], "alice");
    assert_eq!(before["items"][0]["state"], "offline", "{before}");

    let out = Sipp::new("agent_register.xml").remote(r.sip).args_auth("alice", "alice-pw").run();
    assert!(out.ok(), "{out}");
    let after = wait_json(&r, "/v1/agents", Duration::from_secs(3), |b| b["items"][0]["state"] == "available");
    let regs = after["items"][0]["registrations"].as_array().expect("registrations");
    assert_eq!(regs.len(), 1, "{after}");
    assert!(regs[0]["contact"].as_str().unwrap().starts_with("sip:alice@127.0.0.1:"), "{after}");
}

#[test]
fn a_carrier_registration_shows_in_trunks() {
    let carrier = Sipp::new("carrier_registrar.xml").timeout(Duration::from_secs(20)).spawn();
    let carrier_port = carrier.port();
    let profile = format!(
        "proxy = \"sip:127.0.0.1:{carrier_port}\"\ndomain = \"carrier.test\"\nregister = true\n\
         username = \"trunk1\"\npassword = \"s3cret\"\nexpires = 300\noptions_ping = \"0\"\n"
    );
    let r = Setup::new().profile("carrier1", &profile).extra_toml(TOKENS).start();
    let trunks = wait_json(&r, "/v1/trunks", Duration::from_secs(5), |b| b["items"][0]["registered"] == true);
    let t = &trunks["items"][0];
    assert_eq!(t["name"], "carrier1");
    // The SIPp registrar grants 10 s.
    let expires_in = t["expires_in"].as_u64().expect("expires_in");
    assert!((1..=10).contains(&expires_in), "{trunks}");
    assert_eq!(t["up"], true, "pings are off, so the trunk counts as up: {trunks}");
    drop(r);
    drop(carrier);
}
