//! Every route and every error code of the HTTP API, against the running
//! binary (DESIGN.md "HTTP API").

mod common;

use common::api::*;
use serde_json::{json, Value};

fn create(s: &Server, body: Value) -> (u16, Value) {
    s.req("POST", "/v1/callbacks", Some(RW), Some(&body.to_string()))
}

fn err_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error body: {v}"))
}

#[test]
fn callbacks_crud_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);

    // healthz and metrics need no token.
    assert_eq!(s.req("GET", "/healthz", None, None), (200, json!({"status": "ok"})));

    // 201 with every field of the callback object.
    let at = in_secs(3600);
    let (st, cb) = create(&s, json!({"phone": "+15550001", "queue": "support", "scheduled_at": at, "notes": "billing", "interaction_id": "crm-1", "max_attempts": 2}));
    assert_eq!(st, 201, "{cb}");
    for f in ["id", "status", "phone", "queue", "owner", "mode", "scheduled_at", "due_at", "timezone", "attempts", "max_attempts", "last_outcome", "origin", "notes", "interaction_id", "created_at", "updated_at"] {
        assert!(cb.get(f).is_some(), "missing {f}: {cb}");
    }
    assert_eq!(cb["status"], "scheduled");
    assert_eq!(cb["origin"], "api");
    assert_eq!(cb["max_attempts"], 2);
    assert_eq!(cb["timezone"], "UTC");
    assert_eq!(cb["mode"], "customer_first");
    assert!(cb["due_at"].as_str().unwrap().ends_with('Z'));
    let id = cb["id"].as_str().unwrap().to_string();

    // get, attempts (none yet), list with filters.
    assert_eq!(s.req("GET", &format!("/v1/callbacks/{id}"), Some(RO), None), (200, cb.clone()));
    assert_eq!(s.req("GET", &format!("/v1/callbacks/{id}/attempts"), Some(RO), None), (200, json!({"items": [], "next_cursor": null})));
    let (st, page) = s.req("GET", "/v1/callbacks?queue=support&phone=%2B15550001&status=scheduled", Some(RO), None);
    assert_eq!(st, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = s.req("GET", "/v1/callbacks?queue=sales", Some(RO), None);
    assert_eq!(page, json!({"items": [], "next_cursor": null}));

    // Duplicate active callback: 409 with the existing id.
    let (st, e) = create(&s, json!({"phone": "+15550001", "queue": "support"}));
    assert_eq!((st, err_code(&e)), (409, "duplicate"));
    assert_eq!(e["error"]["existing_id"], id.as_str());
    // Same phone, other queue is fine (owner in the right queue too).
    let (st, other) = create(&s, json!({"phone": "+15550001", "queue": "sales", "owner": "bob", "timezone": "Europe/Paris", "mode": "agent_first"}));
    assert_eq!(st, 201, "{other}");
    assert_eq!(other["owner"], "bob");
    assert_eq!(other["mode"], "agent_first");

    // PATCH while scheduled.
    let later = in_secs(7200);
    let (st, changed) = s.req("PATCH", &format!("/v1/callbacks/{id}"), Some(RW), Some(&json!({"scheduled_at": later, "notes": null}).to_string()));
    assert_eq!(st, 200, "{changed}");
    assert_eq!(changed["notes"], Value::Null);
    assert_ne!(changed["due_at"], cb["due_at"]);
    let (st, e) = s.req("PATCH", &format!("/v1/callbacks/{id}"), Some(RW), Some(&json!({"scheduled_at": in_secs(10)}).to_string()));
    assert_eq!((st, err_code(&e)), (422, "too_soon"));
    let (st, e) = s.req("PATCH", &format!("/v1/callbacks/{id}"), Some(RW), Some(r#"{"phone":"+1555"}"#));
    assert_eq!((st, err_code(&e), e["error"]["field"].as_str()), (400, "invalid_field", Some("phone")));

    // Cancel, then every change is 409.
    let (st, c) = s.req("POST", &format!("/v1/callbacks/{id}/cancel"), Some(RW), None);
    assert_eq!((st, c["status"].as_str()), (200, Some("cancelled")));
    let (st, e) = s.req("POST", &format!("/v1/callbacks/{id}/cancel"), Some(RW), None);
    assert_eq!((st, err_code(&e)), (409, "wrong_state"));
    let (st, e) = s.req("PATCH", &format!("/v1/callbacks/{id}"), Some(RW), Some(r#"{"notes":"x"}"#));
    assert_eq!((st, err_code(&e)), (409, "wrong_state"));
    // Cancelled frees the phone+queue.
    assert_eq!(create(&s, json!({"phone": "+15550001", "queue": "support"})).0, 201);

    // Unknown ids of any shape: 404 on every route.
    for bad in ["nope", "cb_0000000000000", "cb_zzzzzzzzzzzzz", "%2e%2e", "123", "cb_%F0%9F%98%80"] {
        for (m, p, b) in [("GET", format!("/v1/callbacks/{bad}"), None), ("GET", format!("/v1/callbacks/{bad}/attempts"), None), ("PATCH", format!("/v1/callbacks/{bad}"), Some(r#"{"notes":"x"}"#)), ("POST", format!("/v1/callbacks/{bad}/cancel"), None)] {
            let tok = if m == "GET" { RO } else { RW };
            let (st, e) = s.req(m, &p, Some(tok), b);
            assert_eq!((st, err_code(&e)), (404, "not_found"), "{m} {p}");
        }
    }

    // 400: malformed JSON, unknown field, wrong type, missing field: with `field`.
    let (st, e) = s.req("POST", "/v1/callbacks", Some(RW), Some("{\"phone\":"));
    assert_eq!((st, err_code(&e)), (400, "invalid_json"));
    let (st, e) = create(&s, json!({"phone": "+15550002", "queue": "support", "colour": "red"}));
    assert_eq!((st, err_code(&e), e["error"]["field"].as_str()), (400, "invalid_field", Some("colour")));
    let (st, e) = create(&s, json!({"phone": "+15550002", "queue": "support", "max_attempts": "three"}));
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("max_attempts")));
    let (st, e) = create(&s, json!({"queue": "support"}));
    assert_eq!((st, err_code(&e)), (400, "invalid_field"));
    let (st, e) = create(&s, json!({"phone": "+15550002", "queue": "support", "scheduled_at": "tomorrow"}));
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("scheduled_at")));

    // 422: each rule.
    let cases = [
        (json!({"phone": "+15550002", "queue": "support", "scheduled_at": in_secs(-60)}), "too_soon", "scheduled_at"),
        (json!({"phone": "+15550002", "queue": "support", "scheduled_at": in_secs(30)}), "too_soon", "scheduled_at"),
        (json!({"phone": "+15550002", "queue": "support", "scheduled_at": in_secs(31 * 86400)}), "too_late", "scheduled_at"),
        (json!({"phone": "+15550002", "queue": "nope"}), "unknown_queue", "queue"),
        (json!({"phone": "+15550002", "queue": "support", "owner": "carol"}), "unknown_owner", "owner"),
        (json!({"phone": "+15550002", "queue": "support", "owner": "bob"}), "owner_not_in_queue", "owner"),
        (json!({"phone": "5550002", "queue": "support"}), "invalid_phone", "phone"),
        (json!({"phone": "+15550002", "queue": "support", "timezone": "Mars/Olympus"}), "unknown_timezone", "timezone"),
        (json!({"phone": "+15550002", "queue": "support", "when": "tomorrow morning", "scheduled_at": in_secs(3600)}), "conflicting_fields", "when"),
        (json!({"phone": "+15550002", "queue": "support", "when": "in 45 days"}), "too_late", "when"),
    ];
    for (body, code, field) in cases {
        let (st, e) = create(&s, body.clone());
        assert_eq!((st, err_code(&e), e["error"]["field"].as_str()), (422, code, Some(field)), "{body}");
    }

    // 413 over 64 KiB.
    let big = json!({"phone": "+15550003", "queue": "support", "notes": "x".repeat(70 * 1024)}).to_string();
    let (st, e) = s.req("POST", "/v1/callbacks", Some(RW), Some(&big));
    assert_eq!((st, err_code(&e)), (413, "body_too_large"));

    // 401 and 403.
    let (st, e) = s.req("GET", "/v1/callbacks", None, None);
    assert_eq!((st, err_code(&e)), (401, "unauthorized"));
    let (st, _) = s.req("GET", "/v1/callbacks", Some("wrong-token"), None);
    assert_eq!(st, 401);
    let (st, e) = s.req("POST", "/v1/callbacks", Some(RO), Some(&json!({"phone": "+15550004", "queue": "support"}).to_string()));
    assert_eq!((st, err_code(&e)), (403, "forbidden"));
    let (st, _) = s.req("POST", &format!("/v1/callbacks/{id}/cancel"), Some(RO), None);
    assert_eq!(st, 403);
    assert_eq!(s.req("GET", "/v1/stats", Some(ADMIN), None).0, 200, "admin implies read");

    // List limits and cursors.
    for i in 0..5 {
        assert_eq!(create(&s, json!({"phone": format!("+1555010{i}"), "queue": "support"})).0, 201);
    }
    let (st, e) = s.req("GET", "/v1/callbacks?limit=501", Some(RO), None);
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("limit")));
    let (st, e) = s.req("GET", "/v1/callbacks?status=bogus", Some(RO), None);
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("status")));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/callbacks?limit=2&cursor={c}"),
            None => "/v1/callbacks?limit=2".to_string(),
        };
        let (st, page) = s.req("GET", &path, Some(RO), None);
        assert_eq!(st, 200);
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!((seen.len(), dedup.len()), (8, 8), "{seen:?}");

    // Stats.
    let (st, stats) = s.req("GET", "/v1/stats?queue=support", Some(RO), None);
    assert_eq!(st, 200);
    assert_eq!((stats["requested"].as_u64(), stats["cancelled"].as_u64(), stats["pending"].as_u64()), (Some(7), Some(1), Some(6)), "{stats}");
    for k in ["requested", "pending", "completed", "cancelled", "exhausted", "failed", "skipped", "avg_delay_s"] {
        assert!(stats.get(k).is_some(), "{k}");
    }
    assert_eq!(s.req("GET", "/v1/stats?queue=nope", Some(RO), None).0, 404);

    // Unknown route and method.
    assert_eq!(s.req("GET", "/v1/nothing", Some(RO), None).0, 404);
    assert_eq!(s.req("DELETE", "/v1/callbacks", Some(RW), None).0, 405);
}

#[test]
fn agents_trunks_metrics_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);
    let (st, agents) = s.req("GET", "/v1/agents", Some(RO), None);
    assert_eq!(st, 200);
    assert_eq!(agents["next_cursor"], Value::Null);
    let alice = &agents["items"][0];
    assert_eq!((alice["id"].as_str(), alice["state"].as_str()), (Some("alice"), Some("offline")));
    assert_eq!(alice["queues"], json!(["support"]));
    assert_eq!(alice["registrations"], json!([]));
    assert_eq!(alice["reserved_for"], Value::Null);

    // Only admin may set state.
    let (st, e) = s.req("PUT", "/v1/agents/alice/state", Some(RW), Some(r#"{"state":"away"}"#));
    assert_eq!((st, err_code(&e)), (403, "forbidden"));
    let (st, a) = s.req("PUT", "/v1/agents/alice/state", Some(ADMIN), Some(r#"{"state":"away"}"#));
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["id"], "alice");
    assert_eq!(s.req("PUT", "/v1/agents/carol/state", Some(ADMIN), Some(r#"{"state":"away"}"#)).0, 404);
    let (st, e) = s.req("PUT", "/v1/agents/alice/state", Some(ADMIN), Some(r#"{"state":"on_call"}"#));
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("state")));

    let (st, t) = s.req("GET", "/v1/trunks", Some(RO), None);
    assert_eq!((st, t), (200, json!({"items": [], "next_cursor": null})));

    let (st, m) = s.req("GET", "/metrics", None, None);
    assert_eq!(st, 200);
    let m = m.as_str().unwrap().to_string();
    for name in [
        "redial_callbacks{queue=\"support\",status=\"pending\"}",
        "redial_agents{state=\"offline\"} 2",
        "redial_http_requests_total{route=\"/v1/agents/{id}/state\",method=\"PUT\",status=\"403\"} 1",
        "redial_http_request_duration_seconds_bucket{route=\"/v1/agents\",le=\"+Inf\"} 1",
        "redial_fire_lateness_seconds_count",
        "redial_calls_active 0",
        "redial_callbacks_waiting_for_agent 0",
        "# TYPE redial_sip_transactions_total counter",
        "# TYPE redial_trunk_registered gauge",
        "# TYPE redial_attempts_total counter",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }

    // OpenAPI: needs read; lists every route with its methods.
    assert_eq!(s.req("GET", "/v1/openapi.json", None, None).0, 401);
    let (st, doc) = s.req("GET", "/v1/openapi.json", Some(RO), None);
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/callbacks", "post"),
        ("/v1/callbacks", "get"),
        ("/v1/callbacks/{id}", "get"),
        ("/v1/callbacks/{id}", "patch"),
        ("/v1/callbacks/{id}/attempts", "get"),
        ("/v1/callbacks/{id}/cancel", "post"),
        ("/v1/stats", "get"),
        ("/v1/agents", "get"),
        ("/v1/agents/{id}/state", "put"),
        ("/v1/trunks", "get"),
        ("/v1/openapi.json", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["CallbackView"]["example"].is_object());
}

#[test]
fn idempotency_key_replays_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);
    let body = json!({"phone": "+15550200", "queue": "support"}).to_string();
    let h = [("Idempotency-Key", "order-42")];
    let (st1, a, _) = s.req_h("POST", "/v1/callbacks", Some(RW), Some(&body), &h);
    let (st2, b, hdrs) = s.req_h("POST", "/v1/callbacks", Some(RW), Some(&body), &h);
    assert_eq!((st1, st2), (201, 201));
    assert_eq!(a, b, "the replay is the first answer");
    assert!(hdrs.iter().any(|(k, v)| k == "idempotent-replayed" && v == "true"));
    let other = json!({"phone": "+15550201", "queue": "support"}).to_string();
    let (st, e, _) = s.req_h("POST", "/v1/callbacks", Some(RW), Some(&other), &h);
    assert_eq!((st, err_code(&e)), (422, "idempotency_key_reused"));
    // Without the key the same body is a duplicate.
    assert_eq!(s.req("POST", "/v1/callbacks", Some(RW), Some(&body)).0, 409);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[("REDIAL_API_RATE", "1"), ("REDIAL_API_BURST", "3")]);
    let mut statuses = vec![];
    let mut retry = None;
    for _ in 0..5 {
        let (st, e, h) = s.req_h("GET", "/v1/agents", Some(RO), None, &[]);
        if st == 429 {
            assert_eq!(err_code(&e), "rate_limited");
            retry = h.iter().find(|(k, _)| k == "retry-after").map(|(_, v)| v.clone());
        }
        statuses.push(st);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(statuses[4], 429, "{statuses:?}");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    // Buckets are per token.
    assert_eq!(s.req("GET", "/v1/agents", Some(RW), None).0, 200);
    // healthz is never limited.
    assert_eq!(s.req("GET", "/healthz", None, None).0, 200);
}

#[test]
fn fifty_racers_one_created_rest_conflict_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);
    let port = s.port;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                request(port, "POST", "/v1/callbacks", Some(RW), Some(r#"{"phone":"+15550300","queue":"support"}"#), &[]).unwrap()
            })
        })
        .collect();
    let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == 201).map(|(_, v)| v).collect();
    assert_eq!(created.len(), 1, "{results:?}");
    let id = created[0]["id"].as_str().unwrap();
    let conflicts = results.iter().filter(|(s, v)| *s == 409 && v["error"]["existing_id"] == id).count();
    assert_eq!(conflicts, 49);
}

#[test]
fn first_start_prints_an_admin_token_once_and_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), false, &[]);
    let line = s.stdout_lines.iter().find(|l| l.starts_with("admin token: ")).expect("admin token printed").clone();
    let token = line.trim_start_matches("admin token: ").to_string();
    assert_eq!(s.req("GET", "/v1/agents", Some(&token), None).0, 200);
    assert_eq!(s.req("PUT", "/v1/agents/alice/state", Some(&token), Some(r#"{"state":"away"}"#)).0, 200);
    let stored = std::fs::read_to_string(dir.path().join("data/admin-token.sha256")).unwrap();
    assert!(!stored.contains(&token), "only the hash is stored");
    let (st, cb) = s.req("POST", "/v1/callbacks", Some(&token), Some(r#"{"phone":"+15550400","queue":"support"}"#));
    assert_eq!(st, 201);
    assert!(s.stop().success(), "SIGTERM stops cleanly");
    s.spawn();
    assert!(!s.stdout_lines.iter().any(|l| l.starts_with("admin token")), "printed only once");
    let (st, again) = s.req("GET", &format!("/v1/callbacks/{}", cb["id"].as_str().unwrap()), Some(&token), None);
    assert_eq!((st, again), (200, cb));
}

/// Guessing API tokens is throttled per source like console sign-ins: after 20 wrong
/// tokens, even the right one gets 429 with Retry-After from that address.
#[test]
fn wrong_tokens_are_throttled_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);
    for i in 0..20 {
        assert_eq!(s.req("GET", "/v1/callbacks", Some(&format!("guess-{i}")), None).0, 401, "guess {i}");
    }
    let (status, body, headers) = s.req_h("GET", "/v1/callbacks", Some(RO), None, &[]);
    assert_eq!(status, 429, "{body}");
    assert!(headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("retry-after") && v.trim() == "300"), "{headers:?}");
    assert_eq!(s.req("GET", "/healthz", None, None).0, 200, "routes without a token still answer");
}
