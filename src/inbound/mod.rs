//! Inbound trunk calls: a carrier's call to one of its DIDs goes
//! to the DID's queue. An available agent takes it; when none is free the
//! caller is offered a callback that keeps their place ("virtual hold").
//!
//! - [`route`]: which queue a call belongs to; refusing unknown sources
//!   (403, rate-limited against scanners) and unknown DIDs (404). Carriers
//!   with `inbound_auth` may call from any address with digest credentials
//!   (407 challenge, here).
//! - [`call`]: one inbound call from answer to hang-up.
//! - [`number`]: the caller's number as E.164, or collected by DTMF.

mod call;
pub mod number;
pub mod route;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::calls::CallKit;
use crate::sip::auth::{parse_authorization, DigestServer, DEFAULT_NONCE_LIFETIME};
use crate::sip::calls::IncomingCall;

pub use route::{Refusal, Route, Router, ScannerGuard};

/// Refusals from one address before its calls are ignored, and for how long.
const SCANNER_LIMIT: u32 = 10;
const SCANNER_WINDOW: Duration = Duration::from_secs(60);

/// Serves inbound calls.
pub struct Inbound {
    kit: Arc<CallKit>,
    /// The routes of the configuration they were built from: rebuilt once a
    /// reload replaced it (`[[dids]]`' queues apply to the next call).
    router: Mutex<(Arc<crate::config::Config>, Arc<Router>)>,
    guard: Mutex<ScannerGuard>,
    /// Challenges carriers that authenticate by digest (`inbound_auth`).
    digest: Mutex<DigestServer>,
}

/// What the credentials of a call from an unknown address say.
enum Proof {
    /// Valid for this profile.
    Carrier(String),
    /// None, or stale: challenge (407).
    Challenge { stale: bool },
    /// Wrong: refuse (403).
    Refused,
}

impl Inbound {
    pub fn new(kit: Arc<CallKit>) -> Self {
        let d = &kit;
        let (live, proxies) = d.live();
        let router = Mutex::new((live.clone(), Arc::new(Router::new(&live, &proxies))));
        let mut digest = DigestServer::new(
            d.cfg.sip.realm.clone(),
            &d.cfg.sip.digest_algorithms,
            DEFAULT_NONCE_LIFETIME,
            Instant::now(),
            &mut rand::rng(),
        );
        // Carriers' proxies rewrite the Request-URI; the digest still binds
        // the method, nonce and credentials.
        digest.set_check_uri(false);
        let guard = Mutex::new(ScannerGuard::new(SCANNER_LIMIT, SCANNER_WINDOW));
        Self { kit: kit.clone(), router, guard, digest: Mutex::new(digest) }
    }

    /// Checks the `Proxy-Authorization` of a call from an address that is no
    /// carrier's, against the profiles with `inbound_auth`.
    /// The routes as the configuration is now.
    fn router(&self) -> Arc<Router> {
        let (live, proxies) = self.kit.live();
        let mut r = self.router.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&r.0, &live) {
            *r = (live.clone(), Arc::new(Router::new(&live, &proxies)));
        }
        r.1.clone()
    }

    fn prove(&self, c: &IncomingCall, now: Instant) -> Proof {
        let mut digest = self.digest.lock().unwrap_or_else(|e| e.into_inner());
        let realm = digest.realm().to_string();
        let creds = c
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Proxy-Authorization"))
            .filter_map(|(_, v)| parse_authorization(v).ok())
            .find(|cr| cr.realm == realm);
        let Some(creds) = creds else { return Proof::Challenge { stale: false } };
        let Some(profile) = self.router().digest_profile(&creds.username).map(str::to_string) else { return Proof::Refused };
        let password = self.kit.cfg.profiles.get(&profile).and_then(|p| p.password.clone());
        match digest.verify(now, &rsip::Method::Invite, &rsip::Uri::default(), &creds, |_| password) {
            Ok(_) => Proof::Carrier(profile),
            Err(e) if e.is_stale() => Proof::Challenge { stale: true },
            Err(e) => {
                tracing::info!(error = %e, "inbound digest refused");
                Proof::Refused
            }
        }
    }

    fn challenge(&self, c: &IncomingCall, now: Instant, stale: bool) {
        let digest = self.digest.lock().unwrap_or_else(|e| e.into_inner());
        let headers = digest.challenge(now, stale, &mut rand::rng()).into_iter().map(|ch| ("Proxy-Authenticate".to_string(), ch.to_string())).collect();
        c.leg.reject_with(407, headers);
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
            let router = self.router();
            let mut routed = router.route(&c.source, &c.request_user);
            if routed == Err(Refusal::UnknownSource) && router.has_digest_carriers() {
                drop(guard);
                match self.prove(&c, now) {
                    Proof::Carrier(profile) => routed = router.route_for(&profile, &c.request_user),
                    Proof::Challenge { stale } => {
                        self.challenge(&c, now, stale);
                        continue;
                    }
                    Proof::Refused => {}
                }
                guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
            }
            match routed {
                Ok(route) => {
                    drop(guard);
                    let this = self.clone();
                    tokio::spawn(async move { call::handle(&this.kit, c, route).await });
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
