//! `GET /v1/events` on one cluster node follows every node's changes: a
//! stream opened on node A (no `Last-Event-ID`) carries the callbacks booked
//! through node B's API as well as A's own, in the outbox's sequence order
//! with no gap, as a reader resuming from the outbox would see them.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::api::{request, sse, RO, RW};
use common::cluster::{balanced, eventually, Node};
use common::pg::Postgres;
use serde_json::json;

#[test]
fn a_nodes_event_stream_carries_every_nodes_changes_in_sequence() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (Node::start(root.path(), "a", &pg.url(), None), Node::start(root.path(), "b", &pg.url(), None));
    eventually("two nodes sharing the shards", Duration::from_secs(30), || balanced(a.port, &["a", "b"]).then_some(()));

    // Bookings alternate between the nodes until A's stream has shown one
    // of each (the stream may open after the first few: nothing to resume).
    let booked: Arc<Mutex<Vec<(String, &str)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let events = std::thread::scope(|s| {
        let (booked2, done2) = (booked.clone(), done.clone());
        let (pa, pb) = (a.port, b.port);
        s.spawn(move || {
            let started = Instant::now();
            let mut n = 0;
            while !done2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                let (node, port) = if n % 2 == 0 { ("a", pa) } else { ("b", pb) };
                let body = json!({"phone": format!("+1555040{n:04}"), "queue": "support"}).to_string();
                let (st, v) = request(port, "POST", "/v1/callbacks", Some(RW), Some(&body), &[]).unwrap();
                assert_eq!(st, 201, "{v}");
                booked2.lock().unwrap().push((v["id"].as_str().unwrap().to_string(), node));
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let events = sse(a.port, RO, None, |evs| {
            let booked = booked.lock().unwrap();
            let seen: HashSet<&str> = evs.iter().filter(|(_, k, _)| k == "callback").filter_map(|(_, _, d)| d["id"].as_str()).collect();
            let by = |node: &str| booked.iter().any(|(id, n)| *n == node && seen.contains(id.as_str()));
            by("a") && by("b")
        });
        done.store(true, Ordering::Relaxed);
        events
    });
    for w in events.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "the stream skipped or repeated a sequence: {:?}", events.iter().map(|e| (e.0, &e.1)).collect::<Vec<_>>());
    }
}
