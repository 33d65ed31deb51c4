//! Carrier trunks: one [`Registration`] and one [`OptionsPinger`] per profile, their
//! client transactions, and the shared [`TrunkStates`] the HTTP API reads.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::{Config, Profile, Transport};
use crate::sip::keepalive::{KeepaliveEvent, OptionsPinger};
use crate::sip::registration::{Registration, RegistrationEvent};
use crate::sip::transaction::TransactionKey;
use crate::sip::Peer;

/// One trunk as the HTTP API shows it (`GET /v1/trunks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    pub name: String,
    /// Whether the profile registers at all (`register = true`).
    pub register: bool,
    pub registered: bool,
    pub expires_at: Option<Instant>,
    /// OPTIONS keep-alive verdict (true when pings are disabled).
    pub up: bool,
    pub last_error: Option<String>,
}

impl TrunkStatus {
    /// Whole seconds until the registration expires, at `now`.
    pub fn expires_in(&self, now: Instant) -> Option<u64> {
        self.expires_at.map(|at| at.saturating_duration_since(now).as_secs())
    }
}

/// Trunk states by profile name, updated by the endpoint after every change.
pub type TrunkStates = Arc<RwLock<BTreeMap<String, TrunkStatus>>>;

/// Which machine a client transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Register(usize),
    Ping(usize),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Register(i) => write!(f, "register#{i}"),
            Origin::Ping(i) => write!(f, "ping#{i}"),
        }
    }
}

struct Trunk {
    name: String,
    /// The settings it runs with: a reload that changes them replaces the trunk.
    profile: Profile,
    proxy: Peer,
    registration: Option<Registration<StdRng>>,
    pinger: Option<OptionsPinger<StdRng>>,
    last_error: Option<String>,
    /// Removed or replaced by a reload: it only finishes unregistering. It keeps its
    /// slot, so the origins of its transactions in flight stay valid.
    retired: bool,
    /// Replaces the trunk in this slot: sends nothing until that one has
    /// unregistered, so the registrar never sees the old unREGISTER after the new REGISTER.
    after: Option<usize>,
}

pub(super) struct Trunks {
    trunks: Vec<Trunk>,
    keys: HashMap<TransactionKey, Origin>,
    states: TrunkStates,
    /// Bumped when a trunk's registered/up/last-error state changes.
    changes: tokio::sync::watch::Sender<u64>,
    stopping: bool,
}

/// The address to advertise in Via/Contact towards `proxy`: `public_addr` when set, else
/// the bound address; when bound to 0.0.0.0/::, the source address the routing table picks
/// for `proxy` (a connected UDP socket; nothing is sent), else loopback.
pub fn advertised(cfg: &Config, local: SocketAddr, proxy: Option<SocketAddr>) -> SocketAddr {
    advertised_from(cfg.sip.public_addr, local, proxy)
}

/// [`advertised`] from `sip.public_addr` alone.
pub fn advertised_from(public_addr: Option<std::net::IpAddr>, local: SocketAddr, proxy: Option<SocketAddr>) -> SocketAddr {
    let ip = match public_addr {
        Some(ip) => ip,
        None if local.ip().is_unspecified() => proxy
            .and_then(|p| {
                let any: SocketAddr = if p.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
                let s = std::net::UdpSocket::bind(any).ok()?;
                s.connect(p).ok()?;
                s.local_addr().ok().map(|a| a.ip())
            })
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
        None => local.ip(),
    };
    SocketAddr::new(ip, local.port())
}

/// Resolves each profile's proxy to an address (IP literals directly, else DNS).
pub async fn resolve_proxies(cfg: &Config) -> BTreeMap<String, Result<SocketAddr, String>> {
    let mut out = BTreeMap::new();
    for p in cfg.profiles.values() {
        let host = p.proxy_host.trim_start_matches('[').trim_end_matches(']');
        let r = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, p.proxy_port)),
            Err(_) => match tokio::net::lookup_host((host, p.proxy_port)).await {
                Ok(mut it) => it.next().ok_or_else(|| format!("{host} has no address")),
                Err(e) => Err(format!("cannot resolve {host}: {e}")),
            },
        };
        out.insert(p.name.clone(), r);
    }
    out
}

impl Trunks {
    pub(super) fn new(
        cfg: &Config,
        local: SocketAddr,
        now: Instant,
        proxies: &BTreeMap<String, Result<SocketAddr, String>>,
        states: TrunkStates,
        changes: tokio::sync::watch::Sender<u64>,
    ) -> Self {
        let trunks = cfg.profiles.values().map(|p| make_trunk(cfg, p, local, now, proxies)).collect();
        let t = Self { trunks, keys: HashMap::new(), states, changes, stopping: false };
        t.publish(cfg.profiles.values());
        t
    }

    fn publish<'a>(&self, profiles: impl Iterator<Item = &'a Profile>) {
        let mut map = self.states.write().expect("trunk states lock");
        for (p, t) in profiles.zip(&self.trunks) {
            map.insert(p.name.clone(), status_of(t, p.register));
        }
    }

    /// Follows a reloaded configuration's profiles: an unchanged trunk goes on as it
    /// is; a removed one unregisters and stops; a changed one unregisters and is
    /// replaced by one with the new settings, which registers once the old one is done;
    /// a new one starts. Calls are not the trunks' business: those in progress go on.
    pub(super) fn reload(&mut self, cfg: &Config, local: SocketAddr, now: Instant, proxies: &BTreeMap<String, Result<SocketAddr, String>>) {
        let mut running = HashMap::new();
        for i in 0..self.trunks.len() {
            let t = &mut self.trunks[i];
            if t.retired {
                continue;
            }
            let same = cfg.profiles.get(&t.name).is_some_and(|p| *p == t.profile && proxies.get(&p.name) == Some(&Ok(t.proxy.addr)));
            if same {
                running.insert(t.name.clone(), i);
                continue;
            }
            t.retired = true;
            t.pinger = None;
            let why = if cfg.profiles.contains_key(&t.name) { "changed" } else { "removed" };
            tracing::info!(trunk = %t.name, why, "trunk reloaded: unregistering with its old settings");
            if let Some(r) = &mut t.registration {
                r.unregister();
            }
            let name = t.name.clone();
            if why == "removed" {
                self.states.write().expect("trunk states lock").remove(&name);
                self.changes.send_modify(|n| *n += 1);
            } else {
                running.insert(name, i);
            }
            self.update(i);
        }
        for p in cfg.profiles.values() {
            let old = running.get(&p.name).copied();
            if old.is_some_and(|i| !self.trunks[i].retired) {
                continue;
            }
            let mut t = make_trunk(cfg, p, local, now, proxies);
            t.after = old;
            tracing::info!(trunk = %p.name, replaces = old.is_some(), "trunk reloaded: starting with the new settings");
            self.trunks.push(t);
            let i = self.trunks.len() - 1;
            self.states.write().expect("trunk states lock").insert(p.name.clone(), status_of(&self.trunks[i], p.register));
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Whether trunk `i` may send: a replacement waits for the old trunk's unREGISTER.
    fn may_send(&self, i: usize) -> bool {
        self.trunks[i].after.is_none_or(|j| self.trunks[j].registration.as_ref().is_none_or(|r| r.state().unregistered))
    }

    fn update(&mut self, i: usize) {
        let t = &mut self.trunks[i];
        if let Some(r) = &mut t.registration {
            while let Some(ev) = r.poll_event() {
                match ev {
                    RegistrationEvent::Registered { expires_at } => {
                        let secs = expires_at.saturating_duration_since(Instant::now()).as_secs();
                        tracing::info!(trunk = %t.name, expires_in = secs, "trunk registered");
                    }
                    RegistrationEvent::Failed { error, retry_at } => {
                        let secs = retry_at.saturating_duration_since(Instant::now()).as_secs_f64();
                        tracing::warn!(trunk = %t.name, %error, retry_in_s = secs, "trunk registration failed");
                    }
                    RegistrationEvent::Expired => tracing::warn!(trunk = %t.name, "trunk registration expired"),
                    RegistrationEvent::Unregistered { error } => {
                        tracing::info!(trunk = %t.name, error = ?error.map(|e| e.to_string()), "trunk unregistered")
                    }
                }
            }
        }
        if let Some(p) = &mut t.pinger {
            while let Some(ev) = p.poll_event() {
                match ev {
                    KeepaliveEvent::Up => tracing::info!(trunk = %t.name, "trunk up"),
                    KeepaliveEvent::Down => tracing::warn!(trunk = %t.name, failures = p.failures(), "trunk down"),
                }
            }
        }
        if t.retired {
            return;
        }
        let register = t.registration.is_some();
        let status = status_of(t, register);
        let seen = |s: &TrunkStatus| (s.registered, s.up, s.last_error.clone());
        let new = seen(&status);
        let old = self.states.write().expect("trunk states lock").insert(t.name.clone(), status);
        if old.as_ref().map(seen) != Some(new) {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// The next request a trunk wants sent, its destination and origin.
    pub(super) fn poll_request(&mut self, _now: Instant) -> Option<(rsip::Request, Peer, Origin)> {
        for i in 0..self.trunks.len() {
            if !self.may_send(i) {
                continue;
            }
            let t = &mut self.trunks[i];
            if let Some(req) = t.registration.as_mut().and_then(|r| r.poll_transmit()) {
                return Some((req, t.proxy, Origin::Register(i)));
            }
            if let Some(req) = t.pinger.as_mut().and_then(|p| p.poll_transmit()) {
                if !self.stopping {
                    return Some((req, t.proxy, Origin::Ping(i)));
                }
            }
        }
        None
    }

    pub(super) fn started(&mut self, origin: Origin, key: TransactionKey) {
        self.keys.insert(key, origin);
    }

    pub(super) fn on_response(&mut self, now: Instant, key: &TransactionKey, resp: rsip::Response) {
        let Some(&origin) = self.keys.get(key) else { return };
        let i = match origin {
            Origin::Register(i) => {
                if let Some(r) = &mut self.trunks[i].registration {
                    r.handle_response(now, &resp);
                }
                i
            }
            Origin::Ping(i) => {
                if let Some(p) = &mut self.trunks[i].pinger {
                    p.handle_response(now, &resp);
                }
                i
            }
        };
        self.update(i);
    }

    /// Timer F or a transport error ended one of our client transactions.
    pub(super) fn on_failure(&mut self, now: Instant, key: &TransactionKey) {
        let Some(&origin) = self.keys.get(key) else { return };
        let i = match origin {
            Origin::Register(i) => {
                if let Some(r) = &mut self.trunks[i].registration {
                    r.handle_transport_failure(now);
                }
                i
            }
            Origin::Ping(i) => {
                if let Some(p) = &mut self.trunks[i].pinger {
                    p.handle_failure(now);
                }
                i
            }
        };
        self.update(i);
    }

    pub(super) fn forget(&mut self, key: &TransactionKey) {
        self.keys.remove(key);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.may_send(i))
            .flat_map(|(_, t)| {
                let r = t.registration.as_ref().and_then(|r| r.poll_timeout());
                let p = if self.stopping { None } else { t.pinger.as_ref().and_then(|p| p.poll_timeout()) };
                [r, p]
            })
            .flatten()
            .min()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.trunks.len() {
            if !self.may_send(i) {
                continue;
            }
            let t = &mut self.trunks[i];
            let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
            let mut changed = false;
            if let Some(r) = &mut t.registration {
                if due(r.poll_timeout()) {
                    r.handle_timeout(now);
                    changed = true;
                }
            }
            if let Some(p) = &mut t.pinger {
                if !self.stopping && due(p.poll_timeout()) {
                    p.handle_timeout(now);
                    changed = true;
                }
            }
            if changed {
                self.update(i);
            }
        }
    }

    /// Graceful shutdown: REGISTER with Expires: 0 for every registered trunk; pings stop.
    pub(super) fn unregister_all(&mut self, _now: Instant) {
        self.stopping = true;
        for i in 0..self.trunks.len() {
            // A replacement that never sent has nothing to take back.
            if !self.may_send(i) {
                self.trunks[i].registration = None;
            }
            if let Some(r) = &mut self.trunks[i].registration {
                r.unregister();
            }
            self.update(i);
        }
    }

    pub(super) fn all_unregistered(&self) -> bool {
        self.trunks.iter().all(|t| t.registration.as_ref().is_none_or(|r| r.state().unregistered))
    }
}

/// A trunk for profile `p`, registering (when it does) and pinging from `local`.
fn make_trunk(cfg: &Config, p: &Profile, local: SocketAddr, now: Instant, proxies: &BTreeMap<String, Result<SocketAddr, String>>) -> Trunk {
    let proxy_addr = proxies.get(&p.name).and_then(|r| r.as_ref().ok()).copied();
    // Over TLS we speak from the TLS listener when there is one (the bound address
    // is in `cfg.sip.tls_listen`); without one, replies come back on our connection.
    let local = match (p.transport, cfg.sip.tls_listen) {
        (Transport::Tls, Some(tls)) => tls,
        _ => local,
    };
    let me = Peer { addr: advertised(cfg, local, proxy_addr), transport: p.transport };
    let (proxy, mut last_error) = match proxies.get(&p.name) {
        Some(Ok(a)) => (Some(Peer { addr: *a, transport: p.transport }), None),
        Some(Err(e)) => (None, Some(e.clone())),
        None => (None, Some("proxy not resolved".to_string())),
    };
    let (registration, pinger) = match proxy {
        Some(_) => (p.register.then(|| make_registration(p, me, &mut last_error)).flatten(), OptionsPinger::new(p, me, now, StdRng::from_os_rng())),
        None => (None, None),
    };
    if let Some(e) = &last_error {
        tracing::warn!(trunk = %p.name, error = %e, "trunk unusable");
    }
    let proxy = proxy.unwrap_or(Peer { addr: SocketAddr::from(([0, 0, 0, 0], 0)), transport: p.transport });
    Trunk { name: p.name.clone(), profile: p.clone(), proxy, registration, pinger, last_error, retired: false, after: None }
}

fn make_registration(p: &Profile, me: Peer, last_error: &mut Option<String>) -> Option<Registration<StdRng>> {
    match Registration::new(p, me, StdRng::from_os_rng()) {
        Ok(r) => Some(r),
        Err(e) => {
            *last_error = Some(e.to_string());
            None
        }
    }
}

fn status_of(t: &Trunk, register: bool) -> TrunkStatus {
    let reg = t.registration.as_ref().map(|r| r.state());
    TrunkStatus {
        name: t.name.clone(),
        register,
        registered: reg.as_ref().is_some_and(|s| s.registered),
        expires_at: reg.as_ref().and_then(|s| s.expires_at),
        up: t.pinger.as_ref().is_none_or(|p| p.is_up()),
        last_error: reg.and_then(|s| s.last_error.map(|e| e.to_string())).or_else(|| t.last_error.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_address() {
        let mut cfg = Config::defaults();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(advertised(&cfg, local, None), local);
        let any: SocketAddr = "0.0.0.0:5060".parse().unwrap();
        // Routed towards a loopback proxy, the source is loopback.
        assert_eq!(advertised(&cfg, any, Some("127.0.0.1:5080".parse().unwrap())), local);
        cfg.sip.public_addr = Some("203.0.113.7".parse().unwrap());
        assert_eq!(advertised(&cfg, any, None), "203.0.113.7:5060".parse().unwrap());
    }
}
