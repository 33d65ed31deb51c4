//! The typed view of an audio m-line.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::description::media::MediaDescription;
use sdp::SessionDescription;

use super::SdpError;
use crate::media::Codec;

/// Media direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(key: &str) -> Option<Self> {
        Some(match key {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction an answerer takes for an offer in this direction (§6.1).
    pub fn answer(self) -> Self {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One payload format of an m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    /// Encoding name from `a=rtpmap`, or the static assignment (RFC 3551 §6).
    pub name: Option<String>,
    pub clock_rate: u32,
    pub fmtp: Option<String>,
}

impl Format {
    pub fn codec(&self) -> Option<Codec> {
        let c = Codec::from_name(self.name.as_deref()?)?;
        (c.clock_rate() == self.clock_rate).then_some(c)
    }

    pub fn is_telephone_event(&self) -> bool {
        self.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("telephone-event"))
    }
}

/// The audio stream of a remote SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Index of the audio m-line among all m-lines.
    pub index: usize,
    /// `None` when the port is 0 (rejected) or the address is 0.0.0.0 (RFC 2543 hold).
    pub rtp: Option<SocketAddr>,
    /// From `a=rtcp` (RFC 3605), when present.
    pub rtcp: Option<SocketAddr>,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<Format>,
    pub direction: Direction,
    /// `a=ptime` in ms.
    pub ptime: Option<u32>,
    /// Origin session id and version, to tell a re-offer that changed nothing.
    pub origin: (u64, u64),
    /// `a=crypto` lines (RFC 4568 §9.1), in the offerer's order of preference.
    pub crypto: Vec<Crypto>,
}

/// One `a=crypto:<tag> <suite> <key-params> [<session-params>]` line (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: String,
    pub key_params: String,
    /// Session parameters (e.g. `UNENCRYPTED_SRTP`); any makes the line unusable here.
    pub session_params: bool,
}

impl Crypto {
    fn parse(v: &str) -> Option<Self> {
        let mut it = v.split_whitespace();
        let tag = it.next()?.parse().ok()?;
        let suite = it.next()?.to_owned();
        let key_params = it.next()?.to_owned();
        Some(Self { tag, suite, key_params, session_params: it.next().is_some() })
    }
}

/// A parsed SDP: all m-lines (kind, port, proto, formats) plus the audio one.
#[derive(Debug, Clone)]
pub struct ParsedSdp {
    pub lines: Vec<(String, u16, String, Vec<String>)>,
    pub audio: Option<RemoteMedia>,
    pub desc: SessionDescription,
}

fn attr<'a>(m: &'a MediaDescription, sess: &'a SessionDescription, key: &str) -> Option<&'a str> {
    m.attribute(key).map(|v| v.unwrap_or("")).or_else(|| sess.attribute(key).map(String::as_str))
}

fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    // RFC 3551 Table 4, the audio codecs a telephony peer may use without rtpmap.
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    })
}

pub fn parse(text: &str) -> Result<ParsedSdp, SdpError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).map_err(|e| SdpError::Syntax { reason: e.to_string() })?;
    let mut lines = Vec::new();
    let mut audio = None;
    for (index, m) in desc.media_descriptions.iter().enumerate() {
        let port = u16::try_from(m.media_name.port.value).map_err(|_| SdpError::Syntax { reason: format!("port {} out of range", m.media_name.port.value) })?;
        let proto = m.media_name.protos.join("/");
        lines.push((m.media_name.media.clone(), port, proto.clone(), m.media_name.formats.clone()));
        if audio.is_some() || m.media_name.media != "audio" {
            continue;
        }
        let conn = m.connection_information.as_ref().or(desc.connection_information.as_ref());
        let addr_text = conn.and_then(|c| c.address.as_ref()).map(|a| a.address.clone()).ok_or(SdpError::NoAudio)?;
        // A multicast address may carry "/ttl"; unicast telephony never does.
        let ip: IpAddr = addr_text.split('/').next().unwrap_or("").parse().map_err(|_| SdpError::Address { address: addr_text.clone() })?;
        let mut formats = Vec::new();
        for f in &m.media_name.formats {
            let pt: u8 = f.parse().map_err(|_| SdpError::Syntax { reason: format!("format `{f}` is not a payload type") })?;
            let mut fmt = Format { pt, name: None, clock_rate: 8000, fmtp: None };
            if let Some((n, r)) = static_format(pt) {
                fmt.name = Some(n.into());
                fmt.clock_rate = r;
            }
            formats.push(fmt);
        }
        for a in &m.attributes {
            let Some(v) = a.value.as_deref() else { continue };
            let (pt, rest) = match v.split_once(' ') {
                Some((p, r)) => (p.parse::<u8>().ok(), r.trim()),
                None => (None, ""),
            };
            let Some(f) = pt.and_then(|pt| formats.iter_mut().find(|f| f.pt == pt)) else { continue };
            match a.key.as_str() {
                "rtpmap" => {
                    let mut parts = rest.split('/');
                    f.name = parts.next().map(str::to_owned);
                    f.clock_rate = parts.next().and_then(|r| r.parse().ok()).ok_or_else(|| SdpError::Syntax { reason: format!("rtpmap `{v}` has no clock rate") })?;
                }
                "fmtp" => f.fmtp = Some(rest.to_owned()),
                _ => {}
            }
        }
        let direction = ["sendrecv", "sendonly", "recvonly", "inactive"]
            .iter()
            .find(|k| m.has_attribute(k))
            .or_else(|| ["sendrecv", "sendonly", "recvonly", "inactive"].iter().find(|k| desc.has_attribute(k)))
            .and_then(|k| Direction::from_attr(k))
            .unwrap_or_default();
        let ptime = attr(m, &desc, "ptime").and_then(|p| p.trim().parse().ok());
        let rtcp = m.attribute("rtcp").flatten().and_then(|v| {
            // a=rtcp:<port> [IN IP4 <addr>] (RFC 3605 §2.1)
            let mut it = v.split_whitespace();
            let port: u16 = it.next()?.parse().ok()?;
            let ip = it.nth(2).and_then(|a| a.parse().ok()).unwrap_or(ip);
            Some(SocketAddr::new(ip, port))
        });
        let crypto = m.attributes.iter().filter(|a| a.key == "crypto").filter_map(|a| a.value.as_deref().and_then(Crypto::parse)).collect();
        let usable = port != 0 && !ip.is_unspecified();
        audio = Some(RemoteMedia {
            index,
            rtp: usable.then(|| SocketAddr::new(ip, port)),
            rtcp: rtcp.filter(|_| usable),
            port,
            proto,
            formats,
            direction,
            ptime,
            origin: (desc.origin.session_id, desc.origin.session_version),
            crypto,
        });
    }
    Ok(ParsedSdp { lines, audio, desc })
}
