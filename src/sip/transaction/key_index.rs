//! The layer's map from transaction key to slab slot, in shards that grow one at a time.
//!
//! A hash table grows by moving every entry into a table twice its size in one step. Under
//! load most live transactions are answered non-INVITE ones kept 32 s for Timer J (32,000 a
//! second at 16,000 digest REGISTER/s), so one growth of a single table would move hundreds of
//! thousands of entries and first touch tens of megabytes while the endpoint answers nothing:
//! a stall every sender sees, long enough to fill the receive queue. Split into [`SHARDS`]
//! tables chosen by the key's hash, each growth moves a 1/[`SHARDS`] share, and the shards,
//! filled evenly but not in lockstep, grow at different messages. Each entry keeps its hash,
//! so a growth moves entries without hashing keys again.
//!
//! Keys are hashed once per lookup with std's SipHash under a per-process random key: peers
//! choose branches, so the hash must resist collisions they could craft (HashDoS).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::key::TransactionKey;

/// Tables the index is split into.
const SHARDS: usize = 64;

#[derive(Debug)]
struct Slot {
    hash: u64,
    key: TransactionKey,
    slot: usize,
}

/// Bytes one key takes in the index: its slot in a table and the table's control byte.
pub(crate) const ENTRY_BYTES: usize = std::mem::size_of::<Slot>() + 1;

#[derive(Debug)]
pub(crate) struct KeyIndex {
    hasher: RandomState,
    shards: Box<[HashTable<Slot>]>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self { hasher: RandomState::new(), shards: (0..SHARDS).map(|_| HashTable::new()).collect() }
    }
}

impl KeyIndex {
    /// The key's hash and its shard. The shard comes from bits 32–37: a table places an entry
    /// by the low bits of its hash and tags it with the top seven, so within one shard both
    /// still vary freely.
    fn locate(&self, key: &TransactionKey) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, (hash >> 32) as usize % SHARDS)
    }

    pub fn get(&self, key: &TransactionKey) -> Option<usize> {
        let (hash, shard) = self.locate(key);
        self.shards[shard].find(hash, |e| e.key == *key).map(|e| e.slot)
    }

    pub fn contains_key(&self, key: &TransactionKey) -> bool {
        self.get(key).is_some()
    }

    /// Maps `key` to `slot`, replacing the slot of an equal key.
    pub fn insert(&mut self, key: TransactionKey, slot: usize) {
        let (hash, shard) = self.locate(&key);
        let table = &mut self.shards[shard];
        match table.find_mut(hash, |e| e.key == key) {
            Some(e) => e.slot = slot,
            None => {
                table.insert_unique(hash, Slot { hash, key, slot }, |e| e.hash);
            }
        }
    }

    /// Removes `key`; returns its slot.
    pub fn remove(&mut self, key: &TransactionKey) -> Option<usize> {
        let (hash, shard) = self.locate(key);
        let entry = self.shards[shard].find_entry(hash, |e| e.key == *key).ok()?;
        Some(entry.remove().0.slot)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> TransactionKey {
        TransactionKey::server(format!("z9hG4bK{n}"), "10.0.0.2:5060".into(), rsip::Method::Register)
    }

    #[test]
    fn maps_keys_to_slots_through_growth_and_removal() {
        let mut index = KeyIndex::default();
        // Enough keys that every shard grows several times.
        for n in 0..20_000 {
            index.insert(key(n), n);
        }
        assert_eq!(index.len(), 20_000);
        assert!((0..20_000).all(|n| index.get(&key(n)) == Some(n)));
        assert_eq!(index.get(&key(20_000)), None);
        let other_method = key(1).with_method(rsip::Method::Invite);
        assert!(!index.contains_key(&other_method), "the method is part of the key");
        index.insert(key(7), 70);
        assert_eq!(index.get(&key(7)), Some(70), "an equal key's slot is replaced");
        assert_eq!(index.len(), 20_000);
        for n in (0..20_000).step_by(2) {
            assert_eq!(index.remove(&key(n)), Some(n));
        }
        assert_eq!(index.remove(&key(0)), None);
        assert_eq!(index.len(), 10_000);
        assert!((1..20_000).step_by(2).all(|n| index.get(&key(n)) == Some(if n == 7 { 70 } else { n })));
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut index = KeyIndex::default();
        for n in 0..64 * 200 {
            index.insert(key(n), n);
        }
        // 200 a shard on average; a shard with none or far too many would mean the shard
        // bits are not independent of the key.
        assert!(index.shards.iter().all(|t| (100..400).contains(&t.len())), "{:?}", index.shards.iter().map(HashTable::len).collect::<Vec<_>>());
    }
}
