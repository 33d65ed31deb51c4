//! [`MediaLeg`]: the dialler's handle on one leg's live media.
//!
//! SDP offer/answer runs here, synchronously, on the caller's side (it needs
//! only the local port); what the stream must do is sent to the leg's task as
//! a [`Command`], in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::settings::MediaConfig;
use super::task::{self, Command, Counters, Envelope, LegSocket, RemoteMedia};
use super::{MediaCallError, MediaEvent};
use crate::media::player::Prompt;
use crate::media::relay::{LegMedia, Relay};
use crate::media::sdp::{self, Direction, LocalMedia, Negotiated, SrtpPolicy};
use crate::media::srtp::{KeyMaterial, Suite};
use crate::media::socket::now;
use crate::media::Codec;
use crate::webrtc::{AudioCodec, WebRtcError, WebRtcLeg};

/// Packets received from / sent to the remote so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaLegStats {
    /// Valid RTP packets received from this leg's remote.
    pub rtp_in: u64,
    /// RTP packets sent to this leg's remote (prompts, relayed media, events).
    pub rtp_out: u64,
    /// Of `rtp_out`, the packets that came from the other leg through the bridge.
    pub relayed: u64,
}

/// One call leg's RTP endpoint. Dropping it (or [`MediaLeg::close`]) stops
/// its media and releases its ports.
pub struct MediaLeg {
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
    id: u64,
    /// The task serving this leg: its own, or the bridge partner's after `bridge`.
    cmd: mpsc::UnboundedSender<Envelope>,
    counters: Arc<Counters>,
    local: LocalMedia,
    offered: Vec<Codec>,
    negotiated: Option<Negotiated>,
    bridged: bool,
    /// A browser leg: WebRTC media (ICE-lite, DTLS-SRTP) on this leg's RTP socket.
    webrtc: bool,
    /// The browser leg between its offer and the answer; then it moves to the task.
    pending_webrtc: Option<Box<WebRtcLeg>>,
}

impl std::fmt::Debug for MediaLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLeg").field("id", &self.id).field("port", &self.local.port).field("negotiated", &self.negotiated).finish()
    }
}

impl MediaLeg {
    pub(super) fn start(id: u64, socket: LegSocket, config: Arc<MediaConfig>) -> Self {
        let port = socket.lease.rtp();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let cmd = task::spawn(id, socket, ev_tx, counters.clone(), config.clone());
        let local = LocalMedia {
            addr: config.advertised,
            port,
            session_id: rand::random::<u32>() as u64,
            session_version: 0,
            srtp: SrtpPolicy::Off,
            // One key per leg for its whole life: a re-INVITE keeps the SRTP streams going.
            key: KeyMaterial::random(Suite::AesCm128HmacSha1_80),
        };
        Self { events, id, cmd, counters, local, offered: Vec::new(), negotiated: None, bridged: false, webrtc: false, pending_webrtc: None }
    }

    /// A process-unique number for logs.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The local RTP port (RTCP is the next one).
    pub fn local_port(&self) -> u16 {
        self.local.port
    }

    /// What the last offer/answer agreed, if any.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether this leg's offers and answers use SRTP (SDES); plain RTP until set.
    pub fn set_srtp(&mut self, policy: SrtpPolicy) {
        self.local.srtp = policy;
    }

    fn send(&self, cmd: Command) {
        // The task only ends once every leg it serves is closed, so a failed send
        // means this leg is closing anyway.
        let _ = self.cmd.send(Envelope { leg: self.id, cmd });
    }

    /// Our SDP offer: PCMU, PCMA (in `codecs` order) + telephone-event/8000, sendrecv.
    pub fn offer(&mut self, codecs: &[Codec]) -> String {
        self.offered = codecs.to_vec();
        self.local.session_version += 1;
        sdp::build_offer(&self.local, codecs, Direction::SendRecv)
    }

    /// Our SDP offer for a browser (WebRTC, RFC 8829 §5.2): one audio m-line
    /// `UDP/TLS/RTP/SAVPF` with PCMU, PCMA, Opus and telephone-event, ICE-lite with this leg's
    /// RTP port as the only host candidate, DTLS-SRTP (`a=setup:actpass`), rtcp-mux.
    /// The leg's media then runs through WebRTC instead of plain RTP; the G.711
    /// payloads are the same, so a bridge to a G.711 carrier leg passes them through.
    pub fn offer_webrtc(&mut self) -> Result<String, MediaCallError> {
        let local = std::net::SocketAddr::new(self.local.addr, self.local.port);
        let (leg, sdp) = WebRtcLeg::offer(now(), local)?;
        self.webrtc = true;
        self.pending_webrtc = Some(Box::new(leg));
        self.offered = vec![Codec::Pcmu, Codec::Pcma];
        Ok(sdp)
    }

    /// Whether this is a browser leg (WebRTC media).
    pub fn is_webrtc(&self) -> bool {
        self.webrtc
    }

    /// Applies the remote's answer to our offer (also an early-media 183 answer); sets the
    /// session's remote address and codec.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Negotiated, MediaCallError> {
        if self.webrtc {
            return self.accept_webrtc_answer(sdp);
        }
        if self.offered.is_empty() {
            return Err(MediaCallError::NoOffer { leg: self.id });
        }
        let n = sdp::accept_answer(sdp, &self.offered, Direction::SendRecv, &self.local)?;
        self.apply(&n, false);
        Ok(n)
    }

    /// The browser's answer: DTLS roles, its fingerprint and ICE credentials go to the
    /// WebRTC leg, which then moves into the task. A second answer to the same offer
    /// (a 200 repeating a 183's SDP) changes nothing.
    fn accept_webrtc_answer(&mut self, sdp: &str) -> Result<Negotiated, MediaCallError> {
        if let Some(n) = &self.negotiated {
            return Ok(n.clone());
        }
        let mut leg = self.pending_webrtc.take().ok_or(MediaCallError::NoOffer { leg: self.id })?;
        leg.accept_answer(sdp)?;
        let agreed = leg.agreed().ok_or(WebRtcError::NoAudioCodec)?;
        let n = Negotiated {
            // G.711 passes through the bridge; Opus (a browser without G.711) is
            // transcoded by the relay like any Opus leg.
            codec: match agreed.codec {
                AudioCodec::Pcmu => Codec::Pcmu,
                AudioCodec::Pcma => Codec::Pcma,
                AudioCodec::Opus => Codec::Opus,
            },
            pt: agreed.pt,
            telephone_event: agreed.telephone_event,
            // The browser's address is what ICE finds, not an SDP line.
            remote_rtp: None,
            remote_rtcp: None,
            ptime: sdp::negotiate::PTIME_MS,
            direction: Direction::SendRecv,
            srtp: None,
        };
        self.send(Command::WebRtc(leg));
        self.apply(&n, false);
        Ok(n)
    }

    /// Answers a remote offer (inbound calls), choosing by `prefs`; returns our SDP answer.
    pub fn answer_offer(&mut self, offer: &str, prefs: &[Codec]) -> Result<String, MediaCallError> {
        self.local.session_version += 1;
        let a = sdp::answer_offer(offer, &self.local, prefs, Direction::SendRecv)?;
        self.apply(&a.negotiated, false);
        Ok(a.sdp)
    }

    /// A re-offer in the dialog: moves the remote address if it changed, and follows
    /// hold (RFC 3264 §8.4): an offer with `sendonly` or `inactive` (or the RFC 2543
    /// `c=0.0.0.0`) stops what we send to this leg and pauses its bridge, `sendrecv`
    /// resumes both.
    pub fn reoffer(&mut self, sdp: &str) -> Result<(), MediaCallError> {
        if self.webrtc {
            return self.reoffer_webrtc(sdp);
        }
        self.answer_reoffer(sdp).map(|_| ())
    }

    /// A browser's re-offer: it keeps its ICE candidates and DTLS association (RFC 5763
    /// §5, RFC 8842 §5.5: no new handshake), so the media path does not move; only the
    /// direction follows the offer.
    fn reoffer_webrtc(&mut self, sdp: &str) -> Result<(), MediaCallError> {
        let Some(mut n) = self.negotiated.clone() else {
            // No answer applied yet: nothing is flowing to pause.
            return Ok(());
        };
        let offer = sdp::model::parse(sdp)?.audio.ok_or(sdp::SdpError::NoAudio)?;
        n.direction = offer.direction.answer();
        let held = n.on_hold();
        self.apply(&n, held);
        Ok(())
    }

    /// [`MediaLeg::reoffer`], returning the SDP answer for the re-INVITE's 200.
    pub fn answer_reoffer(&mut self, sdp: &str) -> Result<String, MediaCallError> {
        let prefs = self.reoffer_prefs();
        self.local.session_version += 1;
        let a = sdp::answer_offer(sdp, &self.local, &prefs, Direction::SendRecv)?;
        let held = a.negotiated.on_hold();
        self.apply(&a.negotiated, held);
        Ok(a.sdp)
    }

    /// The codecs for answering a re-offer: the current one first (kept when the new
    /// offer still has it), then what we offered, then the rest we know.
    fn reoffer_prefs(&self) -> Vec<Codec> {
        let mut prefs = Vec::with_capacity(4);
        prefs.extend(self.negotiated.as_ref().map(|n| n.codec));
        for c in self.offered.iter().copied().chain([Codec::Pcmu, Codec::Pcma, Codec::Opus]) {
            if !prefs.contains(&c) {
                prefs.push(c);
            }
        }
        prefs
    }

    /// Hands what was agreed to the task; `held` says the remote put the leg on hold
    /// (only a re-offer can: an early answer's direction is not a hold).
    fn apply(&mut self, n: &Negotiated, held: bool) {
        self.negotiated = Some(n.clone());
        self.send(Command::Remote(RemoteMedia {
            media: LegMedia::from(n),
            rtp: n.remote_rtp,
            rtcp: n.remote_rtcp,
            // A browser leg's remote address is the one ICE validates.
            sends: n.direction.sends() && (n.remote_rtp.is_some() || self.webrtc),
            receives: n.direction.receives(),
            held,
            srtp: n.srtp,
        }));
    }

    /// Plays `prompt` (replacing any current one) as paced 20 ms packets; `looped` repeats.
    /// Before negotiation the prompt waits for the codec; while bridged it is ignored.
    pub fn play(&self, prompt: Arc<Prompt>, looped: bool) {
        self.send(Command::Play { prompt, looped });
    }

    pub fn stop_playing(&self) {
        self.send(Command::StopPlaying);
    }

    /// Starts AMD on the remote's audio (via AudioTap + AmdDetector): emits Amd, then Beep /
    /// GreetingEnded when heard after a machine decision. A new call restarts the analysis.
    pub fn start_amd(&self) {
        self.send(Command::StartAmd);
    }

    /// Bridges this leg with `other` (anchored relay, transcoding when the codecs
    /// differ, DTMF passed as RFC 4733); stops playback and AMD on both. Both legs'
    /// events still arrive on their own receivers. `other`'s socket and session
    /// move into this leg's task, which then serves both.
    pub fn bridge(&mut self, other: &mut MediaLeg) -> Result<(), MediaCallError> {
        for leg in [&*self, &*other] {
            if leg.bridged {
                return Err(MediaCallError::AlreadyBridged { leg: leg.id });
            }
        }
        let a = self.negotiated.as_ref().ok_or(MediaCallError::NotNegotiated { leg: self.id })?;
        let b = other.negotiated.as_ref().ok_or(MediaCallError::NotNegotiated { leg: other.id })?;
        let relay = Relay::new(LegMedia::from(a), LegMedia::from(b)).map_err(|e| match e {
            crate::media::relay::RelayError::Transcode(t) => MediaCallError::Transcode(t),
        })?;
        let (tx, rx) = oneshot::channel();
        // Order matters: the other task hands its leg over after every command
        // already queued for it; this task waits for the leg before any later command.
        other.send(Command::Handover { to: tx });
        self.send(Command::Bridge { relay: Box::new(relay), other: other.id, leg: rx });
        other.cmd = self.cmd.clone();
        self.bridged = true;
        other.bridged = true;
        Ok(())
    }

    /// The leg this one was bridged with was closed: its task serves this leg alone
    /// again, so prompts play on it and a later [`MediaLeg::bridge`] joins it to
    /// another leg. (Bridged legs share the task of the leg `bridge` was called on;
    /// call this on that one.)
    pub fn partner_closed(&mut self) {
        self.bridged = false;
    }

    /// Packets received from / sent to the remote so far (for tests and metrics).
    pub fn stats(&self) -> MediaLegStats {
        MediaLegStats {
            rtp_in: self.counters.rtp_in.load(Ordering::Relaxed),
            rtp_out: self.counters.rtp_out.load(Ordering::Relaxed),
            relayed: self.counters.relayed.load(Ordering::Relaxed),
        }
    }

    /// Stops the task and releases the ports (also on drop). An RTCP BYE is sent.
    pub fn close(self) {}
}

impl Drop for MediaLeg {
    fn drop(&mut self) {
        self.send(Command::Close);
    }
}
