//! RFC 4733 decoding against the RTP captures SIPp ships (`sip-tester`):
//! each `dtmf_2833_<key>.pcap` holds one key press with a marked start,
//! updates and three redundant end packets (which reuse one sequence number).
//! Also runs `g711a.pcap` through the session, jitter buffer and A-law decoder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rand::{rngs::StdRng, SeedableRng};
use redial::media::dtmf::DtmfReceiver;
use redial::media::g711;
use redial::media::jitter::{JitterBuffer, JitterOutput};
use redial::media::{RtpEvent, RtpSession, SessionConfig};

const SIPP_DIR: &str = "/usr/share/sip-tester";

/// (source address, microseconds since the first packet, UDP payload) of an Ethernet/IPv4/UDP pcap.
fn udp_payloads(path: &Path) -> Vec<(SocketAddr, u64, Vec<u8>)> {
    let d = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (install sip-tester)", path.display()));
    assert_eq!(&d[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap");
    assert_eq!(u32::from_le_bytes(d[20..24].try_into().unwrap()), 1, "Ethernet link type");
    let mut out = vec![];
    let mut at = 24;
    let mut first = None;
    while at + 16 <= d.len() {
        let le = |o: usize| u32::from_le_bytes(d[at + o..at + o + 4].try_into().unwrap()) as u64;
        let t = le(0) * 1_000_000 + le(4);
        let len = le(8) as usize;
        let frame = &d[at + 16..at + 16 + len];
        at += 16 + len;
        if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            continue;
        }
        let ihl = (frame[14] & 0x0F) as usize * 4;
        let udp = &frame[14 + ihl..];
        let src = SocketAddr::from(([frame[26], frame[27], frame[28], frame[29]], u16::from_be_bytes([udp[0], udp[1]])));
        let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
        let t0 = *first.get_or_insert(t);
        out.push((src, t - t0, udp[8..ulen].to_vec()));
    }
    out
}

fn session() -> (RtpSession, Instant) {
    let t0 = Instant::now();
    (RtpSession::new(SessionConfig::default(), t0, SystemTime::now(), &mut StdRng::seed_from_u64(1)), t0)
}

#[test]
fn sipp_rfc4733_captures_decode_to_one_digit_each() {
    let keys: Vec<(String, char)> = (0..=9).map(|k| (k.to_string(), char::from(b'0' + k))).chain([("pound".into(), '#'), ("star".into(), '*')]).collect();
    for (name, want) in keys {
        let path = PathBuf::from(SIPP_DIR).join(format!("dtmf_2833_{name}.pcap"));
        let (mut s, t0) = session();
        let mut rx = DtmfReceiver::new();
        let mut digits = vec![];
        for (from, us, payload) in udp_payloads(&path) {
            s.handle_rtp(t0 + Duration::from_micros(us), from, &payload).unwrap();
            while let Some(e) = s.poll_event() {
                if let RtpEvent::Packet { packet, .. } = e {
                    assert_eq!(packet.payload_type, 101);
                    rx.handle_packet(packet.timestamp, &packet.payload).unwrap();
                }
            }
            digits.extend(std::iter::from_fn(|| rx.poll_digit()));
        }
        rx.flush();
        digits.extend(std::iter::from_fn(|| rx.poll_digit()));
        assert_eq!(digits.len(), 1, "{name}: {digits:?}");
        assert_eq!(digits[0].digit, Some(want), "{name}");
        assert!(digits[0].ended, "{name}: the end bit was seen");
        assert!(digits[0].duration >= 400, "{name}: {} ticks", digits[0].duration);
    }
}

#[test]
fn sipp_g711a_capture_plays_through_session_and_jitter_buffer() {
    let (mut s, t0) = session();
    let mut jb = JitterBuffer::new(5);
    let mut pcm = vec![];
    let mut lost = 0;
    let mut handle = |o: JitterOutput, pcm: &mut Vec<i16>| match o {
        JitterOutput::Packet { packet, .. } => {
            assert_eq!(packet.payload_type, 8);
            pcm.extend(packet.payload.iter().map(|&c| g711::alaw_decode(c)));
        }
        JitterOutput::Lost { .. } => lost += 1,
    };
    let packets = udp_payloads(&PathBuf::from(SIPP_DIR).join("g711a.pcap"));
    assert!(packets.len() > 100);
    for (from, us, payload) in &packets {
        s.handle_rtp(t0 + Duration::from_micros(*us), *from, payload).unwrap();
        while let Some(e) = s.poll_event() {
            if let RtpEvent::Packet { ext_seq, packet } = e {
                jb.push(ext_seq, packet);
            }
        }
        while let Some(o) = jb.pop() {
            handle(o, &mut pcm);
        }
    }
    for o in jb.flush() {
        handle(o, &mut pcm);
    }
    assert_eq!(lost, 0);
    // Every payload (30 ms frames in this capture) came through, the held probation packet included.
    assert_eq!(pcm.len(), packets.iter().map(|p| p.2.len() - 12).sum::<usize>());
    let rms = (pcm.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
    assert!(rms > 100.0, "the capture carries audio, rms {rms}");
    let src = s.source().unwrap();
    assert_eq!(src.lost(), 0);
}
