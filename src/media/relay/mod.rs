//! The sans-IO core of an anchored bridge between two call legs.
//!
//! Each leg has its own [`super::RtpSession`] (own SSRC and sequence), so the
//! relay only decides what each received packet becomes on the other leg:
//! the same payload with the other leg's payload type, or a transcoded one
//! when the legs' codecs differ, at a media position mapped from the
//! incoming timestamp. The mapping is rebased when the incoming source
//! changes (new SSRC after a transfer, or a timestamp jump), so the outgoing
//! stream stays continuous. RFC 4733 events pass through with their payload
//! type mapped; when the other leg has no telephone-event they are reported
//! as digits instead (for SIP INFO or the application).
//!
//! A leg put on hold (RFC 3264 §8.4: its remote offered `sendonly` or `inactive`)
//! pauses the bridge both ways: the held leg's audio is not forwarded and nothing is
//! sent toward it. The other leg hears its hold music ([`Relay::set_hold_music`],
//! looped in its codec, continuing its timeline with a marker bit on the first
//! frame), or nothing (no packets) when it has none. The first packet after the
//! resume starts a new talkspurt (marker bit, RFC 3551 §4.1) continuing the outgoing
//! timeline just after the music (or where it paused).
//!
//! Run loop: after [`Relay::handle_packet`], [`Relay::handle_timeout`] (at
//! [`Relay::poll_timeout`], while hold music plays) and any `set_*` call, drain
//! [`Relay::poll_output`] (send each with the target leg's `RtpSession::send`) and
//! [`Relay::poll_event`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

mod hold;

use hold::HoldMusic;

use super::dtmf::{DtmfDigit, DtmfReceiver, TelephoneEvent};
use super::player::Prompt;
use super::rtp::{RtpPacket, TimestampExtender};
use super::sdp::Negotiated;
use super::transcode::{TranscodeError, Transcoder};
use super::Codec;

/// A leg of the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
}

/// What a leg negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegMedia {
    pub codec: Codec,
    pub pt: u8,
    /// telephone-event payload type, at the codec's clock rate (RFC 4733 §2.1).
    pub telephone_event: Option<u8>,
}

impl From<&Negotiated> for LegMedia {
    fn from(n: &Negotiated) -> Self {
        Self { codec: n.codec, pt: n.pt, telephone_event: n.telephone_event }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
}

/// A packet for the other leg's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOut {
    pub to: Side,
    pub payload_type: u8,
    pub marker: bool,
    /// Media position in the target leg's RTP clock ticks.
    pub position: u64,
    pub payload: Vec<u8>,
    /// Hold music played in the held leg's place, not media from the other leg.
    pub hold_music: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A key pressed on leg `from` (always reported, whether or not it was also forwarded).
    Digit { from: Side, digit: DtmfDigit },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub forwarded: u64,
    pub transcoded: u64,
    pub events: u64,
    pub dropped: u64,
    pub rebased: u64,
    /// Packets not forwarded because a leg was on hold.
    pub held: u64,
    /// Hold-music frames sent in this leg's place (toward the other leg) while the
    /// bridge was paused.
    pub hold_music: u64,
}

/// A jump of the incoming timestamp beyond this many seconds is a new stream.
const MAX_JUMP_SECONDS: i64 = 10;

#[derive(Debug)]
struct Inbound {
    ssrc: Option<u32>,
    ts: TimestampExtender,
    /// (incoming extended timestamp, outgoing position) of the current mapping.
    base: Option<(i64, u64)>,
    /// Outgoing position just past the last forwarded media.
    next_out: u64,
    /// Outgoing position of the next transcoded frame.
    tx_next: Option<u64>,
    /// Outgoing position where the next incoming packet is expected to start.
    in_next: Option<u64>,
    /// The next forwarded packet starts a talkspurt (after a hold).
    resumed: bool,
    transcoder: Option<Transcoder>,
    dtmf: DtmfReceiver,
    stats: RelayStats,
}

#[derive(Debug)]
pub struct Relay {
    legs: [LegMedia; 2],
    inbound: [Inbound; 2],
    out: VecDeque<RelayOut>,
    events: VecDeque<RelayEvent>,
    /// Which legs are on hold; any one pauses both directions.
    held: [bool; 2],
    music: HoldMusic,
}

fn transcoder(from: LegMedia, to: LegMedia) -> Result<Option<Transcoder>, TranscodeError> {
    if from.codec == to.codec {
        return Ok(None);
    }
    Transcoder::new(from.codec, to.codec).map(Some)
}

impl Relay {
    pub fn new(a: LegMedia, b: LegMedia) -> Result<Self, RelayError> {
        let inbound = |from, to| -> Result<Inbound, RelayError> {
            Ok(Inbound { ssrc: None, ts: TimestampExtender::default(), base: None, next_out: 0, tx_next: None, in_next: None, resumed: false, transcoder: transcoder(from, to)?, dtmf: DtmfReceiver::new(), stats: RelayStats::default() })
        };
        Ok(Self { legs: [a, b], inbound: [inbound(a, b)?, inbound(b, a)?], out: VecDeque::new(), events: VecDeque::new(), held: [false; 2], music: HoldMusic::default() })
    }

    /// What leg `to` hears while the bridge is paused and `to` itself is not held:
    /// `prompt` looped, or nothing (no packets) with `None`. Takes effect at once.
    pub fn set_hold_music(&mut self, to: Side, prompt: Option<Arc<Prompt>>, now: Instant) {
        self.music.set_prompt(to, prompt);
        self.follow_music(now);
    }

    /// Puts leg `side` on hold (its remote offered `sendonly` or `inactive`) or takes
    /// it off. While any leg is held nothing is forwarded either way and a leg that is
    /// not held hears its hold music from `now`; on the resume the music stops and
    /// each direction maps its next packet afresh, just after what it last sent.
    pub fn set_held(&mut self, side: Side, held: bool, now: Instant) {
        let was = self.is_paused();
        self.held[side.idx()] = held;
        if was && !self.is_paused() {
            for inb in &mut self.inbound {
                inb.base = None;
                inb.tx_next = None;
                inb.in_next = None;
                inb.resumed = true;
            }
        }
        self.follow_music(now);
    }

    /// Starts or stops the hold music toward each side as the hold state wants it.
    fn follow_music(&mut self, now: Instant) {
        for to in [Side::A, Side::B] {
            let wanted = self.is_paused() && !self.held[to.idx()];
            // Music toward `to` stands in for what `to.other()` would send it.
            let position = self.next_position(to);
            self.music.follow(to, wanted, self.legs[to.idx()], now, position);
        }
    }

    /// When [`Relay::handle_timeout`] is next due (a hold-music frame); `None` while
    /// nothing plays.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.music.poll_timeout()
    }

    /// Queues every hold-music frame due by `now` for [`Relay::poll_output`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for to in [Side::A, Side::B] {
            let ticks = self.legs[to.idx()].codec.ticks_per_frame() as u64;
            while let Some(f) = self.music.poll_frame(to, now) {
                let inb = &mut self.inbound[to.other().idx()];
                inb.next_out = inb.next_out.max(f.position + ticks);
                inb.stats.hold_music += 1;
                self.out.push_back(RelayOut { to, payload_type: f.payload_type, marker: f.marker, position: f.position, payload: f.payload, hold_music: true });
            }
        }
    }

    /// Where the next packet toward `to` goes, in `to`'s clock ticks: just past what
    /// was last sent to it (relayed or hold music).
    pub fn next_position(&self, to: Side) -> u64 {
        self.inbound[to.other().idx()].next_out
    }

    /// Whether the bridge is paused (a leg is on hold).
    pub fn is_paused(&self) -> bool {
        self.held[0] || self.held[1]
    }

    /// A re-INVITE changed what `side` uses (hold music toward it restarts in the new codec at `now`).
    pub fn update_leg(&mut self, side: Side, media: LegMedia, now: Instant) -> Result<(), RelayError> {
        if self.legs[side.idx()] == media {
            return Ok(());
        }
        self.legs[side.idx()] = media;
        if self.music.is_playing(side) {
            self.music.restart(side);
            self.follow_music(now);
        }
        let (a, b) = (self.legs[0], self.legs[1]);
        for (i, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
            let t = transcoder(from, to)?;
            let inb = &mut self.inbound[i];
            if t.as_ref().map(|t| (t.from_codec(), t.to_codec())) != inb.transcoder.as_ref().map(|t| (t.from_codec(), t.to_codec())) {
                inb.transcoder = t;
            }
            // The clock rate may have changed: map afresh from the next packet.
            inb.base = None;
            inb.tx_next = None;
            inb.in_next = None;
        }
        Ok(())
    }

    pub fn stats(&self, from: Side) -> RelayStats {
        self.inbound[from.idx()].stats
    }

    /// Maps an incoming timestamp to the other leg's position, rebasing on a new stream.
    fn map(&mut self, from: Side, ssrc: u32, timestamp: u32) -> u64 {
        let in_rate = self.legs[from.idx()].codec.clock_rate() as i64;
        let out_rate = self.legs[from.other().idx()].codec.clock_rate() as i64;
        let inb = &mut self.inbound[from.idx()];
        if inb.ssrc != Some(ssrc) {
            inb.ssrc = Some(ssrc);
            inb.ts.reset();
            inb.base = None;
        }
        let ext = inb.ts.extend(timestamp);
        if let Some((bin, bout)) = inb.base {
            let mapped = bout as i64 + (ext - bin) * out_rate / in_rate;
            if mapped >= 0 && (mapped - inb.next_out as i64).abs() <= MAX_JUMP_SECONDS * out_rate {
                return mapped as u64;
            }
        }
        // First packet, new source, or a jump: continue where the output is.
        if inb.base.is_some() || inb.next_out > 0 {
            inb.stats.rebased += 1;
        }
        inb.base = Some((ext, inb.next_out));
        inb.tx_next = None;
        inb.in_next = None;
        inb.next_out
    }

    /// A packet received on leg `from` (after its session validated it).
    pub fn handle_packet(&mut self, from: Side, packet: &RtpPacket) -> Result<(), RelayError> {
        let src = self.legs[from.idx()];
        let dst = self.legs[from.other().idx()];
        let to = from.other();
        if self.is_paused() {
            self.inbound[from.idx()].stats.held += 1;
            return Ok(());
        }
        if Some(packet.payload_type) == src.telephone_event {
            return self.handle_event(from, src, dst, packet);
        }
        if packet.payload_type != src.pt {
            // Comfort noise, a codec not negotiated, or stray packets.
            self.inbound[from.idx()].stats.dropped += 1;
            return Ok(());
        }
        let position = self.map(from, packet.ssrc, packet.timestamp);
        let inb = &mut self.inbound[from.idx()];
        match &mut inb.transcoder {
            None => {
                // Same codec: the payload goes as it is; its length gives its duration.
                let ticks = match src.codec {
                    Codec::Pcmu | Codec::Pcma => packet.payload.len() as u64,
                    Codec::Opus => Codec::Opus.ticks_per_frame() as u64,
                };
                inb.next_out = inb.next_out.max(position + ticks);
                inb.stats.forwarded += 1;
                let marker = packet.marker || std::mem::take(&mut inb.resumed);
                self.out.push_back(RelayOut { to, payload_type: dst.pt, marker, position, payload: packet.payload.to_vec(), hold_music: false });
            }
            Some(t) => {
                let mut frames = Vec::new();
                t.transcode(Some(&packet.payload), &mut frames)?;
                let step = dst.codec.ticks_per_frame() as u64;
                let in_ticks = match src.codec {
                    Codec::Pcmu | Codec::Pcma => packet.payload.len() as u64,
                    Codec::Opus => Codec::Opus.ticks_per_frame() as u64,
                };
                let dur = in_ticks * dst.codec.clock_rate() as u64 / src.codec.clock_rate() as u64;
                // Continue the transcoded stream, unless the input jumped ahead (loss, DTX).
                let mut pos = match (inb.tx_next, inb.in_next) {
                    (Some(n), Some(expected)) if position <= expected => n,
                    _ => position,
                };
                inb.in_next = Some(position + dur);
                let marker = packet.marker || std::mem::take(&mut inb.resumed);
                for (k, payload) in frames.into_iter().enumerate() {
                    inb.stats.transcoded += 1;
                    self.out.push_back(RelayOut { to, payload_type: dst.pt, marker: marker && k == 0, position: pos, payload, hold_music: false });
                    pos += step;
                }
                inb.tx_next = Some(pos);
                inb.next_out = inb.next_out.max(pos);
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, from: Side, src: LegMedia, dst: LegMedia, packet: &RtpPacket) -> Result<(), RelayError> {
        let position = self.map(from, packet.ssrc, packet.timestamp);
        let inb = &mut self.inbound[from.idx()];
        if inb.dtmf.handle_packet(packet.timestamp, &packet.payload).is_err() {
            inb.stats.dropped += 1;
            return Ok(());
        }
        while let Some(digit) = inb.dtmf.poll_digit() {
            self.events.push_back(RelayEvent::Digit { from, digit });
        }
        let Some(pt) = dst.telephone_event else { return Ok(()) };
        let mut ev = TelephoneEvent::parse(&packet.payload).expect("parsed by the receiver");
        let (ir, or) = (src.codec.clock_rate() as u64, dst.codec.clock_rate() as u64);
        ev.duration = (ev.duration as u64 * or / ir).min(u16::MAX as u64) as u16;
        inb.stats.events += 1;
        self.out.push_back(RelayOut { to: from.other(), payload_type: pt, marker: packet.marker, position, payload: ev.to_bytes().to_vec(), hold_music: false });
        Ok(())
    }

    /// The stream on `from` ended: report a digit whose end packets never came.
    pub fn flush(&mut self, from: Side) {
        let inb = &mut self.inbound[from.idx()];
        inb.dtmf.flush();
        while let Some(digit) = inb.dtmf.poll_digit() {
            self.events.push_back(RelayEvent::Digit { from, digit });
        }
    }

    /// Next packet to send on a leg; call until `None` after each input.
    pub fn poll_output(&mut self) -> Option<RelayOut> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
