//! Three `redial serve` nodes on one throw-away PostgreSQL behind Kamailio
//! (the shipped front, dispatcher over the nodes), load through all three
//! APIs, one node SIGKILLed at a seeded random moment: every acknowledged
//! callback is kept, no (callback, attempt) is handed over twice across the
//! nodes, no `X-Redial-Attempt` reaches the SIPp carrier twice, and every
//! callback due during the test is dialled — the dead node's by the others
//! within 30 s of its due time.
//!
//! The nodes call customers through Kamailio, which relays to a SIPp carrier
//! answering 486: each attempt ends `busy` and is retried once a second
//! later. Kamailio's own second guard (482 for an attempt seen before) must
//! never fire: the fence in the book is what keeps attempts single.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::api::{request, RW};
use common::cluster::{balanced, eventually, get, Node};
use common::kamailio::Front;
use common::pg::Postgres;
use common::Sipp;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}")).timestamp_millis()
}

fn run(seed: u64) {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let names = ["n1", "n2", "n3"];
    // The carrier answers every INVITE 486 and records what it got.
    let carrier = Sipp::new("dial_carrier_busy.xml").calls(100_000).timeout(Duration::from_secs(300)).timeout_ok().trace_msg().set("rtp_port", "9").spawn();
    let carrier_addr: SocketAddr = ([127, 0, 0, 1], carrier.port()).into();
    // The nodes must name the front before it can list them: its port is
    // chosen first.
    let front_addr: SocketAddr = ([127, 0, 0, 1], common::peer_port()).into();
    let mut nodes: Vec<Node> = names.iter().map(|n| Node::start(root.path(), n, &pg.url(), Some((front_addr, carrier_addr)))).collect();
    let front = Front::start_on(front_addr, &nodes.iter().map(|n| n.sip).collect::<Vec<_>>(), &[]).expect("kamailio on the port the nodes were given");
    eventually("three nodes sharing the shards", Duration::from_secs(30), || balanced(nodes[0].port, &names).then_some(()));

    // Load through all three APIs; one node dies at a random moment.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let victim = rng.random_range(0..3usize);
    let kill_after = Duration::from_millis(rng.random_range(300..2_000));
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let phone = Arc::new(AtomicU64::new(seed * 1_000_000));
    let load_for = Duration::from_millis(4_000);
    let started = Instant::now();
    std::thread::scope(|s| {
        for (i, n) in nodes.iter().enumerate() {
            let (port, acked, phone, log) = (n.port, acked.clone(), phone.clone(), n.log.clone());
            s.spawn(move || {
                while started.elapsed() < load_for {
                    let p = format!("+1999{:07}", phone.fetch_add(1, Ordering::Relaxed));
                    let body = json!({"phone": p, "queue": "support"}).to_string();
                    match request(port, "POST", "/v1/callbacks", Some(RW), Some(&body), &[]) {
                        Ok((201, v)) => acked.lock().unwrap().push(v),
                        Ok((st, v)) => panic!("node {i}: POST answered {st}: {v}\n{}", std::fs::read_to_string(&log).unwrap_or_default()),
                        // The node was killed: stop loading it.
                        Err(_) => break,
                    }
                }
            });
        }
        std::thread::sleep(kill_after);
        nodes[victim].kill();
    });
    let killed_at = Instant::now();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 30, "only {} acknowledged", acked.len());
    let survivors: Vec<&str> = names.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| *n).collect();
    let port = nodes.iter().find(|n| n.alive()).unwrap().port;

    // Every acknowledged callback is dialled (attempt 1 started) by some node.
    let by_id: HashMap<String, Value> = eventually("every acknowledged callback dialled", Duration::from_secs(60), || {
        let mut all = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/callbacks?limit=500&cursor={c}"),
                None => "/v1/callbacks?limit=500".to_string(),
            };
            let page = get(port, &path, RW);
            for c in page["items"].as_array().unwrap() {
                all.insert(c["id"].as_str().unwrap().to_string(), c.clone());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        acked.iter().all(|a| all.get(a["id"].as_str().unwrap()).is_some_and(|c| c["attempts"].as_u64().unwrap_or(0) >= 1)).then_some(all)
    });
    eprintln!("seed {seed}: {} acknowledged, node {} killed after {kill_after:?}, all dialled {:?} after the kill", acked.len(), names[victim], killed_at.elapsed());

    // Nothing acknowledged is lost or changed in what the caller asked for.
    for a in &acked {
        let c = &by_id[a["id"].as_str().unwrap()];
        for k in ["id", "phone", "queue", "created_at", "origin"] {
            assert_eq!(c[k], a[k], "{k} changed: {a} -> {c}");
        }
    }

    // No attempt handed over twice across the nodes, by their dialler logs.
    let mut handed: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for n in &nodes {
        for k in n.hand_overs() {
            handed.entry(k).or_default().push(n.name.clone());
        }
    }
    assert!(!handed.is_empty(), "no hand-over logged");
    for (k, by) in &handed {
        assert_eq!(by.len(), 1, "{k:?} handed over by {by:?}");
    }

    // Every first attempt started within 30 s of its due time, the dead
    // node's shards' included; attempts the dead node had started are
    // closed by the taker-over and kept under their own number.
    let mut worst = 0i64;
    for a in &acked {
        let id = a["id"].as_str().unwrap();
        let atts = get(port, &format!("/v1/callbacks/{id}/attempts"), RW);
        let items = atts["items"].as_array().unwrap();
        let nums: Vec<u64> = items.iter().map(|x| x["attempt"].as_u64().unwrap()).collect();
        let unique: HashSet<u64> = nums.iter().copied().collect();
        assert_eq!(unique.len(), nums.len(), "attempt numbers repeat: {id} {nums:?}");
        if let Some(first) = items.first() {
            let late = millis(first["started_at"].as_str().unwrap()) - millis(a["due_at"].as_str().unwrap());
            worst = worst.max(late);
            assert!(late <= 30_000, "{id} first dialled {late} ms after due: {atts}");
        }
    }
    eprintln!("seed {seed}: latest first attempt {worst} ms after due; survivors {survivors:?}");
    // The survivors hold every shard between them.
    eventually("the survivors holding every shard", Duration::from_secs(30), || balanced(port, &survivors).then_some(()));

    // Every callback ends (two busy attempts, or an attempt the dead node
    // left, closed as failed); then the carrier has seen every INVITE.
    let finals: Vec<Vec<Value>> = eventually("every acknowledged callback final", Duration::from_secs(60), || {
        let mut all = Vec::new();
        for a in &acked {
            let id = a["id"].as_str().unwrap();
            let c = get(port, &format!("/v1/callbacks/{id}"), RW);
            if c["status"] == "scheduled" || c["status"] == "in_progress" {
                return None;
            }
            all.push(get(port, &format!("/v1/callbacks/{id}/attempts"), RW)["items"].as_array().unwrap().clone());
        }
        Some(all)
    });
    let out = carrier.stop();
    // Attempt → the calls (Call-IDs) that carried it. A retransmission of
    // one INVITE (UDP, a loaded machine) is the same call, not a second one.
    let mut seen: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for block in out.messages.split("message received").skip(1) {
        let lines: Vec<&str> = block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('[')).collect();
        if lines.first().is_some_and(|l| l.starts_with("INVITE ")) {
            let attempt = lines.iter().find_map(|l| l.strip_prefix("X-Redial-Attempt:")).unwrap_or_else(|| panic!("an INVITE without X-Redial-Attempt: {block}"));
            // Relayed by the front, not sent straight to the carrier.
            assert!(lines.iter().any(|l| l.starts_with("Record-Route:")), "an INVITE that did not pass Kamailio: {block}");
            let call = lines.iter().find_map(|l| l.strip_prefix("Call-ID:")).unwrap_or_else(|| panic!("an INVITE without Call-ID: {block}"));
            seen.entry(attempt.trim().to_string()).or_default().insert(call.trim().to_string());
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, calls)| calls.len() > 1).collect();
    assert!(twice.is_empty(), "attempts the carrier got more than once: {twice:?}");
    assert!(!front.log().contains("second INVITE for attempt"), "Kamailio's guard refused a second INVITE:\n{}", front.log());
    // The carrier's record is whole: every attempt that ended with its 486
    // is in it (an attempt the dead node left may or may not have reached it).
    let mut busy = 0;
    for (a, atts) in acked.iter().zip(&finals) {
        for x in atts.iter().filter(|x| x["sip_status"] == 486) {
            let key = format!("{}/{}", a["id"].as_str().unwrap(), x["attempt"]);
            assert!(seen.contains_key(&key), "{key} ended 486 but the carrier has no INVITE for it");
            busy += 1;
        }
    }
    assert!(busy >= acked.len(), "only {busy} busy attempts for {} callbacks", acked.len());
    eprintln!("seed {seed}: the carrier got {} INVITEs, each attempt once; {busy} ended 486", seen.len());
}

#[test]
fn a_node_sigkilled_mid_run_loses_nothing_and_dials_nothing_twice() {
    for seed in [1, 2] {
        run(seed);
    }
}

/// Every callback in the book, by id, read through `port`.
fn all_callbacks(port: u16) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/callbacks?limit=500&cursor={c}"),
            None => "/v1/callbacks?limit=500".to_string(),
        };
        let page = get(port, &path, RW);
        for c in page["items"].as_array().unwrap() {
            all.insert(c["id"].as_str().unwrap().to_string(), c.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

fn post(port: u16, phone: &str) -> (u16, Value) {
    let body = json!({"phone": phone, "queue": "support"}).to_string();
    request(port, "POST", "/v1/callbacks", Some(RW), Some(&body), &[]).unwrap_or_else(|e| panic!("POST: {e}"))
}

/// The database stops (immediate shutdown) under two nodes and comes back:
/// while it is down a booking is refused with an error, never acknowledged;
/// afterwards both nodes reconnect, book and dial again, and nothing
/// acknowledged before or after is lost or dialled twice.
#[test]
fn a_database_restart_refuses_changes_then_both_nodes_resume() {
    let mut pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let names = ["n1", "n2"];
    let nodes: Vec<Node> = names.iter().map(|n| Node::start(root.path(), n, &pg.url(), None)).collect();
    eventually("two nodes sharing the shards", Duration::from_secs(30), || balanced(nodes[0].port, &names).then_some(()));
    let mut acked = Vec::new();
    for i in 0..10 {
        let (st, v) = post(nodes[i % 2].port, &format!("+1888{i:07}"));
        assert_eq!(st, 201, "{v}");
        acked.push(v["id"].as_str().unwrap().to_string());
    }

    pg.kill();
    for (i, n) in nodes.iter().enumerate() {
        let body = json!({"phone": format!("+1887{i:07}"), "queue": "support"}).to_string();
        let (st, v, headers) = common::api::raw(n.port, "POST", "/v1/callbacks", Some(RW), Some(&body), &[]).unwrap();
        assert_eq!(st, 503, "node {i} with the database down: {st} {v}");
        assert_eq!(v["error"]["code"], "storage_unavailable", "{v}");
        assert!(headers.iter().any(|(k, val)| k.eq_ignore_ascii_case("retry-after") && val.parse::<u64>().is_ok()), "no Retry-After: {headers:?}");
        // A read answers the same way, not 500.
        let (st, v) = request(n.port, "GET", "/v1/callbacks?limit=5", Some(RW), None, &[]).unwrap();
        assert_eq!(st, 503, "node {i} list with the database down: {v}");
    }
    pg.restart();

    // Each node books again once it has reconnected.
    for (i, n) in nodes.iter().enumerate() {
        let id = eventually("a booking after the restart", Duration::from_secs(30), || {
            let (st, v) = post(n.port, &format!("+1886{i:07}"));
            (st == 201).then(|| v["id"].as_str().unwrap().to_string())
        });
        acked.push(id);
    }
    let all = eventually("every acknowledged callback dialled", Duration::from_secs(60), || {
        let all = all_callbacks(nodes[1].port);
        acked.iter().all(|id| all.get(id).is_some_and(|c| c["attempts"].as_u64().unwrap_or(0) >= 1)).then_some(all)
    });
    assert_eq!(all.len(), acked.len(), "only acknowledged bookings are in the book: {all:?}");
    // Each attempt ends at once (the queue has no trunk): its outcome is
    // recorded, even one that ended while the database was down.
    eventually("every attempt's outcome recorded", Duration::from_secs(30), || {
        let all = all_callbacks(nodes[0].port);
        acked.iter().all(|id| all.get(id).is_some_and(|c| c["status"] != "in_progress")).then_some(())
    });
    let mut handed: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for n in &nodes {
        for k in n.hand_overs() {
            handed.entry(k).or_default().push(n.name.clone());
        }
    }
    for (k, by) in &handed {
        assert_eq!(by.len(), 1, "{k:?} handed over by {by:?}");
    }
    for id in &acked {
        assert!(handed.keys().any(|(c, _)| c == id), "{id} never handed over");
    }
}

/// The answer to the COMMIT that starts an attempt is lost (the connection
/// is cut right after the server committed): the node never handed that
/// attempt to its dialler, so once the database answers again it puts the
/// callback back as it was, and the attempt is then dialled exactly once.
#[test]
fn an_attempt_whose_commit_answer_was_lost_is_put_back_and_dialled_once() {
    let pg = Postgres::start();
    let proxy = common::pg::LostCommit::start(&pg);
    let root = tempfile::tempdir().unwrap();
    let node = Node::start(root.path(), "n1", &proxy.url(), None);
    eventually("the node holding every shard", Duration::from_secs(30), || balanced(node.port, &["n1"]).then_some(()));
    let (st, v) = post(node.port, "+18850000001");
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let log = || std::fs::read_to_string(&node.log).unwrap_or_default();
    eventually("attempt 1 handed over", Duration::from_secs(30), || node.hand_overs().iter().any(|(c, n)| *c == id && *n == 1).then_some(()));
    assert!(proxy.fired(), "the proxy never lost a commit's answer:\n{}", log());
    assert!(log().contains("put_back=1"), "the unconfirmed attempt was not put back:\n{}", log());
    let attempts: Vec<u64> = node.hand_overs().into_iter().filter(|(c, _)| *c == id).map(|(_, n)| n).collect();
    assert_eq!(attempts.iter().filter(|n| **n == 1).count(), 1, "attempt 1 handed over once: {attempts:?}\n{}", log());
}
