//! The bodies of the fuzz targets beyond SIP, shared by the cargo-fuzz binaries in this
//! directory and by the stable-toolchain harness `tests/fuzz_targets.rs` (which runs
//! them over the seed corpora, the kept crash inputs and seeded random mutations).
//! Each must never panic, whatever the bytes; where a parser accepts, what we print
//! must parse back the same.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use redial::media::sdp::{self, Direction, LocalMedia};
use redial::media::Codec;

/// SDP offers and answers (RFC 4566 / 3264) as they arrive in INVITEs and 200s.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = sdp::model::parse(text);
    // SRTP optional: a=crypto lines are parsed and answered too.
    let local = LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 20000,
        session_id: 1,
        session_version: 1,
        srtp: sdp::SrtpPolicy::Optional,
        key: redial::media::srtp::KeyMaterial::random(redial::media::srtp::Suite::AesCm128HmacSha1_80),
    };
    if let Ok(answer) = sdp::answer_offer(text, &local, &[Codec::Pcmu, Codec::Pcma, Codec::Opus], Direction::SendRecv) {
        // Our own answer must be something we read back.
        let _ = sdp::model::parse(&answer.sdp).expect("our answer parses");
    }
    let _ = sdp::accept_answer(text, &[Codec::Pcmu, Codec::Pcma, Codec::Opus], Direction::SendRecv, &local);
}

/// RTP datagrams (RFC 3550 §5) and RTCP compound packets (§6).
pub fn rtp_rtcp(data: &[u8]) {
    if let Ok(p) = redial::media::rtp::RtpPacket::parse(data) {
        if let Ok(bytes) = p.to_bytes() {
            let again = redial::media::rtp::RtpPacket::parse(&bytes).expect("our RTP parses");
            assert_eq!(again.payload, p.payload);
        }
    }
    let _ = redial::media::rtcp::parse_compound(data);
}

/// RFC 4733 telephone-events and the SIP INFO DTMF bodies.
pub fn rfc4733(data: &[u8]) {
    if let Ok(e) = redial::media::dtmf::TelephoneEvent::parse(data) {
        let back = redial::media::dtmf::TelephoneEvent::parse(&e.to_bytes()).expect("our event parses");
        assert_eq!(back.to_bytes(), e.to_bytes());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = redial::media::dtmf::parse_dtmf_relay(text);
        let _ = redial::media::dtmf::parse_dtmf(text);
    }
}

/// The WAV reader (prompts, `redial amd`).
pub fn wav(data: &[u8]) {
    let _ = redial::amd::wav::decode_wav(data);
}

/// The configuration: bytes before the first NUL are `redial.toml`, after it one
/// profile in `sip-profiles/`. Every problem must come back as a message naming file
/// and key, never a panic.
pub fn config(data: &[u8]) {
    let (main, profile) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let file = dir.path().join("redial.toml");
    if std::fs::write(&file, main).is_err() {
        return;
    }
    let _ = std::fs::create_dir_all(dir.path().join("sip-profiles"));
    if let Some(p) = profile {
        let _ = std::fs::write(dir.path().join("sip-profiles/fuzz.toml"), p);
    }
    if let Err(problems) = redial::config::Config::load(Some(&file)) {
        for p in &problems.0 {
            assert!(!p.to_string().is_empty());
        }
    }
}

/// The API's JSON bodies: create, change, agent state.
pub fn api_json(data: &[u8]) {
    use redial::api::views::{ChangeCallback, CreateCallback, SetAgentState};
    if let Ok(c) = serde_json::from_slice::<CreateCallback>(data) {
        let _ = c.into_request(None);
    }
    if let Ok(c) = serde_json::from_slice::<ChangeCallback>(data) {
        let _ = c.into_changes(None);
    }
    let _ = serde_json::from_slice::<SetAgentState>(data);
}

/// The SIP codec as `sip_message.rs` drives it (kept here too so the stable harness
/// runs it over the RFC 4475 torture messages as seeds).
pub fn sip_message(data: &[u8]) {
    use redial::sip::codec;
    match codec::decode(data) {
        Ok(msg) => {
            let bytes = codec::encode(&msg);
            let again = codec::decode(&bytes).expect("re-decode of our own encoding");
            assert_eq!(again.body(), msg.body());
        }
        Err(e) => {
            if let Some(r) = e.reply {
                // It echoes the request's headers (RFC 3261 §8.2.6.2), bad ones included.
                let _ = codec::encode(&rsip::SipMessage::Response(*r));
            }
        }
    }
    let mut f = redial::sip::transport::framer::StreamFramer::new();
    f.push(data);
    while let Ok(Some(_)) = f.next_frame() {}
}
