//! The application core, below every adapter: it opens the book, starts the
//! scheduler driver, and owns the event bus, the metrics and the agents'
//! registry. `redial serve` starts the SIP endpoint, then this core, then
//! hands the core to the HTTP API (and the console) and to the dialler and
//! the inbound handler; on shutdown it stops them in the reverse order.
//!
//! ```text
//!   api, console (HTTP)      sip endpoint (UDP/TCP)
//!         \                     /
//!          ops  --->  app::Core  <--- dialler, inbound
//!                     /   |   \
//!               book+bus  agents  metrics
//! ```
//!
//! - [`Core`]: the book, the bus, the metrics, the registry, and due
//!   callbacks for the dialler.
//! - [`follow`]: the agents' and trunks' state changes onto the bus.

pub mod follow;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::agents::Registry;
use crate::clock::Clock;
use crate::config::{Config, LiveConfig};
use crate::events::{Bus, Outbox};
use crate::metrics::Metrics;
use crate::scheduler::driver::{self, SchedulerHandle};
use crate::scheduler::engine::{Availability, Unlimited};
use crate::scheduler::model::Dispatch;
use crate::scheduler::book::Book;
use crate::cluster::book::{Ownership, PgBook, PgOptions};
use crate::cluster::agents::ClusterAgents;
use crate::cluster::node::{self, ClusterHandle};
use crate::config::Backend;
use crate::scheduler::store::{BookOptions, RedbBook, StoreError};

/// Dispatches buffered between the scheduler driver and the dialler.
const DISPATCH_CAPACITY: usize = 1024;

/// Set to `1` to make every agent count as free (development and the
/// crash test, which run without registered softphones).
pub const UNLIMITED_AGENTS_ENV: &str = "REDIAL_DEV_UNLIMITED_AGENTS";

/// Why the core could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {path}: {source}")]
    CreateDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot open the callback book: {0}")]
    Book(#[from] StoreError),
}

/// The running core.
pub struct Core {
    pub cfg: Arc<Config>,
    /// The configuration as a SIGHUP reload leaves it (starts as `cfg`): what
    /// the book's rules, the API and the dialler read per request.
    pub live: LiveConfig,
    pub clock: Arc<dyn Clock>,
    pub book: Arc<dyn Book>,
    pub bus: Arc<Bus>,
    /// Where every event is durably written before the bus sees it.
    pub outbox: Arc<dyn Outbox>,
    pub metrics: Arc<Metrics>,
    pub agents: Arc<Registry>,
    /// Cluster mode: this node's leases, for `GET /v1/cluster`.
    pub cluster: Option<Arc<crate::cluster::node::ClusterHandle>>,
    /// Set when `clock` is a test clock that the API may move forward.
    pub test_clock: Option<Arc<crate::clock::OffsetClock>>,
    leases: Option<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    scheduler: SchedulerHandle,
    dispatches: Option<mpsc::Receiver<Dispatch>>,
    followers: Vec<tokio::task::JoinHandle<()>>,
}

impl Core {
    /// Opens the book — redb at `cfg.storage_path`, or PostgreSQL in
    /// cluster mode with this node's lease loop — (recovering attempts left
    /// in progress) with every committed change published on a new bus, and
    /// starts the scheduler driver over `availability` (the dialler's
    /// call-limit gate; `None` = the registry itself).
    pub async fn open(
        cfg: Arc<Config>,
        clock: Arc<dyn Clock>,
        agents: Arc<Registry>,
        availability: Option<Arc<dyn Availability>>,
    ) -> Result<Core, OpenError> {
        Self::open_live(LiveConfig::new(cfg), clock, agents, availability).await
    }

    /// As [`Core::open`], over a configuration that a reload replaces
    /// (`live`): the book's rules take each replacement up at its next batch.
    pub async fn open_live(
        live: LiveConfig,
        clock: Arc<dyn Clock>,
        agents: Arc<Registry>,
        availability: Option<Arc<dyn Availability>>,
    ) -> Result<Core, OpenError> {
        let cfg = live.get();
        let bus = Arc::new(Bus::new());
        let mut cluster = None;
        // Each book is its own durable outbox: the redb file, or the
        // PostgreSQL tables every node of the cluster shares.
        let (book, outbox): (Arc<dyn Book>, Arc<dyn Outbox>) = match (&cfg.backend, &cfg.cluster) {
            (Backend::Postgres { url }, Some(c)) => {
                let own = Ownership::new(c.node.clone(), c.shards, c.lease);
                let opts = PgOptions { shards: c.shards, ownership: Some(own.clone()), bus: Some(bus.clone()), outbox: true, ..PgOptions::new(url.clone()) };
                let handle = ClusterHandle::new(clock.clone(), PgOptions { bus: None, outbox: false, ..opts.clone() }, own, node::timing(c));
                cluster = Some(Arc::new(handle));
                let (clock, cfg) = (clock.clone(), cfg.clone());
                // Opening connects and migrates: keep it off the async workers.
                let book = tokio::task::spawn_blocking(move || PgBook::open(opts, clock, cfg)).await.map_err(|_| StoreError::Closed)??;
                let book = Arc::new(book);
                (book.clone(), book)
            }
            _ => {
                if let Some(dir) = cfg.storage_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir { path: dir.to_path_buf(), source })?;
                }
                let (path, clock, cfg) = (cfg.storage_path.clone(), clock.clone(), cfg.clone());
                let opts = BookOptions { bus: Some(bus.clone()), live: Some(live.clone()), ..BookOptions::default() };
                // Opening recovers and may scan: keep it off the async workers.
                let book = Arc::new(tokio::task::spawn_blocking(move || RedbBook::open(path, clock, cfg, opts)).await.map_err(|_| StoreError::Closed)??);
                (book.clone(), book)
            }
        };
        let availability: Arc<dyn Availability> = if std::env::var(UNLIMITED_AGENTS_ENV).is_ok_and(|v| v == "1") {
            tracing::warn!("{UNLIMITED_AGENTS_ENV}=1: every agent counts as free");
            Arc::new(Unlimited)
        } else {
            availability.unwrap_or_else(|| agents.clone())
        };
        // In a cluster, agents another node holds are not offered.
        let availability: Arc<dyn Availability> = match &cluster {
            Some(h) => Arc::new(ClusterAgents { inner: availability, own: h.own.clone() }),
            None => availability,
        };
        let (scheduler, dispatches) = driver::spawn(book.clone(), clock.clone(), availability, DISPATCH_CAPACITY);
        let h = scheduler.clone();
        agents.set_waker(move || h.agents_changed());
        let followers = vec![tokio::spawn(follow::agents(agents.clone(), outbox.clone()))];
        let leases = cluster.as_ref().map(|h| {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(node::run_leases(h.opts.clone(), h.own.clone(), h.timing, clock.clone(), book.changed(), stop_rx));
            (stop_tx, task)
        });
        Ok(Core {
            cluster,
            test_clock: None,
            leases,
            cfg,
            live,
            clock,
            book,
            bus,
            outbox,
            metrics: Arc::new(Metrics::default()),
            agents,
            scheduler,
            dispatches: Some(dispatches),
            followers,
        })
    }

    /// The due callbacks the scheduler hands over; `None` after the first call.
    pub fn take_dispatches(&mut self) -> Option<mpsc::Receiver<Dispatch>> {
        self.dispatches.take()
    }

    /// Publishes the endpoint's trunk state changes on the bus until the
    /// endpoint stops.
    pub fn follow_trunks(&mut self, states: crate::sip::endpoint::TrunkStates, changes: tokio::sync::watch::Receiver<u64>) {
        self.followers.push(tokio::spawn(follow::trunks(states, changes, self.outbox.clone(), self.clock.clone())));
    }

    /// Stops the scheduler driver, then flushes the book and closes it when
    /// no adapter holds it any more (the writer thread is joined).
    pub async fn shutdown(mut self) {
        self.scheduler.stop().await;
        if let Some((stop, task)) = self.leases.take() {
            // The leases go back at once, so the other nodes take over now.
            let _ = stop.send(true);
            let _ = task.await;
        }
        self.book.flush().await;
        for f in &self.followers {
            f.abort();
        }
        // The last handle's drop joins the writer thread: off the async workers.
        drop(self.outbox);
        if Arc::strong_count(&self.book) == 1 {
            let book = self.book;
            let _ = tokio::task::spawn_blocking(move || drop(book)).await;
        }
    }
}
