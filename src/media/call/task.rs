//! The task serving one leg, or a bridged pair of legs (slot 0 = this task's
//! own leg = relay side A, slot 1 = the leg handed over by `bridge` = side B).
//!
//! It only moves bytes, timers and commands; the logic is in the sans-IO
//! cores (`RtpSession`, `Player`, `Relay`, `AudioTap`/`AmdDetector`,
//! `DtmfReceiver`). One timer: the earliest of every core's `poll_timeout`
//! and the media-timeout check, re-armed only when that instant changes, so a
//! bridged call in steady state arms no timer per packet. Readable sockets are
//! drained with `try_recv_from` until they would block, so a wake-up serves
//! every packet that arrived meanwhile.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::analysis::AmdRun;
use super::settings::MediaConfig;
use super::MediaEvent;
use crate::media::dtmf::DtmfReceiver;
use crate::media::player::{Player, Prompt};
use crate::media::ports::PortPair;
use crate::media::relay::{LegMedia, Relay, Side};
use crate::media::sdp::SrtpKeys;
use crate::media::session::{Channel, RtpEvent, RtpSession, SessionConfig};
use crate::media::rtp::RtpPacket;
use crate::media::srtp::SrtpContext;
use crate::media::socket::now;
use crate::media::Codec;
use crate::webrtc::{AudioCodec, LegEvent, WebRtcLeg};

/// A bound RTP/RTCP pair and its port lease (released when dropped).
#[derive(Debug)]
pub(crate) struct LegSocket {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub lease: PortPair,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub rtp_in: AtomicU64,
    pub rtp_out: AtomicU64,
    pub relayed: AtomicU64,
}

/// What an offer/answer agreed, for the task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteMedia {
    pub media: LegMedia,
    pub rtp: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
    /// We may send (not held by the remote, and an address is known).
    pub sends: bool,
    /// We expect media (the media timeout runs).
    pub receives: bool,
    /// The remote put the leg on hold (offered `sendonly` or `inactive`): a bridge
    /// through it is paused.
    pub held: bool,
    /// SRTP keys when the leg is encrypted (SDES).
    pub srtp: Option<SrtpKeys>,
}

/// A leg's SRTP contexts: what the session sends is protected on the way out, what
/// arrives is verified and decrypted before the session sees it (RFC 3711).
struct LegSrtp {
    keys: SrtpKeys,
    tx: SrtpContext,
    rx: SrtpContext,
}

impl LegSrtp {
    fn new(keys: SrtpKeys) -> Box<Self> {
        Box::new(Self { keys, tx: SrtpContext::new(&keys.local), rx: SrtpContext::new(&keys.remote) })
    }
}

pub(crate) enum Command {
    Remote(RemoteMedia),
    Play { prompt: Arc<Prompt>, looped: bool },
    StopPlaying,
    StartAmd,
    /// Serve leg `other` too, bridged through `relay`; the leg arrives on `leg`.
    Bridge { relay: Box<Relay>, other: u64, leg: oneshot::Receiver<Box<LegState>> },
    /// Hand this leg to the bridging task.
    Handover { to: oneshot::Sender<Box<LegState>> },
    /// From now on this leg's media is WebRTC on its RTP socket (the browser answered).
    WebRtc(Box<WebRtcLeg>),
    Close,
}

/// A command for leg `leg` (a bridged task serves two).
pub(crate) struct Envelope {
    pub leg: u64,
    pub cmd: Command,
}

/// Everything one leg owns; moves between tasks on `bridge`.
pub(crate) struct LegState {
    id: u64,
    sock: LegSocket,
    session: RtpSession,
    media: Option<LegMedia>,
    sends: bool,
    receives: bool,
    held: bool,
    events: mpsc::UnboundedSender<MediaEvent>,
    counters: Arc<Counters>,
    /// Media positions are RTP ticks since `origin`: idle time advances them,
    /// so a prompt after a pause continues the remote's timeline.
    origin: Instant,
    /// Position just past the last packet sent.
    next_pos: u64,
    /// Added to relay positions (the relay counts from 0 at the bridge).
    relay_base: u64,
    player: Option<Player>,
    /// A prompt asked for before the codec was known.
    pending_play: Option<(Arc<Prompt>, bool)>,
    amd: Option<AmdRun>,
    amd_wanted: bool,
    /// When to look at `amd_last_audio` again (AMD's no-audio watchdog).
    amd_check: Option<Instant>,
    amd_last_audio: Instant,
    dtmf: DtmfReceiver,
    first_packet: bool,
    last_rx: Instant,
    /// When to look at `last_rx` again; `None` while the timeout does not run.
    timeout_check: Option<Instant>,
    timed_out: bool,
    send_errors: u64,
    srtp: Option<Box<LegSrtp>>,
    /// SRTP/SRTCP datagrams that failed authentication or replay checks.
    srtp_dropped: u64,
    /// A browser leg: WebRTC on the RTP socket in place of the RTP session.
    rtc: Option<Box<Browser>>,
}

/// A browser leg's WebRTC state in the task. Its audio reaches the relay, AMD and
/// the DTMF receiver as RTP packets numbered here, so they work as for any leg.
struct Browser {
    leg: WebRtcLeg,
    /// When the answer was applied: the set-up time is measured from here.
    since: Instant,
    /// Sequence number of the next packet handed on (frames arrive in order).
    seq: u64,
}

/// The SSRC the browser's frames are handed on with: one stream per leg, so the relay
/// maps their timestamps continuously.
const BROWSER_SSRC: u32 = 0x7765_6272;

fn rtc_codec(codec: Codec) -> AudioCodec {
    match codec {
        Codec::Pcmu => AudioCodec::Pcmu,
        Codec::Pcma => AudioCodec::Pcma,
        Codec::Opus => AudioCodec::Opus,
    }
}

impl LegState {
    fn emit(&self, e: MediaEvent) {
        let _ = self.events.send(e);
    }

    fn ticks_now(&self, now: Instant) -> u64 {
        let rate = self.session.clock_rate() as u128;
        (now.saturating_duration_since(self.origin).as_nanos() * rate / 1_000_000_000) as u64
    }

    /// Where a new talkspurt starts: after what was sent, and not behind the wall clock.
    fn spurt_position(&self, now: Instant) -> u64 {
        self.next_pos.max(self.ticks_now(now))
    }

    /// Writes out what the session queued. A datagram the socket cannot take is
    /// dropped and counted: late media is useless, and loopback/LAN sockets only
    /// refuse under overload.
    fn flush(&mut self) {
        while let Some(mut t) = self.session.poll_transmit() {
            if let Some(srtp) = self.srtp.as_mut() {
                let protected = match t.channel {
                    Channel::Rtp => srtp.tx.protect(&t.payload),
                    Channel::Rtcp => srtp.tx.protect_rtcp(&t.payload),
                };
                match protected {
                    Ok(p) => t.payload = p.into(),
                    Err(_) => {
                        self.send_errors += 1;
                        continue;
                    }
                }
            }
            let sock = match t.channel {
                Channel::Rtp => &self.sock.rtp,
                Channel::Rtcp => &self.sock.rtcp,
            };
            // A plain non-blocking send on the socket's descriptor: tokio's
            // `try_send_to` refuses (WouldBlock) until its reactor has seen the
            // socket writable, which loses a new leg's first packets, and waiting
            // for writability per packet is what this task must not do.
            match socket2::SockRef::from(sock).send_to(&t.payload, &t.destination.into()) {
                Ok(_) if t.channel == Channel::Rtp => {
                    self.counters.rtp_out.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => self.send_errors += 1,
            }
        }
        if let Some(b) = self.rtc.as_mut() {
            // STUN answers, DTLS records, SRTP and SRTCP, all on the one port (rtcp-mux).
            while let Some(d) = b.leg.poll_transmit() {
                if socket2::SockRef::from(&self.sock.rtp).send_to(&d.bytes, &d.to.into()).is_err() {
                    self.send_errors += 1;
                }
            }
        }
    }

    /// Sends one packet (unless the remote holds us); whether it went to the session.
    fn send(&mut self, now: Instant, pt: u8, marker: bool, position: u64, payload: &[u8], ticks: u64) -> bool {
        self.next_pos = self.next_pos.max(position + ticks);
        if let Some(b) = self.rtc.as_mut() {
            // Audio, and RFC 4733 events (the carrier's or customer's keys) when the
            // browser accepted telephone-event/8000.
            let Some(m) = self.media else { return false };
            let sent = if m.pt == pt {
                self.sends && b.leg.send_audio(now, rtc_codec(m.codec), payload, position).is_ok()
            } else if m.telephone_event == Some(pt) {
                self.sends && b.leg.send_telephone(now, payload, position).is_ok()
            } else {
                return false;
            };
            if sent {
                self.counters.rtp_out.fetch_add(1, Ordering::Relaxed);
                self.flush();
            }
            return sent;
        }
        let sent = self.sends && self.session.send(now, pt, marker, position, payload).is_ok();
        if sent {
            self.flush();
        }
        sent
    }

    fn start_player(&mut self, now: Instant, prompt: &Prompt, looped: bool) {
        let Some(m) = self.media else { return };
        match Player::new(prompt.clone(), m.codec, m.pt, looped, now, self.spurt_position(now)) {
            Ok(p) => self.player = Some(p),
            Err(e) => tracing::warn!(leg = self.id, error = %e, "cannot play prompt"),
        }
    }

    fn start_amd(&mut self, now: Instant, config: &MediaConfig) {
        let Some(m) = self.media else {
            self.amd_wanted = true;
            return;
        };
        self.amd_wanted = false;
        match AmdRun::new(&config.amd, m.codec, m.pt) {
            Ok(r) => {
                self.amd_last_audio = now;
                self.amd_check = Some(now + r.patience());
                self.amd = Some(r);
            }
            Err(e) => tracing::warn!(leg = self.id, error = %e, "cannot start AMD"),
        }
    }

    /// Plays due prompt frames, RTCP, and the media timeout.
    fn on_timer(&mut self, now: Instant, rng: &mut StdRng, timeout: Duration) {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now, rng);
        }
        if let Some(b) = self.rtc.as_mut().filter(|b| b.leg.poll_timeout().is_some_and(|t| t <= now)) {
            b.leg.handle_timeout(now);
        }
        if let Some(mut p) = self.player.take() {
            let ticks = self.media.map_or(160, |m| m.codec.ticks_per_frame() as u64);
            while let Some(f) = p.poll_frame(now) {
                match f {
                    Ok(f) => {
                        self.send(now, f.payload_type, f.marker, f.position, &f.payload, ticks);
                    }
                    Err(e) => tracing::warn!(leg = self.id, error = %e, "prompt frame failed"),
                }
            }
            if p.is_done() {
                self.emit(MediaEvent::PlayDone);
            } else {
                self.player = Some(p);
            }
        }
        if self.amd_check.is_some_and(|t| t <= now) {
            self.amd_check = None;
            let events = &self.events;
            if let Some(amd) = self.amd.as_mut().filter(|a| !a.decided()) {
                if now.saturating_duration_since(self.amd_last_audio) >= amd.patience() {
                    amd.give_up(&mut |e| {
                        let _ = events.send(e);
                    });
                } else {
                    self.amd_check = Some(self.amd_last_audio + amd.patience());
                }
            }
        }
        if self.timeout_check.is_some_and(|t| t <= now) {
            if now.saturating_duration_since(self.last_rx) >= timeout {
                self.timed_out = true;
                self.timeout_check = None;
                self.emit(MediaEvent::Timeout);
            } else {
                self.timeout_check = Some(self.last_rx + timeout);
            }
        }
        self.flush();
    }

    fn deadline(&self) -> Option<Instant> {
        [
            self.session.poll_timeout(),
            self.rtc.as_ref().and_then(|b| b.leg.poll_timeout()),
            self.player.as_ref().and_then(Player::poll_timeout),
            self.timeout_check,
            self.amd_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A packet from the remote was delivered: counters, first packet, timeout.
    fn received(&mut self, now: Instant, timeout: Duration) {
        self.counters.rtp_in.fetch_add(1, Ordering::Relaxed);
        self.last_rx = now;
        if !self.first_packet {
            self.first_packet = true;
            self.emit(MediaEvent::FirstPacket);
        }
        if self.timed_out && self.receives {
            // Media came back after a timeout: watch again.
            self.timed_out = false;
            self.timeout_check = Some(now + timeout);
        }
    }

    fn set_remote(&mut self, now: Instant, r: RemoteMedia, config: &MediaConfig, rng: &mut StdRng) {
        if r.media.codec.clock_rate() != self.session.clock_rate() {
            // Opus runs a 48 kHz RTP clock: a fresh session (new SSRC) with it.
            let sc = SessionConfig { clock_rate: r.media.codec.clock_rate(), ..SessionConfig::default() };
            self.session = RtpSession::new(sc, now, SystemTime::now(), rng);
            self.origin = now;
            self.next_pos = 0;
        }
        if let Some(rtp) = r.rtp {
            self.session.set_remote(rtp, r.rtcp);
        }
        // New keys (or none) start new SRTP contexts; the same keys keep their state.
        if self.srtp.as_ref().map(|s| s.keys) != r.srtp {
            self.srtp = r.srtp.map(LegSrtp::new);
        }
        let codec_changed = self.media.is_some_and(|m| m != r.media);
        self.media = Some(r.media);
        self.sends = r.sends;
        self.receives = r.receives;
        self.held = r.held;
        if !r.receives {
            self.timeout_check = None;
        } else if self.timeout_check.is_none() && !self.timed_out {
            self.last_rx = self.last_rx.max(now);
            self.timeout_check = Some(now + config.media_timeout);
        }
        if codec_changed {
            // The player and AMD were built for the old codec.
            self.player = None;
            if self.amd.take().is_some() {
                self.amd_wanted = true;
            }
        }
        if let Some((p, looped)) = self.pending_play.take() {
            self.start_player(now, &p, looped);
        }
        if self.amd_wanted {
            self.start_amd(now, config);
        }
    }

    /// The leg ends: RTCP BYE, then the socket (and port lease) drops with `self`.
    fn close(mut self) {
        self.session.close(now());
        self.flush();
        let s = self.session.stats();
        tracing::debug!(leg = self.id, sent = s.sent_packets, received = s.received_packets, send_errors = self.send_errors, "media leg closed");
        if let Some(srtp) = &self.srtp {
            // Received counts only packets whose SRTP tag verified.
            tracing::info!(
                leg = self.id,
                suite = srtp.keys.local.suite.name(),
                sent = s.sent_packets,
                received = s.received_packets,
                dropped = self.srtp_dropped,
                "SRTP leg closed"
            );
        }
    }
}

/// Starts the task of a new leg; returns where its commands go.
pub(crate) fn spawn(id: u64, sock: LegSocket, events: mpsc::UnboundedSender<MediaEvent>, counters: Arc<Counters>, config: Arc<MediaConfig>) -> mpsc::UnboundedSender<Envelope> {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = now();
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let session = RtpSession::new(SessionConfig::default(), t, SystemTime::now(), &mut rng);
    let leg = LegState {
        id,
        sock,
        session,
        media: None,
        sends: false,
        receives: false,
        held: false,
        events,
        counters,
        origin: t,
        next_pos: 0,
        relay_base: 0,
        player: None,
        pending_play: None,
        amd: None,
        amd_wanted: false,
        amd_check: None,
        amd_last_audio: t,
        dtmf: DtmfReceiver::new(),
        first_packet: false,
        last_rx: t,
        timeout_check: None,
        timed_out: false,
        send_errors: 0,
        srtp: None,
        srtp_dropped: 0,
        rtc: None,
    };
    let task = LegTask { legs: [Some(Box::new(leg)), None], relay: None, cmds: rx, rng, config, buf: Box::new([0; 2048]) };
    // The task logs in the span of the call leg that opened it.
    tokio::spawn(tracing::Instrument::in_current_span(task.run()));
    tx
}

struct LegTask {
    legs: [Option<Box<LegState>>; 2],
    relay: Option<Box<Relay>>,
    cmds: mpsc::UnboundedReceiver<Envelope>,
    rng: StdRng,
    config: Arc<MediaConfig>,
    buf: Box<[u8; 2048]>,
}

enum Input {
    Cmd(Option<Envelope>),
    Readable(usize, Channel),
    Timer,
}

/// What wakes the task: the timer first (so a flooded socket cannot starve
/// prompts and RTCP), then commands, then the sockets, starting at a rotating
/// one. `poll_recv_ready` keeps one waker per socket and direction, which is
/// all a task that owns its sockets needs, and costs less per wake-up than a
/// fresh `readable()` future per socket per loop.
fn poll_input(
    cx: &mut std::task::Context<'_>,
    socks: &[Option<&UdpSocket>; 4],
    cmds: &mut mpsc::UnboundedReceiver<Envelope>,
    sleep: std::pin::Pin<&mut tokio::time::Sleep>,
    turn: usize,
) -> std::task::Poll<Input> {
    use std::future::Future;
    use std::task::Poll;
    if sleep.poll(cx).is_ready() {
        return Poll::Ready(Input::Timer);
    }
    if let Poll::Ready(c) = cmds.poll_recv(cx) {
        return Poll::Ready(Input::Cmd(c));
    }
    for k in 0..ORDER.len() {
        let i = (turn + k) % ORDER.len();
        let Some(sock) = socks[i] else { continue };
        let (slot, ch) = ORDER[i];
        match sock.poll_recv_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Input::Readable(slot, ch)),
            // Only when the runtime's reactor is gone: end the task.
            Poll::Ready(Err(_)) => return Poll::Ready(Input::Cmd(None)),
            Poll::Pending => {}
        }
    }
    Poll::Pending
}

/// The sockets a task waits on: (slot, channel).
const ORDER: [(usize, Channel); 4] = [(0, Channel::Rtp), (1, Channel::Rtp), (0, Channel::Rtcp), (1, Channel::Rtcp)];

fn side(slot: usize) -> Side {
    if slot == 0 {
        Side::A
    } else {
        Side::B
    }
}

/// Datagrams read per socket per wake-up before looking at the others (fairness).
const MAX_BATCH: usize = 64;

impl LegTask {
    async fn run(mut self) {
        if let Some(l) = &self.legs[0] {
            tracing::debug!(leg = l.id, port = ?l.sock.rtp.local_addr().ok().map(|a| a.port()), "media leg opened");
        }
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut turn = 0usize;
        loop {
            let deadline = self.legs.iter().flatten().filter_map(|l| l.deadline()).min();
            if deadline != armed {
                armed = deadline;
                sleep.as_mut().reset(deadline.map(tokio::time::Instant::from_std).unwrap_or_else(far));
            }
            let input = {
                // Only the sockets are borrowed across the await (LegState is not Sync).
                let legs = &self.legs;
                let socks: [Option<&UdpSocket>; 4] = ORDER.map(|(slot, ch)| {
                    legs[slot].as_deref().map(|l| match ch {
                        Channel::Rtp => &l.sock.rtp,
                        Channel::Rtcp => &l.sock.rtcp,
                    })
                });
                let cmds = &mut self.cmds;
                let mut sleep = sleep.as_mut();
                turn = turn.wrapping_add(1);
                std::future::poll_fn(|cx| poll_input(cx, &socks, cmds, sleep.as_mut(), turn)).await
            };
            match input {
                Input::Cmd(None) => break,
                Input::Cmd(Some(env)) => self.command(env).await,
                Input::Readable(slot, ch) => self.drain(slot, ch),
                Input::Timer => {
                    armed = None;
                    let t = now();
                    let timeout = self.config.media_timeout;
                    for slot in 0..self.legs.len() {
                        if let Some(leg) = self.legs[slot].as_mut() {
                            leg.on_timer(t, &mut self.rng, timeout);
                            self.browser_events(slot, t, timeout);
                        }
                    }
                }
            }
            if self.legs.iter().all(Option::is_none) {
                break;
            }
        }
    }

    fn slot(&self, id: u64) -> Option<usize> {
        self.legs.iter().position(|l| l.as_ref().is_some_and(|l| l.id == id))
    }

    async fn command(&mut self, env: Envelope) {
        let Some(slot) = self.slot(env.leg) else { return };
        let t = now();
        match env.cmd {
            Command::Remote(r) => {
                let leg = self.legs[slot].as_mut().expect("slot");
                leg.set_remote(t, r, &self.config, &mut self.rng);
                if let Some(relay) = &mut self.relay {
                    let was_paused = relay.is_paused();
                    relay.set_held(side(slot), r.held);
                    match (was_paused, relay.is_paused()) {
                        (false, true) => tracing::info!(leg = env.leg, "bridge paused: the leg is on hold"),
                        (true, false) => tracing::info!(leg = env.leg, "bridge resumed: the leg is off hold"),
                        _ => {}
                    }
                    if let Err(e) = relay.update_leg(side(slot), r.media) {
                        tracing::warn!(leg = env.leg, error = %e, "bridge cannot follow the codec change; unbridged");
                        self.relay = None;
                    }
                }
            }
            Command::Play { prompt, looped } => {
                if self.relay.is_some() {
                    return;
                }
                let leg = self.legs[slot].as_mut().expect("slot");
                leg.player = None;
                if leg.media.is_some() {
                    leg.start_player(t, &prompt, looped);
                    // The first frame is due now.
                    leg.on_timer(t, &mut self.rng, self.config.media_timeout);
                } else {
                    leg.pending_play = Some((prompt, looped));
                }
            }
            Command::StopPlaying => {
                let leg = self.legs[slot].as_mut().expect("slot");
                leg.player = None;
                leg.pending_play = None;
            }
            Command::StartAmd => {
                if self.relay.is_none() {
                    self.legs[slot].as_mut().expect("slot").start_amd(t, &self.config);
                }
            }
            Command::Handover { to } => {
                let mut leg = self.legs[slot].take().expect("slot");
                leg.player = None;
                leg.pending_play = None;
                leg.amd = None;
                leg.amd_wanted = false;
                if let Err(leg) = to.send(leg) {
                    // The bridging leg was closed meanwhile: keep serving this one.
                    self.legs[slot] = Some(leg);
                }
            }
            Command::Bridge { relay, other, leg } => {
                // The other task answers at once (its queue holds only earlier commands).
                let Ok(mut b) = leg.await else {
                    tracing::debug!(leg = env.leg, other, "bridge partner closed before the handover");
                    return;
                };
                let Some(mut a) = self.legs[slot].take() else { return };
                for l in [&mut a, &mut b] {
                    l.player = None;
                    l.pending_play = None;
                    l.amd = None;
                    l.amd_wanted = false;
                    // One frame of space after whatever was sent before.
                    let step = l.media.map_or(160, |m| m.codec.ticks_per_frame() as u64);
                    l.relay_base = l.spurt_position(t) + step;
                    l.next_pos = l.relay_base;
                }
                // This task's leg is relay side A (slot 0), the adopted one side B.
                let mut relay = relay;
                relay.set_held(side(0), a.held);
                relay.set_held(side(1), b.held);
                self.legs = [Some(a), Some(b)];
                self.relay = Some(relay);
            }
            Command::WebRtc(rtc) => {
                let leg = self.legs[slot].as_mut().expect("slot");
                leg.rtc = Some(Box::new(Browser { leg: *rtc, since: t, seq: 0 }));
                leg.flush();
            }
            Command::Close => {
                let leg = self.legs[slot].take().expect("slot");
                leg.close();
                self.relay = None;
                if slot == 0 {
                    // Keep the survivor in slot 0 (side A if it is ever re-bridged).
                    self.legs.swap(0, 1);
                }
            }
        }
    }

    /// Reads every datagram waiting on one socket and runs it through the cores.
    fn drain(&mut self, slot: usize, ch: Channel) {
        let timeout = self.config.media_timeout;
        for _ in 0..MAX_BATCH {
            let Some(leg) = self.legs[slot].as_mut() else { return };
            let sock = match ch {
                Channel::Rtp => &leg.sock.rtp,
                Channel::Rtcp => &leg.sock.rtcp,
            };
            let (n, from) = match sock.try_recv_from(&mut self.buf[..]) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // e.g. ICMP port unreachable reported for an earlier send.
                Err(_) => continue,
            };
            let t = now();
            if let (Some(b), Channel::Rtp) = (leg.rtc.as_mut(), ch) {
                b.leg.handle_receive(t, from, &self.buf[..n]);
                self.browser_events(slot, t, timeout);
                continue;
            }
            let clear;
            let bytes = match leg.srtp.as_mut() {
                None => &self.buf[..n],
                Some(srtp) => {
                    let r = match ch {
                        Channel::Rtp => srtp.rx.unprotect(&self.buf[..n]),
                        Channel::Rtcp => srtp.rx.unprotect_rtcp(&self.buf[..n]),
                    };
                    match r {
                        Ok(p) => {
                            clear = p;
                            &clear[..]
                        }
                        Err(e) => {
                            leg.srtp_dropped += 1;
                            tracing::trace!(leg = leg.id, %from, error = %e, "SRTP datagram dropped");
                            continue;
                        }
                    }
                }
            };
            let r = match ch {
                Channel::Rtp => leg.session.handle_rtp(t, from, bytes),
                Channel::Rtcp => leg.session.handle_rtcp(t, from, bytes),
            };
            if let Err(e) = r {
                tracing::trace!(leg = leg.id, %from, error = %e, "datagram dropped");
            }
            self.session_events(slot, t, timeout);
        }
    }

    fn session_events(&mut self, slot: usize, t: Instant, timeout: Duration) {
        let [l0, l1] = &mut self.legs;
        let (leg, other) = if slot == 0 { (l0, l1) } else { (l1, l0) };
        let Some(leg) = leg.as_deref_mut() else { return };
        while let Some(ev) = leg.session.poll_event() {
            let RtpEvent::Packet { ext_seq, packet } = ev else { continue };
            deliver(leg, other.as_deref_mut(), self.relay.as_deref_mut(), slot, t, timeout, ext_seq, packet);
        }
        leg.flush();
    }

    /// What a browser leg's WebRTC produced: its datagrams go out, its audio and
    /// telephone-events go on as RTP packets, a failure ends the leg's media.
    fn browser_events(&mut self, slot: usize, t: Instant, timeout: Duration) {
        let [l0, l1] = &mut self.legs;
        let (leg, other) = if slot == 0 { (l0, l1) } else { (l1, l0) };
        let Some(leg) = leg.as_deref_mut() else { return };
        if leg.rtc.is_none() {
            return;
        }
        leg.flush();
        loop {
            let Some(b) = leg.rtc.as_mut() else { return };
            let Some(ev) = b.leg.poll_event() else { break };
            let (pt, payload, rtp_time) = match ev {
                LegEvent::Connected => {
                    let ms = t.saturating_duration_since(b.since).as_millis() as u64;
                    tracing::info!(leg = leg.id, setup_ms = ms, "browser media connected (ICE and DTLS done)");
                    continue;
                }
                LegEvent::Failed { reason } => {
                    let set_up = b.leg.was_connected();
                    tracing::info!(leg = leg.id, reason = %reason, set_up, "browser media failed: leg ends");
                    leg.emit(MediaEvent::Failed { reason, set_up });
                    continue;
                }
                LegEvent::Audio { payload, rtp_time, .. } => (leg.media.map(|m| m.pt), payload, rtp_time),
                LegEvent::Telephone { payload, rtp_time } => (leg.media.and_then(|m| m.telephone_event), payload.to_vec(), rtp_time),
            };
            let Some(pt) = pt else { continue };
            let ext_seq = b.seq;
            b.seq += 1;
            let packet = RtpPacket { payload_type: pt, marker: false, sequence: ext_seq as u16, timestamp: rtp_time as u32, ssrc: BROWSER_SSRC, payload: payload.into() };
            deliver(leg, other.as_deref_mut(), self.relay.as_deref_mut(), slot, t, timeout, ext_seq, packet);
        }
        leg.flush();
    }
}

/// One media packet from `leg`'s remote: relayed to `other` when bridged, else to
/// the DTMF receiver or AMD.
#[allow(clippy::too_many_arguments)]
fn deliver(leg: &mut LegState, other: Option<&mut LegState>, relay: Option<&mut Relay>, slot: usize, t: Instant, timeout: Duration, ext_seq: u64, packet: RtpPacket) {
    leg.received(t, timeout);
    if let (Some(relay), Some(other)) = (relay, other) {
        if let Err(e) = relay.handle_packet(side(slot), &packet) {
            tracing::debug!(leg = leg.id, error = %e, "relay dropped a packet");
        }
        while let Some(out) = relay.poll_output() {
            let ticks = other.media.map_or(160, |m| m.codec.ticks_per_frame() as u64);
            let pos = other.relay_base + out.position;
            if other.send(t, out.payload_type, out.marker, pos, &out.payload, ticks) {
                other.counters.relayed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Digits are relayed as RFC 4733; the relay's digit reports are not needed here.
        while relay.poll_event().is_some() {}
        return;
    }
    let media = leg.media;
    if media.and_then(|m| m.telephone_event) == Some(packet.payload_type) {
        if leg.dtmf.handle_packet(packet.timestamp, &packet.payload).is_ok() {
            let rate = leg.session.clock_rate().max(1);
            while let Some(d) = leg.dtmf.poll_digit() {
                if let Some(digit) = d.digit {
                    let duration_ms = (d.duration as u64 * 1000 / rate as u64) as u32;
                    leg.emit(MediaEvent::Dtmf { digit, duration_ms });
                }
            }
        }
    } else if let Some(amd) = leg.amd.as_mut() {
        leg.amd_last_audio = t;
        let events = &leg.events;
        let mut out = |e| {
            let _ = events.send(e);
        };
        if let Err(e) = amd.push(ext_seq, packet, &mut out) {
            tracing::debug!(leg = leg.id, error = %e, "AMD input dropped");
        }
        if !amd.active() {
            leg.amd = None;
        }
    }
}
