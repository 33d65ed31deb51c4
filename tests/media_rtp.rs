//! Loopback: real UDP sockets on 127.0.0.1, the tokio driver and the relay.
//! Phone A (PCMU) -> leg A -> relay (transcoding) -> leg B (PCMA) -> phone B,
//! and back, with symmetric RTP latching on leg A and a DTMF digit.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use rand::{rngs::StdRng, SeedableRng};
use redial::media::dtmf;
use redial::media::g711;
use redial::media::ports::PortAllocator;
use redial::media::relay::{LegMedia, Relay, RelayEvent, Side};
use redial::media::rtp::RtpPacket;
use redial::media::socket::{now, MediaSocket, RtpDriver};
use redial::media::{Codec, RtpEvent, RtpSession, SessionConfig};
use tokio::sync::oneshot;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PACKETS: u64 = 300;

async fn driver(seed: u64) -> RtpDriver {
    let socket = MediaSocket::bind_any(LO).await.unwrap();
    let session = RtpSession::new(SessionConfig::default(), now(), SystemTime::now(), &mut StdRng::seed_from_u64(seed));
    RtpDriver::new(socket, session, StdRng::seed_from_u64(seed + 100))
}

fn frame(n: u64) -> Vec<u8> {
    (0..160).map(|i| g711::ulaw_encode((((n * 160 + i) % 50) as i16 - 25) * 300)).collect()
}

async fn next_packet(d: &mut RtpDriver) -> RtpPacket {
    loop {
        if let RtpEvent::Packet { packet, .. } = d.next_event().await.unwrap() {
            return packet;
        }
    }
}

#[tokio::test]
async fn relay_over_loopback_udp() {
    tokio::time::timeout(Duration::from_secs(5), run()).await.expect("finished within 5 s");
}

async fn run() {
    let mut phone_a = driver(1).await;
    let mut leg_a = driver(2).await;
    let mut leg_b = driver(3).await;
    let mut phone_b = driver(4).await;
    let addr = |d: &RtpDriver| (d.socket().local_rtp().unwrap(), d.socket().local_rtcp().unwrap());

    // Signalling, as SDP would carry it. Leg A is not told phone A's address:
    // it learns it from the media (symmetric RTP).
    let (la, lb, pa, pb) = (addr(&leg_a), addr(&leg_b), addr(&phone_a), addr(&phone_b));
    phone_a.session_mut().set_remote(la.0, Some(la.1));
    leg_b.session_mut().set_remote(pb.0, Some(pb.1));
    phone_b.session_mut().set_remote(lb.0, Some(lb.1));

    let a_media = LegMedia { codec: Codec::Pcmu, pt: 0, telephone_event: Some(101) };
    let b_media = LegMedia { codec: Codec::Pcma, pt: 8, telephone_event: Some(96) };
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();

    // The anchored bridge: one task owning both legs and the relay core.
    let bridge = tokio::spawn(async move {
        let mut relay = Relay::new(a_media, b_media).unwrap();
        let mut digits = vec![];
        loop {
            tokio::select! {
                e = leg_a.next_event() => if let RtpEvent::Packet { packet, .. } = e.unwrap() { relay.handle_packet(Side::A, &packet).unwrap() },
                e = leg_b.next_event() => if let RtpEvent::Packet { packet, .. } = e.unwrap() { relay.handle_packet(Side::B, &packet).unwrap() },
                _ = &mut stop_rx => break,
            }
            while let Some(o) = relay.poll_output() {
                let leg = if o.to == Side::A { &mut leg_a } else { &mut leg_b };
                leg.send(o.payload_type, o.marker, o.position, &o.payload).unwrap();
            }
            digits.extend(std::iter::from_fn(|| relay.poll_event()));
        }
        (digits, leg_a.session().remote_rtp(), leg_b.session().ssrc())
    });

    // Phone B listens.
    let receiver = tokio::spawn(async move {
        let mut audio = vec![];
        let mut events = vec![];
        while audio.len() < PACKETS as usize || events.len() < 7 {
            let p = next_packet(&mut phone_b).await;
            if p.payload_type == 96 { events.push(p) } else { audio.push(p) }
        }
        // Then phone B talks back once it has heard A, paced like a phone
        // (pacing is the point here, not a wait for a condition).
        for n in 0..20u64 {
            let payload: Vec<u8> = vec![g711::alaw_encode(1000); 160];
            phone_b.send(8, n == 0, n * 160, &payload).unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (audio, events, phone_b)
    });

    // Phone A talks: 300 frames (a few ms apart to stay polite to the socket buffers), then a '7'.
    for n in 0..PACKETS {
        phone_a.send(0, n == 0, n * 160, &frame(n)).unwrap();
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    // The key's packets are paced apart, as a phone sends them.
    for p in dtmf::generate('7', Duration::from_millis(100), 10, 8000).unwrap() {
        phone_a.send(101, p.marker, PACKETS * 160, &p.payload).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let back: Vec<RtpPacket> = {
        let mut v = vec![];
        while v.len() < 20 {
            v.push(next_packet(&mut phone_a).await);
        }
        v
    };
    let (audio, events, _phone_b) = receiver.await.unwrap();
    stop_tx.send(()).unwrap();
    let (digits, latched, leg_b_ssrc) = bridge.await.unwrap();

    // A -> B: everything arrived, in order, transcoded, re-stamped with leg B's identity.
    assert_eq!(audio.len(), PACKETS as usize);
    let ts0 = audio[0].timestamp;
    for (n, p) in audio.iter().enumerate() {
        assert_eq!(p.ssrc, leg_b_ssrc);
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.timestamp.wrapping_sub(ts0), 160 * n as u32);
        let want: Vec<u8> = frame(n as u64).iter().map(|&c| g711::alaw_encode(g711::ulaw_decode(c))).collect();
        assert_eq!(&p.payload[..], &want[..]);
    }
    assert!(audio.windows(2).all(|w| w[1].sequence == w[0].sequence.wrapping_add(1)));
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.timestamp == ts0.wrapping_add(PACKETS as u32 * 160)));
    assert!(matches!(&digits[..], [RelayEvent::Digit { from: Side::A, digit }] if digit.digit == Some('7')));

    // B -> A: leg A latched onto phone A's real address and sent there.
    assert_eq!(latched, Some(pa.0));
    assert_eq!(back.len(), 20);
    assert!(back.iter().all(|p| p.payload_type == 0 && p.payload.iter().all(|&c| c == g711::ulaw_encode(g711::alaw_decode(g711::alaw_encode(1000))))));
}

#[tokio::test]
async fn sockets_from_the_allocator_are_even_pairs_and_released() {
    // Find a free region: ask the OS for a port and use the range after it.
    let probe = std::net::UdpSocket::bind((LO, 0)).unwrap();
    let base = probe.local_addr().unwrap().port() & !1;
    drop(probe);
    let start = base.saturating_sub(40).max(1024);
    let ports = PortAllocator::new(start..=start + 39).unwrap();
    let a = MediaSocket::bind(LO, &ports).await.unwrap();
    let b = MediaSocket::bind(LO, &ports).await.unwrap();
    for s in [&a, &b] {
        let (rtp, rtcp) = (s.local_rtp().unwrap().port(), s.local_rtcp().unwrap().port());
        assert_eq!(rtp % 2, 0);
        assert_eq!(rtcp, rtp + 1);
    }
    assert_ne!(a.local_rtp().unwrap(), b.local_rtp().unwrap());
    assert_eq!(ports.in_use(), 2);
    drop(a);
    assert_eq!(ports.in_use(), 1);
    drop(b);
    assert_eq!(ports.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn rtcp_reports_flow_on_the_driver_timer_in_virtual_time() {
    let mut a = driver(10).await;
    let mut b = driver(11).await;
    let (aa, ba) = ((a.socket().local_rtp().unwrap(), a.socket().local_rtcp().unwrap()), (b.socket().local_rtp().unwrap(), b.socket().local_rtcp().unwrap()));
    a.session_mut().set_remote(ba.0, Some(ba.1));
    b.session_mut().set_remote(aa.0, Some(aa.1));
    let start = tokio::time::Instant::now();
    let b_task = tokio::spawn(async move {
        let mut senders = 0;
        let mut at = vec![];
        while at.len() < 6 {
            if let RtpEvent::Report { sender, .. } = b.next_event().await.unwrap() {
                senders += sender.is_some() as usize;
                at.push(tokio::time::Instant::now());
            }
        }
        (senders, at)
    });
    // A sends a little media first so its reports are SRs, then idles on its timer.
    for n in 0..10u64 {
        a.send(0, n == 0, n * 160, &[0xFF; 160]).unwrap();
    }
    let a_task = tokio::spawn(async move {
        loop {
            if a.next_event().await.is_err() {
                break;
            }
        }
    });
    let (senders, at) = b_task.await.unwrap();
    a_task.abort();
    assert!(senders >= 1, "the first report after sending is an SR");
    // Six reports take at least the 2.5 s initial minimum plus five × 5 s × 0.5 / (e − 1.5), in virtual time.
    let c = std::f64::consts::E - 1.5;
    let elapsed = (at[5] - start).as_secs_f64();
    assert!(elapsed >= (1.25 + 5.0 * 2.5) / c, "{elapsed}");
    assert!(elapsed <= (3.75 + 5.0 * 7.5) / c + 1.0, "{elapsed}");
}
