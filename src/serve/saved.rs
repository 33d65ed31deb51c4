//! Saved registrations for `serve`: opens the store the configured backend calls for
//! (a redb file beside the book, or the cluster's PostgreSQL), and writes behind, about
//! once a second, the bindings of the agents the registrar marked and the away choices
//! that changed, each round in one transaction.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::agents::saved::{Batch, Dirty, RegistrationStore, SavedError, Snapshot};
use crate::agents::{AgentState, Registry};
use crate::clock::Clock;
use crate::config::{Backend, Config};
use crate::sip::endpoint::{saved_bindings, AgentBindings};

/// How often marked agents are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Opens the store for `cfg`'s backend.
pub async fn open(cfg: &Config) -> Result<Arc<dyn RegistrationStore>, SavedError> {
    match &cfg.backend {
        Backend::Postgres { url } => {
            let shards = cfg.cluster.as_ref().map_or(64, |c| c.shards);
            let opts = crate::cluster::book::PgOptions { shards, ..crate::cluster::book::PgOptions::new(url.clone()) };
            Ok(Arc::new(crate::cluster::bindings::PgRegistrations::open(opts).await?))
        }
        Backend::Redb => {
            let path = crate::agents::saved::redb::path_beside(&cfg.storage_path);
            let store = tokio::task::spawn_blocking(move || crate::agents::saved::redb::RedbRegistrations::open(&path))
                .await
                .map_err(|e| SavedError::Redb { path: cfg.storage_path.clone(), message: e.to_string() })??;
            Ok(Arc::new(store))
        }
    }
}

/// Puts the saved away choices back into the registry.
pub fn restore_away(registry: &Registry, snapshot: &Snapshot) {
    for agent in &snapshot.away {
        // An agent no longer configured is skipped; the next write forgets it.
        let _ = registry.set_state(agent, AgentState::Away);
    }
}

/// Writes behind until `stop`, then once more. A failed write is logged and kept for
/// the next round (later changes win), so nothing marked is lost while the process lives.
pub async fn write_behind(
    store: Arc<dyn RegistrationStore>,
    view: AgentBindings,
    dirty: Dirty,
    registry: Arc<Registry>,
    saved_away: BTreeSet<String>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut away = saved_away;
    let mut pending = Batch::default();
    // Agents saved away who are no longer configured are forgotten by the first write.
    for gone in away.iter().filter(|a| registry.get(a).is_none()) {
        pending.away.insert(gone.clone(), false);
    }
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let (now, wall_now) = (Instant::now(), clock.now_ms());
        for agent in dirty.take() {
            let list = saved_bindings(&view, &agent, now, wall_now);
            pending.bindings.insert(agent, list);
        }
        let current = registry.away_agents();
        for a in current.symmetric_difference(&away) {
            pending.away.insert(a.clone(), current.contains(a));
        }
        away = current;
        if !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            let (agents, choices) = (batch.bindings.len(), batch.away.len());
            match store.save(batch.clone()).await {
                Ok(()) => tracing::debug!(agents, away_choices = choices, "registrations saved"),
                Err(e) => {
                    tracing::warn!(error = %e, agents, "registrations not saved; retrying");
                    let mut retry = batch;
                    retry.merge(std::mem::take(&mut pending));
                    pending = retry;
                }
            }
        }
        if last {
            return;
        }
    }
}
