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
//! [`MAX_TRACKED_NONCES`] entries (oldest evicted first).

use std::collections::HashMap;
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
/// Bound of the replay table.
pub const MAX_TRACKED_NONCES: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

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
    /// The client used a good password with an old nonce: re-challenge with
    /// `stale=true` (RFC 7616 §3.3) so it retries without asking the user.
    pub fn is_stale(&self) -> bool {
        matches!(self, VerifyError::StaleNonce | VerifyError::Replay { .. })
    }
}

/// Challenges and verifies for one realm.
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    algorithms: Vec<DigestAlgorithm>,
    lifetime: Duration,
    epoch: Instant,
    secret: [u8; 32],
    /// nonce → (issued_ms, highest nc accepted).
    seen: HashMap<String, (u64, u32)>,
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
        Self { realm: realm.into(), algorithms, lifetime, epoch, secret, seen: HashMap::new() }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// One challenge per configured algorithm, in order, all with the same
    /// fresh nonce and `qop="auth"`.
    pub fn challenge<R: Rng + ?Sized>(&self, now: Instant, stale: bool, rng: &mut R) -> Vec<Challenge> {
        let nonce = self.make_nonce(now, rng);
        self.algorithms
            .iter()
            .map(|a| Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                opaque: None,
                algorithm: Algorithm::from(*a),
                qop: vec![Qop::Auth],
                stale,
                domain: None,
            })
            .collect()
    }

    /// [`DigestServer::challenge`] as `WWW-Authenticate` headers (for a 401).
    pub fn challenge_headers<R: Rng + ?Sized>(&self, now: Instant, stale: bool, rng: &mut R) -> Vec<Header> {
        self.challenge(now, stale, rng)
            .into_iter()
            .map(|c| Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(c.to_string())))
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
        let issued = self.check_nonce(now, &creds.nonce)?;
        if !uri_matches(&creds.uri, request_uri) {
            return Err(VerifyError::UriMismatch { got: creds.uri.clone(), want: request_uri.to_string() });
        }
        // We always offer qop="auth" (RFC 7616 §3.4: the client MUST then use it).
        let (Some(Qop::Auth), Some(nc), Some(cnonce)) = (creds.qop, creds.nc, creds.cnonce.as_deref()) else {
            return Err(VerifyError::MissingQop);
        };
        let password = lookup_password(&creds.username)
            .ok_or_else(|| VerifyError::UnknownUser { username: creds.username.clone() })?;
        let expected = request_digest(&DigestInput {
            algorithm: creds.algorithm,
            username: &creds.username,
            realm: &self.realm,
            password: &password,
            method: &method.to_string(),
            uri: &creds.uri,
            nonce: &creds.nonce,
            qop: Some((Qop::Auth, nc)),
            cnonce,
        });
        let got = creds.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(got.as_bytes())) {
            return Err(VerifyError::WrongResponse { username: creds.username.clone() });
        }
        self.record_nc(now, &creds.nonce, issued, nc)?;
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
        // new_from_slice accepts any key length for HMAC; 32 bytes never fails.
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    fn make_nonce<R: Rng + ?Sized>(&self, now: Instant, rng: &mut R) -> String {
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&self.ms_since_epoch(now).to_be_bytes());
        rng.fill_bytes(&mut body[8..]);
        let mac = self.mac(&body);
        let mut raw = body.to_vec();
        raw.extend_from_slice(&mac);
        hex::encode(raw)
    }

    /// Checks the HMAC and age; returns the issue time in ms.
    fn check_nonce(&self, now: Instant, nonce: &str) -> Result<u64, VerifyError> {
        let raw = hex::decode(nonce).map_err(|_| VerifyError::InvalidNonce)?;
        if raw.len() != 32 {
            return Err(VerifyError::InvalidNonce);
        }
        let mac = self.mac(&raw[..16]);
        if !bool::from(mac.ct_eq(&raw[16..])) {
            return Err(VerifyError::InvalidNonce);
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let issued = u64::from_be_bytes(ts);
        let now_ms = self.ms_since_epoch(now);
        if issued > now_ms {
            return Err(VerifyError::InvalidNonce);
        }
        if now_ms - issued > self.lifetime.as_millis() as u64 {
            return Err(VerifyError::StaleNonce);
        }
        Ok(issued)
    }

    fn record_nc(&mut self, now: Instant, nonce: &str, issued: u64, nc: u32) -> Result<(), VerifyError> {
        if let Some((_, last)) = self.seen.get_mut(nonce) {
            if nc <= *last {
                return Err(VerifyError::Replay { nc });
            }
            *last = nc;
            return Ok(());
        }
        let now_ms = self.ms_since_epoch(now);
        let life = self.lifetime.as_millis() as u64;
        if self.seen.len() >= MAX_TRACKED_NONCES {
            self.seen.retain(|_, (t, _)| now_ms.saturating_sub(*t) <= life);
        }
        if self.seen.len() >= MAX_TRACKED_NONCES {
            if let Some(oldest) = self.seen.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone()) {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(nonce.to_string(), (issued, nc));
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
    if auth_uri == request_uri.to_string() {
        return true;
    }
    match rsip::Uri::try_from(auth_uri) {
        Ok(u) => &u == request_uri,
        Err(_) => false,
    }
}
