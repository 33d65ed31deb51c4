//! Shard ownership with fencing. Callbacks fall into a fixed number of shards
//! ([`shard_of`]); each node leases some of them in PostgreSQL. A lease has an
//! expiry judged by the database's clock (so clock skew between nodes does
//! not matter) and an epoch that grows on every take-over. A node arms and
//! dials only callbacks of shards it holds, and starting attempt N is a
//! conditional write that checks the epoch ([`start_attempt`]): a node that
//! lost its lease cannot start an attempt even before it notices.
//!
//! [`Held`] is the node's own, sans-IO view: a shard may be dialled until a
//! local deadline counted from when the renewal that granted it was *sent*,
//! less a margin, so a node that cannot renew stops dialling before the
//! database can hand the shard to another node.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::clock::Millis;

/// Lease timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a renewal keeps a shard (database clock).
    pub lease: Duration,
    /// How often a node renews (well under `lease`).
    pub renew_every: Duration,
    /// How much earlier than the lease a node stops dialling (local clock):
    /// covers the renewal's trip and a bounded local clock drift.
    pub margin: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self { lease: Duration::from_secs(10), renew_every: Duration::from_secs(3), margin: Duration::from_secs(2) }
    }
}

/// The shard of a callback id: FNV-1a of its bytes, stable across nodes,
/// versions and restarts (never change it while a cluster holds data).
pub fn shard_of(callback_id: &str, shards: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in callback_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % shards.max(1)
}

/// The shards this node may dial, by its own clock.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    /// shard → (epoch, local deadline)
    shards: BTreeMap<u32, (i64, Millis)>,
}

impl Held {
    /// The database granted or renewed `shard` at `epoch` in answer to a
    /// request sent at `sent_at` (local clock).
    pub fn granted(&mut self, shard: u32, epoch: i64, sent_at: Millis, t: &LeaseTiming) {
        let deadline = sent_at + (t.lease.saturating_sub(t.margin)).as_millis() as Millis;
        self.shards.insert(shard, (epoch, deadline));
    }

    /// The shard is no longer ours (released, or a renewal did not return it).
    pub fn lost(&mut self, shard: u32) {
        self.shards.remove(&shard);
    }

    /// The epoch to fence an attempt with, if `shard` may be dialled at `now`.
    pub fn may_dial(&self, shard: u32, now: Millis) -> Option<i64> {
        self.shards.get(&shard).filter(|(_, deadline)| now < *deadline).map(|(epoch, _)| *epoch)
    }

    /// Forgets shards whose local deadline has passed (the renewals failed);
    /// returns them.
    pub fn expire(&mut self, now: Millis) -> Vec<u32> {
        let gone: Vec<u32> = self.shards.iter().filter(|(_, (_, d))| now >= *d).map(|(s, _)| *s).collect();
        for s in &gone {
            self.shards.remove(s);
        }
        gone
    }

    /// (shard, epoch) of every shard held, for a renewal.
    pub fn list(&self) -> Vec<(u32, i64)> {
        self.shards.iter().map(|(s, (e, _))| (*s, *e)).collect()
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// When the next local deadline falls, if any shard is held.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.shards.values().map(|(_, d)| *d).min()
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Records that `node` is alive (its API and SIP keep serving).
pub async fn heartbeat(db: &impl GenericClient, node: &str) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO redial_nodes (node, seen_at) VALUES ($1, now()) ON CONFLICT (node) DO UPDATE SET seen_at = now()",
        &[&node],
    )
    .await?;
    Ok(())
}

/// Nodes seen within one lease.
pub async fn live_nodes(db: &impl GenericClient, t: &LeaseTiming) -> Result<i64, tokio_postgres::Error> {
    let row = db
        .query_one("SELECT count(*) FROM redial_nodes WHERE seen_at > now() - make_interval(secs => $1)", &[&secs(t.lease)])
        .await?;
    Ok(row.get(0))
}

/// Takes up to `max` shards that nobody holds or whose lease has expired,
/// each with its epoch increased (the take-over that fences the old owner).
pub async fn claim(db: &impl GenericClient, node: &str, max: i64, t: &LeaseTiming) -> Result<Vec<(u32, i64)>, tokio_postgres::Error> {
    if max <= 0 {
        return Ok(vec![]);
    }
    let rows = db
        .query(
            "UPDATE redial_shards s
                SET node = $1, epoch = s.epoch + 1, expires_at = now() + make_interval(secs => $3)
              WHERE s.shard IN (SELECT shard FROM redial_shards
                                 WHERE expires_at IS NULL OR expires_at <= now()
                                 ORDER BY shard LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING s.shard, s.epoch",
            &[&node, &max, &secs(t.lease)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1))).collect())
}

/// Extends the leases `node` still holds at the same epoch and before their
/// expiry; returns the shards renewed (any other is lost).
pub async fn renew(db: &impl GenericClient, node: &str, held: &[(u32, i64)], t: &LeaseTiming) -> Result<Vec<u32>, tokio_postgres::Error> {
    if held.is_empty() {
        return Ok(vec![]);
    }
    let shards: Vec<i32> = held.iter().map(|(s, _)| *s as i32).collect();
    let epochs: Vec<i64> = held.iter().map(|(_, e)| *e).collect();
    let rows = db
        .query(
            "UPDATE redial_shards s SET expires_at = now() + make_interval(secs => $4)
               FROM unnest($2::int[], $3::bigint[]) AS h(shard, epoch)
              WHERE s.shard = h.shard AND s.epoch = h.epoch AND s.node = $1 AND s.expires_at > now()
          RETURNING s.shard",
            &[&node, &shards, &epochs, &secs(t.lease)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
}

/// Gives shards back at once (rebalancing after another node joined).
pub async fn release(db: &impl GenericClient, node: &str, shards: &[u32]) -> Result<(), tokio_postgres::Error> {
    let shards: Vec<i32> = shards.iter().map(|s| *s as i32).collect();
    db.execute("UPDATE redial_shards SET expires_at = now() WHERE node = $1 AND shard = ANY($2)", &[&node, &shards]).await?;
    Ok(())
}

/// The fenced start of attempt `attempt` of `callback`: recorded only while
/// `node` holds `shard` at `epoch` with an unexpired lease, and only once
/// per (callback, attempt) in the cluster's life. `true` = dial it.
pub async fn start_attempt(
    db: &impl GenericClient,
    node: &str,
    shard: u32,
    epoch: i64,
    callback: &str,
    attempt: u32,
) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "INSERT INTO redial_attempt_starts (callback, attempt, shard, node, epoch)
             SELECT $1, $2, s.shard, s.node, s.epoch FROM redial_shards s
              WHERE s.shard = $3 AND s.node = $4 AND s.epoch = $5 AND s.expires_at > now()
             ON CONFLICT DO NOTHING",
            &[&callback, &(attempt as i32), &(shard as i32), &node, &epoch],
        )
        .await?;
    Ok(n == 1)
}

/// How many shards a node should hold with `live` nodes sharing `total`.
pub fn fair_share(total: u32, live: i64) -> i64 {
    let live = live.max(1);
    (i64::from(total) + live - 1) / live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stops_dialling_before_its_lease_can_be_taken() {
        let t = LeaseTiming { lease: Duration::from_secs(10), renew_every: Duration::from_secs(3), margin: Duration::from_secs(2) };
        let mut h = Held::default();
        h.granted(3, 7, 1_000, &t);
        assert_eq!(h.may_dial(3, 1_000), Some(7));
        assert_eq!(h.may_dial(3, 8_999), Some(7));
        // The database's lease runs until at least 11_000 (sent at 1_000);
        // the node stops at 9_000.
        assert_eq!(h.may_dial(3, 9_000), None);
        assert_eq!(h.poll_timeout(), Some(9_000));
        assert_eq!(h.expire(9_000), vec![3]);
        assert!(h.is_empty());
        assert_eq!(h.may_dial(4, 0), None, "never held");
    }

    #[test]
    fn a_renewal_moves_the_deadline_and_a_loss_ends_it() {
        let t = LeaseTiming::default();
        let mut h = Held::default();
        h.granted(1, 1, 0, &t);
        h.granted(1, 1, 3_000, &t);
        assert_eq!(h.may_dial(1, 10_000), Some(1));
        h.lost(1);
        assert_eq!(h.may_dial(1, 10_000), None);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("cb_abc", 64), shard_of("cb_abc", 64));
        let mut counts = [0u32; 8];
        for i in 0..8_000 {
            counts[shard_of(&format!("cb_{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1_200).contains(&c)), "{counts:?}");
        assert_eq!(fair_share(64, 3), 22);
        assert_eq!(fair_share(64, 0), 64);
    }
}
