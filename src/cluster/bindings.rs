//! Agents' registrations and away choices in PostgreSQL: the saved-registrations
//! store of a cluster node, and how the nodes share their registrations.
//!
//! Each node owns the rows of the bindings its registrar holds (`node` column):
//! about once a second it replaces the lists of the agents whose bindings changed,
//! and in the same transaction sends `NOTIFY redial_bindings` with its name. At
//! start a node restores its own rows into its registrar. Every running node
//! LISTENs, and on another node's notification reads the other nodes' live rows
//! again ([`follow_others`]); it also reads them every [`FALLBACK_POLL`], which
//! bounds what a missed notification (a reconnect) can delay. So an agent who
//! registered with one node is rung by every node within about two seconds, and
//! an unregister or an expiry there reaches the others as fast.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio_postgres::Client;

use super::book::{connect, PgOptions};
use super::schema;
use crate::agents::saved::{Batch, RegistrationStore, SavedBinding, SavedError, SavedFuture, Snapshot};
use crate::clock::Clock;

/// The channel a node notifies after writing bindings; the payload is its name.
pub const CHANNEL: &str = "redial_bindings";

/// How often the other nodes' bindings are read even without a notification.
pub const FALLBACK_POLL: Duration = Duration::from_secs(10);

/// Other nodes' live bindings, by agent.
pub type Others = BTreeMap<String, Vec<SavedBinding>>;

pub struct PgRegistrations {
    opts: PgOptions,
    /// This node's name: the owner of the rows it writes.
    node: String,
    /// One connection, made again after an error.
    client: Mutex<Option<Client>>,
}

fn db_error(e: impl std::fmt::Display) -> SavedError {
    SavedError::Postgres(e.to_string())
}

impl PgRegistrations {
    /// Connects and applies the cluster's migrations (idempotent; the book does the same).
    /// `node` names the rows this store writes and loads.
    pub async fn open(opts: PgOptions, node: impl Into<String>) -> Result<Self, SavedError> {
        let mut client = connect(&opts, None).await.map_err(db_error)?;
        schema::migrate(&mut client, opts.shards).await.map_err(db_error)?;
        Ok(Self { opts, node: node.into(), client: Mutex::new(Some(client)) })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The bindings other nodes hold that have not expired at `now_ms` (wall clock).
    pub async fn others(&self, now_ms: i64) -> Result<Others, SavedError> {
        let rows = self
            .with_client(async |c| {
                c.query(
                    "SELECT agent, contact, expires_at, source FROM redial_agent_bindings WHERE node <> $1 AND expires_at > $2 ORDER BY agent, node, contact",
                    &[&self.node, &now_ms],
                )
                .await
            })
            .await?;
        let mut out = Others::new();
        for r in rows {
            let agent: String = r.get(0);
            let b = binding(&agent, r.get(1), r.get(2), r.get(3))?;
            let list = out.entry(agent).or_default();
            // Two nodes may hold the same contact (a phone that moved): keep one, the later expiry.
            match list.iter_mut().find(|x| x.contact == b.contact) {
                Some(x) if x.expires_at < b.expires_at => *x = b,
                Some(_) => {}
                None => list.push(b),
            }
        }
        Ok(out)
    }

    async fn with_client<T>(&self, work: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>) -> Result<T, SavedError> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(connect(&self.opts, None).await.map_err(db_error)?);
        }
        let client = slot.as_mut().expect("connected");
        let out = work(client).await;
        if out.is_err() {
            *slot = None;
        }
        out.map_err(|e| match e.as_db_error() {
            Some(db) => SavedError::Postgres(format!("{} ({})", db.message(), db.code().code())),
            None => db_error(e),
        })
    }
}

impl RegistrationStore for PgRegistrations {
    fn load(&self) -> SavedFuture<'_, Snapshot> {
        Box::pin(async move {
            let (rows, away) = self
                .with_client(async |c| {
                    let rows = c
                        .query("SELECT agent, contact, expires_at, source FROM redial_agent_bindings WHERE node = $1 ORDER BY agent, contact", &[&self.node])
                        .await?;
                    let away = c.query("SELECT agent FROM redial_agent_away", &[]).await?;
                    Ok((rows, away))
                })
                .await?;
            let mut out = Snapshot::default();
            for r in rows {
                let agent: String = r.get(0);
                let b = binding(&agent, r.get(1), r.get(2), r.get(3))?;
                out.bindings.entry(agent).or_default().push(b);
            }
            out.away = away.iter().map(|r| r.get(0)).collect();
            Ok(out)
        })
    }

    fn save(&self, batch: Batch) -> SavedFuture<'_, ()> {
        Box::pin(async move {
            self.with_client(async |c| {
                let tx = c.transaction().await?;
                let delete = tx.prepare("DELETE FROM redial_agent_bindings WHERE agent = $1 AND node = $2").await?;
                let insert =
                    tx.prepare("INSERT INTO redial_agent_bindings (agent, node, contact, expires_at, source) VALUES ($1, $2, $3, $4, $5)").await?;
                for (agent, list) in &batch.bindings {
                    tx.execute(&delete, &[agent, &self.node]).await?;
                    for b in list {
                        tx.execute(&insert, &[agent, &self.node, &b.contact, &b.expires_at, &b.source.to_string()]).await?;
                    }
                }
                if !batch.bindings.is_empty() {
                    // Delivered to the listeners only if the transaction commits.
                    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.node]).await?;
                }
                for (agent, away) in &batch.away {
                    if *away {
                        tx.execute("INSERT INTO redial_agent_away (agent) VALUES ($1) ON CONFLICT DO NOTHING", &[agent]).await?;
                    } else {
                        tx.execute("DELETE FROM redial_agent_away WHERE agent = $1", &[agent]).await?;
                    }
                }
                tx.commit().await
            })
            .await
        })
    }
}

fn binding(agent: &str, contact: String, expires_at: i64, source: String) -> Result<SavedBinding, SavedError> {
    let source = source.parse().map_err(|e| SavedError::Corrupt { agent: agent.to_string(), message: format!("source `{source}`: {e}") })?;
    Ok(SavedBinding { contact, expires_at, source })
}

/// Keeps `out` equal to the other nodes' live bindings until `stop`: read at start,
/// again after each notification from another node (a burst is read once), and every
/// [`FALLBACK_POLL`]. The listening connection is made again when it ends, and the
/// bindings are read again then, as notifications may have been missed. A failed read
/// keeps the last bindings read (each expires on its own) and is tried at the next poll.
pub async fn follow_others(store: Arc<PgRegistrations>, clock: Arc<dyn Clock>, out: watch::Sender<Arc<Others>>, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut listen: Option<Client> = None;
    let mut tick = tokio::time::interval(FALLBACK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if listen.as_ref().is_none_or(|c| c.is_closed()) {
            listen = match listen_to(&store.opts, &tx).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' registrations; reading them every {FALLBACK_POLL:?}");
                    None
                }
            };
        }
        match store.others(clock.now_ms()).await {
            Ok(others) => {
                out.send_if_modified(|cur| {
                    let changed = **cur != others;
                    if changed {
                        tracing::debug!(agents = others.len(), "other nodes' registrations read");
                        *cur = Arc::new(others);
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "other nodes' registrations not read; trying again"),
        }
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => break,
                n = rx.recv() => {
                    let Some(from) = n else { return };
                    let mut other = from != store.node;
                    while let Ok(more) = rx.try_recv() {
                        other |= more != store.node;
                    }
                    if other {
                        break;
                    }
                }
            }
        }
    }
}

async fn listen_to(opts: &PgOptions, tx: &mpsc::UnboundedSender<String>) -> Result<Client, SavedError> {
    let c = connect(opts, Some(tx.clone())).await.map_err(db_error)?;
    c.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(db_error)?;
    Ok(c)
}
