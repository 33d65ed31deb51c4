//! SIGHUP against the real binary: a bad file changes nothing and names its file and
//! key; a good one adds and removes agents and replaces the API tokens at once, while
//! a bridged call and the registrations of the agents that stay go on. Queues' changed
//! rules apply to the next booking, a new queue and a new owner are accepted, a removed
//! queue that still holds callbacks refuses the reload; trunks start, stop and
//! re-register at SIPp registrars; a changed profile's new proxy takes the next call.

mod common;

use std::process::Command;
use std::time::Duration;

use common::phone::Phone;
use common::world::*;
use serde_json::json;

const OPS_SECRET: &str = "ops-secret-after-reload";

fn hangup(r: &common::Redial) {
    assert!(Command::new("kill").arg("-HUP").arg(r.pid().to_string()).status().unwrap().success());
}

fn states(r: &common::Redial) -> Vec<(String, String)> {
    let (s, v) = r.api("GET", "/v1/agents", None);
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().iter().map(|a| (a["id"].as_str().unwrap().to_string(), a["state"].as_str().unwrap().to_string())).collect()
}

fn ops_status(r: &common::Redial) -> u16 {
    common::api::request(r.http.port(), "GET", "/v1/agents", Some(OPS_SECRET), None, &[]).unwrap().0
}

#[test]
fn sighup_applies_agents_and_tokens_without_dropping_calls_or_registrations() {
    let w = World::new();
    let queue = "max_attempts = 1\nring_timeout = \"5s\"\nagent_ring_timeout = \"5s\"\nwrap_up = \"0s\"\n";
    let r = w.redial(&["alice", "bob"], queue);
    let path = r.path("redial.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    let carrier = w.carrier_with("dial_carrier_answer_hangup.xml", 1, Some(&customer), &[("talk_ms", "6000")]);
    let alice = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 60_000);
    let _bob = w.agent(&r, "bob", "dial_agent_answer.xml", 1, None, 1000);
    let (s, v) = r.api("PUT", "/v1/agents/bob/state", Some(json!({"state": "away"})));
    assert_eq!(s, 200, "{v}");
    let id = schedule(&r, json!({}));
    assert!(r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(30)).is_some(), "{}", r.logs.lines().join("\n"));

    // A bad file: nothing changes, and the problem is named by file and key.
    std::fs::write(&path, format!("{original}\n[[agents]]\nid = \"carol\"\npassword = \"carol-pw\"\nqueues = [\"no-such-queue\"]\n")).unwrap();
    hangup(&r);
    let line = r.logs.wait_for(&["SIGHUP: not reloaded"], Duration::from_secs(10)).unwrap_or_else(|| panic!("{}", r.logs.lines().join("\n")));
    assert!(line.contains("redial.toml") && line.contains("agents"), "{line}");
    assert!(!states(&r).iter().any(|(a, _)| a == "carol"));

    // A good file: carol joins, bob leaves, a second token is accepted.
    let bob = "[[agents]]\nid = \"bob\"\npassword = \"bob-pw\"\nqueues = [\"q\"]\n";
    assert!(original.contains(bob), "{original}");
    assert_eq!(ops_status(&r), 401);
    let changed = original.replace(bob, "[[agents]]\nid = \"carol\"\npassword = \"carol-pw\"\nqueues = [\"q\"]\n")
        + &format!("\n[[tokens]]\nname = \"ops\"\nsecret = \"{OPS_SECRET}\"\nscopes = [\"callbacks:read\"]\n");
    std::fs::write(&path, changed).unwrap();
    hangup(&r);
    assert!(r.logs.wait_for(&["SIGHUP: agents and tokens reloaded"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));
    let now = states(&r);
    assert!(now.contains(&("carol".into(), "offline".into())), "{now:?}");
    assert!(!now.iter().any(|(a, _)| a == "bob"), "{now:?}");
    assert!(now.contains(&("alice".into(), "on_call".into())), "the call and alice's registration go on: {now:?}");
    assert_eq!(ops_status(&r), 200, "the new token works at once");
    assert_eq!(r.api("GET", "/v1/agents", None).0, 200, "the token kept works");

    // The new agent registers with its new password; the call ends as it would have.
    let _carol = w.agent(&r, "carol", "dial_agent_answer.xml", 1, None, 1000);
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert!(carrier.wait().ok());
    drop(alice);
    let after = states(&r);
    assert!(after.contains(&("alice".into(), "available".into())), "alice still registered: {after:?}");
}

/// Posts the console's sign-in form; returns (status, session cookie if one was set).
fn sign_in(r: &common::Redial, agent: &str, password: &str) -> (u16, Option<String>) {
    use std::io::{Read, Write};
    let body = format!("agent_id={agent}&password={password}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", r.http.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{text}"));
    let head = text.split("\r\n\r\n").next().unwrap();
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().split(';').next().unwrap().to_string());
    (status, cookie)
}

/// The agent's console page with `cookie`: its status and where a redirect goes.
fn agent_page(r: &common::Redial, cookie: &str) -> (u16, Option<String>) {
    let (s, _, h) = common::api::raw(r.http.port(), "GET", "/agent", None, None, &[("Cookie", cookie)]).unwrap();
    (s, h.into_iter().find(|(k, _)| k == "location").map(|(_, v)| v))
}

#[test]
fn sighup_changes_who_can_sign_in_to_the_console_and_ends_removed_agents_sessions() {
    let w = World::new();
    let r = w.redial(&["alice", "bob"], "max_attempts = 1\n");
    let path = r.path("redial.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let (s, bob_cookie) = sign_in(&r, "bob", "bob-pw");
    assert_eq!(s, 303, "bob signs in as started");
    let bob_cookie = bob_cookie.expect("a session cookie");
    assert_eq!(agent_page(&r, &bob_cookie).0, 200);
    assert_eq!(sign_in(&r, "carol", "carol-pw").0, 401, "carol is not configured yet");

    let bob = "[[agents]]\nid = \"bob\"\npassword = \"bob-pw\"\nqueues = [\"q\"]\n";
    assert!(original.contains(bob), "{original}");
    std::fs::write(&path, original.replace(bob, "[[agents]]\nid = \"carol\"\npassword = \"carol-pw\"\nqueues = [\"q\"]\n")).unwrap();
    hangup(&r);
    assert!(r.logs.wait_for(&["SIGHUP: agents and tokens reloaded"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));

    let (s, carol_cookie) = sign_in(&r, "carol", "carol-pw");
    assert_eq!(s, 303, "the agent added by the reload signs in");
    assert_eq!(agent_page(&r, &carol_cookie.expect("a session cookie")).0, 200);
    assert_eq!(sign_in(&r, "bob", "bob-pw").0, 401, "the removed agent cannot sign in");
    assert_eq!(agent_page(&r, &bob_cookie), (303, Some("/login".to_string())), "the removed agent's session has ended");
    let (s, alice_cookie) = sign_in(&r, "alice", "alice-pw");
    assert_eq!(s, 303, "the agent kept still signs in");
    assert_eq!(agent_page(&r, &alice_cookie.unwrap()).0, 200);
}

/// The hours of a window that is closed now and opens within the next day (UTC).
fn closed_now() -> (String, u32) {
    let hour = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 3600 % 24) as u32;
    let opens = (hour + 2) % 24;
    (format!("mon-sun {opens:02}:00-{:02}:00", opens + 1), opens)
}

fn book(r: &common::Redial, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut b = json!({"phone": PHONE, "queue": "q", "timezone": "UTC"});
    b.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    r.api("POST", "/v1/callbacks", Some(b))
}

fn due_hour(v: &serde_json::Value) -> u32 {
    let due = v["due_at"].as_str().unwrap_or_else(|| panic!("{v}"));
    due[11..13].parse().unwrap_or_else(|_| panic!("{v}"))
}

#[test]
fn sighup_applies_changed_and_new_queues_and_live_owners_while_a_bridged_call_keeps_its_audio() {
    let w = World::new();
    let queue = "max_attempts = 1\nring_timeout = \"5s\"\nagent_ring_timeout = \"5s\"\nwrap_up = \"0s\"\n";
    let r = w.redial(&["alice", "bob"], queue);
    let path = r.path("redial.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    let carrier = w.carrier_with("dial_carrier_answer_hangup.xml", 1, Some(&customer), &[("talk_ms", "8000")]);
    let alice = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 60_000);
    let id = schedule(&r, json!({}));
    assert!(r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(30)).is_some(), "{}", r.logs.lines().join("\n"));

    // As started: no queue `q2`, no agent carol; bob may own callbacks.
    let (s, v) = book(&r, json!({"queue": "q2"}));
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("unknown_queue")), "{v}");
    let (s, v) = book(&r, json!({"owner": "carol", "phone": "+15550111"}));
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("unknown_owner")), "{v}");
    let (s, v) = book(&r, json!({"owner": "bob", "phone": "+15550112"}));
    assert_eq!(s, 201, "{v}");
    assert_eq!(r.api("POST", &format!("/v1/callbacks/{}/cancel", v["id"].as_str().unwrap()), None).0, 200);

    // `q` closes until a later hour, `q2` is new, carol replaces bob.
    let (hours, opens) = closed_now();
    let bob = "[[agents]]\nid = \"bob\"\npassword = \"bob-pw\"\nqueues = [\"q\"]\n";
    assert!(original.contains(bob) && original.contains("hours = [\"mon-sun 00:00-24:00\"]"), "{original}");
    let changed = original
        .replace(bob, "[[agents]]\nid = \"carol\"\npassword = \"carol-pw\"\nqueues = [\"q\", \"q2\"]\n")
        .replace("hours = [\"mon-sun 00:00-24:00\"]", &format!("hours = [\"{hours}\"]"))
        + "\n[[queues]]\nname = \"q2\"\nprofile = \"carrier\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\n";
    std::fs::write(&path, &changed).unwrap();
    let before = agent_phone.received();
    hangup(&r);
    assert!(r.logs.wait_for(&["SIGHUP: queues reloaded", "q2"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));

    // The call bridged before goes on carrying audio to the agent.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while agent_phone.received() < before + 100 {
        assert!(std::time::Instant::now() < deadline, "audio stopped after the reload: {} packets before, {} now", before, agent_phone.received());
        std::thread::sleep(Duration::from_millis(50));
    }

    // The changed hours apply to the next booking; the new queue takes bookings.
    let (s, v) = book(&r, json!({"phone": "+15550113"}));
    assert_eq!(s, 201, "{v}");
    assert_eq!(due_hour(&v), opens, "booked into the changed window: {v}");
    let (s, v) = book(&r, json!({"queue": "q2", "phone": "+15550114", "scheduled_at": future_rfc3339(3600)}));
    assert_eq!(s, 201, "the new queue takes bookings: {v}");
    let in_q2 = v["id"].as_str().unwrap().to_string();
    // The owner check reads the agents applied.
    let (s, v) = book(&r, json!({"queue": "q2", "owner": "carol", "phone": "+15550115"}));
    assert_eq!(s, 201, "an agent added by the reload owns callbacks: {v}");
    let (s, v) = book(&r, json!({"owner": "bob", "phone": "+15550116"}));
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("unknown_owner")), "a removed agent owns none: {v}");

    // Removing `q2` while it holds callbacks is refused whole: carol stays too.
    let without_q2 = changed.split("\n[[queues]]\nname = \"q2\"").next().unwrap().replace("queues = [\"q\", \"q2\"]", "queues = [\"q\"]").replace("carol-pw", "carol-pw2");
    std::fs::write(&path, &without_q2).unwrap();
    hangup(&r);
    let line = r.logs.wait_for(&["SIGHUP: not reloaded", "`q2`"], Duration::from_secs(10)).unwrap_or_else(|| panic!("{}", r.logs.lines().join("\n")));
    assert!(line.contains("redial.toml") && line.contains("queues") && line.contains("scheduled or in-progress"), "{line}");
    let (s, v) = book(&r, json!({"queue": "q2", "phone": "+15550117", "scheduled_at": future_rfc3339(3600)}));
    assert_eq!(s, 201, "q2 stays: {v}");

    // The call bridged before the reloads ends as it would have.
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert!(carrier.wait().ok());
    drop(alice);
    assert_eq!(r.api("GET", &format!("/v1/callbacks/{in_q2}"), None).1["status"], "scheduled");
}

/// An RFC 3339 UTC instant `secs` from now.
fn future_rfc3339(secs: u64) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + secs;
    chrono::DateTime::from_timestamp(t as i64, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn trunk(port: u16, user: &str) -> String {
    format!(
        "proxy = \"sip:127.0.0.1:{port}\"\ndomain = \"carrier.test\"\nregister = true\nusername = \"{user}\"\npassword = \"s3cret\"\nexpires = 60\noptions_ping = \"0\"\n"
    )
}

fn trunk_names(r: &common::Redial) -> Vec<(String, bool)> {
    let (s, v) = r.api("GET", "/v1/trunks", None);
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap_or_else(|| panic!("{v}")).iter().map(|t| (t["name"].as_str().unwrap().to_string(), t["registered"] == true)).collect()
}

#[test]
fn sighup_starts_new_trunks_unregisters_removed_ones_and_re_registers_changed_ones() {
    use common::{Setup, Sipp};
    let removed = Sipp::new("carrier_unregister.xml").timeout(Duration::from_secs(30)).trace_msg().spawn();
    let changed_old = Sipp::new("carrier_unregister.xml").timeout(Duration::from_secs(30)).trace_msg().spawn();
    let changed_new = Sipp::new("carrier_register_once.xml").timeout(Duration::from_secs(30)).trace_msg().spawn();
    let added = Sipp::new("carrier_register_once.xml").timeout(Duration::from_secs(30)).trace_msg().spawn();
    let r = Setup::new()
        .with_token()
        .profile("trunk_a", &trunk(removed.port(), "trunk1"))
        .profile("trunk_b", &trunk(changed_old.port(), "trunk1"))
        .start();
    let both = || {
        let t = trunk_names(&r);
        (t.len() == 2 && t.iter().all(|(_, reg)| *reg)).then_some(t)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while both().is_none() {
        assert!(std::time::Instant::now() < deadline, "{:?}\n{}", trunk_names(&r), r.logs.lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let profiles = r.path("sip-profiles");

    // A bad profile: nothing changes, and the problem is named by file and key.
    std::fs::write(profiles.join("trunk_d.toml"), trunk(added.port(), "trunk2") + "colour = \"blue\"\n").unwrap();
    hangup(&r);
    let line = r.logs.wait_for(&["SIGHUP: not reloaded"], Duration::from_secs(10)).unwrap_or_else(|| panic!("{}", r.logs.lines().join("\n")));
    assert!(line.contains("trunk_d.toml") && line.contains("colour"), "{line}");
    assert_eq!(trunk_names(&r), vec![("trunk_a".to_string(), true), ("trunk_b".to_string(), true)]);

    // trunk_a removed, trunk_b moved to another registrar with other credentials, trunk_d new.
    std::fs::remove_file(profiles.join("trunk_a.toml")).unwrap();
    std::fs::write(profiles.join("trunk_b.toml"), trunk(changed_new.port(), "trunk2")).unwrap();
    std::fs::write(profiles.join("trunk_d.toml"), trunk(added.port(), "trunk2")).unwrap();
    hangup(&r);
    for (sipp, what) in [(removed, "the removed trunk's unREGISTER"), (changed_old, "the changed trunk's unREGISTER"), (changed_new, "the changed trunk's new REGISTER"), (added, "the new trunk's REGISTER")] {
        let out = sipp.wait();
        assert!(out.ok(), "{what}: {out}\nredial:\n{}", r.logs.lines().join("\n"));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = trunk_names(&r);
        if t == vec![("trunk_b".to_string(), true), ("trunk_d".to_string(), true)] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{t:?}\n{}", r.logs.lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_callback_after_a_reload_is_dialled_through_the_changed_profiles_new_proxy() {
    use common::Sipp;
    let w = World::new();
    let r = w.redial(&["alice"], "max_attempts = 1\nring_timeout = \"5s\"\nagent_ring_timeout = \"5s\"\nwrap_up = \"0s\"\n");
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    let moved = Sipp::new("dial_carrier_answer_hangup.xml")
        .calls(1)
        .timeout(Duration::from_secs(60))
        .trace_msg()
        .set("dir", w.path("").to_str().unwrap())
        .set("rtp_port", &customer.port.to_string())
        .set("talk_ms", "4000")
        .spawn();
    let path = r.path("sip-profiles/carrier.toml");
    let profile = std::fs::read_to_string(&path).unwrap();
    let proxy = profile.lines().find(|l| l.starts_with("proxy = ")).unwrap_or_else(|| panic!("{profile}")).to_string();
    std::fs::write(&path, profile.replace(&proxy, &format!("proxy = \"sip:127.0.0.1:{}\"", moved.port()))).unwrap();
    hangup(&r);
    assert!(r.logs.wait_for(&["SIGHUP: changed trunk re-registers", "carrier"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));
    let _alice = w.agent(&r, "alice", "dial_agent_answer.xml", 1, Some(&agent_phone), 60_000);
    let id = schedule(&r, json!({}));
    assert!(r.logs.wait_for(&["customer and agent bridged"], Duration::from_secs(30)).is_some(), "{}", r.logs.lines().join("\n"));
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}\n{}", r.logs.lines().join("\n"));
    let out = moved.wait();
    assert!(out.ok(), "the carrier at the new proxy took the call: {out}");
}
