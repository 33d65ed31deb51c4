//! `POST /v1/detections` against the running binary: the detection fields,
//! `due_at` from the time resolver, booking only with both gates on (the
//! queue's `callback_detection` and the request's `create`), and the errors.

mod common;

use common::api::{Server, RO, RW};
use serde_json::{json, Value};

const ASK: &str = "Agent: Is this a good time?\nCustomer: I'm driving, can you call me back tomorrow at 5 pm?";
const REFUSAL: &str = "Agent: Can I call you tomorrow?\nCustomer: No, don't call me again.";

/// The test server with one more queue, `leads`, that has detection booking on.
fn server(dir: &std::path::Path) -> Server {
    let mut s = Server::start(dir, true, &[]);
    s.stop();
    let mut cfg = std::fs::read_to_string(&s.config).unwrap();
    cfg.push_str("\n[[queues]]\nname = \"leads\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\ncallback_detection = true\n");
    std::fs::write(&s.config, cfg).unwrap();
    s.spawn();
    s
}

fn detect(s: &Server, token: Option<&str>, body: &Value) -> (u16, Value) {
    s.req("POST", "/v1/detections", token, Some(&body.to_string()))
}

/// The callbacks stored for `phone`, any status.
fn callbacks_of(s: &Server, phone: &str) -> Vec<Value> {
    let (status, page) = s.req("GET", &format!("/v1/callbacks?phone={}", phone.replace('+', "%2B")), Some(RO), None);
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[test]
fn detects_resolves_and_books_only_with_both_gates_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());

    // A clear ask: the fields, and due_at resolved in the future; nothing booked.
    let (status, d) = detect(&s, Some(RW), &json!({"transcript": ASK, "queue": "support", "phone": "+15550101", "timezone": "Asia/Kolkata"}));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["requested"], true);
    assert_eq!(d["when"], "tomorrow at 5 pm");
    assert_eq!(d["reason"], "driving");
    assert_eq!(d["confidence"], 0.9);
    assert_eq!(d["callback"], Value::Null);
    let due = chrono::DateTime::parse_from_rfc3339(d["due_at"].as_str().unwrap_or_else(|| panic!("due_at: {d}"))).unwrap();
    assert!(due > chrono::Utc::now(), "due_at {due} is in the future");
    // "tomorrow at 5 pm" in Asia/Kolkata is 11:30 UTC (the window is always open).
    assert_eq!(due.with_timezone(&chrono::Utc).format("%H:%M").to_string(), "11:30", "{d}");
    assert!(callbacks_of(&s, "+15550101").is_empty(), "create absent: nothing booked");

    // A refusal: nothing requested, nothing resolved.
    let (status, d) = detect(&s, Some(RW), &json!({"transcript": REFUSAL, "queue": "leads", "phone": "+15550102", "create": true}));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d, json!({"requested": false, "when": null, "reason": null, "confidence": 0.0, "due_at": null, "callback": null}));
    assert!(callbacks_of(&s, "+15550102").is_empty(), "nothing requested: nothing booked");

    // Requested, but words naming no time: due_at null.
    let (status, d) = detect(&s, Some(RW), &json!({"transcript": "Customer: I'm busy, call me back", "queue": "support", "phone": "+15550103"}));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["requested"], true);
    assert_eq!(d["when"], Value::Null);
    assert_eq!(d["due_at"], Value::Null);
    assert_eq!(d["reason"], "busy");

    // create=true on a queue without callback_detection: nothing booked.
    let (status, d) = detect(&s, Some(RW), &json!({"transcript": ASK, "queue": "support", "phone": "+15550104", "create": true}));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["callback"], Value::Null);
    assert!(callbacks_of(&s, "+15550104").is_empty(), "queue gate off: nothing booked");

    // create=false on a queue with callback_detection: nothing booked.
    let (status, d) = detect(&s, Some(RW), &json!({"transcript": ASK, "queue": "leads", "phone": "+15550105", "create": false}));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["callback"], Value::Null);
    assert!(callbacks_of(&s, "+15550105").is_empty(), "request gate off: nothing booked");

    // Both gates on: booked with the words, the reason and origin api.
    let (status, d) = detect(&s, Some(RW), &json!({"transcript": ASK, "queue": "leads", "phone": "+15550106", "timezone": "Asia/Kolkata", "create": true}));
    assert_eq!(status, 200, "{d}");
    let id = d["callback"]["id"].as_str().unwrap_or_else(|| panic!("no callback: {d}")).to_string();
    let (status, cb) = s.req("GET", &format!("/v1/callbacks/{id}"), Some(RO), None);
    assert_eq!(status, 200, "{cb}");
    assert_eq!(cb["status"], "scheduled");
    assert_eq!(cb["phone"], "+15550106");
    assert_eq!(cb["queue"], "leads");
    assert_eq!(cb["when"], "tomorrow at 5 pm");
    // The reason and confidence have their own fields now, not the notes.
    assert_eq!(cb["notes"], serde_json::Value::Null);
    assert_eq!(cb["reason"], "driving");
    assert_eq!(cb["confidence"], d["confidence"]);
    assert_eq!(cb["origin"], "api");
    assert_eq!(cb["timezone"], "Asia/Kolkata");
    assert_eq!(cb["due_at"], d["callback"]["due_at"]);
    let stored = chrono::DateTime::parse_from_rfc3339(cb["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(stored.with_timezone(&chrono::Utc).format("%H:%M").to_string(), "11:30", "{cb}");
    assert_eq!(callbacks_of(&s, "+15550106").len(), 1);

    // The booking is audited under the caller's token.
    let (status, audit) = s.req("GET", "/v1/audit", Some(common::api::ADMIN), None);
    assert_eq!(status, 200, "{audit}");
    let entries = audit["items"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "callback.create" && e["target"] == id.as_str() && e["actor"] == "crm"),
        "audit: {audit}"
    );

    // Again: the usual duplicate answer, nothing more booked.
    let (status, e) = detect(&s, Some(RW), &json!({"transcript": ASK, "queue": "leads", "phone": "+15550106", "create": true}));
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["code"], "duplicate");
    assert_eq!(e["error"]["existing_id"], id.as_str());
    assert_eq!(callbacks_of(&s, "+15550106").len(), 1);
}

#[test]
fn bad_requests_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let ok = || json!({"transcript": ASK, "queue": "leads", "phone": "+15550201", "create": true});
    let with = |k: &str, v: Value| {
        let mut b = ok();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (without("transcript"), 400, "invalid_field", "transcript"),
        (with("transcript", json!(42)), 400, "invalid_field", "transcript"),
        (with("transcript", json!("x".repeat(20_001))), 400, "too_long", "transcript"),
        (without("queue"), 400, "invalid_field", "queue"),
        (without("phone"), 400, "invalid_field", "phone"),
        (with("create", json!("yes")), 400, "invalid_field", "create"),
        (with("extra", json!(1)), 400, "invalid_field", "extra"),
        (with("queue", json!("nope")), 422, "unknown_queue", "queue"),
        (with("phone", json!("5550201")), 422, "invalid_phone", "phone"),
        (with("timezone", json!("Mars/Olympus")), 422, "invalid_timezone", "timezone"),
    ];
    for (body, want, code, field) in cases {
        let (status, e) = detect(&s, Some(RW), &body);
        assert_eq!(status, want, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        assert_eq!(e["error"]["field"], field, "{body}: {e}");
    }
    let (status, e) = s.req("POST", "/v1/detections", Some(RW), Some("{not json"));
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_json");

    // Exactly 20,000 characters (multi-byte ones count once) is accepted.
    let (status, d) = detect(&s, Some(RW), &with("transcript", json!("é".repeat(20_000))));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["requested"], false);

    // Scopes: read-only is refused, no token is unauthorised; nothing booked.
    let (status, e) = detect(&s, Some(RO), &ok());
    assert_eq!(status, 403, "{e}");
    let (status, e) = detect(&s, None, &ok());
    assert_eq!(status, 401, "{e}");
    assert!(callbacks_of(&s, "+15550201").is_empty());

    // The route is in the OpenAPI document.
    let (status, doc) = s.req("GET", "/v1/openapi.json", Some(RO), None);
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/detections"]["post"].is_object(), "openapi lacks /v1/detections");
}
