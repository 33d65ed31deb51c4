//! SRTP and SRTCP (RFC 3711) with the AES_CM_128_HMAC_SHA1_80 and _32 suites, keyed by
//! SDES (RFC 4568). Sans-IO: [`SrtpContext::protect`] / [`SrtpContext::unprotect`] turn
//! one datagram into another; the media task calls them on the way out and in.
//!
//! Hand-written over RustCrypto's `aes`, `ctr`, `hmac` and `sha1` because the SRTP
//! crates either pull a whole WebRTC stack or bind libsrtp; the transform is small and is
//! checked against RFC 3711 Appendix B's vectors.
//!
//! - Session keys are derived once (key derivation rate 0, §4.3.1): labels 0–2 for SRTP,
//!   3–5 for SRTCP.
//! - The packet index is ROC‖SEQ (§3.3.1); the receiver estimates the ROC from its
//!   highest sequence number and only moves it after the tag verified.
//! - Replayed or too-old packets (outside a 128-packet window) are refused (§3.3.2).
//! - Master key lifetime: 2^48 packets, never reached by a call; MKIs are not used.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha1 = Hmac<Sha1>;

/// Master key and salt lengths of the AES_CM_128 suites (RFC 4568 §6.2).
pub const MASTER_KEY_LEN: usize = 16;
pub const MASTER_SALT_LEN: usize = 14;

/// The crypto suites supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// Length of the SRTP authentication tag; SRTCP always uses 80 bits (RFC 4568 §6.2.1).
    fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

const RTCP_TAG_LEN: usize = 10;

/// A suite with its master key and salt, as `a=crypto` carries it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyMaterial {
    pub suite: Suite,
    pub key: [u8; MASTER_KEY_LEN],
    pub salt: [u8; MASTER_SALT_LEN],
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never go to logs.
        f.debug_struct("KeyMaterial").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Fresh random key material.
    pub fn random(suite: Suite) -> Self {
        let mut key = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        rand::fill(&mut key[..]);
        rand::fill(&mut salt[..]);
        Self { suite, key, salt }
    }

    /// The key parameter `inline:<base64 of key‖salt>` (RFC 4568 §6.1).
    pub fn inline(&self) -> String {
        use base64::Engine;
        let mut b = [0u8; MASTER_KEY_LEN + MASTER_SALT_LEN];
        b[..MASTER_KEY_LEN].copy_from_slice(&self.key);
        b[MASTER_KEY_LEN..].copy_from_slice(&self.salt);
        format!("inline:{}", base64::engine::general_purpose::STANDARD.encode(b))
    }

    /// Parses `inline:<base64>[|lifetime][|MKI:len]` for `suite`. Keys with an MKI
    /// are refused (we would have to carry it in every packet).
    pub fn from_key_params(suite: Suite, params: &str) -> Result<Self, SrtpError> {
        use base64::Engine;
        let inline = params.split(';').next().unwrap_or_default().trim();
        let body = inline.strip_prefix("inline:").ok_or(SrtpError::BadKey("not an inline: key"))?;
        let mut parts = body.split('|');
        let b64 = parts.next().unwrap_or_default();
        for p in parts {
            if p.contains(':') {
                return Err(SrtpError::BadKey("MKI is not supported"));
            }
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| SrtpError::BadKey("not base64"))?;
        if raw.len() != MASTER_KEY_LEN + MASTER_SALT_LEN {
            return Err(SrtpError::BadKey("key and salt must be 30 bytes"));
        }
        let mut key = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        key.copy_from_slice(&raw[..MASTER_KEY_LEN]);
        salt.copy_from_slice(&raw[MASTER_KEY_LEN..]);
        Ok(Self { suite, key, salt })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short")]
    TooShort,
    #[error("authentication failed")]
    Auth,
    #[error("replayed or too old")]
    Replay,
    #[error("bad key: {0}")]
    BadKey(&'static str),
}

/// The session keys of one direction for SRTP or SRTCP.
#[derive(Clone)]
struct SessionKeys {
    enc: [u8; 16],
    salt: [u8; 14],
    auth: HmacSha1,
}

/// AES-CM keystream over `data` with `key` and the 128-bit `iv` (RFC 3711 §4.1.1).
fn aes_cm(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let mut c = Aes128Ctr::new(key.into(), iv.into());
    c.apply_keystream(data);
}

/// Key derivation with kdr = 0 (RFC 3711 §4.3.1): AES-CM under the master key with
/// IV = (label‖0⁴⁸ XOR master salt)·2¹⁶.
fn derive(m: &KeyMaterial, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&m.salt);
    iv[7] ^= label;
    out.fill(0);
    aes_cm(&m.key, &iv, out);
}

fn session_keys(m: &KeyMaterial, base_label: u8) -> SessionKeys {
    let mut enc = [0u8; 16];
    let mut auth = [0u8; 20];
    let mut salt = [0u8; 14];
    derive(m, base_label, &mut enc);
    derive(m, base_label + 1, &mut auth);
    derive(m, base_label + 2, &mut salt);
    SessionKeys { enc, salt, auth: <HmacSha1 as Mac>::new_from_slice(&auth).expect("any key length") }
}

/// IV = salt·2¹⁶ XOR SSRC·2⁶⁴ XOR index·2¹⁶ (RFC 3711 §4.1.1).
fn packet_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
        iv[4 + i] ^= b;
    }
    for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
        iv[8 + i] ^= b;
    }
    iv
}

/// A 128-packet sliding replay window (RFC 3711 §3.3.2).
#[derive(Debug, Clone, Default)]
struct ReplayWindow {
    top: Option<u64>,
    bits: u128,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        match self.top {
            None => Ok(()),
            Some(top) if index > top => Ok(()),
            Some(top) if top - index >= 128 => Err(SrtpError::Replay),
            Some(top) if self.bits & (1u128 << (top - index)) != 0 => Err(SrtpError::Replay),
            Some(_) => Ok(()),
        }
    }

    fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => self.bits |= 1u128 << (top - index),
            Some(top) => {
                let shift = index - top;
                self.bits = if shift >= 128 { 0 } else { self.bits << shift };
                self.bits |= 1;
                self.top = Some(index);
            }
            None => {
                self.top = Some(index);
                self.bits = 1;
            }
        }
    }
}

/// Per-SSRC stream state of one direction.
#[derive(Debug, Clone, Default)]
struct Stream {
    ssrc: Option<u32>,
    roc: u32,
    /// Highest sequence number seen (receiver) or sent (sender).
    s_l: u16,
    replay: ReplayWindow,
    /// SRTCP: the next index to send; the receiver's window is `rtcp_replay`.
    rtcp_index: u32,
    rtcp_replay: ReplayWindow,
}

/// The SRTP/SRTCP state of one direction of one leg (a sender or a receiver).
#[derive(Clone)]
pub struct SrtpContext {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    stream: Stream,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext").field("suite", &self.suite).field("stream", &self.stream).finish_non_exhaustive()
    }
}

/// Length of the RTP header (fixed part, CSRCs, extension), or `None` when malformed.
fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut n = 12 + 4 * (p[0] & 0x0f) as usize;
    if p[0] & 0x10 != 0 {
        let ext = p.get(n + 2..n + 4)?;
        n += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    (n <= p.len()).then_some(n)
}

impl SrtpContext {
    pub fn new(m: &KeyMaterial) -> Self {
        Self { suite: m.suite, rtp: session_keys(m, 0), rtcp: session_keys(m, 3), stream: Stream::default() }
    }

    fn tag(keys: &SessionKeys, parts: &[&[u8]], len: usize) -> [u8; 10] {
        let mut mac = keys.auth.clone();
        for p in parts {
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut t = [0u8; 10];
        t[..len].copy_from_slice(&full[..len]);
        t
    }

    /// Encrypts and authenticates an RTP packet (RFC 3711 §3.3).
    pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let hl = rtp_header_len(packet).ok_or(SrtpError::TooShort)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let s = &mut self.stream;
        if s.ssrc != Some(ssrc) {
            *s = Stream { ssrc: Some(ssrc), s_l: seq, ..Stream::default() };
        } else if seq < s.s_l && s.s_l - seq > 0x8000 {
            // The sequence number wrapped: the rollover counter counts it (§3.3.1).
            s.roc = s.roc.wrapping_add(1);
            s.s_l = seq;
        } else if seq > s.s_l && seq - s.s_l < 0x8000 {
            s.s_l = seq;
        }
        let roc = s.roc;
        let index = (u64::from(roc) << 16) | u64::from(seq);
        let tag_len = self.suite.rtp_tag_len();
        let mut out = Vec::with_capacity(packet.len() + tag_len);
        out.extend_from_slice(packet);
        aes_cm(&self.rtp.enc, &packet_iv(&self.rtp.salt, ssrc, index), &mut out[hl..]);
        let tag = Self::tag(&self.rtp, &[&out, &roc.to_be_bytes()], tag_len);
        out.extend_from_slice(&tag[..tag_len]);
        Ok(out)
    }

    /// Verifies and decrypts an SRTP packet into RTP.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        if packet.len() < 12 + tag_len {
            return Err(SrtpError::TooShort);
        }
        let (body, tag) = packet.split_at(packet.len() - tag_len);
        let hl = rtp_header_len(body).ok_or(SrtpError::TooShort)?;
        let seq = u16::from_be_bytes([body[2], body[3]]);
        let ssrc = u32::from_be_bytes([body[8], body[9], body[10], body[11]]);
        if self.stream.ssrc != Some(ssrc) {
            // A new source (the first packet, or the remote restarted): new stream state.
            self.stream = Stream { ssrc: Some(ssrc), s_l: seq, ..Stream::default() };
        }
        let s = &self.stream;
        // Estimate the ROC of this packet (§3.3.1, Appendix A).
        let v = if s.s_l < 0x8000 {
            if seq > s.s_l && seq - s.s_l > 0x8000 { s.roc.wrapping_sub(1) } else { s.roc }
        } else if s.s_l - 0x8000 > seq {
            s.roc.wrapping_add(1)
        } else {
            s.roc
        };
        let index = (u64::from(v) << 16) | u64::from(seq);
        s.replay.check(index)?;
        let expected = Self::tag(&self.rtp, &[body, &v.to_be_bytes()], tag_len);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..tag_len], tag)) {
            return Err(SrtpError::Auth);
        }
        let s = &mut self.stream;
        if v == s.roc.wrapping_add(1) {
            s.roc = v;
            s.s_l = seq;
        } else if v == s.roc && seq > s.s_l {
            s.s_l = seq;
        }
        s.replay.accept(index);
        let mut out = body.to_vec();
        aes_cm(&self.rtp.enc, &packet_iv(&self.rtp.salt, ssrc, index), &mut out[hl..]);
        Ok(out)
    }

    /// Encrypts and authenticates a compound RTCP packet (RFC 3711 §3.4): the first 8
    /// bytes stay clear, then E‖SRTCP index and the 80-bit tag follow.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < 8 {
            return Err(SrtpError::TooShort);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let index = self.stream.rtcp_index & 0x7fff_ffff;
        self.stream.rtcp_index = (index + 1) & 0x7fff_ffff;
        let mut out = Vec::with_capacity(packet.len() + 4 + RTCP_TAG_LEN);
        out.extend_from_slice(packet);
        aes_cm(&self.rtcp.enc, &packet_iv(&self.rtcp.salt, ssrc, u64::from(index)), &mut out[8..]);
        out.extend_from_slice(&(0x8000_0000 | index).to_be_bytes());
        let tag = Self::tag(&self.rtcp, &[&out], RTCP_TAG_LEN);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Verifies and decrypts an SRTCP packet into RTCP.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < 8 + 4 + RTCP_TAG_LEN {
            return Err(SrtpError::TooShort);
        }
        let (body, tag) = packet.split_at(packet.len() - RTCP_TAG_LEN);
        let expected = Self::tag(&self.rtcp, &[body], RTCP_TAG_LEN);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], tag)) {
            return Err(SrtpError::Auth);
        }
        let (rtcp, e_index) = body.split_at(body.len() - 4);
        let word = u32::from_be_bytes([e_index[0], e_index[1], e_index[2], e_index[3]]);
        let index = u64::from(word & 0x7fff_ffff);
        self.stream.rtcp_replay.check(index)?;
        self.stream.rtcp_replay.accept(index);
        let mut out = rtcp.to_vec();
        if word & 0x8000_0000 != 0 {
            let ssrc = u32::from_be_bytes([rtcp[4], rtcp[5], rtcp[6], rtcp[7]]);
            aes_cm(&self.rtcp.enc, &packet_iv(&self.rtcp.salt, ssrc, index), &mut out[8..]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
