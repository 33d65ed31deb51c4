//! One browser agent's media leg: str0m driven with the caller's clock.
//!
//! Run contract (str0m's single-mutation rule, kept here so callers cannot break it):
//! every `handle_*`/`send_audio` drains str0m to its next timeout before returning, so
//! the caller only drains [`WebRtcLeg::poll_transmit`] and [`WebRtcLeg::poll_event`]
//! and sleeps until [`WebRtcLeg::poll_timeout`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, CodecExtra, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};

/// The audio codec of a payload: G.711 (passed through to a G.711 carrier), or Opus
/// when the browser accepts no G.711 (the relay transcodes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Pcmu,
    Pcma,
    Opus,
}

impl AudioCodec {
    /// The RTP clock rate (`rtp_time` counts in it).
    pub fn clock_rate(self) -> u64 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
            AudioCodec::Opus => 48_000,
        }
    }
}

/// A datagram to send from the leg's UDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What happened on the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// ICE and DTLS are done: SRTP keys exist and audio can flow.
    Connected,
    /// One audio frame from the browser (`rtp_time` at the codec's clock rate).
    Audio { codec: AudioCodec, payload: Vec<u8>, rtp_time: u64 },
    /// One RFC 4733 telephone-event report from the browser (its 4 payload bytes; the
    /// 8 kHz `rtp_time` is the event's start, as in the RTP header, §2.3.1).
    Telephone { payload: [u8; 4], rtp_time: u64 },
    /// The leg cannot go on (DTLS failed, the fingerprint did not match, ICE gave up).
    Failed { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    #[error("cannot use {addr} as a host candidate: {reason}")]
    Candidate { addr: SocketAddr, reason: String },
    #[error("the SDP from the browser is not usable: {0}")]
    BadSdp(String),
    #[error("no answer is awaited (an offer was not made, or was already answered)")]
    NoPendingOffer,
    #[error("the browser accepted none of PCMU, PCMA and Opus")]
    NoAudioCodec,
    #[error("the browser did not accept telephone-event/8000")]
    NoTelephoneEvent,
    #[error("the leg is not connected yet or has failed")]
    NotConnected,
    #[error("webrtc: {0}")]
    Rtc(#[from] RtcError),
}

/// The payload type offered for telephone-event/8000 (the one redial's RTP legs use).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// What the offer/answer agreed for the leg's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub codec: AudioCodec,
    /// The payload type of `codec` on this leg.
    pub pt: u8,
    /// The telephone-event/8000 payload type, when the browser accepted it.
    pub telephone_event: Option<u8>,
}

/// A browser agent's media leg.
pub struct WebRtcLeg {
    rtc: Rtc,
    local: SocketAddr,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    transmits: VecDeque<Datagram>,
    events: VecDeque<LegEvent>,
    timeout: Option<Instant>,
    connected: bool,
    failed: bool,
}

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg").field("local", &self.local).field("connected", &self.connected).field("failed", &self.failed).finish()
    }
}

impl WebRtcLeg {
    /// A leg whose media arrives on `local` (the UDP socket's address as the browser must
    /// reach it: `media.addr`, or `sip.public_addr` behind NAT).
    fn new(now: Instant, local: SocketAddr) -> Result<Self, WebRtcError> {
        // ICE-lite (RFC 8445 §2.5): redial has a public/host address and only answers
        // checks; the browser (full ICE, controlling) finds the pair.
        // PCMU and PCMA first (a browser picks the first it supports, and a G.711
        // carrier leg then needs no transcoding); Opus for a browser without G.711.
        let mut config = Rtc::builder().set_ice_lite(true).clear_codecs().enable_pcmu(true, false).enable_pcma(true, false).enable_opus(true, false);
        // RFC 4733 events at the G.711 clock, so a browser's keypad reaches the flow or
        // the carrier (Chrome offers and answers telephone-event/8000).
        config.codec_config().add_config(TELEPHONE_EVENT_PT.into(), None, Codec::Tele, Frequency::EIGHT_KHZ, None, FormatParams::default());
        let mut rtc = config.build(now);
        let c = Candidate::host(local, "udp").map_err(|e| WebRtcError::Candidate { addr: local, reason: e.to_string() })?;
        rtc.add_local_candidate(c);
        let mut leg = Self {
            rtc,
            local,
            mid: None,
            pending: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timeout: None,
            connected: false,
            failed: false,
        };
        leg.drain();
        Ok(leg)
    }

    /// A leg and the SDP offer for the INVITE to the browser: one sendrecv audio
    /// m-line, `UDP/TLS/RTP/SAVPF`, PCMU and PCMA, `a=setup:actpass`, `a=rtcp-mux`,
    /// `a=ice-lite`, the host candidate.
    pub fn offer(now: Instant, local: SocketAddr) -> Result<(Self, String), WebRtcError> {
        let mut leg = Self::new(now, local)?;
        let mut change = leg.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or(WebRtcError::NoPendingOffer)?;
        leg.drain();
        leg.mid = Some(mid);
        leg.pending = Some(pending);
        Ok((leg, offer.to_sdp_string()))
    }

    /// Applies the browser's answer to [`WebRtcLeg::offer`].
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), WebRtcError> {
        let pending = self.pending.take().ok_or(WebRtcError::NoPendingOffer)?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| WebRtcError::BadSdp(e.to_string()))?;
        let r = self.rtc.sdp_api().accept_answer(pending, answer);
        self.drain();
        r?;
        self.check_g711()
    }

    /// A leg answering the browser's offer (a call the browser places); returns the answer SDP.
    pub fn answer(now: Instant, local: SocketAddr, offer_sdp: &str) -> Result<(Self, String), WebRtcError> {
        let mut leg = Self::new(now, local)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| WebRtcError::BadSdp(e.to_string()))?;
        let answer = leg.rtc.sdp_api().accept_offer(offer);
        leg.drain();
        let answer = answer?;
        leg.check_g711()?;
        Ok((leg, answer.to_sdp_string()))
    }

    fn check_g711(&mut self) -> Result<(), WebRtcError> {
        if self.codec().is_none() {
            return Err(WebRtcError::NoAudioCodec);
        }
        Ok(())
    }

    /// The codec the browser accepted first (PCMU is offered first, Opus last).
    pub fn codec(&mut self) -> Option<AudioCodec> {
        self.agreed().map(|a| a.codec)
    }

    /// The codec, its payload type and the telephone-event payload type the browser
    /// accepted (G.711 first when it accepted it); `None` before the answer or without
    /// a codec we offered.
    pub fn agreed(&mut self) -> Option<Agreed> {
        let mid = self.mid?;
        let writer = self.rtc.writer(mid)?;
        let mut codecs: Vec<(AudioCodec, u8)> = Vec::new();
        let mut telephone_event = None;
        for p in writer.payload_params() {
            let spec = p.spec();
            if let Some(c) = codec_of(spec.codec) {
                codecs.push((c, *p.pt()));
            }
            if spec.codec == Codec::Tele && spec.clock_rate == Frequency::EIGHT_KHZ && telephone_event.is_none() {
                telephone_event = Some(*p.pt());
            }
        }
        // G.711 passes through to the carrier; Opus only when there is no G.711.
        codecs.sort_by_key(|(c, _)| *c == AudioCodec::Opus);
        codecs.first().map(|&(codec, pt)| Agreed { codec, pt, telephone_event })
    }

    /// The local address the leg's host candidate names.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// A datagram received on the leg's socket from `from`.
    pub fn handle_receive(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.failed {
            return;
        }
        let Ok(contents) = bytes.try_into() else {
            tracing::debug!(%from, len = bytes.len(), "datagram neither STUN, DTLS nor SRTP; dropped");
            return;
        };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source: from, destination: self.local, contents });
        let r = self.rtc.handle_input(input);
        self.after(r);
    }

    /// Advances timers (ICE consent, DTLS retransmissions, RTCP). Call at [`WebRtcLeg::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        let r = self.rtc.handle_input(Input::Timeout(now));
        self.after(r);
    }

    /// Sends one frame of `codec` (`rtp_time` at its clock rate) to the browser.
    pub fn send_audio(&mut self, now: Instant, codec: AudioCodec, payload: &[u8], rtp_time: u64) -> Result<(), WebRtcError> {
        if !self.connected || self.failed {
            return Err(WebRtcError::NotConnected);
        }
        let mid = self.mid.ok_or(WebRtcError::NotConnected)?;
        let writer = self.rtc.writer(mid).ok_or(WebRtcError::NotConnected)?;
        let pt = writer.payload_params().find(|p| codec_of(p.spec().codec) == Some(codec)).map(|p| p.pt()).ok_or(WebRtcError::NoAudioCodec)?;
        let freq = if codec == AudioCodec::Opus { Frequency::FORTY_EIGHT_KHZ } else { Frequency::EIGHT_KHZ };
        let time = MediaTime::new(rtp_time, freq);
        let r = writer.write(pt, now, time, payload.to_vec());
        self.after(r);
        Ok(())
    }

    /// Sends one RFC 4733 telephone-event packet's reports (`payload`, whole 4-byte
    /// reports) to the browser; `rtp_time` is the event's start at 8 kHz (§2.3.1), the
    /// same in every report of one event.
    pub fn send_telephone(&mut self, now: Instant, payload: &[u8], rtp_time: u64) -> Result<(), WebRtcError> {
        if !self.connected || self.failed {
            return Err(WebRtcError::NotConnected);
        }
        let mid = self.mid.ok_or(WebRtcError::NotConnected)?;
        let writer = self.rtc.writer(mid).ok_or(WebRtcError::NotConnected)?;
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Tele && p.spec().clock_rate == Frequency::EIGHT_KHZ)
            .map(|p| p.pt())
            .ok_or(WebRtcError::NoTelephoneEvent)?;
        let r = writer.write(pt, now, MediaTime::new(rtp_time, Frequency::EIGHT_KHZ), payload.to_vec());
        self.after(r);
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// When to call [`WebRtcLeg::handle_timeout`]; `None` once the leg failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            None
        } else {
            self.timeout
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected && !self.failed
    }

    /// Whether ICE and DTLS were ever done (also after a later failure).
    pub fn was_connected(&self) -> bool {
        self.connected
    }

    fn after(&mut self, r: Result<(), RtcError>) {
        match r {
            Ok(()) => self.drain(),
            Err(e) => self.fail(e.to_string()),
        }
    }

    fn fail(&mut self, reason: String) {
        if !self.failed {
            self.failed = true;
            tracing::info!(reason = %reason, "webrtc leg failed");
            self.events.push_back(LegEvent::Failed { reason });
        }
    }

    /// Drains str0m until it names its next timeout (its single-mutation rule).
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = Some(t);
                    return;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(Datagram { to: t.destination, bytes: t.contents.to_vec() }),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => return self.fail(e.to_string()),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(LegEvent::Connected);
            }
            Event::MediaAdded(m) if self.mid.is_none() => self.mid = Some(m.mid),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.fail("ICE disconnected (no consent)".into()),
            Event::MediaData(d) => {
                if let Some(codec) = codec_of(d.params.spec().codec) {
                    self.events.push_back(LegEvent::Audio { codec, payload: d.data.to_vec(), rtp_time: d.time.numer() });
                } else if let CodecExtra::Tele(_) = d.codec_extra {
                    // Reports of one event share its start timestamp; the newest (longest
                    // duration, or the end) is the last one when several came together.
                    let n = d.data.len();
                    if let Some(payload) = n.checked_sub(4).and_then(|at| <[u8; 4]>::try_from(&d.data[at..]).ok()) {
                        self.events.push_back(LegEvent::Telephone { payload, rtp_time: d.time.numer() });
                    }
                }
            }
            _ => {}
        }
    }
}

fn codec_of(c: Codec) -> Option<AudioCodec> {
    match c {
        Codec::PCMU => Some(AudioCodec::Pcmu),
        Codec::PCMA => Some(AudioCodec::Pcma),
        Codec::Opus => Some(AudioCodec::Opus),
        _ => None,
    }
}
