//! Webhooks from the running binary: a callback created and cancelled
//! through the API reaches a real HTTP receiver as signed `callback.created`
//! and `callback.cancelled` events carrying the REST callback object.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::api::{in_secs, Server, RW};
use redial::webhooks::sign;
use serde_json::Value;

type Got = Arc<Mutex<Vec<(bool, Value)>>>;

async fn hook(State(got): State<Got>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = sign::verify("hook-secret", &body, sig);
    got.lock().unwrap().push((ok, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    StatusCode::OK
}

#[test]
fn changes_through_the_api_reach_the_receiver_signed() {
    let got: Got = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(got.clone());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), true, &[]);
    s.stop();
    let mut cfg = std::fs::read_to_string(&s.config).unwrap();
    cfg.push_str(&format!(
        "\n[[webhooks]]\nurl = \"http://{addr}/hook\"\nsecret = \"hook-secret\"\nevents = [\"callback.created\", \"callback.cancelled\"]\n"
    ));
    std::fs::write(&s.config, cfg).unwrap();
    s.spawn();

    let body = format!(r#"{{"phone":"+15550123","queue":"support","scheduled_at":"{}"}}"#, in_secs(3600));
    let (status, cb) = s.req("POST", "/v1/callbacks", Some(RW), Some(&body));
    assert_eq!(status, 201, "{cb}");
    let id = cb["id"].as_str().unwrap().to_string();
    let (status, _) = s.req("POST", &format!("/v1/callbacks/{id}/cancel"), Some(RW), None);
    assert_eq!(status, 200);

    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "webhooks: {:?}", got.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = got.lock().unwrap().clone();
    assert!(got.iter().all(|(signed, _)| *signed), "every delivery carries a valid signature");
    let types: Vec<&str> = got.iter().map(|(_, v)| v["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["callback.created", "callback.cancelled"]);
    assert_eq!(got[0].1["data"]["id"], id.as_str());
    assert_eq!(got[0].1["data"]["phone"], "+15550123");
    assert_eq!(got[1].1["data"]["status"], "cancelled");
    assert!(got[0].1["id"].as_str().unwrap().starts_with("evt_"));
    s.stop();
}
