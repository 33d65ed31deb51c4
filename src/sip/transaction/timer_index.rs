//! The layer's index of transaction deadlines: a min-heap with lazy deletion.
//!
//! Why a heap and not a hashed timer wheel: the heap keeps the exact `Instant` each machine
//! asked for (the schedules in `docs/sip-transactions.md` are exact to the nanosecond, and a
//! wheel would round them to its tick), `poll_timeout` is a peek, nothing has to tick while the
//! layer is idle, and push/pop cost O(log n) — about 20 comparisons with a million live
//! transactions, far below the cost of parsing the message that caused them. Re-arming a
//! transaction does not search the heap: it pushes a new entry under a fresh generation number
//! and the old entry becomes stale; the layer skips stale entries when they reach the top (see
//! [`TimerIndex::peek`] callers) and rebuilds the heap when stale entries outnumber live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One armed deadline: when, the generation that armed it, and the transaction's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Armed {
    pub at: Instant,
    /// Unique per `arm` call: tells a stale entry from the current one even when a slot is
    /// reused by a new transaction or re-armed at the same instant. Breaks ties in arming order.
    pub generation: u64,
    pub slot: usize,
}

#[derive(Debug, Default)]
pub(crate) struct TimerIndex {
    heap: BinaryHeap<Reverse<Armed>>,
    next_generation: u64,
}

impl TimerIndex {
    /// Arms `slot` at `at`; the caller stores the returned entry as the slot's current one.
    pub fn arm(&mut self, at: Instant, slot: usize) -> Armed {
        self.next_generation += 1;
        let armed = Armed { at, generation: self.next_generation, slot };
        self.heap.push(Reverse(armed));
        armed
    }

    /// The earliest entry, possibly stale.
    pub fn peek(&self) -> Option<Armed> {
        self.heap.peek().map(|r| r.0)
    }

    pub fn pop(&mut self) -> Option<Armed> {
        self.heap.pop().map(|r| r.0)
    }

    /// Entries in the heap, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Replaces the heap with the current entries only (O(n)); the layer calls it when stale
    /// entries dominate, so memory stays proportional to live transactions.
    pub fn rebuild(&mut self, current: impl Iterator<Item = Armed>) {
        self.heap = current.map(Reverse).collect();
    }
}
