//! State that is committed outside the book reaches the outbox (and from
//! there the event bus) here: an agent's state (the registry announces each
//! change on its own channel) and a trunk's (the endpoint bumps a counter
//! when one changes).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::agents::Registry;
use crate::clock::Clock;
use crate::events::{Kind, Outbox, Payload};
use crate::sip::endpoint::{TrunkStates, TrunkStatus};

/// One `agent.state` event per change the registry announces, carrying the
/// agent's snapshot. Ends when the registry is dropped.
pub async fn agents(registry: Arc<Registry>, outbox: Arc<dyn Outbox>) {
    let mut rx = registry.subscribe();
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if let Some(info) = registry.get(&ev.agent) {
                    outbox.publish(Kind::AgentState, ev.at, Payload::Agent(Box::new(info)));
                }
            }
            Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "agent state events fell behind"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// One `trunk.state` event per trunk whose registered/up/last-error state
/// differs from what was last published. Ends when the endpoint stops.
pub async fn trunks(states: TrunkStates, mut changes: watch::Receiver<u64>, outbox: Arc<dyn Outbox>, clock: Arc<dyn Clock>) {
    let seen = |s: &TrunkStatus| (s.registered, s.up, s.last_error.clone());
    let mut told: BTreeMap<String, (bool, bool, Option<String>)> =
        states.read().expect("trunk states lock").iter().map(|(k, v)| (k.clone(), seen(v))).collect();
    while changes.changed().await.is_ok() {
        let now: Vec<TrunkStatus> = states.read().expect("trunk states lock").values().cloned().collect();
        for t in now {
            let s = seen(&t);
            if told.get(&t.name) != Some(&s) {
                told.insert(t.name.clone(), s);
                outbox.publish(Kind::TrunkState, clock.now_ms(), Payload::Trunk(Box::new(t)));
            }
        }
    }
}
