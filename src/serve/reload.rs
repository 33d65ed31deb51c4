//! SIGHUP: re-reads `redial.toml` and applies what can change while running.
//!
//! The whole new file is validated first: a file with problems applies nothing (the
//! running configuration goes on) and each problem is logged by file and key.
//!
//! Applied at once, without dropping calls or registrations:
//! - `[[agents]]`: new agents can register, changed passwords apply to the next
//!   challenge, changed queues to the next agent picked; removed agents lose their
//!   bindings and leave the registry (a call one of them is on goes on).
//! - `[[tokens]]`: the API and console accept the new set from the next request.
//! - The console's agent sign-in and agents' sessions: checked against the agents
//!   applied, from the next request (a removed agent's session ends).
//! - `[tls]` certificates: new TLS handshakes use them; established connections keep theirs.
//!
//! Changed `[[queues]]` and `sip-profiles` are logged by file and key as applied at
//! the next restart, and so is anything else that changed.

use std::sync::Arc;

use crate::agents::Registry;
use crate::api::auth::Tokens;
use crate::config::Config;
use crate::sip::endpoint::AgentsReload;
use crate::sip::transport::tls::TlsConfigs;
use crate::sip::transport::Transports;

/// What a reload can reach in the running process.
pub struct Live {
    pub transports: Transports,
    pub agents: AgentsReload,
    pub registry: Arc<Registry>,
    pub tokens: Tokens,
    /// What the console checks agents' sign-in and sessions against.
    pub config: crate::config::LiveConfig,
}

/// Serves SIGHUP until the task is aborted. `running` is the configuration started with.
pub async fn on_hangup(running: Arc<Config>, live: Live) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload needs a restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        reload(&running, &live);
    }
}

fn reload(running: &Config, live: &Live) {
    let Some(path) = running.source.as_deref() else {
        tracing::warn!("SIGHUP: no configuration file (built-in defaults); nothing to reload");
        return;
    };
    let cfg = match Config::load(Some(path)) {
        Ok(c) => Arc::new(c),
        Err(problems) => {
            for p in &problems.0 {
                tracing::warn!(file = %p.file.display(), key = %p.key, problem = %p.message, "SIGHUP: not reloaded; the running configuration goes on");
            }
            return;
        }
    };
    let tokens = match Tokens::load(&cfg) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(file = %path.display(), key = "tokens", error = %e, "SIGHUP: not reloaded; the running configuration goes on");
            return;
        }
    };
    let tls = if live.transports.tls_local_addr().is_some() || cfg.tls != crate::config::TlsConfig::default() {
        match TlsConfigs::load(&cfg.tls) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(file = %path.display(), key = "tls", error = %e, "SIGHUP: not reloaded; the running configuration goes on");
                return;
            }
        }
    } else {
        None
    };
    // Everything is valid: apply.
    if let Some(c) = tls {
        if live.transports.reload_tls(c) {
            tracing::info!(file = %path.display(), "SIGHUP: TLS certificates reloaded");
        } else {
            tracing::warn!(file = %path.display(), key = "tls", "SIGHUP: TLS was not enabled at start; needs a restart");
        }
    }
    live.tokens.replace(tokens);
    live.registry.set_agents(&cfg);
    live.agents.apply(cfg.clone());
    live.config.replace(cfg.clone());
    tracing::info!(file = %path.display(), agents = cfg.agents.len(), tokens = cfg.tokens.len(), "SIGHUP: agents and tokens reloaded");
    if cfg.queues != running.queues {
        tracing::warn!(file = %path.display(), key = "queues", "SIGHUP: changed queues apply at the next restart");
    }
    for (name, p) in &cfg.profiles {
        if running.profiles.get(name) != Some(p) {
            tracing::warn!(file = %running.profiles_dir.join(format!("{name}.toml")).display(), key = %name, "SIGHUP: changed profile applies at the next restart");
        }
    }
    for name in running.profiles.keys().filter(|n| !cfg.profiles.contains_key(*n)) {
        tracing::warn!(file = %running.profiles_dir.join(format!("{name}.toml")).display(), key = %name, "SIGHUP: removed profile applies at the next restart");
    }
}
