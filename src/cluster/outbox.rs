//! The durable outbox in PostgreSQL (migration 6 in [`super::schema`]), shared by the nodes of a
//! cluster: every event is written in the same transaction as the change
//! it reports (the writer's batch), in the redb outbox's encoding, so
//! receivers see the same ids, payloads, headers and signatures.
//!
//! **Sequence.** Event sequences must follow commit order across nodes, or
//! a reader that has seen sequence 12 could later miss a sequence 11 that
//! committed after it (a job-queue reader that polls `seq > cursor` skips
//! such a row for good). PostgreSQL sequences (`nextval`) are handed out
//! at call time, not at commit, so they do not give that. Here the counter
//! is one row, `redial_outbox_next`, moved by an `UPDATE` as the last
//! statement before `COMMIT`: the row lock it takes is held until the
//! commit, so a second transaction taking sequences waits until the first
//! has committed, and every reader that sees a sequence also sees every
//! lower one. The counter never has gaps (a rolled-back batch rolls it
//! back too). The price is that batches carrying events commit one after
//! another across the nodes (the lock lasts one commit's flush); the xid8
//! "visible-only" rule of some queues avoids that but orders by
//! transaction start, which makes `Last-Event-ID` resumption harder.
//!
//! **Turns.** Webhook deliverers and the texts on events must each run
//! once in the cluster: a row of `redial_outbox_turns` per task, a lease
//! with expiry judged by the database's `now()` as shard leases are. A node
//! holds it for less than the lease (its own deadline) and renews it well
//! before; a node SIGKILLed stops renewing, and another takes it over once
//! the lease has lapsed, resuming after the stored cursor (at least once).

use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::error::pg_error;
use crate::clock::Millis;
use crate::events::outbox::{Parked, RetryOutcome};
use crate::events::{Backoff, Event, Kind, Payload};
use crate::scheduler::book::StoreError;
use crate::scheduler::model::CallbackId;
use crate::scheduler::store::outbox::{decode_event, encode_event, OutboxOp, RETAIN};
use crate::sms::TextRecord;

/// Most events one prune deletes, so pruning never holds the writer long.
const PRUNE_CHUNK: i64 = 4_096;

/// Appends `events` with the next sequences of the cluster; the counter's
/// row stays locked until the caller's transaction ends, so call it last
/// before `COMMIT`. Returns the events with their sequences.
pub async fn append(db: &Client, events: Vec<(Kind, Millis, Payload)>) -> Result<Vec<Event>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<Event> = events.into_iter().map(|(kind, at, payload)| Event { seq: 0, kind, at, payload, rendered: Default::default() }).collect();
    let bodies: Vec<Vec<u8>> = out.iter().map(encode_event).collect();
    let n = out.len() as i64;
    let row = db
        .query_one(
            "WITH s AS (UPDATE redial_outbox_next SET next = next + $1 RETURNING next - $1 AS first),
                  i AS (INSERT INTO redial_outbox (seq, event)
                        SELECT s.first + u.n - 1, u.e FROM s, unnest($2::bytea[]) WITH ORDINALITY AS u(e, n))
             SELECT first FROM s",
            &[&n, &bodies],
        )
        .await
        .map_err(pg_error)?;
    let first: i64 = row.get(0);
    for (i, ev) in out.iter_mut().enumerate() {
        ev.seq = first as u64 + i as u64;
    }
    Ok(out)
}

/// Applies cursor, back-off, park, text and retry work in the caller's
/// transaction. A cursor only moves forward: a node that lost its turn
/// and saves late cannot take it back (that would only repeat deliveries).
pub async fn apply(db: &Client, op: OutboxOp) -> Result<(), StoreError> {
    let exec = |sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>| async move {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        db.execute(sql, &refs).await.map_err(pg_error)
    };
    match op {
        OutboxOp::Publish(..) => unreachable!("publications are events"),
        OutboxOp::Cursor(endpoint, seq) => {
            exec(
                "INSERT INTO redial_webhook_cursors (endpoint, seq) VALUES ($1, $2)
                 ON CONFLICT (endpoint) DO UPDATE SET seq = greatest(redial_webhook_cursors.seq, EXCLUDED.seq)",
                vec![Box::new(endpoint), Box::new(seq as i64)],
            )
            .await?;
        }
        OutboxOp::Backoff(endpoint, Some(b)) => {
            exec(
                "INSERT INTO redial_webhook_backoff (endpoint, backoff) VALUES ($1, $2)
                 ON CONFLICT (endpoint) DO UPDATE SET backoff = EXCLUDED.backoff",
                vec![Box::new(endpoint), Box::new(serde_json::to_vec(&b).unwrap_or_default())],
            )
            .await?;
        }
        OutboxOp::Backoff(endpoint, None) => {
            exec("DELETE FROM redial_webhook_backoff WHERE endpoint = $1", vec![Box::new(endpoint)]).await?;
        }
        OutboxOp::Park(p) => {
            exec("INSERT INTO redial_webhook_parked (parked) VALUES ($1)", vec![Box::new(serde_json::to_vec(&p).unwrap_or_default())]).await?;
        }
        OutboxOp::Text(rec) => {
            exec(
                "INSERT INTO redial_texts (callback, record) VALUES ($1, $2)",
                vec![Box::new(rec.callback_id as i64), Box::new(serde_json::to_vec(&rec).unwrap_or_default())],
            )
            .await?;
        }
        OutboxOp::Retried(id, outcome, _) => {
            let row = db.query_opt("SELECT parked FROM redial_webhook_parked WHERE id = $1 FOR UPDATE", &[&(id as i64)]).await.map_err(pg_error)?;
            let Some(mut p) = row.and_then(|r| serde_json::from_slice::<Parked>(r.get::<_, &[u8]>(0)).ok()) else { return Ok(()) };
            match outcome {
                RetryOutcome::Delivered => {
                    exec("DELETE FROM redial_webhook_parked WHERE id = $1", vec![Box::new(id as i64)]).await?;
                }
                RetryOutcome::Failed { at, error } => {
                    p.failures += 1;
                    p.last_failure = at;
                    p.last_error = error;
                    exec("UPDATE redial_webhook_parked SET parked = $2 WHERE id = $1", vec![Box::new(id as i64), Box::new(serde_json::to_vec(&p).unwrap_or_default())]).await?;
                }
            }
        }
    }
    Ok(())
}

/// Deletes a chunk of the oldest events: it keeps the newest [`RETAIN`]
/// (for `/v1/events` resumption) and every one a configured endpoint has
/// not yet got past, as the redb outbox does. Returns how many went.
pub async fn prune(db: &Client, endpoints: &[String]) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM redial_outbox WHERE seq < least(
             (SELECT next FROM redial_outbox_next) - $1,
             coalesce((SELECT min(seq) + 1 FROM redial_webhook_cursors WHERE endpoint = ANY($2)), 9223372036854775807),
             coalesce((SELECT min(seq) FROM redial_outbox), 0) + $3)",
        &[&(RETAIN as i64), &endpoints, &PRUNE_CHUNK],
    )
    .await
    .map_err(pg_error)
}

pub async fn after(db: &Client, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
    let rows = db
        .query("SELECT seq, event FROM redial_outbox WHERE seq > $1 ORDER BY seq LIMIT $2", &[&(after.min(i64::MAX as u64) as i64), &(limit as i64)])
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|r| {
            let seq = r.get::<_, i64>(0) as u64;
            // A record this build cannot read is reported, not skipped silently.
            decode_event(seq, r.get(1)).map_err(|source| StoreError::Decode { id: CallbackId(0), source })
        })
        .collect()
}

pub async fn next_seq(db: &Client) -> Result<u64, StoreError> {
    Ok(db.query_one("SELECT next FROM redial_outbox_next", &[]).await.map_err(pg_error)?.get::<_, i64>(0) as u64)
}

pub async fn cursor(db: &Client, endpoint: &str) -> Result<Option<u64>, StoreError> {
    let row = db.query_opt("SELECT seq FROM redial_webhook_cursors WHERE endpoint = $1", &[&endpoint]).await.map_err(pg_error)?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

pub async fn backoff(db: &Client, endpoint: &str) -> Result<Option<Backoff>, StoreError> {
    let row = db.query_opt("SELECT backoff FROM redial_webhook_backoff WHERE endpoint = $1", &[&endpoint]).await.map_err(pg_error)?;
    // A record this build cannot read is dropped: the head is then tried at once.
    Ok(row.and_then(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok()))
}

fn parked_row(r: &tokio_postgres::Row) -> Option<Parked> {
    let mut p: Parked = serde_json::from_slice(r.get::<_, &[u8]>(1)).ok()?;
    p.id = r.get::<_, i64>(0) as u64;
    Some(p)
}

pub async fn parked(db: &Client, limit: usize, after: Option<u64>) -> Result<Vec<Parked>, StoreError> {
    let rows = db
        .query("SELECT id, parked FROM redial_webhook_parked WHERE id > $1 ORDER BY id LIMIT $2", &[&(after.unwrap_or(0) as i64), &(limit as i64)])
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().filter_map(parked_row).collect())
}

pub async fn parked_get(db: &Client, id: u64) -> Result<Option<Parked>, StoreError> {
    let row = db.query_opt("SELECT id, parked FROM redial_webhook_parked WHERE id = $1", &[&(id as i64)]).await.map_err(pg_error)?;
    Ok(row.as_ref().and_then(parked_row))
}

pub async fn parked_count(db: &Client) -> Result<u64, StoreError> {
    Ok(db.query_one("SELECT count(*) FROM redial_webhook_parked", &[]).await.map_err(pg_error)?.get::<_, i64>(0) as u64)
}

pub async fn texts(db: &Client, callback: u64) -> Result<Vec<TextRecord>, StoreError> {
    let rows = db.query("SELECT record FROM redial_texts WHERE callback = $1 ORDER BY n", &[&(callback as i64)]).await.map_err(pg_error)?;
    Ok(rows.iter().filter_map(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok()).collect())
}

/// Takes or renews `node`'s turn of `task` for `lease` (by the database's
/// clock); whether this node has it now.
pub async fn take_turn(db: &Client, task: &str, node: &str, lease: Duration) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "INSERT INTO redial_outbox_turns (task, node, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
             ON CONFLICT (task) DO UPDATE SET node = EXCLUDED.node, expires_at = EXCLUDED.expires_at
             WHERE redial_outbox_turns.node = EXCLUDED.node OR redial_outbox_turns.expires_at <= now()
             RETURNING node",
            &[&task, &node, &lease.as_secs_f64()],
        )
        .await
        .map_err(pg_error)?;
    Ok(row.is_some())
}

/// Gives `node`'s turn of `task` back, so another node takes it at once.
pub async fn end_turn(db: &Client, task: &str, node: &str) -> Result<(), StoreError> {
    db.execute("DELETE FROM redial_outbox_turns WHERE task = $1 AND node = $2", &[&task, &node]).await.map_err(pg_error)?;
    Ok(())
}
