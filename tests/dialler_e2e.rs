//! The dialler end to end: the real `redial` binary, callbacks
//! scheduled through the HTTP API, SIPp playing the carrier and the agents'
//! softphones, and test phones (tests/common/phone.rs) carrying each SIPp
//! peer's RTP so packets can be counted on both sides.

mod common;

use std::time::Duration;

use common::phone::Phone;
use common::world::*;
use serde_json::json;

const FAST: &str = "max_attempts = 1\nretry_delay = \"1s\"\nring_timeout = \"3s\"\nagent_ring_timeout = \"3s\"\nwrap_up = \"0s\"\n";

#[test]
fn customer_first_human_is_bridged_to_the_agent_and_completes() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 3000);
    let id = schedule(&r, json!({"notes": "wants a refund"}));

    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["outcome"], "human", "{a:?}");
    assert_eq!(a[0]["amd"], "human");
    assert_eq!(a[0]["agent"], "alice");
    assert_eq!(a[0]["sip_status"], 200);
    let t = &a[0]["timeline"];
    for k in ["dialed_at", "ringing_at", "answered_at", "amd_at", "agent_ringing_at", "agent_answered_at", "bridged_at"] {
        assert!(t[k].is_string() || t[k].is_number(), "timeline lacks {k}: {t}");
    }
    let agent_out = agent.wait();
    assert!(agent_out.ok(), "{agent_out}");
    assert!(agent_out.messages.contains(&format!("X-Redial-Callback-Id: {id}")), "{}", agent_out.messages);
    assert!(agent_out.messages.contains("X-Redial-Notes: wants a refund"));
    assert!(agent_out.messages.contains(&format!("X-Redial-Attempt: {id}/1")), "{}", agent_out.messages);
    let carrier_out = carrier.wait();
    assert!(carrier_out.ok(), "{carrier_out}");
    assert!(carrier_out.messages.contains(&format!("X-Redial-Attempt: {id}/1")), "{}", carrier_out.messages);
    // Media both ways through the bridge (3 s of talk = 150 packets each way).
    assert!(customer.received() > 60, "customer got {} packets", customer.received());
    assert!(agent_phone.received() > 60, "agent got {} packets", agent_phone.received());
    let (_, agents) = r.api("GET", "/v1/agents", None);
    assert_eq!(agents["items"][0]["state"], "available", "{agents}");
    // The call shows in the metrics: SIP transactions, the attempt, no call left up.
    let metrics = ureq::get(&format!("http://{}/metrics", r.http)).call().unwrap().body_mut().read_to_string().unwrap();
    for line in [
        "redial_sip_transactions_total{method=\"INVITE\",role=\"client\",class=\"2xx\"} 2",
        "redial_sip_transactions_total{method=\"REGISTER\",role=\"server\",class=\"2xx\"} 1",
        "redial_attempts_total{outcome=\"human\"} 1",
        "redial_calls_active 0",
        "redial_agents{state=\"available\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing `{line}` in\n{metrics}");
    }
}

#[test]
fn machine_is_retried_after_retry_delay_then_exhausted() {
    let w = World::new();
    let r = w.redial(&["alice"], "max_attempts = 2\nretry_delay = \"2s\"\nring_timeout = \"3s\"\non_machine = \"retry\"\n");
    let machine = corpus_file_with_label("machine");
    let customer = Phone::start(w.path("customer.rtp"), corpus(&machine));
    let carrier = w.carrier("dial_carrier_answer.xml", 2, Some(&customer));
    let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(45));
    assert_eq!(cb["status"], "exhausted", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a.len(), 2, "{a:?}");
    for x in &a {
        assert_eq!(x["outcome"], "machine", "{x}");
        assert_eq!(x["amd"], "machine");
    }
    let gap = ms(&a[1]["started_at"]) - ms(&a[0]["ended_at"]);
    assert!((1_900..6_000).contains(&gap), "retry after {gap} ms, want ≈ 2 s");
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
}

#[test]
fn busy_decline_and_not_found_map_to_their_outcomes() {
    for (scenario, outcome, status, sip) in [
        ("dial_carrier_busy.xml", "busy", "exhausted", 486),
        // A decline ends the callback: the customer said no.
        ("dial_carrier_decline.xml", "declined", "failed", 603),
        ("dial_carrier_notfound.xml", "failed", "failed", 404),
    ] {
        let w = World::new();
        let r = w.redial(&["alice"], FAST);
        let carrier = w.carrier(scenario, 1, None);
        let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
        let id = schedule(&r, json!({}));
        let cb = wait_final(&r, &id, Duration::from_secs(20));
        assert_eq!(cb["status"], status, "{scenario}: {cb}");
        let a = attempts(&r, &id);
        assert_eq!((a[0]["outcome"].as_str(), a[0]["sip_status"].as_u64()), (Some(outcome), Some(sip)), "{scenario}");
        let out = carrier.wait();
        assert!(out.ok(), "{scenario}: {out}");
        // The reserved agent is free again.
        r.wait_json("/v1/agents", Duration::from_secs(3), |v| v["items"][0]["state"] == "available");
    }
}

#[test]
fn busy_is_retried_after_retry_delay() {
    let w = World::new();
    let r = w.redial(&["alice"], "max_attempts = 2\nretry_delay = \"1s\"\n");
    let carrier = w.carrier("dial_carrier_busy.xml", 2, None);
    let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(20));
    assert_eq!(cb["status"], "exhausted", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a.len(), 2);
    let gap = ms(&a[1]["started_at"]) - ms(&a[0]["ended_at"]);
    assert!((950..4_000).contains(&gap), "retry after {gap} ms, want ≈ 1 s: {a:?}");
    assert!(carrier.wait().ok());
}

#[test]
fn no_answer_is_cancelled_at_the_ring_timeout() {
    let w = World::new();
    let r = w.redial(&["alice"], "max_attempts = 1\nring_timeout = \"2s\"\n");
    let carrier = w.carrier("dial_carrier_noanswer.xml", 1, None);
    let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(20));
    assert_eq!(cb["status"], "exhausted", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a[0]["outcome"], "no_answer", "{a:?}");
    let rang = ms(&a[0]["ended_at"]) - ms(&a[0]["timeline"]["ringing_at"]);
    assert!((1_900..4_000).contains(&rang), "rang for {rang} ms, want ≈ 2 s");
    let out = carrier.wait();
    assert!(out.ok(), "the carrier must see a CANCEL: {out}");
}

#[test]
fn challenged_invite_is_answered_with_the_trunk_credentials() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h003.wav"));
    let carrier = w.carrier("dial_carrier_challenge.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let id = schedule(&r, json!({}));
    let out = carrier.wait();
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert!(out.ok(), "{out}");
    assert!(out.messages.contains("Proxy-Authorization: Digest"), "no credentials sent");
    assert!(agent.wait().ok());
}

#[test]
fn an_agent_who_declines_ends_the_attempt_as_agent_no_answer() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h004.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_decline.xml", 1, None, 0);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "exhausted", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a[0]["outcome"], "agent_no_answer", "{a:?}");
    assert!(agent.wait().ok());
    // The customer heard the hold prompt, then the apology, then BYE.
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
    assert!(customer.received() > 25, "customer heard {} packets", customer.received());
}

#[test]
fn agent_first_rings_the_agent_then_bridges_the_customer() {
    let w = World::new();
    let r = w.redial(&["alice"], &format!("mode = \"agent_first\"\n{FAST}"));
    let customer = Phone::start(w.path("customer.rtp"), corpus("h005.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h006.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 3000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a[0]["outcome"], "human");
    assert!(a[0]["amd"].is_null(), "no AMD in agent-first: {}", a[0]);
    let t = &a[0]["timeline"];
    assert!(ms(&t["agent_answered_at"]) <= ms(&t["dialed_at"]), "the agent answers before the customer is dialled: {t}");
    assert!(agent.wait().ok());
    assert!(carrier.wait().ok());
    assert!(customer.received() > 60 && agent_phone.received() > 60, "{} / {}", customer.received(), agent_phone.received());
}

#[test]
fn a_kill_during_a_call_closes_the_attempt_and_retries_it_once() {
    let w = World::new();
    let mut r = w.redial(&["alice"], "max_attempts = 2\nretry_delay = \"2s\"\nwrap_up = \"0s\"\n");
    let customer = Phone::start(w.path("customer.rtp"), corpus("h007.wav"));
    // Two INVITEs in all: the attempt in progress at the kill, and its retry.
    let carrier = w.carrier("dial_carrier_answer.xml", 2, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 2, None, 60_000);
    let id = schedule(&r, json!({}));
    assert!(r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(30)).is_some(), "{}", r.logs.lines().join("\n"));
    r.kill9();
    // The retry must reach only the softphone registered below, whose calls are
    // short: forget the old one's saved registration (the first SIPp agent would
    // otherwise be rung too, answer, and hold the retry for its 60 s talk time).
    // Restored registrations have their own tests (sip_saved_registrations).
    for f in std::fs::read_dir(r.dir.path().join("data")).unwrap().flatten() {
        if f.file_name().to_string_lossy().ends_with(".registrations.redb") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    r.restart(&[]);
    assert!(!r.logs.lines().iter().any(|l| l.contains("saved registrations restored")), "{}", r.logs.lines().join("\n"));
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    let a = attempts(&r, &id);
    assert_eq!(a[0]["outcome"], "failed", "{a:?}");
    assert_eq!(cb["attempts"], 1, "{cb}");
    let agent2 = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a.len(), 2, "{a:?}");
    drop(agent);
    assert!(agent2.wait().ok());
    // The first call's BYE died with the killed process: stop SIPp rather
    // than wait for its timeout.
    let out = carrier.stop();
    assert_eq!(out.received("INVITE"), 2, "dialled exactly once per attempt: {out}");
}


/// baresip as the agent's softphone: it registers, auto-answers redial's
/// call and sends a tone; the customer hangs up.
#[test]
fn a_baresip_agent_answers_and_is_bridged() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h011.wav"));
    let carrier = w.carrier_with("dial_carrier_answer_hangup.xml", 1, Some(&customer), &[("talk_ms", "8000")]);
    let dir = tempfile::tempdir().unwrap();
    // baresip is told its own port; started again elsewhere if it cannot bind it.
    let (mut baresip, _port) = common::start_baresip(|port| {
        std::fs::write(
            dir.path().join("config"),
            format!(
                "sip_listen\t127.0.0.1:{port}\nmodule_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule\tausine.so\nmodule\taubridge.so\n\
                 module_app\taccount.so\nmodule_app\tmenu.so\naudio_source\tausine,440\nausrc_srate\t48000\nausrc_channels\t2\naudio_player\taubridge,nil\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("accounts"), format!("<sip:alice@{};transport=udp>;auth_pass=alice-pw;regint=60;answermode=auto\n", r.sip)).unwrap();
        let mut c = std::process::Command::new("baresip");
        c.arg("-f")
            .arg(dir.path())
            .args(["-t", "30"])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("baresip.log")).unwrap())
            .stderr(std::process::Stdio::null());
        c
    });
    r.wait_json("/v1/agents", Duration::from_secs(10), |v| v["items"][0]["state"] == "available");
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    let _ = baresip.kill();
    let _ = baresip.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert_eq!(cb["status"], "completed", "{cb}\nbaresip:\n{log}");
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
    // baresip's 440 Hz tone reached the customer through the bridge (what
    // baresip receives cannot be counted; the SIPp tests count both ways).
    assert!(customer.received() > 60, "the customer heard baresip: {} packets", customer.received());
}

#[test]
fn on_machine_message_is_left_after_the_beep_and_completes() {
    let w = World::new();
    let wav = common::manifest_dir().join("prompts/voicemail-message.wav");
    let r = w.redial(&["alice"], &format!("on_machine = \"message:{}\"\n{FAST}", wav.display()));
    let machine = corpus_file_with_label("machine");
    let customer = Phone::start(w.path("customer.rtp"), corpus(&machine));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(45));
    assert_eq!(cb["status"], "completed", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!((a[0]["outcome"].as_str(), a[0]["amd"].as_str()), (Some("machine"), Some("machine")));
    assert!(a[0]["timeline"]["agent_ringing_at"].is_null(), "no agent is rung for a machine");
    assert!(carrier.wait().ok());
    // The message (≈ 5 s) reached the machine.
    let message_packets = common::phone::pcm_wav_len_ms(&wav) / 20;
    assert!(customer.received() + 10 >= message_packets, "{} packets, message is {message_packets}", customer.received());
}

#[test]
fn a_queue_callback_tries_a_second_agent_when_the_first_declines() {
    let w = World::new();
    let r = w.redial(&["alice", "bob"], "max_attempts = 1\nagent_ring_timeout = \"3s\"\nwrap_up = \"0s\"\n");
    let customer = Phone::start(w.path("customer.rtp"), corpus("h012.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    // alice has been idle longest (ties go by id): she is tried first.
    let alice = w.agent(&r, "alice", "dial_agent_decline.xml", 1, None, 0);
    let bob = w.agent(&r, "bob", "dial_agent_answer.xml", 1, None, 1500);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!((a[0]["outcome"].as_str(), a[0]["agent"].as_str()), (Some("human"), Some("bob")), "{a:?}");
    assert!(alice.wait().ok());
    assert!(bob.wait().ok());
    assert!(carrier.wait().ok());
}

#[test]
fn a_bridged_call_whose_rtp_stops_is_hung_up_at_the_media_timeout() {
    let mut w = World::new();
    w.media_timeout = Some("2s");
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h013.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    // The agent would talk for a minute; the customer's line goes dead.
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 60_000);
    let id = schedule(&r, json!({}));
    r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(20)).expect("bridged");
    customer.mute();
    let cb = wait_final(&r, &id, Duration::from_secs(15));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert!(r.logs.matching(&["call ended", "Timeout"]).len() == 1, "{}", r.logs.lines().join("\n"));
    assert!(carrier.wait().ok(), "the customer leg got its BYE");
    // The agent's leg was hung up too: its SIPp got a BYE it did not expect.
    let out = agent.stop();
    assert!(out.messages.contains("BYE sip:"), "{}", out.messages);
}

#[test]
fn a_customer_who_hangs_up_while_the_agent_rings_cancels_the_agent_leg() {
    let w = World::new();
    let r = w.redial(&["alice"], "max_attempts = 1
agent_ring_timeout = \"20s\"\n");
    let customer = Phone::start(w.path("customer.rtp"), corpus("h014.wav"));
    // The customer hangs up 6 s after answering: after AMD, while alice rings.
    let carrier = w.carrier_with("dial_carrier_answer_hangup.xml", 1, Some(&customer), &[("talk_ms", "6000")]);
    let agent = w.agent(&r, "alice", "dial_agent_ring_only.xml", 1, None, 0);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "exhausted", "{cb}");
    let a = attempts(&r, &id);
    assert_eq!(a[0]["outcome"], "no_answer", "{a:?}");
    assert!(a[0]["timeline"]["agent_ringing_at"].is_string(), "{a:?}");
    assert!(carrier.wait().ok());
    let out = agent.wait();
    assert!(out.ok(), "the agent's softphone got the CANCEL: {out}");
}

#[test]
fn a_trunk_call_limit_holds_the_second_callback_until_the_first_call_ends() {
    let w = World::new();
    let r = w.redial_with(&["alice", "bob"], FAST, "127.0.0.1", "max_calls = 1\n");
    let customer = Phone::start(w.path("customer.rtp"), corpus("h015.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 2, Some(&customer));
    let a1 = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1500);
    let a2 = w.agent(&r, "bob", "dial_agent_answer.xml", 1, None, 1500);
    let first = schedule(&r, json!({}));
    let second = schedule(&r, json!({"phone": "+15551230002"}));
    for id in [&first, &second] {
        let cb = wait_final(&r, id, Duration::from_secs(40));
        assert_eq!(cb["status"], "completed", "{cb}");
    }
    let (x, y) = (attempts(&r, &first).remove(0), attempts(&r, &second).remove(0));
    let (early, late) = if ms(&x["started_at"]) <= ms(&y["started_at"]) { (x, y) } else { (y, x) };
    assert!(ms(&late["started_at"]) >= ms(&early["ended_at"]), "one call at a time on the trunk: {early} {late}");
    assert!(carrier.wait().ok());
    let _ = (a1.wait(), a2.wait());
}

#[test]
fn agent_first_relays_the_carriers_early_media_then_bridges() {
    let w = World::new();
    let r = w.redial(&["alice"], &format!("mode = \"agent_first\"\n{FAST}"));
    let customer = Phone::start(w.path("customer.rtp"), corpus("h016.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h017.wav"));
    let carrier = w.carrier("dial_carrier_early_media.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 5000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    let t = attempts(&r, &id).remove(0)["timeline"].clone();
    assert!(ms(&t["answered_at"]) - ms(&t["ringing_at"]) >= 1_400, "1.5 s of early media: {t}");
    assert!(agent.wait().ok());
    assert!(carrier.wait().ok());
    assert!(agent_phone.received() > 150, "ring-back, early media and talk: {}", agent_phone.received());
}

/// Every call leg logs in its own span (role, Call-ID) under the attempt's
/// (callback id, attempt, agent, the customer's Call-ID), and the media
/// tasks log in the span of the leg that opened them: read from the JSON
/// log of one bridged call.
#[test]
fn each_leg_and_its_media_task_log_in_spans_naming_the_call() {
    let w = World::new();
    let env = [("REDIAL_LOG_FORMAT", "json"), ("RUST_LOG", "info,redial::media::call=debug")];
    let r = w.redial_env(&["alice"], FAST, "127.0.0.1", "", &env);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 3000);
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert!(carrier.wait().ok());
    assert!(agent.wait().ok());

    let spans_of = |line: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        v["spans"].as_array().cloned().unwrap_or_default()
    };
    let named = |spans: &[serde_json::Value], name: &str| spans.iter().find(|s| s["name"] == name).cloned();
    let attempt_ok = |a: &serde_json::Value| a["callback"] == id.as_str() && a["attempt"] == 1 && a["agent"] == "alice";

    // The driver's lines carry the attempt with the customer's Call-ID.
    let bridged = r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(5)).expect("bridged");
    let attempt = named(&spans_of(&bridged), "attempt").unwrap_or_else(|| panic!("no attempt span: {bridged}"));
    assert!(attempt_ok(&attempt), "{attempt}");
    let customer_call_id = attempt["call_id"].as_str().unwrap_or_else(|| panic!("no call_id: {attempt}")).to_string();
    assert!(!customer_call_id.is_empty());

    // Each leg's media task starts in its leg's span; the tasks still log
    // there when they close (a bridge may hand one leg to the other's task).
    let media_lines = |logs: &common::Logs, what: &str, n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines = logs.matching(&[what]);
            if lines.len() >= n {
                return lines;
            }
            assert!(std::time::Instant::now() < deadline, "fewer than {n} `{what}`:\n{}", logs.lines().join("\n"));
            logs.wait_for(&["\"level\""], Duration::from_millis(100));
        }
    };
    let mut roles = Vec::new();
    for (what, n) in [("media leg opened", 2), ("media leg closed", 1)] {
        for line in media_lines(&r.logs, what, n) {
            let spans = spans_of(&line);
            let attempt = named(&spans, "attempt").unwrap_or_else(|| panic!("media task outside the attempt's span: {line}"));
            assert!(attempt_ok(&attempt), "{line}");
            let leg = named(&spans, "leg").unwrap_or_else(|| panic!("media task outside its leg's span: {line}"));
            if leg["role"] != "customer" {
                assert_eq!((&leg["role"], &leg["agent"]), (&json!("agent"), &json!("alice")), "{line}");
            }
            // The media opens before the INVITE exists; the Call-ID is
            // recorded on the leg's span once it is sent.
            if what == "media leg closed" {
                let expected = if leg["role"] == "customer" { Some(customer_call_id.as_str()) } else { None };
                let call_id = leg["call_id"].as_str().unwrap_or_else(|| panic!("no call_id: {line}"));
                assert!(!call_id.is_empty() && expected.is_none_or(|c| c == call_id) && (expected.is_some() || call_id != customer_call_id), "{line}");
            }
            if what == "media leg opened" {
                roles.push(leg["role"].as_str().unwrap_or("").to_string());
            }
        }
    }
    roles.sort();
    assert_eq!(roles, ["agent", "customer"], "one media task per leg, each in its leg's span");
}
