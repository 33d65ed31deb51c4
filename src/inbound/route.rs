//! Which queue an inbound INVITE belongs to, and the guard
//! against scanners.
//!
//! A call is accepted from a configured carrier only: its source address
//! must be the address of a profile's proxy. The Request-URI user must be
//! one of that profile's `dids` (with or without `+`); the call goes to the
//! DID's override queue, else the profile's `inbound_queue`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::sip::Peer;

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub profile: String,
    pub did: String,
    pub queue: String,
    /// A greeting played before anything else, from a per-DID override.
    pub greeting: Option<PathBuf>,
}

/// Why a call is refused, with the SIP status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source is not a configured carrier: 403.
    UnknownSource,
    /// The carrier is known but the number is not one of its DIDs: 404.
    UnknownDid,
    /// The DID has no queue to go to: 480.
    NoQueue,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::UnknownSource => 403,
            Refusal::UnknownDid => 404,
            Refusal::NoQueue => 480,
        }
    }
}

/// A DID as configured, with its override queue and greeting.
type DidEntry = (String, Option<String>, Option<PathBuf>);

/// The routing table, built once from the configuration and the resolved
/// proxies.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Carrier source IP → profile names with a proxy there.
    by_ip: HashMap<IpAddr, Vec<String>>,
    /// Profile → normalised DID → its entry.
    dids: BTreeMap<String, HashMap<String, DidEntry>>,
    inbound_queue: BTreeMap<String, Option<String>>,
    /// Profiles that accept calls from anywhere with digest credentials:
    /// username → profile.
    by_username: HashMap<String, String>,
}

/// A DID without its `+`, for matching what carriers send either way.
fn norm(did: &str) -> &str {
    did.trim_start_matches('+')
}

impl Router {
    pub fn new(cfg: &Config, proxies: &BTreeMap<String, Peer>) -> Self {
        let mut r = Router::default();
        for (name, p) in &cfg.profiles {
            if let Some(peer) = proxies.get(name) {
                r.by_ip.entry(peer.addr.ip()).or_default().push(name.clone());
            }
            let mut dids = HashMap::new();
            for d in &p.dids {
                let o = cfg.dids.iter().find(|o| norm(&o.number) == norm(d));
                dids.insert(norm(d).to_string(), (d.clone(), o.and_then(|o| o.queue.clone()), o.and_then(|o| o.greeting.clone())));
            }
            r.dids.insert(name.clone(), dids);
            r.inbound_queue.insert(name.clone(), p.inbound_queue.clone());
            if let (true, Some(u)) = (p.inbound_auth, &p.username) {
                r.by_username.insert(u.clone(), name.clone());
            }
        }
        r
    }

    /// Whether some profile accepts calls by digest credentials.
    pub fn has_digest_carriers(&self) -> bool {
        !self.by_username.is_empty()
    }

    /// The profile whose `inbound_auth` credentials have this username.
    pub fn digest_profile(&self, username: &str) -> Option<&str> {
        self.by_username.get(username).map(String::as_str)
    }

    /// Routes a call that proved it comes from `profile` (by digest).
    pub fn route_for(&self, profile: &str, user: &str) -> Result<Route, Refusal> {
        self.route_in(std::slice::from_ref(&profile.to_string()), user)
    }

    pub fn route(&self, source: &Peer, user: &str) -> Result<Route, Refusal> {
        let profiles = self.by_ip.get(&source.addr.ip()).ok_or(Refusal::UnknownSource)?;
        self.route_in(profiles, user)
    }

    fn route_in(&self, profiles: &[String], user: &str) -> Result<Route, Refusal> {
        for profile in profiles {
            if let Some((did, queue, greeting)) = self.dids.get(profile).and_then(|d| d.get(norm(user))) {
                let queue = queue.clone().or_else(|| self.inbound_queue.get(profile).cloned().flatten()).ok_or(Refusal::NoQueue)?;
                return Ok(Route { profile: profile.clone(), did: did.clone(), queue, greeting: greeting.clone() });
            }
        }
        Err(Refusal::UnknownDid)
    }
}

/// Counts refused calls per source address; past `limit` refusals within
/// `window`, the address is ignored until the window has passed since its
/// last refusal, so a SIP scanner costs one map lookup per INVITE.
#[derive(Debug)]
pub struct ScannerGuard {
    limit: u32,
    window: Duration,
    seen: HashMap<IpAddr, (u32, Instant)>,
}

impl ScannerGuard {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, seen: HashMap::new() }
    }

    /// Whether calls from `ip` are ignored now.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.seen.get(&ip) {
            Some(&(n, last)) if now.duration_since(last) < self.window => n >= self.limit,
            Some(_) => {
                self.seen.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// One more refusal from `ip`.
    pub fn refused(&mut self, ip: IpAddr, now: Instant) {
        if self.seen.len() > 100_000 {
            // Bound the memory a spoofing flood can take.
            let window = self.window;
            self.seen.retain(|_, (_, last)| now.duration_since(*last) < window);
        }
        let e = self.seen.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= self.window {
            *e = (0, now);
        }
        e.0 += 1;
        e.1 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DidOverride, Transport};

    fn setup() -> Router {
        let mut cfg = Config::defaults();
        let mut p = crate::sip::registration::tests::profile(300);
        p.name = "carrier".into();
        p.dids = vec!["+15550100".into(), "+15550199".into()];
        p.inbound_queue = Some("default".into());
        cfg.profiles.insert("carrier".into(), p);
        cfg.dids = vec![DidOverride { number: "+15550199".into(), queue: Some("sales".into()), greeting: Some("hello.wav".into()) }];
        let proxies = BTreeMap::from([("carrier".to_string(), Peer { addr: "127.0.0.9:5080".parse().unwrap(), transport: Transport::Udp })]);
        Router::new(&cfg, &proxies)
    }

    fn peer(s: &str) -> Peer {
        Peer { addr: s.parse().unwrap(), transport: Transport::Udp }
    }

    #[test]
    fn routes_by_source_and_did_with_overrides() {
        let r = setup();
        let a = r.route(&peer("127.0.0.9:40000"), "15550100").unwrap();
        assert_eq!((a.did.as_str(), a.queue.as_str(), a.greeting), ("+15550100", "default", None));
        let b = r.route(&peer("127.0.0.9:5080"), "+15550199").unwrap();
        assert_eq!((b.queue.as_str(), b.greeting), ("sales", Some(PathBuf::from("hello.wav"))));
        assert_eq!(r.route(&peer("127.0.0.9:5080"), "+15550111"), Err(Refusal::UnknownDid));
        assert_eq!(r.route(&peer("127.0.0.8:5080"), "+15550100"), Err(Refusal::UnknownSource));
        assert_eq!(Refusal::UnknownSource.status(), 403);
        assert_eq!(Refusal::UnknownDid.status(), 404);
    }

    #[test]
    fn scanner_guard_blocks_after_the_limit_and_forgets_after_the_window() {
        let mut g = ScannerGuard::new(3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.66".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(!g.blocked(ip, t0), "{i}");
            g.refused(ip, t0);
        }
        assert!(g.blocked(ip, t0 + Duration::from_secs(59)));
        assert!(!g.blocked(ip, t0 + Duration::from_secs(61)));
    }
}
