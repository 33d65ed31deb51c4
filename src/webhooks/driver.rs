//! The tokio side of webhooks: one task per endpoint takes the events it
//! wants from the bus into its [`Queue`] and sends the head on a blocking
//! thread, so neither a slow receiver nor the HTTP client ever runs on the
//! runtime's own threads or holds up the book.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Webhook;
use crate::events::{Bus, Event};

use super::queue::{Delivery, Queue};
use super::{body, send, Render};

/// Events held per endpoint while its receiver is down.
pub const QUEUE_LIMIT: usize = 100_000;

/// Starts one delivery task per endpoint; they stop when `stop` turns true.
pub fn spawn(hooks: &[Webhook], bus: &Bus, render: Render, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let agent = send::agent();
    hooks
        .iter()
        .enumerate()
        .map(|(i, hook)| {
            let span = tracing::info_span!("webhook", endpoint = i, url = %hook.url);
            let task = run(hook.clone(), bus.subscribe(), render.clone(), clock.clone(), agent.clone(), stop.clone());
            tokio::spawn(task.instrument(span))
        })
        .collect()
}

async fn run(
    hook: Webhook,
    mut events: broadcast::Receiver<Arc<Event>>,
    render: Render,
    clock: Arc<dyn Clock>,
    agent: ureq::Agent,
    mut stop: watch::Receiver<bool>,
) {
    let hook = Arc::new(hook);
    let mut queue = Queue::new(QUEUE_LIMIT);
    let mut in_flight: Option<JoinHandle<Result<u16, String>>> = None;
    loop {
        let now = clock.now_ms();
        if in_flight.is_none() {
            if let Some(d) = queue.poll_send(now) {
                in_flight = Some(start(&agent, &hook, d));
            }
        }
        let wait = queue.poll_timeout().map(|at| Duration::from_millis((at - now).max(0) as u64));
        tokio::select! {
            _ = stop.changed() => return,
            ev = events.recv() => match ev {
                Ok(ev) if hook.events.wants(ev.kind) => {
                    if let Err(full) = queue.push(Delivery::new(ev.seq, Arc::from(body(&ev, &render)))) {
                        tracing::error!(seq = ev.seq, %full, "webhook event dropped");
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => tracing::error!(missed = n, "webhook fell behind the event bus; events dropped"),
                Err(RecvError::Closed) => return,
            },
            res = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                let now = clock.now_ms();
                match res.unwrap_or_else(|e| Err(format!("sender failed: {e}"))) {
                    Ok(_) => queue.on_delivered(),
                    Err(why) => {
                        tracing::debug!(error = %why, "webhook delivery failed");
                        if let Some(p) = queue.on_failed(now, why, rand::random::<f64>()) {
                            tracing::warn!(seq = p.seq, failures = p.failures, error = ?p.last_error, "webhook delivery parked after a day of failures");
                        }
                    }
                }
            }
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() && in_flight.is_none() => {}
        }
    }
}

fn start(agent: &ureq::Agent, hook: &Arc<Webhook>, d: Delivery) -> JoinHandle<Result<u16, String>> {
    let (agent, hook) = (agent.clone(), hook.clone());
    tokio::task::spawn_blocking(move || send::post(&agent, &hook.url, &hook.secret, &format!("evt_{}", d.seq), &d.body))
}
