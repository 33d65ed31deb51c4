//! Placeholder for `scheduler::wheel::TimerWheel` (written on the
//! `sched-window` branch) with the same interface, over a `BTreeSet`.
//! Deleted once the wheel is merged.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use crate::clock::Millis;

#[derive(Debug)]
pub struct TimerWheel<K: Ord + Hash + Clone> {
    by_time: BTreeSet<(Millis, K)>,
    due: HashMap<K, Millis>,
}

impl<K: Ord + Hash + Clone> TimerWheel<K> {
    pub fn new(_now: Millis) -> Self {
        Self { by_time: BTreeSet::new(), due: HashMap::new() }
    }
    pub fn insert(&mut self, key: K, due_ms: Millis) {
        self.remove(&key);
        self.by_time.insert((due_ms, key.clone()));
        self.due.insert(key, due_ms);
    }
    pub fn remove(&mut self, key: &K) -> Option<Millis> {
        let d = self.due.remove(key)?;
        self.by_time.remove(&(d, key.clone()));
        Some(d)
    }
    pub fn poll_expired(&mut self, now_ms: Millis) -> Vec<K> {
        let mut out = Vec::new();
        while let Some((d, _)) = self.by_time.first() {
            if *d > now_ms {
                break;
            }
            let (_, k) = self.by_time.pop_first().expect("non-empty");
            self.due.remove(&k);
            out.push(k);
        }
        out
    }
    pub fn next_deadline(&self) -> Option<Millis> {
        self.by_time.first().map(|x| x.0)
    }
    pub fn len(&self) -> usize {
        self.due.len()
    }
}
