//! Building the UA core's responses (RFC 3261 §8.2.6).

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response, StatusCode};

use crate::sip::codec;
use crate::sip::transaction::response_for;

/// The Server header value we send (§20.35).
pub const SERVER: &str = concat!("redial/", env!("CARGO_PKG_VERSION"));

/// A response to `req` with the §8.2.6.2 headers, a To tag when the request had none
/// (every final response from a UAS needs one), and a Server header.
pub fn reply(req: &Request, status: u16) -> Response {
    let mut resp = response_for(req, StatusCode::from(status));
    if status > 100 {
        for h in resp.headers.iter_mut() {
            if let Header::To(to) = h {
                if !has_tag(to.value()) {
                    *h = Header::To(rsip::headers::To::new(format!("{};tag={}", to.value(), codec::new_tag())));
                }
            }
        }
    }
    resp.headers.push(Header::Server(rsip::headers::Server::new(SERVER)));
    resp
}

/// Whether a From/To value carries a `tag` param (outside the URI's angle brackets).
pub fn has_tag(value: &str) -> bool {
    let params = match value.rfind('>') {
        Some(i) => &value[i..],
        None => value,
    };
    params.split(';').skip(1).any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}

/// The `user` of the Request-URI (`sip:user@host` or a `tel:` number), if any.
pub fn request_user(req: &Request) -> Option<String> {
    match &req.uri.scheme {
        Some(rsip::Scheme::Other(s)) if s.eq_ignore_ascii_case("tel") => Some(req.uri.to_string()[4..].split(';').next()?.to_string()),
        _ => req.uri.auth.as_ref().map(|a| unescape_user(&a.user)),
    }
}

/// A URI user with its `%HH` escapes decoded: escaped and plain characters name the same
/// user (RFC 3261 §19.1.4), and the codec escapes users rsip cannot read as they are.
fn unescape_user(user: &str) -> String {
    if !user.contains('%') {
        return user.to_string();
    }
    let b = user.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_detection_ignores_uri_params() {
        assert!(has_tag("<sip:a@b>;tag=1"));
        assert!(!has_tag("<sip:a@b;tag=1>"));
        assert!(has_tag("sip:a@b;tag=1"));
        assert!(!has_tag("<sip:a@b>"));
    }

    #[test]
    fn users_are_unescaped() {
        assert_eq!(unescape_user("t%2Ewatson"), "t.watson");
        assert_eq!(unescape_user("%75se%72"), "user");
        assert_eq!(unescape_user("100%"), "100%");
        assert_eq!(unescape_user("a%zz"), "a%zz");
    }
}
