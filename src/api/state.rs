//! The state every HTTP handler shares, the API's and the console's: its
//! own file so the console can use it without importing the module that
//! mounts the console.

use std::sync::Arc;

use tokio::sync::watch;

use super::auth::{RateLimiter, Tokens};
use super::idempotency::IdempotencyCache;
use super::trunks::TrunkView;
use crate::agents::Registry;
use crate::calls::LiveCalls;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::book::Book;

/// Everything a handler needs.
pub struct Shared {
    pub book: Arc<dyn Book>,
    pub cfg: Arc<Config>,
    /// The configuration a SIGHUP reload last applied: agents' sign-in and
    /// their sessions' queues are checked against it on every request.
    pub live_cfg: crate::config::LiveConfig,
    pub tokens: Tokens,
    pub limiter: RateLimiter,
    pub idempotency: IdempotencyCache,
    pub metrics: Arc<Metrics>,
    pub agents: Arc<Registry>,
    pub trunks: Arc<dyn TrunkView>,
    pub live: Arc<dyn LiveCalls>,
    /// The callback and agent operations shared with the console.
    pub ops: crate::ops::Ops,
    /// Published changes, for `/v1/events` and the console's live updates.
    pub bus: Arc<crate::events::Bus>,
    /// The durable outbox: history for `/v1/events`, webhook deliveries.
    pub outbox: Arc<dyn crate::events::Outbox>,
    /// The console's sessions and login throttle.
    pub console: crate::console::session::ConsoleState,
    /// Turns true when the server stops: endless responses (server-sent
    /// events) end then, so the graceful shutdown is not held open.
    pub stopping: watch::Receiver<bool>,
    /// Cluster mode: this node's leases (`GET /v1/cluster`).
    pub cluster: Option<Arc<crate::cluster::node::ClusterHandle>>,
    /// The clock a test may move forward (`/v1/admin/test-clock`); `None`
    /// on every real server.
    pub test_clock: Option<Arc<crate::clock::OffsetClock>>,
}

pub type AppState = Arc<Shared>;

/// The caller's token name, set by the auth middleware.
#[derive(Debug, Clone)]
pub struct Caller(pub String);
