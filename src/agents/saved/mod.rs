//! Agents' registrations and away/available choices that outlive the process.
//!
//! The registrar keeps bindings in memory; after a restart or a crash an agent
//! would stay unreachable until its softphone next re-registers (often an hour).
//! So every change is written behind, in batches: the registrar marks the agent
//! dirty ([`Dirty`]), and a flusher takes the dirty set about once a second and
//! writes each marked agent's whole binding list, and the changed away choices,
//! in one transaction ([`RegistrationStore::save`]). Nothing touches the disk on
//! the REGISTER path; a SIGKILL loses at most the last second of changes, which
//! the softphones' next refresh restores.
//!
//! Only bindings a restarted process can reach again are kept: UDP ones (the
//! contact and the address the REGISTER came from). A binding over TCP, TLS or
//! WebSocket lives on its connection, which dies with the process, so it is
//! not saved.
//!
//! - [`redb`](self::redb): a small redb file beside the book (the single-node store).
//! - `cluster::bindings`: the same in PostgreSQL, shared by the nodes of a cluster.

pub mod redb;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::config::Transport;

/// One saved binding of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBinding {
    /// The Contact URI as registered.
    pub contact: String,
    /// When it expires, wall-clock milliseconds since the Unix epoch.
    pub expires_at: Millis,
    /// Where the REGISTER came from (where INVITEs go behind NAT).
    pub source: SocketAddr,
}

/// Whether a binding over `transport` can be reached again by a new process.
pub fn survives_restart(transport: Transport) -> bool {
    transport == Transport::Udp
}

/// What a store holds: each agent's bindings, and the agents who chose `away`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub bindings: BTreeMap<String, Vec<SavedBinding>>,
    pub away: BTreeSet<String>,
}

/// One write: each named agent's whole binding list (empty = none left), and
/// each named agent's away choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub bindings: BTreeMap<String, Vec<SavedBinding>>,
    pub away: BTreeMap<String, bool>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty() && self.away.is_empty()
    }

    /// Folds `later` over this batch (its entries win), for a retry after a failed write.
    pub fn merge(&mut self, later: Batch) {
        self.bindings.extend(later.bindings);
        self.away.extend(later.away);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("registrations file {path}: {message}")]
    Redb { path: std::path::PathBuf, message: String },
    #[error("registrations in PostgreSQL: {0}")]
    Postgres(String),
    #[error("registration record of `{agent}` is unreadable: {message}")]
    Corrupt { agent: String, message: String },
}

pub type SavedFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SavedError>> + Send + 'a>>;

/// Where registrations and away choices are kept between runs.
pub trait RegistrationStore: Send + Sync {
    /// Everything saved, expired bindings included (the caller drops them).
    fn load(&self) -> SavedFuture<'_, Snapshot>;
    /// Applies `batch` in one transaction: all of it or nothing.
    fn save(&self, batch: Batch) -> SavedFuture<'_, ()>;
}

/// The agents whose bindings changed since the flusher last looked. The registrar
/// marks (one uncontended lock and a set insert); the flusher takes the set whole.
#[derive(Debug, Clone, Default)]
pub struct Dirty(Arc<Mutex<HashSet<String>>>);

impl Dirty {
    pub fn mark(&self, agent: &str) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !set.contains(agent) {
            set.insert(agent.to_string());
        }
    }

    /// The marked agents, leaving the set empty.
    pub fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_batch_wins_over_an_earlier_one() {
        let b = |c: &str| SavedBinding { contact: c.into(), expires_at: 1, source: "127.0.0.1:5060".parse().unwrap() };
        let mut first = Batch::default();
        first.bindings.insert("alice".into(), vec![b("sip:a@old")]);
        first.bindings.insert("bob".into(), vec![b("sip:b@h")]);
        first.away.insert("alice".into(), true);
        let mut later = Batch::default();
        later.bindings.insert("alice".into(), vec![]);
        later.away.insert("alice".into(), false);
        first.merge(later);
        assert_eq!(first.bindings["alice"], vec![]);
        assert_eq!(first.bindings["bob"], vec![b("sip:b@h")]);
        assert!(!first.away["alice"]);
    }

    #[test]
    fn dirty_marks_coalesce_and_take_empties() {
        let d = Dirty::default();
        d.mark("alice");
        d.mark("alice");
        d.clone().mark("bob");
        assert_eq!(d.take().len(), 2);
        assert!(d.take().is_empty());
    }

    #[test]
    fn only_udp_bindings_survive_a_restart() {
        assert!(survives_restart(Transport::Udp));
        for t in [Transport::Tcp, Transport::Tls, Transport::Ws] {
            assert!(!survives_restart(t), "{t}");
        }
    }
}
