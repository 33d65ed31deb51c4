//! The answer to a re-offer in an established call (RFC 3264 §8), built from the
//! description we last sent, so that nothing but what the offer changes moves: the
//! address and port, the SRTP key, the ICE credentials and candidates, the DTLS
//! fingerprint all stay.
//!
//! - Direction (§8.4, RFC 6337 §5.1): the answer mirrors the offer's, so `sendonly`
//!   (hold) is answered `recvonly`, `inactive` `inactive`, `sendrecv` (resume) `sendrecv`.
//! - DTLS role (RFC 5763 §5, RFC 8842 §5.5): an answer never says `actpass`. When our
//!   last description offered `actpass`, the answer takes the role the association was
//!   set up with, the opposite of the one the peer answered with then, so no new
//!   handshake starts; an offer naming `active` or `passive` gets the other one.
//! - Formats (§6.1): only payload types the offer lists stay in the answer.
//! - `o=` (§8): the version goes up by one when the description changed, else stays.

use std::io::Cursor;

use sdp::description::common::Attribute;
use sdp::SessionDescription;

use super::model;
use super::SdpError;

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// The answer to `offer` given `last_local`, the description we last sent, and
/// `remote_before`, the peer's description that set the session up (for the DTLS
/// role). Errors only when `offer` does not parse or has no audio stream.
pub fn reanswer(last_local: &str, remote_before: Option<&str>, offer: &str) -> Result<String, SdpError> {
    let parsed = model::parse(offer)?;
    let audio = parsed.audio.as_ref().ok_or(SdpError::NoAudio)?;
    let Ok(mut desc) = unmarshal(last_local) else {
        // Not a description we can edit (we always send one we can): repeat it.
        return Ok(last_local.to_owned());
    };
    let before = desc.marshal();
    let direction = audio.direction.answer();
    let offered: Vec<String> = audio.formats.iter().map(|f| f.pt.to_string()).collect();
    let role = setup_answer(setup_of(&parsed.desc), remote_before.and_then(|r| unmarshal(r).ok()).as_ref().and_then(setup_of));

    desc.attributes.retain(|a| !DIRECTIONS.contains(&a.key.as_str()));
    if let Some(m) = desc.media_descriptions.iter_mut().find(|m| m.media_name.media == "audio") {
        m.attributes.retain(|a| !DIRECTIONS.contains(&a.key.as_str()));
        m.attributes.push(Attribute::new(direction.as_str().to_owned(), None));
        let keep: Vec<String> = m.media_name.formats.iter().filter(|f| offered.contains(f)).cloned().collect();
        if !keep.is_empty() && keep.len() < m.media_name.formats.len() {
            m.attributes.retain(|a| !matches!(a.key.as_str(), "rtpmap" | "fmtp" | "rtcp-fb") || a.value.as_deref().and_then(|v| v.split_whitespace().next()).is_none_or(|pt| pt == "*" || keep.iter().any(|k| k == pt)));
            m.media_name.formats = keep;
        }
        for a in &mut m.attributes {
            if a.key == "setup" && a.value.as_deref() == Some("actpass") {
                a.value = Some(role.to_owned());
            }
        }
    }
    if desc.marshal() != before {
        desc.origin.session_version += 1;
    }
    Ok(desc.marshal())
}

fn unmarshal(text: &str) -> Result<SessionDescription, SdpError> {
    SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).map_err(|e| SdpError::Syntax { reason: e.to_string() })
}

/// The `a=setup` of the first audio m-line (or the session), if any.
fn setup_of(desc: &SessionDescription) -> Option<String> {
    let m = desc.media_descriptions.iter().find(|m| m.media_name.media == "audio");
    m.and_then(|m| m.attribute("setup").flatten()).or_else(|| desc.attribute("setup").map(String::as_str)).map(str::to_ascii_lowercase)
}

/// Our role in the answer: the other of the one the offer names, else the other of the
/// one the peer took when the association was set up; `passive` when nothing says
/// (browsers answer `actpass` with `active`, RFC 5763 §5).
fn setup_answer(offer: Option<String>, established_peer: Option<String>) -> &'static str {
    let other = |r: &str| match r {
        "active" => Some("passive"),
        "passive" => Some("active"),
        _ => None,
    };
    offer.as_deref().and_then(other).or_else(|| established_peer.as_deref().and_then(other)).unwrap_or("passive")
}

#[cfg(test)]
mod tests;
