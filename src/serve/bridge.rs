//! Glue between the SIP endpoint and the HTTP API's views: live trunk states
//! for `GET /v1/trunks`, and agents' registrations for the agents' registry
//! (an agent whose softphone registers becomes `available`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::agents::Registry;
use crate::api::views::TrunkInfo;
use crate::api::TrunkView;
use crate::clock::{Clock, Millis};
use crate::sip::endpoint::{AgentBindings, TrunkStates};

/// `GET /v1/trunks` from the endpoint's live trunk states.
/// Every trunk running, in name order (a profile that does not register and is not
/// pinged still shows; one a reload added or removed shows or goes at once).
pub struct LiveTrunks {
    pub states: TrunkStates,
}

impl TrunkView for LiveTrunks {
    fn trunks(&self) -> Vec<TrunkInfo> {
        let now = Instant::now();
        let states = self.states.read().expect("trunk states lock");
        states
            .iter()
            .map(|(name, s)| TrunkInfo {
                name: name.clone(),
                registered: s.registered,
                expires_in: if s.registered { s.expires_in(now) } else { None },
                up: Some(s.up),
                last_error: s.last_error.clone(),
            })
            .collect()
    }
}

/// Feeds every change of the registrar's bindings into the agents' registry
/// until `changes` closes (the endpoint stopped). Only agents whose contacts or
/// expiries changed since the last look are passed on, so a wake costs a
/// comparison per registered agent and a registry update per changed agent.
/// (The registry ignores agents it does not know, so agents added or removed
/// by a reload need nothing here.) With a test clock, each of its `jumps`
/// passes every agent on again: expiries are translated into wall-clock time
/// at the clock's new offset.
pub async fn follow_agent_bindings(
    bindings: AgentBindings,
    mut changes: watch::Receiver<u64>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    mut jumps: Option<watch::Receiver<Millis>>,
) {
    // What the registry was last told, per agent with bindings then.
    let mut told: HashMap<String, Vec<(String, Instant)>> = HashMap::new();
    loop {
        let updates: Vec<(String, Vec<(String, Millis)>)> = {
            let view = bindings.read().expect("agent bindings lock");
            // Binding expiries are monotonic instants; the registry keeps wall
            // clock milliseconds.
            let (now, wall) = (Instant::now(), clock.now_ms());
            let mut out = Vec::new();
            for (id, current) in view.iter() {
                let same = told.get(id).is_some_and(|t| {
                    t.len() == current.len() && t.iter().zip(current).all(|((c, e), b)| *c == b.contact && *e == b.expires_at)
                });
                if same {
                    continue;
                }
                told.insert(id.clone(), current.iter().map(|b| (b.contact.clone(), b.expires_at)).collect());
                let regs = current
                    .iter()
                    .map(|b| (b.contact.clone(), wall + b.expires_at.saturating_duration_since(now).as_millis() as Millis))
                    .collect();
                out.push((id.clone(), regs));
            }
            // Agents that had bindings and have none now.
            let gone: Vec<String> = told.keys().filter(|id| !view.contains_key(*id)).cloned().collect();
            for id in gone {
                told.remove(&id);
                out.push((id, Vec::new()));
            }
            out
        };
        for (id, regs) in updates {
            registry.registration_changed(&id, regs);
        }
        let jumped = async {
            match jumps.as_mut() {
                Some(j) => j.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            true = jumped => told.clear(),
        }
    }
}

/// Each profile's proxy as the endpoint resolved it. A proxy that did not resolve is
/// left out and logged: calls through it fail (and are retried) until a reload or a
/// restart resolves it.
pub fn proxies(resolved: &std::collections::BTreeMap<String, Result<std::net::SocketAddr, String>>) -> crate::config::ProxyAddrs {
    let mut out = crate::config::ProxyAddrs::new();
    for (name, r) in resolved {
        match r {
            Ok(addr) => {
                out.insert(name.clone(), *addr);
            }
            Err(e) => tracing::error!(profile = %name, error = %e, "proxy does not resolve; calls through it will fail"),
        }
    }
    out
}
