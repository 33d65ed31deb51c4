//! A sans-IO RTP/RTCP session (RFC 3550) for one media stream of one call.
//!
//! Run loop for a driver: feed datagrams with [`RtpSession::handle_rtp`] /
//! [`RtpSession::handle_rtcp`], send media with [`RtpSession::send`], call
//! [`RtpSession::handle_timeout`] when [`RtpSession::poll_timeout`] is due;
//! after each of these, drain [`RtpSession::poll_transmit`] and
//! [`RtpSession::poll_event`] until they return `None`.
//!
//! Time is the `Instant` passed in; the NTP wall time for sender reports is
//! derived from the pair (`Instant`, `SystemTime`) given at creation, so the
//! core never reads a clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::Rng;

use super::rtcp::{self, IntervalInput, NtpTime, RtcpPacket, SenderInfo};
use super::rtp::{RtpError, RtpPacket};
use super::source::{SeqVerdict, Source};

/// Which of the two ports a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rtp,
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub channel: Channel,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// What the session reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpEvent {
    /// A media packet from the validated source, with its 64-bit sequence.
    Packet { ext_seq: u64, packet: RtpPacket },
    /// The remote source changed (first one, or a new SSRC after a re-INVITE/transfer).
    NewSource { ssrc: u32 },
    /// Symmetric RTP latched onto the address the media really comes from.
    Latched { channel: Channel, addr: SocketAddr },
    /// An SR or RR arrived; `about_us` is the block describing our stream.
    Report { ssrc: u32, sender: Option<SenderInfo>, about_us: Option<rtcp::ReportBlock> },
    /// The remote said BYE.
    Bye { ssrc: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("no remote address is known yet: set one from SDP before sending")]
    NoRemote,
    #[error(transparent)]
    Rtp(#[from] RtpError),
    #[error(transparent)]
    Rtcp(#[from] rtcp::RtcpError),
    #[error("packet from {from} ignored: media is latched to {latched}")]
    ForeignSource { from: SocketAddr, latched: SocketAddr },
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// RTP clock rate of the stream (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Session bandwidth in octets/s; RTCP gets 5% of it (§6.2).
    pub session_bandwidth: f64,
    /// Latch onto the source address of valid incoming media (symmetric RTP).
    pub symmetric: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        // G.711 at 20 ms: (160 + 12 + 28) octets × 50 packets/s.
        Self { clock_rate: 8000, session_bandwidth: 10_000.0, symmetric: true }
    }
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub sent_packets: u32,
    pub sent_octets: u32,
    pub received_packets: u64,
    pub dropped_invalid: u64,
    pub dropped_foreign: u64,
    pub rtcp_sent: u64,
}

#[derive(Debug, Clone, Copy)]
struct Remote {
    /// As signalled in SDP.
    sdp_rtp: SocketAddr,
    rtp: SocketAddr,
    rtcp: SocketAddr,
    rtp_latched: bool,
    rtcp_latched: bool,
}

#[derive(Debug)]
pub struct RtpSession {
    config: SessionConfig,
    ssrc: u32,
    cname: String,
    seq: u16,
    ts_base: u32,
    origin: Instant,
    origin_ntp: NtpTime,
    remote: Option<Remote>,
    source: Option<Source>,
    /// A new SSRC on probation, with the packets held until it is valid.
    candidate: Option<(Source, Vec<RtpPacket>)>,
    last_sr: Option<(u32, Instant)>,
    last_sent: Option<(u64, Instant)>,
    sent_since_report: bool,
    next_report: Instant,
    avg_rtcp_size: f64,
    initial: bool,
    closed: bool,
    stats: SessionStats,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RtpEvent>,
}

/// Packets a new SSRC may have held while on probation.
const MAX_HELD: usize = 4;

impl RtpSession {
    /// A session whose SSRC, initial sequence number, initial timestamp
    /// (RFC 3550 §5.1) and first report time come from `rng`.
    pub fn new<R: Rng + ?Sized>(config: SessionConfig, now: Instant, wall: SystemTime, rng: &mut R) -> Self {
        let ssrc = rng.random::<u32>();
        let cname = format!("redial-{:016x}", rng.random::<u64>());
        let mut s = Self {
            ssrc,
            cname,
            seq: rng.random(),
            ts_base: rng.random(),
            origin: now,
            origin_ntp: NtpTime::from_system(wall),
            remote: None,
            source: None,
            candidate: None,
            last_sr: None,
            last_sent: None,
            sent_since_report: false,
            next_report: now,
            avg_rtcp_size: 0.0,
            initial: true,
            closed: false,
            stats: SessionStats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        s.avg_rtcp_size = s.build_report(now).map(|b| b.len() as f64 + 28.0).unwrap_or(100.0);
        s.next_report = now + s.interval(rng);
        s
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn clock_rate(&self) -> u32 {
        self.config.clock_rate
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The RTP timestamp a media position (in samples from the start of the
    /// stream) is sent with.
    pub fn timestamp_at(&self, position: u64) -> u32 {
        self.ts_base.wrapping_add(position as u32)
    }

    /// The remote source's statistics, once one is valid.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// Where RTP goes now (from SDP, or latched).
    pub fn remote_rtp(&self) -> Option<SocketAddr> {
        self.remote.map(|r| r.rtp)
    }

    pub fn remote_rtcp(&self) -> Option<SocketAddr> {
        self.remote.map(|r| r.rtcp)
    }

    /// Sets the remote address from SDP (`rtcp`: from `a=rtcp`, else port + 1,
    /// RFC 3605). A changed address (re-INVITE) undoes latching; the same
    /// address keeps it, so a re-INVITE that only changes direction does not
    /// send media back to a NAT's inside address.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        if self.remote.is_some_and(|r| r.sdp_rtp == rtp) {
            return;
        }
        let rtcp = rtcp.unwrap_or_else(|| SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)));
        self.remote = Some(Remote { sdp_rtp: rtp, rtp, rtcp, rtp_latched: false, rtcp_latched: false });
    }

    /// Queues one media packet. `position` is the media time of its first
    /// sample, in RTP clock ticks from the start of this stream: the timestamp
    /// is the random base plus `position` (§5.1), so callers that skip silence
    /// simply skip positions. `marker` marks the first packet of a talkspurt.
    pub fn send(&mut self, now: Instant, payload_type: u8, marker: bool, position: u64, payload: &[u8]) -> Result<(), SessionError> {
        let dest = self.remote.ok_or(SessionError::NoRemote)?.rtp;
        let packet = RtpPacket {
            payload_type,
            marker,
            sequence: self.seq,
            timestamp: self.timestamp_at(position),
            ssrc: self.ssrc,
            payload: Bytes::copy_from_slice(payload),
        };
        let bytes = packet.to_bytes()?;
        self.seq = self.seq.wrapping_add(1);
        self.stats.sent_packets = self.stats.sent_packets.wrapping_add(1);
        self.stats.sent_octets = self.stats.sent_octets.wrapping_add(payload.len() as u32);
        self.last_sent = Some((position, now));
        self.sent_since_report = true;
        self.transmits.push_back(Transmit { channel: Channel::Rtp, destination: dest, payload: bytes });
        Ok(())
    }

    fn arrival_ticks(&self, now: Instant) -> i64 {
        let d = now.saturating_duration_since(self.origin);
        (d.as_nanos() * self.config.clock_rate as u128 / 1_000_000_000) as i64
    }

    /// A datagram arrived on the RTP port from `from`.
    pub fn handle_rtp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(), SessionError> {
        if let Some(r) = &self.remote {
            if r.rtp_latched && r.rtp != from {
                self.stats.dropped_foreign += 1;
                return Err(SessionError::ForeignSource { from, latched: r.rtp });
            }
        }
        let packet = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.dropped_invalid += 1;
                return Err(e.into());
            }
        };
        let arrival = self.arrival_ticks(now);
        match &mut self.source {
            Some(src) if src.ssrc == packet.ssrc => {
                if src.update_seq(packet.sequence) != SeqVerdict::Valid {
                    self.stats.dropped_invalid += 1;
                    return Ok(());
                }
                src.update_jitter(arrival, packet.timestamp);
                let ext_seq = src.extend(packet.sequence);
                self.deliver(from, ext_seq, packet);
            }
            _ => self.probe(arrival, from, packet),
        }
        Ok(())
    }

    /// A packet from an SSRC other than the current one: it becomes the
    /// source once it passes probation (A.1), with its held packets delivered.
    fn probe(&mut self, arrival: i64, from: SocketAddr, packet: RtpPacket) {
        let cand = match &mut self.candidate {
            Some((c, held)) if c.ssrc == packet.ssrc => {
                if held.len() >= MAX_HELD {
                    held.remove(0);
                }
                (c, held)
            }
            _ => {
                self.candidate = Some((Source::new(packet.ssrc, packet.sequence), Vec::new()));
                let (c, held) = self.candidate.as_mut().expect("just set");
                (c, held)
            }
        };
        let (c, held) = cand;
        c.update_jitter(arrival, packet.timestamp);
        match c.update_seq(packet.sequence) {
            SeqVerdict::Valid => {
                let (mut src, held) = self.candidate.take().expect("present");
                let ssrc = src.ssrc;
                let mut out = Vec::with_capacity(held.len() + 1);
                for p in held.into_iter().chain(std::iter::once(packet)) {
                    let e = src.extend(p.sequence);
                    out.push((e, p));
                }
                self.source = Some(src);
                self.events.push_back(RtpEvent::NewSource { ssrc });
                for (e, p) in out {
                    self.deliver(from, e, p);
                }
            }
            _ => held.push(packet),
        }
    }

    fn deliver(&mut self, from: SocketAddr, ext_seq: u64, packet: RtpPacket) {
        self.stats.received_packets += 1;
        if self.config.symmetric {
            match &mut self.remote {
                Some(r) if !r.rtp_latched => {
                    r.rtp_latched = true;
                    if r.rtp != from {
                        r.rtp = from;
                        if !r.rtcp_latched {
                            r.rtcp = SocketAddr::new(from.ip(), from.port().wrapping_add(1));
                        }
                        self.events.push_back(RtpEvent::Latched { channel: Channel::Rtp, addr: from });
                    }
                }
                None => {
                    let rtcp = SocketAddr::new(from.ip(), from.port().wrapping_add(1));
                    self.remote = Some(Remote { sdp_rtp: from, rtp: from, rtcp, rtp_latched: true, rtcp_latched: false });
                    self.events.push_back(RtpEvent::Latched { channel: Channel::Rtp, addr: from });
                }
                _ => {}
            }
        }
        self.events.push_back(RtpEvent::Packet { ext_seq, packet });
    }

    /// A datagram arrived on the RTCP port.
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(), SessionError> {
        let packets = rtcp::parse_compound(data)?;
        self.avg_rtcp_size = (data.len() as f64 + 28.0) / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        if self.config.symmetric {
            if let Some(r) = &mut self.remote {
                if !r.rtcp_latched {
                    r.rtcp_latched = true;
                    if r.rtcp != from {
                        r.rtcp = from;
                        self.events.push_back(RtpEvent::Latched { channel: Channel::Rtcp, addr: from });
                    }
                }
            }
        }
        for p in packets {
            match p {
                RtcpPacket::SenderReport { ssrc, info, reports } => {
                    self.last_sr = Some((info.ntp.middle32(), now));
                    let about_us = reports.iter().find(|b| b.ssrc == self.ssrc).copied();
                    self.events.push_back(RtpEvent::Report { ssrc, sender: Some(info), about_us });
                }
                RtcpPacket::ReceiverReport { ssrc, reports } => {
                    let about_us = reports.iter().find(|b| b.ssrc == self.ssrc).copied();
                    self.events.push_back(RtpEvent::Report { ssrc, sender: None, about_us });
                }
                RtcpPacket::Bye { ssrcs } => {
                    for ssrc in ssrcs {
                        self.events.push_back(RtpEvent::Bye { ssrc });
                    }
                }
                RtcpPacket::Sdes { .. } | RtcpPacket::Other { .. } => {}
            }
        }
        Ok(())
    }

    fn ntp_at(&self, now: Instant) -> NtpTime {
        self.origin_ntp.plus(now.saturating_duration_since(self.origin))
    }

    fn build_report(&mut self, now: Instant) -> Result<Vec<u8>, rtcp::RtcpError> {
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, (now.saturating_duration_since(at).as_nanos() * 65536 / 1_000_000_000) as u32),
            None => (0, 0),
        };
        let reports: Vec<_> = self.source.as_mut().map(|s| s.report_block(lsr, dlsr)).into_iter().collect();
        let report = match self.last_sent {
            Some((pos, at)) if self.sent_since_report => {
                // The RTP timestamp of `now`, extrapolated from the last packet (§6.4.1).
                let elapsed = now.saturating_duration_since(at).as_nanos() * self.config.clock_rate as u128 / 1_000_000_000;
                let info = SenderInfo {
                    ntp: self.ntp_at(now),
                    rtp_timestamp: self.timestamp_at(pos.wrapping_add(elapsed as u64)),
                    packet_count: self.stats.sent_packets,
                    octet_count: self.stats.sent_octets,
                };
                RtcpPacket::SenderReport { ssrc: self.ssrc, info, reports }
            }
            _ => RtcpPacket::ReceiverReport { ssrc: self.ssrc, reports },
        };
        let sdes = RtcpPacket::Sdes { chunks: vec![(self.ssrc, self.cname.clone())] };
        rtcp::build_compound(&[report, sdes])
    }

    fn interval<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let members = 1 + self.source.is_some() as u32;
        let senders = self.sent_since_report as u32 + self.source.is_some() as u32;
        rtcp::rtcp_interval(
            IntervalInput {
                members,
                senders,
                rtcp_bw: self.config.session_bandwidth * 0.05,
                we_sent: self.sent_since_report,
                avg_rtcp_size: self.avg_rtcp_size,
                initial: self.initial,
            },
            rng,
        )
    }

    /// When `handle_timeout` must next be called (the next RTCP report);
    /// `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.next_report)
    }

    /// Sends the RTCP report when it is due, and schedules the next one.
    pub fn handle_timeout<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        if self.closed || now < self.next_report {
            return;
        }
        if let Some(dest) = self.remote.map(|r| r.rtcp) {
            if let Ok(bytes) = self.build_report(now) {
                self.avg_rtcp_size = (bytes.len() as f64 + 28.0) / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
                self.stats.rtcp_sent += 1;
                self.transmits.push_back(Transmit { channel: Channel::Rtcp, destination: dest, payload: bytes });
            }
        }
        self.initial = false;
        let t = self.interval(rng);
        self.sent_since_report = false;
        self.next_report = now + t;
    }

    /// Ends the session: a final report with BYE (§6.6), then no more timers.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(dest) = self.remote.map(|r| r.rtcp) {
            let report = RtcpPacket::ReceiverReport { ssrc: self.ssrc, reports: vec![] };
            let bye = RtcpPacket::Bye { ssrcs: vec![self.ssrc] };
            if let Ok(bytes) = rtcp::build_compound(&[report, bye]) {
                let _ = now;
                self.transmits.push_back(Transmit { channel: Channel::Rtcp, destination: dest, payload: bytes });
            }
        }
    }

    /// The next datagram to send; call until `None` after every input.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event; call until `None` after every input.
    pub fn poll_event(&mut self) -> Option<RtpEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
