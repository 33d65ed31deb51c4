//! Over real HTTP: free-text `when`, booking from a live call,
//! `skipped`, window-closed cancellation.
//!
//! The `when` tests run the real binary. The live-call, skip and window
//! tests start the API in this process (`start_api`) so they can pass a
//! [`LiveCalls`] of their own, call the `Book` as the inbound handler would,
//! and move a fake clock; they still talk HTTP to it over loopback.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::*;
use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use redial::api::{start_api, ApiServer, ConfiguredTrunks, LiveCall, LiveCalls};
use redial::clock::{Clock, FakeClock, Millis};
use redial::config::Config;
use serde_json::{json, Value};

fn ms(v: &Value) -> Millis {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().timestamp_millis()
}

fn err(v: &Value) -> (&str, Option<&str>) {
    (v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error: {v}")), v["error"]["field"].as_str())
}

/// `local` on the day after `from_ms`'s local date in `tz`, as UTC ms.
fn next_day_at(tz: chrono_tz::Tz, from_ms: Millis, h: u32, m: u32) -> Millis {
    let d = Utc.timestamp_millis_opt(from_ms).unwrap().with_timezone(&tz).date_naive() + Days::new(1);
    tz.from_local_datetime(&d.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap())).earliest().unwrap().timestamp_millis()
}

#[test]
fn when_resolves_persists_and_is_refused_with_scheduled_at() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), true, &[]);
    let post = |s: &Server, b: Value| s.req("POST", "/v1/callbacks", Some(RW), Some(&b.to_string()));

    // exact, relative: due = created + 2 h (support is always open, UTC).
    let (st, a) = post(&s, json!({"phone": "+15550601", "queue": "support", "when": "in 2 hours"}));
    assert_eq!(st, 201, "{a}");
    assert_eq!((a["when"].as_str(), a["when_resolution"].as_str()), (Some("in 2 hours"), Some("exact")));
    assert_eq!(ms(&a["due_at"]) - ms(&a["created_at"]), 2 * 3_600_000);
    assert_eq!(a["scheduled_at"], a["due_at"], "scheduled_at is the resolved time");

    // exact clock time in the request's timezone: tomorrow 15:00 New York.
    let (st, b) = post(&s, json!({"phone": "+15550602", "queue": "support", "when": "tomorrow at 3pm", "timezone": "America/New_York"}));
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["when_resolution"], "exact");
    assert_eq!(ms(&b["due_at"]), next_day_at(chrono_tz::America::New_York, ms(&b["created_at"]), 15, 0));

    // approximate daypart (Hinglish): tomorrow 10:00 Kolkata.
    let (st, c) = post(&s, json!({"phone": "+15550603", "queue": "support", "when": "kal subah", "timezone": "Asia/Kolkata"}));
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["when_resolution"], "approximate");
    assert_eq!(ms(&c["due_at"]), next_day_at(chrono_tz::Asia::Kolkata, ms(&c["created_at"]), 10, 0));

    // fallback: nothing usable = now + the queue's retry_delay (10 min).
    let (st, d) = post(&s, json!({"phone": "+15550604", "queue": "support", "when": "later, busy now"}));
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["when_resolution"], "fallback");
    assert_eq!(ms(&d["due_at"]) - ms(&d["created_at"]), 600_000);

    // Clipped to the window: sales is mon-fri 09:00-17:00 New York.
    let (st, e) = post(&s, json!({"phone": "+15550605", "queue": "sales", "when": "in 5 minutes"}));
    assert_eq!(st, 201, "{e}");
    let hours = redial::scheduler::window::WeeklyHours::parse(&["mon-fri 09:00-17:00"]).unwrap();
    let due = ms(&e["due_at"]);
    assert!(redial::scheduler::window::is_open(&hours, chrono_tz::America::New_York, due), "{e}");
    assert!(due >= ms(&e["created_at"]) + 5 * 60_000);

    // Without `when` both fields are null.
    let (st, f) = post(&s, json!({"phone": "+15550606", "queue": "support", "scheduled_at": in_secs(3600)}));
    assert_eq!(st, 201);
    assert_eq!((&f["when"], &f["when_resolution"], &f["end_reason"], &f["skipped_by"]), (&Value::Null, &Value::Null, &Value::Null, &Value::Null));

    // Refusals name `when`.
    for (body, want) in [
        (json!({"phone": "+15550607", "queue": "support", "when": "in 1 hour", "scheduled_at": in_secs(7200)}), ("conflicting_fields", Some("when"))),
        (json!({"phone": "+15550607", "queue": "support", "when": "in 45 days"}), ("too_late", Some("when"))),
        (json!({"phone": "+15550607", "queue": "support", "when": "  "}), ("invalid_when", Some("when"))),
        (json!({"phone": "+15550607", "queue": "support", "when": "x".repeat(201)}), ("too_long", Some("when"))),
        (json!({"phone": "+15550607", "queue": "support", "when": "in 1 hour", "timezone": "Mars/Base"}), ("unknown_timezone", Some("timezone"))),
    ] {
        let (st, v) = post(&s, body.clone());
        assert_eq!((st, err(&v)), (422, want), "{body}");
    }
    let (st, v) = post(&s, json!({"phone": "+15550607", "queue": "support", "when": 5}));
    assert_eq!((st, err(&v)), (400, ("invalid_field", Some("when"))));

    // Persisted: the same after a restart.
    s.stop();
    s.spawn();
    for cb in [&a, &b, &c, &d, &e, &f] {
        let (st, got) = s.req("GET", &format!("/v1/callbacks/{}", cb["id"].as_str().unwrap()), Some(RO), None);
        assert_eq!((st, &got), (200, cb));
    }

    // The OpenAPI document describes the new fields.
    let (_, doc) = s.req("GET", "/v1/openapi.json", Some(RO), None);
    let props = &doc["components"]["schemas"]["CallbackView"]["properties"];
    for k in ["when", "when_resolution", "end_reason", "skipped_by"] {
        assert!(props.get(k).is_some(), "CallbackView.{k}");
    }
    assert!(doc["components"]["schemas"]["AttemptView"]["properties"].get("timeline").is_some());
    assert!(doc["components"]["schemas"]["StatsView"]["properties"].get("skipped").is_some());
}

/// Live calls by interaction id, set by the test.
#[derive(Default)]
struct Calls(std::sync::Mutex<HashMap<String, LiveCall>>);

impl LiveCalls for Calls {
    fn lookup(&self, id: &str) -> Option<LiveCall> {
        self.0.lock().unwrap().get(id).cloned()
    }
}

/// 2026-03-02 12:00:00 UTC, a Monday.
const MONDAY_NOON: Millis = 1_772_452_800_000;

/// The API in this process on a fake clock, with `single` (UTC, 09:00-13:00,
/// `window_close = "cancel"`) added to the usual test queues.
struct InProcess {
    rt: tokio::runtime::Runtime,
    api: Option<ApiServer>,
    clock: FakeClock,
    calls: Arc<Calls>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("sip-profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let mut toml = config(&dir.path().join("data/redial.redb"), &profiles, true);
        toml += "\n[[queues]]\nname = \"single\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 09:00-13:00\"]\nwindow_close = \"cancel\"\n";
        let path = dir.path().join("redial.toml");
        std::fs::write(&path, toml).unwrap();
        let cfg = Arc::new(Config::load(Some(&path)).expect("config"));
        let clock = FakeClock::new(MONDAY_NOON);
        let calls = Arc::new(Calls::default());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let trunks = Arc::new(ConfiguredTrunks::new(&cfg));
        let api = rt
            .block_on(start_api(cfg, Arc::new(clock.clone()) as Arc<dyn Clock>, trunks, calls.clone() as Arc<dyn LiveCalls>))
            .expect("start");
        InProcess { rt, api: Some(api), clock, calls, _dir: dir }
    }

    fn port(&self) -> u16 {
        self.api.as_ref().unwrap().addr.port()
    }

    fn req(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string());
        request(self.port(), method, path, Some(RW), b.as_deref(), &[]).unwrap()
    }

    fn live(&self, id: &str, phone: &str, queue: &str, agent: Option<&str>) {
        let call = LiveCall { phone: phone.into(), queue: queue.into(), agent: agent.map(str::to_string) };
        self.calls.0.lock().unwrap().insert(id.into(), call);
    }

    /// Polls `GET` until `pred` holds (the driver acts on its own schedule).
    fn wait_for(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, v) = self.req("GET", &format!("/v1/callbacks/{id}"), None);
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out; last {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            self.rt.block_on(api.shutdown());
        }
    }
}

#[test]
fn booking_from_a_live_call() {
    let p = InProcess::start();
    p.live("call-1", "+15550701", "support", Some("alice"));
    p.live("ivr-1", "+15550702", "support", None);

    // Defaults from the call: phone, queue, owner "me" = its agent, origin
    // agent, due in 30 min.
    let (st, a) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "call-1", "owner": "me", "notes": "wants a manager"})));
    assert_eq!(st, 201, "{a}");
    assert_eq!((a["phone"].as_str(), a["queue"].as_str(), a["owner"].as_str(), a["origin"].as_str()), (Some("+15550701"), Some("support"), Some("alice"), Some("agent")));
    assert_eq!(ms(&a["due_at"]), MONDAY_NOON + 30 * 60_000);
    assert_eq!(ms(&a["created_at"]), MONDAY_NOON);
    assert_eq!(a["interaction_id"], "call-1");

    // One active callback per interaction, even for another number.
    let (st, e) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "call-1", "phone": "+15550799", "when": "tomorrow"})));
    assert_eq!((st, err(&e)), (409, ("duplicate", Some("interaction_id"))));
    assert_eq!(e["error"]["existing_id"], a["id"]);

    // No agent on the call: "me" is refused; origin inbound; `when` still applies.
    let (st, e) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "ivr-1", "owner": "me"})));
    assert_eq!((st, err(&e)), (422, ("unknown_owner", Some("owner"))));
    let (st, b) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "ivr-1", "when": "in 2 hours"})));
    assert_eq!(st, 201, "{b}");
    assert_eq!((b["origin"].as_str(), b["owner"].as_str(), b["when_resolution"].as_str()), (Some("inbound"), None, Some("exact")));
    assert_eq!(ms(&b["due_at"]), MONDAY_NOON + 2 * 3_600_000);
    // Explicit fields win over the call's.
    p.live("call-2", "+15550703", "support", Some("alice"));
    let at = MONDAY_NOON + 3 * 3_600_000;
    let (st, c) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "call-2", "phone": "+15550704", "scheduled_at": redial::api::views::rfc3339(at)})));
    assert_eq!(st, 201, "{c}");
    assert_eq!((c["phone"].as_str(), ms(&c["due_at"]), c["owner"].as_str()), (Some("+15550704"), at, None));

    // An interaction id that names no live call is just stored: no
    // defaults (phone required), no uniqueness, and "me" is no agent.
    let (st, e) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "crm-9", "queue": "support"})));
    assert_eq!((st, err(&e)), (400, ("invalid_field", Some("phone"))));
    for phone in ["+15550705", "+15550706"] {
        let (st, v) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "crm-9", "phone": phone, "queue": "support"})));
        assert_eq!((st, v["origin"].as_str()), (201, Some("api")), "{v}");
    }
    let (st, e) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "crm-9", "phone": "+15550707", "queue": "support", "owner": "me"})));
    assert_eq!((st, err(&e)), (422, ("unknown_owner", Some("owner"))));

    // Once the first ends, the call may book again.
    let id = a["id"].as_str().unwrap();
    assert_eq!(p.req("POST", &format!("/v1/callbacks/{id}/cancel"), None).0, 200);
    let (st, again) = p.req("POST", "/v1/callbacks", Some(json!({"interaction_id": "call-1", "owner": "me"})));
    assert_eq!(st, 201, "{again}");
}

#[test]
fn skipped_when_the_customer_reached_an_agent() {
    let p = InProcess::start();
    let (st, a) = p.req("POST", "/v1/callbacks", Some(json!({"phone": "+15550801", "queue": "support", "when": "in 1 hour"})));
    assert_eq!(st, 201, "{a}");
    let id = a["id"].as_str().unwrap();
    let book = p.api.as_ref().unwrap().book();
    assert_eq!(p.rt.block_on(book.find_active("+15550801", "support")).unwrap().map(|c| c.id.to_string()).as_deref(), Some(id));

    // What the inbound handler does when the customer reaches an agent.
    p.clock.advance(60_000);
    let skipped = p.rt.block_on(book.skip_reached("+15550801", "support", "inb-77")).unwrap().expect("a scheduled callback");
    assert_eq!(skipped.id.to_string(), id);
    let (st, v) = p.req("GET", &format!("/v1/callbacks/{id}"), None);
    assert_eq!(st, 200);
    assert_eq!((v["status"].as_str(), v["end_reason"].as_str(), v["skipped_by"].as_str()), (Some("skipped"), Some("reached"), Some("inb-77")));
    assert_eq!(ms(&v["updated_at"]), MONDAY_NOON + 60_000);
    assert_eq!(p.rt.block_on(book.skip_reached("+15550801", "support", "inb-78")).unwrap(), None);

    // Final: no cancel, no change; counted; listed by status; phone free again.
    assert_eq!(err(&p.req("POST", &format!("/v1/callbacks/{id}/cancel"), None).1).0, "wrong_state");
    let (_, stats) = p.req("GET", "/v1/stats?queue=support", None);
    assert_eq!((stats["skipped"].as_u64(), stats["pending"].as_u64()), (Some(1), Some(0)), "{stats}");
    let (_, page) = p.req("GET", "/v1/callbacks?status=skipped", None);
    assert_eq!(page["items"][0]["id"].as_str(), Some(id));
    let (_, m) = p.req("GET", "/metrics", None);
    assert!(m.as_str().unwrap().contains("redial_callbacks{queue=\"support\",status=\"skipped\"} 1"), "{m}");
    assert_eq!(p.req("POST", "/v1/callbacks", Some(json!({"phone": "+15550801", "queue": "support"}))).0, 201);
}

#[test]
fn window_close_cancel_ends_waiting_callbacks() {
    let p = InProcess::start();
    // Due at 12:05 inside 09:00-13:00; nobody is registered, so it waits.
    let (st, a) = p.req("POST", "/v1/callbacks", Some(json!({"phone": "+15550901", "queue": "single", "when": "in 5 minutes"})));
    assert_eq!(st, 201, "{a}");
    assert_eq!(ms(&a["due_at"]), MONDAY_NOON + 5 * 60_000);
    // A callback of a queue that carries (sales, opening at 14:00 UTC) is untouched.
    let (st, carry) = p.req("POST", "/v1/callbacks", Some(json!({"phone": "+15550902", "queue": "sales", "when": "in 5 minutes"})));
    assert_eq!(st, 201, "{carry}");
    let id = a["id"].as_str().unwrap();
    let book = p.api.as_ref().unwrap().book();

    p.clock.advance(6 * 60_000);
    let deadline = Instant::now() + Duration::from_secs(15);
    while book.waiting_for_agent() == 0 {
        assert!(Instant::now() < deadline, "never became due");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.req("GET", &format!("/v1/callbacks/{id}"), None).1["status"], "scheduled");

    // 13:00:30: the window has closed.
    p.clock.set(MONDAY_NOON + 3_600_000 + 30_000);
    let v = p.wait_for(id, |v| v["status"] != "scheduled");
    assert_eq!((v["status"].as_str(), v["end_reason"].as_str(), v["attempts"].as_u64()), (Some("cancelled"), Some("window_closed"), Some(0)), "{v}");
    let c = p.req("GET", &format!("/v1/callbacks/{}", carry["id"].as_str().unwrap()), None).1;
    assert_eq!((c["status"].as_str(), &c["end_reason"]), (Some("scheduled"), &Value::Null));
}
