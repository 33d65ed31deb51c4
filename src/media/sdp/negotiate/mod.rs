//! Building offers and answers (RFC 3264 §5, §6.1) and reading answers (§7).

use std::net::{IpAddr, SocketAddr};

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, TimeDescription, Timing};
use sdp::SessionDescription;

use super::model::{parse, Direction, Format, RemoteMedia};
use super::SdpError;
use crate::media::srtp::{KeyMaterial, Suite};
use crate::media::Codec;

/// Whether a leg uses SRTP with SDES keys (RFC 4568): a profile's `srtp` key; agents'
/// legs use `Optional` (they follow what the softphone offers or answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP; an `RTP/SAVP` offer is refused (488).
    #[default]
    Off,
    /// Offer `RTP/AVP` with `a=crypto` (the peer may ignore it); answer with SRTP when the
    /// offer has a usable `a=crypto`.
    Optional,
    /// Offer `RTP/SAVP`; refuse (488) an offer or answer without a usable `a=crypto`.
    Required,
}

impl SrtpPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(SrtpPolicy::Off),
            "optional" => Some(SrtpPolicy::Optional),
            "required" => Some(SrtpPolicy::Required),
            _ => None,
        }
    }
}

/// The keys of an SRTP leg: ours protects what we send, the remote's what we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    pub local: KeyMaterial,
    pub remote: KeyMaterial,
}

/// The first `a=crypto` of `remote` redial can use: a supported suite, an inline key
/// without MKI, no session parameters. With the tag it came with.
fn usable_crypto(remote: &RemoteMedia) -> Option<(u32, KeyMaterial)> {
    remote.crypto.iter().filter(|c| !c.session_params).find_map(|c| {
        let suite = Suite::parse(&c.suite)?;
        KeyMaterial::from_key_params(suite, &c.key_params).ok().map(|k| (c.tag, k))
    })
}

fn is_savp(proto: &str) -> bool {
    proto == "RTP/SAVP" || proto == "RTP/SAVPF"
}

/// Payload type redial offers for telephone-event (RFC 4733 §7.1.1).
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// redial always packetises 20 ms.
pub const PTIME_MS: u32 = 20;

/// Our side of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address advertised in `c=` (`public_addr` when behind NAT).
    pub addr: IpAddr,
    pub port: u16,
    pub session_id: u64,
    /// Incremented by the caller for each new offer or answer in the dialog (RFC 3264 §8).
    pub session_version: u64,
    pub srtp: SrtpPolicy,
    /// Our SRTP master key and salt (offered under `srtp`; its suite follows the peer's
    /// choice when answering).
    pub key: KeyMaterial,
}

/// The outcome of an offer/answer exchange for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type both sides use for `codec` (the offer's number).
    pub pt: u8,
    /// The payload type for RFC 4733 events, if both sides have it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP; `None` when the remote put the call on hold with 0.0.0.0.
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    /// Packetisation the remote asked for (we send 20 ms regardless; see docs/media.md).
    pub ptime: u32,
    /// What we do: `sends()` = we may send media, `receives()` = we expect it.
    pub direction: Direction,
    /// SRTP keys when the stream is encrypted.
    pub srtp: Option<SrtpKeys>,
}

impl Negotiated {
    /// Whether a re-INVITE moved the remote media (the session needs `set_remote`).
    pub fn remote_changed(&self, previous: &Negotiated) -> bool {
        self.remote_rtp != previous.remote_rtp || self.remote_rtcp != previous.remote_rtcp
    }

    /// The remote put us on hold (RFC 3264 §8.4): we must not send.
    pub fn on_hold(&self) -> bool {
        !self.direction.sends()
    }
}

/// An answer to send and what it agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    pub negotiated: Negotiated,
}

fn base(local: &LocalMedia) -> SessionDescription {
    let ip = if local.addr.is_ipv4() { "IP4" } else { "IP6" };
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "redial".into(),
            session_id: local.session_id,
            session_version: local.session_version,
            network_type: "IN".into(),
            address_type: ip.into(),
            unicast_address: local.addr.to_string(),
        },
        session_name: "redial".into(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: ip.into(),
            address: Some(Address { address: local.addr.to_string(), ttl: None, range: None }),
        }),
        time_descriptions: vec![TimeDescription { timing: Timing { start_time: 0, stop_time: 0 }, repeat_times: vec![] }],
        ..Default::default()
    }
}

fn media_line(kind: &str, port: u16, proto: &str, formats: Vec<String>) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: kind.into(),
            port: RangedPort { value: port as isize, range: None },
            protos: proto.split('/').map(str::to_owned).collect(),
            formats,
        },
        ..Default::default()
    }
}

fn attr(m: &mut MediaDescription, key: &str, value: Option<String>) {
    m.attributes.push(Attribute { key: key.into(), value });
}

fn rtpmap(c: Codec, pt: u8) -> String {
    match c.rtpmap_channels() {
        Some(ch) => format!("{pt} {}/{}/{ch}", c.name(), c.clock_rate()),
        None => format!("{pt} {}/{}", c.name(), c.clock_rate()),
    }
}

fn codec_fmtp(c: Codec) -> Option<&'static str> {
    // Mono voice, in-band FEC against loss (RFC 7587 §6.1).
    (c == Codec::Opus).then_some("useinbandfec=1;stereo=0;sprop-stereo=0")
}

/// redial's offer: the codecs in `codecs` order, then telephone-event/8000
/// (events 0-16), ptime 20, and `direction` (sendrecv, or sendonly to hold).
/// With `local.srtp` on, `a=crypto:1` carries our key, under `RTP/SAVP` when required.
pub fn build_offer(local: &LocalMedia, codecs: &[Codec], direction: Direction) -> String {
    let proto = if local.srtp == SrtpPolicy::Required { "RTP/SAVP" } else { "RTP/AVP" };
    let mut m = media_line("audio", local.port, proto, vec![]);
    for &c in codecs {
        m.media_name.formats.push(c.default_pt().to_string());
    }
    m.media_name.formats.push(TELEPHONE_EVENT_PT.to_string());
    for &c in codecs {
        attr(&mut m, "rtpmap", Some(rtpmap(c, c.default_pt())));
        if let Some(f) = codec_fmtp(c) {
            attr(&mut m, "fmtp", Some(format!("{} {f}", c.default_pt())));
        }
    }
    attr(&mut m, "rtpmap", Some(format!("{TELEPHONE_EVENT_PT} telephone-event/8000")));
    attr(&mut m, "fmtp", Some(format!("{TELEPHONE_EVENT_PT} 0-16")));
    attr(&mut m, "ptime", Some(PTIME_MS.to_string()));
    attr(&mut m, direction.as_str(), None);
    if local.srtp != SrtpPolicy::Off {
        attr(&mut m, "crypto", Some(format!("1 {} {}", local.key.suite.name(), local.key.inline())));
    }
    let mut d = base(local);
    d.media_descriptions.push(m);
    d.marshal()
}

fn usable_proto(p: &str) -> bool {
    p == "RTP/AVP" || p == "RTP/AVPF" || is_savp(p)
}

/// The SRTP keys an offer/answer agrees on under `policy` (RFC 4568 §7.1.2 / §7.1.3):
/// the peer's first usable `a=crypto`, or none when SRTP is not wanted or not offered.
fn agree_srtp(policy: SrtpPolicy, remote: &RemoteMedia, local_key: KeyMaterial) -> Result<Option<(u32, SrtpKeys)>, SdpError> {
    let savp = is_savp(&remote.proto);
    if policy == SrtpPolicy::Off {
        return if savp { Err(SdpError::SrtpOff) } else { Ok(None) };
    }
    match usable_crypto(remote) {
        Some((tag, remote_key)) => Ok(Some((tag, SrtpKeys { local: KeyMaterial { suite: remote_key.suite, ..local_key }, remote: remote_key }))),
        None if policy == SrtpPolicy::Required || savp => Err(SdpError::SrtpRequired),
        None => Ok(None),
    }
}

fn pick_event(remote: &RemoteMedia, clock_rate: u32) -> Option<&Format> {
    let events = || remote.formats.iter().filter(|f| f.is_telephone_event());
    events().find(|f| f.clock_rate == clock_rate).or_else(|| events().find(|f| f.clock_rate == 8000))
}

fn intersect(a: Direction, b: Direction) -> Direction {
    match (a.sends() && b.sends(), a.receives() && b.receives()) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// Answers an offer (initial or re-INVITE) per RFC 3264 §6.1: the first
/// offered codec in the order of `prefs` (the profile's `codecs`) is chosen
/// and keeps the offer's payload type number, as does telephone-event; the
/// direction mirrors the offer's (sendonly → recvonly, inactive → inactive),
/// narrowed by `local_direction`; every other m-line is rejected with port 0.
pub fn answer_offer(offer: &str, local: &LocalMedia, prefs: &[Codec], local_direction: Direction) -> Result<Answer, SdpError> {
    let parsed = parse(offer)?;
    let remote = parsed.audio.ok_or(SdpError::NoAudio)?;
    if remote.port == 0 {
        return Err(SdpError::Rejected);
    }
    if !usable_proto(&remote.proto) {
        return Err(SdpError::NoAudio);
    }
    let chosen = prefs
        .iter()
        .find_map(|&c| remote.formats.iter().find(|f| f.codec() == Some(c)).map(|f| (c, f.pt)))
        .ok_or_else(|| SdpError::NoCommonCodec {
            offered: remote.formats.iter().map(|f| f.name.clone().unwrap_or_else(|| f.pt.to_string())).collect(),
            accepted: prefs.iter().map(|c| c.name().to_owned()).collect(),
        })?;
    let (codec, pt) = chosen;
    let srtp = agree_srtp(local.srtp, &remote, local.key)?;
    let event = pick_event(&remote, codec.clock_rate()).cloned();
    let direction = intersect(remote.direction.answer(), local_direction);
    let direction = if remote.rtp.is_none() { intersect(direction, Direction::RecvOnly) } else { direction };

    let mut d = base(local);
    for (i, (kind, _port, proto, formats)) in parsed.lines.iter().enumerate() {
        if i != remote.index {
            d.media_descriptions.push(media_line(kind, 0, proto, formats.clone()));
            continue;
        }
        let mut fmts = vec![pt.to_string()];
        fmts.extend(event.as_ref().map(|e| e.pt.to_string()));
        let mut m = media_line("audio", local.port, proto, fmts);
        attr(&mut m, "rtpmap", Some(rtpmap(codec, pt)));
        if let Some(f) = codec_fmtp(codec) {
            attr(&mut m, "fmtp", Some(format!("{pt} {f}")));
        }
        if let Some(e) = &event {
            attr(&mut m, "rtpmap", Some(format!("{} telephone-event/{}", e.pt, e.clock_rate)));
            attr(&mut m, "fmtp", Some(format!("{} 0-16", e.pt)));
        }
        attr(&mut m, "ptime", Some(PTIME_MS.to_string()));
        attr(&mut m, direction.as_str(), None);
        if let Some((tag, keys)) = &srtp {
            // The answer keeps the offer's tag and suite, with our own key (§7.1.2).
            attr(&mut m, "crypto", Some(format!("{tag} {} {}", keys.local.suite.name(), keys.local.inline())));
        }
        d.media_descriptions.push(m);
    }
    let negotiated = Negotiated {
        codec,
        pt,
        telephone_event: event.map(|e| e.pt),
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        ptime: remote.ptime.unwrap_or(PTIME_MS),
        direction,
        srtp: srtp.map(|(_, k)| k),
    };
    Ok(Answer { sdp: d.marshal(), negotiated })
}

/// Reads the answer to an offer made by [`build_offer`] with `offered` codecs,
/// `our_direction` and `local`'s SRTP policy and key. The answerer's first listed codec
/// is the one used.
pub fn accept_answer(answer: &str, offered: &[Codec], our_direction: Direction, local: &LocalMedia) -> Result<Negotiated, SdpError> {
    let remote = parse(answer)?.audio.ok_or(SdpError::NoAudio)?;
    if remote.port == 0 {
        return Err(SdpError::Rejected);
    }
    // Only the tag we offered (1) can come back (RFC 4568 §7.1.3).
    let srtp = match local.srtp {
        SrtpPolicy::Off => None,
        policy => match usable_crypto(&remote).filter(|(tag, k)| *tag == 1 && k.suite == local.key.suite) {
            Some((_, remote_key)) => Some(SrtpKeys { local: local.key, remote: remote_key }),
            None if policy == SrtpPolicy::Required || is_savp(&remote.proto) => return Err(SdpError::SrtpRequired),
            None => None,
        },
    };
    let first = remote.formats.iter().find(|f| !f.is_telephone_event() && f.name.as_deref() != Some("CN")).ok_or(SdpError::NoCommonCodec {
        offered: offered.iter().map(|c| c.name().to_owned()).collect(),
        accepted: vec![],
    })?;
    let codec = first
        .codec()
        .filter(|c| offered.contains(c))
        .or_else(|| offered.iter().copied().find(|c| c.default_pt() == first.pt && first.name.is_none()))
        .ok_or(SdpError::NotOffered { pt: first.pt })?;
    let event = pick_event(&remote, codec.clock_rate());
    // Our direction is what we offered, narrowed by what the answer allows (§6.1 mirrored).
    let direction = intersect(our_direction, remote.direction.answer());
    Ok(Negotiated {
        codec,
        pt: first.pt,
        telephone_event: event.map(|e| e.pt),
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        ptime: remote.ptime.unwrap_or(PTIME_MS),
        direction,
        srtp,
    })
}

#[cfg(test)]
mod tests;
