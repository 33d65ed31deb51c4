use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::{rngs::StdRng, SeedableRng};

use super::*;
use crate::media::rtcp::{parse_compound, RtcpPacket};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn session(seed: u64, now: Instant) -> RtpSession {
    RtpSession::new(SessionConfig::default(), now, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000), &mut StdRng::seed_from_u64(seed))
}

fn packet(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    RtpPacket { payload_type: 0, marker: false, sequence: seq, timestamp: ts, ssrc, payload: Bytes::from_static(&[0xFF; 160]) }.to_bytes().unwrap()
}

fn events(s: &mut RtpSession) -> Vec<RtpEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn packets(s: &mut RtpSession) -> Vec<(u64, u16)> {
    events(s)
        .into_iter()
        .filter_map(|e| match e {
            RtpEvent::Packet { ext_seq, packet } => Some((ext_seq, packet.sequence)),
            _ => None,
        })
        .collect()
}

#[test]
fn outgoing_identity_is_random_but_seeded() {
    let t0 = Instant::now();
    let a = session(1, t0);
    let b = session(1, t0);
    let c = session(2, t0);
    assert_eq!(a.ssrc(), b.ssrc());
    assert_ne!(a.ssrc(), c.ssrc());
    assert_ne!(a.timestamp_at(0), c.timestamp_at(0));
}

#[test]
fn send_needs_a_remote_then_stamps_and_wraps() {
    let t0 = Instant::now();
    let mut s = session(3, t0);
    assert_eq!(s.send(t0, 0, true, 0, &[0; 160]), Err(SessionError::NoRemote));
    s.set_remote(addr("127.0.0.1:4000"), None);
    let mut seqs = vec![];
    for n in 0..70_000u64 {
        s.send(t0 + Duration::from_millis(20 * n), 0, n == 0, n * 160, &[0xFF; 160]).unwrap();
        let t = s.poll_transmit().unwrap();
        assert_eq!(t.destination, addr("127.0.0.1:4000"));
        let p = RtpPacket::parse(&t.payload).unwrap();
        assert_eq!(p.ssrc, s.ssrc());
        assert_eq!(p.marker, n == 0);
        assert_eq!(p.timestamp, s.timestamp_at(0).wrapping_add((n * 160) as u32));
        seqs.push(p.sequence);
    }
    // Consecutive, wrapping 65535 -> 0.
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(seqs.windows(2).any(|w| w[0] == 65535 && w[1] == 0));
    assert_eq!(s.stats().sent_packets, 70_000);
}

#[test]
fn probation_holds_the_first_packet_then_delivers_in_order() {
    let t0 = Instant::now();
    let mut s = session(4, t0);
    let peer = addr("127.0.0.1:5000");
    s.set_remote(peer, None);
    s.handle_rtp(t0, peer, &packet(9, 65534, 0)).unwrap();
    assert!(events(&mut s).is_empty());
    s.handle_rtp(t0, peer, &packet(9, 65535, 160)).unwrap();
    assert_eq!(s.poll_event(), Some(RtpEvent::NewSource { ssrc: 9 }));
    let got = packets(&mut s);
    assert_eq!(got.iter().map(|p| p.1).collect::<Vec<_>>(), vec![65534, 65535]);
    s.handle_rtp(t0, peer, &packet(9, 0, 320)).unwrap();
    s.handle_rtp(t0, peer, &packet(9, 1, 480)).unwrap();
    let more = packets(&mut s);
    assert_eq!(more[0].0, got[1].0 + 1, "extended sequence continues across the wrap");
    assert_eq!(more[1].0, got[1].0 + 2);
    assert_eq!(s.source().unwrap().extended_max(), 65537);
    assert_eq!(s.source().unwrap().lost(), 0);
}

#[test]
fn symmetric_rtp_latches_and_rejects_others() {
    let t0 = Instant::now();
    let mut s = session(5, t0);
    s.set_remote(addr("10.0.0.5:30000"), None); // private address from SDP behind NAT
    let nat = addr("127.0.0.1:41000");
    s.handle_rtp(t0, nat, &packet(7, 10, 0)).unwrap();
    s.handle_rtp(t0, nat, &packet(7, 11, 160)).unwrap();
    let ev = events(&mut s);
    assert!(ev.contains(&RtpEvent::Latched { channel: Channel::Rtp, addr: nat }));
    assert_eq!(s.remote_rtp(), Some(nat));
    assert_eq!(s.remote_rtcp(), Some(addr("127.0.0.1:41001")));
    s.send(t0, 0, false, 0, &[0; 160]).unwrap();
    assert_eq!(s.poll_transmit().unwrap().destination, nat);
    // Someone else injecting media is refused.
    let err = s.handle_rtp(t0, addr("127.0.0.1:666"), &packet(7, 12, 320)).unwrap_err();
    assert!(matches!(err, SessionError::ForeignSource { .. }));
    assert_eq!(s.stats().dropped_foreign, 1);
    // A re-INVITE with the same address keeps the latch...
    s.set_remote(addr("10.0.0.5:30000"), None);
    assert_eq!(s.remote_rtp(), Some(nat));
    // ...a new one replaces it (the call moved) and latching starts over.
    s.set_remote(addr("127.0.0.1:42000"), None);
    assert_eq!(s.remote_rtp(), Some(addr("127.0.0.1:42000")));
    s.handle_rtp(t0, addr("127.0.0.1:42000"), &packet(7, 13, 480)).unwrap();
    assert!(!events(&mut s).iter().any(|e| matches!(e, RtpEvent::Latched { .. })));
}

#[test]
fn new_ssrc_takes_over_after_probation() {
    let t0 = Instant::now();
    let mut s = session(6, t0);
    let peer = addr("127.0.0.1:5000");
    s.set_remote(peer, None);
    for (i, seq) in [100u16, 101, 102].iter().enumerate() {
        s.handle_rtp(t0, peer, &packet(1, *seq, i as u32 * 160)).unwrap();
    }
    events(&mut s);
    s.handle_rtp(t0, peer, &packet(2, 5000, 0)).unwrap();
    assert!(events(&mut s).is_empty());
    s.handle_rtp(t0, peer, &packet(2, 5001, 160)).unwrap();
    let ev = events(&mut s);
    assert_eq!(ev[0], RtpEvent::NewSource { ssrc: 2 });
    assert_eq!(ev.len(), 3);
    assert_eq!(s.source().unwrap().ssrc, 2);
}

#[test]
fn jitter_and_loss_reach_the_receiver_report() {
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let mut s = session(7, t0);
    let peer = addr("127.0.0.1:5000");
    s.set_remote(peer, None);
    for n in 0..100u32 {
        if n % 10 == 5 {
            continue; // 10% loss
        }
        let late = if n % 2 == 0 { 0 } else { 4 }; // ms of arrival jitter
        s.handle_rtp(t0 + Duration::from_millis(20 * n as u64 + late), peer, &packet(3, n as u16, n * 160)).unwrap();
    }
    let due = s.poll_timeout().unwrap();
    // First report: half the 5 s minimum, randomised and compensated (A.7).
    let first = due - t0;
    assert!(first >= Duration::from_secs_f64(1.25 / (std::f64::consts::E - 1.5)) && first <= Duration::from_secs_f64(3.75 / (std::f64::consts::E - 1.5)));
    s.handle_timeout(due - Duration::from_millis(1), &mut rng);
    assert!(s.poll_transmit().is_none(), "not due yet");
    s.handle_timeout(due, &mut rng);
    let t = s.poll_transmit().unwrap();
    assert_eq!(t.channel, Channel::Rtcp);
    assert_eq!(t.destination, addr("127.0.0.1:5001"));
    let pk = parse_compound(&t.payload).unwrap();
    let RtcpPacket::ReceiverReport { ssrc, reports } = &pk[0] else { panic!("{pk:?}") };
    assert_eq!(*ssrc, s.ssrc());
    assert_eq!(reports[0].ssrc, 3);
    assert_eq!(reports[0].highest_seq, 99);
    assert_eq!(reports[0].cumulative_lost, 10); // base is the packet that ended probation (A.1)
    assert!(reports[0].fraction_lost > 20 && reports[0].fraction_lost < 30);
    // |D| alternates 32 ticks (4 ms at 8 kHz): the estimator approaches it.
    assert!(reports[0].jitter > 20 && reports[0].jitter <= 32, "{}", reports[0].jitter);
    assert!(matches!(&pk[1], RtcpPacket::Sdes { chunks } if chunks[0].1.starts_with("redial-")));
    let next = s.poll_timeout().unwrap() - due;
    let c = std::f64::consts::E - 1.5;
    assert!(next >= Duration::from_secs_f64(2.5 / c) && next <= Duration::from_secs_f64(7.5 / c), "{next:?}");
}

#[test]
fn sender_report_and_lsr_dlsr() {
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(8);
    let mut a = session(8, t0);
    let mut b = session(9, t0);
    let (aa, ba) = (addr("127.0.0.1:6000"), addr("127.0.0.1:7000"));
    a.set_remote(ba, None);
    b.set_remote(aa, None);
    for n in 0..50u64 {
        a.send(t0 + Duration::from_millis(20 * n), 0, n == 0, n * 160, &[0xFF; 160]).unwrap();
    }
    while let Some(t) = a.poll_transmit() {
        b.handle_rtp(t0, aa, &t.payload).unwrap();
    }
    let due = a.poll_timeout().unwrap();
    a.handle_timeout(due, &mut rng);
    let sr = a.poll_transmit().unwrap();
    let pk = parse_compound(&sr.payload).unwrap();
    let RtcpPacket::SenderReport { info, .. } = &pk[0] else { panic!("{pk:?}") };
    assert_eq!(info.packet_count, 50);
    assert_eq!(info.octet_count, 50 * 160);
    // The SR timestamp is the media clock at `due`, extrapolated from the last packet at 980 ms.
    let ticks = ((due - t0).as_secs_f64() * 8000.0).round() as i64;
    let want = a.timestamp_at(0).wrapping_add(ticks as u32);
    assert!((info.rtp_timestamp.wrapping_sub(want) as i32).abs() <= 1);
    let sr_at = t0 + Duration::from_secs(3);
    b.handle_rtcp(sr_at, aa, &sr.payload).unwrap();
    assert!(events(&mut b).iter().any(|e| matches!(e, RtpEvent::Report { sender: Some(_), .. })));
    let bdue = b.poll_timeout().unwrap().max(sr_at + Duration::from_millis(500));
    b.handle_timeout(bdue, &mut rng);
    let rr = b.poll_transmit().unwrap();
    let pk = parse_compound(&rr.payload).unwrap();
    let RtcpPacket::ReceiverReport { reports, .. } = &pk[0] else { panic!("{pk:?}") };
    assert_eq!(reports[0].lsr, info.ntp.middle32());
    let dlsr = (bdue - sr_at).as_secs_f64();
    assert!((reports[0].dlsr as f64 / 65536.0 - dlsr).abs() < 0.001);
    a.handle_rtcp(bdue, ba, &rr.payload).unwrap();
    assert!(events(&mut a).iter().any(|e| matches!(e, RtpEvent::Report { about_us: Some(r), .. } if r.highest_seq > 0)));
}

#[test]
fn close_sends_bye_and_stops_timers() {
    let t0 = Instant::now();
    let mut s = session(10, t0);
    s.set_remote(addr("127.0.0.1:5000"), None);
    s.close(t0);
    let t = s.poll_transmit().unwrap();
    assert!(parse_compound(&t.payload).unwrap().contains(&RtcpPacket::Bye { ssrcs: vec![s.ssrc()] }));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn lossy_reordering_link_in_virtual_time() {
    use crate::media::jitter::{JitterBuffer, JitterOutput};
    use rand::Rng;
    let t0 = Instant::now();
    let mut net = StdRng::seed_from_u64(42);
    let mut a = session(20, t0);
    let mut b = session(21, t0);
    let (aa, ba) = (addr("127.0.0.1:6000"), addr("127.0.0.1:7000"));
    a.set_remote(ba, None);
    b.set_remote(aa, None);
    // 2% loss, 0–60 ms of delay (so packets overtake each other), across a sequence wrap.
    let mut in_flight: Vec<(Instant, Vec<u8>)> = vec![];
    let mut dropped = std::collections::BTreeSet::new();
    let mut jb = JitterBuffer::new(4);
    let mut out = vec![];
    let mut rng = StdRng::seed_from_u64(5);
    for n in 0..3000u64 {
        let now = t0 + Duration::from_millis(20 * n);
        a.send(now, 0, n == 0, n * 160, &[n as u8; 160]).unwrap();
        while let Some(t) = a.poll_transmit() {
            if t.channel == Channel::Rtp && n > 1 && net.random_bool(0.02) {
                dropped.insert(n);
                continue;
            }
            in_flight.push((now + Duration::from_millis(net.random_range(0..60)), t.payload));
        }
        in_flight.sort_by_key(|x| x.0);
        while in_flight.first().is_some_and(|x| x.0 <= now) {
            let (at, bytes) = in_flight.remove(0);
            if RtpPacket::parse(&bytes).is_ok() {
                b.handle_rtp(at, aa, &bytes).unwrap();
            } else {
                b.handle_rtcp(at, aa, &bytes).unwrap();
            }
        }
        while let Some(e) = b.poll_event() {
            if let RtpEvent::Packet { ext_seq, packet } = e {
                jb.push(ext_seq, packet);
            }
        }
        while let Some(o) = jb.pop() {
            out.push(o);
        }
        for s in [&mut a, &mut b] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now, &mut rng);
            }
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_rtcp(now, ba, &t.payload).unwrap();
        }
    }
    out.extend(jb.flush());
    // Everything not dropped arrived in order; the dropped ones (and only those,
    // unless one came later than the buffer's depth) are gaps.
    let got: Vec<u8> = out.iter().filter_map(|o| match o { JitterOutput::Packet { packet, .. } => Some(packet.payload[0]), _ => None }).collect();
    let lost = out.iter().filter(|o| matches!(o, JitterOutput::Lost { .. })).count() as u64;
    assert!(lost >= dropped.len() as u64, "every dropped packet is reported lost");
    assert_eq!(got.len() as u64 + lost, out.len() as u64);
    let seqs: Vec<u64> = out.iter().filter_map(|o| match o { JitterOutput::Packet { ext_seq, .. } => Some(*ext_seq), _ => None }).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(got.iter().enumerate().all(|(i, &v)| i == 0 || v != got[i - 1]), "no duplicates");
    let src = b.source().unwrap();
    // The receiver's count of lost packets is what the link dropped (minus the tail still in flight).
    assert!((src.lost() - dropped.len() as i64).abs() <= 3, "lost {} vs dropped {}", src.lost(), dropped.len());
    // Delay varies uniformly over 0–60 ms: the A.8 estimate is in the tens of milliseconds (8 ticks/ms).
    assert!(src.jitter() > 8 * 5 && src.jitter() < 8 * 40, "jitter {}", src.jitter());
    assert!(a.stats().rtcp_sent > 5 && b.stats().rtcp_sent > 5);
}
