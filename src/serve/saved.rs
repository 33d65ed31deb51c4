//! Saved registrations for `serve`: opens the store the configured backend calls for
//! (a redb file beside the book, or the cluster's PostgreSQL), and writes behind, about
//! once a second, the bindings of the agents the registrar marked and the away choices
//! that changed, each round in one transaction. In a cluster, also merges the other
//! nodes' registrations into the bindings the dialler and the agents' registry read.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cluster::bindings::{Others, PgRegistrations};

use crate::agents::saved::{Batch, Dirty, RegistrationStore, SavedError, Snapshot};
use crate::agents::{AgentState, Registry};
use crate::clock::Clock;
use crate::config::{Backend, Config};
use crate::sip::endpoint::{saved_bindings, AgentBinding, AgentBindings};

/// How often marked agents are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The store for `cfg`'s backend; on PostgreSQL also the store itself, whose other
/// nodes' bindings this node follows.
pub struct Opened {
    pub store: Arc<dyn RegistrationStore>,
    pub shared: Option<Arc<PgRegistrations>>,
}

/// Opens the store for `cfg`'s backend.
pub async fn open(cfg: &Config) -> Result<Opened, SavedError> {
    match &cfg.backend {
        Backend::Postgres { url } => {
            let shards = cfg.cluster.as_ref().map_or(64, |c| c.shards);
            let node = cfg.cluster.as_ref().map(|c| c.node.clone()).unwrap_or_default();
            let opts = crate::cluster::book::PgOptions { shards, ..crate::cluster::book::PgOptions::new(url.clone()) };
            let pg = Arc::new(PgRegistrations::open(opts, node).await?);
            Ok(Opened { store: pg.clone(), shared: Some(pg) })
        }
        Backend::Redb => {
            let path = crate::agents::saved::redb::path_beside(&cfg.storage_path);
            let store = tokio::task::spawn_blocking(move || crate::agents::saved::redb::RedbRegistrations::open(&path))
                .await
                .map_err(|e| SavedError::Redb { path: cfg.storage_path.clone(), message: e.to_string() })??;
            Ok(Opened { store: Arc::new(store), shared: None })
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

/// Keeps `merged` equal to this node's bindings (`local`, which its registrar writes)
/// with the other nodes' live bindings added (a contact this node holds is not added
/// twice), and bumps `merged_changes` after each change, until `stop`. It looks again
/// when the registrar changed `local`, when `others` changed, and when the earliest
/// of the others' bindings expires (which is then dropped).
pub async fn merge_others(
    local: AgentBindings,
    mut local_changes: watch::Receiver<u64>,
    mut others: watch::Receiver<Arc<Others>>,
    merged: AgentBindings,
    merged_changes: watch::Sender<u64>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    // Each remote binding's expiry as a monotonic instant, fixed when it is first seen,
    // so a merge that changes nothing else gives the registry the same expiry again.
    let mut instants: HashMap<(String, String, i64), Instant> = HashMap::new();
    loop {
        let remote = others.borrow_and_update().clone();
        let (now, wall_now) = (Instant::now(), clock.now_ms());
        let mut next_expiry: Option<Instant> = None;
        let mut seen = HashMap::new();
        let combined = {
            let mut combined = local.read().expect("agent bindings lock").clone();
            local_changes.borrow_and_update();
            for (agent, list) in remote.iter() {
                for b in list {
                    let key = (agent.clone(), b.contact.clone(), b.expires_at);
                    let at = *instants
                        .entry(key.clone())
                        .or_insert_with(|| now + Duration::from_millis(b.expires_at.saturating_sub(wall_now).max(0) as u64));
                    seen.insert(key, at);
                    if at <= now {
                        continue;
                    }
                    let mine = combined.entry(agent.clone()).or_default();
                    if mine.iter().any(|m| m.contact == b.contact) {
                        continue;
                    }
                    next_expiry = Some(next_expiry.map_or(at, |n| n.min(at)));
                    let source = crate::sip::Peer { addr: b.source, transport: crate::config::Transport::Udp };
                    mine.push(AgentBinding { contact: b.contact.clone(), expires_at: at, source });
                }
            }
            combined.retain(|_, l| !l.is_empty());
            combined
        };
        instants = seen;
        let changed = {
            let mut view = merged.write().expect("agent bindings lock");
            let changed = *view != combined;
            if changed {
                *view = combined;
            }
            changed
        };
        if changed {
            merged_changes.send_modify(|g| *g = g.wrapping_add(1));
        }
        let expiry = async {
            match next_expiry {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = local_changes.changed() => if r.is_err() { return },
            r = others.changed() => if r.is_err() { return },
            _ = expiry => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::saved::SavedBinding;
    use crate::clock::SystemClock;

    fn remote(contact: &str, port: u16, expires_at: i64) -> SavedBinding {
        SavedBinding { contact: contact.into(), expires_at, source: ([127, 0, 0, 1], port).into() }
    }

    #[tokio::test]
    async fn other_nodes_bindings_are_added_once_and_follow_their_changes() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let later = clock.now_ms() + 3_600_000;
        let local = AgentBindings::default();
        let peer = crate::sip::Peer { addr: ([127, 0, 0, 1], 5070).into(), transport: crate::config::Transport::Udp };
        let mine = AgentBinding { contact: "sip:alice@10.0.0.1".into(), expires_at: Instant::now() + Duration::from_secs(600), source: peer };
        local.write().unwrap().insert("alice".into(), vec![mine.clone()]);
        let (_local_tx, local_rx) = watch::channel(0u64);
        let mut others = Others::new();
        // alice's contact also held by another node (a phone that moved) is not added twice.
        others.insert("alice".into(), vec![remote("sip:alice@10.0.0.1", 5071, later), remote("sip:alice@10.0.0.2", 5072, later)]);
        others.insert("bob".into(), vec![remote("sip:bob@10.0.0.3", 5073, later)]);
        let (others_tx, others_rx) = watch::channel(Arc::new(others));
        let merged = AgentBindings::default();
        let (merged_tx, mut merged_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(merge_others(local, local_rx, others_rx, merged.clone(), merged_tx, clock, stop_rx));

        merged_rx.changed().await.unwrap();
        {
            let view = merged.read().unwrap();
            let contacts = |a: &str| view.get(a).map(|l| l.iter().map(|b| b.contact.clone()).collect::<Vec<_>>()).unwrap_or_default();
            assert_eq!(contacts("alice"), vec!["sip:alice@10.0.0.1", "sip:alice@10.0.0.2"]);
            assert_eq!(view["alice"][0], mine, "this node's own binding is kept as is");
            assert_eq!(contacts("bob"), vec!["sip:bob@10.0.0.3"]);
            assert_eq!(view["bob"][0].source.addr.port(), 5073, "rung where the other node's REGISTER came from");
        }

        // bob unregisters at the other node: gone here; an expired binding is not added.
        let mut next = Others::new();
        next.insert("carol".into(), vec![remote("sip:carol@10.0.0.4", 5074, 1)]);
        others_tx.send(Arc::new(next)).unwrap();
        merged_rx.changed().await.unwrap();
        {
            let view = merged.read().unwrap();
            assert_eq!(view.keys().collect::<Vec<_>>(), vec!["alice"], "{view:?}");
            assert_eq!(view["alice"], vec![mine]);
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
