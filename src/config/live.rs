//! The configuration as it is now: what a SIGHUP reload swaps in whole, for the
//! parts that read it per request (the console's sign-in and sessions).

use std::sync::{Arc, RwLock};

use super::Config;

/// Clones share one configuration; [`LiveConfig::replace`] swaps it for every
/// clone at once, and a reader keeps the one it took until it is done.
#[derive(Debug, Clone)]
pub struct LiveConfig(Arc<RwLock<Arc<Config>>>);

impl LiveConfig {
    pub fn new(cfg: Arc<Config>) -> Self {
        Self(Arc::new(RwLock::new(cfg)))
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<Config> {
        // A panic while holding the lock leaves a whole `Arc` behind: poisoning is ignored.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// From now on, readers get `cfg`.
    pub fn replace(&self, cfg: Arc<Config>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = cfg;
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
    }
}
