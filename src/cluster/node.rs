//! This node in a cluster: the lease loop that keeps its share of the
//! shards (heartbeat, renew, claim what is free or expired, give back what
//! is above the fair share) and the view behind `GET /v1/cluster`.
//!
//! The loop only talks to the database and updates [`Ownership`]; the book
//! reads it for every firing round. When the database cannot be reached the
//! loop keeps retrying, and the shards' local deadlines pass: the node stops
//! dialling before another node can be granted them.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio_postgres::Client;

use super::book::{connect, pg_error, Ownership, PgOptions};
use super::holds;
use super::leases::{self, fair_share, LeaseTiming};
use crate::clock::Clock;
use crate::config::ClusterConfig;
use crate::scheduler::book::StoreError;

/// The lease timing of a `[cluster]` section.
pub fn timing(c: &ClusterConfig) -> LeaseTiming {
    LeaseTiming { lease: c.lease, renew_every: c.renew_every, margin: c.margin }
}

/// One lease round's database work; returns the live nodes.
async fn round(db: &Client, own: &Ownership, t: &LeaseTiming, clock: &dyn Clock, live_before: &BTreeSet<String>) -> Result<BTreeSet<String>, tokio_postgres::Error> {
    let sent_at = clock.now_ms();
    leases::heartbeat(db, &own.node).await?;
    let held = own.list();
    let renewed: HashSet<u32> = leases::renew(db, &own.node, &held, t).await?.into_iter().collect();
    let live: BTreeSet<String> = db
        .query("SELECT node FROM redial_nodes WHERE seen_at > now() - make_interval(secs => $1)", &[&t.lease.as_secs_f64()])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Agent holds: this node's go on while their calls do; others' are
    // what the dialler must not pick.
    holds::renew(db, &own.node, &own.holds(), t.lease).await?;
    own.set_held_elsewhere(holds::held_elsewhere(db, &own.node).await?);
    let share = fair_share(own.shards, live.len() as i64);
    let mut kept: Vec<(u32, i64)> = held.iter().copied().filter(|(s, _)| renewed.contains(s)).collect();
    let mut released = Vec::new();
    if kept.len() as i64 > share {
        // Above the fair share (another node joined): give the surplus back
        // at once so it can take it.
        released = kept.split_off(share as usize).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        leases::release(db, &own.node, &released).await?;
    }
    let claimed = leases::claim(db, &own.node, share - kept.len() as i64, t).await?;
    // A node gone since the last round may have left attempts in progress
    // on shards held here: look at all of them again.
    let vanished = live_before.iter().any(|n| !live.contains(n));
    let mut sweep: Vec<u32> = claimed.iter().map(|(s, _)| *s).collect();
    if vanished {
        sweep.extend(kept.iter().map(|(s, _)| *s));
    }
    let changed = !claimed.is_empty() || !released.is_empty() || kept.len() != held.len();
    own.update(&sweep, |h| {
        for (s, _) in &held {
            if !renewed.contains(s) || released.contains(s) {
                h.lost(*s);
            }
        }
        for (s, e) in kept.iter().chain(claimed.iter()) {
            h.granted(*s, *e, sent_at, t);
        }
    });
    if changed {
        tracing::info!(node = %own.node, held = own.list().len(), claimed = claimed.len(), released = released.len(), live = live.len(), "shard leases changed");
    }
    Ok(live)
}

/// Keeps this node's leases until `stop` turns true; `wake` is the
/// scheduler driver's, woken whenever the shards held may have changed.
pub async fn run_leases(opts: PgOptions, own: Arc<Ownership>, t: LeaseTiming, clock: Arc<dyn Clock>, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut db: Option<Client> = None;
    let mut live = BTreeSet::new();
    loop {
        if db.is_none() {
            match connect(&opts, None).await {
                Ok(c) => db = Some(c),
                Err(e) => tracing::warn!(error = %e, "cannot reach the database for shard leases"),
            }
        }
        if let Some(c) = &db {
            match round(c, &own, &t, &*clock, &live).await {
                Ok(l) => live = l,
                Err(e) => {
                    tracing::warn!(error = %pg_error(e), "shard lease renewal failed");
                    if c.is_closed() {
                        db = None;
                    }
                }
            }
        }
        // Shards whose renewals failed stop being dialled at their deadline.
        own.expire(clock.now_ms());
        wake.notify_one();
        let pause = tokio::time::sleep(t.renew_every);
        tokio::select! {
            _ = pause => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    // Leaving: give every shard back so the others take over at once.
    if let Some(c) = &db {
        let mine: Vec<u32> = own.list().into_iter().map(|(s, _)| s).collect();
        own.update(&[], |h| {
            for s in &mine {
                h.lost(*s);
            }
        });
        if let Err(e) = leases::release(c, &own.node, &mine).await {
            tracing::warn!(error = %pg_error(e), "could not give the shard leases back");
        }
    }
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// This node.
    pub node: String,
    /// Shards this node may dial now.
    pub held_here: usize,
    pub nodes: Vec<NodeView>,
    pub shards: Vec<ShardView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub node: String,
    /// Last heartbeat, RFC 3339 (database clock).
    pub seen_at: String,
    /// Seen within one lease.
    pub live: bool,
    /// Shards it holds with an unexpired lease.
    pub shards: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShardView {
    pub shard: i32,
    pub node: Option<String>,
    /// Grows on every take-over (the fence of attempt starts).
    pub epoch: i64,
    /// RFC 3339 (database clock); absent when never leased.
    pub expires_at: Option<String>,
}

/// What `GET /v1/cluster` shows, read from the database.
pub struct ClusterHandle {
    pub clock: Arc<dyn Clock>,
    pub opts: PgOptions,
    pub own: Arc<Ownership>,
    pub timing: LeaseTiming,
    db: tokio::sync::Mutex<Option<Client>>,
}

impl ClusterHandle {
    pub fn new(clock: Arc<dyn Clock>, opts: PgOptions, own: Arc<Ownership>, timing: LeaseTiming) -> Self {
        Self { clock, opts, own, timing, db: tokio::sync::Mutex::new(None) }
    }

    pub async fn view(&self) -> Result<ClusterView, StoreError> {
        let mut slot = self.db.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(connect(&self.opts, None).await?);
        }
        let db = slot.as_ref().expect("connected");
        let lease = self.timing.lease.as_secs_f64();
        let nodes = db
            .query(
                "SELECT n.node, to_char(n.seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                        n.seen_at > now() - make_interval(secs => $1),
                        (SELECT count(*) FROM redial_shards s WHERE s.node = n.node AND s.expires_at > now())
                   FROM redial_nodes n ORDER BY n.node",
                &[&lease],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| NodeView { node: r.get(0), seen_at: r.get(1), live: r.get(2), shards: r.get(3) })
            .collect();
        let shards = db
            .query(
                "SELECT shard, node, epoch, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                   FROM redial_shards ORDER BY shard",
                &[],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| ShardView { shard: r.get(0), node: r.get(1), epoch: r.get(2), expires_at: r.get(3) })
            .collect();
        let now = self.clock.now_ms();
        let held_here = self.own.list().iter().filter(|(s, _)| self.own.may_dial(*s, now).is_some()).count();
        Ok(ClusterView { node: self.own.node.clone(), held_here, nodes, shards })
    }
}
