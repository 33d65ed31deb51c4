//! Helpers for the unit tests of auth, registration, keepalive and registrar:
//! seeded RNGs, messages from text, responses built from requests.

use rand::rngs::SmallRng;
use rand::SeedableRng;

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// Normalises `\n` to CRLF and adds the empty line. rsip 0.4 quirk: it only
/// knows full header names (no `v:`, `f:`, `i:` compact forms), so tests use
/// full names.
fn wire(text: &str) -> String {
    let mut s = text.trim_start().replace("\r\n", "\n").replace('\n', "\r\n");
    if !s.ends_with("\r\n\r\n") {
        s = s.trim_end().to_string() + "\r\n\r\n";
    }
    s
}

pub fn request(text: &str) -> rsip::Request {
    match rsip::SipMessage::try_from(wire(text).as_str()).expect("test request parses") {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("not a request"),
    }
}

pub fn response(text: &str) -> rsip::Response {
    match rsip::SipMessage::try_from(wire(text).as_str()).expect("test response parses") {
        rsip::SipMessage::Response(r) => r,
        rsip::SipMessage::Request(_) => panic!("not a response"),
    }
}

/// A response to `req` copying Via/From/To/Call-ID/CSeq, with `extra`
/// header lines (`Name: value`).
pub fn reply(req: &rsip::Request, code: u16, extra: &[String]) -> rsip::Response {
    let mut text = format!("SIP/2.0 {code} Whatever\n");
    for h in req.headers.iter() {
        match h {
            rsip::Header::Via(_) | rsip::Header::From(_) | rsip::Header::To(_) | rsip::Header::CallId(_) | rsip::Header::CSeq(_) => {
                text += &format!("{h}\n");
            }
            _ => {}
        }
    }
    for e in extra {
        text += e;
        text += "\n";
    }
    text += "Content-Length: 0\n";
    response(&text)
}

/// Header values of a kind, by display name (case-insensitive).
pub fn header_values(headers: &rsip::Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let s = h.to_string();
            let (n, v) = s.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .collect()
}
