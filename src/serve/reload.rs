//! SIGHUP: re-reads `redial.toml` and applies what can change while running.
//!
//! Applied: the `[tls]` certificates (new TLS handshakes use them; established
//! connections keep theirs). A file with problems applies nothing, and each problem is
//! logged by file and key. Other keys (agents, queues, tokens, profiles) are applied
//! only by a restart; a reload says so.

use std::path::PathBuf;

use crate::config::Config;
use crate::sip::transport::tls::TlsConfigs;
use crate::sip::transport::Transports;

/// Serves SIGHUP until the task is aborted.
pub async fn on_hangup(source: Option<PathBuf>, transports: Transports) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload needs a restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        reload(source.as_deref(), &transports);
    }
}

fn reload(source: Option<&std::path::Path>, transports: &Transports) {
    let Some(path) = source else {
        tracing::warn!("SIGHUP: no configuration file (built-in defaults); nothing to reload");
        return;
    };
    let cfg = match Config::load(Some(path)) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems.0 {
                tracing::warn!(file = %p.file.display(), key = %p.key, problem = %p.message, "SIGHUP: not reloaded");
            }
            return;
        }
    };
    if transports.tls_local_addr().is_some() || cfg.tls != crate::config::TlsConfig::default() {
        match TlsConfigs::load(&cfg.tls) {
            Ok(c) if transports.reload_tls(c.clone()) => tracing::info!(file = %path.display(), "SIGHUP: TLS certificates reloaded"),
            Ok(_) => tracing::warn!(file = %path.display(), key = "tls", "SIGHUP: TLS was not enabled at start; needs a restart"),
            Err(e) => tracing::warn!(file = %path.display(), key = "tls", error = %e, "SIGHUP: TLS certificates not reloaded"),
        }
    }
    tracing::info!(file = %path.display(), "SIGHUP: agents, queues, tokens and profiles are applied at the next restart");
}
