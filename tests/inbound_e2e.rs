//! Inbound trunk calls end to end (and the `skipped` rule and
//! booking from a live call): SIPp plays the carrier's caller from
//! 127.0.0.2 (the profile's proxy address), SIPp softphones the agents, and
//! test phones carry the RTP (DTMF as RFC 4733 events).

mod common;

use std::time::Duration;

use common::phone::Phone;
use common::world::*;
use common::{Redial, Sipp, SippChild};
use serde_json::json;

const CARRIER_IP: &str = "127.0.0.2";
const DID: &str = "+15550100";
const CALLER: &str = "+15551230009";
const QUEUE: &str = "agent_ring_timeout = \"3s\"\nwrap_up = \"0s\"\n";

fn redial(w: &World, agents: &[&str]) -> Redial {
    w.redial_with(agents, QUEUE, CARRIER_IP, &format!("dids = [\"{DID}\"]\ninbound_queue = \"q\"\n"))
}

fn call(w: &World, r: &Redial, from_ip: &str, did: &str, phone: Option<&Phone>) -> SippChild {
    w.caller(r, "inbound_caller.xml", from_ip, did, CALLER, phone)
}

/// Waits until the caller's SIPp learnt redial's RTP port (the call is
/// answered).
fn wait_answered(w: &World) {
    let f = w.path("caller.rtp");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !f.exists() {
        assert!(std::time::Instant::now() < deadline, "the call was not answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_caller_reaches_a_free_agent_and_their_pending_callback_is_skipped() {
    let w = World::new();
    let r = redial(&w, &["alice"]);
    // A callback booked earlier for the same number, due in an hour.
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (s, cb) = r.api("POST", "/v1/callbacks", Some(json!({"phone": CALLER, "queue": "q", "scheduled_at": at})));
    assert_eq!(s, 201, "{cb}");
    let id = cb["id"].as_str().unwrap().to_string();

    let caller_phone = Phone::start(w.path("caller.rtp"), corpus("h008.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h009.wav"));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 3000);
    let caller = call(&w, &r, CARRIER_IP, DID, Some(&caller_phone));

    // While they talk, the agent books a callback on this call.
    let line = r.logs.wait_for(&["inbound call answered"], Duration::from_secs(15)).expect("answered");
    let interaction = line.split("interaction=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let bridged = r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(15)).expect("bridged");
    // The call's span names it: Call-ID, interaction, and the agent once reserved.
    assert!(bridged.contains("inbound{call_id=") && bridged.contains(&format!("interaction={interaction}")), "{bridged}");
    assert!(bridged.contains("agent=alice"), "{bridged}");
    let (s, booked) = r.api("POST", "/v1/callbacks", Some(json!({"interaction_id": interaction, "owner": "me"})));
    assert_eq!(s, 201, "{booked}");
    assert_eq!((booked["phone"].as_str(), booked["queue"].as_str(), booked["owner"].as_str()), (Some(CALLER), Some("q"), Some("alice")));
    assert_eq!(booked["origin"], "agent");

    let out = caller.wait();
    assert!(out.ok(), "{out}");
    let a = agent.wait();
    assert!(a.ok(), "{a}");
    assert!(a.messages.contains("X-Redial-Queue: q"), "{}", a.messages);
    assert!(a.messages.contains(&format!("From: <sip:{CALLER}@")), "the agent sees the caller's number");
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    assert_eq!(cb["status"], "skipped", "{cb}");
    assert_eq!(cb["skipped_by"], interaction.as_str());
    assert!(caller_phone.received() > 50 && agent_phone.received() > 50, "{} / {}", caller_phone.received(), agent_phone.received());
}

#[test]
fn with_no_agent_free_pressing_1_books_one_callback_that_keeps_the_callers_place() {
    let w = World::new();
    // alice never registers: nobody is free.
    let r = redial(&w, &["alice"]);
    let mut ids = vec![];
    for round in 0..2 {
        let _ = std::fs::remove_file(w.path("caller.rtp"));
        let phone = Phone::start(w.path("caller.rtp"), corpus("h010.wav"));
        let caller = call(&w, &r, CARRIER_IP, DID, Some(&phone));
        wait_answered(&w);
        // The offer prompt is playing once its audio reaches the phone; a key
        // pressed during the prompt is taken.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while phone.received() < 10 {
            assert!(std::time::Instant::now() < deadline, "round {round}: the offer prompt never played");
            std::thread::sleep(Duration::from_millis(20));
        }
        phone.press('1');
        let out = caller.wait();
        assert!(out.ok(), "round {round}: {out}\n{}", out.messages);
        assert!(phone.received() > 50, "the caller heard the prompts ({} packets)", phone.received());
        let (_, list) = r.api("GET", &format!("/v1/callbacks?phone=%2B{}", &CALLER[1..]), None);
        ids.push(list["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect::<Vec<_>>());
    }
    assert_eq!(ids[0].len(), 1, "{ids:?}");
    assert_eq!(ids[1], ids[0], "the second call is told one is already booked");
    assert!(r.logs.wait_for(&["the caller already has a callback"], Duration::from_secs(2)).is_some());
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{}", ids[0][0]), None);
    assert_eq!(cb["origin"], "inbound", "{cb}");
    assert_eq!(cb["status"], "scheduled", "{cb}");
    // Due from when the caller joined, before it was booked.
    assert!(cb["due_at"].as_str().unwrap() < cb["created_at"].as_str().unwrap(), "{cb}");
}

#[test]
fn unknown_dids_get_404_and_unknown_sources_403() {
    let w = World::new();
    let r = redial(&w, &["alice"]);
    for (ip, did, status) in [(CARRIER_IP, "+15550199", "404"), ("127.0.0.1", DID, "403")] {
        let out = Sipp::new("inbound_refused.xml").local_ip(ip).remote(r.sip).trace_msg().set("did", did).run();
        assert!(out.ok(), "{out}");
        assert!(out.messages.contains(&format!("SIP/2.0 {status}")), "{ip} → {did}: {}", out.messages);
    }
}

/// SIPp's own RTP: the caller plays SIPp's A-law audio pcap, then its RFC 4733
/// pcap of the key 1 (the media layer's end-to-end DTMF input); redial hears the key
/// and books the callback.
#[test]
fn a_caller_playing_sipps_dtmf_pcap_books_a_callback() {
    let w = World::new();
    let r = redial(&w, &["alice"]);
    let out = Sipp::new("inbound_caller_pcap.xml")
        .local_ip(CARRIER_IP)
        .remote(r.sip)
        .timeout(Duration::from_secs(60))
        .set("did", DID)
        .set("caller", CALLER)
        .run();
    assert!(out.ok(), "{out}");
    let (_, list) = r.api("GET", &format!("/v1/callbacks?phone=%2B{}", &CALLER[1..]), None);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["origin"], "inbound");
}

/// With `offer_after_wait`, a caller who arrives while the only agent is in
/// a short wrap-up holds for them instead of being offered a callback.
#[test]
fn a_short_estimated_wait_holds_the_caller_for_the_agent() {
    let w = World::new();
    let r = w.redial_with(
        &["alice"],
        "agent_ring_timeout = \"3s\"\nwrap_up = \"3s\"\noffer_after_wait = \"10s\"\n",
        CARRIER_IP,
        &format!("dids = [\"{DID}\"]\ninbound_queue = \"q\"\n"),
    );
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 2, None, 1000);
    let first = call(&w, &r, CARRIER_IP, DID, None);
    assert!(first.wait().ok());
    // alice is in wrap-up now: the next caller waits about 3 s for her.
    let (_, agents) = r.api("GET", "/v1/agents", None);
    assert_eq!(agents["items"][0]["state"], "wrap_up", "{agents}");
    let second = call(&w, &r, CARRIER_IP, DID, None);
    let out = second.wait();
    assert!(out.ok(), "{out}");
    assert!(agent.wait().ok());
    assert_eq!(r.logs.matching(&["customer and agent bridged"]).len(), 2);
    let (_, list) = r.api("GET", "/v1/callbacks", None);
    assert!(list["items"].as_array().unwrap().is_empty(), "no callback was offered: {list}");
}

/// A carrier with `inbound_auth` calls from an address that is not its
/// proxy's: redial challenges (407), accepts the right credentials and
/// refuses wrong ones (403).
#[test]
fn a_carrier_calling_from_elsewhere_is_accepted_by_digest() {
    let w = World::new();
    let r = w.redial_with(&["alice"], QUEUE, CARRIER_IP, &format!("dids = [\"{DID}\"]\ninbound_queue = \"q\"\ninbound_auth = true\n"));
    let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let caller = |password: &str| {
        Sipp::new("inbound_caller_auth.xml")
            .local_ip("127.0.0.1")
            .remote(r.sip)
            .timeout(Duration::from_secs(30))
            .trace_msg()
            .arg("-au")
            .arg("trunk1")
            .arg("-ap")
            .arg(password)
            .set("dir", w.dir.path().to_str().unwrap())
            .set("rtp_port", "9")
            .set("did", DID)
            .set("caller", CALLER)
            .run()
    };
    let ok = caller("s3cret");
    assert!(ok.ok(), "{ok}");
    assert!(ok.messages.contains("SIP/2.0 407"), "challenged first");
    assert!(ok.messages.contains("SIP/2.0 200"), "then answered: {}", ok.messages);
    let bad = caller("wrong");
    assert!(bad.ok(), "{bad}");
    assert!(bad.messages.contains("SIP/2.0 403"), "{}", bad.messages);
}

#[test]
fn a_caller_who_waited_and_hung_up_gets_one_abandoned_callback() {
    let w = World::new();
    // alice never registers: nobody is free, the caller hears the offer and gives up.
    let queue = format!("{QUEUE}abandoned_callback_after = \"1s\"\n");
    let r = w.redial_with(&["alice"], &queue, CARRIER_IP, &format!("dids = [\"{DID}\"]\ninbound_queue = \"q\"\n"));
    let mut found = vec![];
    for round in 0..2 {
        let _ = std::fs::remove_file(w.path("caller.rtp"));
        let phone = Phone::start(w.path("caller.rtp"), corpus("h010.wav"));
        let caller = w.caller(&r, "inbound_caller_hangup.xml", CARRIER_IP, DID, CALLER, Some(&phone));
        let out = caller.wait();
        assert!(out.ok(), "round {round}: {out}\n{}", out.messages);
        // The callback is booked when the hang-up is handled: wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let items = loop {
            let (_, list) = r.api("GET", &format!("/v1/callbacks?phone=%2B{}", &CALLER[1..]), None);
            let items = list["items"].as_array().unwrap().clone();
            if !items.is_empty() || std::time::Instant::now() > deadline {
                break items;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        found.push(items);
    }
    assert_eq!(found[0].len(), 1, "{found:?}");
    let cb = &found[0][0];
    assert_eq!((cb["origin"].as_str(), cb["status"].as_str(), cb["queue"].as_str()), (Some("abandoned"), Some("scheduled"), Some("q")), "{cb}");
    assert_eq!(found[1].len(), 1, "a second abandoned call while one is active books nothing more: {found:?}");
    assert_eq!(found[1][0]["id"], cb["id"]);
}
