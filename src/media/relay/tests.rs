//! Two phones, two anchored legs and the relay, in virtual time.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::{rngs::StdRng, SeedableRng};

use super::*;
use crate::media::dtmf;
use crate::media::g711;
use crate::media::session::{RtpEvent, RtpSession, SessionConfig};

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}
const PHONE_A: u16 = 4000;
const LEG_A: u16 = 20000;
const LEG_B: u16 = 20002;
const PHONE_B: u16 = 6000;

fn session(seed: u64, rate: u32, t0: Instant, remote: u16) -> RtpSession {
    let mut s = RtpSession::new(SessionConfig { clock_rate: rate, ..Default::default() }, t0, SystemTime::UNIX_EPOCH, &mut StdRng::seed_from_u64(seed));
    s.set_remote(addr(remote), None);
    s
}

struct Bridge {
    phone_a: RtpSession,
    leg_a: RtpSession,
    leg_b: RtpSession,
    phone_b: RtpSession,
    relay: Relay,
    digits: Vec<RelayEvent>,
}

impl Bridge {
    fn new(t0: Instant, a: LegMedia, b: LegMedia) -> Self {
        let (ra, rb) = (a.codec.clock_rate(), b.codec.clock_rate());
        Self {
            phone_a: session(1, ra, t0, LEG_A),
            leg_a: session(2, ra, t0, PHONE_A),
            leg_b: session(3, rb, t0, PHONE_B),
            phone_b: session(4, rb, t0, LEG_B),
            relay: Relay::new(a, b).unwrap(),
            digits: vec![],
        }
    }

    /// Moves everything phone A sent through the bridge; returns what phone B got.
    fn pump_a_to_b(&mut self, now: Instant) -> Vec<RtpPacket> {
        while let Some(t) = self.phone_a.poll_transmit() {
            assert_eq!(t.destination, addr(LEG_A));
            self.leg_a.handle_rtp(now, addr(PHONE_A), &t.payload).unwrap();
        }
        while let Some(e) = self.leg_a.poll_event() {
            if let RtpEvent::Packet { packet, .. } = e {
                self.relay.handle_packet(Side::A, &packet).unwrap();
            }
        }
        while let Some(o) = self.relay.poll_output() {
            assert_eq!(o.to, Side::B);
            self.leg_b.send(now, o.payload_type, o.marker, o.position, &o.payload).unwrap();
        }
        self.digits.extend(std::iter::from_fn(|| self.relay.poll_event()));
        while let Some(t) = self.leg_b.poll_transmit() {
            assert_eq!(t.destination, addr(PHONE_B));
            self.phone_b.handle_rtp(now, addr(LEG_B), &t.payload).unwrap();
        }
        std::iter::from_fn(|| self.phone_b.poll_event())
            .filter_map(|e| match e {
                RtpEvent::Packet { packet, .. } => Some(packet),
                _ => None,
            })
            .collect()
    }
}

const PCMU: LegMedia = LegMedia { codec: Codec::Pcmu, pt: 0, telephone_event: Some(101) };

fn frame(n: u64) -> Vec<u8> {
    (0..160).map(|i| g711::ulaw_encode((((n * 160 + i) % 80) as i16 - 40) * 200)).collect()
}

#[test]
fn restamps_with_own_ssrc_and_survives_a_source_change() {
    let t0 = Instant::now();
    let mut b = Bridge::new(t0, PCMU, PCMU);
    let mut got = vec![];
    let mut sent = vec![];
    for n in 0..200u64 {
        let now = t0 + Duration::from_millis(20 * n);
        if n == 100 {
            // Phone A's media restarts with a new SSRC, sequence and timestamp base (a transfer upstream).
            b.phone_a = session(99, 8000, now, LEG_A);
        }
        let p = frame(n);
        b.phone_a.send(now, 0, n == 0, n * 160, &p).unwrap();
        sent.push(p);
        got.extend(b.pump_a_to_b(now));
    }
    // Probation holds the first packet of each source; nothing is lost.
    assert_eq!(got.len(), 200);
    let base = b.leg_b.timestamp_at(0);
    for (n, p) in got.iter().enumerate() {
        assert_eq!(p.ssrc, b.leg_b.ssrc(), "the relay's own SSRC on leg B");
        assert_ne!(p.ssrc, b.phone_a.ssrc());
        assert_eq!(p.timestamp, base.wrapping_add(160 * n as u32), "continuous timestamps at packet {n}");
        assert_eq!(&p.payload[..], &sent[n][..]);
    }
    assert!(got.windows(2).all(|w| w[1].sequence == w[0].sequence.wrapping_add(1)));
    assert!(got[0].marker);
    assert_eq!(b.relay.stats(Side::A).forwarded, 200);
    assert_eq!(b.relay.stats(Side::A).rebased, 1);
}

#[test]
fn transcodes_and_maps_telephone_events() {
    let t0 = Instant::now();
    let pcma = LegMedia { codec: Codec::Pcma, pt: 8, telephone_event: Some(96) };
    let mut b = Bridge::new(t0, PCMU, pcma);
    let mut got = vec![];
    let mut n = 0u64;
    let send_audio = |b: &mut Bridge, n: u64| {
        let now = t0 + Duration::from_millis(20 * n);
        b.phone_a.send(now, 0, false, n * 160, &frame(n)).unwrap();
        b.pump_a_to_b(now)
    };
    while n < 50 {
        got.extend(send_audio(&mut b, n));
        n += 1;
    }
    // A key press of 100 ms starting at frame 50: 7 event packets, audio pauses.
    let ev_pos = n * 160;
    for pkt in dtmf::generate('5', Duration::from_millis(100), 10, 8000).unwrap() {
        let now = t0 + Duration::from_millis(20 * n) + pkt.offset;
        b.phone_a.send(now, 101, pkt.marker, ev_pos, &pkt.payload).unwrap();
        got.extend(b.pump_a_to_b(now));
    }
    n += 7;
    for _ in 0..10 {
        got.extend(send_audio(&mut b, n));
        n += 1;
    }
    let audio: Vec<_> = got.iter().filter(|p| p.payload_type == 8).collect();
    let events: Vec<_> = got.iter().filter(|p| p.payload_type == 96).collect();
    assert_eq!(audio.len(), 60);
    assert_eq!(events.len(), 7);
    for (k, p) in audio.iter().take(50).enumerate() {
        let want: Vec<u8> = frame(k as u64).iter().map(|&c| g711::alaw_encode(g711::ulaw_decode(c))).collect();
        assert_eq!(&p.payload[..], &want[..], "frame {k} transcoded µ-law -> A-law");
    }
    let base = b.leg_b.timestamp_at(0);
    // All event packets carry the event's start timestamp, mapped onto leg B's clock.
    assert!(events.iter().all(|p| p.timestamp == base.wrapping_add(ev_pos as u32)));
    assert!(events[0].marker);
    let ends = events.iter().filter(|p| dtmf::TelephoneEvent::parse(&p.payload).unwrap().end).count();
    assert_eq!(ends, 3);
    // Audio after the event continues on the same clock.
    assert_eq!(audio[50].timestamp, base.wrapping_add(57 * 160));
    assert_eq!(b.digits.len(), 1, "the digit is reported once");
    let RelayEvent::Digit { from, digit } = b.digits[0];
    assert_eq!((from, digit.digit, digit.duration), (Side::A, Some('5'), 800));
}

#[test]
fn opus_leg_runs_on_the_48k_clock_and_gaps_are_kept() {
    let t0 = Instant::now();
    let opus = LegMedia { codec: Codec::Opus, pt: 111, telephone_event: None };
    let mut b = Bridge::new(t0, PCMU, opus);
    let mut got = vec![];
    for n in 0..60u64 {
        let now = t0 + Duration::from_millis(20 * n);
        if n == 30 {
            continue; // lost on the way in
        }
        b.phone_a.send(now, 0, false, n * 160, &frame(n)).unwrap();
        got.extend(b.pump_a_to_b(now));
    }
    assert_eq!(got.len(), 59);
    let base = b.leg_b.timestamp_at(0);
    let rel: Vec<u32> = got.iter().map(|p| p.timestamp.wrapping_sub(base) / 960).collect();
    let want: Vec<u32> = (0..60).filter(|&n| n != 30).collect();
    assert_eq!(rel, want, "positions in 20 ms steps of 960 ticks, the lost frame leaves a gap");
    assert!(got.iter().all(|p| p.payload_type == 111 && !p.payload.is_empty()));
    assert_eq!(b.relay.stats(Side::A).transcoded, 59);
}

#[test]
fn events_without_telephone_event_on_the_other_leg_become_digits_only() {
    let t0 = Instant::now();
    let mut r = Relay::new(PCMU, LegMedia { telephone_event: None, ..PCMU }).unwrap();
    for pkt in dtmf::generate('#', Duration::from_millis(60), 10, 8000).unwrap() {
        let p = RtpPacket { payload_type: 101, marker: pkt.marker, sequence: 1, timestamp: 500, ssrc: 3, payload: pkt.payload.to_vec().into() };
        r.handle_packet(Side::A, &p).unwrap();
    }
    assert!(r.poll_output().is_none());
    assert!(matches!(r.poll_event(), Some(RelayEvent::Digit { digit, .. }) if digit.digit == Some('#')));
    // Comfort noise and unknown types are dropped.
    let cn = RtpPacket { payload_type: 13, marker: false, sequence: 2, timestamp: 600, ssrc: 3, payload: vec![40].into() };
    r.handle_packet(Side::A, &cn).unwrap();
    assert_eq!(r.stats(Side::A).dropped, 1);
    let _ = t0;
}

#[test]
fn reinvite_codec_change_switches_transcoding() {
    let mut r = Relay::new(PCMU, PCMU).unwrap();
    let p = RtpPacket { payload_type: 0, marker: false, sequence: 1, timestamp: 0, ssrc: 3, payload: vec![0xFF; 160].into() };
    r.handle_packet(Side::A, &p).unwrap();
    assert_eq!(r.poll_output().unwrap().payload, vec![0xFF; 160]);
    r.update_leg(Side::B, LegMedia { codec: Codec::Pcma, pt: 8, telephone_event: None }).unwrap();
    let p2 = RtpPacket { sequence: 2, timestamp: 160, ..p };
    r.handle_packet(Side::A, &p2).unwrap();
    let o = r.poll_output().unwrap();
    assert_eq!((o.payload_type, o.payload[0], o.position), (8, 0xD5, 160));
}

#[test]
fn a_held_leg_pauses_the_bridge_both_ways_and_the_resume_starts_a_talkspurt() {
    let t0 = Instant::now();
    let mut b = Bridge::new(t0, PCMU, PCMU);
    let mut got = vec![];
    for n in 0..150u64 {
        let now = t0 + Duration::from_millis(20 * n);
        match n {
            // Leg B's remote (the agent) offers sendonly at 1 s, sendrecv again at 2 s.
            50 => b.relay.set_held(Side::B, true),
            100 => b.relay.set_held(Side::B, false),
            _ => {}
        }
        b.phone_a.send(now, 0, n == 0, n * 160, &frame(n)).unwrap();
        let arrived = b.pump_a_to_b(now);
        if (50..100).contains(&n) {
            assert!(arrived.is_empty(), "nothing reaches the other side during the hold (frame {n})");
            // Nor is anything sent toward the held leg.
            assert!(b.relay.poll_output().is_none());
        }
        got.extend(arrived);
    }
    // Probation holds the first packet; the 50 held frames are gone, the rest arrive.
    assert_eq!(got.len(), 100);
    assert_eq!(b.relay.stats(Side::A).held, 50);
    assert_eq!(b.relay.stats(Side::A).forwarded, 100);
    let resumed = &got[50];
    assert!(resumed.marker, "the first packet after the resume starts a talkspurt");
    assert!(got[51..].iter().all(|p| !p.marker));
    assert_eq!(resumed.timestamp, got[49].timestamp.wrapping_add(160), "the timeline continues where it paused");
    assert_eq!(&resumed.payload[..], &frame(100)[..]);

    // Either leg held pauses the bridge; a second hold keeps it paused until both resume.
    b.relay.set_held(Side::A, true);
    b.relay.set_held(Side::B, true);
    b.relay.set_held(Side::A, false);
    assert!(b.relay.is_paused());
    b.relay.set_held(Side::B, false);
    assert!(!b.relay.is_paused());
}
