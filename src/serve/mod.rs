//! `redial serve`: load the configuration, start every driver, and stop them
//! gracefully on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;

use crate::agents::Registry;
use crate::app::Core;
use crate::clock::{Clock, OffsetClock, SystemClock};
use crate::config::Config;
use crate::calls::{CallKit, LiveCallTable};
use crate::dialler::{Dialler, Gate};
use crate::inbound::Inbound;
use crate::media::call::{MediaEngine, Prompts};

mod bridge;
mod ready;
#[cfg(unix)]
mod reload;
mod saved;

/// Installs the tracing subscriber (`RUST_LOG`, default `info`).
/// Logs to stderr, filtered by `RUST_LOG` (default `info`); `REDIAL_LOG_FORMAT=json` writes
/// one JSON object per line (for log shippers) instead of text.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match std::env::var("REDIAL_LOG_FORMAT").as_deref() {
        Ok("json") => fmt.json().with_current_span(true).try_init(),
        Ok("text") | Err(_) => fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        Ok(other) => {
            let r = fmt.with_ansi(false).try_init();
            tracing::warn!(value = other, "REDIAL_LOG_FORMAT is neither `text` nor `json`; logging text");
            r
        }
    };
}

pub fn main(config: Option<PathBuf>, ready_file: Option<PathBuf>) -> ExitCode {
    init_tracing();
    let cfg = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems.0 {
                eprintln!("{p}");
            }
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cfg, ready_file.as_deref(), shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "redial stopped");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("SIP: {0}")]
    Sip(#[from] crate::sip::endpoint::EndpointError),
    #[error(transparent)]
    Api(#[from] crate::api::StartError),
    #[error(transparent)]
    Core(#[from] crate::app::OpenError),
    #[error("media: {0}")]
    Media(#[from] crate::media::call::MediaCallError),
    #[error("cannot start the media runtime: {0}")]
    MediaRuntime(std::io::Error),
    #[error(transparent)]
    ReadyFile(#[from] ready::ReadyFileError),
    #[error(transparent)]
    Saved(#[from] crate::agents::saved::SavedError),
    #[error("{TEST_CLOCK_ENV}: {0}")]
    TestClock(String),
}

/// `REDIAL_TEST_CLOCK=advance` runs the server on a clock that
/// `POST /v1/admin/test-clock` moves forward, for end-to-end tests of rules
/// that take hours or days. Any other value stops the start; the HTTP API
/// must listen on a loopback address.
pub const TEST_CLOCK_ENV: &str = "REDIAL_TEST_CLOCK";

/// The test clock, when the environment asks for one and the configuration
/// allows it.
fn test_clock(cfg: &Config) -> Result<Option<Arc<OffsetClock>>, ServeError> {
    let value = match std::env::var(TEST_CLOCK_ENV) {
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Ok(v) => v,
        Err(std::env::VarError::NotUnicode(v)) => v.to_string_lossy().into_owned(),
    };
    if value != "advance" {
        return Err(ServeError::TestClock(format!("`{value}` is not allowed: the only value is `advance`, for tests; unset it to run on the real clock")));
    }
    let listen = cfg.http.listen;
    if !listen.ip().is_loopback() {
        return Err(ServeError::TestClock(format!("needs `http.listen` on a loopback address, not {listen} (in {})", cfg.source.as_deref().map_or("the defaults".into(), |p| p.display().to_string()))));
    }
    for _ in 0..3 {
        tracing::warn!(
            "{TEST_CLOCK_ENV}=advance: THIS SERVER RUNS ON A TEST CLOCK that POST /v1/admin/test-clock moves forward; never use it for real callbacks"
        );
    }
    Ok(Some(Arc::new(OffsetClock::default())))
}

/// Starts the SIP endpoint, then the application core (book, scheduler,
/// event bus), the HTTP adapter over it, then the dialler and the inbound
/// call handler; runs until `shutdown`
/// completes, then stops them (trunks unregister, the book is flushed)
/// within a bounded wait. With `ready_file`, the bound addresses are written
/// there once everything listens.
pub async fn run(cfg: Config, ready_file: Option<&Path>, shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServeError> {
    if let Some(path) = ready_file {
        ready::clear(path)?;
    }
    let test_clock = test_clock(&cfg)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = Arc::new(cfg);
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    // Media first: a bad prompt file or port range stops the start before
    // anything is bound.
    let media_rt = MediaRuntime::start()?;
    let media = MediaEngine::new(&cfg)?.on_runtime(media_rt.handle());
    let prompts = Arc::new(Prompts::load(&cfg)?);
    // Registrations saved by the last run, restored before the first REGISTER is read.
    let registrations = saved::open(&cfg).await?;
    let snapshot = match registrations.store.load().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "saved registrations unreadable; agents register afresh");
            Default::default()
        }
    };
    let dirty = crate::agents::saved::Dirty::default();
    let restore = crate::sip::endpoint::Saved { bindings: snapshot.bindings.clone(), dirty: dirty.clone() };
    let mut sip = crate::sip::endpoint::Endpoint::start_saved(&cfg, stop_rx.clone(), restore).await?;
    let trunks = Arc::new(bridge::LiveTrunks { states: sip.trunks.clone() });
    let live = Arc::new(LiveCallTable::default());
    let agents = Arc::new(Registry::new(&cfg, clock.clone()));
    saved::restore_away(&agents, &snapshot);
    let saving = tokio::spawn(saved::write_behind(
        registrations.store,
        sip.agents.clone(),
        dirty,
        agents.clone(),
        snapshot.away,
        clock.clone(),
        stop_rx.clone(),
    ));
    // In a cluster the dialler and the agents' registry see this node's bindings with
    // the other nodes' added; the write-behind above saves this node's own.
    let (bindings, binding_changes) = match registrations.shared {
        Some(pg) => {
            let (others_tx, others_rx) = watch::channel(Arc::default());
            tokio::spawn(crate::cluster::bindings::follow_others(pg, clock.clone(), others_tx, stop_rx.clone()));
            let merged = crate::sip::endpoint::AgentBindings::default();
            let (merged_tx, merged_rx) = watch::channel(0);
            tokio::spawn(saved::merge_others(
                sip.agents.clone(),
                sip.agent_changes.clone(),
                others_rx,
                merged.clone(),
                merged_tx,
                clock.clone(),
                stop_rx.clone(),
            ));
            (merged, merged_rx)
        }
        None => (sip.agents.clone(), sip.agent_changes.clone()),
    };
    // What a SIGHUP reload replaces: the book, the gate, the dialler and the
    // HTTP adapter read it per decision.
    let live_cfg = crate::config::LiveConfig::new(cfg.clone());
    live_cfg.replace_with_proxies(cfg.clone(), bridge::proxies(&sip.proxies));
    let gate = Arc::new(Gate::new(live_cfg.clone(), agents.clone()));
    let mut core = match Core::open_live(live_cfg.clone(), clock.clone(), agents.clone(), Some(gate.clone())).await {
        Ok(core) => core,
        Err(e) => {
            let _ = stop_tx.send(true);
            stop_sip(sip).await;
            return Err(e.into());
        }
    };
    core.test_clock = test_clock.clone();
    core.metrics.set_sip_stats(sip.stats.clone());
    core.follow_trunks(sip.trunks.clone(), sip.trunk_changes.clone());
    let http = match crate::api::serve(&core, trunks, live.clone()).await {
        Ok(http) => http,
        Err(e) => {
            let _ = stop_tx.send(true);
            core.shutdown().await;
            stop_sip(sip).await;
            return Err(e.into());
        }
    };
    // Webhooks get each event as the REST routes and /v1/events render it,
    // woken by the feed that carries every node's events in a cluster.
    let webhooks = crate::webhooks::driver::spawn(
        &cfg.webhooks,
        core.outbox.clone(),
        &core.feed,
        Arc::new(crate::api::feed::event_data),
        clock.clone(),
        stop_rx.clone(),
    );
    tokio::spawn(bridge::follow_agent_bindings(
        bindings.clone(),
        binding_changes,
        agents.clone(),
        clock.clone(),
        test_clock.as_ref().map(|c| c.jumps()),
    ));
    #[cfg(unix)]
    let reload_registry = agents.clone();
    let kit = Arc::new(CallKit {
        cfg: cfg.clone(),
        live_cfg: core.live.clone(),
        book: core.book.clone(),
        agents,
        calls: sip.calls.clone(),
        bindings,
        media,
        prompts,
        metrics: core.metrics.clone(),
        clock,
        sip_addr: sip.local_addr,
        live,
        console_url: crate::api::console_base_url(http.addr, &cfg),
    });
    if crate::sms::notify::wanted(&cfg) {
        let notifier = crate::sms::notify::Notifier {
            cfg: live_cfg.clone(),
            outbox: core.outbox.clone(),
            calls: sip.calls.clone(),
            clock: kit.clock.clone(),
        };
        tokio::spawn(notifier.run(core.feed.subscribe(), stop_rx.clone()));
    }
    if let Some(texts) = sip.texts.take() {
        tokio::spawn(crate::sms::inbound::run(texts, core.outbox.clone(), kit.clock.clone(), stop_rx.clone()));
    }
    let dialler = Arc::new(Dialler { kit: kit.clone(), gate, outbox: core.outbox.clone() });
    let dispatches = core.take_dispatches().expect("dispatches taken once");
    let dialling = tokio::spawn(dialler.clone().run(dispatches));
    if let Some(incoming) = sip.incoming.take() {
        tokio::spawn(Arc::new(Inbound::new(kit)).run(incoming));
    }
    // The workspace's softphone registers there (an unspecified host is the page's
    // own), over TLS when redial listens for it.
    match (sip.wss_addr, sip.ws_addr) {
        (Some(wss), _) => http.state.console.set_softphone_ws(format!("wss://{wss}/")),
        (None, Some(ws)) => http.state.console.set_softphone_ws(format!("ws://{ws}/")),
        (None, None) => {}
    }
    let bound = ready::Bound { sip: sip.local_addr, ws: sip.ws_addr, wss: sip.wss_addr, sip_tls: sip.tls_addr, http: http.addr, media: ready::Media::new(cfg.media.addr, &cfg.media.ports) };
    #[cfg(unix)]
    let reloader = tokio::spawn(reload::on_hangup(
        cfg.clone(),
        reload::Live { transports: sip.transports.clone(), agents: sip.agents_reload.clone(), registry: reload_registry, tokens: http.state.tokens.clone(), config: live_cfg.clone(), book: core.book.clone() },
    ));
    let announced = ready_file.map_or(Ok(()), |path| ready::write(path, &bound));
    match &announced {
        Ok(()) => {
            tracing::info!(
                sip = %sip.local_addr,
                ws = ?sip.ws_addr,
                wss = ?sip.wss_addr,
                http = %http.addr,
                queues = cfg.queues.len(),
                profiles = cfg.profiles.len(),
                "redial ready"
            );
            shutdown.await;
        }
        Err(e) => tracing::error!(error = %e, "not ready"),
    }
    tracing::info!("shutting down");
    #[cfg(unix)]
    reloader.abort();
    let _ = stop_tx.send(true);
    // Calls in progress are not waited for: their attempts stay in progress
    // and the next start closes and retries them.
    dialling.abort();
    drop(dialler);
    // Webhook tasks save their cursors and return as soon as they see the stop.
    for w in webhooks {
        let abort = w.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(1), w).await.is_err() {
            abort.abort();
        }
    }
    // Trunks unregister while HTTP drains, then the core stops the
    // scheduler and flushes the book.
    let core_down = async {
        http.shutdown().await;
        core.shutdown().await;
    };
    tokio::join!(core_down, stop_sip(sip));
    // The last changes are written once the endpoint has stopped.
    let abort = saving.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(5), saving).await.is_err() {
        tracing::warn!("saved registrations: the last write did not finish in time");
        abort.abort();
    }
    if let Some(path) = ready_file {
        ready::clear(path)?;
    }
    tracing::info!("stopped");
    announced.map_err(Into::into)
}

/// Media's own threads, one per core: the relay's packets are then not
/// queued behind signalling work on the same workers (under a SIP flood the
/// operating system still gives them their turn). Shut down without waiting
/// when dropped, which async code may do.
struct MediaRuntime(Option<tokio::runtime::Runtime>);

impl MediaRuntime {
    fn start() -> Result<Self, ServeError> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("redial-media")
            .enable_all()
            .build()
            .map_err(ServeError::MediaRuntime)?;
        Ok(Self(Some(rt)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("running until dropped").handle().clone()
    }
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Waits for the endpoint to stop; it unregisters trunks within its own grace
/// period, and this bounds the wait even if something is stuck.
async fn stop_sip(sip: crate::sip::endpoint::EndpointHandle) {
    let grace = crate::sip::endpoint::SHUTDOWN_GRACE + std::time::Duration::from_secs(2);
    if tokio::time::timeout(grace, sip.join()).await.is_err() {
        tracing::warn!("SIP endpoint did not stop in time");
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
