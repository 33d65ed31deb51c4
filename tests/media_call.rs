//! Live media legs (`media::call`) over loopback UDP: real sockets, real
//! tasks. Remotes are either other legs or raw UDP sockets playing a phone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redial::amd::{AmdConfig, AmdResult};
use redial::media::call::{MediaConfig, MediaEngine, MediaEvent, MediaLeg};
use redial::media::dtmf;
use redial::media::g711;
use redial::media::player::{tone, Prompt};
use redial::media::rtp::RtpPacket;
use redial::media::Codec;
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);

/// An engine on a range of 40 ports next to one the OS just handed out
/// (free at that moment; binding skips pairs taken since).
fn engine(media_timeout: Duration) -> MediaEngine {
    engine_with(media_timeout, AmdConfig::default())
}

fn engine_with(media_timeout: Duration, amd: AmdConfig) -> MediaEngine {
    let probe = std::net::UdpSocket::bind((LO, 0)).unwrap();
    let base = probe.local_addr().unwrap().port() & !1;
    drop(probe);
    let start = base.saturating_sub(40).max(1024);
    let cfg = MediaConfig { bind: LO, advertised: LO, media_timeout, amd };
    MediaEngine::with_config(cfg, start..=start + 39).unwrap()
}

/// A phone: a raw UDP socket and the SDP answer it would send.
struct Phone {
    sock: UdpSocket,
    ssrc: u32,
    seq: u16,
}

impl Phone {
    async fn new() -> Self {
        Phone { sock: UdpSocket::bind((LO, 0)).await.unwrap(), ssrc: 0x1234_5678, seq: 1000 }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn sdp(&self, codec: Codec) -> String {
        let (pt, name) = (codec.default_pt(), codec.name());
        let port = self.addr().port();
        format!(
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        )
    }

    async fn send(&mut self, to: u16, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let p = RtpPacket { payload_type: pt, marker, sequence: self.seq, timestamp: ts, ssrc: self.ssrc, payload: payload.to_vec().into() };
        self.seq = self.seq.wrapping_add(1);
        self.sock.send_to(&p.to_bytes().unwrap(), (LO, to)).await.unwrap();
    }

    /// The next RTP packet, or `None` after `WAIT`; RTCP is skipped (`is_rtcp`).
    async fn recv(&self) -> Option<RtpPacket> {
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await.ok()?.unwrap();
            if is_rtcp(&buf[..n]) {
                continue;
            }
            return Some(RtpPacket::parse(&buf[..n]).unwrap());
        }
    }
}

/// RTCP (RFC 5761 §4: packet types 192–223 in the second byte). A leg of another test in
/// this process sends its RTCP to its phone's port + 1, which the OS may have given this
/// test's phone, so phones skip it.
fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// The next event, or a failure after `WAIT`.
async fn next(leg: &mut MediaLeg) -> MediaEvent {
    timeout(WAIT, leg.events.recv()).await.expect("no event in time").expect("events closed")
}

/// Events until `stop` matches it (included).
async fn until(leg: &mut MediaLeg, stop: impl Fn(&MediaEvent) -> bool) -> Vec<MediaEvent> {
    let mut seen = vec![];
    loop {
        let e = next(leg).await;
        let done = stop(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

async fn leg_with_phone(e: &MediaEngine, codec: Codec) -> (MediaLeg, Phone) {
    let mut leg = e.open().await.unwrap();
    let phone = Phone::new().await;
    let offer = leg.offer(&[Codec::Pcmu, Codec::Pcma]);
    assert!(offer.contains(&format!("m=audio {} RTP/AVP 0 8 101", leg.local_port())), "{offer}");
    let n = leg.accept_answer(&phone.sdp(codec)).unwrap();
    assert_eq!(n.codec, codec);
    (leg, phone)
}

#[tokio::test]
async fn two_legs_offer_answer_and_exchange_audio() {
    let e = engine(Duration::from_secs(60));
    let mut a = e.open().await.unwrap();
    let mut b = e.open().await.unwrap();
    assert_eq!(e.ports_in_use(), 2);
    let offer = a.offer(&[Codec::Pcmu, Codec::Pcma]);
    let answer = b.answer_offer(&offer, &[Codec::Pcma, Codec::Pcmu]).unwrap();
    let n = a.accept_answer(&answer).unwrap();
    assert_eq!((n.codec, n.pt, n.telephone_event), (Codec::Pcma, 8, Some(101)));
    assert_eq!(b.negotiated().unwrap().codec, Codec::Pcma);

    // 0.5 s each way: 25 packets.
    let p = Arc::new(tone(&[440.0], 500, 0, 500));
    a.play(p.clone(), false);
    b.play(p, false);
    // Each leg reports PlayDone and the other's FirstPacket, in either order.
    for leg in [&mut a, &mut b] {
        let mut ev = vec![next(leg).await, next(leg).await];
        ev.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(ev, vec![MediaEvent::FirstPacket, MediaEvent::PlayDone]);
    }
    // Every packet sent arrived: wait for the counters to settle (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(a.stats().rtp_in == 25 && b.stats().rtp_in == 25) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in [a.stats(), b.stats()] {
        assert_eq!((s.rtp_in, s.rtp_out, s.relayed), (25, 25, 0), "{s:?}");
    }
}

#[tokio::test]
async fn a_prompt_reaches_a_phone_paced_with_exact_timestamps() {
    let e = engine(Duration::from_secs(60));
    let (mut leg, phone) = leg_with_phone(&e, Codec::Pcmu).await;
    let prompt = Prompt::from_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/callback-confirm.wav")).unwrap();
    let frames = prompt.frames();
    assert!(frames > 20);
    let started = tokio::time::Instant::now();
    leg.play(Arc::new(prompt.clone()), false);
    let mut got = vec![];
    while (got.len() as u64) < frames {
        let Some(p) = phone.recv().await else { panic!("got {} of {frames}, stats {:?}, ev {:?}", got.len(), leg.stats(), leg.events.try_recv()) };
        got.push(p);
    }
    let span = started.elapsed();
    assert_eq!(next(&mut leg).await, MediaEvent::PlayDone);
    let first = &got[0];
    assert!(first.marker && got[1..].iter().all(|p| !p.marker));
    for (k, p) in got.iter().enumerate() {
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.ssrc, first.ssrc);
        assert_eq!(p.sequence, first.sequence.wrapping_add(k as u16), "consecutive sequence numbers");
        assert_eq!(p.timestamp, first.timestamp.wrapping_add(160 * k as u32), "timestamps 160 apart");
        assert_eq!(p.payload.len(), 160);
    }
    // The audio is the prompt's, µ-law encoded.
    let want: Vec<u8> = prompt.samples()[160 * 5..160 * 6].iter().map(|&s| g711::ulaw_encode(s)).collect();
    assert_eq!(&got[5].payload[..], &want[..]);
    // Paced at 20 ms, not burst: the last packet is due (frames-1) × 20 ms after the first.
    assert!(span >= Duration::from_millis(20 * (frames - 1) - 5), "{span:?} for {frames} frames");
    assert_eq!(leg.stats().rtp_out, frames);

    // Looped playback keeps going past the prompt's end until stopped, with no PlayDone.
    leg.play(Arc::new(tone(&[440.0], 100, 0, 100)), true);
    let mut n = 0;
    while n < 12 {
        phone.recv().await.expect("looped packet");
        n += 1;
    }
    leg.stop_playing();
    // Drain what was in flight, then nothing more arrives.
    while timeout(Duration::from_millis(200), phone.recv()).await.is_ok_and(|p| p.is_some()) {}
    assert!(leg.events.try_recv().is_err(), "no PlayDone for a stopped loop");
}

#[tokio::test]
async fn amd_on_a_streamed_machine_greeting_decides_and_hears_the_beep() {
    let e = engine(Duration::from_secs(60));
    let (mut leg, mut phone) = leg_with_phone(&e, Codec::Pcmu).await;
    // m007: a carrier voicemail greeting with its beep at 5770 ms (labels.csv).
    let clip = redial::amd::wav::read_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join("test-media/amd/m007.wav")).unwrap();
    leg.start_amd();
    let port = leg.local_port();
    // AMD counts media time (timestamps), so the clip may go faster than real time.
    // After the clip, 1.5 s of line silence: the voicemail recording after the beep.
    let mut samples = clip.samples.clone();
    samples.resize(samples.len().div_ceil(160) * 160 + 12_000, 0);
    for (k, chunk) in samples.chunks(160).enumerate() {
        let payload: Vec<u8> = chunk.iter().map(|&s| g711::ulaw_encode(s)).collect();
        phone.send(port, 0, k == 0, 90_000 + 160 * k as u32, &payload).await;
        // ~10x real time: the leg's socket buffer (~160 small datagrams) then covers
        // a stall of the leg's task of a few hundred ms on a loaded machine.
        if k % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut ev = vec![];
    while !ev.contains(&MediaEvent::GreetingEnded) {
        match timeout(WAIT, leg.events.recv()).await {
            Ok(Some(e)) => ev.push(e),
            _ => panic!("no GreetingEnded after {ev:?}; {:?}", leg.stats()),
        }
    }
    assert_eq!(ev[0], MediaEvent::FirstPacket);
    let amd = ev.iter().find_map(|e| if let MediaEvent::Amd(d) = e { Some(*d) } else { None }).expect("a decision");
    assert_eq!(amd.result, AmdResult::Machine, "{amd:?}");
    let beep = ev.iter().find_map(|e| if let MediaEvent::Beep { at_ms } = e { Some(*at_ms) } else { None }).expect("the beep");
    assert!(beep.abs_diff(5770) <= 100, "beep at {beep} ms");
    let order: Vec<usize> = [0, 1, 2].iter().map(|&i| ev.iter().position(|e| match i {
        0 => matches!(e, MediaEvent::Amd(_)),
        1 => matches!(e, MediaEvent::Beep { .. }),
        _ => matches!(e, MediaEvent::GreetingEnded),
    }).unwrap()).collect();
    assert!(order[0] < order[1] && order[1] < order[2], "decision, beep, end of greeting: {ev:?}");
}

#[tokio::test]
async fn dtmf_from_the_phone_is_reported_when_not_bridged() {
    let e = engine(Duration::from_secs(60));
    let (mut leg, mut phone) = leg_with_phone(&e, Codec::Pcma).await;
    let port = leg.local_port();
    phone.send(port, 8, true, 1000, &[0xD5; 160]).await;
    for p in dtmf::generate('7', Duration::from_millis(100), 10, 8000).unwrap() {
        phone.send(port, 101, p.marker, 1160, &p.payload).await;
    }
    let ev = until(&mut leg, |e| matches!(e, MediaEvent::Dtmf { .. })).await;
    assert_eq!(ev.last(), Some(&MediaEvent::Dtmf { digit: '7', duration_ms: 100 }));
}

#[tokio::test]
async fn bridged_legs_relay_both_ways_transcoding_and_passing_digits() {
    let e = engine(Duration::from_secs(60));
    let (mut a, mut pa) = leg_with_phone(&e, Codec::Pcmu).await;
    let (mut b, mut pb) = leg_with_phone(&e, Codec::Pcma).await;
    // A prompt playing on A stops when bridged.
    a.play(Arc::new(tone(&[440.0], 1000, 0, 10_000)), true);
    pa.recv().await.expect("prompt before the bridge");
    a.bridge(&mut b).unwrap();
    assert!(matches!(a.bridge(&mut b), Err(redial::media::call::MediaCallError::AlreadyBridged { .. })));
    let (ap, bp) = (a.local_port(), b.local_port());

    // Until the bridge is in place on the task, a packet may be dropped: probe first.
    let level = g711::ulaw_encode(3000);
    let mut ts = 5000u32;
    let first = loop {
        pa.send(ap, 0, false, ts, &[level; 160]).await;
        ts += 160;
        match timeout(Duration::from_millis(100), pb.recv()).await {
            Ok(Some(p)) if p.payload_type == 8 => break p,
            _ => assert!(ts < 5000 + 160 * 50, "bridge never relayed"),
        }
    };
    // Drain what the prompt left in flight on phone A, and the probes' stragglers on B
    // (the first probe is held by RTP probation and relayed with the second).
    while timeout(Duration::from_millis(100), pa.recv()).await.is_ok_and(|p| p.is_some()) {}
    let mut last_seq = first.sequence;
    while let Ok(Some(p)) = timeout(Duration::from_millis(100), pb.recv()).await {
        last_seq = p.sequence;
    }

    // 50 packets A -> B: PCMU in, PCMA out, B's own SSRC and sequence.
    for k in 0..50u32 {
        pa.send(ap, 0, false, ts + 160 * k, &[level; 160]).await;
    }
    let want = g711::alaw_encode(g711::ulaw_decode(level));
    let mut got = vec![];
    for _ in 0..50 {
        got.push(pb.recv().await.expect("relayed to B"));
    }
    assert!(got.iter().all(|p| p.ssrc == first.ssrc && p.ssrc != pa.ssrc && p.payload_type == 8));
    for (k, p) in got.iter().enumerate() {
        assert_eq!(p.sequence, last_seq.wrapping_add(1 + k as u16));
        assert_eq!(p.timestamp.wrapping_sub(got[0].timestamp), 160 * k as u32);
        assert!(p.payload.iter().all(|&c| c == want), "PCMU -> PCMA");
    }

    // 50 packets B -> A: PCMA in, PCMU out.
    let alevel = g711::alaw_encode(-2000);
    pb.ssrc = 0xBBBB_0001;
    for k in 0..50u32 {
        pb.send(bp, 8, k == 0, 77_000 + 160 * k, &[alevel; 160]).await;
    }
    let want = g711::ulaw_encode(g711::alaw_decode(alevel));
    let mut back = vec![];
    while back.len() < 50 {
        let p = pa.recv().await.expect("relayed to A");
        back.push(p);
    }
    assert!(back.iter().all(|p| p.payload_type == 0 && p.ssrc != pb.ssrc && p.payload.iter().all(|&c| c == want)), "PCMA -> PCMU");
    assert!(back.windows(2).all(|w| w[1].sequence == w[0].sequence.wrapping_add(1)));

    // A telephone-event from A arrives at B as telephone-event (not as audio).
    let digit = dtmf::generate('5', Duration::from_millis(60), 10, 8000).unwrap();
    for p in &digit {
        pa.send(ap, 101, p.marker, ts + 160 * 60, &p.payload).await;
    }
    let mut events = vec![];
    while events.len() < digit.len() {
        let p = pb.recv().await.expect("event relayed");
        assert_eq!(p.payload_type, 101, "{p:?} after {events:?}");
        events.push(dtmf::TelephoneEvent::parse(&p.payload).unwrap());
    }
    assert!(events.iter().all(|ev| ev.event == 5));
    assert_eq!(events.iter().filter(|ev| ev.end).count(), 3);
    assert!(events.windows(2).all(|w| w[0].duration <= w[1].duration));

    // Counters: what A received went to B and the other way round.
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.rtp_in > 50 + digit.len() as u64 && sb.rtp_in == 50, "{sa:?} {sb:?}");
    assert_eq!(sb.relayed, sa.rtp_in, "{sa:?} {sb:?}");
    assert_eq!(sa.relayed, 50, "{sa:?}");
    // While bridged, digits are relayed, not reported; FirstPacket was reported on each leg.
    let ea: Vec<_> = std::iter::from_fn(|| a.events.try_recv().ok()).collect();
    let eb: Vec<_> = std::iter::from_fn(|| b.events.try_recv().ok()).collect();
    assert_eq!(ea, vec![MediaEvent::FirstPacket]);
    assert_eq!(eb, vec![MediaEvent::FirstPacket]);

    // Closing one side: the other keeps its task, ports are released.
    a.close();
    b.close();
    wait_ports(&e, 0).await;
}

#[tokio::test]
async fn silence_from_the_remote_times_out() {
    let e = engine(Duration::from_millis(300));
    let (mut leg, mut phone) = leg_with_phone(&e, Codec::Pcmu).await;
    let port = leg.local_port();
    for k in 0..5u32 {
        phone.send(port, 0, k == 0, 160 * k, &[0xFF; 160]).await;
    }
    assert_eq!(next(&mut leg).await, MediaEvent::FirstPacket);
    let t0 = tokio::time::Instant::now();
    assert_eq!(next(&mut leg).await, MediaEvent::Timeout);
    assert!(t0.elapsed() >= Duration::from_millis(250), "{:?}", t0.elapsed());
    // Only once, until media flows again.
    assert!(timeout(Duration::from_millis(500), leg.events.recv()).await.is_err());
    for k in 5..8u32 {
        phone.send(port, 0, false, 160 * k, &[0xFF; 160]).await;
    }
    assert_eq!(next(&mut leg).await, MediaEvent::Timeout, "watched again after media resumed");
}

async fn wait_ports(e: &MediaEngine, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if e.ports_in_use() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} ports in use, expected {n}", e.ports_in_use());
}

#[tokio::test]
async fn ports_are_released_on_close_and_drop() {
    let e = engine(Duration::from_secs(60));
    let a = e.open().await.unwrap();
    let b = e.open().await.unwrap();
    let mut c = e.open().await.unwrap();
    assert_eq!(e.ports_in_use(), 3);
    assert_ne!(a.local_port(), b.local_port());
    assert!(a.local_port() % 2 == 0 && b.local_port() % 2 == 0);
    a.close();
    wait_ports(&e, 2).await;
    drop(b);
    wait_ports(&e, 1).await;
    // Closing an unbridged leg ends its event stream.
    let events = std::mem::replace(&mut c.events, tokio::sync::mpsc::unbounded_channel().1);
    c.close();
    wait_ports(&e, 0).await;
    let mut events = events;
    assert!(timeout(WAIT, events.recv()).await.unwrap().is_none());
    // Bridging requires negotiated media.
    let mut x = e.open().await.unwrap();
    let mut y = e.open().await.unwrap();
    assert!(matches!(x.bridge(&mut y), Err(redial::media::call::MediaCallError::NotNegotiated { .. })));
    assert!(matches!(x.accept_answer("v=0"), Err(redial::media::call::MediaCallError::NoOffer { .. })));
}

#[tokio::test]
async fn a_reoffer_moves_the_stream_and_hold_stops_sending() {
    let e = engine(Duration::from_secs(60));
    let (mut leg, old) = leg_with_phone(&e, Codec::Pcmu).await;
    let moved = Phone::new().await;
    // The phone re-INVITEs from another port, offering PCMA first: the current codec is kept.
    let reoffer = moved.sdp(Codec::Pcmu).replace("RTP/AVP 0 101", "RTP/AVP 8 0 101").replace("a=rtpmap:0", "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0");
    let answer = leg.answer_reoffer(&reoffer).unwrap();
    assert!(answer.contains(&format!("m=audio {} RTP/AVP 0 101", leg.local_port())), "{answer}");
    assert_eq!(leg.negotiated().unwrap().remote_rtp, Some(moved.addr()));
    leg.play(Arc::new(tone(&[440.0], 100, 0, 100)), false);
    for _ in 0..5 {
        let p = moved.recv().await.expect("prompt at the new address");
        assert_eq!(p.payload_type, 0);
    }
    assert_eq!(next(&mut leg).await, MediaEvent::PlayDone);
    assert!(timeout(Duration::from_millis(100), old.recv()).await.is_err(), "nothing to the old address");

    // Hold: the phone offers sendonly, we answer recvonly and stop sending.
    let hold = moved.sdp(Codec::Pcmu).replace("a=sendrecv", "a=sendonly");
    leg.reoffer(&hold).unwrap();
    assert!(leg.negotiated().unwrap().on_hold());
    leg.play(Arc::new(tone(&[440.0], 100, 0, 100)), false);
    assert_eq!(next(&mut leg).await, MediaEvent::PlayDone, "the prompt runs its course");
    assert!(timeout(Duration::from_millis(100), moved.recv()).await.is_err(), "but nothing is sent while held");
    // Resume.
    leg.reoffer(&moved.sdp(Codec::Pcmu)).unwrap();
    leg.play(Arc::new(tone(&[440.0], 100, 0, 100)), false);
    assert!(moved.recv().await.is_some(), "sending again after the hold");
}

#[tokio::test]
async fn a_bridge_to_an_opus_leg_transcodes_on_the_48k_clock() {
    let e = engine(Duration::from_secs(60));
    let (mut a, mut pa) = leg_with_phone(&e, Codec::Pcmu).await;
    let mut b = e.open().await.unwrap();
    let pb = Phone::new().await;
    b.offer(&[Codec::Opus, Codec::Pcmu]);
    let opus = pb
        .sdp(Codec::Pcmu)
        .replace("RTP/AVP 0 101", "RTP/AVP 111 101")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1");
    assert_eq!(b.accept_answer(&opus).unwrap().codec, Codec::Opus);
    a.bridge(&mut b).unwrap();
    let ap = a.local_port();
    let speech: Vec<u8> = (0..160).map(|i| g711::ulaw_encode(((i % 40) as i16 - 20) * 400)).collect();
    let mut got = vec![];
    for k in 0..200u32 {
        pa.send(ap, 0, k == 0, 160 * k, &speech).await;
        if let Ok(Some(p)) = timeout(Duration::from_millis(20), pb.recv()).await {
            got.push(p);
        }
        if got.len() >= 20 {
            break;
        }
    }
    assert!(got.len() >= 20, "only {} Opus packets", got.len());
    assert!(got.iter().all(|p| p.payload_type == 111 && !p.payload.is_empty()), "{:?}", got.iter().map(|p| (p.payload_type, p.payload.len(), p.timestamp)).collect::<Vec<_>>());
    assert!(got.windows(2).all(|w| w[1].timestamp.wrapping_sub(w[0].timestamp) == 960), "20 ms on the 48 kHz clock");
    let mut dec = redial::media::transcode::FrameDecoder::new(Codec::Opus).unwrap();
    let mut pcm = vec![];
    for p in &got {
        dec.decode(Some(&p.payload), &mut pcm).unwrap();
    }
    assert_eq!(pcm.len(), got.len() * 160, "decodes to 20 ms frames of 8 kHz");
}

#[tokio::test]
async fn amd_on_a_line_that_sends_nothing_decides_after_total_analysis_time() {
    let amd = AmdConfig { total_analysis_ms: 600, ..AmdConfig::default() };
    let e = engine_with(Duration::from_secs(60), amd);
    let (mut leg, _phone) = leg_with_phone(&e, Codec::Pcmu).await;
    let t0 = tokio::time::Instant::now();
    leg.start_amd();
    match next(&mut leg).await {
        MediaEvent::Amd(d) => assert_eq!(d.result, AmdResult::Unknown, "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() >= Duration::from_millis(550), "{:?}", t0.elapsed());
    assert!(timeout(Duration::from_millis(800), leg.events.recv()).await.is_err(), "decided once");
}

/// Sends audio from `from` until `to` receives a packet with payload type `pt`.
async fn relayed(from: &mut Phone, port: u16, to: &Phone, pt: u8, ts: &mut u32) -> RtpPacket {
    let level = g711::ulaw_encode(3000);
    let start = *ts;
    loop {
        from.send(port, 0, false, *ts, &[level; 160]).await;
        *ts += 160;
        match timeout(Duration::from_millis(100), to.recv()).await {
            Ok(Some(p)) if p.payload_type == pt => return p,
            _ => assert!(*ts < start + 160 * 50, "nothing relayed"),
        }
    }
}

#[tokio::test]
async fn after_its_partner_closes_a_leg_plays_prompts_and_bridges_to_another() {
    // The inbound call whose first agent's media never came up: the agent's leg is
    // closed, the caller hears hold music, then is bridged to the next agent.
    let e = engine(Duration::from_secs(60));
    let (mut caller, mut pc) = leg_with_phone(&e, Codec::Pcmu).await;
    let (mut first, pf) = leg_with_phone(&e, Codec::Pcmu).await;
    caller.bridge(&mut first).unwrap();
    let mut ts = 1000;
    relayed(&mut pc, caller.local_port(), &pf, 0, &mut ts).await;
    first.close();
    caller.partner_closed();

    caller.play(Arc::new(tone(&[440.0], 100, 0, 100)), false);
    // What the bridge left in flight may come first; the prompt follows.
    until(&mut caller, |e| *e == MediaEvent::PlayDone).await;

    let (mut second, mut ps) = leg_with_phone(&e, Codec::Pcma).await;
    caller.bridge(&mut second).expect("a new bridge, not AlreadyBridged");
    relayed(&mut pc, caller.local_port(), &ps, 8, &mut ts).await;
    // And back: the second agent's PCMA reaches the caller as PCMU.
    let (sp, alevel) = (second.local_port(), g711::alaw_encode(-2000));
    let got = loop {
        ps.send(sp, 8, false, ts, &[alevel; 160]).await;
        ts += 160;
        if let Ok(Some(p)) = timeout(Duration::from_millis(100), pc.recv()).await {
            if p.payload.iter().all(|&c| c == g711::ulaw_encode(g711::alaw_decode(alevel))) {
                break p;
            }
        }
        assert!(ts < 1000 + 160 * 200, "the second agent never reached the caller");
    };
    assert_eq!(got.payload_type, 0);
    caller.close();
    second.close();
    wait_ports(&e, 0).await;
}

#[tokio::test]
async fn while_the_agent_holds_the_customer_hears_its_hold_music_in_its_codec_then_the_agent_again() {
    let e = engine(Duration::from_secs(60));
    // The customer's carrier leg speaks PCMA, the agent's softphone PCMU.
    let (mut customer, pc) = leg_with_phone(&e, Codec::Pcma).await;
    let (mut agent, mut pa) = leg_with_phone(&e, Codec::Pcmu).await;
    let music = Arc::new(tone(&[400.0], 1000, 0, 1000));
    customer.set_hold_music(Some(music.clone()));
    customer.bridge(&mut agent).unwrap();
    let music_frames: Vec<Vec<u8>> = music.samples().chunks(160).map(|f| f.iter().map(|&s| g711::alaw_encode(s)).collect()).collect();
    let voice = g711::ulaw_encode(3000);
    let is_voice = |p: &RtpPacket| p.payload_type == 8 && p.payload.iter().all(|&c| c == g711::alaw_encode(g711::ulaw_decode(voice)));
    let is_music = |p: &RtpPacket| p.payload_type == 8 && music_frames.iter().any(|m| m[..] == p.payload[..]);

    // The agent talks throughout, one packet per 20 ms; what the customer hears is
    // collected until `enough` says so (bounded: 500 packets).
    let ap = agent.local_port();
    let mut ts = 0u32;
    let mut talk = async |pa: &mut Phone, heard: &mut Vec<RtpPacket>, enough: &dyn Fn(&[RtpPacket]) -> bool| {
        for _ in 0..500 {
            pa.send(ap, 0, ts == 0, ts, &[voice; 160]).await;
            ts += 160;
            while let Ok(Some(p)) = timeout(Duration::from_millis(20), pc.recv()).await {
                heard.push(p);
            }
            if enough(heard) {
                return;
            }
        }
        panic!("the customer heard {} packets, not enough", heard.len());
    };
    let mut heard = vec![];
    talk(&mut pa, &mut heard, &|h| h.iter().any(is_voice)).await;

    // Hold: the agent's phone offers sendonly.
    agent.reoffer(&pa.sdp(Codec::Pcmu).replace("a=sendrecv", "a=sendonly")).unwrap();
    talk(&mut pa, &mut heard, &|h| h.iter().filter(|p| is_music(p)).count() >= 25).await;
    let start = heard.iter().position(is_music).unwrap();
    assert!(heard[..start].iter().all(is_voice), "the agent's audio until the music");
    let (before, first) = (heard[start - 1].clone(), heard[start].clone());
    assert!(first.marker, "the music starts a talkspurt");
    assert_eq!((first.ssrc, first.sequence), (before.ssrc, before.sequence.wrapping_add(1)), "on the customer's one stream");
    assert!((160..80_000).contains(&first.timestamp.wrapping_sub(before.timestamp)), "the timeline moves on");

    // Resume: the agent's audio at once, after the music.
    agent.reoffer(&pa.sdp(Codec::Pcmu)).unwrap();
    let from = heard.len();
    talk(&mut pa, &mut heard, &|h| h[from..].iter().any(is_voice)).await;
    let back = start + heard[start..].iter().position(is_voice).unwrap();
    for (k, p) in heard[start..back].iter().enumerate() {
        assert_eq!(p.payload[..], music_frames[k % music_frames.len()][..], "music frame {k}, looped");
        assert_eq!((p.sequence, p.timestamp), (first.sequence.wrapping_add(k as u16), first.timestamp.wrapping_add(160 * k as u32)));
        assert_eq!(p.marker, k == 0);
    }
    let (last, resumed) = (&heard[back - 1], &heard[back]);
    assert!(resumed.marker, "the agent's audio starts a talkspurt");
    assert_eq!((resumed.ssrc, resumed.sequence), (last.ssrc, last.sequence.wrapping_add(1)));
    assert!((160..80_000).contains(&resumed.timestamp.wrapping_sub(last.timestamp)), "after the music");
    customer.close();
    agent.close();
    wait_ports(&e, 0).await;
}

/// Legs opened on the engine's own runtime keep relaying while the runtime
/// that opened them does not run at all (the worst a signalling backlog can
/// do): `redial serve` keeps media on its own threads for this.
#[test]
fn legs_on_the_media_runtime_relay_while_the_opening_runtime_is_stalled() {
    let media_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let e = engine(Duration::from_secs(60)).on_runtime(media_rt.handle().clone());
    let (a, b, mut pa, pb, mut ts) = rt.block_on(async {
        let (mut a, mut pa) = leg_with_phone(&e, Codec::Pcmu).await;
        let (mut b, pb) = leg_with_phone(&e, Codec::Pcmu).await;
        a.bridge(&mut b).unwrap();
        let mut ts = 0;
        relayed(&mut pa, a.local_port(), &pb, 0, &mut ts).await;
        (a, b, pa, pb, ts)
    });
    // From here on `rt` is never driven: plain blocking sockets play the phones.
    let (from, to) = (pa.sock.into_std().unwrap(), pb.sock.into_std().unwrap());
    from.set_nonblocking(false).unwrap();
    to.set_nonblocking(false).unwrap();
    to.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 2048];
    while to.recv_from(&mut buf).is_ok() {}
    to.set_read_timeout(Some(WAIT)).unwrap();
    let level = g711::ulaw_encode(3000);
    for _ in 0..20 {
        ts += 160;
        let p = RtpPacket { payload_type: 0, marker: false, sequence: pa.seq, timestamp: ts, ssrc: pa.ssrc, payload: vec![level; 160].into() };
        pa.seq = pa.seq.wrapping_add(1);
        from.send_to(&p.to_bytes().unwrap(), (LO, a.local_port())).unwrap();
    }
    let mut k = 0;
    while k < 20 {
        let (n, _) = to.recv_from(&mut buf).unwrap_or_else(|e| panic!("packet {k} of 20 not relayed: {e}"));
        if !is_rtcp(&buf[..n]) {
            assert_eq!(RtpPacket::parse(&buf[..n]).unwrap().payload_type, 0);
            k += 1;
        }
    }
    drop((a, b));
}
