//! `"channel": "sms"` callbacks against SIPp as the carrier: at the due time
//! the queue's `sms_callback` text goes through the trunk instead of a call,
//! with no agent registered at all. The carrier checks the Request-URI,
//! From, body and callback header, answers 503 once (retried after the
//! queue's `retry_delay`), then 200: the callback ends `completed` with two
//! attempts (`failed` 503, `sent` 200), both texts recorded on it, and the
//! event stream carries the callback's whole life in order. Bad requests
//! for the channel (a queue without `sms_callback`, an unknown channel, an
//! owner) are refused clearly.

mod common;

use std::time::{Duration, Instant};

use common::api::{request, sse};
use common::{Setup, Sipp};
use serde_json::{json, Value};

const TOKEN: &str = "sms-channel-token";

fn setup(carrier_port: u16) -> common::Redial {
    Setup::new()
        .profile("carrier1", &format!("proxy = \"sip:127.0.0.1:{carrier_port}\"\ndomain = \"carrier.test\"\nregister = false\noptions_ping = \"0\"\n"))
        .extra_toml(&format!(
            "[[tokens]]\nname = \"crm\"\nsecret = \"{TOKEN}\"\nscopes = [\"admin\"]\n\n\
             [[queues]]\nname = \"texts\"\nprofile = \"carrier1\"\ncaller_id = \"+15550100\"\nretry_delay = \"1s\"\nmax_attempts = 3\n\
             sms_callback = \"Hello from {{queue}}: you asked us to get back to {{phone}}. Reply here or call +15550100.\"\n\n\
             [[queues]]\nname = \"calls\"\nprofile = \"carrier1\"\ncaller_id = \"+15550100\"\n"
        ))
        .start()
}

fn get(r: &common::Redial, path: &str) -> Value {
    let (st, v) = request(r.http.port(), "GET", path, Some(TOKEN), None, &[]).unwrap();
    assert_eq!(st, 200, "{path}: {v}");
    v
}

/// The event types of callback `id`, in stream order.
fn types_of(evs: &common::api::Sse, id: &str) -> Vec<String> {
    evs.iter()
        .filter(|(_, _, d)| d["id"] == id || d["callback_id"] == id)
        .map(|(_, _, d)| d["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn an_sms_callback_is_texted_at_its_due_time_retried_and_completed() {
    let carrier = Sipp::new("sms_carrier_due.xml").calls(2).timeout(Duration::from_secs(30)).trace_msg().spawn();
    let r = setup(carrier.port());
    let port = r.http.port();

    // Refused clearly: a queue without `sms_callback`, and a channel that does not exist.
    let (st, e) = request(port, "POST", "/v1/callbacks", Some(TOKEN), Some(&json!({"phone": "+15557654321", "queue": "calls", "channel": "sms"}).to_string()), &[]).unwrap();
    assert_eq!((st, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (422, Some("sms_not_offered"), Some("channel")), "{e}");
    let (st, e) = request(port, "POST", "/v1/callbacks", Some(TOKEN), Some(&json!({"phone": "+15557654321", "queue": "texts", "channel": "fax"}).to_string()), &[]).unwrap();
    assert_eq!(st, 400, "{e}");
    // A text has no owner.
    let (st, e) = request(port, "POST", "/v1/callbacks", Some(TOKEN), Some(&json!({"phone": "+15557654321", "queue": "texts", "channel": "sms", "owner": "alice"}).to_string()), &[]).unwrap();
    assert_eq!((st, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (422, Some("conflicting_fields"), Some("channel")), "{e}");

    // Due now (no time given): no agent exists, yet the text goes at once.
    let (st, cb) = request(port, "POST", "/v1/callbacks", Some(TOKEN), Some(&json!({"phone": "+15557654321", "queue": "texts", "channel": "sms"}).to_string()), &[]).unwrap();
    assert_eq!(st, 201, "{cb}");
    assert_eq!(cb["channel"], "sms");
    let id = cb["id"].as_str().unwrap().to_string();

    let out = carrier.wait();
    assert!(out.ok(), "{out}\n{}", out.messages);
    assert_eq!(out.received("MESSAGE "), 2, "{}", out.messages);
    assert!(out.messages.contains(&format!("X-Redial-Callback-Id: {id}")), "{}", out.messages);

    let deadline = Instant::now() + Duration::from_secs(30);
    let cb = loop {
        let cb = get(&r, &format!("/v1/callbacks/{id}"));
        if cb["status"] == "completed" {
            break cb;
        }
        assert!(Instant::now() < deadline, "not completed: {cb}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((cb["attempts"].as_u64(), cb["last_outcome"].as_str()), (Some(2), Some("sent")), "{cb}");
    let texts = cb["texts"].as_array().expect("texts recorded");
    let summary: Vec<_> = texts.iter().map(|t| (t["purpose"].as_str(), t["status"].as_str(), t["sip_status"].as_u64(), t["parts"].as_u64())).collect();
    assert_eq!(summary, vec![(Some("callback"), Some("failed"), Some(503), Some(1)), (Some("callback"), Some("sent"), Some(200), Some(1))], "{cb}");
    assert_eq!(texts[1]["text"], "Hello from texts: you asked us to get back to +15557654321. Reply here or call +15550100.");

    let attempts = get(&r, &format!("/v1/callbacks/{id}/attempts"));
    let items = attempts["items"].as_array().unwrap();
    let got: Vec<_> = items.iter().map(|a| (a["outcome"].as_str(), a["sip_status"].as_u64(), a["agent"].is_null())).collect();
    assert_eq!(got, vec![(Some("failed"), Some(503), true), (Some("sent"), Some(200), true)], "{attempts}");

    // The whole life of the callback, replayed from the outbox, in order.
    let evs = sse(port, TOKEN, Some(0), |e| types_of(e, &id).iter().any(|t| t == "callback.completed"));
    assert_eq!(
        types_of(&evs, &id),
        [
            "callback.created",
            "callback.in_progress",
            "attempt.started",
            "attempt.ended",
            "callback.updated",
            "callback.in_progress",
            "attempt.started",
            "attempt.ended",
            "callback.completed",
        ],
        "{evs:?}"
    );
}
