//! `redial serve`: load the configuration, start every driver, and stop them
//! gracefully on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;

use crate::agents::Registry;
use crate::app::Core;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::calls::{CallKit, LiveCallTable};
use crate::dialler::{Dialler, Gate};
use crate::inbound::Inbound;
use crate::media::call::{MediaEngine, Prompts};

mod bridge;
mod ready;
#[cfg(unix)]
mod reload;

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
    #[error(transparent)]
    ReadyFile(#[from] ready::ReadyFileError),
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = Arc::new(cfg);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Media first: a bad prompt file or port range stops the start before
    // anything is bound.
    let media = MediaEngine::new(&cfg)?;
    let prompts = Arc::new(Prompts::load(&cfg)?);
    let mut sip = crate::sip::endpoint::Endpoint::start(&cfg, stop_rx.clone()).await?;
    let trunks = Arc::new(bridge::LiveTrunks { states: sip.trunks.clone(), names: cfg.profiles.keys().cloned().collect() });
    let live = Arc::new(LiveCallTable::default());
    let agents = Arc::new(Registry::new(&cfg, clock.clone()));
    let gate = Arc::new(Gate::new(&cfg, agents.clone()));
    let mut core = match Core::open(cfg.clone(), clock.clone(), agents.clone(), Some(gate.clone())).await {
        Ok(core) => core,
        Err(e) => {
            let _ = stop_tx.send(true);
            stop_sip(sip).await;
            return Err(e.into());
        }
    };
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
    // Webhooks get each event as the REST routes and /v1/events render it.
    let webhooks = crate::webhooks::driver::spawn(
        &cfg.webhooks,
        core.outbox.clone(),
        &core.bus,
        Arc::new(crate::api::feed::event_data),
        clock.clone(),
        stop_rx.clone(),
    );
    tokio::spawn(bridge::follow_agent_bindings(
        sip.agents.clone(),
        sip.agent_changes.clone(),
        agents.clone(),
        cfg.agents.iter().map(|a| a.id.clone()).collect(),
        clock.clone(),
    ));
    let proxies = bridge::proxies(&cfg, &sip.proxies);
    let kit = Arc::new(CallKit {
        cfg: cfg.clone(),
        book: core.book.clone(),
        agents,
        calls: sip.calls.clone(),
        bindings: sip.agents.clone(),
        media,
        prompts,
        metrics: core.metrics.clone(),
        clock,
        proxies,
        sip_addr: sip.local_addr,
        live,
        console_url: crate::api::console_base_url(http.addr, &cfg),
    });
    if crate::sms::notify::wanted(&cfg) {
        let notifier = crate::sms::notify::Notifier {
            cfg: cfg.clone(),
            outbox: core.outbox.clone(),
            calls: sip.calls.clone(),
            proxies: kit.proxies.clone(),
            clock: kit.clock.clone(),
        };
        tokio::spawn(notifier.run(core.bus.subscribe(), stop_rx.clone()));
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
    let bound = ready::Bound { sip: sip.local_addr, ws: sip.ws_addr, sip_tls: sip.tls_addr, http: http.addr, media: ready::Media::new(cfg.media.addr, &cfg.media.ports) };
    #[cfg(unix)]
    let reloader = tokio::spawn(reload::on_hangup(cfg.source.clone(), sip.transports.clone()));
    let announced = ready_file.map_or(Ok(()), |path| ready::write(path, &bound));
    match &announced {
        Ok(()) => {
            tracing::info!(
                sip = %sip.local_addr,
                ws = ?sip.ws_addr,
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
    if let Some(path) = ready_file {
        ready::clear(path)?;
    }
    tracing::info!("stopped");
    announced.map_err(Into::into)
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
