//! Webhook figures: deliveries per second from the durable outbox to local
//! receivers (1 and 10 endpoints), and the lag from an event's commit to its
//! arrival at the receiver, p50/p99. Events are committed by the book's
//! writer (group commit) as fast as it takes them; each endpoint gets every
//! event, in order, one request at a time.
//!
//! `cargo bench --bench webhooks [-- EVENTS]` (default 5,000 per run).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use redial::clock::{Clock, SystemClock};
use redial::config::{Config, EventFilter, Webhook};
use redial::events::{Bus, Kind, Outbox, Payload};
use redial::scheduler::store::{BookOptions, RedbBook};
use redial::sip::endpoint::TrunkStatus;
use redial::webhooks;

/// Per receiver: commit→arrival lag of each event, ms.
type Lags = Arc<Mutex<Vec<i64>>>;

async fn hook(State(lags): State<Lags>, body: Bytes) -> StatusCode {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let at = v["data"]["at"].as_i64().unwrap_or(0);
    lags.lock().unwrap().push(SystemClock.now_ms() - at);
    StatusCode::NO_CONTENT
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(endpoints: usize, events: usize) {
    let mut hooks = Vec::new();
    let mut all = Vec::new();
    for _ in 0..endpoints {
        let lags: Lags = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(lags.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        hooks.push(Webhook { url: format!("http://{addr}/hook"), secret: "bench".into(), events: EventFilter::All });
        all.push(lags);
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(Bus::new());
    let opts = BookOptions { bus: Some(bus.clone()), ..BookOptions::default() };
    let book = Arc::new(RedbBook::open(dir.path().join("b.redb"), Arc::new(SystemClock), Arc::new(Config::defaults()), opts).unwrap());
    // The body carries the commit time (the event's `at`) for the lag.
    let render: webhooks::Render = Arc::new(|ev| serde_json::json!({ "at": ev.at }));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let _tasks = webhooks::driver::spawn(&hooks, book.clone(), &bus, render, Arc::new(SystemClock), stop);
    for h in &hooks {
        while book.cursor(&h.url).await.unwrap().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let start = Instant::now();
    for _ in 0..events {
        let t = TrunkStatus { name: "t".into(), register: false, registered: true, expires_at: None, up: true, last_error: None };
        book.publish(Kind::TrunkState, SystemClock.now_ms(), Payload::Trunk(Box::new(t)));
    }
    let want = events * endpoints;
    loop {
        let got: usize = all.iter().map(|l| l.lock().unwrap().len()).sum();
        if got >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lags: Vec<i64> = all.iter().flat_map(|l| l.lock().unwrap().clone()).collect();
    lags.sort_unstable();
    println!(
        "{endpoints:>2} endpoint(s), {events} events each: {:.0} deliveries/s ({want} in {secs:.2} s); commit→delivery lag p50 {} ms, p99 {} ms",
        want as f64 / secs,
        pct(&lags, 0.5),
        pct(&lags, 0.99)
    );
}

fn main() {
    let events = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(1, events));
    rt.block_on(run(10, events));
}
