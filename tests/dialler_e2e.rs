//! The dialler end to end (issue 6): the real `redial` binary, callbacks
//! scheduled through the HTTP API, SIPp playing the carrier and the agents'
//! softphones, and test phones (tests/common/phone.rs) carrying each SIPp
//! peer's RTP so packets can be counted on both sides.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::phone::{ulaw_wav, Phone};
use common::{Redial, Setup, Sipp, SippChild};
use serde_json::{json, Value};

const PHONE: &str = "+15551230001";

/// A test world: a carrier SIPp port, a queue, one or more agents.
struct World {
    carrier_port: u16,
    dir: tempfile::TempDir,
    ports: common::PortBlock,
}

impl World {
    fn new() -> Self {
        Self { carrier_port: common::free_port(), dir: tempfile::tempdir().unwrap(), ports: common::PortBlock::claim() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// redial with one queue `q` (always open) on the carrier trunk.
    fn redial(&self, agents: &[&str], queue_toml: &str) -> Redial {
        let mut s = Setup::new().with_token();
        for a in agents {
            s = s.extra_toml(&format!("[[agents]]\nid = \"{a}\"\npassword = \"{a}-pw\"\nqueues = [\"q\"]\n"));
        }
        let prompts = common::manifest_dir().join("prompts");
        s = s.extra_toml(&format!("[media]\nports = \"{}\"\nprompts = \"{}\"\n", self.ports.range, prompts.display()));
        s.profile(
            "carrier",
            &format!(
                "proxy = \"sip:127.0.0.1:{}\"\ndomain = \"carrier.test\"\nregister = false\nusername = \"trunk1\"\npassword = \"s3cret\"\n\
                 caller_id = \"+15550100\"\ncodecs = [\"PCMU\", \"PCMA\"]\noptions_ping = \"0\"\n",
                self.carrier_port
            ),
        )
        .extra_toml(&format!(
            "[[queues]]\nname = \"q\"\nprofile = \"carrier\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\n{queue_toml}\n"
        ))
        .start()
    }

    /// The carrier side: SIPp serving `scenario` for `calls` INVITEs, its RTP
    /// going to `phone`.
    fn carrier(&self, scenario: &str, calls: u32, phone: Option<&Phone>) -> SippChild {
        let mut s = Sipp::new(scenario).port(self.carrier_port).calls(calls).timeout(Duration::from_secs(60)).trace_msg();
        s = s.set("dir", self.dir.path().to_str().unwrap());
        s = s.set("rtp_port", &phone.map_or(9, |p| p.port).to_string());
        s.spawn()
    }

    /// An agent softphone: one SIPp registers `agent` with a Contact on the
    /// port of a second SIPp that takes the calls with `scenario`.
    fn agent(&self, r: &Redial, agent: &str, scenario: &str, calls: u32, phone: Option<&Phone>, talk_ms: u32) -> SippChild {
        let uas = Sipp::new(scenario).calls(calls).timeout(Duration::from_secs(60)).trace_msg();
        let port = uas.local_port();
        let child = uas
            .set("dir", self.dir.path().to_str().unwrap())
            .set("rtp_port", &phone.map_or(9, |p| p.port).to_string())
            .set("talk_ms", &talk_ms.to_string())
            .spawn();
        let reg = Sipp::new("dial_agent_register.xml")
            .remote(r.sip)
            .args_auth(agent, &format!("{agent}-pw"))
            .set("contact_port", &port.to_string())
            .run();
        assert!(reg.ok(), "agent {agent} registration: {reg}");
        r.wait_json("/v1/agents", Duration::from_secs(5), |v| {
            v["items"].as_array().unwrap().iter().any(|a| a["id"] == agent && a["state"] == "available")
        });
        child
    }
}

fn corpus(name: &str) -> Vec<u8> {
    ulaw_wav(&common::manifest_dir().join("test-media/amd").join(name))
}

fn schedule(r: &Redial, extra: Value) -> String {
    let mut body = json!({"phone": PHONE, "queue": "q"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (s, v) = r.api("POST", "/v1/callbacks", Some(body));
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn wait_final(r: &Redial, id: &str, timeout: Duration) -> Value {
    r.wait_json(&format!("/v1/callbacks/{id}"), timeout, |v| !matches!(v["status"].as_str(), Some("scheduled" | "in_progress")))
}

fn attempts(r: &Redial, id: &str) -> Vec<Value> {
    let (s, v) = r.api("GET", &format!("/v1/callbacks/{id}/attempts"), None);
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

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
    let carrier_out = carrier.wait();
    assert!(carrier_out.ok(), "{carrier_out}");
    // Media both ways through the bridge (3 s of talk = 150 packets each way).
    assert!(customer.received() > 60, "customer got {} packets", customer.received());
    assert!(agent_phone.received() > 60, "agent got {} packets", agent_phone.received());
    let (_, agents) = r.api("GET", "/v1/agents", None);
    assert_eq!(agents["items"][0]["state"], "available", "{agents}");
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
        ("dial_carrier_decline.xml", "declined", "exhausted", 603),
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
    assert!((950..4_000).contains(&gap), "retry after {gap} ms, want ≈ 1 s");
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
    r.restart(&[]);
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    let a = attempts(&r, &id);
    assert_eq!(a[0]["outcome"], "failed", "{a:?}");
    assert_eq!(cb["attempts"], 1, "{cb}");
    // The agent's softphone registration survives only in the old process:
    // register again so the retry can reach it.
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

fn ms(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).timestamp_millis(),
        other => panic!("not a time: {other}"),
    }
}

/// The first corpus file with this label whose greeting ends in a beep.
fn corpus_file_with_label(label: &str) -> String {
    let csv = std::fs::read_to_string(common::manifest_dir().join("test-media/amd/labels.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[1] == label && !f[3].is_empty() && f[14] == "ulaw" && f[5] == "0")
        .map(|f| f[0].to_string())
        .expect("a corpus file")
}
