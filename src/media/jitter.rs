//! A small reordering buffer for analysis (AMD, DTMF, recording): it puts
//! packets back in sequence within a fixed depth, drops late ones and
//! reports gaps, so consumers see a gap-marked, in-order stream. It does not
//! do playout timing: redial never plays out to a loudspeaker.

use std::collections::BTreeMap;

use super::rtp::RtpPacket;

/// What the buffer hands on, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitterOutput {
    Packet { ext_seq: u64, packet: RtpPacket },
    /// A packet that never came (or came too late).
    Lost { ext_seq: u64 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub delivered: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    next: Option<u64>,
    held: BTreeMap<u64, RtpPacket>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// `depth`: how many packets may wait behind a gap before it is declared lost.
    pub fn new(depth: usize) -> Self {
        Self { depth: depth.max(1), next: None, held: BTreeMap::new(), stats: JitterStats::default() }
    }

    /// Adds a packet with its extended sequence (from the session). Call
    /// `pop` until it returns `None` afterwards.
    pub fn push(&mut self, ext_seq: u64, packet: RtpPacket) {
        if let Some(n) = self.next {
            if ext_seq < n {
                self.stats.late += 1;
                return;
            }
        }
        if self.held.insert(ext_seq, packet).is_some() {
            self.stats.duplicate += 1;
        }
    }

    /// The next in-order output, if one is ready.
    pub fn pop(&mut self) -> Option<JitterOutput> {
        let first = *self.held.keys().next()?;
        let next = *self.next.get_or_insert(first);
        if first == next {
            let packet = self.held.remove(&first).expect("key just seen");
            self.next = Some(next + 1);
            self.stats.delivered += 1;
            return Some(JitterOutput::Packet { ext_seq: first, packet });
        }
        // A gap: wait until `depth` packets are queued behind it.
        if self.held.len() > self.depth {
            self.next = Some(next + 1);
            self.stats.lost += 1;
            return Some(JitterOutput::Lost { ext_seq: next });
        }
        None
    }

    /// Releases everything held (end of call), marking gaps as lost.
    pub fn flush(&mut self) -> Vec<JitterOutput> {
        let mut out = Vec::new();
        let depth = self.depth;
        self.depth = 0;
        while let Some(o) = self.pop() {
            out.push(o);
        }
        self.depth = depth;
        out
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u64) -> RtpPacket {
        RtpPacket { payload_type: 0, marker: false, sequence: seq as u16, timestamp: seq as u32 * 160, ssrc: 1, payload: Bytes::new() }
    }

    fn drain(j: &mut JitterBuffer) -> Vec<(u64, bool)> {
        std::iter::from_fn(|| j.pop())
            .map(|o| match o {
                JitterOutput::Packet { ext_seq, .. } => (ext_seq, true),
                JitterOutput::Lost { ext_seq } => (ext_seq, false),
            })
            .collect()
    }

    #[test]
    fn reorders_within_depth() {
        let mut j = JitterBuffer::new(3);
        let mut got = vec![];
        for s in [10, 12, 11, 13, 15, 14] {
            j.push(s, pkt(s));
            got.extend(drain(&mut j));
        }
        assert_eq!(got, (10..=15).map(|s| (s, true)).collect::<Vec<_>>());
        assert_eq!(j.stats().lost, 0);
    }

    #[test]
    fn declares_loss_and_drops_late() {
        let mut j = JitterBuffer::new(2);
        let mut got = vec![];
        for s in [1, 3, 4, 5] {
            j.push(s, pkt(s));
            got.extend(drain(&mut j));
        }
        assert_eq!(got, vec![(1, true), (2, false), (3, true), (4, true), (5, true)]);
        j.push(2, pkt(2)); // arrives after it was given up
        assert_eq!(drain(&mut j), vec![]);
        j.push(5, pkt(5));
        assert_eq!(j.stats(), JitterStats { delivered: 4, lost: 1, late: 2, duplicate: 0 });
    }

    #[test]
    fn duplicates_and_flush() {
        let mut j = JitterBuffer::new(5);
        for s in [100, 102, 102, 105] {
            j.push(s, pkt(s));
        }
        assert_eq!(drain(&mut j), vec![(100, true)]);
        let rest: Vec<_> = j.flush().into_iter().map(|o| matches!(o, JitterOutput::Packet { .. })).collect();
        assert_eq!(rest, vec![false, true, false, false, true]);
        assert_eq!(j.stats().duplicate, 1);
        assert_eq!(j.stats().lost, 3);
    }
}
