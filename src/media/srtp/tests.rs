use super::*;

fn hex16(s: &str) -> [u8; 16] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// RFC 3711 Appendix B.2: the AES-CM keystream for SSRC 0, index 0.
#[test]
fn aes_cm_keystream_matches_rfc3711_b2() {
    let key = hex16("2B7E151628AED2A6ABF7158809CF4F3C");
    let salt: [u8; 14] = hex::decode("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").unwrap().try_into().unwrap();
    let iv = packet_iv(&salt, 0, 0);
    assert_eq!(iv, hex16("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut ks = vec![0u8; 0xff02 * 16];
    aes_cm(&key, &iv, &mut ks);
    assert_eq!(hex::encode_upper(&ks[..16]), "E03EAD0935C95E80E166B16DD92B4EB4");
    assert_eq!(hex::encode_upper(&ks[16..32]), "D23513162B02D0F72A43A2FE4A5F97AB");
    assert_eq!(hex::encode_upper(&ks[32..48]), "41E95B3BB0A2E8DD477901E4FCA894C0");
    assert_eq!(hex::encode_upper(&ks[0xfeff * 16..0xff00 * 16]), "EC8CDF7398607CB0F2D21675EA9EA1E4");
    assert_eq!(hex::encode_upper(&ks[0xff00 * 16..0xff01 * 16]), "362B7C3C6773516318A077D7FC5073AE");
    assert_eq!(hex::encode_upper(&ks[0xff01 * 16..0xff02 * 16]), "6A2CC3787889374FBEB4C81B17BA6C44");
}

/// RFC 3711 Appendix B.3: session keys derived from a master key and salt.
#[test]
fn key_derivation_matches_rfc3711_b3() {
    let m = KeyMaterial {
        suite: Suite::AesCm128HmacSha1_80,
        key: hex16("E1F97A0D3E018BE0D64FA32C06DE4139"),
        salt: hex::decode("0EC675AD498AFEEBB6960B3AABE6").unwrap().try_into().unwrap(),
    };
    let mut enc = [0u8; 16];
    derive(&m, 0, &mut enc);
    assert_eq!(hex::encode_upper(enc), "C61E7A93744F39EE10734AFE3FF7A087");
    let mut salt = [0u8; 14];
    derive(&m, 2, &mut salt);
    assert_eq!(hex::encode_upper(salt), "30CBBC08863D8C85D49DB34A9AE1");
    let mut auth = [0u8; 20];
    derive(&m, 1, &mut auth);
    assert_eq!(hex::encode_upper(auth), "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4");
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn pair(suite: Suite) -> (SrtpContext, SrtpContext) {
    let m = KeyMaterial::random(suite);
    let back = KeyMaterial::from_key_params(suite, &m.inline()).unwrap();
    assert!(back == m, "inline key round trip");
    (SrtpContext::new(&m), SrtpContext::new(&back))
}

#[test]
fn protect_then_unprotect_gives_the_packet_back_and_hides_the_payload() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let (mut tx, mut rx) = pair(suite);
        let p = rtp(7, 0x1234, &[0x55; 160]);
        let s = tx.protect(&p).unwrap();
        assert_eq!(s.len(), p.len() + suite.rtp_tag_len());
        assert_eq!(s[..12], p[..12], "the header stays clear");
        assert_ne!(s[12..172], p[12..], "the payload is encrypted");
        assert_eq!(rx.unprotect(&s).unwrap(), p);
    }
}

#[test]
fn tampered_replayed_and_wrongly_keyed_packets_are_refused() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let s = tx.protect(&rtp(1, 9, b"hello")).unwrap();
    let mut bad = s.clone();
    bad[13] ^= 1;
    assert_eq!(rx.unprotect(&bad), Err(SrtpError::Auth));
    assert!(rx.unprotect(&s).is_ok());
    assert_eq!(rx.unprotect(&s), Err(SrtpError::Replay));
    let (_, mut other) = pair(Suite::AesCm128HmacSha1_80);
    assert_eq!(other.unprotect(&tx.protect(&rtp(2, 9, b"x")).unwrap()), Err(SrtpError::Auth));
    assert_eq!(rx.unprotect(&[0x80; 10]), Err(SrtpError::TooShort));
}

#[test]
fn the_rollover_counter_follows_a_sequence_wrap_and_late_packets() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let seq = (65_500 + i) as u16;
        sent.push((seq, tx.protect(&rtp(seq, 5, &i.to_be_bytes())).unwrap()));
    }
    // Packet 30 (before the wrap) arrives after packet 60 (after it): still within the window.
    let late = sent.remove(30);
    sent.insert(60, late);
    for (seq, s) in &sent {
        let p = rx.unprotect(s).unwrap_or_else(|e| panic!("seq {seq}: {e}"));
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), *seq);
    }
    // Far older than the window: refused.
    let old = tx.protect(&rtp(65_400, 5, b"old")).unwrap();
    assert!(rx.unprotect(&old).is_err());
}

#[test]
fn srtcp_round_trip_and_tamper() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    // A receiver report with no blocks (8 bytes) plus an SDES-ish tail.
    let rtcp = [0x80, 201, 0, 1, 0, 0, 0, 42, 0x81, 202, 0, 2, 0, 0, 0, 42, 1, 1, b'a', 0];
    let s = tx.protect_rtcp(&rtcp).unwrap();
    assert_eq!(s.len(), rtcp.len() + 14);
    assert_ne!(s[8..20], rtcp[8..]);
    assert_eq!(rx.unprotect_rtcp(&s).unwrap(), rtcp);
    assert_eq!(rx.unprotect_rtcp(&s), Err(SrtpError::Replay));
    let mut bad = tx.protect_rtcp(&rtcp).unwrap();
    bad[9] ^= 0x10;
    assert_eq!(rx.unprotect_rtcp(&bad), Err(SrtpError::Auth));
}

#[test]
fn key_params_with_mki_or_bad_length_are_refused() {
    let m = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
    let ok = format!("{}|2^20", m.inline());
    assert!(KeyMaterial::from_key_params(Suite::AesCm128HmacSha1_80, &ok).is_ok());
    let mki = format!("{}|2^20|1:4", m.inline());
    assert_eq!(KeyMaterial::from_key_params(Suite::AesCm128HmacSha1_80, &mki), Err(SrtpError::BadKey("MKI is not supported")));
    assert!(KeyMaterial::from_key_params(Suite::AesCm128HmacSha1_80, "inline:AAAA").is_err());
    assert!(KeyMaterial::from_key_params(Suite::AesCm128HmacSha1_80, "uri:x").is_err());
}
