//! Bytes → `rsip::SipMessage`, with the checks that turn bad input into a response.
//!
//! rsip's tokenizer is strict about the header syntax it accepts (no compact names,
//! no folding, no space before `:`, one Via per line) and does not look at
//! Content-Length at all. So we first split the head ourselves, normalise each line
//! and check the message, then hand a canonical copy to rsip.

use std::borrow::Cow;

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, SipMessage, StatusCode};

use super::headers::{check_name_addr, escape_user_for_rsip, is_plain_sip_uri, is_token_byte, parse_method, split_list};
use super::MAX_MESSAGE_SIZE;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("message of {len} bytes exceeds the {max} byte limit", max = MAX_MESSAGE_SIZE)]
    TooLarge { len: usize },
    #[error("no start line")]
    Empty,
    #[error("bad start line")]
    BadStartLine,
    /// A request line with a SIP version other than 2.0 (RFC 3261 §21.5.10).
    #[error("SIP version `{version}` is not supported")]
    VersionNotSupported { version: String },
    #[error("headers are not terminated by an empty line")]
    Unterminated,
    #[error("header line {line} is malformed")]
    BadHeaderLine { line: usize },
    #[error("header line {line} is not UTF-8")]
    NotUtf8 { line: usize },
    #[error("missing {header}")]
    Missing { header: &'static str },
    #[error("more than one {header}")]
    Duplicate { header: &'static str },
    #[error("Content-Length `{value}` is not a number")]
    BadContentLength { value: String },
    #[error("body is {actual} bytes, Content-Length says {declared}")]
    BodyTooShort { declared: usize, actual: usize },
    #[error("CSeq `{value}` is malformed")]
    BadCSeq { value: String },
    #[error("CSeq method {cseq} does not match the request method {method}")]
    CSeqMethodMismatch { cseq: String, method: String },
    #[error("Max-Forwards `{value}` is not a number")]
    BadMaxForwards { value: String },
    #[error("Max-Forwards is 0")]
    TooManyHops,
    #[error("{header} URI is invalid")]
    InvalidUri { header: &'static str },
    #[error("Request-URI scheme `{scheme}` is not supported")]
    UnsupportedScheme { scheme: String },
    #[error("Via is malformed")]
    BadVia,
    /// A well-formed method rsip has no variant for (it knows RFC 3261 + extensions only).
    #[error("method {method} is not supported")]
    UnknownMethod { method: String },
    /// Our checks passed but rsip's tokenizer still refused (kept as rsip's own error).
    #[error("rsip refused the message: {0}")]
    Rsip(rsip::Error),
}

impl DecodeErrorKind {
    /// The status this problem is answered with (RFC 3261 §8.2, §16.3 step 3, §21.5.11).
    pub fn status(&self) -> u16 {
        match self {
            DecodeErrorKind::TooLarge { .. } => 513,
            DecodeErrorKind::TooManyHops => 483,
            DecodeErrorKind::UnknownMethod { .. } => 501,
            DecodeErrorKind::UnsupportedScheme { .. } => 416,
            DecodeErrorKind::VersionNotSupported { .. } => 505,
            _ => 400,
        }
    }
}

/// A refused message: what was wrong, and the response to send when one can be addressed
/// (a request with Via, From, To, Call-ID and CSeq we could read). `None` means drop it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub reply: Option<Box<rsip::Response>>,
}

/// Full names for the compact forms (RFC 3261 §7.3.3 and the IANA SIP header registry).
fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'm' => "Contact",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'e' => "Content-Encoding",
        b'k' => "Supported",
        b's' => "Subject",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'x' => "Session-Expires",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'y' => "Identity",
        _ => return None,
    })
}

/// Headers that may appear once only (RFC 3261 §7.3.1: the others can be lists).
const SINGLE: &[&str] = &["Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type", "Expires"];

/// Headers whose comma lists we split into one line per value, so rsip's typed
/// forms (one value each) work (RFC 3261 §7.3.1 makes both forms equivalent).
const SPLIT: &[&str] = &["Via", "Contact", "Route", "Record-Route"];

struct Line<'a> {
    name: Cow<'a, str>,
    value: Cow<'a, str>,
}

/// What we have read of a message before rsip sees it.
struct Head<'a> {
    start: &'a str,
    /// Why the start line is refused; the head is still read so a request can be answered.
    start_error: Option<DecodeErrorKind>,
    is_request: bool,
    method: Option<&'a str>,
    lines: Vec<Line<'a>>,
    body: &'a [u8],
}

impl<'a> Head<'a> {
    fn first(&self, name: &str) -> Option<&str> {
        self.lines.iter().find(|l| l.name.eq_ignore_ascii_case(name)).map(|l| l.value.as_ref())
    }
    fn count(&self, name: &str) -> usize {
        self.lines.iter().filter(|l| l.name.eq_ignore_ascii_case(name)).count()
    }
}

/// Decodes one message (a whole UDP datagram, or one frame cut by the TCP framer).
pub fn decode(bytes: &[u8]) -> Result<SipMessage, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        // Read just enough of the head to address a 513, if we can.
        let head = split_head(&bytes[..MAX_MESSAGE_SIZE]).ok();
        let reply = head.as_ref().and_then(|h| error_reply(h, 513, None));
        return Err(DecodeError { kind: DecodeErrorKind::TooLarge { len: bytes.len() }, reply });
    }
    decode_checked(bytes, true)
}

/// [`decode`], with `direct` choosing whether a `sip:`/`sips:` request is built straight from
/// the checked head (see [`direct_request`]) or, like every other message, by rsip from the
/// canonical text; the unit tests compare the two.
pub(super) fn decode_checked(bytes: &[u8], direct: bool) -> Result<SipMessage, DecodeError> {
    let head = split_head(bytes).map_err(|kind| DecodeError { kind, reply: None })?;
    let request_uri = match check(&head) {
        Ok(u) => u,
        Err(kind) => {
            let reply = error_reply(&head, kind.status(), Some(&kind.to_string()));
            return Err(DecodeError { kind, reply });
        }
    };
    let body = body_of(&head).map_err(|kind| {
        let reply = error_reply(&head, 400, Some(&kind.to_string()));
        DecodeError { kind, reply }
    })?;
    if direct {
        if let Some(req) = request_uri.and_then(|uri| direct_request(&head, body, uri)) {
            return Ok(SipMessage::Request(req));
        }
    }
    let canonical = rebuild(&head, body);
    SipMessage::try_from(canonical.as_slice()).map_err(|e| {
        let kind = DecodeErrorKind::Rsip(e);
        let reply = error_reply(&head, 400, None);
        DecodeError { kind, reply }
    })
}

/// The 513 for a request whose head is `head` but whose body would exceed the cap
/// (seen by the TCP framer before the body arrives).
pub fn too_large_reply(head: &[u8]) -> Option<Box<rsip::Response>> {
    let head = split_head(head).ok()?;
    error_reply(&head, 513, None)
}

/// Splits start line, header lines (unfolded, names normalised) and body.
fn split_head(bytes: &[u8]) -> Result<Head<'_>, DecodeErrorKind> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let mut pos = 0;
    while pos < bytes.len() && (bytes[pos] == b'\r' || bytes[pos] == b'\n') {
        pos += 1;
    }
    if pos == bytes.len() {
        return Err(DecodeErrorKind::Empty);
    }
    let mut raw_lines: Vec<(usize, &[u8])> = Vec::new();
    let mut body_at = None;
    let mut n = 0;
    while pos < bytes.len() {
        let end = memchr(b'\n', &bytes[pos..]).map(|i| pos + i);
        let Some(end) = end else { break };
        let mut line = &bytes[pos..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        pos = end + 1;
        n += 1;
        if line.is_empty() {
            body_at = Some(pos);
            break;
        }
        raw_lines.push((n, line));
    }
    // A datagram whose last header line ends with CRLF but lacks the empty line is one
    // whole message all the same (RFC 3261 §18.3: the datagram frames it); a stream never
    // hands us such a frame.
    let body_at = match body_at {
        Some(at) => at,
        None if bytes.ends_with(b"\n") && !raw_lines.is_empty() => bytes.len(),
        None => return Err(DecodeErrorKind::Unterminated),
    };
    let (&(_, start), headers) = raw_lines.split_first().ok_or(DecodeErrorKind::Empty)?;
    let start = std::str::from_utf8(start).map_err(|_| DecodeErrorKind::BadStartLine)?;
    let (is_request, method, start_error) = match parse_start(start) {
        Ok((r, m)) => (r, m, None),
        // Answerable only if it still looks like a request line (`METHOD ...`).
        Err(e) => {
            let method = start.split(' ').next().filter(|m| !m.is_empty() && m.bytes().all(is_token_byte));
            (!start.starts_with("SIP/") && method.is_some(), method, Some(e))
        }
    };

    let mut lines: Vec<Line<'_>> = Vec::with_capacity(headers.len());
    for &(no, raw) in headers {
        let text = std::str::from_utf8(raw).map_err(|_| DecodeErrorKind::NotUtf8 { line: no })?;
        if text.starts_with([' ', '\t']) {
            // Folded continuation (RFC 3261 §7.3.1): join with one space.
            let last = lines.last_mut().ok_or(DecodeErrorKind::BadHeaderLine { line: no })?;
            let mut v = last.value.clone().into_owned();
            v.push(' ');
            v.push_str(text.trim());
            last.value = Cow::Owned(v);
            continue;
        }
        let (name, value) = text.split_once(':').ok_or(DecodeErrorKind::BadHeaderLine { line: no })?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(DecodeErrorKind::BadHeaderLine { line: no });
        }
        let name = match expand_compact(name) {
            Some(full) => Cow::Borrowed(full),
            None => Cow::Borrowed(name),
        };
        lines.push(Line { name, value: Cow::Borrowed(value.trim()) });
    }
    // Linear white space around separators is allowed (RFC 3261 §7.3.1, §25.1 SEMI/EQUAL/
    // COMMA/SLASH); rsip's typed headers are not that liberal, so it is taken out here.
    for l in &mut lines {
        if let Some(slash) = TIDY.iter().find(|(n, _)| l.name.eq_ignore_ascii_case(n)).map(|(_, s)| *s) {
            if l.value.contains([' ', '\t']) {
                l.value = Cow::Owned(tidy(&l.value, slash));
            }
        }
    }
    // One value per line for the list headers rsip types one at a time.
    if lines.iter().any(|l| SPLIT.iter().any(|s| l.name.eq_ignore_ascii_case(s)) && l.value.contains(',')) {
        let mut out = Vec::with_capacity(lines.len() + 2);
        for l in lines {
            if SPLIT.iter().any(|s| l.name.eq_ignore_ascii_case(s)) && l.value.contains(',') {
                for part in split_list(&l.value) {
                    out.push(Line { name: l.name.clone(), value: Cow::Owned(part.to_string()) });
                }
            } else {
                out.push(l);
            }
        }
        lines = out;
    }
    Ok(Head { start, start_error, is_request, method, lines, body: &bytes[body_at..] })
}

fn parse_start(start: &str) -> Result<(bool, Option<&str>), DecodeErrorKind> {
    if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
        let code = rest.split(' ').next().unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with('0') {
            return Err(DecodeErrorKind::BadStartLine);
        }
        return Ok((false, None));
    }
    // RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces, nothing after.
    let mut parts = start.split(' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(DecodeErrorKind::BadStartLine);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) || uri.is_empty() {
        return Err(DecodeErrorKind::BadStartLine);
    }
    if version != "SIP/2.0" {
        // `SIP/x.y` of another version is 505 (§21.5.10, RFC 4475 §3.1.2.16); anything else is malformed.
        let other_sip = version.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
            && version[4..].split_once('.').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            });
        return Err(if other_sip {
            DecodeErrorKind::VersionNotSupported { version: version.to_string() }
        } else {
            DecodeErrorKind::BadStartLine
        });
    }
    Ok((true, Some(method)))
}

/// The request rsip's message tokenizer would make of [`rebuild`]'s text, built from the
/// checked head without tokenizing it again: the method and Request-URI as rsip reads them
/// (`checked_uri` is the Request-URI [`check`] parsed, reused when it is a plain one),
/// and each header line turned into its rsip header by rsip's own name table. rsip's
/// message tokenizer first tries the whole text as a response and formats the rest of the
/// input into an error string at every alternative that fails, which made decoding the
/// costliest step of a REGISTER. `None` when any part does not convert (the caller then takes
/// the rsip path, so nothing is accepted that it would refuse).
fn direct_request(head: &Head<'_>, body: &[u8], checked_uri: rsip::Uri) -> Option<rsip::Request> {
    let mut parts = head.start.split(' ');
    let (method, uri) = (parts.next()?, parts.next()?);
    // rsip reads some odd URIs differently alone than inside a request line (a property
    // test found `sip:127.0.0;1:5060`); plain ones it reads the same.
    if !is_plain_sip_uri(uri) {
        return None;
    }
    let method = parse_method(method, "Request-Line").ok()?;
    let mut headers = Vec::with_capacity(head.lines.len());
    for l in &head.lines {
        let header: Header = rsip::headers::header::Tokenizer { name: l.name.as_bytes(), value: l.value.as_bytes() }.try_into().ok()?;
        headers.push(header);
    }
    Some(rsip::Request { method, uri: checked_uri, version: rsip::Version::V2, headers: headers.into(), body: body.to_vec() })
}

/// RFC 3261 §8.1.1 / §8.2 checks on the head. Returns the Request-URI of a request with a
/// `sip:`/`sips:` one, as parsed for the check.
fn check(head: &Head<'_>) -> Result<Option<rsip::Uri>, DecodeErrorKind> {
    if let Some(e) = &head.start_error {
        return Err(e.clone());
    }
    let mut request_uri = None;
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if head.count(h) == 0 {
            return Err(DecodeErrorKind::Missing { header: h });
        }
    }
    for h in SINGLE {
        if head.count(h) > 1 {
            return Err(DecodeErrorKind::Duplicate { header: h });
        }
    }
    for via in head.lines.iter().filter(|l| l.name.eq_ignore_ascii_case("Via")) {
        if !valid_via(&via.value) {
            return Err(DecodeErrorKind::BadVia);
        }
    }
    if head.first("Call-ID").is_some_and(|c| c.is_empty() || c.contains(char::is_whitespace)) {
        return Err(DecodeErrorKind::Missing { header: "Call-ID" });
    }
    let cseq = head.first("CSeq").unwrap_or("");
    let mut it = cseq.split_whitespace();
    let (Some(num), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return Err(DecodeErrorKind::BadCSeq { value: cseq.to_string() });
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) || num.parse::<u32>().map_or(true, |n| n >= 1 << 31) {
        return Err(DecodeErrorKind::BadCSeq { value: cseq.to_string() });
    }
    if !m.bytes().all(is_token_byte) {
        return Err(DecodeErrorKind::BadCSeq { value: cseq.to_string() });
    }
    for h in ["From", "To"] {
        let which: &'static str = if h == "From" { "From" } else { "To" };
        check_name_addr(head.first(h).unwrap_or(""), which).map_err(|_| DecodeErrorKind::InvalidUri { header: which })?;
    }
    if let Some(cl) = head.first("Content-Length") {
        if cl.is_empty() || !cl.bytes().all(|b| b.is_ascii_digit()) || cl.len() > 9 {
            return Err(DecodeErrorKind::BadContentLength { value: cl.to_string() });
        }
    }
    if head.is_request {
        let method = head.method.unwrap_or("");
        if !m.eq_ignore_ascii_case(method) {
            return Err(DecodeErrorKind::CSeqMethodMismatch { cseq: m.to_string(), method: method.to_string() });
        }
        let uri = head.start.split(' ').nth(1).unwrap_or("");
        let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            let parsed = super::headers::AnyUri::parse(uri, "Request-URI").map_err(|_| DecodeErrorKind::InvalidUri { header: "Request-URI" })?;
            request_uri = match parsed {
                super::headers::AnyUri::Sip(u) => Some(u),
                _ => None,
            };
        } else if !scheme.eq_ignore_ascii_case("tel") {
            // We only route sip/sips/tel (RFC 3261 §8.2.2.1: 416 for other schemes).
            if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
                return Err(DecodeErrorKind::InvalidUri { header: "Request-URI" });
            }
            return Err(DecodeErrorKind::UnsupportedScheme { scheme: scheme.to_string() });
        }
        if parse_method(method, "Request-Line").is_err() {
            return Err(DecodeErrorKind::UnknownMethod { method: method.to_string() });
        }
        if let Some(mf) = head.first("Max-Forwards") {
            let n: u32 = if !mf.is_empty() && mf.len() <= 9 && mf.bytes().all(|b| b.is_ascii_digit()) {
                mf.parse().unwrap_or(0)
            } else {
                return Err(DecodeErrorKind::BadMaxForwards { value: mf.to_string() });
            };
            // RFC 3261 §16.3 step 3 / §11: OPTIONS with Max-Forwards 0 is answered by us.
            if n == 0 && !method.eq_ignore_ascii_case("OPTIONS") {
                return Err(DecodeErrorKind::TooManyHops);
            }
        }
    }
    Ok(request_uri)
}

/// The body per Content-Length (RFC 3261 §18.3): extra datagram bytes are discarded,
/// a body shorter than declared is an error. No Content-Length: the rest of the datagram.
fn body_of<'a>(head: &Head<'a>) -> Result<&'a [u8], DecodeErrorKind> {
    match head.first("Content-Length") {
        None => Ok(head.body),
        Some(cl) => {
            let declared: usize = cl.parse().map_err(|_| DecodeErrorKind::BadContentLength { value: cl.to_string() })?;
            if declared > head.body.len() {
                return Err(DecodeErrorKind::BodyTooShort { declared, actual: head.body.len() });
            }
            Ok(&head.body[..declared])
        }
    }
}

/// The canonical text rsip can tokenize: `Name: value` lines, CRLF, the exact body.
fn rebuild(head: &Head<'_>, body: &[u8]) -> Vec<u8> {
    let len = head.start.len() + head.lines.iter().map(|l| l.name.len() + l.value.len() + 4).sum::<usize>() + body.len() + 4;
    let mut out = Vec::with_capacity(len);
    match request_uri_for_rsip(head) {
        Some(uri) => {
            let mut parts = head.start.splitn(3, ' ');
            let (method, _, version) = (parts.next().unwrap_or(""), parts.next(), parts.next().unwrap_or(""));
            out.extend_from_slice(format!("{method} {uri} {version}").as_bytes());
        }
        None => out.extend_from_slice(head.start.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for l in &head.lines {
        out.extend_from_slice(l.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(l.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The Request-URI with its user escaped so rsip's request-line tokenizer reads it, when
/// the user has characters it cannot take (see [`escape_user_for_rsip`]).
fn request_uri_for_rsip(head: &Head<'_>) -> Option<String> {
    if !head.is_request {
        return None;
    }
    let uri = head.start.split(' ').nth(1)?;
    let scheme = uri.split_once(':')?.0;
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    escape_user_for_rsip(uri)
}

/// A response to a request we refused, built from its raw headers (RFC 3261 §8.2.6),
/// or `None` when it cannot be addressed (not a request, or a key header missing).
///
/// Only the top Via is needed (it says where the answer goes, §18.2.2); From, To, Call-ID
/// and CSeq are copied when present, so a request missing them still learns why it was
/// refused (RFC 4475 §3.3.1).
fn error_reply(head: &Head<'_>, status: u16, warning: Option<&str>) -> Option<Box<rsip::Response>> {
    if !head.is_request {
        return None;
    }
    let vias: Vec<&str> = head.lines.iter().filter(|l| l.name.eq_ignore_ascii_case("Via")).map(|l| l.value.as_ref()).collect();
    // A 505 answers a request of another SIP version, whose Via carries that version.
    if vias.is_empty() || !vias[0].get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/")) || !vias[0].contains(' ') {
        return None;
    }
    let mut headers = Headers::default();
    for v in vias {
        headers.push(Header::Via(rsip::headers::Via::new(v)));
    }
    if let Some(from) = head.first("From") {
        headers.push(Header::From(rsip::headers::From::new(from)));
    }
    if let Some(to) = head.first("To") {
        let to = if to.contains(";tag=") { to.to_string() } else { format!("{to};tag={}", super::new_tag()) };
        headers.push(Header::To(rsip::headers::To::new(to)));
    }
    if let Some(call_id) = head.first("Call-ID") {
        headers.push(Header::CallId(rsip::headers::CallId::new(call_id)));
    }
    if let Some(cseq) = head.first("CSeq") {
        headers.push(Header::CSeq(rsip::headers::CSeq::new(cseq)));
    }
    if let Some(w) = warning {
        // RFC 3261 §20.43: 399 = miscellaneous warning; the text says what was wrong.
        let w = w.replace(['"', '\\', '\r', '\n'], "'");
        headers.push(Header::Warning(rsip::headers::Warning::new(format!("399 redial \"{w}\""))));
    }
    if status == 501 || status == 405 {
        // RFC 3261 §21.5.2 / §20.5: say what we do support.
        headers.push(Header::Allow(rsip::headers::Allow::new(super::ALLOW)));
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    // rsip prints the standard reason phrase for the code.
    let status_code = StatusCode::from(status);
    Some(Box::new(rsip::Response { status_code, version: rsip::Version::V2, headers, body: vec![] }))
}

/// Headers whose separators may carry white space, and whether `/` is one of them.
const TIDY: &[(&str, bool)] = &[("Via", true), ("From", false), ("To", false), ("Contact", false), ("Route", false), ("Record-Route", false)];

/// `value` with LWS runs collapsed to one space and dropped next to `;`, `=`, `,` (and `/`
/// when `slash`), outside quoted strings and `<...>`.
fn tidy(value: &str, slash: bool) -> String {
    let is_sep = |c: char| matches!(c, ';' | '=' | ',') || (slash && c == '/');
    let mut out = String::with_capacity(value.len());
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quote {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' if !in_angle => in_quote = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            ' ' | '\t' if !in_angle => {
                while chars.peek().is_some_and(|n| *n == ' ' || *n == '\t') {
                    chars.next();
                }
                let before = out.chars().last().is_some_and(is_sep);
                let after = chars.peek().is_some_and(|n| is_sep(*n));
                if !before && !after && !out.is_empty() && chars.peek().is_some() {
                    out.push(' ');
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// One Via value (RFC 3261 §20.42, §25.1): `SIP/2.0/transport SP sent-by *(;param)`,
/// with a host of host-name or IP characters (`_` too, seen in the wild) and every
/// param a non-empty token name.
fn valid_via(value: &str) -> bool {
    let Some((protocol, rest)) = value.split_once(' ') else { return false };
    let mut proto = protocol.splitn(3, '/');
    let (Some(name), Some(ver), Some(transport)) = (proto.next(), proto.next(), proto.next()) else { return false };
    if !name.eq_ignore_ascii_case("SIP") || ver != "2.0" || transport.is_empty() || !transport.bytes().all(is_token_byte) {
        return false;
    }
    let mut parts = rest.split(';');
    let sent_by = parts.next().unwrap_or("");
    if sent_by.is_empty() || !sent_by.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)) {
        return false;
    }
    parts.all(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, "x"));
        !n.is_empty() && n.bytes().all(is_token_byte) && !v.is_empty() && !v.contains(' ')
    })
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}
