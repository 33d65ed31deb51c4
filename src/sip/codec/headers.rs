//! Our own parsers for the header values rsip 0.4 gets wrong or has no typed form for.
//!
//! - name-addr / addr-spec (RFC 3261 §25.1) whose URI is not `sip:`: rsip's typed
//!   `To`/`From` fail on `<tel:+14155550100>` ("number too large").
//! - Contact values with quoted params holding `<...>`, e.g.
//!   `+sip.instance="<urn:uuid:...>"` (RFC 5626 §4.1): rsip's tokenizer stops at the `<`.
//! - P-Asserted-Identity (RFC 3325 §9.1), RSeq / RAck (RFC 3262 §7), Session-Expires
//!   (RFC 4028 §4): no typed form in rsip.
//!
//! The values stay untyped inside `rsip::SipMessage` (rsip keeps every header as a
//! string); these functions read them on demand.

use rsip::Method;

/// A header value we could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("{header}: empty value")]
    Empty { header: &'static str },
    #[error("{header}: unterminated `{delimiter}` at byte {at}")]
    Unterminated { header: &'static str, delimiter: char, at: usize },
    #[error("{header}: `{uri}` is not a valid URI")]
    BadUri { header: &'static str, uri: String },
    #[error("{header}: `{value}` is not a number")]
    BadNumber { header: &'static str, value: String },
    #[error("{header}: `{value}` is not a method")]
    BadMethod { header: &'static str, value: String },
    #[error("{header}: unexpected `{text}`")]
    Trailing { header: &'static str, text: String },
}

/// A URI as found in a name-addr: `sip:`/`sips:` ones parsed by rsip, `tel:` ones by us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyUri {
    Sip(rsip::Uri),
    /// RFC 3966: the number (global `+...` or local) and its `;`-params, verbatim.
    Tel { number: String, params: String },
    /// Any other absolute URI (`urn:`, `mailto:`...), kept as written.
    Other(String),
}

impl AnyUri {
    /// Parses an absolute URI; `header` names the field for errors.
    pub fn parse(s: &str, header: &'static str) -> Result<Self, HeaderError> {
        let bad = || HeaderError::BadUri { header, uri: s.to_string() };
        let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
        if scheme.is_empty()
            || rest.is_empty()
            || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            || s.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b'"')
        {
            return Err(bad());
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            let uri = match rsip::Uri::try_from(s) {
                Ok(u) => u,
                Err(_) => rsip::Uri::try_from(escape_user_for_rsip(s).ok_or_else(bad)?.as_str()).map_err(|_| bad())?,
            };
            // rsip accepts `sip:` with an empty host; RFC 3261 §19.1.1 requires one.
            if uri.host_with_port.to_string().is_empty() {
                return Err(bad());
            }
            return Ok(AnyUri::Sip(uri));
        }
        if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match rest.find(';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let digits = number.strip_prefix('+').unwrap_or(number);
            // RFC 3966 §3: phonedigits with visual separators `-.()`; local numbers may carry `*#` and hex.
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit() || b"-.()*#".contains(&b)) {
                return Err(bad());
            }
            return Ok(AnyUri::Tel { number: number.to_string(), params: params.to_string() });
        }
        Ok(AnyUri::Other(s.to_string()))
    }

    /// The user part: the `sip:` user, or the `tel:` number.
    pub fn user(&self) -> Option<&str> {
        match self {
            AnyUri::Sip(u) => u.auth.as_ref().map(|a| a.user.as_str()),
            AnyUri::Tel { number, .. } => Some(number),
            AnyUri::Other(_) => None,
        }
    }
}

impl std::fmt::Display for AnyUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyUri::Sip(u) => write!(f, "{u}"),
            AnyUri::Tel { number, params } => write!(f, "tel:{number}{params}"),
            AnyUri::Other(s) => f.write_str(s),
        }
    }
}

/// `sip:user@host` with the user's characters other than alphanumerics and `-_.!~*'()%+`
/// percent-encoded, or `None` when there is nothing to encode.
///
/// rsip 0.4 cuts the user part at the first `.` or `;`, so it refuses users RFC 3261 §25.1
/// allows (`sip:user;par=u%40example.net@example.com`, RFC 4475 §3.1.1.9); the escaped
/// form names the same user (§19.1.4 compares users after unescaping).
pub(crate) fn escape_user_for_rsip(s: &str) -> Option<String> {
    let colon = s.find(':')?;
    let rest = &s[colon + 1..];
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    let user_end = userinfo.find(':').unwrap_or(userinfo.len());
    let user = &userinfo[..user_end];
    if user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!~*'()%+".contains(&b)) {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..=colon]);
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-_!~*'()%+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(&rest[user_end..]);
    Some(out)
}

/// A generic `;name[=value]` parameter; quoted values keep their quotes off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericParam {
    pub name: String,
    pub value: Option<String>,
}

/// A name-addr or addr-spec with its header params (From, To, Contact, PAI, Refer-To).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: AnyUri,
    pub params: Vec<GenericParam>,
}

impl NameAddr {
    /// The value of the first param named `name` (case-insensitive); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_deref())
    }

    /// The `tag` param (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// Parses one name-addr / addr-spec with params, e.g.
/// `"Bob" <tel:+14155550100>;tag=1` or `sip:bob@example.com;tag=2`.
pub fn parse_name_addr(value: &str, header: &'static str) -> Result<NameAddr, HeaderError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(HeaderError::Empty { header });
    }
    let (display_name, uri, rest) = if let Some(lt) = find_unquoted(v, b'<') {
        let display = v[..lt].trim();
        let display = if let Some(q) = display.strip_prefix('"') {
            Some(unquote(q).ok_or(HeaderError::Unterminated { header, delimiter: '"', at: 0 })?)
        } else if display.is_empty() {
            None
        } else if !display.bytes().all(|b| is_token_byte(b) || b == b' ' || b == b'\t' || !b.is_ascii()) {
            // An unquoted display-name is tokens and LWS (RFC 3261 §25.1); `Bell, Alexander`
            // needs quotes (RFC 4475 §3.1.2.15).
            return Err(HeaderError::Trailing { header, text: display.to_string() });
        } else {
            Some(display.to_string())
        };
        let close = v[lt..].find('>').ok_or(HeaderError::Unterminated { header, delimiter: '<', at: lt })? + lt;
        (display, &v[lt + 1..close], &v[close + 1..])
    } else {
        // addr-spec: params after the URI belong to the header (RFC 3261 §20.10).
        let end = v.find(';').unwrap_or(v.len());
        (None, &v[..end], &v[end..])
    };
    let uri = AnyUri::parse(uri.trim(), header)?;
    let params = parse_params(rest, header)?;
    Ok(NameAddr { display_name, uri, params })
}

/// Whether `value` is a name-addr / addr-spec [`parse_name_addr`] accepts, without keeping
/// what it read: a plain `sip:`/`sips:` URI (see [`is_plain_sip_uri`]) is taken as valid
/// without rsip's URI parser, which costs more than the rest of the check; anything else
/// goes through [`parse_name_addr`].
pub(crate) fn check_name_addr(value: &str, header: &'static str) -> Result<(), HeaderError> {
    let v = value.trim();
    if let Some(inner) = v.strip_prefix('<') {
        if let Some((uri, rest)) = inner.split_once('>') {
            if is_plain_sip_uri(uri) {
                return parse_params(rest, header).map(|_| ());
            }
        }
    }
    parse_name_addr(value, header).map(|_| ())
}

/// A `sip:`/`sips:` URI of the plainest form: `[user@]host[:port]` then `;name[=value]`
/// params, where user, param names and values are letters, digits, `-` and `_`; host is a
/// dotted IPv4 address or a host name whose labels are letters, digits and inner `-`, the
/// last starting with a letter; port 1–65535. rsip parses every such URI (a property test
/// holds it to that), so the check can skip parsing it.
pub(crate) fn is_plain_sip_uri(s: &str) -> bool {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let Some(rest) = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:")) else { return false };
    let (addr, params) = match rest.split_once(';') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let host_port = match addr.split_once('@') {
        Some((user, hp)) if word(user) => hp,
        Some(_) => return false,
        None => addr,
    };
    let (host, port) = match host_port.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || !(1..=65535).contains(&p.parse::<u32>().unwrap_or(0)) {
            return false;
        }
    }
    let labels: Vec<&str> = host.split('.').collect();
    let ipv4 = labels.len() == 4
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) && l.parse::<u16>().is_ok_and(|n| n <= 255));
    let name = labels.iter().all(|l| {
        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-') && !l.ends_with('-')
    }) && labels.last().is_some_and(|l| l.as_bytes()[0].is_ascii_alphabetic());
    if !(ipv4 || name) {
        return false;
    }
    params.is_none_or(|params| {
        params.split(';').all(|p| match p.split_once('=') {
            Some((n, v)) => word(n) && word(v),
            None => word(p),
        })
    })
}

/// A Contact header value: `*` or a list of contacts (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactList {
    Star,
    Contacts(Vec<NameAddr>),
}

/// Parses a Contact value, including params with `<...>` in quotes (RFC 5626 `+sip.instance`).
pub fn parse_contact(value: &str) -> Result<ContactList, HeaderError> {
    if value.trim() == "*" {
        return Ok(ContactList::Star);
    }
    split_list(value).into_iter().map(|p| parse_name_addr(p, "Contact")).collect::<Result<_, _>>().map(ContactList::Contacts)
}

/// P-Asserted-Identity (RFC 3325 §9.1): one or two name-addrs, comma separated.
pub fn parse_p_asserted_identity(value: &str) -> Result<Vec<NameAddr>, HeaderError> {
    let items: Vec<NameAddr> =
        split_list(value).into_iter().map(|p| parse_name_addr(p, "P-Asserted-Identity")).collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Err(HeaderError::Empty { header: "P-Asserted-Identity" });
    }
    Ok(items)
}

/// RSeq (RFC 3262 §7.1): 1*DIGIT, 1 to 2^31-1.
pub fn parse_rseq(value: &str) -> Result<u32, HeaderError> {
    parse_u31(value.trim(), "RSeq")
}

/// RAck (RFC 3262 §7.2): `response-num CSeq-num Method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    pub rseq: u32,
    pub cseq: u32,
    pub method: Method,
}

pub fn parse_rack(value: &str) -> Result<RAck, HeaderError> {
    let mut parts = value.split_whitespace();
    let (Some(r), Some(c), Some(m)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(HeaderError::Empty { header: "RAck" });
    };
    if let Some(extra) = parts.next() {
        return Err(HeaderError::Trailing { header: "RAck", text: extra.to_string() });
    }
    let method = parse_method(m, "RAck")?;
    Ok(RAck { rseq: parse_u31(r, "RAck")?, cseq: parse_u31(c, "RAck")?, method })
}

/// Which side refreshes a session (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// Session-Expires (RFC 4028 §4): `delta-seconds *(;se-params)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta_seconds: u32,
    pub refresher: Option<Refresher>,
    pub params: Vec<GenericParam>,
}

pub fn parse_session_expires(value: &str) -> Result<SessionExpires, HeaderError> {
    const H: &str = "Session-Expires";
    let v = value.trim();
    let end = v.find(';').unwrap_or(v.len());
    let delta_seconds = parse_u31(v[..end].trim(), H)?;
    let params = parse_params(&v[end..], H)?;
    let refresher = match params.iter().find(|p| p.name.eq_ignore_ascii_case("refresher")).and_then(|p| p.value.as_deref()) {
        Some(r) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
        Some(r) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
        Some(r) => return Err(HeaderError::Trailing { header: H, text: r.to_string() }),
        None => None,
    };
    Ok(SessionExpires { delta_seconds, refresher, params })
}

/// A method token, with rsip's enum for the known ones.
pub fn parse_method(s: &str, header: &'static str) -> Result<Method, HeaderError> {
    if s.is_empty() || !s.bytes().all(is_token_byte) {
        return Err(HeaderError::BadMethod { header, value: s.to_string() });
    }
    s.parse::<Method>().map_err(|_| HeaderError::BadMethod { header, value: s.to_string() })
}

pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn parse_u31(s: &str, header: &'static str) -> Result<u32, HeaderError> {
    match s.parse::<u32>() {
        Ok(n) if n < (1 << 31) && !s.starts_with('+') => Ok(n),
        _ => Err(HeaderError::BadNumber { header, value: s.to_string() }),
    }
}

/// `;a=b;c;d="q;uoted"` → params. Leading whitespace is allowed around `;` and `=`.
fn parse_params(s: &str, header: &'static str) -> Result<Vec<GenericParam>, HeaderError> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(r) = rest.strip_prefix(';') else {
            return Err(HeaderError::Trailing { header, text: rest.to_string() });
        };
        let r = r.trim_start();
        let name_end = r.find(|c: char| !is_token_byte(c as u8) || !c.is_ascii()).unwrap_or(r.len());
        let name = &r[..name_end];
        if name.is_empty() {
            return Err(HeaderError::Trailing { header, text: r.to_string() });
        }
        let mut after = r[name_end..].trim_start();
        let value = if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start();
            if let Some(q) = v.strip_prefix('"') {
                let close = closing_quote(q).ok_or(HeaderError::Unterminated { header, delimiter: '"', at: 0 })?;
                after = &q[close + 1..];
                Some(unescape(&q[..close]))
            } else {
                let end = v.find(|c: char| c == ';' || c.is_whitespace()).unwrap_or(v.len());
                after = &v[end..];
                Some(v[..end].to_string())
            }
        } else {
            None
        };
        out.push(GenericParam { name: name.to_string(), value });
        rest = after.trim_start();
    }
    Ok(out)
}

/// Splits a comma-separated header list, ignoring commas in quotes and `<...>`.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let b = value.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    let (mut in_quote, mut in_angle) = (false, false);
    while i < b.len() {
        match b[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b',' if !in_quote && !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Position of `needle` outside double quotes.
fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let b = s.as_bytes();
    let (mut in_quote, mut i) = (false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            c if c == needle && !in_quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote in `s` (which starts just after an opening quote).
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'"' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The content of a quoted string starting after its opening quote.
fn unquote(s: &str) -> Option<String> {
    closing_quote(s).map(|c| unescape(&s[..c]))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::headers::ToTypedHeader;

    #[test]
    fn plain_sip_uris_are_recognised() {
        for ok in ["sip:user7@127.0.0.1", "sip:127.0.0.1:5060", "sips:a-b_c@host.example.com:5061;transport=tcp;lr", "sip:x@h1"] {
            assert!(is_plain_sip_uri(ok), "{ok}");
        }
        for not in ["sip:first.last@h", "sip:u@1.2.3", "sip:u@-h", "sip:u@h:0", "sip:u@h:65536", "sip:@h", "tel:+1", "sip:u@h?x=y", "sip:u@[::1]", "SIP:u@h", "sip:u@h;"] {
            assert!(!is_plain_sip_uri(not), "{not}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(20000))]
        /// What the fast check takes, rsip's parser takes too.
        #[test]
        fn plain_sip_uris_parse(s in "sips?:([a-z0-9_-]{0,4}@)?[a-z0-9.-]{0,12}(:[0-9]{0,6})?(;[a-z0-9_=-]{0,6}){0,2}") {
            if is_plain_sip_uri(&s) {
                proptest::prop_assert!(AnyUri::parse(&s, "To").is_ok(), "{}", s);
                proptest::prop_assert!(parse_name_addr(&format!("<{s}>;tag=1"), "To").is_ok(), "{}", s);
            }
        }
    }

    #[test]
    fn rsip_fails_on_tel_to_and_we_do_not() {
        // The gap this module exists for.
        let to = rsip::headers::To::from("<tel:+14155550100>;tag=abc");
        assert!(to.typed().is_err());
        let na = parse_name_addr("<tel:+14155550100>;tag=abc", "To").unwrap();
        assert_eq!(na.uri, AnyUri::Tel { number: "+14155550100".into(), params: String::new() });
        assert_eq!(na.tag(), Some("abc"));
        assert_eq!(na.uri.user(), Some("+14155550100"));
    }

    #[test]
    fn tel_with_params_and_display_name() {
        let na = parse_name_addr("\"Call \\\"Centre\\\"\" <tel:+1-415-555-0100;phone-context=example.com>", "From").unwrap();
        assert_eq!(na.display_name.as_deref(), Some("Call \"Centre\""));
        assert_eq!(na.uri.to_string(), "tel:+1-415-555-0100;phone-context=example.com");
    }

    #[test]
    fn sip_addr_spec_params_belong_to_header() {
        let na = parse_name_addr("sip:bob@example.com;tag=77", "To").unwrap();
        assert_eq!(na.tag(), Some("77"));
        assert!(matches!(na.uri, AnyUri::Sip(_)));
    }

    #[test]
    fn invalid_uris_are_refused() {
        for bad in ["<sip:>", "<>", "<tel:>", "<tel:+abc!>", "nothing", "<sip:a@b", "<:x>"] {
            assert!(parse_name_addr(bad, "To").is_err(), "{bad}");
        }
    }

    #[test]
    fn contact_with_sip_instance() {
        let v = "<sip:alice@192.0.2.4:5060;transport=ws;ob>;expires=600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1";
        assert!(rsip::headers::Contact::from(v).typed().is_err(), "rsip gap is still there");
        let ContactList::Contacts(c) = parse_contact(v).unwrap() else { panic!("star") };
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("+sip.instance"), Some(Some("<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>")));
        assert_eq!(c[0].param("expires"), Some(Some("600")));
        assert_eq!(c[0].param("reg-id"), Some(Some("1")));
    }

    #[test]
    fn contact_lists_and_star() {
        assert_eq!(parse_contact(" * ").unwrap(), ContactList::Star);
        let ContactList::Contacts(c) = parse_contact("\"A, B\" <sip:a@x>;q=0.5, <sip:b@y>").unwrap() else { panic!() };
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].display_name.as_deref(), Some("A, B"));
    }

    #[test]
    fn p_asserted_identity() {
        let ids = parse_p_asserted_identity("\"Cullen Jennings\" <sip:fluffy@cisco.com>, <tel:+14085264000>").unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].uri.user(), Some("+14085264000"));
        assert!(parse_p_asserted_identity("").is_err());
    }

    #[test]
    fn rseq_and_rack() {
        assert_eq!(parse_rseq(" 988789 "), Ok(988789));
        assert!(parse_rseq("-1").is_err());
        assert!(parse_rseq("2147483648").is_err());
        assert_eq!(parse_rack("776656 1 INVITE").unwrap(), RAck { rseq: 776656, cseq: 1, method: Method::Invite });
        assert!(parse_rack("1 INVITE").is_err());
        assert!(parse_rack("1 2 INVITE extra").is_err());
    }

    #[test]
    fn session_expires() {
        let se = parse_session_expires("4000;refresher=uac;x=y").unwrap();
        assert_eq!(se.delta_seconds, 4000);
        assert_eq!(se.refresher, Some(Refresher::Uac));
        assert_eq!(parse_session_expires("1800").unwrap().refresher, None);
        assert!(parse_session_expires("abc").is_err());
        assert!(parse_session_expires("90;refresher=both").is_err());
    }
}
