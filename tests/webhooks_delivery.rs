//! Webhook delivery against a real HTTP receiver on loopback: signatures,
//! order, retries after 500s and a receiver that is away for a while.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use redial::clock::SystemClock;
use redial::config::{EventFilter, Webhook};
use redial::events::{Bus, Kind, Payload};
use redial::sip::endpoint::TrunkStatus;
use redial::webhooks::{self, sign};
use serde_json::{json, Value};

#[derive(Default)]
struct Receiver {
    /// Answers 500 to this many requests first.
    fail_first: usize,
    seen: usize,
    /// Verified bodies, in arrival order.
    got: Vec<Value>,
}

async fn hook(State(r): State<Arc<Mutex<Receiver>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(sign::verify("s3cret", &body, sig), "bad signature on {}", String::from_utf8_lossy(&body));
    let mut r = r.lock().unwrap();
    r.seen += 1;
    if r.seen <= r.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.got.push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

fn trunk(name: &str) -> Payload {
    Payload::Trunk(Box::new(TrunkStatus { name: name.into(), register: false, registered: true, expires_at: None, up: true, last_error: None }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_in_order_after_the_receiver_recovers() {
    let state = Arc::new(Mutex::new(Receiver { fail_first: 2, ..Default::default() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", post(hook)).with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let bus = Bus::new();
    let hooks = vec![Webhook {
        url: format!("http://{addr}/hook"),
        secret: "s3cret".into(),
        events: EventFilter::Only([Kind::TrunkState.name()].into_iter().collect()),
    }];
    let render: webhooks::Render = Arc::new(|ev| match &ev.payload {
        Payload::Trunk(t) => json!({ "name": t.name }),
        _ => Value::Null,
    });
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let tasks = webhooks::driver::spawn(&hooks, &bus, render, Arc::new(SystemClock), stop);
    for i in 0..5 {
        bus.publish(Kind::TrunkState, 1_700_000_000_000 + i, trunk(&format!("t{i}")));
        // Not wanted by the filter: never sent.
        bus.publish(Kind::AgentState, 0, trunk("agent"));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if state.lock().unwrap().got.len() == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} of 5 delivered", state.lock().unwrap().got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = state.lock().unwrap();
    let names: Vec<&str> = r.got.iter().map(|v| v["data"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(r.seen, 7, "two 500s, then one request per event");
    assert_eq!(r.got[0]["type"], "trunk.state");
    assert_eq!(r.got[0]["id"], "evt_1");
    assert_eq!(r.got[0]["at"], "2023-11-14T22:13:20.000Z");
    let ids: Vec<&str> = r.got.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["evt_1", "evt_3", "evt_5", "evt_7", "evt_9"]);
    drop(r);
    for t in tasks {
        t.abort();
    }
}
