//! Parsers of network input never panic, and builders round-trip (proptest).

use bytes::Bytes;
use proptest::prelude::*;
use redial::media::dtmf::{parse_dtmf, parse_dtmf_relay, DtmfReceiver, TelephoneEvent};
use redial::media::rtcp::{build_compound, parse_compound, ReportBlock, RtcpPacket};
use redial::media::rtp::RtpPacket;
use redial::media::sdp::{answer_offer, Direction, LocalMedia};
use redial::media::Codec;

fn local() -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        port: 20000,
        session_id: 1,
        session_version: 1,
        srtp: redial::media::sdp::SrtpPolicy::Off,
        key: redial::media::srtp::KeyMaterial::random(redial::media::srtp::Suite::AesCm128HmacSha1_80),
    }
}

proptest! {
    #[test]
    fn rtp_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = RtpPacket::parse(&data);
    }

    #[test]
    fn rtp_round_trip(pt in 0u8..72, marker: bool, seq: u16, ts: u32, ssrc: u32, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let p = RtpPacket { payload_type: pt, marker, sequence: seq, timestamp: ts, ssrc, payload: Bytes::from(payload) };
        prop_assert_eq!(RtpPacket::parse(&p.to_bytes().unwrap()).unwrap(), p);
    }

    #[test]
    fn rtcp_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_compound(&data);
    }

    #[test]
    fn rtcp_round_trip(ssrc: u32, fl: u8, lost in -0x80_0000i32..0x80_0000, hs: u32, j: u32, lsr: u32, dlsr: u32, cname in "[a-z0-9@.]{1,40}") {
        let b = ReportBlock { ssrc, fraction_lost: fl, cumulative_lost: lost, highest_seq: hs, jitter: j, lsr, dlsr };
        let pk = vec![RtcpPacket::ReceiverReport { ssrc, reports: vec![b] }, RtcpPacket::Sdes { chunks: vec![(ssrc, cname)] }];
        prop_assert_eq!(parse_compound(&build_compound(&pk).unwrap()).unwrap(), pk);
    }

    #[test]
    fn sdp_answer_never_panics(body in "[ -~\r\n]{0,400}") {
        let _ = answer_offer(&body, &local(), &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
        let with_header = format!("v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n{body}");
        let _ = answer_offer(&with_header, &local(), &[Codec::Pcmu], Direction::SendRecv);
    }

    #[test]
    fn dtmf_inputs_never_panic(data in proptest::collection::vec(any::<u8>(), 0..8), ts: u32, body in "[ -~\r\n]{0,60}") {
        let mut r = DtmfReceiver::new();
        let _ = r.handle_packet(ts, &data);
        let _ = parse_dtmf_relay(&body);
        let _ = parse_dtmf(&body);
        if let Ok(e) = TelephoneEvent::parse(&data) {
            let mut b = e.to_bytes();
            b[1] &= 0xBF; // the reserved bit is not kept
            prop_assert_eq!(TelephoneEvent::parse(&b).unwrap().to_bytes(), b);
        }
    }
}
