//! The configuration as it is now: what a SIGHUP reload swaps in whole, for the
//! parts that read it per decision (the book's rules, the gate, the dialler, inbound
//! routing, texts, the API and the console), with each profile's proxy address as
//! last resolved.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use super::Config;

/// Each profile's proxy, resolved (profiles whose proxy did not resolve are absent).
pub type ProxyAddrs = BTreeMap<String, SocketAddr>;

/// Clones share one configuration; [`LiveConfig::replace`] swaps it for every
/// clone at once, and a reader keeps the one it took until it is done.
#[derive(Debug, Clone)]
pub struct LiveConfig(Arc<RwLock<(Arc<Config>, Arc<ProxyAddrs>)>>);

impl LiveConfig {
    /// `cfg`, with no proxy resolved yet.
    pub fn new(cfg: Arc<Config>) -> Self {
        Self(Arc::new(RwLock::new((cfg, Arc::default()))))
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<Config> {
        self.snapshot().0
    }

    /// The configuration now and its profiles' proxies, as one consistent pair.
    pub fn snapshot(&self) -> (Arc<Config>, Arc<ProxyAddrs>) {
        // A panic while holding the lock leaves whole `Arc`s behind: poisoning is ignored.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// From now on, readers get `cfg`; the proxies stay as they are.
    pub fn replace(&self, cfg: Arc<Config>) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).0 = cfg;
    }

    /// From now on, readers get `cfg` and its profiles' `proxies`.
    pub fn replace_with_proxies(&self, cfg: Arc<Config>, proxies: ProxyAddrs) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = (cfg, Arc::new(proxies));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_the_replacement_and_a_reader_keeps_its_own() {
        let a = LiveConfig::new(Arc::new(Config::defaults()));
        let b = a.clone();
        let before = b.get();
        let mut next = Config::defaults();
        next.agents.push(crate::config::Agent { id: "carol".into(), password: "pw".into(), queues: vec![] });
        a.replace(Arc::new(next));
        assert!(b.get().agent("carol").is_some());
        assert!(before.agent("carol").is_none());
        let addr: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        a.replace_with_proxies(Arc::new(Config::defaults()), BTreeMap::from([("carrier".to_string(), addr)]));
        let (cfg, proxies) = b.snapshot();
        assert!(cfg.agent("carol").is_none());
        assert_eq!(proxies.get("carrier"), Some(&addr));
        a.replace(cfg);
        assert_eq!(b.snapshot().1.get("carrier"), Some(&addr), "a replacement of the configuration alone keeps the proxies");
    }
}
