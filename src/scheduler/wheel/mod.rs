//! The in-memory timer wheel holding the near future (sans-IO: time is an
//! argument, nothing here reads a clock).
//!
//! # Design
//! Hierarchical wheel, 1 ms ticks, [`LEVELS`] = 4 levels of 64 slots: level
//! `l` slots are `64^l` ms wide, so the wheel spans `64^4` ms ≈ 4 h 40 min
//! ahead. An item is placed at the level of the highest bit in which its due
//! tick differs from the wheel's current tick (as in the Varghese & Lauck
//! hierarchical wheel and tokio's timer), and moves down a level when the
//! wheel reaches its slot. Items further ahead than the top level's current
//! block wait in an overflow list that is rescanned once per top-level block
//! (every ~4.66 h); the engine only keeps the near future here anyway, the
//! far future lives in redb.
//!
//! Each slot is an intrusive doubly linked list over a slab, with a key ->
//! slab index map, so `insert` and `remove` are O(1). Each level keeps a
//! 64-bit occupancy mask, so finding the next occupied slot is one
//! `trailing_zeros` per level and the wheel jumps over empty time instead of
//! ticking through it.
//!
//! # `next_deadline` contract
//! [`TimerWheel::next_deadline`] is a **safe lower bound**: a poll at any
//! earlier time returns nothing. It is exact when the earliest item sits in
//! level 0 (due within the current 64 ms); otherwise it is the start of the
//! slot holding the earliest item (or of the next top-level block for
//! overflow items). A driver sleeps until it, calls
//! [`TimerWheel::poll_expired`], and asks again; each early wake moves items
//! down a level, so an item within [`SPAN_MS`] is reached after at most
//! [`LEVELS`] + 1 wakes, an overflow item after one more wake per ~4.66 h.
//!
//! # Time going backwards
//! The wheel's time is the latest `now` it has seen. A poll with an earlier
//! `now` (a wall clock stepped back) returns nothing new; items, including
//! ones inserted as already due, fire once `now` catches up. They may fire
//! late by the size of the step, never early.

use std::collections::HashMap;
use std::hash::Hash;

use crate::clock::Millis;

/// Number of levels of the wheel.
pub const LEVELS: usize = 4;
const SLOTS: usize = 64;
const BITS: u32 = 6;
/// How far ahead (in ms from the wheel's current time) the levels reach.
pub const SPAN_MS: u64 = 1 << (BITS * LEVELS as u32);
const OVERFLOW: u16 = (LEVELS * SLOTS) as u16;
const NIL: u32 = u32::MAX;

struct Node<K> {
    key: K,
    due: Millis,
    /// Insertion order, for ties at the same due time.
    seq: u64,
    /// Tick used for placement: `max(due, current)` relative to the origin.
    tick: u64,
    list: u16,
    prev: u32,
    next: u32,
}

enum Entry<K> {
    Used(Node<K>),
    Free(u32),
}

/// A hierarchical timer wheel of keys `K` due at [`Millis`] instants.
pub struct TimerWheel<K> {
    /// Instant of tick 0; ticks are ms since it.
    origin: Millis,
    /// The wheel's current tick: every item due at or before it has been
    /// returned by `poll_expired`.
    elapsed: u64,
    occupied: [u64; LEVELS],
    heads: Vec<u32>,
    tails: Vec<u32>,
    slab: Vec<Entry<K>>,
    free: u32,
    index: HashMap<K, u32>,
    seq: u64,
    /// Reused buffer for sorting one poll's expiries.
    scratch: Vec<(Millis, u64, u32)>,
}

impl<K: Clone + Eq + Hash> TimerWheel<K> {
    /// An empty wheel whose current time is `now_ms`.
    pub fn new(now_ms: Millis) -> Self {
        Self {
            origin: now_ms,
            elapsed: 0,
            occupied: [0; LEVELS],
            heads: vec![NIL; LEVELS * SLOTS + 1],
            tails: vec![NIL; LEVELS * SLOTS + 1],
            slab: Vec::new(),
            free: NIL,
            index: HashMap::new(),
            seq: 0,
            scratch: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// The due time `key` was inserted with, if present.
    pub fn due_of(&self, key: &K) -> Option<Millis> {
        self.index.get(key).map(|&i| self.node(i).due)
    }

    /// Schedules `key` at `due_ms`; re-inserting a present key moves it (and
    /// it then ranks after earlier insertions due at the same instant). An
    /// item already due fires at the next `poll_expired`.
    pub fn insert(&mut self, key: K, due_ms: Millis) {
        self.remove(&key);
        let tick = self.tick_of(due_ms).max(self.elapsed);
        let seq = self.seq;
        self.seq += 1;
        let node = Node { key: key.clone(), due: due_ms, seq, tick, list: 0, prev: NIL, next: NIL };
        let idx = match self.free {
            NIL => {
                self.slab.push(Entry::Used(node));
                (self.slab.len() - 1) as u32
            }
            f => {
                self.free = match self.slab[f as usize] {
                    Entry::Free(next) => next,
                    Entry::Used(_) => unreachable!("free list points at a used entry"),
                };
                self.slab[f as usize] = Entry::Used(node);
                f
            }
        };
        self.index.insert(key, idx);
        self.place(idx);
    }

    /// Removes `key`; false if it was not present.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(idx) = self.index.remove(key) else {
            return false;
        };
        self.unlink(idx);
        self.slab[idx as usize] = Entry::Free(self.free);
        self.free = idx;
        true
    }

    /// Every key due at or before `now_ms`, in due order (ties: insertion
    /// order), removed from the wheel. Call again whenever time reaches
    /// [`Self::next_deadline`] and after inserting an item already due. A
    /// `now_ms` earlier than a previous call's returns nothing (see the
    /// module docs on time going backwards).
    pub fn poll_expired(&mut self, now_ms: Millis) -> Vec<K> {
        let mut out = Vec::new();
        self.poll_expired_into(now_ms, &mut out);
        out
    }

    /// As [`Self::poll_expired`], appending to `out` (no allocation once the
    /// buffers have grown).
    pub fn poll_expired_into(&mut self, now_ms: Millis, out: &mut Vec<K>) {
        let now = self.tick_of(now_ms);
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some((list, deadline)) = self.next_slot() {
            if deadline > now {
                break;
            }
            self.elapsed = self.elapsed.max(deadline);
            // Detach the slot, then expire or re-place each of its items.
            let mut i = self.heads[list as usize];
            self.heads[list as usize] = NIL;
            self.tails[list as usize] = NIL;
            if list != OVERFLOW {
                self.occupied[list as usize / SLOTS] &= !(1u64 << (list as usize % SLOTS));
            }
            while i != NIL {
                let elapsed = self.elapsed;
                let node = self.node_mut(i);
                let next = node.next;
                if node.tick <= elapsed {
                    scratch.push((node.due, node.seq, i));
                } else {
                    self.place(i);
                }
                i = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
        scratch.sort_unstable_by_key(|&(due, seq, _)| (due, seq));
        out.reserve(scratch.len());
        for &(_, _, i) in &scratch {
            let entry = std::mem::replace(&mut self.slab[i as usize], Entry::Free(self.free));
            self.free = i;
            if let Entry::Used(node) = entry {
                self.index.remove(&node.key);
                out.push(node.key);
            }
        }
        scratch.clear();
        self.scratch = scratch;
    }

    /// A safe lower bound on the earliest due time (see the module docs),
    /// `None` when empty. A value at or before the current time means
    /// "poll now".
    pub fn next_deadline(&self) -> Option<Millis> {
        self.next_slot().map(|(_, t)| self.origin.saturating_add(t.min(i64::MAX as u64) as i64))
    }

    fn tick_of(&self, ms: Millis) -> u64 {
        // Before the origin: tick 0, already due.
        ms.saturating_sub(self.origin).max(0) as u64
    }

    /// The occupied slot (or overflow) with the earliest start, and that start.
    fn next_slot(&self) -> Option<(u16, u64)> {
        let mut best: Option<(u16, u64)> = None;
        for level in 0..LEVELS {
            let mask = self.occupied[level];
            if mask == 0 {
                continue;
            }
            let shift = BITS * level as u32;
            let now_slot = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
            // Slots of this level hold only the current block, at or after
            // the current slot, so the first set bit at/after it is the next.
            let slot = (now_slot + mask.rotate_right(now_slot).trailing_zeros()) % SLOTS as u32;
            let block_start = self.elapsed & !((1u64 << (shift + BITS)) - 1);
            let start = (block_start + (u64::from(slot) << shift)).max(self.elapsed);
            if best.is_none_or(|(_, b)| start < b) {
                best = Some(((level * SLOTS) as u16 + slot as u16, start));
            }
        }
        if self.heads[OVERFLOW as usize] != NIL {
            let next_block = ((self.elapsed >> (BITS * LEVELS as u32)) + 1) << (BITS * LEVELS as u32);
            if best.is_none_or(|(_, b)| next_block < b) {
                best = Some((OVERFLOW, next_block));
            }
        }
        best
    }

    /// Links node `i` into the list its tick belongs to, relative to `elapsed`.
    fn place(&mut self, i: u32) {
        let tick = self.node(i).tick.max(self.elapsed);
        let differing = (tick ^ self.elapsed) | (SLOTS as u64 - 1);
        let level = (63 - differing.leading_zeros()) / BITS;
        let list = if level as usize >= LEVELS {
            OVERFLOW
        } else {
            let slot = (tick >> (BITS * level)) & (SLOTS as u64 - 1);
            self.occupied[level as usize] |= 1 << slot;
            (level as usize * SLOTS) as u16 + slot as u16
        };
        let tail = self.tails[list as usize];
        {
            let n = self.node_mut(i);
            n.list = list;
            n.prev = tail;
            n.next = NIL;
        }
        if tail == NIL {
            self.heads[list as usize] = i;
        } else {
            self.node_mut(tail).next = i;
        }
        self.tails[list as usize] = i;
    }

    fn unlink(&mut self, i: u32) {
        let (list, prev, next) = {
            let n = self.node(i);
            (n.list, n.prev, n.next)
        };
        match prev {
            NIL => self.heads[list as usize] = next,
            p => self.node_mut(p).next = next,
        }
        match next {
            NIL => self.tails[list as usize] = prev,
            n => self.node_mut(n).prev = prev,
        }
        if self.heads[list as usize] == NIL && list != OVERFLOW {
            self.occupied[list as usize / SLOTS] &= !(1u64 << (list as usize % SLOTS));
        }
    }

    fn node(&self, i: u32) -> &Node<K> {
        match &self.slab[i as usize] {
            Entry::Used(n) => n,
            Entry::Free(_) => unreachable!("index points at a free entry"),
        }
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<K> {
        match &mut self.slab[i as usize] {
            Entry::Used(n) => n,
            Entry::Free(_) => unreachable!("index points at a free entry"),
        }
    }
}

impl<K> std::fmt::Debug for TimerWheel<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("origin", &self.origin)
            .field("elapsed", &self.elapsed)
            .field("len", &(self.slab.len()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
