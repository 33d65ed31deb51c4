//! The calls redial is handling now, by interaction id: an agent on one of
//! them can book a callback with `interaction_id` naming it.

use std::collections::HashMap;
use std::sync::Mutex;
use super::{LiveCall, LiveCalls};

/// A fresh interaction id (`call_` + 16 hex digits), sent to the agent in
/// `X-Redial-Interaction-Id`.
pub fn new_interaction_id() -> String {
    format!("call_{:016x}", rand::random::<u64>())
}

#[derive(Debug, Default)]
pub struct LiveCallTable {
    calls: Mutex<HashMap<String, LiveCall>>,
}

impl LiveCallTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveCall>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call with the customer `phone` in `queue` began (or its agent changed).
    pub fn set(&self, id: &str, phone: &str, queue: &str, agent: Option<&str>) {
        self.lock().insert(id.to_string(), LiveCall { phone: phone.to_string(), queue: queue.to_string(), agent: agent.map(str::to_string) });
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl LiveCalls for LiveCallTable {
    fn lookup(&self, interaction_id: &str) -> Option<LiveCall> {
        self.lock().get(interaction_id).cloned()
    }
}
