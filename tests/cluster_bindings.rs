//! Saved registrations in PostgreSQL (a throw-away server run as an unprivileged
//! user): what one node writes another loads, a batch replaces each named agent's
//! list whole, and a database restart costs one failed write, not the store.

mod common;

use common::pg::Postgres;
use redial::agents::saved::{Batch, RegistrationStore, SavedBinding};
use redial::cluster::bindings::PgRegistrations;
use redial::cluster::book::PgOptions;

fn b(contact: &str, at: i64) -> SavedBinding {
    SavedBinding { contact: contact.into(), expires_at: at, source: "127.0.0.1:5070".parse().unwrap() }
}

fn opts(pg: &Postgres) -> PgOptions {
    PgOptions { shards: 16, ..PgOptions::new(pg.url()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_saves_another_loads_and_batches_replace_whole_lists() {
    let mut pg = Postgres::start();
    let (a, b_node) = tokio::join!(PgRegistrations::open(opts(&pg), "a"), PgRegistrations::open(opts(&pg), "a"));
    let (a, other) = (a.unwrap(), b_node.unwrap());
    assert_eq!(other.load().await.unwrap(), Default::default(), "a new database holds nothing");

    let mut batch = Batch::default();
    batch.bindings.insert("alice".into(), vec![b("sip:alice@10.0.0.1", 5), b("sip:alice@10.0.0.2", 6)]);
    batch.bindings.insert("bob".into(), vec![b("sip:bob@10.0.0.3", 7)]);
    batch.away.insert("bob".into(), true);
    a.save(batch).await.unwrap();
    let seen = other.load().await.unwrap();
    assert_eq!(seen.bindings["alice"], vec![b("sip:alice@10.0.0.1", 5), b("sip:alice@10.0.0.2", 6)]);
    assert_eq!(seen.bindings["bob"], vec![b("sip:bob@10.0.0.3", 7)]);
    assert_eq!(seen.away.iter().collect::<Vec<_>>(), vec!["bob"]);

    let mut batch = Batch::default();
    batch.bindings.insert("alice".into(), vec![b("sip:alice@10.0.0.9", 8)]);
    batch.bindings.insert("bob".into(), vec![]);
    batch.away.insert("bob".into(), false);
    batch.away.insert("carol".into(), true);
    other.save(batch).await.unwrap();
    let seen = a.load().await.unwrap();
    assert_eq!(seen.bindings.len(), 1, "{seen:?}");
    assert_eq!(seen.bindings["alice"], vec![b("sip:alice@10.0.0.9", 8)]);
    assert_eq!(seen.away.iter().collect::<Vec<_>>(), vec!["carol"]);

    // The server restarts under the store: the first use after it may fail (the
    // connection died), the next one connects again.
    pg.restart();
    let mut batch = Batch::default();
    batch.bindings.insert("dave".into(), vec![b("sip:dave@10.0.0.4", 9)]);
    if a.save(batch.clone()).await.is_err() {
        a.save(batch).await.expect("a write after the reconnect");
    }
    let seen = a.load().await.unwrap();
    assert_eq!(seen.bindings["dave"], vec![b("sip:dave@10.0.0.4", 9)]);
    assert_eq!(seen.bindings["alice"], vec![b("sip:alice@10.0.0.9", 8)], "committed rows survive the restart");
}

/// Two running nodes share registrations: alice registers with node A only (a SIPp
/// softphone), and node B's registry sees her available within seconds; her
/// unregister at A takes her off B; once A is SIGKILLed, B dials her (the softphone
/// gets B's INVITE for a callback booked on B).
#[test]
fn an_agent_registered_with_one_running_node_is_rung_by_another() {
    use common::api::{request, ADMIN, RW};
    use common::cluster::{balanced, eventually, get, Node};
    use common::Sipp;
    use std::time::Duration;

    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    // Agent first: B rings alice before it calls the customer. The carrier is a SIPp
    // that would answer busy; alice declines, so it is never called.
    let carrier = Sipp::new("dial_carrier_busy.xml").timeout(Duration::from_secs(90)).timeout_ok().spawn();
    let carrier_addr: std::net::SocketAddr = ([127, 0, 0, 1], carrier.port()).into();
    let trunk = Some((carrier_addr, carrier_addr));
    let mut a = Node::start_with(root.path(), "a", &pg.url(), trunk, false, "mode = \"agent_first\"\n");
    let b = Node::start_with(root.path(), "b", &pg.url(), trunk, false, "mode = \"agent_first\"\n");
    let state = |n: &Node| {
        let v = get(n.port, "/v1/agents", ADMIN);
        v["items"].as_array().unwrap().iter().find(|x| x["id"] == "alice").map(|x| x["state"].as_str().unwrap_or("").to_string()).unwrap_or_default()
    };
    // Generous for a loaded machine: the write-behind runs once a second and B reads on
    // A's notification.
    let limit = Duration::from_secs(20);
    let dir = root.path().to_str().unwrap();
    let register = |port: u16| {
        let reg = Sipp::new("dial_agent_register.xml").remote(a.sip).args_auth("alice", "alice-pw").set("contact_port", &port.to_string()).run();
        assert!(reg.ok(), "registration with A: {reg}");
    };

    // The softphone: answers one INVITE by declining it.
    let phone = Sipp::new("dial_agent_decline.xml")
        .calls(1)
        .timeout(Duration::from_secs(90))
        .trace_msg()
        .set("dir", dir)
        .set("rtp_port", "9")
        .set("talk_ms", "0")
        .spawn();
    assert_ne!(state(&b), "available", "B knows nobody yet");
    register(phone.port());
    eventually("alice available on A", limit, || (state(&a) == "available").then_some(()));
    eventually("alice available on B, registered with A only", limit, || (state(&b) == "available").then_some(()));

    let unreg = Sipp::new("dial_agent_unregister.xml").remote(a.sip).args_auth("alice", "alice-pw").run();
    assert!(unreg.ok(), "unregister with A: {unreg}");
    eventually("alice gone from B after her unregister at A", limit, || (state(&b) != "available").then_some(()));

    register(phone.port());
    eventually("alice available on B again", limit, || (state(&b) == "available").then_some(()));
    // A dies; its saved binding stays in the database, so B still has alice and,
    // once it holds every shard, dials what is booked.
    a.kill();
    eventually("B holding every shard", Duration::from_secs(30), || balanced(b.port, &["b"]).then_some(()));
    assert_eq!(state(&b), "available", "A's death does not take its agent's binding from B");
    let body = serde_json::json!({"phone": "+18885550100", "queue": "support"}).to_string();
    let (st, v) = request(b.port, "POST", "/v1/callbacks", Some(RW), Some(&body), &[]).unwrap();
    assert_eq!(st, 201, "{v}");
    let out = phone.wait();
    assert!(out.ok(), "alice's softphone never got B's INVITE: {out}\nB's log:\n{}", std::fs::read_to_string(&b.log).unwrap_or_default());
    assert!(b.hand_overs().iter().any(|(id, _)| v["id"] == id.as_str()), "B handed the callback to alice");
}
