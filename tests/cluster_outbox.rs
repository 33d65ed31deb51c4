//! The durable outbox shared by cluster nodes: two `redial serve` nodes on
//! one throw-away PostgreSQL with one webhook endpoint, changes made through
//! both APIs, and the node delivering to the endpoint SIGKILLed mid-stream.
//! The other node takes the endpoint's turn over and resumes after the
//! stored cursor: a real HTTP receiver gets every acknowledged change, with
//! valid signatures, in order per callback, repeated only under the same
//! event id. `GET /v1/events` with `Last-Event-ID` on the surviving node
//! replays the same sequence, the dead node's events included.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::api::{in_secs, request, sse, RO, RW};
use common::cluster::{balanced, eventually, Node};
use common::pg::Postgres;
use redial::webhooks::sign;
use serde_json::{json, Value};

const SECRET: &str = "cluster-hook-secret";

/// Every 2xx-answered request: (signature valid, body), in arrival order.
type Got = Arc<Mutex<Vec<(bool, Value)>>>;

/// Deliveries answered before the receiver holds the next ones unanswered.
const FIRST: usize = 10;

#[derive(Clone)]
struct Receiver {
    got: Got,
    /// While set, a delivery after the first [`FIRST`] waits unanswered, so
    /// the deliverer is killed mid-stream with a delivery in flight.
    hold: Arc<AtomicBool>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    while r.hold.load(Ordering::SeqCst) && r.got.lock().unwrap().len() >= FIRST {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = r.got;
    let sig = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = sign::verify(SECRET, &body, sig);
    got.lock().unwrap().push((ok, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    StatusCode::NO_CONTENT
}

fn req(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let (st, v) = request(port, method, path, Some(RW), body.map(|b| b.to_string()).as_deref(), &[]).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

/// The changes the APIs acknowledged, per callback, in order.
type Expected = BTreeMap<String, Vec<&'static str>>;

/// Creates `n` callbacks through `ports` in turn; every second one is
/// rescheduled and every third cancelled through the next port, so one
/// callback's events come from both nodes.
fn changes(ports: &[u16], n: usize, first_phone: usize, expected: &mut Expected) {
    for i in 0..n {
        let (p, q) = (ports[i % ports.len()], ports[(i + 1) % ports.len()]);
        let cb = req(p, "POST", "/v1/callbacks", Some(json!({"phone": format!("+1555030{:04}", first_phone + i), "queue": "support", "scheduled_at": in_secs(3600)})));
        let id = cb["id"].as_str().unwrap().to_string();
        let mut kinds = vec!["callback.created"];
        if i % 2 == 0 {
            req(q, "PATCH", &format!("/v1/callbacks/{id}"), Some(json!({"scheduled_at": in_secs(7200)})));
            kinds.push("callback.updated");
        }
        if i % 3 == 0 {
            req(q, "POST", &format!("/v1/callbacks/{id}/cancel"), None);
            kinds.push("callback.cancelled");
        }
        expected.insert(id, kinds);
    }
}

/// The node holding `task`'s turn, read from the database.
fn holder(rt: &tokio::runtime::Runtime, url: &str, task: &str) -> Option<String> {
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
        tokio::spawn(conn);
        let row = c.query_opt("SELECT node FROM redial_outbox_turns WHERE task = $1 AND expires_at > now()", &[&task]).await.ok()??;
        Some(row.get(0))
    })
}

#[test]
fn webhooks_survive_the_delivering_nodes_sigkill_and_arrive_once_per_id_in_order() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let got: Got = Arc::default();
    let hold = Arc::new(AtomicBool::new(true));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(Receiver { got: got.clone(), hold: hold.clone() });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let hook_toml = format!("\n[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = [\"callback.created\", \"callback.updated\", \"callback.cancelled\"]\n");
    let mut nodes: HashMap<String, Node> =
        ["a", "b"].iter().map(|n| (n.to_string(), Node::start_extra(root.path(), n, &pg.url(), None, true, "", &hook_toml))).collect();
    let port = |n: &str, nodes: &HashMap<String, Node>| nodes[n].port;
    eventually("both nodes holding shards", Duration::from_secs(30), || balanced(port("a", &nodes), &["a", "b"]).then_some(()));
    let first = eventually("a node taking the endpoint's turn", Duration::from_secs(30), || holder(&rt, &pg.url(), &url));
    let other = if first == "a" { "b" } else { "a" };

    // Changes through both APIs; the deliverer is killed once it is part way through.
    let mut expected = Expected::new();
    changes(&[port("a", &nodes), port("b", &nodes)], 40, 0, &mut expected);
    let want: usize = expected.values().map(Vec::len).sum();
    let delivered = |got: &Got| got.lock().unwrap().iter().map(|(_, v)| v["id"].as_str().unwrap_or("").to_string()).collect::<HashSet<_>>().len();
    eventually("the first deliveries", Duration::from_secs(30), || (delivered(&got) >= FIRST).then_some(()));
    assert!(delivered(&got) < want);
    nodes.get_mut(&first).unwrap().kill();
    hold.store(false, Ordering::SeqCst);

    // More changes through the survivor while nobody delivers.
    changes(&[port(other, &nodes)], 10, 100, &mut expected);
    let want: usize = expected.values().map(Vec::len).sum();
    eventually("every change delivered after the take-over", Duration::from_secs(60), || (delivered(&got) >= want).then_some(()));
    assert_eq!(holder(&rt, &pg.url(), &url).as_deref(), Some(other), "the survivor has the endpoint's turn");

    let all = got.lock().unwrap().clone();
    assert!(all.iter().all(|(ok, _)| *ok), "every delivery carries a valid signature");
    let mut bodies: HashMap<String, Value> = HashMap::new();
    let mut per_callback: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (_, v) in &all {
        let id = v["id"].as_str().unwrap().to_string();
        let seq: u64 = id.strip_prefix("evt_").unwrap().parse().unwrap();
        match bodies.get(&id) {
            // A repeat is the same event, byte for byte as JSON.
            Some(before) => assert_eq!(before, v, "event {id} repeated with another body"),
            None => {
                bodies.insert(id, v.clone());
                per_callback.entry(v["data"]["id"].as_str().unwrap().to_string()).or_default().push((seq, v["type"].as_str().unwrap().to_string()));
            }
        }
    }
    assert_eq!(per_callback.len(), expected.len(), "events for exactly the acknowledged callbacks");
    for (cb, kinds) in &expected {
        let list = &per_callback[cb];
        let types: Vec<&str> = list.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(&types, kinds, "callback {cb}: each change once, in order");
        assert!(list.windows(2).all(|w| w[0].0 < w[1].0), "callback {cb}: sequences increase: {list:?}");
    }
    let repeats = all.len() - bodies.len();
    eprintln!("{} deliveries, {} events, {repeats} repeated after the take-over", all.len(), bodies.len());

    // The survivor replays the shared sequence from the start: every event,
    // the dead node's too, in sequence order and without gaps.
    let seqs: Vec<u64> = bodies.keys().map(|id| id.strip_prefix("evt_").unwrap().parse().unwrap()).collect();
    let last = *seqs.iter().max().unwrap();
    let replay = sse(port(other, &nodes), RO, Some(0), |e| e.iter().any(|(i, _, _)| *i >= last));
    let ids: Vec<u64> = replay.iter().map(|(i, _, _)| *i).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "replayed in sequence order: {ids:?}");
    let replayed: HashSet<u64> = ids.iter().copied().collect();
    assert!(seqs.iter().all(|s| replayed.contains(s)), "the replay holds every delivered event");
    assert_eq!(ids.first(), Some(&1), "the sequence starts at 1");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "the shared sequence has no gaps: {ids:?}");

    // A node that joins now commits changes while the survivor keeps the
    // turn: the survivor commits nothing itself, so only its feed of every
    // node's events wakes its deliverer.
    nodes.insert("c".into(), Node::start_extra(root.path(), "c", &pg.url(), None, true, "", &hook_toml));
    let mut joined = Expected::new();
    changes(&[port("c", &nodes)], 6, 200, &mut joined);
    let ids: HashSet<String> = joined.keys().cloned().collect();
    eventually("the joined node's changes delivered by the survivor", Duration::from_secs(30), || {
        let seen: HashSet<String> = got_now(&got).into_iter().filter_map(|v| v["data"]["id"].as_str().map(str::to_string)).collect();
        ids.is_subset(&seen).then_some(())
    });
    assert_eq!(holder(&rt, &pg.url(), &url).as_deref(), Some(other), "the survivor still has the endpoint's turn");
}

fn got_now(got: &Got) -> Vec<Value> {
    got.lock().unwrap().iter().map(|(_, v)| v.clone()).collect()
}

async fn client(pg: &Postgres) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

fn trunk(name: &str) -> (redial::events::Kind, i64, redial::events::Payload) {
    let t = redial::sip::endpoint::TrunkStatus { name: name.into(), register: false, registered: false, expires_at: None, up: true, last_error: None };
    (redial::events::Kind::TrunkState, 0, redial::events::Payload::Trunk(Box::new(t)))
}

/// The rule that keeps readers from skipping an event: a batch that takes
/// sequences after another has taken its own waits until that one commits,
/// so sequences become visible in order. A reader between the two sees
/// neither the first batch's events (not committed) nor a later sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_follow_commit_order_across_connections() {
    use redial::cluster::outbox;
    let pg = Postgres::start();
    let (mut a, b, reader) = (client(&pg).await, client(&pg).await, client(&pg).await);
    redial::cluster::schema::migrate(&mut a, 4).await.unwrap();

    a.batch_execute("BEGIN").await.unwrap();
    let first = outbox::append(&a, vec![trunk("a1"), trunk("a2")]).await.unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    let later = tokio::spawn(async move {
        b.batch_execute("BEGIN").await.unwrap();
        let evs = outbox::append(&b, vec![trunk("b1")]).await.unwrap();
        b.batch_execute("COMMIT").await.unwrap();
        evs
    });
    // b is waiting on a's counter row: nothing of it is visible, nor of a.
    let waiting = async {
        loop {
            let n: i64 = reader.query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[]).await.unwrap().get(0);
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("the second batch waits for the first");
    assert!(outbox::after(&reader, 0, 10).await.unwrap().is_empty());
    assert!(!later.is_finished());
    a.batch_execute("COMMIT").await.unwrap();
    let second = later.await.unwrap();
    assert_eq!(second.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3], "taken after the first committed");
    let all = outbox::after(&reader, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(outbox::next_seq(&reader).await.unwrap(), 4);

    // A batch rolled back gives its sequences back: no gap.
    a.batch_execute("BEGIN").await.unwrap();
    outbox::append(&a, vec![trunk("lost")]).await.unwrap();
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(outbox::next_seq(&reader).await.unwrap(), 4);
}

/// A task's turn is one node's while its lease lasts, renewable by that
/// node only, taken by another once it lapses, and given back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_is_one_nodes_until_its_lease_lapses_or_it_is_given_back() {
    use redial::cluster::outbox::{end_turn, take_turn};
    let pg = Postgres::start();
    let mut db = client(&pg).await;
    redial::cluster::schema::migrate(&mut db, 4).await.unwrap();
    let long = Duration::from_secs(60);
    assert!(take_turn(&db, "http://hook", "a", long).await.unwrap());
    assert!(take_turn(&db, "http://hook", "a", long).await.unwrap(), "renewed by its holder");
    assert!(!take_turn(&db, "http://hook", "b", long).await.unwrap(), "refused to another node");
    assert!(take_turn(&db, "texts", "b", long).await.unwrap(), "each task has its own turn");
    end_turn(&db, "http://hook", "b").await.unwrap();
    assert!(!take_turn(&db, "http://hook", "b", long).await.unwrap(), "only the holder gives it back");
    end_turn(&db, "http://hook", "a").await.unwrap();
    assert!(take_turn(&db, "http://hook", "b", Duration::from_millis(200)).await.unwrap(), "given back: taken at once");
    // b's short lease lapses (the database's clock): a takes it over.
    let lapsed = async {
        while !take_turn(&db, "http://hook", "a", long).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), lapsed).await.expect("the lapsed turn is taken over");
    assert!(!take_turn(&db, "http://hook", "b", long).await.unwrap());
}
