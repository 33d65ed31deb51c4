//! The callback rules of turn 2 end to end: the real `redial` binary,
//! callbacks booked through the HTTP API, SIPp playing the carrier and the
//! agents' softphones (its scenarios check the headers on the wire).

mod common;

use std::time::{Duration, Instant};

use chrono::Datelike;

use common::phone::Phone;
use common::world::*;
use serde_json::json;

const FAST: &str = "max_attempts = 1\nretry_delay = \"1s\"\nring_timeout = \"3s\"\nagent_ring_timeout = \"3s\"\nwrap_up = \"0s\"\n";

/// Books a callback with `when` words but due now: the words are kept, the
/// time is moved to "as soon as the window allows" by a PATCH.
fn schedule_with_words_due_now(r: &common::Redial, extra: serde_json::Value) -> String {
    let id = schedule(r, extra);
    let (s, v) = r.api("PATCH", &format!("/v1/callbacks/{id}"), Some(json!({"scheduled_at": null})));
    assert_eq!(s, 200, "{v}");
    id
}

fn wait_file(path: &std::path::Path, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(Instant::now() < end, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn caller_name_and_context_are_on_the_wire_and_a_follow_up_books_during_the_call() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let agent_phone = Phone::start(w.path("agent.rtp"), corpus("h002.wav"));
    // Each scenario fails unless the INVITE it gets carries what is asked.
    let carrier = w.carrier("dial_carrier_answer_named.xml", 1, Some(&customer));
    let agent = w.agent(&r, "alice", "dial_agent_answer_context.xml", 1, Some(&agent_phone), 6000);
    let id = schedule_with_words_due_now(
        &r,
        json!({"caller_name": "Acme \"Care\"", "caller_id": "+15550177", "reason": "driving home", "confidence": 0.8, "when": "kal subah"}),
    );

    // While the call is bridged, the agent books the next one with the call's interaction id.
    let iid_line = wait_file(&w.path("agent.iid"), Duration::from_secs(30));
    let iid = iid_line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(iid.starts_with("call_"), "{iid_line}");
    r.wait_json(&format!("/v1/callbacks/{id}"), Duration::from_secs(20), |v| v["status"] == "in_progress");
    let end = Instant::now() + Duration::from_secs(20);
    let follow = loop {
        // The live call shows only once bridged: until then the booking is a plain duplicate.
        let (s, v) = r.api("POST", "/v1/callbacks", Some(json!({"interaction_id": iid, "when": "tomorrow at 10am", "reason": "send the contract first"})));
        if s == 201 {
            break v;
        }
        assert_eq!(s, 409, "{v}");
        assert!(Instant::now() < end, "follow-up never accepted: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(follow["phone"], common::world::PHONE, "{follow}");
    assert_eq!(follow["origin"], "agent", "{follow}");
    assert_eq!(follow["status"], "scheduled");
    let follow_id = follow["id"].as_str().unwrap().to_string();
    assert_ne!(follow_id, id);
    // A second follow-up is a duplicate of the first.
    let (s, v) = r.api("POST", "/v1/callbacks", Some(json!({"interaction_id": iid, "when": "tomorrow at 11am"})));
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["existing_id"], follow_id.as_str(), "{v}");

    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    for (k, want) in [("caller_name", json!("Acme \"Care\"")), ("reason", json!("driving home")), ("confidence", json!(0.8)), ("when", json!("kal subah"))] {
        assert_eq!(cb[k], want, "{k}: {cb}");
    }
    assert_eq!(cb["timezone_source"], "queue");
    let agent_out = agent.wait();
    assert!(agent_out.ok(), "{agent_out}");
    let carrier_out = carrier.wait();
    assert!(carrier_out.ok(), "{carrier_out}");
    // The follow-up is still the active callback for the customer once the call is over.
    let (_, f) = r.api("GET", &format!("/v1/callbacks/{follow_id}"), None);
    assert_eq!(f["status"], "scheduled", "{f}");
    let (s, v) = r.api("POST", "/v1/callbacks", Some(json!({"phone": common::world::PHONE, "queue": "q", "when": "tomorrow"})));
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["existing_id"], follow_id.as_str(), "{v}");

    // Filters and stats by origin and reason.
    let (_, l) = r.api("GET", "/v1/callbacks?origin=agent", None);
    let ids: Vec<&str> = l["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [follow_id.as_str()], "{l}");
    let (_, l) = r.api("GET", "/v1/callbacks?reason=DRIVING&min_confidence=0.5", None);
    let ids: Vec<&str> = l["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "{l}");
    let (_, l) = r.api("GET", "/v1/callbacks?min_confidence=0.9", None);
    assert!(l["items"].as_array().unwrap().is_empty(), "{l}");
    let (s, e) = r.api("GET", "/v1/callbacks?origin=robot", None);
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("origin")), "{e}");
    let (_, st) = r.api("GET", "/v1/stats", None);
    assert_eq!((st["requested"].as_u64(), st["completed"].as_u64(), st["pending"].as_u64()), (Some(2), Some(1), Some(1)), "{st}");
    assert_eq!(st["by_origin"]["api"]["completed"], 1, "{st}");
    assert_eq!(st["by_origin"]["agent"]["pending"], 1, "{st}");
    assert_eq!(st["by_origin"]["abandoned"]["requested"], 0, "{st}");
    let (_, st) = r.api("GET", "/v1/stats?origin=agent", None);
    assert_eq!((st["requested"].as_u64(), st["pending"].as_u64()), (Some(1), Some(1)), "{st}");
    let metrics = ureq::get(&format!("http://{}/metrics", r.http)).call().unwrap().body_mut().read_to_string().unwrap();
    for line in [
        "redial_callbacks_requested_by_origin_total{queue=\"q\",origin=\"api\"} 1",
        "redial_callbacks_requested_by_origin_total{queue=\"q\",origin=\"agent\"} 1",
        "redial_callbacks_by_origin{queue=\"q\",origin=\"api\",status=\"completed\"} 1",
        "redial_callbacks_by_origin{queue=\"q\",origin=\"agent\",status=\"pending\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing `{line}` in\n{metrics}");
    }
}

#[test]
fn a_decline_is_not_redialled_unless_the_queue_retries_declines() {
    for (retry_declined, status, tries) in [(false, "failed", 1), (true, "exhausted", 2)] {
        let w = World::new();
        let r = w.redial(&["alice"], &format!("max_attempts = 2\nretry_delay = \"1s\"\nring_timeout = \"3s\"\nretry_declined = {retry_declined}\n"));
        let carrier = w.carrier("dial_carrier_decline.xml", tries, None);
        let _agent = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);
        let id = schedule(&r, json!({}));
        let cb = wait_final(&r, &id, Duration::from_secs(30));
        assert_eq!(cb["status"], status, "retry_declined = {retry_declined}: {cb}");
        let a = attempts(&r, &id);
        assert_eq!(a.len(), tries as usize, "{a:?}");
        assert!(a.iter().all(|x| x["outcome"] == "declined" && x["sip_status"] == 603), "{a:?}");
        assert_eq!(cb["end_reason"], if retry_declined { json!(null) } else { json!("declined") }, "{cb}");
        let out = carrier.wait();
        assert!(out.ok(), "{out}");
        // The carrier saw exactly the INVITEs expected: a declined customer is not rung again.
        assert_eq!(out.received("INVITE"), tries as usize, "{}", out.messages);
    }
}

#[test]
fn bad_new_fields_are_refused_with_the_field_named() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    for (body, status, code, field) in [
        (json!({"confidence": 1.5}), 422, "invalid_confidence", "confidence"),
        (json!({"confidence": "high"}), 400, "invalid_field", "confidence"),
        (json!({"caller_name": "x".repeat(65)}), 422, "too_long", "caller_name"),
        (json!({"caller_name": "a\r\nb"}), 422, "invalid_field", "caller_name"),
        (json!({"reason": "r".repeat(201)}), 422, "too_long", "reason"),
        (json!({"owner_mode": "sometimes"}), 400, "invalid_field", "owner_mode"),
    ] {
        let mut b = json!({"phone": common::world::PHONE, "queue": "q", "when": "tomorrow"});
        b.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let (s, e) = r.api("POST", "/v1/callbacks", Some(b.clone()));
        assert_eq!((s, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (status, Some(code), Some(field)), "{b}: {e}");
    }
    // 64 characters of any script are fine (characters, not bytes).
    let (s, v) = r.api("POST", "/v1/callbacks", Some(json!({"phone": common::world::PHONE, "queue": "q", "when": "tomorrow", "caller_name": "é".repeat(64), "confidence": 0})));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["confidence"], 0.0);
}

#[test]
fn owners_preferred_fallback_and_strict_waiting_against_the_binary() {
    let w = World::new();
    // alice never registers (not free); bob takes what reaches him.
    let r = w.redial(&["alice", "bob"], FAST);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 2, Some(&customer));
    let bob = w.agent(&r, "bob", "dial_agent_answer.xml", 2, None, 1000);

    // Several owners: the first free one (bob) takes it.
    let a = schedule(&r, json!({"owners": ["alice", "bob"]}));
    let cb = wait_final(&r, &a, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert_eq!(attempts(&r, &a)[0]["agent"], "bob");
    assert_eq!(cb["owners"], json!(["alice", "bob"]), "{cb}");

    // Preferred owner alice is not free at the due time: the queue (bob) takes it at once.
    let b = schedule(&r, json!({"phone": "+15551230002", "owner": "alice", "owner_mode": "preferred"}));
    let cb = wait_final(&r, &b, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert_eq!(attempts(&r, &b)[0]["agent"], "bob");
    assert_eq!((cb["owner"].as_str(), cb["owner_mode"].as_str()), (None, Some("preferred")), "{cb}");
    assert!(bob.wait().ok());
    assert!(carrier.wait().ok());

    // Strict owner alice: it waits for her although bob is free.
    let c = schedule(&r, json!({"phone": "+15551230003", "owner": "alice"}));
    wait_until_waiting_for_its_owner(&r);
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{c}"), None);
    assert_eq!((cb["status"].as_str(), cb["owner"].as_str(), cb["attempts"].as_u64()), (Some("scheduled"), Some("alice"), Some(0)), "{cb}");

    // Bad owner fields are refused with the field named.
    for (body, code, field) in [
        (json!({"owners": ["alice", "zed"]}), "unknown_owner", "owners"),
        (json!({"owner_mode": "preferred"}), "owner_mode_without_owner", "owner_mode"),
        (json!({"owner": "bob", "owners": ["alice"]}), "conflicting_fields", "owners"),
        (json!({"owner": "bob", "when": "in 8 days"}), "beyond_owned_horizon", "when"),
    ] {
        let mut b = json!({"phone": "+15551230009", "queue": "q"});
        b.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let (s, e) = r.api("POST", "/v1/callbacks", Some(b.clone()));
        assert_eq!((s, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (422, Some(code), Some(field)), "{b}: {e}");
    }
}

/// Waits (20 s at most) until one callback is waiting for its owner.
fn wait_until_waiting_for_its_owner(r: &common::Redial) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let m = ureq::get(&format!("http://{}/metrics", r.http)).call().unwrap().body_mut().read_to_string().unwrap();
        if m.lines().any(|l| l == "redial_callbacks_waiting_for_agent 1") {
            return;
        }
        assert!(Instant::now() < end, "never waiting for its owner:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Moves the server's test clock forward by `secs`.
fn advance_clock(r: &common::Redial, secs: u64) -> serde_json::Value {
    let (s, v) = r.api("POST", "/v1/admin/test-clock", Some(json!({"advance_s": secs})));
    assert_eq!(s, 200, "{v}");
    v
}

#[test]
fn a_strict_owners_callback_goes_to_the_queue_when_the_ownership_period_ends_on_a_test_clock() {
    let w = World::new();
    // alice never registers; bob (registered for 600 s of real time) is free all along.
    let queue = format!("{FAST}ownership_period = \"1h\"\n");
    let r = w.redial_env(&["alice", "bob"], &queue, "127.0.0.1", "", &[("REDIAL_TEST_CLOCK", "advance")]);
    assert!(r.logs.wait_for(&["THIS SERVER RUNS ON A TEST CLOCK"], Duration::from_secs(1)).is_some(), "no warning at start");
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let bob = w.agent(&r, "bob", "dial_agent_answer.xml", 1, None, 1000);

    let id = schedule(&r, json!({"owner": "alice"}));
    wait_until_waiting_for_its_owner(&r);

    // Half the period passes: still alice's.
    let (_, before) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    let v = advance_clock(&r, 1800);
    assert_eq!(v["offset_ms"], 1_800_000, "{v}");
    assert!(common::world::ms(&v["now"]) >= common::world::ms(&before["due_at"]) + 1_800_000, "{v} {before}");
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    assert_eq!((cb["status"].as_str(), cb["owner"].as_str(), cb["attempts"].as_u64()), (Some("scheduled"), Some("alice"), Some(0)), "{cb}");

    // The rest of the hour passes: the queue (bob) takes it. Bob's
    // registration, 600 s of real time, still counts on the moved clock.
    advance_clock(&r, 1801);
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    assert_eq!((cb["owner"].as_str(), cb["owners"].as_array().map(Vec::len)), (None, Some(0)), "{cb}");
    let a = attempts(&r, &id);
    assert_eq!((a.len(), a[0]["agent"].as_str()), (1, Some("bob")), "{a:?}");
    assert!(common::world::ms(&a[0]["started_at"]) >= common::world::ms(&before["due_at"]) + 3_600_000, "{a:?} {before}");
    assert!(bob.wait().ok());
    assert!(carrier.wait().ok());

    // The clock only moves forward, and only by a sane amount.
    for body in [json!({"advance_s": 0}), json!({"advance_s": 400 * 86_400 + 1})] {
        let (s, e) = r.api("POST", "/v1/admin/test-clock", Some(body));
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("advance_s")), "{e}");
    }
    let (s, e) = r.api("POST", "/v1/admin/test-clock", Some(json!({"advance_s": -5})));
    assert_eq!(s, 400, "{e}");
}

#[test]
fn a_server_on_the_real_clock_has_no_test_clock_and_a_wrong_setting_stops_the_start() {
    let w = World::new();
    let r = w.redial(&["alice"], FAST);
    let (s, e) = r.api("POST", "/v1/admin/test-clock", Some(json!({"advance_s": 60})));
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")), "{e}");
    drop(r);

    // Only `advance` turns it on, and only with the API on a loopback address.
    let dir = tempfile::tempdir().unwrap();
    for (value, listen, says) in [("1", "127.0.0.1:0", "the only value is `advance`"), ("advance", "0.0.0.0:0", "loopback")] {
        let config = dir.path().join("redial.toml");
        std::fs::write(&config, format!("[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"{listen}\"\n[storage]\npath = \"data/r.redb\"\n")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_redial"))
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .env("REDIAL_TEST_CLOCK", value)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value} {listen}: {err}");
        assert!(err.contains("REDIAL_TEST_CLOCK") && err.contains(says), "{value} {listen}: {err}");
    }
}

#[test]
fn a_patch_changes_owners_caller_name_reason_and_confidence_under_the_rules_of_post() {
    let w = World::new();
    let r = w.redial(&["alice", "bob"], FAST);
    let (s, cb) = r.api("POST", "/v1/callbacks", Some(json!({"phone": common::world::PHONE, "queue": "q", "when": "tomorrow", "reason": "busy", "confidence": 0.3})));
    assert_eq!(s, 201, "{cb}");
    let id = cb["id"].as_str().unwrap();
    let path = format!("/v1/callbacks/{id}");

    let (s, v) = r.api(
        "PATCH",
        &path,
        Some(json!({"owners": ["bob", "alice"], "owner_mode": "preferred", "caller_name": "Acme Care", "reason": null, "confidence": 0.9})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["owner"].as_str(), &v["owners"], v["owner_mode"].as_str()), (Some("bob"), &json!(["bob", "alice"]), Some("preferred")), "{v}");
    assert_eq!((v["caller_name"].as_str(), &v["reason"], &v["confidence"]), (Some("Acme Care"), &json!(null), &json!(0.9)), "{v}");
    assert_eq!(v["due_at"], cb["due_at"], "its place is kept: {v}");
    let (_, got) = r.api("GET", &path, None);
    assert_eq!(got, v);

    // `when` words move it and are kept; with `scheduled_at` they conflict.
    let (s, v) = r.api("PATCH", &path, Some(json!({"when": "tomorrow at 3pm", "timezone": "Asia/Kolkata"})));
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["when"].as_str(), v["when_resolution"].as_str(), v["timezone_source"].as_str()), (Some("tomorrow at 3pm"), Some("exact"), Some("request")), "{v}");
    assert!(v["scheduled_at"].as_str().unwrap().ends_with("T09:30:00.000Z"), "15:00 in Kolkata: {v}");

    // Bad values: 400 for a wrong type, 422 for a broken rule, each naming its field; nothing changes.
    let (_, before) = r.api("GET", &path, None);
    for (body, status, code, field) in [
        (json!({"confidence": "high"}), 400, "invalid_field", "confidence"),
        (json!({"owner_mode": "sometimes"}), 400, "invalid_field", "owner_mode"),
        (json!({"owners": "alice"}), 400, "invalid_field", "owners"),
        (json!({"confidence": 1.5}), 422, "invalid_confidence", "confidence"),
        (json!({"owners": ["alice", "zed"]}), 422, "unknown_owner", "owners"),
        (json!({"owner": "alice", "owners": ["bob"]}), 422, "conflicting_fields", "owners"),
        (json!({"owners": [], "owner_mode": "strict"}), 422, "owner_mode_without_owner", "owner_mode"),
        (json!({"caller_name": "x".repeat(65)}), 422, "too_long", "caller_name"),
        (json!({"reason": "a\r\nb"}), 422, "invalid_field", "reason"),
        (json!({"when": "tomorrow", "scheduled_at": null}), 422, "conflicting_fields", "when"),
        (json!({"when": "in 8 days"}), 422, "beyond_owned_horizon", "when"),
    ] {
        let (s, e) = r.api("PATCH", &path, Some(body.clone()));
        assert_eq!((s, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (status, Some(code), Some(field)), "{body}: {e}");
    }
    let (_, after) = r.api("GET", &path, None);
    assert_eq!(after, before);

    // Audited with what changed.
    let (_, audit) = r.api("GET", "/v1/audit", None);
    let entries = audit["items"].as_array().unwrap();
    let owners = entries.iter().find(|e| e["target"] == id && e["detail"].as_str().unwrap().contains("owners=[bob,alice]")).expect("owners change audited");
    assert_eq!(owners["action"], "callback.change", "{owners}");
    for part in ["owner_mode=preferred", "caller_name changed", "reason changed", "confidence=0.9"] {
        assert!(owners["detail"].as_str().unwrap().contains(part), "{part}: {owners}");
    }
    assert!(entries.iter().any(|e| e["target"] == id && e["detail"].as_str().unwrap().contains("when `tomorrow at 3pm`")), "{audit}");

    // The OpenAPI document describes the fields.
    let (_, doc) = r.api("GET", "/v1/openapi.json", None);
    let props = &doc["components"]["schemas"]["ChangeCallback"]["properties"];
    for f in ["owners", "owner_mode", "caller_name", "reason", "confidence", "when"] {
        assert!(props.get(f).is_some(), "{f} missing in {props}");
    }
}

#[test]
fn a_single_day_queue_cancels_a_late_retry_and_what_waits_at_its_close_on_a_test_clock() {
    // The queue's zone puts the test at local noon, in a 12:00–14:00 window.
    let utc_hour = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 3600 % 24) as i64;
    let tz = match 12 - utc_hour {
        0 => "Etc/GMT".to_string(),
        // The Etc/GMT names count the other way: Etc/GMT-3 is UTC+3.
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let w = World::new();
    let queue = "max_attempts = 2\nretry_delay = \"3h\"\nring_timeout = \"3s\"\nagent_ring_timeout = \"3s\"\nwrap_up = \"0s\"\nwindow_close = \"cancel\"\n";
    let r = w.redial_window(&["alice", "bob"], &tz, "mon-sun 12:00-14:00", queue, "127.0.0.1", "", &[("REDIAL_TEST_CLOCK", "advance")]);
    let carrier = w.carrier("dial_carrier_busy.xml", 1, None);
    let _bob = w.agent(&r, "bob", "dial_agent_answer.xml", 1, None, 1000);

    // A later day is refused.
    let (s, e) = r.api("POST", "/v1/callbacks", Some(json!({"phone": common::world::PHONE, "queue": "q", "when": "tomorrow at 12:30"})));
    assert_eq!((s, e["error"]["code"].as_str()), (422, Some("single_day_queue")), "{e}");

    // The customer is busy; the retry, 3 h later, would fall after today's close.
    let busy = schedule(&r, json!({}));
    let cb = wait_final(&r, &busy, Duration::from_secs(30));
    assert_eq!((cb["status"].as_str(), cb["end_reason"].as_str()), (Some("cancelled"), Some("window_closed")), "{cb}");
    let a = attempts(&r, &busy);
    assert_eq!((a.len(), a[0]["outcome"].as_str()), (1, Some("busy")), "{a:?}");
    assert!(carrier.wait().ok());

    // One owned by alice, who never registers, waits; the clock passes the close.
    let waiting = schedule(&r, json!({"phone": "+15551230002", "owner": "alice"}));
    wait_until_waiting_for_its_owner(&r);
    advance_clock(&r, 3 * 3600);
    let cb = wait_final(&r, &waiting, Duration::from_secs(30));
    assert_eq!((cb["status"].as_str(), cb["end_reason"].as_str(), cb["attempts"].as_u64()), (Some("cancelled"), Some("window_closed"), Some(0)), "{cb}");
}

#[test]
fn quiet_hours_end_at_8_local_across_a_dst_change_and_the_call_goes_out_then_on_a_test_clock() {
    let mut w = World::new();
    w.extra_toml = "[compliance]\nquiet_hours = \"08:00-21:00\"\n".into();
    let r = w.redial_env(&["alice"], FAST, "127.0.0.1", "", &[("REDIAL_TEST_CLOCK", "advance")]);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h001.wav"));
    let carrier = w.carrier("dial_carrier_answer.xml", 1, Some(&customer));
    let alice = w.agent(&r, "alice", "dial_agent_answer.xml", 1, None, 1000);

    // The day before New York next springs forward (the second Sunday of
    // March, 02:00 EST → 03:00 EDT), at 17:00Z.
    let now = common::world::ms(&advance_clock(&r, 1)["now"]);
    let change_day = |year: i32| {
        let first = chrono::NaiveDate::from_ymd_opt(year, 3, 1).unwrap();
        first + chrono::Days::new(u64::from((7 - first.weekday().num_days_from_sunday()) % 7) + 7)
    };
    let this_year = chrono::DateTime::from_timestamp_millis(now).unwrap().year();
    let eve_of = |day: chrono::NaiveDate| (day - chrono::Days::new(1)).and_hms_opt(17, 0, 0).unwrap().and_utc().timestamp_millis();
    let day = [change_day(this_year), change_day(this_year + 1)].into_iter().find(|d| eve_of(*d) > now).unwrap();
    advance_clock(&r, ((eve_of(day) - now) / 1000) as u64);

    // 07:30 on the morning after the change is inside quiet hours: due at
    // 08:00 EDT (12:00Z), not 08:00 EST (13:00Z).
    let id = schedule(&r, json!({"timezone": "America/New_York", "scheduled_at": format!("{day}T11:30:00Z")}));
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    assert_eq!(cb["due_at"], format!("{day}T12:00:00.000Z"), "{cb}");

    // A minute before: not dialled.
    let now = common::world::ms(&advance_clock(&r, 1)["now"]);
    let due = common::world::ms(&cb["due_at"]);
    advance_clock(&r, ((due - now) / 1000 - 60) as u64);
    let (_, cb) = r.api("GET", &format!("/v1/callbacks/{id}"), None);
    assert_eq!((cb["status"].as_str(), cb["attempts"].as_u64()), (Some("scheduled"), Some(0)), "{cb}");

    // At 08:00 it goes out.
    advance_clock(&r, 61);
    let cb = wait_final(&r, &id, Duration::from_secs(30));
    assert_eq!(cb["status"], "completed", "{cb}");
    let a = attempts(&r, &id);
    assert!(common::world::ms(&a[0]["started_at"]) >= due, "{a:?}");
    assert!(alice.wait().ok());
    assert!(carrier.wait().ok());
}
