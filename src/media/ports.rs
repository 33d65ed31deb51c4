//! RTP port allocation from `media.ports`: even ports for RTP, the next odd
//! one for RTCP (RFC 3550 §11), each pair leased until its [`PortPair`] drops.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("media.ports {start}-{end} holds no even/odd pair")]
    EmptyRange { start: u16, end: u16 },
    #[error("all {capacity} RTP port pairs of {start}-{end} are in use")]
    Exhausted { start: u16, end: u16, capacity: usize },
}

#[derive(Debug)]
struct Inner {
    first: u16,
    last: u16,
    in_use: BTreeSet<u16>,
    /// Where the next search starts: rotating avoids handing a just-released
    /// port to a new call while stray packets of the old one may still arrive.
    cursor: u16,
}

/// Shared allocator; clone it freely.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    inner: Arc<Mutex<Inner>>,
}

/// A leased RTP/RTCP pair, released when dropped.
#[derive(Debug)]
pub struct PortPair {
    rtp: u16,
    inner: Arc<Mutex<Inner>>,
}

impl PortPair {
    pub fn rtp(&self) -> u16 {
        self.rtp
    }
    pub fn rtcp(&self) -> u16 {
        self.rtp + 1
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        if let Ok(mut i) = self.inner.lock() {
            i.in_use.remove(&self.rtp);
        }
    }
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>) -> Result<Self, PortError> {
        let (start, end) = (*range.start(), *range.end());
        let first = start.checked_add(start % 2).ok_or(PortError::EmptyRange { start, end })?;
        // The last even port whose odd partner is still inside the range.
        let last = if end % 2 == 1 { end - 1 } else { end.saturating_sub(2) };
        if first > last || end == 0 || last < start {
            return Err(PortError::EmptyRange { start, end });
        }
        Ok(Self { inner: Arc::new(Mutex::new(Inner { first, last, in_use: BTreeSet::new(), cursor: first })) })
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        let i = self.inner.lock().expect("port allocator lock");
        ((i.last - i.first) / 2 + 1) as usize
    }

    pub fn in_use(&self) -> usize {
        self.inner.lock().expect("port allocator lock").in_use.len()
    }

    /// Leases the next free pair.
    pub fn allocate(&self) -> Result<PortPair, PortError> {
        let mut i = self.inner.lock().expect("port allocator lock");
        let cap = ((i.last - i.first) / 2 + 1) as usize;
        let mut p = i.cursor;
        for _ in 0..cap {
            let next = if p >= i.last { i.first } else { p + 2 };
            if !i.in_use.contains(&p) {
                i.in_use.insert(p);
                i.cursor = next;
                return Ok(PortPair { rtp: p, inner: self.inner.clone() });
            }
            p = next;
        }
        Err(PortError::Exhausted { start: i.first, end: i.last + 1, capacity: cap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_pairs_inside_the_range() {
        let a = PortAllocator::new(20001..=20008).unwrap();
        assert_eq!(a.capacity(), 3); // 20002, 20004, 20006 (20008 has no 20009)
        let p: Vec<_> = (0..3).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(p.iter().map(|x| x.rtp()).collect::<Vec<_>>(), vec![20002, 20004, 20006]);
        assert_eq!(p[2].rtcp(), 20007);
        assert_eq!(a.allocate().unwrap_err(), PortError::Exhausted { start: 20002, end: 20007, capacity: 3 });
    }

    #[test]
    fn released_on_drop_and_not_reused_at_once() {
        let a = PortAllocator::new(20000..=20005).unwrap();
        let x = a.allocate().unwrap();
        let y = a.allocate().unwrap();
        assert_eq!((x.rtp(), y.rtp()), (20000, 20002));
        drop(x);
        assert_eq!(a.in_use(), 1);
        // The cursor moves on: 20004 before the released 20000.
        let z = a.allocate().unwrap();
        assert_eq!(z.rtp(), 20004);
        assert_eq!(a.allocate().unwrap().rtp(), 20000);
    }

    #[test]
    fn no_double_allocation_under_churn() {
        let a = PortAllocator::new(30000..=30099).unwrap();
        let mut held = std::collections::HashMap::new();
        for i in 0..10_000u32 {
            if i % 3 == 0 && !held.is_empty() {
                let k = *held.keys().next().unwrap();
                held.remove(&k);
            } else if let Ok(p) = a.allocate() {
                assert!(p.rtp() % 2 == 0);
                assert!(held.insert(p.rtp(), p).is_none(), "double allocation");
            }
        }
        assert_eq!(a.in_use(), held.len());
    }

    #[test]
    fn empty_ranges() {
        assert!(PortAllocator::new(20001..=20001).is_err());
        assert!(PortAllocator::new(20000..=20000).is_err());
        assert!(PortAllocator::new(65535..=65535).is_err());
        assert_eq!(PortAllocator::new(20000..=20001).unwrap().capacity(), 1);
    }
}
