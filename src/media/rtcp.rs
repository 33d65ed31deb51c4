//! RTCP (RFC 3550 §6): sender/receiver reports, SDES CNAME and BYE in
//! compound packets, and the report interval of §6.2 / Appendix A.7.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;

/// A 64-bit NTP timestamp (seconds since 1900 in 32.32 fixed point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTime(pub u64);

const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl NtpTime {
    pub fn from_system(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self::from_unix(d)
    }

    pub fn from_unix(d: Duration) -> Self {
        let secs = d.as_secs() + NTP_UNIX_OFFSET;
        let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
        NtpTime((secs << 32) | frac)
    }

    pub fn plus(self, d: Duration) -> Self {
        let ticks = (d.as_nanos() << 32) / 1_000_000_000;
        NtpTime(self.0.wrapping_add(ticks as u64))
    }

    /// The middle 32 bits, as used by LSR (§6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// One reception report block (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time, 0 if none.
    pub lsr: u32,
    /// Delay since that SR in 1/65536 s.
    pub dlsr: u32,
}

/// The sender-info part of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport { ssrc: u32, info: SenderInfo, reports: Vec<ReportBlock> },
    ReceiverReport { ssrc: u32, reports: Vec<ReportBlock> },
    /// SDES with the CNAME of each chunk (other items are skipped).
    Sdes { chunks: Vec<(u32, String)> },
    Bye { ssrcs: Vec<u32> },
    /// A packet type we do not interpret (APP, feedback, XR...).
    Other { packet_type: u8 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcpError {
    #[error("RTCP compound of {len} bytes is truncated at offset {at}")]
    Truncated { len: usize, at: usize },
    #[error("RTCP version {version} at offset {at} is not 2")]
    Version { version: u8, at: usize },
    #[error("RTCP compound must start with SR or RR, not packet type {packet_type}")]
    FirstNotReport { packet_type: u8 },
    #[error("RTCP packet at offset {at} has padding but is not the last one")]
    Padding { at: usize },
    #[error("too many report blocks ({count}, at most 31)")]
    TooManyReports { count: usize },
    #[error("SDES CNAME of {len} bytes is longer than 255")]
    CnameTooLong { len: usize },
}

fn header(out: &mut Vec<u8>, count: usize, pt: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | count as u8, pt, 0, 0]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    // Length in 32-bit words minus one (§6.4.1).
    let words = (out.len() - at) / 4 - 1;
    out[at + 2..at + 4].copy_from_slice(&(words as u16).to_be_bytes());
}

fn put_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
    out.extend_from_slice(&((b.fraction_lost as u32) << 24 | lost).to_be_bytes());
    for v in [b.highest_seq, b.jitter, b.lsr, b.dlsr] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Serialises packets into one compound datagram.
pub fn build_compound(packets: &[RtcpPacket]) -> Result<Vec<u8>, RtcpError> {
    let mut out = Vec::with_capacity(128);
    for p in packets {
        match p {
            RtcpPacket::SenderReport { ssrc, info, reports } => {
                if reports.len() > 31 {
                    return Err(RtcpError::TooManyReports { count: reports.len() });
                }
                let at = header(&mut out, reports.len(), PT_SR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(&info.ntp.0.to_be_bytes());
                for v in [info.rtp_timestamp, info.packet_count, info.octet_count] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                reports.iter().for_each(|b| put_block(&mut out, b));
                finish(&mut out, at);
            }
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                if reports.len() > 31 {
                    return Err(RtcpError::TooManyReports { count: reports.len() });
                }
                let at = header(&mut out, reports.len(), PT_RR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                reports.iter().for_each(|b| put_block(&mut out, b));
                finish(&mut out, at);
            }
            RtcpPacket::Sdes { chunks } => {
                let at = header(&mut out, chunks.len(), PT_SDES);
                for (ssrc, cname) in chunks {
                    if cname.len() > 255 {
                        return Err(RtcpError::CnameTooLong { len: cname.len() });
                    }
                    let start = out.len();
                    out.extend_from_slice(&ssrc.to_be_bytes());
                    out.extend_from_slice(&[1, cname.len() as u8]);
                    out.extend_from_slice(cname.as_bytes());
                    // End of items (a zero octet), then pad the chunk to 32 bits (§6.5).
                    out.push(0);
                    while (out.len() - start) % 4 != 0 {
                        out.push(0);
                    }
                }
                finish(&mut out, at);
            }
            RtcpPacket::Bye { ssrcs } => {
                let at = header(&mut out, ssrcs.len(), PT_BYE);
                ssrcs.iter().for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
                finish(&mut out, at);
            }
            RtcpPacket::Other { .. } => {}
        }
    }
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_blocks(body: &[u8], count: usize, len: usize, at: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if body.len() < count * 24 {
        return Err(RtcpError::Truncated { len, at });
    }
    Ok((0..count)
        .map(|i| {
            let b = &body[i * 24..];
            let w = be32(b, 4);
            // Sign-extend the 24-bit cumulative loss.
            let lost = ((w << 8) as i32) >> 8;
            ReportBlock {
                ssrc: be32(b, 0),
                fraction_lost: (w >> 24) as u8,
                cumulative_lost: lost,
                highest_seq: be32(b, 8),
                jitter: be32(b, 12),
                lsr: be32(b, 16),
                dlsr: be32(b, 20),
            }
        })
        .collect())
}

/// Parses and validates a compound packet (the checks of Appendix A.2).
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let len = data.len();
    let mut at = 0;
    let mut out = Vec::new();
    while at < len {
        if len - at < 4 {
            return Err(RtcpError::Truncated { len, at });
        }
        let v = data[at] >> 6;
        if v != 2 {
            return Err(RtcpError::Version { version: v, at });
        }
        let padding = data[at] & 0x20 != 0;
        let count = (data[at] & 0x1F) as usize;
        let pt = data[at + 1];
        let plen = (u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize + 1) * 4;
        if at + plen > len {
            return Err(RtcpError::Truncated { len, at });
        }
        if padding && at + plen != len {
            return Err(RtcpError::Padding { at });
        }
        if out.is_empty() && pt != PT_SR && pt != PT_RR {
            return Err(RtcpError::FirstNotReport { packet_type: pt });
        }
        let mut body = &data[at + 4..at + plen];
        if padding {
            let pad = *body.last().unwrap_or(&0) as usize;
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::Padding { at });
            }
            body = &body[..body.len() - pad];
        }
        let pkt = match pt {
            PT_SR => {
                if body.len() < 24 {
                    return Err(RtcpError::Truncated { len, at });
                }
                let info = SenderInfo {
                    ntp: NtpTime((be32(body, 4) as u64) << 32 | be32(body, 8) as u64),
                    rtp_timestamp: be32(body, 12),
                    packet_count: be32(body, 16),
                    octet_count: be32(body, 20),
                };
                RtcpPacket::SenderReport { ssrc: be32(body, 0), info, reports: parse_blocks(&body[24..], count, len, at)? }
            }
            PT_RR => {
                if body.len() < 4 {
                    return Err(RtcpError::Truncated { len, at });
                }
                RtcpPacket::ReceiverReport { ssrc: be32(body, 0), reports: parse_blocks(&body[4..], count, len, at)? }
            }
            PT_SDES => RtcpPacket::Sdes { chunks: parse_sdes(body, count).ok_or(RtcpError::Truncated { len, at })? },
            PT_BYE => {
                if body.len() < count * 4 {
                    return Err(RtcpError::Truncated { len, at });
                }
                RtcpPacket::Bye { ssrcs: (0..count).map(|i| be32(body, i * 4)).collect() }
            }
            other => RtcpPacket::Other { packet_type: other },
        };
        out.push(pkt);
        at += plen;
    }
    if out.is_empty() {
        return Err(RtcpError::Truncated { len, at: 0 });
    }
    Ok(out)
}

fn parse_sdes(body: &[u8], count: usize) -> Option<Vec<(u32, String)>> {
    let mut chunks = Vec::with_capacity(count);
    let mut i = 0;
    for _ in 0..count {
        let start = i;
        let ssrc = be32(body.get(i..i + 4)?, 0);
        i += 4;
        let mut cname = None;
        loop {
            let kind = *body.get(i)?;
            if kind == 0 {
                i += 1;
                break;
            }
            let l = *body.get(i + 1)? as usize;
            let text = body.get(i + 2..i + 2 + l)?;
            if kind == 1 {
                cname = Some(String::from_utf8_lossy(text).into_owned());
            }
            i += 2 + l;
        }
        while (i - start) % 4 != 0 {
            i += 1;
        }
        if let Some(c) = cname {
            chunks.push((ssrc, c));
        }
    }
    Some(chunks)
}

/// Inputs of the RTCP interval computation (Appendix A.7).
#[derive(Debug, Clone, Copy)]
pub struct IntervalInput {
    pub members: u32,
    pub senders: u32,
    /// RTCP bandwidth in octets per second (5% of the session bandwidth, §6.2).
    pub rtcp_bw: f64,
    pub we_sent: bool,
    /// Average compound size in octets including UDP/IP headers.
    pub avg_rtcp_size: f64,
    pub initial: bool,
}

/// The minimum report interval (§6.2): 5 s, halved before the first report.
pub const RTCP_MIN_TIME: Duration = Duration::from_secs(5);

/// Deterministic interval: `rng` supplies the 0.5–1.5 randomisation (§6.3.1),
/// and the result is divided by e − 3/2 to compensate for timer
/// reconsideration (A.7).
pub fn rtcp_interval<R: Rng + ?Sized>(input: IntervalInput, rng: &mut R) -> Duration {
    const COMPENSATION: f64 = std::f64::consts::E - 1.5;
    let min = if input.initial { RTCP_MIN_TIME.as_secs_f64() / 2.0 } else { RTCP_MIN_TIME.as_secs_f64() };
    let mut n = input.members.max(1) as f64;
    let mut bw = input.rtcp_bw.max(1.0);
    // Senders get a quarter of the RTCP bandwidth when they are a quarter or less of the members.
    if (input.senders as f64) <= n * 0.25 {
        if input.we_sent {
            bw *= 0.25;
            n = input.senders.max(1) as f64;
        } else {
            bw *= 0.75;
            n -= input.senders as f64;
        }
    }
    let t = (input.avg_rtcp_size * n / bw).max(min);
    let t = t * rng.random_range(0.5..1.5) / COMPENSATION;
    Duration::from_secs_f64(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn block() -> ReportBlock {
        ReportBlock { ssrc: 7, fraction_lost: 25, cumulative_lost: -3, highest_seq: 0x1_0005, jitter: 42, lsr: 0xABCD_1234, dlsr: 65536 }
    }

    #[test]
    fn sr_sdes_bye_round_trip() {
        let pkts = vec![
            RtcpPacket::SenderReport {
                ssrc: 0x1234_5678,
                info: SenderInfo { ntp: NtpTime(0xE000_0000_8000_0000), rtp_timestamp: 160, packet_count: 10, octet_count: 1600 },
                reports: vec![block()],
            },
            RtcpPacket::Sdes { chunks: vec![(0x1234_5678, "redial@abcd".into())] },
            RtcpPacket::Bye { ssrcs: vec![0x1234_5678] },
        ];
        let b = build_compound(&pkts).unwrap();
        assert_eq!(b.len() % 4, 0);
        // SR: header 4 + ssrc 4 + sender info 20 + one block 24 = 52 bytes, length field 12.
        assert_eq!(&b[..4], &[0x81, 200, 0, 12]);
        assert_eq!(parse_compound(&b).unwrap(), pkts);
    }

    #[test]
    fn rr_round_trip_and_loss_sign() {
        let pkts = vec![RtcpPacket::ReceiverReport { ssrc: 1, reports: vec![block(), ReportBlock { cumulative_lost: 0x7F_FFFF, ..block() }] }];
        let b = build_compound(&pkts).unwrap();
        assert_eq!(b.len(), 8 + 48);
        assert_eq!(&b[12..16], &[25, 0xFF, 0xFF, 0xFD]); // fraction 25, lost -3 in 24 bits
        assert_eq!(parse_compound(&b).unwrap(), pkts);
    }

    #[test]
    fn validation() {
        let bye = build_compound(&[RtcpPacket::Bye { ssrcs: vec![1] }]).unwrap();
        assert_eq!(parse_compound(&bye), Err(RtcpError::FirstNotReport { packet_type: PT_BYE }));
        let mut rr = build_compound(&[RtcpPacket::ReceiverReport { ssrc: 1, reports: vec![block()] }]).unwrap();
        assert!(matches!(parse_compound(&rr[..rr.len() - 4]), Err(RtcpError::Truncated { .. })));
        rr[0] = 0x41;
        assert!(matches!(parse_compound(&rr), Err(RtcpError::Version { version: 1, .. })));
        assert!(parse_compound(&[]).is_err());
        let too_many = vec![block(); 32];
        assert_eq!(build_compound(&[RtcpPacket::ReceiverReport { ssrc: 1, reports: too_many }]), Err(RtcpError::TooManyReports { count: 32 }));
    }

    #[test]
    fn ntp_conversion() {
        let t = NtpTime::from_unix(Duration::from_millis(1500));
        assert_eq!(t.0 >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(t.0 as u32, 0x8000_0000);
        assert_eq!(t.plus(Duration::from_millis(500)).0 >> 32, NTP_UNIX_OFFSET + 2);
        assert_eq!(NtpTime(0x0001_0002_0003_0004).middle32(), 0x0002_0003);
    }

    #[test]
    fn interval_bounds_and_determinism() {
        let input = IntervalInput { members: 2, senders: 2, rtcp_bw: 500.0, we_sent: true, avg_rtcp_size: 100.0, initial: false };
        let c = std::f64::consts::E - 1.5;
        let mut rng = StdRng::seed_from_u64(1);
        let mut lo = f64::MAX;
        let mut hi = 0f64;
        for _ in 0..10_000 {
            let t = rtcp_interval(input, &mut rng).as_secs_f64();
            lo = lo.min(t);
            hi = hi.max(t);
        }
        // 5 s minimum, randomised over [0.5, 1.5), compensated.
        assert!(lo >= 2.5 / c - 1e-9 && lo < 2.6 / c, "{lo}");
        assert!(hi < 7.5 / c && hi > 7.4 / c, "{hi}");
        let a = rtcp_interval(input, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, rtcp_interval(input, &mut StdRng::seed_from_u64(9)));
        // The first report may come after half the minimum.
        let t = rtcp_interval(IntervalInput { initial: true, ..input }, &mut rng).as_secs_f64();
        assert!(t <= 3.75 / c);
        // A large conference is bandwidth-bound, not minimum-bound: 1000 receivers share 75%.
        let big = IntervalInput { members: 1000, senders: 1, we_sent: false, ..input };
        let t = rtcp_interval(big, &mut rng).as_secs_f64();
        let base = 100.0 * 999.0 / (500.0 * 0.75);
        assert!(t >= base * 0.5 / c && t <= base * 1.5 / c, "{t}");
    }
}
