//! Parsing and formatting of digest challenges (`WWW-Authenticate`,
//! `Proxy-Authenticate`) and credentials (`Authorization`,
//! `Proxy-Authorization`), RFC 7616 §3.3–3.4, RFC 3261 §20.7/§20.27/§20.44.
//!
//! Written by hand because rsip 0.4's typed auth headers are incomplete
//! (checked in its source): the typed `WwwAuthenticate` holds a single qop
//! (`//TODO: support multiple Qop`), its `Algorithm` defaults to SHA-256 when
//! the parameter is absent (RFC 7616 §3.3 says MD5), and its tokenizer reads
//! a quoted value up to the next `"` (no `\"` escapes) and skips only spaces,
//! not tabs or folded lines. The parsers below never panic on any input
//! (property-tested; the lead's cargo-fuzz target calls them).

use std::borrow::Cow;
use std::fmt;

use crate::config::DigestAlgorithm;

/// A digest algorithm token: the hash and whether it is the `-sess` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithm {
    pub hash: DigestAlgorithm,
    pub sess: bool,
}

impl Algorithm {
    pub const MD5: Algorithm = Algorithm { hash: DigestAlgorithm::Md5, sess: false };
    pub const SHA256: Algorithm = Algorithm { hash: DigestAlgorithm::Sha256, sess: false };

    /// Parses an `algorithm=` token, case-insensitively (RFC 7616 §3.3).
    pub fn parse(token: &str) -> Option<Algorithm> {
        // Case-insensitive without an uppercased copy (every REGISTER names its algorithm).
        let t = token.as_bytes();
        let sess = t.len() > 5 && t[t.len() - 5..].eq_ignore_ascii_case(b"-sess");
        let base = if sess { &t[..t.len() - 5] } else { t };
        let hash = if base.eq_ignore_ascii_case(b"MD5") {
            DigestAlgorithm::Md5
        } else if base.eq_ignore_ascii_case(b"SHA-256") {
            DigestAlgorithm::Sha256
        } else {
            return None;
        };
        Some(Algorithm { hash, sess })
    }

    /// Preference when a response carries several challenges: higher is stronger.
    pub fn strength(self) -> u8 {
        match (self.hash, self.sess) {
            (DigestAlgorithm::Sha256, false) => 4,
            (DigestAlgorithm::Sha256, true) => 3,
            (DigestAlgorithm::Md5, false) => 2,
            (DigestAlgorithm::Md5, true) => 1,
        }
    }
}

impl From<DigestAlgorithm> for Algorithm {
    fn from(hash: DigestAlgorithm) -> Self {
        Algorithm { hash, sess: false }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hash.as_str())?;
        if self.sess {
            f.write_str("-sess")?;
        }
        Ok(())
    }
}

/// Quality of protection (RFC 7616 §3.3). Only `auth` is computed by redial;
/// `auth-int` is recognised so that a challenge offering only it is refused
/// cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    fn parse(token: &str) -> Option<Qop> {
        if token.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

/// A `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `MD5` when the parameter is absent (RFC 7616 §3.3).
    pub algorithm: Algorithm,
    /// The qop values offered; empty means an RFC 2069-style challenge.
    /// Unknown qop tokens are skipped.
    pub qop: Vec<Qop>,
    pub stale: bool,
    pub domain: Option<String>,
}

/// `Digest` credentials, the value of `Authorization` / `Proxy-Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    /// The request digest, lower-case hex as sent.
    pub response: String,
    /// `MD5` when absent.
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<Qop>,
    /// Nonce count (`nc=`, eight hex digits on the wire).
    pub nc: Option<u32>,
}

/// Why a header value is not a usable digest challenge or credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty header value")]
    Empty,
    #[error("auth scheme `{scheme}` is not Digest")]
    NotDigest { scheme: String },
    #[error("expected {expected} at byte {at}")]
    Syntax { expected: &'static str, at: usize },
    #[error("unterminated quoted string starting at byte {at}")]
    UnterminatedQuote { at: usize },
    #[error("parameter `{name}` appears twice")]
    DuplicateParam { name: String },
    #[error("required parameter `{name}` is missing")]
    MissingParam { name: &'static str },
    #[error("algorithm `{name}` is not supported")]
    UnsupportedAlgorithm { name: String },
    #[error("`nc={value}` is not eight hex digits")]
    InvalidNonceCount { value: String },
    #[error("`qop={value}` is not a supported qop")]
    InvalidQop { value: String },
    #[error("`stale={value}` is neither true nor false")]
    InvalidStale { value: String },
}

/// One `name=value` pair; the name is lower-cased, the value unquoted.
/// One `name=value` of a digest header, borrowed from the header text: the name as written
/// (matched case-insensitively), the value unquoted (owned only when it held escapes). Only the
/// values a caller keeps are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param<'a> {
    name: &'a str,
    value: Cow<'a, str>,
}

/// The lowercase name among `known` that `name` is, ignoring case.
fn known(name: &str, known: &[&'static str]) -> Option<&'static str> {
    known.iter().copied().find(|k| k.eq_ignore_ascii_case(name))
}

/// Parses a `WWW-Authenticate` / `Proxy-Authenticate` value.
pub fn parse_challenge(input: &str) -> Result<Challenge, ParseError> {
    let params = parse_digest_params(input)?;
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = Algorithm::MD5;
    let mut qop = Vec::new();
    let mut stale = false;
    let mut domain = None;
    for p in params {
        match known(p.name, &["realm", "nonce", "opaque", "domain", "algorithm", "qop", "stale"]) {
            Some("realm") => realm = Some(p.value.into_owned()),
            Some("nonce") => nonce = Some(p.value.into_owned()),
            Some("opaque") => opaque = Some(p.value.into_owned()),
            Some("domain") => domain = Some(p.value.into_owned()),
            Some("algorithm") => {
                algorithm = Algorithm::parse(&p.value)
                    .ok_or_else(|| ParseError::UnsupportedAlgorithm { name: p.value.into_owned() })?
            }
            // A comma-separated list inside the quotes (RFC 7616 §3.3).
            Some("qop") => qop = p.value.split(',').filter_map(|t| Qop::parse(t.trim())).collect(),
            Some("stale") => {
                stale = if p.value.eq_ignore_ascii_case("true") {
                    true
                } else if p.value.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(ParseError::InvalidStale { value: p.value.into_owned() });
                }
            }
            // userhash, charset and extensions are ignored (we never hash usernames).
            _ => {}
        }
    }
    Ok(Challenge {
        realm: realm.ok_or(ParseError::MissingParam { name: "realm" })?,
        nonce: nonce.ok_or(ParseError::MissingParam { name: "nonce" })?,
        opaque,
        algorithm,
        qop,
        stale,
        domain,
    })
}

/// Parses an `Authorization` / `Proxy-Authorization` value.
pub fn parse_authorization(input: &str) -> Result<Credentials, ParseError> {
    let params = parse_digest_params(input)?;
    let mut username = None;
    let mut realm = None;
    let mut nonce = None;
    let mut uri = None;
    let mut response = None;
    let mut algorithm = Algorithm::MD5;
    let mut cnonce = None;
    let mut opaque = None;
    let mut qop = None;
    let mut nc = None;
    const NAMES: &[&str] = &["username", "realm", "nonce", "uri", "response", "cnonce", "opaque", "algorithm", "qop", "nc"];
    for p in params {
        match known(p.name, NAMES) {
            Some("username") => username = Some(p.value.into_owned()),
            Some("realm") => realm = Some(p.value.into_owned()),
            Some("nonce") => nonce = Some(p.value.into_owned()),
            Some("uri") => uri = Some(p.value.into_owned()),
            Some("response") => response = Some(p.value.into_owned()),
            Some("cnonce") => cnonce = Some(p.value.into_owned()),
            Some("opaque") => opaque = Some(p.value.into_owned()),
            Some("algorithm") => {
                algorithm = Algorithm::parse(&p.value)
                    .ok_or_else(|| ParseError::UnsupportedAlgorithm { name: p.value.into_owned() })?
            }
            Some("qop") => {
                qop = Some(Qop::parse(&p.value).ok_or_else(|| ParseError::InvalidQop { value: p.value.into_owned() })?)
            }
            Some("nc") => {
                let ok = p.value.len() == 8 && p.value.bytes().all(|b| b.is_ascii_hexdigit());
                let v = ok.then(|| u32::from_str_radix(&p.value, 16).ok()).flatten();
                nc = Some(v.ok_or_else(|| ParseError::InvalidNonceCount { value: p.value.into_owned() })?);
            }
            _ => {}
        }
    }
    Ok(Credentials {
        username: username.ok_or(ParseError::MissingParam { name: "username" })?,
        realm: realm.ok_or(ParseError::MissingParam { name: "realm" })?,
        nonce: nonce.ok_or(ParseError::MissingParam { name: "nonce" })?,
        uri: uri.ok_or(ParseError::MissingParam { name: "uri" })?,
        response: response.ok_or(ParseError::MissingParam { name: "response" })?,
        algorithm,
        cnonce,
        opaque,
        qop,
        nc,
    })
}

/// `Digest` followed by a comma-separated auth-param list (RFC 7235 §2.1,
/// RFC 3261 §25.1 for LWS). Empty list elements are tolerated.
fn parse_digest_params(input: &str) -> Result<Vec<Param<'_>>, ParseError> {
    let b = input.as_bytes();
    let mut i = skip_ws(b, 0);
    if i >= b.len() {
        return Err(ParseError::Empty);
    }
    let start = i;
    while i < b.len() && is_token(b[i]) {
        i += 1;
    }
    let scheme = &input[start..i];
    if scheme.is_empty() {
        return Err(ParseError::Syntax { expected: "auth scheme", at: i });
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(ParseError::NotDigest { scheme: scheme.to_string() });
    }
    if i < b.len() && !is_ws(b[i]) {
        return Err(ParseError::Syntax { expected: "whitespace after Digest", at: i });
    }
    let mut params: Vec<Param<'_>> = Vec::with_capacity(12);
    loop {
        i = skip_ws(b, i);
        while i < b.len() && b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
        if i >= b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(ParseError::Syntax { expected: "parameter name", at: i });
        }
        let name = &input[name_start..i];
        i = skip_ws(b, i);
        if i >= b.len() || b[i] != b'=' {
            return Err(ParseError::Syntax { expected: "`=`", at: i });
        }
        i = skip_ws(b, i + 1);
        let value = if i < b.len() && b[i] == b'"' {
            let (v, next) = parse_quoted(input, i)?;
            i = next;
            v
        } else {
            let vs = i;
            while i < b.len() && is_token(b[i]) {
                i += 1;
            }
            if i == vs {
                return Err(ParseError::Syntax { expected: "parameter value", at: i });
            }
            Cow::Borrowed(&input[vs..i])
        };
        if params.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(ParseError::DuplicateParam { name: name.to_ascii_lowercase() });
        }
        params.push(Param { name, value });
        i = skip_ws(b, i);
        if i < b.len() && b[i] != b',' {
            return Err(ParseError::Syntax { expected: "`,` between parameters", at: i });
        }
    }
    Ok(params)
}

/// Reads a quoted-string starting at the opening quote `at`; returns the
/// unescaped content and the index after the closing quote.
fn parse_quoted(input: &str, at: usize) -> Result<(Cow<'_, str>, usize), ParseError> {
    // Without a backslash the value is the text between the quotes, borrowed.
    let rest = &input[at + 1..];
    match rest.bytes().position(|b| b == b'"' || b == b'\\') {
        Some(end) if rest.as_bytes()[end] == b'"' => return Ok((Cow::Borrowed(&rest[..end]), at + 1 + end + 1)),
        Some(_) => {}
        None => return Err(ParseError::UnterminatedQuote { at }),
    }
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((Cow::Owned(out), at + 1 + off + 1)),
            '\\' => match chars.next() {
                Some((_, esc)) => out.push(esc),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParseError::UnterminatedQuote { at })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 §25.1 `token` characters.
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Writes `"value"` with `"` and `\` escaped.
fn quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in value.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        quoted(f, &self.realm)?;
        if let Some(d) = &self.domain {
            f.write_str(", domain=")?;
            quoted(f, d)?;
        }
        f.write_str(", nonce=")?;
        quoted(f, &self.nonce)?;
        if let Some(o) = &self.opaque {
            f.write_str(", opaque=")?;
            quoted(f, o)?;
        }
        if self.stale {
            f.write_str(", stale=TRUE")?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            f.write_str(", qop=")?;
            quoted(f, &list.join(","))?;
        }
        Ok(())
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        quoted(f, &self.uri)?;
        f.write_str(", response=")?;
        quoted(f, &self.response)?;
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(c) = &self.cnonce {
            f.write_str(", cnonce=")?;
            quoted(f, c)?;
        }
        if let Some(o) = &self.opaque {
            f.write_str(", opaque=")?;
            quoted(f, o)?;
        }
        // qop and nc are unquoted tokens (RFC 7616 §3.4).
        if let Some(q) = self.qop {
            write!(f, ", qop={}", q.as_str())?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7616_challenge_with_qop_list() {
        let c = parse_challenge(
            "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\",\r\n algorithm=SHA-256,\r\n \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(c.algorithm, Algorithm::SHA256);
        assert_eq!(c.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
        assert_eq!(c.opaque.as_deref(), Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"));
        assert!(!c.stale);
    }

    #[test]
    fn defaults_and_case_insensitivity() {
        let c = parse_challenge("digest REALM=\"a\", Nonce=abc, STALE=True, algorithm=md5-SESS").unwrap();
        assert_eq!(c.realm, "a");
        assert_eq!(c.nonce, "abc");
        assert!(c.stale);
        assert_eq!(c.algorithm, Algorithm { hash: DigestAlgorithm::Md5, sess: true });
        assert!(c.qop.is_empty());
        let c = parse_challenge("Digest realm=\"a\",nonce=\"n\"").unwrap();
        assert_eq!(c.algorithm, Algorithm::MD5);
    }

    #[test]
    fn escapes_and_commas_inside_quotes() {
        let c = parse_challenge(r#"Digest realm="a \"quoted\", realm\\x", nonce="n,1", domain="sip:a sip:b""#).unwrap();
        assert_eq!(c.realm, r#"a "quoted", realm\x"#);
        assert_eq!(c.nonce, "n,1");
        assert_eq!(c.domain.as_deref(), Some("sip:a sip:b"));
        // Round trip through Display.
        assert_eq!(parse_challenge(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn tolerates_empty_list_elements_and_unknown_params() {
        let c = parse_challenge("Digest ,realm=\"r\",, nonce=\"n\" , userhash=true, foo=\"bar\",").unwrap();
        assert_eq!((c.realm.as_str(), c.nonce.as_str()), ("r", "n"));
    }

    #[test]
    fn errors() {
        use ParseError::*;
        assert_eq!(parse_challenge(""), Err(Empty));
        assert_eq!(parse_challenge("   "), Err(Empty));
        assert!(matches!(parse_challenge("Basic realm=\"x\""), Err(NotDigest { .. })));
        assert!(matches!(parse_challenge("Digest realm=\"x"), Err(UnterminatedQuote { .. })));
        assert!(matches!(parse_challenge("Digest realm=\"x\\"), Err(UnterminatedQuote { .. })));
        assert_eq!(parse_challenge("Digest nonce=\"x\""), Err(MissingParam { name: "realm" }));
        assert_eq!(parse_challenge("Digest realm=\"x\""), Err(MissingParam { name: "nonce" }));
        assert!(matches!(parse_challenge("Digest realm=\"x\", realm=\"y\", nonce=n"), Err(DuplicateParam { .. })));
        assert!(matches!(parse_challenge("Digest realm"), Err(Syntax { .. })));
        assert!(matches!(parse_challenge("Digest realm="), Err(Syntax { .. })));
        assert!(matches!(parse_challenge("Digest realm=\"x\" nonce=n"), Err(Syntax { .. })));
        assert!(matches!(parse_challenge("Digestrealm=x"), Err(NotDigest { .. })));
        assert!(matches!(parse_challenge("Digest\"realm=x"), Err(Syntax { .. })));
        assert!(matches!(
            parse_challenge("Digest realm=r, nonce=n, algorithm=SHA-512-256"),
            Err(UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(parse_challenge("Digest realm=r, nonce=n, stale=maybe"), Err(InvalidStale { .. })));
        assert!(matches!(
            parse_authorization("Digest username=u, realm=r, nonce=n, uri=\"sip:a\", response=x, nc=1"),
            Err(InvalidNonceCount { .. })
        ));
        assert!(matches!(
            parse_authorization("Digest username=u, realm=r, nonce=n, uri=\"sip:a\", response=x, nc=0000000g"),
            Err(InvalidNonceCount { .. })
        ));
        assert!(matches!(
            parse_authorization("Digest username=u, realm=r, nonce=n, uri=\"sip:a\", response=x, qop=foo"),
            Err(InvalidQop { .. })
        ));
        assert_eq!(
            parse_authorization("Digest username=u, realm=r, nonce=n, response=x"),
            Err(MissingParam { name: "uri" })
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in ["Digest \u{e9}=\"\u{e9}\"", "Digest a=\"\u{1F600}", "\u{0}", "Digest ,,,,", "Digest a=b,", "Digest =b", "D\u{e9}gest"] {
            let _ = parse_challenge(s);
            let _ = parse_authorization(s);
        }
    }

    #[test]
    fn parses_and_formats_authorization() {
        let s = "Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b\", uri=\"sip:bob@biloxi.com\", \
                 qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae4\", opaque=\"5ccc\", algorithm=MD5";
        let c = parse_authorization(s).unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(c.opaque.as_deref(), Some("5ccc"));
        let again = parse_authorization(&c.to_string()).unwrap();
        assert_eq!(again, c);
        assert!(c.to_string().contains("nc=00000001"));
        assert!(c.to_string().contains("qop=auth,"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsers_never_panic(s in "\\PC{0,80}") {
                let _ = parse_challenge(&s);
                let _ = parse_authorization(&s);
            }

            #[test]
            fn parsers_never_panic_on_digest_like(s in "[Dd]igest[ ,=\"\\\\a-z0-9\u{e9}]{0,60}") {
                let _ = parse_challenge(&s);
                let _ = parse_authorization(&s);
            }

            #[test]
            fn challenge_round_trips(
                realm in "[ -~]{0,20}", nonce in "[ -~]{0,20}", opaque in proptest::option::of("[ -~]{0,10}"),
                sha in any::<bool>(), sess in any::<bool>(), stale in any::<bool>(), qop in any::<bool>(),
            ) {
                let c = Challenge {
                    realm, nonce, opaque,
                    algorithm: Algorithm { hash: if sha { DigestAlgorithm::Sha256 } else { DigestAlgorithm::Md5 }, sess },
                    qop: if qop { vec![Qop::Auth] } else { vec![] },
                    stale, domain: None,
                };
                prop_assert_eq!(parse_challenge(&c.to_string()).unwrap(), c);
            }

            #[test]
            fn credentials_round_trip(
                username in "[ -~]{0,12}", uri in "[ -~]{0,20}", cnonce in proptest::option::of("[ -~]{0,10}"),
                nc in proptest::option::of(any::<u32>()),
            ) {
                let c = Credentials {
                    username, realm: "r".into(), nonce: "n".into(), uri, response: "abc".into(),
                    algorithm: Algorithm::SHA256, cnonce, opaque: None, qop: nc.map(|_| Qop::Auth), nc,
                };
                prop_assert_eq!(parse_authorization(&c.to_string()).unwrap(), c);
            }
        }
    }
}
