//! Carrier registration: a sans-IO REGISTER client per profile (RFC 3261 §10.2).
//!
//! Timing rules (the numbers are constants below):
//! - the first REGISTER is ready as soon as the machine is built;
//! - the granted lifetime is the `expires` param of the Contact matching ours
//!   in the 2xx, else its `Expires` header, else what we asked for;
//! - refresh after `min(granted / 2, granted − 5 s)`, but never sooner than
//!   1 s after the 2xx ([`REFRESH_MARGIN`], [`MIN_REFRESH_DELAY`]);
//! - a failure (final response other than a challenge we can answer, or a
//!   transaction timeout/transport error) retries after 2 s, 4 s, 8 s, …
//!   capped at 300 s, each ±20 % jitter ([`BACKOFF_BASE`], [`BACKOFF_CAP`],
//!   [`BACKOFF_JITTER_PERMILLE`]); a 2xx resets the sequence;
//! - 401/407 are answered once per nonce (stale=true gets a new answer), at
//!   most [`MAX_AUTH_ROUNDS`] times per attempt;
//! - 423 with a larger `Min-Expires` (≤ 86400 s) is retried at once asking for
//!   that value, which is kept for later refreshes;
//! - a `Retry-After` on a failure lengthens that delay (never beyond 300 s);
//! - a registration stays `registered` until its expiry even while refreshes
//!   fail.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::Header;

use super::auth::client::random_hex;
use super::auth::{set_auth_headers, ClientError, DigestClient};
use super::registrar::parse_contacts;
use super::Peer;
use crate::config::Profile;

/// Refresh no later than this before expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5);
/// Never refresh sooner than this after a success.
pub const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);
/// First back-off delay after a failure; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest back-off delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Back-off jitter: ±200 ‰ = ±20 %.
pub const BACKOFF_JITTER_PERMILLE: u64 = 200;
/// 401/407 rounds answered within one attempt.
pub const MAX_AUTH_ROUNDS: u8 = 3;
/// Largest Min-Expires (423) we accept.
pub const MAX_MIN_EXPIRES: u32 = 86_400;
pub use super::USER_AGENT;

/// Why the last attempt failed (shown as the trunk's `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("registrar answered {code} {reason}")]
    Status { code: u16, reason: String },
    #[error("credentials rejected (realm {realm})")]
    AuthRejected { realm: String },
    #[error("{status} without a usable digest challenge")]
    NoUsableChallenge { status: u16 },
    #[error("too many authentication rounds")]
    TooManyChallenges,
    #[error("423 Interval Too Brief with unusable Min-Expires {min_expires:?}")]
    IntervalTooBrief { min_expires: Option<u32> },
    #[error("no response (transaction timeout)")]
    Timeout,
    #[error("transport error")]
    Transport,
    #[error("registrar granted 0 seconds")]
    ZeroExpires,
    #[error("profile `{profile}` has no username/password")]
    MissingCredentials { profile: String },
    #[error("cannot build a SIP URI from `{uri}`")]
    InvalidUri { uri: String },
}

/// What the HTTP API shows for a trunk's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkState {
    /// A 2xx was received and its lifetime has not run out.
    pub registered: bool,
    pub expires_at: Option<Instant>,
    pub last_error: Option<RegistrationError>,
    /// Consecutive failures since the last success.
    pub failures: u32,
    /// When the next REGISTER is due (refresh or retry); None while one is
    /// outstanding or after unregistering.
    pub next_attempt_at: Option<Instant>,
    pub unregistered: bool,
}

impl TrunkState {
    /// Seconds left for the API's `expires_in` (None when not registered).
    pub fn expires_in(&self, now: Instant) -> Option<u64> {
        self.expires_at.map(|t| t.saturating_duration_since(now).as_secs())
    }
}

/// What happened, for logs and the agents/trunks view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    Registered { expires_at: Instant },
    Failed { error: RegistrationError, retry_at: Instant },
    /// The lifetime ran out without a successful refresh.
    Expired,
    /// `unregister()` finished (successfully or not: see `error`).
    Unregistered { error: Option<RegistrationError> },
}

#[derive(Debug, Clone)]
enum Phase {
    /// A REGISTER is queued or sent; waiting for its final response.
    Pending { request: Box<rsip::Request>, auth_rounds: u8, unregister: bool },
    Registered { refresh_at: Instant },
    BackingOff { retry_at: Instant },
    Unregistered,
}

/// The REGISTER client of one trunk.
#[derive(Debug)]
pub struct Registration<R: Rng> {
    username: String,
    domain: String,
    contact_uri: String,
    local: Peer,
    /// Lifetime we ask for (raised by 423).
    requested: u32,
    call_id: String,
    from_tag: String,
    cseq: u32,
    auth: DigestClient,
    rng: R,
    phase: Phase,
    transmit: Option<rsip::Request>,
    events: VecDeque<RegistrationEvent>,
    expires_at: Option<Instant>,
    last_error: Option<RegistrationError>,
    failures: u32,
}

impl<R: Rng> Registration<R> {
    /// Builds the machine for `profile` advertising `local` (the address and
    /// transport our Contact and Via name; use the public address when
    /// behind NAT). The first REGISTER is immediately available from
    /// [`Registration::poll_transmit`].
    pub fn new(profile: &Profile, local: Peer, mut rng: R) -> Result<Self, RegistrationError> {
        let (Some(username), Some(password)) = (&profile.username, &profile.password) else {
            return Err(RegistrationError::MissingCredentials { profile: profile.name.clone() });
        };
        let contact_uri = format!("sip:{username}@{}", local.addr);
        for uri in [format!("sip:{}", profile.domain), format!("sip:{username}@{}", profile.domain), contact_uri.clone()] {
            if rsip::Uri::try_from(uri.as_str()).is_err() {
                return Err(RegistrationError::InvalidUri { uri });
            }
        }
        let call_id = format!("{}@{}", random_hex(&mut rng, 12), local.addr.ip());
        let from_tag = random_hex(&mut rng, 8);
        let mut reg = Self {
            username: username.clone(),
            domain: profile.domain.clone(),
            contact_uri,
            local,
            requested: profile.expires.as_secs().clamp(1, u32::MAX as u64) as u32,
            call_id,
            from_tag,
            cseq: 0,
            auth: DigestClient::new(username.clone(), password.clone()),
            rng,
            phase: Phase::Unregistered,
            transmit: None,
            events: VecDeque::new(),
            expires_at: None,
            last_error: None,
            failures: 0,
        };
        reg.send_register(false, 0, true);
        Ok(reg)
    }

    /// The next REGISTER to send in a new client transaction to the
    /// profile's proxy. Call after construction and after every `handle_*`
    /// / `unregister` until it returns `None`.
    pub fn poll_transmit(&mut self) -> Option<rsip::Request> {
        self.transmit.take()
    }

    /// Drains what happened; call after every `handle_*`.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// When [`Registration::handle_timeout`] must be called next (refresh,
    /// retry, or expiry of the current registration).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Registered { refresh_at } => Some(*refresh_at),
            Phase::BackingOff { retry_at } => Some(*retry_at),
            Phase::Pending { .. } | Phase::Unregistered => None,
        };
        match (phase, self.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs due timers. Harmless to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.expires_at.is_some_and(|t| now >= t) {
            self.expires_at = None;
            self.events.push_back(RegistrationEvent::Expired);
        }
        match self.phase {
            Phase::Registered { refresh_at } if now >= refresh_at => self.send_register(false, 0, true),
            Phase::BackingOff { retry_at } if now >= retry_at => self.send_register(false, 0, true),
            _ => {}
        }
    }

    /// A response to the REGISTER last handed out. Responses to older
    /// requests (other CSeq or Call-ID) and provisional ones are ignored.
    pub fn handle_response(&mut self, now: Instant, response: &rsip::Response) {
        let Phase::Pending { request, auth_rounds, unregister } = &self.phase else { return };
        let (request, auth_rounds, unregister) = ((**request).clone(), *auth_rounds, *unregister);
        if !self.is_ours(response) {
            return;
        }
        let code = response.status_code.code();
        match code {
            100..=199 => {}
            200..=299 => {
                if unregister {
                    self.finish_unregister(None);
                    return;
                }
                let granted = self.granted_expires(response);
                if granted == 0 {
                    self.fail(now, RegistrationError::ZeroExpires);
                    return;
                }
                let lifetime = Duration::from_secs(granted.into());
                let expires_at = now + lifetime;
                let delay = (lifetime / 2).min(lifetime.saturating_sub(REFRESH_MARGIN)).max(MIN_REFRESH_DELAY);
                self.expires_at = Some(expires_at);
                self.failures = 0;
                self.last_error = None;
                self.phase = Phase::Registered { refresh_at: now + delay };
                self.events.push_back(RegistrationEvent::Registered { expires_at });
            }
            401 | 407 => {
                if auth_rounds >= MAX_AUTH_ROUNDS {
                    return self.fail_or_finish(now, RegistrationError::TooManyChallenges);
                }
                match self.auth.respond(response, &request, &mut self.rng) {
                    Ok(headers) => {
                        let mut next = self.build_register(if unregister { 0 } else { self.requested });
                        set_auth_headers(&mut next, headers);
                        self.queue(next, auth_rounds + 1, unregister);
                    }
                    Err(ClientError::Rejected { realm }) => {
                        self.fail_or_finish(now, RegistrationError::AuthRejected { realm })
                    }
                    Err(ClientError::NoUsableChallenge { status } | ClientError::NotAChallenge { status }) => {
                        self.fail_or_finish(now, RegistrationError::NoUsableChallenge { status })
                    }
                }
            }
            423 if !unregister => {
                let min = response.headers.iter().find_map(|h| match h {
                    Header::MinExpires(m) => m.seconds().ok(),
                    _ => None,
                });
                match min {
                    Some(m) if m > self.requested && m <= MAX_MIN_EXPIRES => {
                        self.requested = m;
                        self.send_register(false, auth_rounds, true);
                    }
                    other => self.fail(now, RegistrationError::IntervalTooBrief { min_expires: other }),
                }
            }
            _ => {
                // rsip quirk: StatusCode's Display is "423 IntervalTooBrief"
                // (the variant name), not the reason phrase received.
                let reason = response.status_code.to_string();
                let reason = reason.split_once(' ').map(|(_, r)| r.to_string()).unwrap_or_default();
                self.fail_or_finish(now, RegistrationError::Status { code, reason });
                // §20.33: a Retry-After (e.g. on 503) lengthens the back-off,
                // up to the cap.
                let retry_after = response.headers.iter().find_map(|h| match h {
                    Header::RetryAfter(r) => r.value().split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok(),
                    _ => None,
                });
                if let (Some(secs), Phase::BackingOff { retry_at }) = (retry_after, &mut self.phase) {
                    let wanted = now + Duration::from_secs(secs).min(BACKOFF_CAP);
                    if wanted > *retry_at {
                        *retry_at = wanted;
                        if let Some(RegistrationEvent::Failed { retry_at: r, .. }) = self.events.back_mut() {
                            *r = wanted;
                        }
                    }
                }
            }
        }
    }

    /// The client transaction of the outstanding REGISTER timed out (Timer F)
    /// or could not be sent.
    pub fn handle_transport_failure(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Pending { .. }) {
            self.transmit = None;
            self.fail_or_finish(now, RegistrationError::Timeout);
        }
    }

    /// Graceful shutdown: sends REGISTER with `Expires: 0` if a binding may
    /// exist, else finishes at once. Completion is reported by
    /// [`RegistrationEvent::Unregistered`] and [`TrunkState::unregistered`].
    pub fn unregister(&mut self) {
        match &self.phase {
            Phase::Unregistered => {}
            Phase::Pending { unregister: true, .. } => {}
            Phase::Pending { .. } => self.send_register(true, 0, true),
            _ if self.expires_at.is_some() => self.send_register(true, 0, true),
            _ => self.finish_unregister(None),
        }
    }

    /// Registration status for the trunks API.
    pub fn state(&self) -> TrunkState {
        TrunkState {
            registered: self.expires_at.is_some(),
            expires_at: self.expires_at,
            last_error: self.last_error.clone(),
            failures: self.failures,
            next_attempt_at: match &self.phase {
                Phase::Registered { refresh_at } => Some(*refresh_at),
                Phase::BackingOff { retry_at } => Some(*retry_at),
                _ => None,
            },
            unregistered: matches!(self.phase, Phase::Unregistered),
        }
    }

    /// The Call-ID used by every REGISTER of this machine.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The lifetime currently requested (after any 423).
    pub fn requested_expires(&self) -> u32 {
        self.requested
    }

    fn is_ours(&self, response: &rsip::Response) -> bool {
        let Phase::Pending { request, .. } = &self.phase else { return false };
        let cseq_of = |hs: &rsip::Headers| {
            hs.iter().find_map(|h| match h {
                Header::CSeq(c) => c.value().split_whitespace().next().and_then(|n| n.parse::<u32>().ok()),
                _ => None,
            })
        };
        let call_id_of = |hs: &rsip::Headers| {
            hs.iter().find_map(|h| match h {
                Header::CallId(c) => Some(c.value().trim().to_string()),
                _ => None,
            })
        };
        cseq_of(&response.headers) == cseq_of(&request.headers)
            && call_id_of(&response.headers).as_deref() == Some(self.call_id.as_str())
    }

    /// §10.2.4: our Contact's `expires`, else `Expires`, else the request.
    fn granted_expires(&self, response: &rsip::Response) -> u32 {
        let ours = rsip::Uri::try_from(self.contact_uri.as_str()).ok();
        for h in response.headers.iter() {
            let Header::Contact(c) = h else { continue };
            let Ok(list) = parse_contacts(c.value()) else { continue };
            for spec in list.into_specs() {
                let same = spec.uri == self.contact_uri
                    || match (rsip::Uri::try_from(spec.uri.as_str()), &ours) {
                        (Ok(u), Some(o)) => u.user() == o.user() && u.host_with_port == o.host_with_port,
                        _ => false,
                    };
                if same {
                    if let Some(e) = spec.expires {
                        return e;
                    }
                }
            }
        }
        response
            .headers
            .iter()
            .find_map(|h| match h {
                Header::Expires(e) => e.seconds().ok(),
                _ => None,
            })
            .unwrap_or(self.requested)
    }

    fn fail_or_finish(&mut self, now: Instant, error: RegistrationError) {
        if matches!(self.phase, Phase::Pending { unregister: true, .. }) {
            self.finish_unregister(Some(error));
        } else {
            self.fail(now, error);
        }
    }

    fn fail(&mut self, now: Instant, error: RegistrationError) {
        self.failures = self.failures.saturating_add(1);
        let retry_at = now + backoff_delay(self.failures, &mut self.rng);
        self.last_error = Some(error.clone());
        self.phase = Phase::BackingOff { retry_at };
        self.events.push_back(RegistrationEvent::Failed { error, retry_at });
    }

    fn finish_unregister(&mut self, error: Option<RegistrationError>) {
        self.expires_at = None;
        self.transmit = None;
        if error.is_some() {
            self.last_error = error.clone();
        }
        self.phase = Phase::Unregistered;
        self.events.push_back(RegistrationEvent::Unregistered { error });
    }

    /// Builds and queues the next REGISTER; `pre_auth` reuses cached nonces.
    fn send_register(&mut self, unregister: bool, auth_rounds: u8, pre_auth: bool) {
        let mut req = self.build_register(if unregister { 0 } else { self.requested });
        if pre_auth {
            let headers = self.auth.pre_authorize(&req, &mut self.rng);
            set_auth_headers(&mut req, headers);
        }
        self.queue(req, auth_rounds, unregister);
    }

    fn queue(&mut self, req: rsip::Request, auth_rounds: u8, unregister: bool) {
        self.transmit = Some(req.clone());
        self.phase = Phase::Pending { request: Box::new(req), auth_rounds, unregister };
    }

    fn build_register(&mut self, expires: u32) -> rsip::Request {
        self.cseq += 1;
        let branch = new_branch(&mut self.rng);
        let aor = format!("sip:{}@{}", self.username, self.domain);
        let headers: Vec<Header> = vec![
            crate::sip::dialog::via(self.local.transport, self.local.addr, &branch).into(),
            rsip::headers::MaxForwards::new("70").into(),
            rsip::headers::From::new(format!("<{aor}>;tag={}", self.from_tag)).into(),
            rsip::headers::To::new(format!("<{aor}>")).into(),
            rsip::headers::CallId::new(self.call_id.clone()).into(),
            rsip::headers::CSeq::new(format!("{} REGISTER", self.cseq)).into(),
            rsip::headers::Contact::new(format!(
                "<{};transport={}>;expires={expires}",
                self.contact_uri, self.local.transport
            ))
            .into(),
            rsip::headers::Expires::new(expires.to_string()).into(),
            rsip::headers::UserAgent::new(USER_AGENT).into(),
            rsip::headers::ContentLength::new("0").into(),
        ];
        rsip::Request {
            method: rsip::Method::Register,
            // Checked in `new`; the fallback keeps this panic-free.
            uri: rsip::Uri::try_from(format!("sip:{}", self.domain)).unwrap_or_default(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }
}

/// A fresh RFC 3261 §8.1.1.7 branch (`z9hG4bK` + 64 random bits in hex).
pub fn new_branch<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("z9hG4bK{}", random_hex(rng, 8))
}

/// Delay before retry number `failures` (1-based): 2 s·2^(n−1), capped at
/// 300 s, ±20 % jitter.
pub fn backoff_delay<R: Rng + ?Sized>(failures: u32, rng: &mut R) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let base = (BACKOFF_BASE.as_millis() as u64).saturating_mul(1 << exp).min(BACKOFF_CAP.as_millis() as u64);
    let factor = rng.random_range(1000 - BACKOFF_JITTER_PERMILLE..=1000 + BACKOFF_JITTER_PERMILLE);
    Duration::from_millis(base * factor / 1000)
}

#[cfg(test)]
pub(crate) mod tests;
