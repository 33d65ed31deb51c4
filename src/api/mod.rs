//! The HTTP adapter (axum): the REST API of the external contract, the
//! console's routes, and server-sent events, over the application core it
//! is handed ([`serve`]); it opens nothing itself.
//!
//! - [`error`]: the error body and the status/code of every domain error.
//! - [`views`]: request and response JSON shapes, RFC 3339 times.
//! - [`auth`]: bearer tokens, scopes, the first-start admin token, rate limit.
//! - [`idempotency`]: `Idempotency-Key` answers remembered for 24 h.
//! - [`routes`]: the handlers; [`admin`]: `/v1/admin/*`; [`feed`]: `/v1/events`;
//!   [`detections`]: `/v1/detections`.
//! - [`openapi`]: the OpenAPI document generated from the handlers.
//! - [`trunks`]: the [`TrunkView`] trait behind `/v1/trunks`.
//! - [`test_clock`]: `/v1/admin/test-clock`, only on a server run on a test clock.
//!
//! [`start_api`] opens a core and serves over it in one go, for in-process
//! tests and tools.

pub mod admin;
pub mod deliveries;
pub mod auth;
pub mod detections;
pub mod error;
pub mod feed;
pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod test_clock;
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
pub use self::state::{AppState, Caller, Shared};
use crate::agents::Registry;
use crate::clock::Clock;
use crate::config::Config;
use crate::app::Core;
use crate::scheduler::model::Dispatch;
use crate::scheduler::book::Book;
use self::auth::{RateLimiter, Tokens};
use self::error::ApiError;
use self::idempotency::IdempotencyCache;
use crate::metrics::Metrics;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;
/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Core(#[from] crate::app::OpenError),
    #[error(transparent)]
    AdminToken(#[from] auth::AdminTokenError),
    #[error("cannot bind HTTP on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The router over `state`, with the auth, rate-limit, metrics and body-limit layers.
pub fn router(state: AppState) -> Router {
    // The document is served beside the routes it describes; `routes` does
    // not know about it, so the two modules do not import each other.
    let with_clock = state.test_clock.is_some();
    let r = routes::routes();
    let r = if with_clock { r.merge(test_clock::routes()) } else { r };
    r.merge(feed::routes())
        .merge(deliveries::routes())
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
    // Token guessing is throttled per source like console sign-ins: after too many
    // wrong tokens, every request from that address gets 429 until the window ends.
    let source = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let now = Instant::now();
    if let Some(ip) = source.filter(|ip| !s.console.may_try_token(*ip, now)) {
        tracing::warn!(source = %ip, "API token guessing throttled");
        let secs = crate::console::session::WINDOW.as_secs();
        let mut e = ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "throttled", format!("too many wrong tokens from this address; retry in {secs} s"));
        e.retry_after = Some(secs);
        return Err(e);
    }
    let name = match auth::check(&s.tokens, header, need) {
        Ok(n) => n,
        Err(e) => {
            // A wrong secret counts; a missing header does not (health probes, typos in tooling).
            if let (Some(ip), Some(_)) = (source, header) {
                if e.status == axum::http::StatusCode::UNAUTHORIZED {
                    s.console.token_failed(ip, now);
                    tracing::info!(source = %ip, "API token refused");
                }
            }
            return Err(e);
        }
    };
    if let Err(secs) = s.limiter.take(&name, Instant::now()) {
        let mut e = ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("token `{name}` is over its rate limit; retry in {secs} s"));
        e.retry_after = Some(secs);
        return Err(e);
    }
    Ok(Some(name))
}

/// The HTTP server: the API and the console, over a [`Core`] it was handed.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
}

/// The console's base URL as a softphone on the SIP side can reach it: the
/// bound HTTP address, with a wildcard address replaced by the SIP public
/// address (or the SIP listen address).
pub fn console_base_url(http: SocketAddr, cfg: &crate::config::Config) -> String {
    let ip = if http.ip().is_unspecified() { cfg.sip.public_addr.unwrap_or(cfg.sip.listen.ip()) } else { http.ip() };
    format!("http://{}", SocketAddr::new(ip, http.port()))
}

/// Serves the API and the console on `core.cfg.http.listen` over the core's
/// book, bus, metrics and agents' registry. `trunks` answers `/v1/trunks`
/// and `live` which calls are in progress ([`NoLiveCalls`] without a dialler).
pub async fn serve(core: &Core, trunks: Arc<dyn TrunkView>, live: Arc<dyn LiveCalls>) -> Result<HttpServer, StartError> {
    let cfg = core.cfg.clone();
    let tokens = Tokens::load(&cfg)?;
    let ops = crate::ops::Ops {
        book: core.book.clone(),
        cfg: core.live.clone(),
        agents: core.agents.clone(),
        live: live.clone(),
        clock: core.clock.clone(),
    };
    let (stop, mut stop_rx) = watch::channel(false);
    let state = Arc::new(Shared {
        book: core.book.clone(),
        ops,
        bus: core.bus.clone(),
        outbox: core.outbox.clone(),
        stopping: stop_rx.clone(),
        console: crate::console::ConsoleState::new(core.clock.now_ms()),
        cfg: cfg.clone(),
        live_cfg: core.live.clone(),
        tokens,
        limiter: RateLimiter::from_env(),
        idempotency: IdempotencyCache::default(),
        metrics: core.metrics.clone(),
        agents: core.agents.clone(),
        trunks,
        live,
        cluster: core.cluster.clone(),
        test_clock: core.test_clock.clone(),
    });
    crate::console::feed_charts(&state);
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
    Ok(HttpServer { addr, state, stop, http })
}

impl HttpServer {
    /// Stops accepting requests and finishes those in flight; the state
    /// (and its hold on the book) is dropped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.http.await;
    }
}

/// A core and the HTTP server over it, in one process without SIP: for
/// tests and tools that drive the API in-process.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub state: AppState,
    http: HttpServer,
    core: Core,
}

/// Opens a [`Core`] with a fresh agents' registry and serves HTTP over it.
pub async fn start_api(
    cfg: Arc<Config>,
    clock: Arc<dyn Clock>,
    trunks: Arc<dyn TrunkView>,
    live: Arc<dyn LiveCalls>,
) -> Result<ApiServer, StartError> {
    let agents = Arc::new(Registry::new(&cfg, clock.clone()));
    let core = Core::open(cfg, clock, agents, None).await?;
    let http = serve(&core, trunks, live).await?;
    Ok(ApiServer { addr: http.addr, state: http.state.clone(), http, core })
}

impl ApiServer {
    pub fn agents(&self) -> Arc<Registry> {
        self.core.agents.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.core.metrics.clone()
    }

    /// The due callbacks the scheduler hands over; `None` after the first call.
    pub fn take_dispatches(&mut self) -> Option<mpsc::Receiver<Dispatch>> {
        self.core.take_dispatches()
    }

    pub fn book(&self) -> Arc<dyn Book> {
        self.core.book.clone()
    }

    /// Stops HTTP, then the core (the book is flushed and closed).
    pub async fn shutdown(self) {
        let ApiServer { state, http, core, .. } = self;
        http.shutdown().await;
        drop(state);
        core.shutdown().await;
    }
}
