//! Agents in cluster mode, as the dialler sees them.

use std::sync::Arc;

use super::book::Ownership;
use crate::clock::Millis;
use crate::scheduler::engine::Availability;

/// The node's availability in cluster mode: the local registry's answer,
/// except for agents another node holds now (as last read by the lease
/// loop, or refused by a hold write since). The hold written with each
/// attempt's start is what decides; this only keeps the dialler from
/// picking, round after round, an agent it cannot get.
pub struct ClusterAgents {
    pub inner: Arc<dyn Availability>,
    pub own: Arc<Ownership>,
}

impl Availability for ClusterAgents {
    fn reserve(&self, now: Millis, queue: &str, owner: Option<&str>) -> Option<String> {
        if owner.is_some_and(|o| self.own.held_elsewhere(o)) {
            return None;
        }
        let got = self.inner.reserve(now, queue, owner)?;
        if self.own.held_elsewhere(&got) {
            // The registry picks one free agent; it is not ours to take.
            self.inner.release(&got);
            return None;
        }
        Some(got)
    }

    fn release(&self, agent: &str) {
        self.inner.release(agent);
    }

    fn take_retry_at(&self) -> Option<Millis> {
        self.inner.take_retry_at()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// One agent, alice: free until reserved.
    struct One(Mutex<bool>);

    impl Availability for One {
        fn reserve(&self, _now: Millis, _queue: &str, _owner: Option<&str>) -> Option<String> {
            let mut busy = self.0.lock().unwrap();
            (!*busy).then(|| {
                *busy = true;
                "alice".into()
            })
        }
        fn release(&self, _agent: &str) {
            *self.0.lock().unwrap() = false;
        }
    }

    #[test]
    fn an_agent_another_node_holds_is_not_offered_nor_kept_reserved() {
        let inner = Arc::new(One(Mutex::new(false)));
        let own = Ownership::new("a", 4, std::time::Duration::from_secs(10));
        let a = ClusterAgents { inner: inner.clone(), own: own.clone() };
        own.set_held_elsewhere(["alice".to_string()]);
        assert_eq!(a.reserve(0, "q", None), None);
        assert!(!*inner.0.lock().unwrap(), "the local reservation was given back");
        assert_eq!(a.reserve(0, "q", Some("alice")), None);
        own.set_held_elsewhere([]);
        assert_eq!(a.reserve(0, "q", None).as_deref(), Some("alice"));
    }
}
