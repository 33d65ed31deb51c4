//! Digest server: challenges and verifies agents' softphones (RFC 3261
//! §22.1/§22.4, RFC 7616 §3.3–3.5).
//!
//! Nonces are stateless and self-validating (RFC 7616 §5.4 suggests time
//! stamp + private key):
//! `hex( issued_ms: u64 BE ‖ random: 8 bytes ‖ HMAC-SHA256(secret, issued_ms ‖ random)[..16] )`
//! — 64 hex characters. `issued_ms` counts milliseconds since the server's
//! `epoch` Instant (Instants cannot be serialised), the secret is drawn from
//! the injected RNG per process, so nonces die with the process (clients then
//! get a fresh challenge). A nonce older than the lifetime (default 5 min) is
//! answered with `stale=true`.
//!
//! Replay protection: for each nonce seen with a valid response, the highest
//! `nc` is remembered; a request with an `nc` not above it is refused as a
//! replay (answered with a stale challenge so the client picks a new nonce).
//! The table drops nonces older than the lifetime and holds at most
//! [`MAX_TRACKED_NONCES`] entries; the first recorded is evicted first, in
//! constant time (a queue in recording order beside the map, keyed by the
//! nonce's 16 bytes of time and randomness).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::Header;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::challenge::{parse_authorization, Algorithm, Challenge, Credentials, ParseError, Qop};
use super::digest::{request_digest, DigestInput};
use crate::config::DigestAlgorithm;

/// Default nonce lifetime.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Bound of the replay table (about 2 MB when full): at 16,000
/// registrations/s a nonce stays tracked for 4 s at least.
pub const MAX_TRACKED_NONCES: usize = 65_536;

type HmacSha256 = Hmac<Sha256>;

/// Digested in place of a password for users that do not exist; its value
/// does not matter since the result is refused whatever it is.
const UNKNOWN_USER_PASSWORD: &str = "\u{0}no such user";

/// Why credentials were refused. [`VerifyError::is_stale`] tells whether to
/// challenge again with `stale=true`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no credentials for realm `{realm}`")]
    Missing { realm: String },
    #[error("malformed credentials: {0}")]
    Malformed(#[from] ParseError),
    #[error("credentials for realm `{got}`, expected `{want}`")]
    WrongRealm { got: String, want: String },
    #[error("algorithm {algorithm} was not offered")]
    AlgorithmNotOffered { algorithm: Algorithm },
    #[error("nonce was not issued by this server")]
    InvalidNonce,
    #[error("nonce expired")]
    StaleNonce,
    #[error("uri `{got}` does not match the Request-URI `{want}`")]
    UriMismatch { got: String, want: String },
    #[error("qop=auth, nc and cnonce are required")]
    MissingQop,
    #[error("nonce count {nc} was already used with this nonce")]
    Replay { nc: u32 },
    #[error("unknown user `{username}`")]
    UnknownUser { username: String },
    #[error("wrong response digest for `{username}`")]
    WrongResponse { username: String },
}

impl VerifyError {
    /// The client used a good password with an old, foreign or replayed
    /// nonce (the digest is checked before the nonce): re-challenge with
    /// `stale=true` (RFC 7616 §3.3) so it retries without asking the user.
    pub fn is_stale(&self) -> bool {
        matches!(self, VerifyError::StaleNonce | VerifyError::InvalidNonce | VerifyError::Replay { .. })
    }
}

/// Challenges and verifies for one realm.
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    algorithms: Vec<DigestAlgorithm>,
    lifetime: Duration,
    epoch: Instant,
    /// nonce body (issue time ‖ random) → (issued_ms, highest nc accepted).
    seen: HashMap<u128, (u64, u32)>,
    /// The keys of `seen` in recording order.
    order: VecDeque<u128>,
    /// Offer and require `qop="auth"` (default). Off: RFC 2069-style
    /// challenges, for old clients; no replay detection is then possible.
    offer_qop: bool,
    /// Require `uri=` to match the Request-URI (default).
    check_uri: bool,
    /// Bound of `seen`.
    max_tracked: usize,
    /// HMAC state keyed with the per-process secret (drawn from the RNG), cloned per nonce
    /// so the key is not hashed again each time.
    keyed: HmacSha256,
    /// Per algorithm, the text of its challenge around the nonce, `[fresh, stale]`:
    /// formatted once, so a 401 costs one allocation per challenge header.
    templates: Vec<[(String, String); 2]>,
}

impl DigestServer {
    /// `algorithms` in the order challenges are sent (`sip.digest_algorithms`;
    /// MD5 alone when empty). `epoch` is any Instant not after the first
    /// `now` passed in (nonce times count from it).
    pub fn new<R: Rng + ?Sized>(
        realm: impl Into<String>,
        algorithms: &[DigestAlgorithm],
        lifetime: Duration,
        epoch: Instant,
        rng: &mut R,
    ) -> Self {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let algorithms = if algorithms.is_empty() { vec![DigestAlgorithm::Md5] } else { algorithms.to_vec() };
        let mut s = Self {
            realm: realm.into(),
            algorithms,
            lifetime,
            epoch,
            seen: HashMap::new(),
            order: VecDeque::new(),
            offer_qop: true,
            check_uri: true,
            max_tracked: MAX_TRACKED_NONCES,
            // new_from_slice accepts any key length for HMAC; 32 bytes never fails.
            keyed: HmacSha256::new_from_slice(&secret).expect("HMAC takes any key length"),
            templates: Vec::new(),
        };
        s.templates = s.make_templates();
        s
    }

    /// Whether challenges carry `qop="auth"` (on by default).
    pub fn set_offer_qop(&mut self, on: bool) {
        self.offer_qop = on;
        self.templates = self.make_templates();
    }

    /// [`DigestServer::challenge`]'s text split around the nonce (the nonce
    /// is hex, so it is never escaped; nothing after it is free text).
    fn make_templates(&self) -> Vec<[(String, String); 2]> {
        const SLOT: &str = "0123456789abcdef";
        self.algorithms
            .iter()
            .map(|a| {
                [false, true].map(|stale| {
                    let text = self.challenge_with(SLOT, *a, stale).to_string();
                    let (head, tail) = text.rsplit_once(SLOT).expect("the nonce is in the challenge");
                    (head.to_string(), tail.to_string())
                })
            })
            .collect()
    }

    fn challenge_with(&self, nonce: &str, a: DigestAlgorithm, stale: bool) -> Challenge {
        Challenge {
            realm: self.realm.clone(),
            nonce: nonce.to_string(),
            opaque: None,
            algorithm: Algorithm::from(a),
            qop: if self.offer_qop { vec![Qop::Auth] } else { vec![] },
            stale,
            domain: None,
        }
    }

    /// Whether `uri=` must match the Request-URI (RFC 7616 §3.4.6; on by
    /// default). Interop note: SIPp's `[authentication]` puts
    /// `sip:<remote_ip>:<remote_port>` there unless run with
    /// `-auth_uri <host>` (it adds the `sip:` itself). The digest still
    /// covers the uri sent, and nonce counts stop replays, so turning this
    /// off only drops the binding to the Request-URI.
    pub fn set_check_uri(&mut self, on: bool) {
        self.check_uri = on;
    }

    /// Bound of the replay table ([`MAX_TRACKED_NONCES`] by default; at least 1).
    pub fn set_replay_capacity(&mut self, n: usize) {
        self.max_tracked = n.max(1);
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// One challenge per configured algorithm, in order, all with the same
    /// fresh nonce and `qop="auth"`.
    pub fn challenge<R: Rng + ?Sized>(&self, now: Instant, stale: bool, rng: &mut R) -> Vec<Challenge> {
        let nonce = self.make_nonce(now, rng);
        self.algorithms.iter().map(|a| self.challenge_with(&nonce, *a, stale)).collect()
    }

    /// [`DigestServer::challenge`] as `WWW-Authenticate` headers (for a 401).
    pub fn challenge_headers<R: Rng + ?Sized>(&self, now: Instant, stale: bool, rng: &mut R) -> Vec<Header> {
        let nonce = self.make_nonce(now, rng);
        self.templates
            .iter()
            .map(|t| {
                let (head, tail) = &t[usize::from(stale)];
                let mut v = String::with_capacity(head.len() + nonce.len() + tail.len());
                v.push_str(head);
                v.push_str(&nonce);
                v.push_str(tail);
                Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(v))
            })
            .collect()
    }

    /// Verifies `creds` for a request with `method` and `request_uri`;
    /// `lookup_password` gives the password of a user (None: unknown user).
    /// On success returns the username and records `nc` against replays.
    pub fn verify<F>(
        &mut self,
        now: Instant,
        method: &rsip::Method,
        request_uri: &rsip::Uri,
        creds: &Credentials,
        lookup_password: F,
    ) -> Result<String, VerifyError>
    where
        F: FnOnce(&str) -> Option<String>,
    {
        if creds.realm != self.realm {
            return Err(VerifyError::WrongRealm { got: creds.realm.clone(), want: self.realm.clone() });
        }
        if creds.algorithm.sess || !self.algorithms.contains(&creds.algorithm.hash) {
            return Err(VerifyError::AlgorithmNotOffered { algorithm: creds.algorithm });
        }
        if self.check_uri && !uri_matches(&creds.uri, request_uri) {
            return Err(VerifyError::UriMismatch { got: creds.uri.clone(), want: request_uri.to_string() });
        }
        // When qop="auth" was offered the client MUST use it (RFC 7616 §3.4).
        let qop = match (creds.qop, creds.nc, creds.cnonce.as_deref()) {
            (Some(Qop::Auth), Some(nc), Some(cnonce)) => Some((nc, cnonce)),
            (None, _, _) if !self.offer_qop => None,
            _ => return Err(VerifyError::MissingQop),
        };
        // An unknown user costs the same digest as a known one (against a
        // password nobody has), so the time to answer does not tell them apart.
        let found = lookup_password(&creds.username);
        let known = found.is_some();
        let password = found.unwrap_or_else(|| UNKNOWN_USER_PASSWORD.to_string());
        let expected = request_digest(&DigestInput {
            algorithm: creds.algorithm,
            username: &creds.username,
            realm: &self.realm,
            password: &password,
            method: method_str(method),
            uri: &creds.uri,
            nonce: &creds.nonce,
            qop: qop.map(|(nc, _)| (Qop::Auth, nc)),
            cnonce: qop.map(|(_, c)| c).unwrap_or(""),
        });
        // Hex digits compare case-insensitively: lowercased on the stack (a digest is at most 64
        // hex digits; anything longer cannot match and is compared as it is).
        let got = creds.response.as_bytes();
        let mut lower = [0u8; 64];
        let got = match lower.get_mut(..got.len()) {
            Some(buf) => {
                for (d, s) in buf.iter_mut().zip(got) {
                    *d = s.to_ascii_lowercase();
                }
                &*buf
            }
            None => got,
        };
        let matches = bool::from(expected.as_bytes().ct_eq(got));
        if !known {
            return Err(VerifyError::UnknownUser { username: creds.username.clone() });
        }
        if !matches {
            return Err(VerifyError::WrongResponse { username: creds.username.clone() });
        }
        // The nonce is checked after the digest so that a bad nonce with a
        // valid digest (an old or foreign nonce, e.g. from before a restart)
        // is answered with stale=true, RFC 2617 §3.2.1.
        let (issued, key) = self.check_nonce(now, &creds.nonce)?;
        if let Some((nc, _)) = qop {
            self.record_nc(now, key, issued, nc)?;
        }
        Ok(creds.username.clone())
    }

    /// Finds our realm's `Authorization` in `request` and verifies it.
    pub fn verify_request<F>(&mut self, now: Instant, request: &rsip::Request, lookup_password: F) -> Result<String, VerifyError>
    where
        F: FnOnce(&str) -> Option<String>,
    {
        let mut first_err = None;
        let mut ours = None;
        for h in request.headers.iter() {
            if let Header::Authorization(v) = h {
                match parse_authorization(v.value()) {
                    Ok(c) if c.realm == self.realm => {
                        ours = Some(c);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => first_err = first_err.or(Some(e)),
                }
            }
        }
        match (ours, first_err) {
            (Some(c), _) => self.verify(now, &request.method, &request.uri, &c, lookup_password),
            (None, Some(e)) => Err(VerifyError::Malformed(e)),
            (None, None) => Err(VerifyError::Missing { realm: self.realm.clone() }),
        }
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn mac(&self, body: &[u8]) -> [u8; 16] {
        let mut m = self.keyed.clone();
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    fn make_nonce<R: Rng + ?Sized>(&self, now: Instant, rng: &mut R) -> String {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&self.ms_since_epoch(now).to_be_bytes());
        rng.fill_bytes(&mut raw[8..16]);
        let mac = self.mac(&raw[..16]);
        raw[16..].copy_from_slice(&mac);
        hex::encode(raw)
    }

    /// Checks the HMAC and age; returns the issue time in ms and the
    /// nonce's body (its key in the replay table).
    fn check_nonce(&self, now: Instant, nonce: &str) -> Result<(u64, u128), VerifyError> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(nonce, &mut raw).map_err(|_| VerifyError::InvalidNonce)?;
        let mac = self.mac(&raw[..16]);
        if !bool::from(mac.ct_eq(&raw[16..])) {
            return Err(VerifyError::InvalidNonce);
        }
        let mut body = [0u8; 16];
        body.copy_from_slice(&raw[..16]);
        let issued = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        let now_ms = self.ms_since_epoch(now);
        if issued > now_ms {
            return Err(VerifyError::InvalidNonce);
        }
        if now_ms - issued > self.lifetime.as_millis() as u64 {
            return Err(VerifyError::StaleNonce);
        }
        Ok((issued, u128::from_be_bytes(body)))
    }

    fn record_nc(&mut self, now: Instant, key: u128, issued: u64, nc: u32) -> Result<(), VerifyError> {
        if let Some((_, last)) = self.seen.get_mut(&key) {
            if nc <= *last {
                return Err(VerifyError::Replay { nc });
            }
            *last = nc;
            return Ok(());
        }
        let now_ms = self.ms_since_epoch(now);
        let life = self.lifetime.as_millis() as u64;
        // Drop expired nonces from the front, then the oldest recorded while full.
        while let Some(&front) = self.order.front() {
            let expired = self.seen.get(&front).is_none_or(|(t, _)| now_ms.saturating_sub(*t) > life);
            if !expired && self.seen.len() < self.max_tracked {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&front);
        }
        self.seen.insert(key, (issued, nc));
        self.order.push_back(key);
        Ok(())
    }

    /// Number of nonces in the replay table (for tests and metrics).
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }
}

/// `uri=` must name the Request-URI (RFC 7616 §3.4.6). Compared as text
/// first, then structurally through rsip to allow harmless re-serialisation
/// (e.g. parameter case).
fn uri_matches(auth_uri: &str, request_uri: &rsip::Uri) -> bool {
    if displays_as(request_uri, auth_uri) {
        return true;
    }
    match rsip::Uri::try_from(auth_uri) {
        Ok(u) => &u == request_uri,
        Err(_) => false,
    }
}

/// The method's token as written on the wire, without formatting (every verified request).
fn method_str(method: &rsip::Method) -> &'static str {
    use rsip::Method::*;
    match method {
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Info => "INFO",
        Invite => "INVITE",
        Message => "MESSAGE",
        Notify => "NOTIFY",
        Options => "OPTIONS",
        PRack => "PRACK",
        Publish => "PUBLISH",
        Refer => "REFER",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Update => "UPDATE",
    }
}

/// Whether `value` is written exactly as `text`, compared piece by piece as it is formatted
/// (no string is built: this runs for every authenticated request).
fn displays_as(value: &impl fmt::Display, text: &str) -> bool {
    struct Compare<'a> {
        rest: &'a str,
    }
    impl fmt::Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            // A mismatch stops the formatting early.
            self.rest = self.rest.strip_prefix(s).ok_or(fmt::Error)?;
            Ok(())
        }
    }
    let mut c = Compare { rest: text };
    fmt::write(&mut c, format_args!("{value}")).is_ok() && c.rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::client::{set_auth_headers, ClientError, DigestClient};
    use crate::sip::auth::test_util::{header_values, reply, request, rng};
    use crate::sip::auth::{parse_authorization, parse_challenge};

    const REGISTER: &str = "REGISTER sip:redial SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1
Max-Forwards: 70
From: <sip:alice@redial>;tag=a1
To: <sip:alice@redial>
Call-ID: c1@127.0.0.1
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:5070>
Content-Length: 0";

    fn lookup(u: &str) -> Option<String> {
        (u == "alice").then(|| "alice-pw".to_string())
    }

    fn server(algs: &[DigestAlgorithm], t0: Instant) -> DigestServer {
        DigestServer::new("redial", algs, DEFAULT_NONCE_LIFETIME, t0, &mut rng(1))
    }

    /// 401 from the server, answered by the client; returns the retried request.
    fn answer(srv: &DigestServer, cli: &mut DigestClient, req: &rsip::Request, now: Instant, stale: bool) -> Result<rsip::Request, ClientError> {
        let ch: Vec<String> = srv.challenge(now, stale, &mut rng(2)).iter().map(|c| format!("WWW-Authenticate: {c}")).collect();
        let resp = reply(req, 401, &ch);
        let hs = cli.respond(&resp, req, &mut rng(3))?;
        let mut next = req.clone();
        set_auth_headers(&mut next, hs);
        Ok(next)
    }

    fn creds_of(req: &rsip::Request) -> crate::sip::auth::Credentials {
        parse_authorization(&header_values(&req.headers, "Authorization")[0]).unwrap()
    }

    #[test]
    fn round_trip_md5_and_sha256_with_qop() {
        let t0 = Instant::now();
        for (algs, want) in [
            (vec![DigestAlgorithm::Md5], Algorithm::MD5),
            (vec![DigestAlgorithm::Sha256], Algorithm::SHA256),
            // MD5 listed first: the client still picks the strongest.
            (vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256], Algorithm::SHA256),
        ] {
            let mut srv = server(&algs, t0);
            let mut cli = DigestClient::new("alice", "alice-pw");
            let req = request(REGISTER);
            assert_eq!(srv.verify_request(t0, &req, lookup), Err(VerifyError::Missing { realm: "redial".into() }));
            let signed = answer(&srv, &mut cli, &req, t0, false).unwrap();
            let c = creds_of(&signed);
            assert_eq!(c.algorithm, want);
            assert_eq!((c.qop, c.nc), (Some(Qop::Auth), Some(1)));
            assert_eq!(c.uri, "sip:redial");
            assert_eq!(srv.verify_request(t0 + Duration::from_secs(1), &signed, lookup), Ok("alice".into()));
            // The same nc again is a replay (answered as stale).
            let e = srv.verify_request(t0 + Duration::from_secs(2), &signed, lookup).unwrap_err();
            assert_eq!(e, VerifyError::Replay { nc: 1 });
            assert!(e.is_stale());
            // A later request pre-authenticates with nc=2 on the same nonce.
            let mut refresh = request(&REGISTER.replace("CSeq: 1", "CSeq: 2"));
            let hs = cli.pre_authorize(&refresh, &mut rng(4));
            assert_eq!(hs.len(), 1);
            set_auth_headers(&mut refresh, hs);
            assert_eq!(creds_of(&refresh).nc, Some(2));
            assert_eq!(srv.verify_request(t0 + Duration::from_secs(3), &refresh, lookup), Ok("alice".into()));
        }
    }

    #[test]
    fn round_trip_without_qop() {
        let t0 = Instant::now();
        let mut srv = server(&[DigestAlgorithm::Md5, DigestAlgorithm::Sha256], t0);
        srv.set_offer_qop(false);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let req = request(REGISTER);
        let signed = answer(&srv, &mut cli, &req, t0, false).unwrap();
        let c = creds_of(&signed);
        assert_eq!((c.qop, c.nc, c.cnonce), (None, None, None));
        assert_eq!(c.algorithm, Algorithm::SHA256);
        assert_eq!(srv.verify_request(t0, &signed, lookup), Ok("alice".into()));
        // No qop: nothing to pre-authenticate with.
        assert!(cli.pre_authorize(&req, &mut rng(5)).is_empty());
    }

    #[test]
    fn qop_required_when_offered() {
        let t0 = Instant::now();
        let mut srv = server(&[DigestAlgorithm::Md5], t0);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let req = request(REGISTER);
        // The client answers a no-qop challenge carrying a nonce of this server.
        let mut ch = srv.challenge(t0, false, &mut rng(2)).remove(0);
        ch.qop.clear();
        let resp = reply(&req, 401, &[format!("WWW-Authenticate: {ch}")]);
        let mut signed = req.clone();
        set_auth_headers(&mut signed, cli.respond(&resp, &req, &mut rng(3)).unwrap());
        assert_eq!(srv.verify_request(t0, &signed, lookup), Err(VerifyError::MissingQop));
    }

    #[test]
    fn stale_nonce_after_lifetime_then_retry_succeeds() {
        let t0 = Instant::now();
        let mut srv = server(&[DigestAlgorithm::Md5], t0);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let req = request(REGISTER);
        let signed = answer(&srv, &mut cli, &req, t0, false).unwrap();
        let later = t0 + DEFAULT_NONCE_LIFETIME + Duration::from_secs(1);
        let e = srv.verify_request(later, &signed, lookup).unwrap_err();
        assert_eq!(e, VerifyError::StaleNonce);
        assert!(e.is_stale());
        // stale=true: the client answers again although it had credentials on.
        let again = answer(&srv, &mut cli, &signed, later, true).unwrap();
        assert_ne!(creds_of(&again).nonce, creds_of(&signed).nonce);
        assert_eq!(srv.verify_request(later, &again, lookup), Ok("alice".into()));
    }

    #[test]
    fn wrong_password_is_rejected_not_looped() {
        let t0 = Instant::now();
        let mut srv = server(&[DigestAlgorithm::Md5], t0);
        let mut cli = DigestClient::new("alice", "wrong");
        let req = request(REGISTER);
        let signed = answer(&srv, &mut cli, &req, t0, false).unwrap();
        let e = srv.verify_request(t0, &signed, lookup).unwrap_err();
        assert_eq!(e, VerifyError::WrongResponse { username: "alice".into() });
        assert!(!e.is_stale());
        // The server challenges again (non-stale): the client gives up.
        assert_eq!(answer(&srv, &mut cli, &signed, t0, false).unwrap_err(), ClientError::Rejected { realm: "redial".into() });
        // And it forgot the nonce: nothing to pre-authenticate with.
        assert!(cli.pre_authorize(&req, &mut rng(6)).is_empty());
    }

    #[test]
    fn pre_authorized_request_rechallenged_is_answered() {
        let t0 = Instant::now();
        let srv = server(&[DigestAlgorithm::Md5], t0);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let req = request(REGISTER);
        answer(&srv, &mut cli, &req, t0, false).unwrap();
        let mut refresh = req.clone();
        let hs = cli.pre_authorize(&refresh, &mut rng(7));
        set_auth_headers(&mut refresh, hs);
        // The server forgot the nonce and says so without stale (a new nonce:
        // other issue time): nc>1, so the client answers.
        assert!(answer(&srv, &mut cli, &refresh, t0 + Duration::from_secs(1), false).is_ok());
    }

    #[test]
    fn verification_failures() {
        let t0 = Instant::now();
        let mut srv = server(&[DigestAlgorithm::Md5], t0);
        let req = request(REGISTER);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let signed = answer(&srv, &mut cli, &req, t0, false).unwrap();
        let c = creds_of(&signed);

        // A tampered nonce breaks the digest.
        let mut bad = c.clone();
        bad.nonce.replace_range(0..2, if &c.nonce[..2] == "00" { "11" } else { "00" });
        assert!(matches!(srv.verify(t0, &req.method, &req.uri, &bad, lookup), Err(VerifyError::WrongResponse { .. })));
        // A nonce from another process (other secret) answered with the right
        // password: invalid nonce, re-challenged as stale.
        let other = DigestServer::new("redial", &[DigestAlgorithm::Md5], DEFAULT_NONCE_LIFETIME, t0, &mut rng(99));
        let mut cli2 = DigestClient::new("alice", "alice-pw");
        let foreign = answer(&other, &mut cli2, &req, t0, false).unwrap();
        let e = srv.verify_request(t0, &foreign, lookup).unwrap_err();
        assert_eq!(e, VerifyError::InvalidNonce);
        assert!(e.is_stale());
        // Same with a nonce that is not even hex, or issued in the future.
        for n in ["zz".to_string(), srv.challenge(t0 + Duration::from_secs(60), false, &mut rng(1))[0].nonce.clone()] {
            let ch = Challenge { realm: "redial".into(), nonce: n, opaque: None, algorithm: Algorithm::MD5, qop: vec![Qop::Auth], stale: false, domain: None };
            let mut cli3 = DigestClient::new("alice", "alice-pw");
            let mut signed = req.clone();
            set_auth_headers(&mut signed, cli3.respond(&reply(&req, 401, &[format!("WWW-Authenticate: {ch}")]), &req, &mut rng(1)).unwrap());
            assert_eq!(srv.verify_request(t0, &signed, lookup), Err(VerifyError::InvalidNonce));
        }

        let mut bad = c.clone();
        bad.uri = "sip:elsewhere".into();
        assert!(matches!(srv.verify(t0, &req.method, &req.uri, &bad, lookup), Err(VerifyError::UriMismatch { .. })));
        // Without the uri check, a client that signs another uri (SIPp's
        // default `sip:<remote_ip>:<port>`) is accepted.
        let mut lax = server(&[DigestAlgorithm::Md5], t0);
        lax.set_check_uri(false);
        let odd = request(&REGISTER.replace("REGISTER sip:redial", "REGISTER sip:127.0.0.1:5060"));
        let mut cli4 = DigestClient::new("alice", "alice-pw");
        let mut signed = answer(&lax, &mut cli4, &odd, t0, false).unwrap();
        signed.uri = req.uri.clone();
        assert_eq!(lax.verify_request(t0, &signed, lookup), Ok("alice".into()));
        assert!(matches!(srv.verify_request(t0, &signed, lookup), Err(VerifyError::UriMismatch { .. })));
        let mut bad = c.clone();
        bad.realm = "other".into();
        assert!(matches!(srv.verify(t0, &req.method, &req.uri, &bad, lookup), Err(VerifyError::WrongRealm { .. })));
        let mut bad = c.clone();
        bad.algorithm = Algorithm::SHA256;
        assert!(matches!(srv.verify(t0, &req.method, &req.uri, &bad, lookup), Err(VerifyError::AlgorithmNotOffered { .. })));
        let mut bad = c.clone();
        bad.username = "mallory".into();
        assert!(matches!(srv.verify(t0, &req.method, &req.uri, &bad, lookup), Err(VerifyError::UnknownUser { .. })));
        // Method is part of HA2: the same credentials do not authorise an INVITE.
        assert!(matches!(
            srv.verify(t0, &rsip::Method::Invite, &req.uri, &c, lookup),
            Err(VerifyError::WrongResponse { .. })
        ));
        // Still fine untouched.
        assert_eq!(srv.verify(t0, &req.method, &req.uri, &c, lookup), Ok("alice".into()));
    }

    #[test]
    fn method_tokens_and_uri_text_compare_as_rsip_writes_them() {
        use rsip::Method::*;
        for m in [Ack, Bye, Cancel, Info, Invite, Message, Notify, Options, PRack, Publish, Refer, Register, Subscribe, Update] {
            assert_eq!(method_str(&m), m.to_string());
        }
        let uri = rsip::Uri::try_from("sip:alice@127.0.0.1:5060;transport=udp").unwrap();
        assert!(displays_as(&uri, &uri.to_string()));
        for other in ["", "sip:alice@127.0.0.1", "sip:alice@127.0.0.1:5060;transport=udpx", "sip:bob@127.0.0.1:5060;transport=udp"] {
            assert!(!displays_as(&uri, other), "{other}");
        }
    }

    #[test]
    fn challenge_headers_one_per_algorithm_in_order() {
        let t0 = Instant::now();
        let srv = server(&[DigestAlgorithm::Sha256, DigestAlgorithm::Md5], t0);
        let hs = srv.challenge_headers(t0, true, &mut rng(1));
        let cs: Vec<_> = hs
            .iter()
            .map(|h| match h {
                Header::WwwAuthenticate(v) => parse_challenge(v.value()).unwrap(),
                _ => panic!("not WWW-Authenticate"),
            })
            .collect();
        assert_eq!(cs.iter().map(|c| c.algorithm).collect::<Vec<_>>(), vec![Algorithm::SHA256, Algorithm::MD5]);
        assert!(cs.iter().all(|c| c.stale && c.qop == vec![Qop::Auth] && c.realm == "redial"));
        assert_eq!(cs[0].nonce, cs[1].nonce);
        assert_eq!(cs[0].nonce.len(), 64);
    }

    #[test]
    fn challenge_headers_are_the_challenges_text() {
        let t0 = Instant::now();
        for qop in [true, false] {
            let mut srv = server(&[DigestAlgorithm::Sha256, DigestAlgorithm::Md5], t0);
            srv.set_offer_qop(qop);
            for stale in [false, true] {
                let hs = srv.challenge_headers(t0, stale, &mut rng(4));
                let cs = srv.challenge(t0, stale, &mut rng(4));
                let texts: Vec<String> = cs.iter().map(|c| c.to_string()).collect();
                assert_eq!(header_values_of(&hs), texts);
            }
        }
    }

    fn header_values_of(hs: &[Header]) -> Vec<String> {
        hs.iter()
            .map(|h| match h {
                Header::WwwAuthenticate(v) => v.value().to_string(),
                _ => panic!("not WWW-Authenticate"),
            })
            .collect()
    }

    #[test]
    fn replay_table_is_bounded() {
        let t0 = Instant::now();
        let mut srv = server(&[DigestAlgorithm::Md5], t0);
        srv.set_replay_capacity(16);
        let req = request(REGISTER);
        let mut r = rng(5);
        let mut first = None;
        let mut last = None;
        for i in 0..40 {
            let mut cli = DigestClient::new("alice", "alice-pw");
            let ch = srv.challenge(t0, false, &mut r).remove(0);
            let resp = reply(&req, 401, &[format!("WWW-Authenticate: {ch}")]);
            let mut signed = req.clone();
            set_auth_headers(&mut signed, cli.respond(&resp, &req, &mut r).unwrap());
            assert_eq!(srv.verify_request(t0 + Duration::from_millis(i as u64), &signed, lookup), Ok("alice".into()));
            first.get_or_insert(signed.clone());
            last = Some(signed);
            assert!(srv.tracked_nonces() <= 16);
        }
        // The oldest nonce was evicted: its replay is no longer detected
        // (the documented price of bounded memory), a recent one still is.
        let first = first.unwrap();
        assert_eq!(srv.verify_request(t0 + Duration::from_millis(50), &first, lookup), Ok("alice".into()));
        assert_eq!(srv.verify_request(t0 + Duration::from_millis(50), &last.unwrap(), lookup), Err(VerifyError::Replay { nc: 1 }));
    }
}
