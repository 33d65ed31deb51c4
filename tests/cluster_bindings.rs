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
    let (a, b_node) = tokio::join!(PgRegistrations::open(opts(&pg)), PgRegistrations::open(opts(&pg)));
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
