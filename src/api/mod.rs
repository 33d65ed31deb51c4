//! The HTTP API of DESIGN.md "HTTP API", on axum.
//!
//! - [`error`]: the error body and the status/code of every domain error.
//! - [`views`]: request and response JSON shapes, RFC 3339 times.
//! - [`auth`]: bearer tokens, scopes, the first-start admin token, rate limit.
//! - [`idempotency`]: `Idempotency-Key` answers remembered for 24 h.
//! - [`routes`]: the handlers.
//! - [`metrics`]: Prometheus text for `/metrics`.
//! - [`openapi`]: the OpenAPI document generated from the handlers.
//! - [`trunks`]: the [`TrunkView`] trait behind `/v1/trunks`.
//! - [`live`]: the [`LiveCalls`] trait: calls in progress, for booking
//!   from a live call (issue 8).
//!
//! [`start_api`] opens the book, starts the scheduler driver and serves the
//! API; [`ApiServer::shutdown`] stops them in order.

pub mod admin;
pub mod auth;
pub mod error;
pub mod feed;
pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod trunks;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use crate::calls::{LiveCall, LiveCalls, NoLiveCalls};
pub use self::trunks::{ConfiguredTrunks, TrunkView};
pub use self::views::TrunkInfo;
use crate::agents::Registry;
use crate::clock::Clock;
use crate::config::Config;
use crate::scheduler::driver::{self, SchedulerHandle};
use crate::scheduler::engine::{Availability, Unlimited};
use crate::scheduler::model::Dispatch;
use crate::scheduler::store::{Book, BookOptions, StoreError};
use self::auth::{RateLimiter, Tokens};
use self::error::ApiError;
use self::idempotency::IdempotencyCache;
use crate::metrics::Metrics;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;
/// Dispatches buffered between the scheduler driver and the dialler.
const DISPATCH_CAPACITY: usize = 1024;

/// Everything a handler needs.
pub struct Shared {
    pub book: Arc<Book>,
    pub cfg: Arc<Config>,
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
    /// The console's sessions and login throttle.
    pub console: crate::console::ConsoleState,
    /// Turns true when the server stops: endless responses (server-sent
    /// events) end then, so the graceful shutdown is not held open.
    pub stopping: watch::Receiver<bool>,
}

pub type AppState = Arc<Shared>;

/// The caller's token name, set by the auth middleware.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {path}: {source}")]
    CreateDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot open the callback book: {0}")]
    Book(#[from] StoreError),
    #[error(transparent)]
    AdminToken(#[from] auth::AdminTokenError),
    #[error("cannot bind HTTP on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The router over `state`, with the auth, rate-limit, metrics and body-limit layers.
pub fn router(state: AppState) -> Router {
    // The document is served beside the routes it describes; `routes` does
    // not know about it, so the two modules do not import each other.
    routes::routes()
        .merge(feed::routes())
        .merge(crate::console::routes())
        .route("/v1/openapi.json", axum::routing::get(openapi::openapi_json))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Authenticates, rate-limits and records every request.
async fn guard(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = routes::template(req.extensions().get::<MatchedPath>().map(|m| m.as_str()));
    let method = req.method().clone();
    let resp = match authorize(&s, &req) {
        Ok(caller) => {
            if let Some(c) = caller {
                req.extensions_mut().insert(Caller(c));
            }
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    s.metrics.http_request(route, method.as_str(), resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

fn authorize(s: &Shared, req: &Request) -> Result<Option<String>, ApiError> {
    let Some(need) = auth::required_scope(req.method(), req.uri().path()) else { return Ok(None) };
    let header = req.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    let name = auth::check(&s.tokens, header, need)?;
    if let Err(secs) = s.limiter.take(&name, Instant::now()) {
        let mut e = ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("token `{name}` is over its rate limit; retry in {secs} s"));
        e.retry_after = Some(secs);
        return Err(e);
    }
    Ok(Some(name))
}

/// The running API and scheduler driver.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub state: AppState,
    scheduler: SchedulerHandle,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    /// Due callbacks, for the dialler to take ([`ApiServer::take_dispatches`]).
    dispatches: Option<mpsc::Receiver<Dispatch>>,
}

/// Set to `1` to make every agent count as free (development and the
/// crash test, until the SIP registrar feeds the agent registry).
pub const UNLIMITED_AGENTS_ENV: &str = "REDIAL_DEV_UNLIMITED_AGENTS";

/// What the API is built over besides the configuration and the clock.
pub struct ApiParts {
    pub trunks: Arc<dyn TrunkView>,
    /// Which calls are in progress (booking from a live call).
    pub live: Arc<dyn LiveCalls>,
    pub agents: Arc<Registry>,
    /// Whom the scheduler may reserve: the dialler's call-limit gate over
    /// `agents`; `None` = `agents` itself.
    pub availability: Option<Arc<dyn Availability>>,
}

/// [`start_api_with`] over a fresh agent registry and no call limits.
/// `live` answers which calls are in progress; [`NoLiveCalls`] when there
/// is no dialler.
pub async fn start_api(
    cfg: Arc<Config>,
    clock: Arc<dyn Clock>,
    trunks: Arc<dyn TrunkView>,
    live: Arc<dyn LiveCalls>,
) -> Result<ApiServer, StartError> {
    let agents = Arc::new(Registry::new(&cfg, clock.clone()));
    start_api_with(cfg, clock, ApiParts { trunks, live, agents, availability: None }).await
}

/// Opens the book at `cfg.storage_path`, sets up tokens, starts the
/// scheduler driver, and serves HTTP on `cfg.http.listen`. Due callbacks
/// wait in [`ApiServer::take_dispatches`] for the dialler.
pub async fn start_api_with(cfg: Arc<Config>, clock: Arc<dyn Clock>, parts: ApiParts) -> Result<ApiServer, StartError> {
    let ApiParts { trunks, live, agents, availability } = parts;
    if let Some(dir) = cfg.storage_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StartError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    let tokens = Tokens::load(&cfg)?;
    let bus = Arc::new(crate::events::Bus::new());
    let book = {
        let (path, clock, cfg) = (cfg.storage_path.clone(), clock.clone(), cfg.clone());
        // Opening recovers and may scan: keep it off the async workers.
        let opts = BookOptions { bus: Some(bus.clone()), ..BookOptions::default() };
        tokio::task::spawn_blocking(move || Book::open(path, clock, cfg, opts))
            .await
            .map_err(|_| StoreError::Closed)??
    };
    let book = Arc::new(book);
    let availability: Arc<dyn Availability> = if std::env::var(UNLIMITED_AGENTS_ENV).is_ok_and(|v| v == "1") {
        tracing::warn!("{UNLIMITED_AGENTS_ENV}=1: every agent counts as free");
        Arc::new(Unlimited)
    } else {
        availability.unwrap_or_else(|| agents.clone())
    };
    let (scheduler, dispatches) = driver::spawn(book.clone(), clock.clone(), availability, DISPATCH_CAPACITY);
    let h = scheduler.clone();
    agents.set_waker(move || h.agents_changed());
    let metrics = Arc::new(Metrics::default());
    let ops = crate::ops::Ops { book: book.clone(), cfg: cfg.clone(), agents: agents.clone(), live: live.clone(), clock: clock.clone() };
    // The agents registry commits state changes in memory and announces
    // them on its own channel; each reaches the bus as an `agent.state`
    // event with the agent's snapshot.
    {
        let (mut rx, bus, agents) = (agents.subscribe(), bus.clone(), agents.clone());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if let Some(info) = agents.get(&ev.agent) {
                            bus.publish(crate::events::Kind::AgentState, ev.at, crate::events::Payload::Agent(Box::new(info)));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        });
    }
    let (stop, mut stop_rx) = watch::channel(false);
    let state = Arc::new(Shared {
        book,
        ops,
        bus,
        stopping: stop_rx.clone(),
        console: crate::console::ConsoleState::default(),
        cfg: cfg.clone(),
        tokens,
        limiter: RateLimiter::from_env(),
        idempotency: IdempotencyCache::default(),
        metrics,
        agents,
        trunks,
        live,
    });
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|source| StartError::Bind { addr: cfg.http.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: cfg.http.listen, source })?;
    let app = router(state.clone());
    let http = tokio::spawn(async move {
        let r = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, "HTTP API listening");
    Ok(ApiServer { addr, state, scheduler, stop, http, dispatches: Some(dispatches) })
}

impl ApiServer {
    /// The agent registry: the SIP registrar calls
    /// [`Registry::registration_changed`] on it.
    pub fn agents(&self) -> Arc<Registry> {
        self.state.agents.clone()
    }

    /// The metrics registry: the SIP stack calls [`Metrics::sip_transaction`]
    /// and the dialler [`Metrics::attempt_ended`] / [`Metrics::calls_active_add`].
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The due callbacks the scheduler hands over; `None` after the first call.
    pub fn take_dispatches(&mut self) -> Option<mpsc::Receiver<Dispatch>> {
        self.dispatches.take()
    }

    /// The book, for the dialler's `report_outcome`.
    pub fn book(&self) -> Arc<Book> {
        self.state.book.clone()
    }

    /// Stops accepting requests and finishes those in flight, stops the
    /// scheduler driver, then flushes and closes the book.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.http.await;
        self.scheduler.stop().await;
        self.state.book.flush().await;
        let ApiServer { state, .. } = self;
        // The last reference closes the book (joins its writer thread).
        if let Ok(shared) = Arc::try_unwrap(state) {
            if let Ok(book) = Arc::try_unwrap(shared.book) {
                let _ = tokio::task::spawn_blocking(move || book.close()).await;
            }
        }
    }
}
