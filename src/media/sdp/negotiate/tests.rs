use super::*;
use crate::media::sdp::model::parse;

fn local() -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        port: 20000,
        session_id: 42,
        session_version: 1,
        srtp: SrtpPolicy::Off,
        key: KeyMaterial::random(Suite::AesCm128HmacSha1_80),
    }
}

fn offer(body: &str) -> String {
    format!("v=0\r\no=peer 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n{body}")
}

const PCMU_PCMA: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

#[test]
fn our_offer() {
    let o = build_offer(&local(), PCMU_PCMA, Direction::SendRecv);
    assert!(o.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{o}");
    for l in ["a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv", "c=IN IP4 127.0.0.1", "o=redial 42 1 IN IP4 127.0.0.1"] {
        assert!(o.contains(l), "missing {l} in {o}");
    }
    let back = parse(&o).unwrap().audio.unwrap();
    assert_eq!(back.rtp, Some("127.0.0.1:20000".parse().unwrap()));
    assert_eq!(back.formats.len(), 3);
    assert_eq!(back.ptime, Some(20));
    let with_opus = build_offer(&local(), &[Codec::Opus, Codec::Pcmu], Direction::SendOnly);
    assert!(with_opus.contains("a=rtpmap:111 opus/48000/2") && with_opus.contains("a=sendonly"));
}

#[test]
fn answer_follows_profile_order_and_keeps_offer_numbers() {
    let o = offer("m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=ptime:30\r\n");
    let a = answer_offer(&o, &local(), PCMU_PCMA, Direction::SendRecv).unwrap();
    assert_eq!(a.negotiated.codec, Codec::Pcmu);
    assert_eq!(a.negotiated.pt, 0);
    assert_eq!(a.negotiated.telephone_event, Some(96));
    assert_eq!(a.negotiated.ptime, 30);
    assert_eq!(a.negotiated.direction, Direction::SendRecv);
    assert_eq!(a.negotiated.remote_rtp, Some("192.0.2.10:4000".parse().unwrap()));
    assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0 96\r\n"), "{}", a.sdp);
    assert!(a.sdp.contains("a=rtpmap:96 telephone-event/8000") && a.sdp.contains("a=fmtp:96 0-16"));
    // The other profile order picks PCMA.
    let a = answer_offer(&o, &local(), &[Codec::Pcma, Codec::Pcmu], Direction::SendRecv).unwrap();
    assert_eq!((a.negotiated.codec, a.negotiated.pt), (Codec::Pcma, 8));
}

#[test]
fn static_types_without_rtpmap_and_dynamic_opus() {
    let o = offer("m=audio 4000 RTP/AVP 18 0\r\n");
    let a = answer_offer(&o, &local(), PCMU_PCMA, Direction::SendRecv).unwrap();
    assert_eq!((a.negotiated.codec, a.negotiated.pt, a.negotiated.telephone_event), (Codec::Pcmu, 0, None));
    assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0\r\n"));
    let o = offer("m=audio 4000 RTP/AVP 109 9 0 110\r\na=rtpmap:109 OPUS/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n");
    let a = answer_offer(&o, &local(), &[Codec::Opus, Codec::Pcmu], Direction::SendRecv).unwrap();
    assert_eq!((a.negotiated.codec, a.negotiated.pt, a.negotiated.telephone_event), (Codec::Opus, 109, Some(110)));
    assert!(a.sdp.contains("a=rtpmap:109 opus/48000/2"));
}

#[test]
fn hold_directions() {
    let cases = [
        ("a=sendonly\r\n", Direction::RecvOnly),
        ("a=recvonly\r\n", Direction::SendOnly),
        ("a=inactive\r\n", Direction::Inactive),
        ("a=sendrecv\r\n", Direction::SendRecv),
        ("", Direction::SendRecv),
    ];
    for (line, want) in cases {
        let o = offer(&format!("m=audio 4000 RTP/AVP 0\r\n{line}"));
        let a = answer_offer(&o, &local(), PCMU_PCMA, Direction::SendRecv).unwrap();
        assert_eq!(a.negotiated.direction, want, "{line}");
        assert!(a.sdp.contains(&format!("a={}", want.as_str())));
    }
    // We hold the call ourselves: sendonly narrows a sendrecv offer.
    let o = offer("m=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(answer_offer(&o, &local(), PCMU_PCMA, Direction::SendOnly).unwrap().negotiated.direction, Direction::SendOnly);
    // RFC 2543 hold: c=0.0.0.0 means "do not send to me".
    let o = "v=0\r\no=peer 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let n = answer_offer(o, &local(), PCMU_PCMA, Direction::SendRecv).unwrap().negotiated;
    assert_eq!(n.remote_rtp, None);
    assert!(n.on_hold());
}

#[test]
fn reinvite_with_a_new_address_is_seen() {
    let first = answer_offer(&offer("m=audio 4000 RTP/AVP 0\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap().negotiated;
    let same = answer_offer(&offer("m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap().negotiated;
    assert!(!same.remote_changed(&first));
    let moved = "v=0\r\no=peer 1 3 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 198.51.100.7\r\na=rtcp:5009\r\n";
    let n = answer_offer(moved, &local(), PCMU_PCMA, Direction::SendRecv).unwrap().negotiated;
    assert!(n.remote_changed(&first));
    assert_eq!(n.remote_rtp, Some("198.51.100.7:5000".parse().unwrap()));
    assert_eq!(n.remote_rtcp, Some("198.51.100.7:5009".parse().unwrap()));
}

#[test]
fn failures_map_to_sip_statuses() {
    let e = answer_offer(&offer("m=audio 4000 RTP/AVP 18 3\r\na=rtpmap:18 G729/8000\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap_err();
    assert!(matches!(&e, SdpError::NoCommonCodec { offered, .. } if offered == &["G729", "GSM"]));
    assert_eq!(e.sip_status(), 488);
    let e = answer_offer(&offer("m=audio 0 RTP/AVP 0\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap_err();
    assert_eq!((e.clone(), e.sip_status()), (SdpError::Rejected, 488));
    let e = answer_offer(&offer("m=video 4002 RTP/AVP 31\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap_err();
    assert_eq!(e, SdpError::NoAudio);
    let e = answer_offer(&offer("m=audio 4000 RTP/SAVP 0\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap_err();
    assert_eq!(e.sip_status(), 488);
    let e = answer_offer("this is not sdp", &local(), PCMU_PCMA, Direction::SendRecv).unwrap_err();
    assert_eq!(e.sip_status(), 400);
    // A telephone-event-only offer has no codec either.
    let e = answer_offer(&offer("m=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n"), &local(), PCMU_PCMA, Direction::SendRecv).unwrap_err();
    assert!(matches!(e, SdpError::NoCommonCodec { .. }));
}

#[test]
fn other_streams_are_rejected_in_place() {
    let o = offer("m=video 4002 RTP/AVP 31\r\nm=audio 4000 RTP/AVP 0\r\n");
    let a = answer_offer(&o, &local(), PCMU_PCMA, Direction::SendRecv).unwrap();
    let video = a.sdp.find("m=video 0 RTP/AVP 31").expect("video rejected with port 0");
    let audio = a.sdp.find("m=audio 20000").expect("audio accepted");
    assert!(video < audio, "m-line order kept (RFC 3264 §6)");
}

#[test]
fn accepting_answers() {
    let ans = offer("m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n");
    let n = accept_answer(&ans, PCMU_PCMA, Direction::SendRecv, &local()).unwrap();
    assert_eq!((n.codec, n.pt, n.telephone_event), (Codec::Pcma, 8, Some(101)));
    assert_eq!(n.direction, Direction::SendOnly);
    assert_eq!(n.remote_rtp, Some("192.0.2.10:6000".parse().unwrap()));
    let bad = offer("m=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n");
    assert_eq!(accept_answer(&bad, PCMU_PCMA, Direction::SendRecv, &local()), Err(SdpError::NotOffered { pt: 18 }));
    let rejected = offer("m=audio 0 RTP/AVP 0\r\n");
    assert_eq!(accept_answer(&rejected, PCMU_PCMA, Direction::SendRecv, &local()), Err(SdpError::Rejected));
    // Our own offer answered by our own answerer.
    let o = build_offer(&local(), PCMU_PCMA, Direction::SendRecv);
    let a = answer_offer(&o, &LocalMedia { port: 30000, ..local() }, &[Codec::Pcma], Direction::SendRecv).unwrap();
    let n = accept_answer(&a.sdp, PCMU_PCMA, Direction::SendRecv, &local()).unwrap();
    assert_eq!((n.codec, n.pt, n.telephone_event), (Codec::Pcma, 8, Some(101)));
    assert_eq!(n.remote_rtp, Some("127.0.0.1:30000".parse().unwrap()));
}

#[test]
fn real_world_offers() {
    // baresip-style offer, LF line ends, bandwidth and extra attributes.
    let baresip = "v=0\no=- 1432462375 3061718862 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 10000 RTP/AVP 96 0 8 101\nb=AS:64\na=rtpmap:96 opus/48000/2\na=fmtp:96 stereo=1;sprop-stereo=1\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=sendrecv\na=label:1\na=ssrc:12345 cname:abc\na=rtcp-rsize\n";
    let a = answer_offer(baresip, &local(), &[Codec::Pcma, Codec::Pcmu], Direction::SendRecv).unwrap();
    assert_eq!((a.negotiated.codec, a.negotiated.pt, a.negotiated.telephone_event), (Codec::Pcma, 8, Some(101)));
    let a = answer_offer(baresip, &local(), &[Codec::Opus, Codec::Pcmu], Direction::SendRecv).unwrap();
    assert_eq!((a.negotiated.codec, a.negotiated.pt), (Codec::Opus, 96));
    // SIPp's default uac offer.
    let sipp = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.1.1\r\ns=-\r\nc=IN IP4 127.0.1.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let a = answer_offer(sipp, &local(), &[Codec::Pcma, Codec::Pcmu], Direction::SendRecv).unwrap();
    assert_eq!((a.negotiated.codec, a.negotiated.telephone_event), (Codec::Pcmu, None));
    assert_eq!(a.negotiated.remote_rtp, Some("127.0.1.1:6000".parse().unwrap()));
    assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0\r\n"));
}

#[test]
fn offer_text_is_well_formed() {
    let o = build_offer(&local(), PCMU_PCMA, Direction::SendRecv);
    let lines: Vec<&str> = o.split("\r\n").filter(|l| !l.is_empty()).collect();
    let kinds: String = lines.iter().map(|l| &l[..1]).collect();
    // RFC 4566 §5 order: v o s c t, then the media section.
    assert_eq!(&kinds[..6], "vosctm", "{o}");
    assert!(o.ends_with("\r\n"));
    assert_eq!(lines[0], "v=0");
}

fn with_srtp(policy: SrtpPolicy) -> LocalMedia {
    LocalMedia { srtp: policy, ..local() }
}

#[test]
fn srtp_offers_carry_a_crypto_line_and_required_uses_savp() {
    let o = build_offer(&with_srtp(SrtpPolicy::Optional), PCMU_PCMA, Direction::SendRecv);
    assert!(o.contains("m=audio 20000 RTP/AVP "), "{o}");
    assert!(o.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), "{o}");
    let o = build_offer(&with_srtp(SrtpPolicy::Required), PCMU_PCMA, Direction::SendRecv);
    assert!(o.contains("m=audio 20000 RTP/SAVP "), "{o}");
    assert!(!build_offer(&local(), PCMU_PCMA, Direction::SendRecv).contains("crypto"));
}

#[test]
fn srtp_answers_follow_the_offer_and_the_policy() {
    let them = KeyMaterial::random(Suite::AesCm128HmacSha1_32);
    let crypto = format!("a=crypto:3 AES_CM_128_HMAC_SHA1_32 {}\r\na=crypto:4 F8_128_HMAC_SHA1_80 inline:xx\r\n", them.inline());
    let savp = offer(&format!("m=audio 6000 RTP/SAVP 0\r\n{crypto}"));
    // Optional: the offer's first usable line, its tag and suite, our key.
    let a = answer_offer(&savp, &with_srtp(SrtpPolicy::Optional), &[Codec::Pcmu], Direction::SendRecv).unwrap();
    assert!(a.sdp.contains("m=audio 20000 RTP/SAVP 0"), "{}", a.sdp);
    assert!(a.sdp.contains("a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:"), "{}", a.sdp);
    let keys = a.negotiated.srtp.unwrap();
    assert!(keys.remote == them);
    assert_eq!(keys.local.suite, Suite::AesCm128HmacSha1_32);
    // Off refuses SAVP; an AVP offer with crypto is answered in plain RTP.
    assert_eq!(answer_offer(&savp, &local(), &[Codec::Pcmu], Direction::SendRecv).unwrap_err(), SdpError::SrtpOff);
    let avp = offer(&format!("m=audio 6000 RTP/AVP 0\r\n{crypto}"));
    let a = answer_offer(&avp, &local(), &[Codec::Pcmu], Direction::SendRecv).unwrap();
    assert!(a.negotiated.srtp.is_none() && !a.sdp.contains("crypto"), "{}", a.sdp);
    // Required refuses an offer without crypto.
    let plain = offer("m=audio 6000 RTP/AVP 0\r\n");
    assert_eq!(answer_offer(&plain, &with_srtp(SrtpPolicy::Required), &[Codec::Pcmu], Direction::SendRecv).unwrap_err(), SdpError::SrtpRequired);
    assert_eq!(SdpError::SrtpRequired.sip_status(), 488);
}

#[test]
fn srtp_offer_answered_by_our_own_answerer_agrees_on_both_keys() {
    let ours = with_srtp(SrtpPolicy::Required);
    let o = build_offer(&ours, PCMU_PCMA, Direction::SendRecv);
    let theirs = LocalMedia { port: 30000, key: KeyMaterial::random(Suite::AesCm128HmacSha1_80), ..with_srtp(SrtpPolicy::Optional) };
    let a = answer_offer(&o, &theirs, &[Codec::Pcmu], Direction::SendRecv).unwrap();
    let n = accept_answer(&a.sdp, PCMU_PCMA, Direction::SendRecv, &ours).unwrap();
    let k = n.srtp.unwrap();
    assert!(k.local == ours.key && k.remote == theirs.key);
    let back = a.negotiated.srtp.unwrap();
    assert!(back.local == theirs.key && back.remote == ours.key);
    // An answer without crypto to a required offer is refused.
    let plain = answer_offer(&o.replace("RTP/SAVP", "RTP/AVP"), &LocalMedia { port: 30000, ..local() }, &[Codec::Pcmu], Direction::SendRecv).unwrap();
    assert_eq!(accept_answer(&plain.sdp, PCMU_PCMA, Direction::SendRecv, &ours).unwrap_err(), SdpError::SrtpRequired);
}
