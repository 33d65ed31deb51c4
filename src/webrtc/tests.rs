//! Two peers in virtual time: the leg (ICE-lite, offerer) against a str0m peer playing
//! the browser (full ICE, controlling; codecs in Chrome's order, Opus first). Datagrams
//! are carried in memory; the clock only moves to the next timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::*;

fn leg_addr() -> SocketAddr {
    "10.0.0.1:20000".parse().unwrap()
}
fn browser_addr() -> SocketAddr {
    "10.0.0.2:50000".parse().unwrap()
}

/// The browser side, driven by hand.
struct Browser {
    rtc: Rtc,
    out: Vec<(SocketAddr, Vec<u8>)>,
    audio: Vec<(Codec, Vec<u8>)>,
    connected: bool,
    timeout: Instant,
    error: Option<String>,
    mid: Option<Mid>,
}

impl Browser {
    fn new(now: Instant) -> Self {
        Self::with_g711(now, true)
    }

    /// A browser with Opus only when `g711` is false.
    fn with_g711(now: Instant, g711: bool) -> Self {
        let mut config = Rtc::builder().clear_codecs().enable_opus(true, false).enable_pcmu(g711, false).enable_pcma(g711, false);
        // Chrome's telephone-event/8000 payload type.
        config.codec_config().add_config(126.into(), None, Codec::Tele, str0m::media::Frequency::EIGHT_KHZ, None, Default::default());
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(browser_addr(), "udp").unwrap());
        Self { rtc, out: vec![], audio: vec![], connected: false, timeout: now, error: None, mid: None }
    }

    fn answer(&mut self, offer: &str) -> String {
        let offer = SdpOffer::from_sdp_string(offer).unwrap();
        let answer = self.rtc.sdp_api().accept_offer(offer).unwrap();
        self.drain();
        answer.to_sdp_string()
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => self.out.push((t.destination, t.contents.to_vec())),
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::MediaAdded(m))) => self.mid = Some(m.mid),
                Ok(Output::Event(Event::MediaData(d))) => self.audio.push((d.params.spec().codec, d.data.to_vec())),
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            }
        }
    }

    fn input(&mut self, i: Input<'_>) {
        if self.error.is_some() {
            return;
        }
        match self.rtc.handle_input(i) {
            Ok(()) => self.drain(),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn send(&mut self, now: Instant, codec: Codec, payload: &[u8], rtp_time: u64) {
        let mid: Mid = self.mid.unwrap();
        let w = self.rtc.writer(mid).unwrap();
        let pt = w.payload_params().find(|p| p.spec().codec == codec).unwrap().pt();
        let freq = if codec == Codec::Opus { str0m::media::Frequency::FORTY_EIGHT_KHZ } else { str0m::media::Frequency::EIGHT_KHZ };
        w.write(pt, now, MediaTime::new(rtp_time, freq), payload.to_vec()).unwrap();
        self.drain();
    }
}

/// Moves packets both ways and time forward to the earlier timeout, `steps` times or
/// until `done` holds.
fn run(now: &mut Instant, leg: &mut WebRtcLeg, b: &mut Browser, steps: usize, mut done: impl FnMut(&mut WebRtcLeg, &Browser) -> bool) -> bool {
    for _ in 0..steps {
        if done(leg, b) {
            return true;
        }
        let mut moved = false;
        while let Some(d) = leg.poll_transmit() {
            assert_eq!(d.to, browser_addr(), "the leg only ever talks to the browser's candidate");
            let i = Input::Receive(*now, Receive { proto: Protocol::Udp, source: leg_addr(), destination: browser_addr(), contents: d.bytes.as_slice().try_into().unwrap() });
            b.input(i);
            moved = true;
        }
        for (to, bytes) in std::mem::take(&mut b.out) {
            assert_eq!(to, leg_addr());
            leg.handle_receive(*now, browser_addr(), &bytes);
            moved = true;
        }
        if !moved {
            let next = [leg.poll_timeout(), Some(b.timeout)].into_iter().flatten().min().unwrap();
            *now = next.max(*now);
            leg.handle_timeout(*now);
            b.input(Input::Timeout(*now));
        }
    }
    done(leg, b)
}

fn events(leg: &mut WebRtcLeg) -> Vec<LegEvent> {
    std::iter::from_fn(|| leg.poll_event()).collect()
}

#[test]
fn offer_is_ice_lite_dtls_srtp_rtcp_mux_audio_with_g711_first() {
    let (_, sdp) = WebRtcLeg::offer(Instant::now(), leg_addr()).unwrap();
    for needle in ["a=ice-lite", "UDP/TLS/RTP/SAVPF", "a=setup:actpass", "a=rtcp-mux", "a=fingerprint:sha-256 ", "a=candidate:", "10.0.0.1 20000 typ host", "PCMU/8000", "PCMA/8000"] {
        assert!(sdp.contains(needle), "offer lacks `{needle}`:\n{sdp}");
    }
    let m: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(m.len(), 1, "audio only: {m:?}");
    assert!(m[0].starts_with("m=audio "), "{m:?}");
    // PCMU (0) then PCMA (8), so a browser picks G.711 and nothing is transcoded; Opus
    // last for a browser without G.711; RFC 4733 events at 8 kHz.
    assert!(m[0].ends_with("UDP/TLS/RTP/SAVPF 0 8 111 101"), "{}", m[0]);
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:101 telephone-event/8000"), "{sdp}");
}

#[test]
fn browser_connects_and_g711_flows_both_ways_without_transcoding() {
    let t0 = Instant::now();
    let mut now = t0;
    let (mut leg, offer) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    let mut b = Browser::new(now);
    let answer = b.answer(&offer);
    // RFC 5763 §5: the answerer to `actpass` picks a role (Chrome: active; str0m: passive);
    // the leg takes the other.
    assert!(answer.contains("a=setup:active") || answer.contains("a=setup:passive"), "no DTLS role chosen:\n{answer}");
    leg.accept_answer(&answer).unwrap();
    assert_eq!(leg.codec(), Some(AudioCodec::Pcmu), "PCMU, offered first, is kept");

    assert!(run(&mut now, &mut leg, &mut b, 500, |l, b| l.is_connected() && b.connected), "no connection");
    assert!(now - t0 < Duration::from_secs(5), "ICE + DTLS took {:?} of virtual time", now - t0);
    assert_eq!(events(&mut leg), vec![LegEvent::Connected]);

    // 20 ms G.711 frames each way for one second of virtual time.
    let frame = |i: u64| (0..160).map(|k| ((i * 7 + k) % 251) as u8).collect::<Vec<u8>>();
    for i in 0..50u64 {
        now += Duration::from_millis(20);
        leg.send_audio(now, AudioCodec::Pcmu, &frame(i), i * 160).unwrap();
        b.send(now, Codec::PCMU, &frame(i + 1000), i * 160);
        run(&mut now, &mut leg, &mut b, 20, |_, _| false);
    }
    run(&mut now, &mut leg, &mut b, 50, |_, _| false);
    let got: Vec<(AudioCodec, Vec<u8>)> = events(&mut leg)
        .into_iter()
        .filter_map(|e| match e {
            LegEvent::Audio { codec, payload, .. } => Some((codec, payload)),
            _ => None,
        })
        .collect();
    assert!(got.len() >= 45, "leg got {} frames", got.len());
    assert!(got.iter().all(|(law, p)| *law == AudioCodec::Pcmu && p.len() == 160));
    assert_eq!(got[0].1, frame(1000), "payloads arrive unchanged (SRTP decrypted, no transcoding)");
    assert!(b.audio.len() >= 45, "browser got {} frames", b.audio.len());
    assert!(b.audio.iter().all(|(c, p)| *c == Codec::PCMU && p.len() == 160));
    assert_eq!(b.audio[0].1, frame(0));
    assert!(b.error.is_none(), "{:?}", b.error);
}

#[test]
fn wrong_fingerprint_fails_the_leg() {
    let mut now = Instant::now();
    let (mut leg, offer) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    let mut b = Browser::new(now);
    let answer = b.answer(&offer);
    // Another certificate's fingerprint in the answer: the DTLS peer is not who the SDP says.
    let tampered: String = answer
        .lines()
        .map(|l| if let Some(fp) = l.strip_prefix("a=fingerprint:sha-256 ") {
            let flipped = match fp.strip_prefix("00") {
                Some(rest) => format!("11{rest}"),
                None => format!("00{}", &fp[2..]),
            };
            format!("a=fingerprint:sha-256 {flipped}\r\n")
        } else {
            format!("{l}\r\n")
        })
        .collect();
    assert_ne!(tampered.replace("\r\n", "\n").trim_end(), answer.replace("\r\n", "\n").trim_end());
    leg.accept_answer(&tampered).unwrap();
    let failed = run(&mut now, &mut leg, &mut b, 500, |l, _| l.poll_timeout().is_none());
    assert!(failed, "the leg did not fail");
    let ev = events(&mut leg);
    assert!(!ev.contains(&LegEvent::Connected), "{ev:?}");
    assert!(matches!(ev.last(), Some(LegEvent::Failed { .. })), "{ev:?}");
    assert!(matches!(ev.last(), Some(LegEvent::Failed { reason }) if reason.contains("fingerprint")), "{ev:?}");
    assert!(matches!(leg.send_audio(now, AudioCodec::Pcmu, &[0; 160], 0), Err(WebRtcError::NotConnected)));
}

#[test]
fn answer_without_a_codec_we_offered_is_refused() {
    let now = Instant::now();
    let (mut leg, offer) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    let mut b = Browser::new(now);
    let answer = b.answer(&offer);
    // A browser answering with G.722 only (a codec we did not offer, so nothing to send).
    let ours = ["a=rtpmap:0 ", "a=rtpmap:8 ", "a=rtpmap:111 ", "a=fmtp:111 ", "a=rtcp-fb:111 "];
    let no_g711: String = answer
        .lines()
        .filter(|l| !ours.iter().any(|p| l.starts_with(p)))
        .map(|l| {
            if l.starts_with("m=audio ") {
                // `m=audio <port> <proto>` and G.722 as its only format.
                format!("{} 9\r\n", l.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
            } else {
                format!("{l}\r\n")
            }
        })
        .collect::<String>()
        + "a=rtpmap:9 G722/8000\r\n";
    let e = leg.accept_answer(&no_g711).unwrap_err();
    assert!(matches!(e, WebRtcError::NoAudioCodec), "{e:?}");
    assert!(matches!(leg.accept_answer(&answer), Err(WebRtcError::NoPendingOffer)));
}

#[test]
fn garbage_sdp_is_a_clear_error() {
    let now = Instant::now();
    let (mut leg, _) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    assert!(matches!(leg.accept_answer("not sdp"), Err(WebRtcError::BadSdp(_))));
    assert!(matches!(WebRtcLeg::answer(now, leg_addr(), "v=0\r\nnonsense"), Err(WebRtcError::BadSdp(_))));
}

#[test]
fn the_browsers_keypad_arrives_as_rfc4733_reports() {
    let mut now = Instant::now();
    let (mut leg, offer) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    let mut b = Browser::new(now);
    let answer = b.answer(&offer);
    leg.accept_answer(&answer).unwrap();
    assert_eq!(leg.agreed(), Some(Agreed { codec: AudioCodec::Pcmu, pt: 0, telephone_event: Some(TELEPHONE_EVENT_PT) }), "the offer's numbers are kept:\n{answer}");
    assert!(run(&mut now, &mut leg, &mut b, 500, |l, b| l.is_connected() && b.connected), "no connection");
    events(&mut leg);

    // Key 5 held for 100 ms, as Chrome's RTCDTMFSender sends it: reports at the event's
    // start timestamp, the last one with the end bit.
    now += Duration::from_millis(20);
    let mid = b.mid.unwrap();
    let w = b.rtc.writer(mid).unwrap();
    let pt = w.payload_params().find(|p| p.spec().codec == Codec::PCMU).unwrap().pt();
    let ev = str0m::media::TelephoneEvent { event: 5, end: true, volume: 10, duration: Duration::from_millis(100) };
    w.telephone_event(ev).write(pt, now, MediaTime::new(1600, str0m::media::Frequency::EIGHT_KHZ), Vec::<u8>::new()).unwrap();
    b.drain();
    run(&mut now, &mut leg, &mut b, 200, |_, _| false);
    let reports: Vec<([u8; 4], u64)> = events(&mut leg)
        .into_iter()
        .filter_map(|e| match e {
            LegEvent::Telephone { payload, rtp_time } => Some((payload, rtp_time)),
            _ => None,
        })
        .collect();
    assert!(!reports.is_empty(), "no telephone-event reached the leg");
    assert!(reports.iter().all(|(p, t)| p[0] == 5 && *t == reports[0].1), "{reports:?}");
    let last = reports.last().unwrap().0;
    assert!(last[1] & 0x80 != 0, "the end report arrives: {reports:?}");
    assert_eq!(u16::from_be_bytes([last[2], last[3]]), 800, "100 ms at 8 kHz");
}

#[test]
fn rfc4733_reports_sent_by_the_leg_reach_the_browser_as_telephone_events() {
    let mut now = Instant::now();
    let (mut leg, offer) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    let mut b = Browser::new(now);
    leg.accept_answer(&b.answer(&offer)).unwrap();
    assert!(run(&mut now, &mut leg, &mut b, 500, |l, b| l.is_connected() && b.connected), "no connection");
    // Key 9 from the carrier, relayed report by report as it arrives: every 20 ms a
    // report with the event's start timestamp and a growing duration, the last with
    // the end bit; audio before and after.
    leg.send_audio(now, AudioCodec::Pcmu, &[0x55; 160], 8000).unwrap();
    for k in 1..=5u16 {
        now += Duration::from_millis(20);
        let end = if k == 5 { 0x80 } else { 0 };
        let d = (160 * k).to_be_bytes();
        leg.send_telephone(now, &[9, end | 10, d[0], d[1]], 8160).unwrap();
        run(&mut now, &mut leg, &mut b, 20, |_, _| false);
    }
    now += Duration::from_millis(20);
    leg.send_audio(now, AudioCodec::Pcmu, &[0x55; 160], 9000).unwrap();
    run(&mut now, &mut leg, &mut b, 50, |_, _| false);
    let tele: Vec<&Vec<u8>> = b.audio.iter().filter(|(c, _)| *c == Codec::Tele).map(|(_, p)| p).collect();
    assert!(!tele.is_empty(), "no telephone-event reached the browser: {:?}", b.audio.iter().map(|(c, p)| (c, p.len())).collect::<Vec<_>>());
    assert!(tele.iter().all(|p| p.len() % 4 == 0 && p[0] == 9), "{tele:?}");
    let last = tele.last().unwrap();
    let last = &last[last.len() - 4..];
    assert!(last[1] & 0x80 != 0 && u16::from_be_bytes([last[2], last[3]]) == 800, "the end report with 100 ms: {tele:?}");
    assert_eq!(b.audio.iter().filter(|(c, _)| *c == Codec::PCMU).count(), 2, "audio around the event still flows");
}

#[test]
fn a_browser_without_g711_gets_opus_at_48_khz() {
    let mut now = Instant::now();
    let (mut leg, offer) = WebRtcLeg::offer(now, leg_addr()).unwrap();
    let mut b = Browser::with_g711(now, false);
    let answer = b.answer(&offer);
    leg.accept_answer(&answer).unwrap();
    assert_eq!(leg.agreed().map(|a| (a.codec, a.pt)), Some((AudioCodec::Opus, 111)), "{answer}");
    assert!(run(&mut now, &mut leg, &mut b, 500, |l, b| l.is_connected() && b.connected), "no connection");
    events(&mut leg);
    // 20 ms Opus frames (960 ticks at 48 kHz) each way; the payload bytes are opaque here.
    for i in 0..25u64 {
        now += Duration::from_millis(20);
        leg.send_audio(now, AudioCodec::Opus, &[0xF8, 0xFF, 0xFE, i as u8], i * 960).unwrap();
        b.send(now, Codec::Opus, &[0xF8, 0xFF, 0xFE, i as u8], i * 960);
        run(&mut now, &mut leg, &mut b, 20, |_, _| false);
    }
    run(&mut now, &mut leg, &mut b, 50, |_, _| false);
    let got: Vec<(AudioCodec, u64)> = events(&mut leg)
        .into_iter()
        .filter_map(|e| match e {
            LegEvent::Audio { codec, rtp_time, .. } => Some((codec, rtp_time)),
            _ => None,
        })
        .collect();
    assert!(got.len() >= 20, "leg got {} frames", got.len());
    assert!(got.iter().all(|(c, _)| *c == AudioCodec::Opus));
    assert_eq!(got[1].1 - got[0].1, 960, "48 kHz RTP time, 20 ms apart: {got:?}");
    assert!(b.audio.len() >= 20 && b.audio.iter().all(|(c, _)| *c == Codec::Opus), "browser got {:?}", b.audio.len());
}
