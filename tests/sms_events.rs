//! Texts on events through the trunk, against SIPp as the carrier: a booking
//! on a queue with `sms_confirm` sends a MESSAGE (Request-URI, From and the
//! filled template checked by SIPp) that is challenged (407) and then
//! accepted (202); a carrier answering 503 leaves the text recorded as
//! failed. Each text is recorded on the callback and returned by GET.

mod common;

use std::time::{Duration, Instant};

use chrono::{Duration as Days, Timelike, Utc};
use common::{api::request, Setup, Sipp};
use serde_json::{json, Value};

const TOKEN: &str = "sms-test-token";

fn setup(carrier_port: u16) -> common::Redial {
    Setup::new()
        .profile(
            "carrier1",
            &format!("proxy = \"sip:127.0.0.1:{carrier_port}\"\ndomain = \"carrier.test\"\nregister = false\noptions_ping = \"0\"\nusername = \"trunk1\"\npassword = \"s3cret\"\n"),
        )
        .extra_toml(
            "[[tokens]]\nname = \"crm\"\nsecret = \"sms-test-token\"\nscopes = [\"admin\"]\n\n[[queues]]\nname = \"support\"\nprofile = \"carrier1\"\ncaller_id = \"+15550100\"\n\
             sms_confirm = \"Booked: {queue} will call {phone} at {when}. Reply STOP to cancel.\"\n",
        )
        .start()
}

/// Tomorrow 10:00 UTC (11:00 in Paris in winter, 12:00 in summer).
fn tomorrow_ten() -> String {
    let t = (Utc::now() + Days::days(1)).with_hour(10).unwrap().with_minute(0).unwrap().with_second(0).unwrap();
    t.to_rfc3339()
}

fn book(r: &common::Redial) -> String {
    let body = json!({"phone": "+15551234567", "queue": "support", "scheduled_at": tomorrow_ten(), "timezone": "Europe/Paris"}).to_string();
    let (st, cb) = request(r.http.port(), "POST", "/v1/callbacks", Some(TOKEN), Some(&body), &[]).unwrap();
    assert_eq!(st, 201, "{cb}");
    cb["id"].as_str().unwrap().to_string()
}

fn texts_of(r: &common::Redial, id: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, cb) = request(r.http.port(), "GET", &format!("/v1/callbacks/{id}"), Some(TOKEN), None, &[]).unwrap();
        assert_eq!(st, 200, "{cb}");
        if cb["texts"].as_array().is_some_and(|t| t.len() >= n) {
            return cb["texts"].clone();
        }
        assert!(Instant::now() < deadline, "no text recorded: {cb}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_booking_texts_a_confirmation_through_the_trunk() {
    let carrier = Sipp::new("sms_carrier_confirm.xml").timeout(Duration::from_secs(30)).trace_msg().spawn();
    let r = setup(carrier.port());
    let id = book(&r);
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
    assert_eq!(out.received("MESSAGE "), 2, "{}", out.messages);
    let texts = texts_of(&r, &id, 1);
    let t = &texts[0];
    assert_eq!((t["purpose"].as_str(), t["status"].as_str(), t["sip_status"].as_u64()), (Some("confirm"), Some("sent"), Some(202)), "{texts}");
    assert_eq!(t["to"], "+15551234567");
    assert!(t["text"].as_str().unwrap().starts_with("Booked: support will call +15551234567 at "), "{t}");
    assert!(t["text"].as_str().unwrap().contains(" CET"), "{{when}} is in the customer's timezone: {t}");
}

#[test]
fn a_carrier_refusing_the_text_leaves_it_recorded_as_failed() {
    let carrier = Sipp::new("sms_carrier_unavailable.xml").timeout(Duration::from_secs(30)).trace_msg().spawn();
    let r = setup(carrier.port());
    let id = book(&r);
    let out = carrier.wait();
    assert!(out.ok(), "{out}");
    let texts = texts_of(&r, &id, 1);
    assert_eq!((texts[0]["status"].as_str(), texts[0]["sip_status"].as_u64()), (Some("failed"), Some(503)), "{texts}");
}
