//! Webhook delivery from the durable outbox against a real HTTP receiver on
//! loopback: signatures, order, retries after 500s, the endpoint's filter,
//! a new endpoint starting from now, resumption after a restart from the
//! saved cursor without repeats, and a failing head's back-off kept across
//! a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use redial::clock::SystemClock;
use redial::config::{Config, EventFilter, Webhook};
use redial::events::{Bus, Kind, Outbox, Payload};
use redial::scheduler::store::{BookOptions, RedbBook};
use redial::sip::endpoint::TrunkStatus;
use redial::webhooks::{self, sign};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Receiver {
    /// Answers 500 to this many requests first.
    fail_first: usize,
    seen: usize,
    /// When each request arrived, failed ones included.
    arrivals: Vec<std::time::Instant>,
    /// Verified bodies, in arrival order.
    got: Vec<Value>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn hook(State(r): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(sign::verify("s3cret", &body, sig), "bad signature on {}", String::from_utf8_lossy(&body));
    let mut r = r.lock().unwrap();
    r.seen += 1;
    r.arrivals.push(std::time::Instant::now());
    if r.seen <= r.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.got.push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

fn trunk(name: &str) -> Payload {
    Payload::Trunk(Box::new(TrunkStatus { name: name.into(), register: false, registered: true, expires_at: None, up: true, last_error: None }))
}

async fn receiver(fail_first: usize) -> (Shared, String) {
    let state = Arc::new(Mutex::new(Receiver { fail_first, ..Default::default() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", post(hook)).with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, format!("http://{addr}/hook"))
}

fn hooks(url: &str) -> Vec<Webhook> {
    vec![Webhook { url: url.into(), secret: "s3cret".into(), events: EventFilter::Only([Kind::TrunkState.name()].into_iter().collect()) }]
}

fn open(path: &std::path::Path, bus: &Arc<Bus>) -> Arc<RedbBook> {
    let opts = BookOptions { bus: Some(bus.clone()), ..BookOptions::default() };
    Arc::new(RedbBook::open(path, Arc::new(SystemClock), Arc::new(Config::defaults()), opts).unwrap())
}

/// The webhook tasks of `url` delivering from `book`, once they have read
/// their cursor (the events published after that are theirs).
async fn deliver(book: &Arc<RedbBook>, bus: &Bus, url: &str) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
    let (stop_tx, stop) = watch::channel(false);
    let tasks = webhooks::driver::spawn(&hooks(url), book.clone(), bus, render(), Arc::new(SystemClock), stop);
    while book.cursor(url).await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (stop_tx, tasks)
}

/// A clean stop: the tasks save their cursors and end, the book is flushed.
async fn stop(book: &RedbBook, (stop_tx, tasks): (watch::Sender<bool>, Vec<JoinHandle<()>>)) {
    let _ = stop_tx.send(true);
    for t in tasks {
        t.await.unwrap();
    }
    redial::scheduler::book::Book::flush(book).await;
}

fn render() -> webhooks::Render {
    Arc::new(|ev| match &ev.payload {
        Payload::Trunk(t) => json!({ "name": t.name }),
        _ => Value::Null,
    })
}

async fn wait_for(state: &Shared, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while state.lock().unwrap().got.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} delivered", state.lock().unwrap().got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(state: &Shared) -> Vec<String> {
    state.lock().unwrap().got.iter().map(|v| v["data"]["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_in_order_after_the_receiver_recovers() {
    let (state, url) = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(Bus::new());
    let book = open(&dir.path().join("b.redb"), &bus);
    // Committed before the endpoint ever ran: a new endpoint starts from now.
    book.publish(Kind::TrunkState, 0, trunk("before"));
    redial::scheduler::book::Book::flush(&*book).await;

    let running = deliver(&book, &bus, &url).await;
    for i in 0..5 {
        book.publish(Kind::TrunkState, 1_700_000_000_000 + i, trunk(&format!("t{i}")));
        // Not wanted by the filter: never sent.
        book.publish(Kind::AgentState, 0, trunk("agent"));
    }
    wait_for(&state, 5).await;
    assert_eq!(names(&state), ["t0", "t1", "t2", "t3", "t4"]);
    {
        let r = state.lock().unwrap();
        assert_eq!(r.seen, 7, "two 500s, then one request per event");
        assert_eq!(r.got[0]["type"], "trunk.state");
        assert_eq!(r.got[0]["at"], "2023-11-14T22:13:20.000Z");
        let ids: Vec<&str> = r.got.iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["evt_2", "evt_4", "evt_6", "evt_8", "evt_10"], "ids are the outbox's sequences");
    }
    stop(&book, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_a_restart_from_the_saved_cursor() {
    let (state, url) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.redb");
    let bus = Arc::new(Bus::new());
    let book = open(&path, &bus);
    let running = deliver(&book, &bus, &url).await;
    for i in 0..3 {
        book.publish(Kind::TrunkState, i, trunk(&format!("a{i}")));
    }
    wait_for(&state, 3).await;
    // A clean stop saves the cursor; the book then closes.
    stop(&book, running).await;
    drop(book);

    // Committed while no webhook task ran.
    let bus = Arc::new(Bus::new());
    let book = open(&path, &bus);
    for i in 0..3 {
        book.publish(Kind::TrunkState, i, trunk(&format!("b{i}")));
    }
    redial::scheduler::book::Book::flush(&*book).await;
    assert_eq!(book.next_seq().await.unwrap(), 7, "sequences continue across the reopen");
    let _running = deliver(&book, &bus, &url).await;
    book.publish(Kind::TrunkState, 9, trunk("c0"));
    wait_for(&state, 7).await;
    assert_eq!(names(&state), ["a0", "a1", "a2", "b0", "b1", "b2", "c0"], "each once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_heads_back_off_survives_a_restart() {
    let (state, url) = receiver(3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.redb");
    let bus = Arc::new(Bus::new());
    let book = open(&path, &bus);
    let running = deliver(&book, &bus, &url).await;
    book.publish(Kind::TrunkState, 0, trunk("held"));
    // Three 500s: tried at once, then after about 1 s and 2 s; the next try
    // is due about 4 s (±20 %) after the third failure.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while state.lock().unwrap().seen < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the receiver saw {} tries", state.lock().unwrap().seen);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let third = state.lock().unwrap().arrivals[2];
    // The receiver counts a try when it arrives; the deliverer records the failure when
    // the 500 is back. Stopping in between would lose the third failure, so wait for it.
    while book.backoff(&url).await.unwrap().map_or(0, |b| b.failures) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the third failure never reached the book");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop(&book, running).await;
    let saved = book.backoff(&url).await.unwrap().expect("the back-off is in the book");
    assert_eq!((saved.seq, saved.failures, saved.last_error.contains("500")), (1, 3, true), "{saved:?}");
    drop(book);

    // A new process: the head waits out the rest of its delay instead of
    // being tried at once.
    let bus = Arc::new(Bus::new());
    let book = open(&path, &bus);
    let _running = deliver(&book, &bus, &url).await;
    wait_for(&state, 1).await;
    let fourth = state.lock().unwrap().arrivals[3];
    assert!(fourth.duration_since(third) >= Duration::from_millis(3_000), "retried {:?} after the third failure", fourth.duration_since(third));
    assert_eq!(names(&state), ["held"]);
    // Delivered: the back-off is cleared.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while book.backoff(&url).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "back-off never cleared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
