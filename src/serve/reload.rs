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
//! - `[[queues]]` (and `[[dids]]`' queues): rules, hours, retry policy, timezone, mode,
//!   limits and texts apply to every decision from then on (the next booking, change,
//!   firing, attempt, outcome and API read); a new queue can be booked into at once.
//!   Callbacks already booked keep the due time they were given. A queue removed while
//!   it still holds scheduled or in-progress callbacks refuses the whole reload.
//! - The scheduler's owner check (`owner`, `owner_mode`) reads the agents applied.
//!
//! - `sip-profiles/`: trunks follow at once. A new trunk starts registering and
//!   pinging; a removed one unregisters (REGISTER with Expires: 0) and stops; a changed
//!   one unregisters with its old settings, then registers with the new. Calls in
//!   progress through any of them go on. Calls and texts placed from then on, and
//!   inbound calls routed from then on, use the profiles (and proxies) reloaded.
//!
//! Anything else that changed applies at the next restart.

use std::sync::Arc;

use crate::agents::Registry;
use crate::api::auth::Tokens;
use crate::config::Config;
use crate::scheduler::book::Book;
use crate::sip::endpoint::AgentsReload;
use crate::sip::transport::tls::TlsConfigs;
use crate::sip::transport::Transports;

/// What a reload can reach in the running process.
pub struct Live {
    pub transports: Transports,
    pub agents: AgentsReload,
    pub registry: Arc<Registry>,
    pub tokens: Tokens,
    /// What the book, the gate, the dialler, texts, the API and the console read
    /// queues and agents from.
    pub config: crate::config::LiveConfig,
    /// Where a removed queue's live callbacks are counted.
    pub book: Arc<dyn Book>,
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
    // The profiles the trunks run with.
    let mut trunks = running.profiles.clone();
    while hup.recv().await.is_some() {
        reload(&running, &live, &mut trunks).await;
    }
}

async fn reload(running: &Config, live: &Live, trunks: &mut std::collections::BTreeMap<String, crate::config::Profile>) {
    let Some(path) = running.source.as_deref() else {
        tracing::warn!("SIGHUP: no configuration file (built-in defaults); nothing to reload");
        return;
    };
    let applied = live.config.get();
    let cfg = match Config::load(Some(path)) {
        Ok(c) => c,
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
    for removed in applied.queues.iter().filter(|q| cfg.queue(&q.name).is_none()) {
        match live.book.stats(Some(&removed.name)).await {
            Ok(s) if s.pending == 0 => {}
            Ok(s) => {
                tracing::warn!(file = %path.display(), key = "queues", problem = %format!("queue `{}` is removed but still holds {} scheduled or in-progress callbacks; cancel or finish them first", removed.name, s.pending), "SIGHUP: not reloaded; the running configuration goes on");
                return;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), key = "queues", problem = %format!("cannot count the callbacks of removed queue `{}`: {e}", removed.name), "SIGHUP: not reloaded; the running configuration goes on");
                return;
            }
        }
    }
    let cfg = Arc::new(cfg);
    // An unchanged profile keeps the address its trunk runs with, so a DNS answer
    // that moved does not restart the trunk.
    let (_, known) = live.config.snapshot();
    let mut resolved = crate::sip::endpoint::trunks::resolve_proxies(&cfg).await;
    for (name, r) in resolved.iter_mut() {
        if let (Some(addr), true) = (known.get(name), trunks.get(name) == cfg.profiles.get(name)) {
            *r = Ok(*addr);
        }
    }
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
    live.config.replace_with_proxies(cfg.clone(), super::bridge::proxies(&resolved));
    tracing::info!(file = %path.display(), agents = cfg.agents.len(), tokens = cfg.tokens.len(), "SIGHUP: agents and tokens reloaded");
    if cfg.queues != applied.queues || cfg.dids != applied.dids {
        let names: Vec<&str> = cfg.queues.iter().map(|q| q.name.as_str()).collect();
        tracing::info!(file = %path.display(), queues = ?names, "SIGHUP: queues reloaded");
        if cfg.cluster.is_some() {
            tracing::warn!(file = %path.display(), key = "queues", "SIGHUP: in cluster mode the book's rules keep the queues started with until the next restart");
        }
    }
    // Trunks follow the profiles as last applied to them.
    if cfg.profiles != *trunks {
        for (name, p) in &cfg.profiles {
            let what = match trunks.get(name) {
                None => "new trunk starts",
                Some(old) if old != p => "changed trunk re-registers with its new settings",
                Some(_) => continue,
            };
            tracing::info!(file = %running.profiles_dir.join(format!("{name}.toml")).display(), key = %name, "SIGHUP: {what}");
        }
        for name in trunks.keys().filter(|n| !cfg.profiles.contains_key(*n)) {
            tracing::info!(file = %running.profiles_dir.join(format!("{name}.toml")).display(), key = %name, "SIGHUP: removed trunk unregisters and stops; its calls in progress go on");
        }
        live.agents.apply_trunks(cfg.clone(), resolved);
        *trunks = cfg.profiles.clone();
    }
}
