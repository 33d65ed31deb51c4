//! Webhooks and server-sent events from the durable outbox, across a
//! SIGKILL: a real HTTP receiver verifies every signature, answers 500 to
//! the first deliveries, then disappears (connections cut) while redial is
//! killed and restarted; once it is back, every acknowledged change has
//! arrived at least once, in order per callback, and after de-duplication by
//! event id exactly once. `GET /v1/events` with `Last-Event-ID` replays what
//! a reconnecting client missed, across the restart too.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::api::{in_secs, sse, Server, Sse, ADMIN, RO, RW};
use redial::webhooks::sign;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const SECRET: &str = "crash-hook-secret";

#[derive(Default)]
struct Receiver {
    /// Answers 500 to this many requests first.
    fail_first: usize,
    seen: usize,
    /// (signature valid, body) of every 2xx-answered request, in arrival order.
    got: Vec<(bool, Value)>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn hook(State(r): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = sign::verify(SECRET, &body, sig);
    let mut r = r.lock().unwrap();
    r.seen += 1;
    if r.seen <= r.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.got.push((ok, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    StatusCode::NO_CONTENT
}

/// A connection the receiver cuts (reads end, writes fail) while `away` is set:
/// from redial's side the receiver has disappeared, while the port stays
/// ours for its return.
struct Cut {
    inner: tokio::net::TcpStream,
    away: Arc<AtomicBool>,
}

impl AsyncRead for Cut {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.away.load(Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Cut {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.away.load(Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts connections; while `away`, closes each at once.
struct Flaky {
    listener: tokio::net::TcpListener,
    away: Arc<AtomicBool>,
    /// Connections closed unanswered.
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Flaky {
    type Io = Cut;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Cut, std::net::SocketAddr) {
        loop {
            let Ok((s, a)) = self.listener.accept().await else { continue };
            if self.away.load(Ordering::SeqCst) {
                drop(s);
                self.refused.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            return (Cut { inner: s, away: self.away.clone() }, a);
        }
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The changes the API acknowledged, per callback, in order.
type Expected = BTreeMap<String, Vec<&'static str>>;

/// Creates `n` callbacks; reschedules every second one and cancels every third.
fn changes(s: &Server, n: usize, first_phone: usize, expected: &mut Expected) {
    for i in 0..n {
        let phone = format!("+1555010{:04}", first_phone + i);
        let body = json!({"phone": phone, "queue": "support", "scheduled_at": in_secs(3600)}).to_string();
        let (st, cb) = s.req("POST", "/v1/callbacks", Some(RW), Some(&body));
        assert_eq!(st, 201, "{cb}");
        let id = cb["id"].as_str().unwrap().to_string();
        let mut kinds = vec!["callback.created"];
        if i % 2 == 0 {
            let (st, v) = s.req("PATCH", &format!("/v1/callbacks/{id}"), Some(RW), Some(&json!({"scheduled_at": in_secs(7200)}).to_string()));
            assert_eq!(st, 200, "{v}");
            kinds.push("callback.updated");
        }
        if i % 3 == 0 {
            let (st, v) = s.req("POST", &format!("/v1/callbacks/{id}/cancel"), Some(RW), None);
            assert_eq!(st, 200, "{v}");
            kinds.push("callback.cancelled");
        }
        expected.insert(id, kinds);
    }
}

fn with_webhook(s: &mut Server, url: &str) {
    s.stop();
    let mut cfg = std::fs::read_to_string(&s.config).unwrap();
    cfg.push_str(&format!("\n[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = [\"callback.created\", \"callback.updated\", \"callback.cancelled\"]\n"));
    std::fs::write(&s.config, cfg).unwrap();
    s.spawn();
}

#[test]
fn every_change_reaches_a_flaky_receiver_across_a_sigkill() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let state: Shared = Arc::new(Mutex::new(Receiver { fail_first: 3, ..Default::default() }));
    let away = Arc::new(AtomicBool::new(false));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(state.clone());
    let refused = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky { listener, away: away.clone(), refused: refused.clone() };
    rt.spawn(async move { axum::serve(flaky, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), true, &[]);
    with_webhook(&mut s, &format!("http://{addr}/hook"));

    let mut expected = Expected::new();
    // Phase 1: the receiver answers 500 to the first three, then takes them.
    changes(&s, 12, 0, &mut expected);
    wait_until("the first deliveries", Duration::from_secs(60), || state.lock().unwrap().got.len() >= 5);
    // Phase 2: the receiver disappears; more changes; redial is killed.
    away.store(true, Ordering::SeqCst);
    changes(&s, 12, 100, &mut expected);
    s.kill();
    // Phase 3: restarted (the receiver still away), more changes; then it returns.
    let refused_before = refused.load(Ordering::SeqCst);
    s.spawn();
    changes(&s, 6, 200, &mut expected);
    // The restarted redial has found the receiver gone at least once.
    wait_until("a delivery try after the restart", Duration::from_secs(60), || refused.load(Ordering::SeqCst) > refused_before);
    away.store(false, Ordering::SeqCst);

    let want: usize = expected.values().map(Vec::len).sum();
    let distinct = |r: &Receiver| r.got.iter().map(|(_, v)| v["id"].as_str().unwrap_or("").to_string()).collect::<HashSet<_>>().len();
    wait_until("every event after the receiver's return", Duration::from_secs(90), || distinct(&state.lock().unwrap()) >= want);

    let r = state.lock().unwrap();
    assert!(r.seen >= want + 3, "the first three answers were 500s and were retried");
    assert!(r.got.iter().all(|(ok, _)| *ok), "every delivery carries a valid signature");
    // De-duplicated by event id, in arrival order.
    let mut seen_ids = HashSet::new();
    let mut per_callback: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (_, v) in &r.got {
        let id = v["id"].as_str().unwrap().to_string();
        let seq: u64 = id.strip_prefix("evt_").unwrap().parse().unwrap();
        let first_time = seen_ids.insert(id.clone());
        let cb = v["data"]["id"].as_str().unwrap().to_string();
        let list = per_callback.entry(cb.clone()).or_default();
        if first_time {
            list.push((seq, v["type"].as_str().unwrap().to_string()));
        } else {
            // A repeat carries the same event, and never comes after a later one
            // of the same callback was already taken as new... it is simply dropped.
            assert!(list.iter().any(|(s, _)| *s == seq), "a repeated id is the same callback's event");
        }
    }
    assert_eq!(per_callback.len(), expected.len(), "events for exactly the acknowledged callbacks");
    for (cb, kinds) in &expected {
        let got = &per_callback[cb];
        let types: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(&types, kinds, "callback {cb}: each change once, in order");
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "callback {cb}: sequences increase: {got:?}");
    }
    drop(r);

    // Nothing was parked (a day of failures had not passed), and the metric says so.
    let (st, list) = s.req("GET", "/v1/webhooks/deliveries?status=failed", Some(ADMIN), None);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"], json!([]));
    let (st, _) = s.req("GET", "/v1/webhooks/deliveries", Some(RW), None);
    assert_eq!(st, 403, "parked deliveries are for admins");
    let (st, e) = s.req("GET", "/v1/webhooks/deliveries?status=delivered", Some(ADMIN), None);
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("invalid_status")));
    let (st, e) = s.req("POST", "/v1/webhooks/deliveries/dlv_999/retry", Some(ADMIN), None);
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")));
    s.stop();
}

fn callback_events(evs: &Sse) -> Vec<(u64, String)> {
    evs.iter().filter(|(_, e, _)| e == "callback").map(|(i, _, d)| (*i, d["id"].as_str().unwrap_or("").to_string())).collect()
}

#[test]
fn last_event_id_resumes_from_the_outbox_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), true, &[]);
    let mut ids = Vec::new();
    for i in 0..4 {
        let body = json!({"phone": format!("+1555020{i:04}"), "queue": "support", "scheduled_at": in_secs(3600)}).to_string();
        let (st, cb) = s.req("POST", "/v1/callbacks", Some(RW), Some(&body));
        assert_eq!(st, 201, "{cb}");
        ids.push(cb["id"].as_str().unwrap().to_string());
    }
    // A client that saw everything up to the first creation.
    let first = sse(s.port, RO, Some(0), |e| !callback_events(e).is_empty());
    let seen = callback_events(&first);
    assert_eq!(seen.len(), 1, "{first:?}");
    let last = seen[0].0;
    assert_eq!(seen[0].1, ids[0]);

    s.kill();
    s.spawn();
    // Reconnecting with the last id it saw, after a restart: the rest, in order, once.
    let (st, cb) = s.req("POST", "/v1/callbacks", Some(RW), Some(&json!({"phone": "+15550209999", "queue": "support", "scheduled_at": in_secs(3600)}).to_string()));
    assert_eq!(st, 201);
    ids.push(cb["id"].as_str().unwrap().to_string());
    let rest = sse(s.port, RO, Some(last), |e| callback_events(e).len() >= 4);
    let got = callback_events(&rest);
    assert_eq!(got.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids[1..].to_vec(), "{rest:?}");
    assert!(rest.windows(2).all(|w| w[0].0 < w[1].0), "ids increase: {rest:?}");
    assert!(rest.iter().all(|(i, _, d)| *i > last && d["type"].is_string()));
    s.stop();
}
