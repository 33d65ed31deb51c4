//! Reception state of one remote synchronisation source: RFC 3550 A.1
//! sequence validation with probation, A.3 loss accounting and A.8 jitter.

use super::rtcp::ReportBlock;
use super::rtp::SeqExtender;

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u32 = 3000;
const MAX_MISORDER: u32 = 100;
/// Packets in sequence needed before a source is valid (A.1).
pub const MIN_SEQUENTIAL: u32 = 2;

/// What `update_seq` made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Counted; the source is valid.
    Valid,
    /// The source is still on probation.
    Probation,
    /// A jump too large to believe (A.1: wait for a second packet in sequence).
    Bad,
}

/// Per-source reception statistics.
#[derive(Debug, Clone)]
pub struct Source {
    pub ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: Option<i64>,
    /// A.8 jitter estimate, in timestamp units.
    jitter: f64,
    ext: SeqExtender,
}

impl Source {
    /// A new source heard first with `seq` (A.1 `init_seq`, then probation).
    pub fn new(ssrc: u32, seq: u16) -> Self {
        let mut s = Self {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
            ext: SeqExtender::default(),
        };
        s.init_seq(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.ext = SeqExtender::default();
        self.ext.extend(seq);
    }

    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// RFC 3550 A.1 `update_seq`.
    pub fn update_seq(&mut self, seq: u16) -> SeqVerdict {
        let udelta = seq.wrapping_sub(self.max_seq) as u32;
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD;
            }
            self.max_seq = seq;
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            if seq as u32 == self.bad_seq {
                // Two packets in sequence after a big jump: the sender restarted.
                self.init_seq(seq);
            } else {
                self.bad_seq = (seq as u32 + 1) & (RTP_SEQ_MOD - 1);
                return SeqVerdict::Bad;
            }
        }
        // else: a duplicate or reordered packet, counted as received.
        self.received += 1;
        SeqVerdict::Valid
    }

    /// The packet's 64-bit sequence position, monotonic across wraps.
    pub fn extend(&mut self, seq: u16) -> u64 {
        self.ext.extend(seq)
    }

    /// A.8: `arrival` is the arrival time in timestamp units.
    pub fn update_jitter(&mut self, arrival: i64, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp as i64) as i32 as i64;
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    pub fn expected(&self) -> u32 {
        self.extended_max().wrapping_sub(self.base_seq).wrapping_add(1)
    }

    pub fn received(&self) -> u32 {
        self.received
    }

    /// Cumulative loss (A.3); negative with duplicates.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// A report block for this source, advancing the interval counters (A.3).
    pub fn report_block(&mut self, lsr: u32, dlsr: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: fraction,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: self.extended_max(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(start: u16) -> Source {
        let mut s = Source::new(1, start);
        assert_eq!(s.update_seq(start), SeqVerdict::Probation);
        assert_eq!(s.update_seq(start.wrapping_add(1)), SeqVerdict::Valid);
        s
    }

    #[test]
    fn probation_needs_two_in_sequence() {
        let mut s = Source::new(1, 100);
        assert_eq!(s.update_seq(100), SeqVerdict::Probation);
        assert_eq!(s.update_seq(500), SeqVerdict::Probation); // out of sequence: restart
        assert!(!s.is_valid());
        assert_eq!(s.update_seq(501), SeqVerdict::Valid);
        assert!(s.is_valid());
        assert_eq!(s.received(), 1);
        assert_eq!(s.expected(), 1);
    }

    #[test]
    fn wrap_counts_a_cycle() {
        let mut s = valid(65534);
        assert_eq!(s.extended_max(), 65535);
        assert_eq!(s.update_seq(0), SeqVerdict::Valid);
        assert_eq!(s.extended_max(), 65536);
        assert_eq!(s.update_seq(1), SeqVerdict::Valid);
        assert_eq!(s.extended_max(), 65537);
        assert_eq!(s.expected(), 3);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn loss_and_fraction() {
        let mut s = valid(10);
        for seq in 12..20u16 {
            if seq % 4 != 0 {
                s.update_seq(seq);
            }
        }
        // Expected 11..=19 = 9, received 11 + six of 12..19 = 7.
        assert_eq!(s.expected(), 9);
        assert_eq!(s.lost(), 2);
        let b = s.report_block(0, 0);
        assert_eq!(b.highest_seq, 19);
        assert_eq!(b.cumulative_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 9) as u8);
        // No new packets: the next interval reports no fresh loss.
        assert_eq!(s.report_block(0, 0).fraction_lost, 0);
    }

    #[test]
    fn big_jump_needs_confirmation() {
        let mut s = valid(10);
        assert_eq!(s.update_seq(40000), SeqVerdict::Bad);
        assert_eq!(s.update_seq(40001), SeqVerdict::Valid); // resynchronised
        assert_eq!(s.extended_max(), 40001);
        assert_eq!(s.expected(), 1);
    }

    #[test]
    fn jitter_follows_a8() {
        let mut s = valid(1);
        // Packets every 160 ticks, arrivals alternate 0 and +32 ticks late.
        for i in 0..200i64 {
            let late = if i % 2 == 0 { 0 } else { 32 };
            s.update_jitter(1000 + i * 160 + late, (i * 160) as u32);
        }
        // The estimator converges towards the mean |D| = 32.
        assert!((s.jitter() as i64 - 32).abs() <= 1, "{}", s.jitter());
        let mut flat = valid(1);
        for i in 0..50i64 {
            flat.update_jitter(i * 160, (i * 160) as u32);
        }
        assert_eq!(flat.jitter(), 0);
    }
}
