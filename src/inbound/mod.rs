//! Inbound trunk calls (issue 7): a carrier's call to one of its DIDs goes
//! to the DID's queue. An available agent takes it; when none is free the
//! caller is offered a callback that keeps their place ("virtual hold").
//!
//! - [`route`]: which queue a call belongs to; refusing unknown sources
//!   (403, rate-limited against scanners) and unknown DIDs (404).
//! - [`call`]: one inbound call from answer to hang-up.
//! - [`number`]: the caller's number as E.164, or collected by DTMF.

mod call;
pub mod number;
pub mod route;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::dialler::Dialler;
use crate::sip::calls::IncomingCall;

pub use route::{Refusal, Route, Router, ScannerGuard};

/// Refusals from one address before its calls are ignored, and for how long.
const SCANNER_LIMIT: u32 = 10;
const SCANNER_WINDOW: Duration = Duration::from_secs(60);

/// Serves inbound calls.
pub struct Inbound {
    d: Arc<Dialler>,
    router: Router,
    guard: Mutex<ScannerGuard>,
}

impl Inbound {
    pub fn new(d: Arc<Dialler>) -> Self {
        let router = Router::new(&d.cfg, &d.proxies);
        Self { d, router, guard: Mutex::new(ScannerGuard::new(SCANNER_LIMIT, SCANNER_WINDOW)) }
    }

    /// Takes every inbound call until the endpoint stops.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<IncomingCall>) {
        while let Some(c) = rx.recv().await {
            let now = Instant::now();
            let ip = c.source.addr.ip();
            let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
            if guard.blocked(ip, now) {
                drop(guard);
                // Answered without any further work: a scanner costs a lookup.
                c.leg.reject(Refusal::UnknownSource.status());
                continue;
            }
            match self.router.route(&c.source, &c.request_user) {
                Ok(route) => {
                    drop(guard);
                    let this = self.clone();
                    tokio::spawn(async move { call::handle(&this.d, c, route).await });
                }
                Err(refusal) => {
                    if refusal == Refusal::UnknownSource {
                        guard.refused(ip, now);
                    }
                    drop(guard);
                    tracing::info!(source = %c.source.addr, user = %c.request_user, status = refusal.status(), "inbound call refused");
                    c.leg.reject(refusal.status());
                }
            }
        }
    }
}
