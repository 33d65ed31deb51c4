//! The cluster's event feed on one node: every node's committed events, in
//! the shared outbox's sequence order, published on a bus of this node for
//! its event streams and console.
//!
//! A node's own bus carries only what its own writer committed. The outbox's
//! sequence follows commit order across the nodes and has no gaps
//! ([`super::outbox`]), so reading `seq > last` in order yields every
//! node's events exactly once, in the order a reader that resumes with
//! `Last-Event-ID` replays them. The tail reads when this node commits
//! events (its own bus wakes it at once) and otherwise every
//! [`POLL`], which bounds how late another node's event arrives.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::events::outbox::Outbox;
use crate::events::Bus;

/// How often the outbox is read when this node commits nothing.
pub const POLL: Duration = Duration::from_millis(250);

/// Events read per query.
const PAGE: usize = 512;

/// A bus carrying every node's events from `first` (the outbox's next
/// sequence at start), filled from `outbox` until `local` closes or the
/// outbox is dropped.
pub fn spawn_tail(outbox: &Arc<dyn Outbox>, local: &Bus, first: u64) -> (Arc<Bus>, tokio::task::JoinHandle<()>) {
    let feed = Arc::new(Bus::starting_at(first));
    let (outbox, out) = (Arc::downgrade(outbox), feed.clone());
    let wake = local.subscribe();
    let task = tokio::spawn(tail(outbox, wake, out, first.saturating_sub(1)));
    (feed, task)
}

async fn tail(outbox: Weak<dyn Outbox>, mut wake: tokio::sync::broadcast::Receiver<Arc<crate::events::Event>>, feed: Arc<Bus>, mut last: u64) {
    loop {
        // Read until the outbox has nothing newer.
        loop {
            let Some(o) = outbox.upgrade() else { return };
            match o.after(last, PAGE).await {
                Ok(page) => {
                    let full = page.len() == PAGE;
                    for ev in page {
                        last = ev.seq;
                        feed.publish(ev);
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cluster's events; retrying");
                    break;
                }
            }
        }
        match tokio::time::timeout(POLL, wake.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
            Ok(Err(RecvError::Closed)) => return,
        }
        // One read covers every local event committed so far.
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = wake.try_recv() {}
    }
}
