//! Receives the callbacks the scheduler hands over. Dialling arrives with
//! issue 6: until then each dispatch is logged and left `in_progress` (its
//! attempt stays open; the next start's recovery closes it as failed and
//! the retry policy applies). It is deliberately not a fake success.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::metrics::Metrics;
use crate::agents::Registry;
use crate::clock::Clock;
use crate::scheduler::model::Dispatch;

pub async fn run(mut rx: mpsc::Receiver<Dispatch>, agents: Arc<Registry>, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) {
    while let Some(d) = rx.recv().await {
        let id = d.callback.id.to_string();
        metrics.fired(clock.now_ms() - d.callback.due_at);
        agents.assign(&d.agent, &id);
        tracing::info!(callback = %id, attempt = d.attempt, agent = %d.agent, queue = %d.callback.queue, "callback due: dialling arrives with issue 6; left in_progress");
    }
}
