//! Agents' registrations and away choices in PostgreSQL: the saved-registrations
//! store of a cluster node. Every node writes the agents whose bindings it changed
//! and loads all of them at start, so an agent registered at one node before a
//! restart is reachable from whichever node restarts.

use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::book::{connect, PgOptions};
use super::schema;
use crate::agents::saved::{Batch, RegistrationStore, SavedBinding, SavedError, SavedFuture, Snapshot};

pub struct PgRegistrations {
    opts: PgOptions,
    /// One connection, made again after an error.
    client: Mutex<Option<Client>>,
}

fn db_error(e: impl std::fmt::Display) -> SavedError {
    SavedError::Postgres(e.to_string())
}

impl PgRegistrations {
    /// Connects and applies the cluster's migrations (idempotent; the book does the same).
    pub async fn open(opts: PgOptions) -> Result<Self, SavedError> {
        let mut client = connect(&opts, None).await.map_err(db_error)?;
        schema::migrate(&mut client, opts.shards).await.map_err(db_error)?;
        Ok(Self { opts, client: Mutex::new(Some(client)) })
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
                    let rows = c.query("SELECT agent, contact, expires_at, source FROM redial_agent_bindings ORDER BY agent, contact", &[]).await?;
                    let away = c.query("SELECT agent FROM redial_agent_away", &[]).await?;
                    Ok((rows, away))
                })
                .await?;
            let mut out = Snapshot::default();
            for r in rows {
                let agent: String = r.get(0);
                let source: String = r.get(3);
                let source = source.parse().map_err(|e| SavedError::Corrupt { agent: agent.clone(), message: format!("source `{source}`: {e}") })?;
                out.bindings.entry(agent).or_default().push(SavedBinding { contact: r.get(1), expires_at: r.get(2), source });
            }
            out.away = away.iter().map(|r| r.get(0)).collect();
            Ok(out)
        })
    }

    fn save(&self, batch: Batch) -> SavedFuture<'_, ()> {
        Box::pin(async move {
            self.with_client(async |c| {
                let tx = c.transaction().await?;
                let delete = tx.prepare("DELETE FROM redial_agent_bindings WHERE agent = $1").await?;
                let insert = tx.prepare("INSERT INTO redial_agent_bindings (agent, contact, expires_at, source) VALUES ($1, $2, $3, $4)").await?;
                for (agent, list) in &batch.bindings {
                    tx.execute(&delete, &[agent]).await?;
                    for b in list {
                        tx.execute(&insert, &[agent, &b.contact, &b.expires_at, &b.source.to_string()]).await?;
                    }
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
