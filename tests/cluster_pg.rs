//! Cluster coordination against a real PostgreSQL (a throw-away cluster run
//! as an unprivileged user): migrations, shard leases with fencing epochs,
//! attempts started once, agents held by one node at a time, and a database
//! restart in the middle.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::Postgres;
use redial::cluster::leases::{self, Held, LeaseTiming};
use redial::cluster::{holds, schema};
use tokio_postgres::{Client, NoTls};

const SHARDS: u32 = 16;

async fn connect(pg: &Postgres) -> Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn timing() -> LeaseTiming {
    LeaseTiming { lease: Duration::from_secs(1), renew_every: Duration::from_millis(300), margin: Duration::from_millis(300) }
}

/// Polls `f` until it returns `Some`, for at most 30 s.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_migrating_together_get_one_schema() {
    let pg = Postgres::start();
    let mut a = connect(&pg).await;
    let mut b = connect(&pg).await;
    let (ra, rb) = tokio::join!(schema::migrate(&mut a, SHARDS), schema::migrate(&mut b, SHARDS));
    ra.unwrap();
    rb.unwrap();
    schema::migrate(&mut a, SHARDS).await.unwrap();
    let v: i32 = a.query_one("SELECT max(version) FROM redial_schema", &[]).await.unwrap().get(0);
    assert_eq!(v, schema::MIGRATIONS.len() as i32);
    let n: i64 = a.query_one("SELECT count(*) FROM redial_shards", &[]).await.unwrap().get(0);
    assert_eq!(n, i64::from(SHARDS));
    a.execute("INSERT INTO redial_schema (version) VALUES (99)", &[]).await.unwrap();
    let err = schema::migrate(&mut b, SHARDS).await.unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_renewing_is_fenced_out_by_the_next_owner() {
    let pg = Postgres::start();
    let mut a = connect(&pg).await;
    schema::migrate(&mut a, SHARDS).await.unwrap();
    let b = connect(&pg).await;
    let t = timing();

    let got_a = leases::claim(&a, "node-a", 8, &t).await.unwrap();
    let got_b = leases::claim(&b, "node-b", 16, &t).await.unwrap();
    assert_eq!(got_a.len(), 8);
    assert_eq!(got_b.len(), 8, "B takes what A left");
    let (shard, epoch_a) = got_a[0];

    // A dials attempt 1 of a callback in its shard: once.
    assert!(leases::start_attempt(&a, "node-a", shard, epoch_a, "cb_1", 1).await.unwrap());
    assert!(!leases::start_attempt(&a, "node-a", shard, epoch_a, "cb_1", 1).await.unwrap(), "the same attempt twice");
    // B does not hold the shard: it cannot start anything there.
    assert!(!leases::start_attempt(&b, "node-b", shard, epoch_a, "cb_2", 1).await.unwrap());

    // A stops renewing (it hangs, or lost the database). Its own view stops
    // it first; then B takes the shards over with a new epoch.
    let mut held = Held::default();
    let sent = 0;
    held.granted(shard, epoch_a, sent, &t);
    assert!(held.may_dial(shard, (t.lease - t.margin).as_millis() as i64).is_none());
    // (B does not renew here either, so it may re-claim its own shards too.)
    let epoch_b = eventually("B to take A's shard over", || async {
        let got = leases::claim(&b, "node-b", 16, &t).await.unwrap();
        got.iter().find(|(s, _)| *s == shard).map(|(_, e)| *e)
    })
    .await;
    assert_eq!(epoch_b, epoch_a + 1);

    // A wakes up and tries to start an attempt with its old epoch: refused,
    // and its renewal returns nothing.
    assert!(!leases::start_attempt(&a, "node-a", shard, epoch_a, "cb_3", 1).await.unwrap());
    assert!(leases::renew(&a, "node-a", &[(shard, epoch_a)], &t).await.unwrap().is_empty());
    // B dials: the attempt A started is still A's, a new one is B's.
    assert!(!leases::start_attempt(&b, "node-b", shard, epoch_b, "cb_1", 1).await.unwrap());
    assert!(leases::start_attempt(&b, "node-b", shard, epoch_b, "cb_1", 2).await.unwrap());
    assert_eq!(leases::renew(&b, "node-b", &[(shard, epoch_b)], &t).await.unwrap(), vec![shard]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_one_agent_never_both_hold_it() {
    let pg = Postgres::start();
    let mut a = connect(&pg).await;
    schema::migrate(&mut a, SHARDS).await.unwrap();
    let nodes = [Arc::new(a), Arc::new(connect(&pg).await)];
    for round in 0..20 {
        let mut tasks = Vec::new();
        for (i, db) in nodes.iter().enumerate() {
            for k in 0..5 {
                let db = db.clone();
                let node = format!("node-{i}");
                let hold = format!("cb_{round}_{i}_{k}");
                tasks.push(tokio::spawn(async move {
                    let won = holds::reserve(&*db, "alice", &node, &hold, Duration::from_secs(60)).await.unwrap();
                    won.then_some((node, hold))
                }));
            }
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(w) = t.await.unwrap() {
                winners.push(w);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (node, hold) = winners.pop().unwrap();
        let other = if node == "node-0" { "node-1" } else { "node-0" };
        assert!(!holds::release(&*nodes[0], "alice", other, &hold).await.unwrap(), "another node's hold is not ours to end");
        assert!(holds::release(&*nodes[0], "alice", &node, &hold).await.unwrap());
    }
    // A hold lapses on its own: a dead node cannot pin an agent.
    assert!(holds::reserve(&*nodes[0], "bob", "node-0", "cb_x", Duration::from_millis(200)).await.unwrap());
    eventually("bob's hold to lapse", || async {
        holds::reserve(&*nodes[1], "bob", "node-1", "cb_y", Duration::from_secs(60)).await.unwrap().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_stops_dialling_then_ownership_resumes() {
    let mut pg = Postgres::start();
    let mut a = connect(&pg).await;
    schema::migrate(&mut a, SHARDS).await.unwrap();
    let t = timing();
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as i64;
    let mut held = Held::default();
    let sent = now();
    for (s, e) in leases::claim(&a, "node-a", 16, &t).await.unwrap() {
        held.granted(s, e, sent, &t);
    }
    assert_eq!(held.len(), 16);
    assert!(leases::start_attempt(&a, "node-a", 0, held.may_dial(0, now()).unwrap(), "cb_1", 1).await.unwrap());

    pg.kill();
    // Renewals fail while the database is down...
    assert!(leases::renew(&a, "node-a", &held.list(), &t).await.is_err());
    // ...so the node's own deadline ends its right to dial.
    let deadline = held.poll_timeout().unwrap();
    while now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held.expire(now()).len(), 16);
    assert!(held.may_dial(0, now()).is_none());

    pg.restart();
    let a = connect(&pg).await;
    let again = eventually("the shards to be claimable after the restart", || async {
        let got = leases::claim(&a, "node-a", 16, &t).await.unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(again.iter().all(|(_, e)| *e >= 2), "every take-over raises the epoch: {again:?}");
    let epoch0 = again.iter().find(|(s, _)| *s == 0).map(|(_, e)| *e).unwrap();
    // What was started before the crash is still recorded: not dialled twice.
    assert!(!leases::start_attempt(&a, "node-a", 0, epoch0, "cb_1", 1).await.unwrap());
    assert!(leases::start_attempt(&a, "node-a", 0, epoch0, "cb_1", 2).await.unwrap());
}

/// The book's own fence: a node whose shard was taken over cannot start an
/// attempt there, although its local view still says it may dial; the
/// callback stays scheduled for the new owner. Before the take-over the
/// same node's round starts the attempt and records its fenced start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_whose_shard_was_taken_over_cannot_start_an_attempt() {
    use redial::clock::{Clock, FakeClock};
    use redial::cluster::book::{Ownership, PgBook, PgOptions};
    use redial::config::Config;
    use redial::scheduler::book::Book;
    use redial::scheduler::engine::Unlimited;
    use redial::scheduler::model::{NewCallback, Status};

    let pg = Postgres::start();
    let db = connect(&pg).await;
    let t = LeaseTiming { lease: Duration::from_secs(60), renew_every: Duration::from_secs(10), margin: Duration::from_secs(5) };
    let start = 1_772_452_800_000; // a Monday, noon UTC
    let clock = FakeClock::new(start);
    let own = Ownership::new("a", 1, t.lease);
    let opts = PgOptions { shards: 1, ownership: Some(own.clone()), ..PgOptions::new(pg.url()) };
    let (c, cfg) = (Arc::new(clock.clone()) as Arc<dyn Clock>, Arc::new(Config::defaults()));
    let book = tokio::task::spawn_blocking(move || PgBook::open(opts, c, cfg)).await.unwrap().unwrap();
    let claimed = leases::claim(&db, "a", 1, &t).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let req = |p: &str| NewCallback { phone: p.into(), queue: "default".into(), scheduled_at: Some(start + 60_000), ..Default::default() };
    let first = book.schedule(req("+15550001")).await.unwrap();
    let second = book.schedule(req("+15550002")).await.unwrap();
    clock.set(start + 60_000);
    own.update(&[], |h| h.granted(claimed[0].0, claimed[0].1, clock.now_ms(), &t));

    let tick = book.tick(Arc::new(Unlimited), 1).await.unwrap();
    assert_eq!(tick.dispatches.len(), 1, "the first fires under the lease");
    let fired = tick.dispatches[0].callback.id;
    let starts: i64 = db
        .query_one("SELECT count(*) FROM redial_attempt_starts WHERE callback = $1 AND node = 'a' AND epoch = $2", &[&fired.to_string(), &claimed[0].1])
        .await
        .unwrap()
        .get(0);
    assert_eq!(starts, 1);

    // Node b takes the shard over (as after an expiry); a has not noticed.
    db.execute("UPDATE redial_shards SET node = 'b', epoch = epoch + 1", &[]).await.unwrap();
    assert!(own.may_dial(0, clock.now_ms()).is_some());
    let mut dispatched = 0;
    for _ in 0..5 {
        let tick = book.tick(Arc::new(Unlimited), 10).await.unwrap();
        dispatched += tick.dispatches.len();
    }
    assert_eq!(dispatched, 0, "a fenced-out node started an attempt");
    let other = if fired == first.id { second.id } else { first.id };
    let cb = book.get(other).await.unwrap().unwrap();
    assert_eq!((cb.status, cb.attempts), (Status::Scheduled, 0), "left for the new owner");
    let n: i64 = db.query_one("SELECT count(*) FROM redial_attempt_starts", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

/// One agent, `alice`, free on a node unless this node has her already.
struct OneAgent(std::sync::Mutex<bool>);

impl redial::scheduler::engine::Availability for OneAgent {
    fn reserve(&self, _now: i64, _queue: &str, _owner: Option<&str>) -> Option<String> {
        let mut busy = self.0.lock().unwrap();
        (!*busy).then(|| {
            *busy = true;
            "alice".to_string()
        })
    }
    fn release(&self, _agent: &str) {
        *self.0.lock().unwrap() = false;
    }
}

/// Two nodes, each with a callback due in its own shard and `alice` free in
/// its own registry, fire at once: the agent hold written with each start
/// lets only one of them dial her; the other's callback stays scheduled
/// until the first attempt ends, and then goes to her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_books_firing_at_once_never_both_hand_one_agent_over() {
    use redial::clock::{Clock, FakeClock};
    use redial::cluster::book::{Ownership, PgBook, PgOptions};
    use redial::config::Config;
    use redial::scheduler::book::Book;
    use redial::scheduler::engine::Availability;
    use redial::scheduler::model::{AttemptOutcome, NewCallback, Outcome, Status};

    let pg = Postgres::start();
    let db = connect(&pg).await;
    let t = LeaseTiming { lease: Duration::from_secs(60), renew_every: Duration::from_secs(10), margin: Duration::from_secs(5) };
    let start = 1_772_452_800_000; // a Monday, noon UTC
    let clock = FakeClock::new(start);
    let mut books = Vec::new();
    let mut owns = Vec::new();
    for node in ["a", "b"] {
        let own = Ownership::new(node, 2, t.lease);
        let opts = PgOptions { shards: 2, ownership: Some(own.clone()), ..PgOptions::new(pg.url()) };
        let (c, cfg) = (Arc::new(clock.clone()) as Arc<dyn Clock>, Arc::new(Config::defaults()));
        books.push(Arc::new(tokio::task::spawn_blocking(move || PgBook::open(opts, c, cfg)).await.unwrap().unwrap()));
        let claimed = leases::claim(&db, node, 1, &t).await.unwrap();
        assert_eq!(claimed.len(), 1);
        owns.push((own, claimed[0].0, claimed[0].1));
    }
    // One callback due in each node's shard.
    let mut due = [None, None];
    for i in 0.. {
        let req = NewCallback { phone: format!("+1555{i:07}"), queue: "default".into(), scheduled_at: Some(start + 60_000), ..Default::default() };
        let cb = books[0].schedule(req).await.unwrap();
        let shard = redial::cluster::leases::shard_of(&cb.id.to_string(), 2);
        let k = owns.iter().position(|(_, s, _)| *s == shard).unwrap();
        if due[k].is_none() {
            due[k] = Some(cb.id);
        } else {
            books[0].cancel(cb.id).await.unwrap();
        }
        if due.iter().all(Option::is_some) {
            break;
        }
    }
    clock.set(start + 60_000);
    for (own, shard, epoch) in &owns {
        own.update(&[], |h| h.granted(*shard, *epoch, clock.now_ms(), &t));
    }
    let avail: Vec<Arc<OneAgent>> = (0..2).map(|_| Arc::new(OneAgent(Default::default()))).collect();
    let (ta, tb) = tokio::join!(books[0].tick(avail[0].clone() as Arc<dyn Availability>, 10), books[1].tick(avail[1].clone() as Arc<dyn Availability>, 10));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    let fired: Vec<_> = ta.dispatches.iter().chain(&tb.dispatches).collect();
    assert_eq!(fired.len(), 1, "alice handed over by both nodes: {fired:?}");
    let winner = usize::from(tb.dispatches.len() == 1);
    let loser = 1 - winner;
    assert_eq!(fired[0].agent, "alice");
    assert!(!*avail[loser].0.lock().unwrap(), "the loser gave its reservation back");
    assert!(owns[loser].0.held_elsewhere("alice"));
    let left = books[loser].get(due[loser].unwrap()).await.unwrap().unwrap();
    assert_eq!((left.status, left.attempts), (Status::Scheduled, 0), "left as it was");
    let held: Vec<(String, String)> =
        db.query("SELECT agent, node FROM redial_agent_holds", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(held, vec![("alice".to_string(), ["a", "b"][winner].to_string())]);

    // The winner's attempt ends: the hold goes, and the other node gets her.
    books[winner].report_outcome(fired[0].callback.id, 1, AttemptOutcome::new(Outcome::Busy)).await.unwrap();
    avail[winner].release("alice");
    let n: i64 = db.query_one("SELECT count(*) FROM redial_agent_holds", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    owns[loser].0.set_held_elsewhere(holds::held_elsewhere(&db, ["a", "b"][loser]).await.unwrap());
    let next = books[loser].tick(avail[loser].clone() as Arc<dyn Availability>, 10).await.unwrap();
    assert_eq!(next.dispatches.iter().map(|d| d.callback.id).collect::<Vec<_>>(), vec![due[loser].unwrap()]);
}
