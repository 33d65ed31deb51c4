//! The agents' registrar: digest-challenged REGISTER, bindings with expiry
//! (RFC 3261 §10.3), sans-IO.
//!
//! Limits: a binding lives at least [`MIN_EXPIRES`] = 60 s (shorter → 423
//! with `Min-Expires: 60`) and at most [`MAX_EXPIRES`] = 3600 s (longer is
//! cut to 3600, and the 200 says so); with neither a Contact `expires` param
//! nor an `Expires` header, [`DEFAULT_EXPIRES`] = 3600 s. At most
//! [`MAX_BINDINGS_PER_AGENT`] = 10 contacts per agent: a new one beyond that
//! replaces the binding closest to expiry.
//!
//! Order of checks for a REGISTER: 400 (missing To/From/Call-ID/CSeq),
//! 401 (no/invalid/stale credentials), 403 (authenticated user ≠ To user),
//! 400 (bad Contact), 423, 500 (§10.3 step 7: same Call-ID with a CSeq not
//! above the binding's), then 200.
//!
//! No enumeration: a To user that is not an agent is challenged like an
//! agent, and credentials for an unknown user are refused with the same
//! 401 as a wrong password (the digest is computed all the same, so the
//! time taken does not tell either). The two answers differ only in their
//! To tag and nonce.
//!
//! No free guessing: [`Registrar::register`] consults an [`AuthGuard`] —
//! only for sources already on record and after failures — which holds
//! answers to repeated failures and then drops a blocked source's requests.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::Header;

use super::auth::client::random_hex;
use super::auth::{DigestServer, VerifyError};
use super::Peer;
use crate::config::{Agent, DigestAlgorithm, GuardConfig};

pub mod guard;
pub use guard::{Admission, AuthGuard, Penalty};

/// Shortest binding lifetime accepted (423 below).
pub const MIN_EXPIRES: u32 = 60;
/// Longest binding lifetime granted.
pub const MAX_EXPIRES: u32 = 3600;
/// Lifetime when the REGISTER names none.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Contacts kept per agent; a new one beyond this replaces the binding
/// closest to expiry.
pub const MAX_BINDINGS_PER_AGENT: usize = 10;

// ---------------------------------------------------------------- contacts

/// One element of a Contact header (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The URI (inside `<>` when name-addr).
    pub uri: String,
    /// `expires` param, clamped to u32.
    pub expires: Option<u32>,
    /// All header params (after the URI), names lower-cased, in order.
    pub params: Vec<(String, Option<String>)>,
}

/// A parsed Contact header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactList {
    /// `Contact: *` (only valid with `Expires: 0`).
    Star,
    Specs(Vec<ContactSpec>),
}

impl ContactList {
    pub fn into_specs(self) -> Vec<ContactSpec> {
        match self {
            ContactList::Star => Vec::new(),
            ContactList::Specs(v) => v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("empty contact")]
    Empty,
    #[error("`*` mixed with other contacts")]
    StarInList,
    #[error("unterminated `<` or quote in contact")]
    Unterminated,
    #[error("`expires={value}` is not a number of seconds")]
    InvalidExpires { value: String },
    #[error("`{uri}` is not a SIP URI")]
    InvalidUri { uri: String },
}

/// Parses a Contact (or To/From) header value: `*`, or a comma-separated
/// list of name-addr / addr-spec with params. Written here because rsip
/// 0.4's typed `Contact` holds exactly one contact (no list splitting, no
/// `*`), and its untyped header keeps the whole line.
pub fn parse_contacts(value: &str) -> Result<ContactList, ContactError> {
    parse_contacts_with(value, |_| false)
}

/// [`parse_contacts`], taking a `sip:`/`sips:` URI for which `known` is true as valid without
/// parsing it again: a refresh repeats the URI of a binding, checked when it was made, and
/// rsip's URI parser is one of the costliest steps of a REGISTER.
fn parse_contacts_with(value: &str, known: impl Fn(&str) -> bool) -> Result<ContactList, ContactError> {
    let parts = split_top_level(value)?;
    if parts.iter().any(|p| p.trim() == "*") {
        return if parts.len() == 1 { Ok(ContactList::Star) } else { Err(ContactError::StarInList) };
    }
    let mut specs = Vec::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        specs.push(parse_one(part, &known)?);
    }
    if specs.is_empty() {
        return Err(ContactError::Empty);
    }
    Ok(ContactList::Specs(specs))
}

/// Splits on commas outside quotes and angle brackets.
fn split_top_level(value: &str) -> Result<Vec<&str>, ContactError> {
    let mut out = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quote || in_angle {
        return Err(ContactError::Unterminated);
    }
    out.push(&value[start..]);
    Ok(out)
}

fn parse_one(part: &str, known: &impl Fn(&str) -> bool) -> Result<ContactSpec, ContactError> {
    let (uri, rest) = if let Some(lt) = find_unquoted(part, '<') {
        let gt = part[lt..].find('>').map(|g| lt + g).ok_or(ContactError::Unterminated)?;
        (part[lt + 1..gt].trim(), &part[gt + 1..])
    } else {
        // addr-spec: params after the URI belong to the header (§20.10).
        match part.find(';') {
            Some(i) => (part[..i].trim(), &part[i..]),
            None => (part, ""),
        }
    };
    // rsip quirk: `Uri::try_from("nonsense")` succeeds (a bare host, no
    // scheme), so the scheme is checked here.
    let lower = uri.to_ascii_lowercase();
    let has_scheme = lower.starts_with("sip:") || lower.starts_with("sips:");
    if !has_scheme || (!known(uri) && rsip::Uri::try_from(uri).is_err()) {
        return Err(ContactError::InvalidUri { uri: uri.to_string() });
    }
    let mut params = Vec::new();
    let mut expires = None;
    for p in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"').to_string())),
            None => (p.to_ascii_lowercase(), None),
        };
        if name == "expires" {
            let v = value.clone().unwrap_or_default();
            let n = v.parse::<u64>().map_err(|_| ContactError::InvalidExpires { value: v.clone() })?;
            // §20.19: larger than 2^32−1 means 2^32−1.
            expires = Some(n.min(u32::MAX as u64) as u32);
        }
        params.push((name, value));
    }
    Ok(ContactSpec { uri: uri.to_string(), expires, params })
}

fn find_unquoted(s: &str, target: char) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && in_quote {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if c == target && !in_quote {
            return Some(i);
        }
    }
    None
}

/// The user part of a To/From header value's `sip:`/`sips:` URI: the URI
/// inside `<>` (or, for an addr-spec, the value up to its first `;`), after
/// the scheme, before the `@`. Read in place, because a full URI parse on
/// every REGISTER cost more than the rest of the registrar; the registrar
/// only compares the result with agent ids.
pub fn user_of(name_addr: &str) -> Option<String> {
    let uri = match find_unquoted(name_addr, '<') {
        Some(lt) => {
            let rest = &name_addr[lt + 1..];
            &rest[..rest.find('>')?]
        }
        None => name_addr.split(';').next().unwrap_or(""),
    };
    let uri = uri.trim();
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    let rest = &uri[colon + 1..];
    let at = rest.find('@')?;
    let user = &rest[..at];
    // `user:password@` (§19.1.1): the password is not part of the user.
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

/// Whether a To value (name-addr or addr-spec) holds a `sip:`/`sips:` URI.
fn is_sip_aor(to: &str) -> bool {
    let uri = match (to.find('<'), to.find('>')) {
        (Some(a), Some(b)) if a < b => &to[a + 1..b],
        _ => to.trim(),
    };
    let scheme = uri.split(':').next().unwrap_or("");
    scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
}

/// The user of the To URI of `req`.
pub fn to_user(req: &rsip::Request) -> Option<String> {
    req.headers.iter().find_map(|h| match h {
        Header::To(t) => user_of(t.value()),
        _ => None,
    })
}

/// URI equality, structurally through rsip when both parse (§19.1.4
/// approximated: rsip compares scheme, user, host, port and params).
fn same_uri(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (rsip::Uri::try_from(a), rsip::Uri::try_from(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

// ---------------------------------------------------------------- registrar

/// One registered contact of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as registered (where to send the agent's INVITEs,
    /// through `source` when behind NAT).
    pub uri: String,
    pub expires_at: Instant,
    /// Where the REGISTER came from (received address/transport), for NAT.
    pub source: Peer,
    pub call_id: String,
    pub cseq: u32,
    /// The `q` param when given.
    pub q: Option<String>,
}

/// Agent reachability changes and authentication failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// First binding after none: the agent can be made `available`.
    AgentReachable { agent: String },
    /// Last binding removed or expired.
    AgentUnreachable { agent: String },
    /// Wrong credentials (wrong password or unknown user) from `source`;
    /// `penalty` is what the guard decided for the answer.
    AuthFailure { source: std::net::IpAddr, user: String, penalty: Penalty },
    /// A request from a blocked source (or for a blocked account) was dropped unanswered.
    Blocked { source: std::net::IpAddr },
}

/// How to send the answer to a REGISTER.
#[derive(Debug)]
pub enum Answer {
    /// Send it now.
    Now(rsip::Response),
    /// Hold it until then (a throttled failure).
    Hold(rsip::Response, Instant),
    /// Send nothing (a blocked source or account).
    Drop,
}

/// The registrar for `sip.realm`.
#[derive(Debug)]
pub struct Registrar<R: Rng> {
    server: DigestServer,
    passwords: HashMap<String, String>,
    bindings: HashMap<String, Vec<Binding>>,
    /// A lower bound of the earliest binding expiry (what [`Registrar::poll_timeout`]
    /// returns). Kept instead of scanning every binding after each REGISTER; a
    /// refresh can leave it early, which costs one wake that finds nothing.
    next_expiry: Option<Instant>,
    events: VecDeque<RegistrarEvent>,
    guard: AuthGuard,
    rng: R,
}

/// What [`Registrar::authenticate`] found, for the guard.
enum AuthOutcome {
    /// No credentials, or a stale/foreign nonce with a good digest: not a guess.
    NotTried,
    /// A wrong digest or an unknown user: a guess that failed.
    Failed(String),
    Ok,
}

impl<R: Rng> Registrar<R> {
    /// `now` is the time base of the nonces (any Instant not after the
    /// first `handle_*`).
    pub fn new(
        realm: &str,
        algorithms: &[DigestAlgorithm],
        agents: &[Agent],
        nonce_lifetime: Duration,
        now: Instant,
        mut rng: R,
    ) -> Self {
        let server = DigestServer::new(realm, algorithms, nonce_lifetime, now, &mut rng);
        let guard = AuthGuard::new(GuardConfig::default());
        let mut r = Self { server, passwords: HashMap::new(), bindings: HashMap::new(), next_expiry: None, events: VecDeque::new(), guard, rng };
        r.set_agents(agents);
        r
    }

    /// From the validated config: `sip.realm`, `sip.digest_algorithms`,
    /// `sip.guard`, `agents`, and the default nonce lifetime (5 min).
    pub fn from_config(cfg: &crate::config::Config, now: Instant, rng: R) -> Self {
        let mut r = Self::new(&cfg.sip.realm, &cfg.sip.digest_algorithms, &cfg.agents, super::auth::DEFAULT_NONCE_LIFETIME, now, rng);
        r.set_guard(cfg.sip.guard.clone());
        r
    }

    /// Replaces the guard (and forgets its records).
    pub fn set_guard(&mut self, cfg: GuardConfig) {
        self.guard = AuthGuard::new(cfg);
    }

    /// The guard, to screen requests before they reach a transaction.
    pub fn guard(&self) -> &AuthGuard {
        &self.guard
    }

    /// [`Registrar::handle_register`] behind the guard: a source or account
    /// that is blocked gets nothing; a failed guess gets its 401 now, held,
    /// or dropped as the guard says ([`RegistrarEvent::AuthFailure`] is queued
    /// for each failure).
    pub fn register(&mut self, now: Instant, req: &rsip::Request, source: Peer) -> Answer {
        let ip = source.addr.ip();
        if self.guard.tracked().0 > 0 {
            let user = header_value(req, "to").and_then(|t| user_of(&t));
            if self.guard.admit(now, ip, user.as_deref()) == Admission::Drop {
                return self.blocked(ip);
            }
        }
        let (resp, outcome) = self.register_inner(now, req, source);
        match outcome {
            AuthOutcome::Ok => {
                self.guard.success(ip);
                Answer::Now(resp)
            }
            AuthOutcome::NotTried => Answer::Now(resp),
            AuthOutcome::Failed(user) => {
                let penalty = self.guard.failure(now, ip, &user);
                self.events.push_back(RegistrarEvent::AuthFailure { source: ip, user, penalty });
                match penalty {
                    Penalty::None => Answer::Now(resp),
                    Penalty::Hold(at) => Answer::Hold(resp, at),
                    Penalty::Block => Answer::Drop,
                }
            }
        }
    }

    fn blocked(&mut self, source: std::net::IpAddr) -> Answer {
        self.events.push_back(RegistrarEvent::Blocked { source });
        Answer::Drop
    }

    /// See [`DigestServer::set_check_uri`] (on by default).
    pub fn set_check_uri(&mut self, on: bool) {
        self.server.set_check_uri(on);
    }

    /// Replaces the agent list (config reload); bindings of removed agents
    /// are dropped (with `AgentUnreachable`).
    pub fn set_agents(&mut self, agents: &[Agent]) {
        self.passwords = agents.iter().map(|a| (a.id.clone(), a.password.clone())).collect();
        let gone: Vec<String> = self.bindings.keys().filter(|k| !self.passwords.contains_key(*k)).cloned().collect();
        for g in gone {
            if self.bindings.remove(&g).is_some_and(|b| !b.is_empty()) {
                self.events.push_back(RegistrarEvent::AgentUnreachable { agent: g });
            }
        }
    }

    /// Handles a REGISTER received from `source` and returns the complete
    /// final response to send in its server transaction, without the guard
    /// (see [`Registrar::register`]).
    ///
    /// Only this agent's bindings are expired here; the others expire from
    /// [`Registrar::handle_timeout`], so a REGISTER costs the same whatever
    /// the number of agents.
    pub fn handle_register(&mut self, now: Instant, req: &rsip::Request, source: Peer) -> rsip::Response {
        self.register_inner(now, req, source).0
    }

    fn register_inner(&mut self, now: Instant, req: &rsip::Request, source: Peer) -> (rsip::Response, AuthOutcome) {
        let (Some(to), Some(call_id), Some(cseq)) = (header_value(req, "to"), call_id(req), cseq(req)) else {
            return (self.reply(req, 400, vec![]), AuthOutcome::NotTried);
        };
        if !req.headers.iter().any(|h| matches!(h, Header::From(_))) {
            return (self.reply(req, 400, vec![]), AuthOutcome::NotTried);
        }
        // RFC 3261 §10.3 step 3: an address-of-record that is no SIP URI is
        // not valid for this registrar (RFC 4475 §3.3.4), whoever asks.
        if !is_sip_aor(&to) {
            return (self.reply(req, 404, vec![]), AuthOutcome::NotTried);
        }
        // An unknown To user goes through the same challenge as an agent
        // (no enumeration); it can only end in 401 or 403.
        let to_user = user_of(&to).unwrap_or_default();
        let user = match self.authenticate(now, req) {
            Ok(u) => u,
            Err((resp, outcome)) => return (resp, outcome),
        };
        if user != to_user {
            return (self.reply(req, 403, vec![]), AuthOutcome::Ok);
        }
        let agent = user;
        (self.register_bindings(now, req, source, agent, call_id, cseq), AuthOutcome::Ok)
    }

    fn register_bindings(&mut self, now: Instant, req: &rsip::Request, source: Peer, agent: String, call_id: String, cseq: u32) -> rsip::Response {
        self.expire_agent(&agent, now);
        // Contacts (all headers), Expires header.
        let mut star = false;
        let mut specs = Vec::new();
        let mut bad = false;
        let bound = self.bindings.get(&agent);
        let known = |uri: &str| bound.is_some_and(|v| v.iter().any(|b| b.uri == uri));
        for h in req.headers.iter() {
            if let Header::Contact(c) = h {
                match parse_contacts_with(c.value(), known) {
                    Ok(ContactList::Star) => star = true,
                    Ok(ContactList::Specs(s)) => specs.extend(s),
                    Err(_) => {
                        bad = true;
                        break;
                    }
                }
            }
        }
        if bad {
            return self.reply(req, 400, vec![]);
        }
        // §20.19: a malformed Expires counts as 3600 (our default); values
        // beyond 2^32−1 as 2^32−1.
        let expires_header = req.headers.iter().find_map(|h| match h {
            Header::Expires(e) => Some(
                e.value().trim().parse::<u64>().map(|n| n.min(u32::MAX as u64) as u32).unwrap_or(DEFAULT_EXPIRES),
            ),
            _ => None,
        });
        let had_any = self.has_bindings(&agent);
        // §10.3 step 7: the binding exists with this Call-ID and a CSeq not below this one.
        let out_of_order = |bindings: &HashMap<String, Vec<Binding>>, uri: Option<&str>| {
            bindings.get(&agent).is_some_and(|v| {
                v.iter().any(|b| uri.is_none_or(|u| same_uri(&b.uri, u)) && b.call_id == call_id && b.cseq >= cseq)
            })
        };
        if star {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if !specs.is_empty() || expires_header != Some(0) {
                return self.reply(req, 400, vec![]);
            }
            if out_of_order(&self.bindings, None) {
                return self.reply(req, 500, vec![]);
            }
            self.bindings.remove(&agent);
        } else {
            // Validate everything before changing anything (atomic, §10.3).
            let mut changes = Vec::new();
            for s in &specs {
                let e = s.expires.or(expires_header).unwrap_or(DEFAULT_EXPIRES);
                if e != 0 && e < MIN_EXPIRES {
                    let min = rsip::headers::MinExpires::new(MIN_EXPIRES.to_string()).into();
                    return self.reply(req, 423, vec![min]);
                }
                if out_of_order(&self.bindings, Some(&s.uri)) {
                    return self.reply(req, 500, vec![]);
                }
                let q = s.params.iter().find(|(n, _)| n == "q").and_then(|(_, v)| v.clone());
                changes.push((s.uri.clone(), e.min(MAX_EXPIRES), q));
            }
            let list = self.bindings.entry(agent.clone()).or_default();
            for (uri, e, q) in changes {
                list.retain(|b| !same_uri(&b.uri, &uri));
                if e == 0 {
                    continue;
                }
                if list.len() >= MAX_BINDINGS_PER_AGENT {
                    if let Some(i) = list.iter().enumerate().min_by_key(|(_, b)| b.expires_at).map(|(i, _)| i) {
                        list.remove(i);
                    }
                }
                let expires_at = now + Duration::from_secs(e.into());
                list.push(Binding { uri, expires_at, source, call_id: call_id.clone(), cseq, q });
                self.next_expiry = Some(self.next_expiry.map_or(expires_at, |n| n.min(expires_at)));
            }
        }
        if self.bindings.get(&agent).is_some_and(|v| v.is_empty()) {
            self.bindings.remove(&agent);
        }
        if self.bindings.is_empty() {
            self.next_expiry = None;
        }
        self.note_change(&agent, had_any);
        let contacts = self
            .bindings
            .get(&agent)
            .map(|v| {
                v.iter()
                    .filter(|b| b.expires_at > now)
                    .map(|b| {
                        let left = b.expires_at.saturating_duration_since(now);
                        // Round up so a binding never looks expired early.
                        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                        rsip::headers::Contact::new(format!("<{}>;expires={secs}", b.uri)).into()
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.reply(req, 200, contacts)
    }

    /// Authenticates an agent's request other than REGISTER (e.g. INVITE):
    /// `Ok(agent id)`, or the 401 (challenge, `stale` when due) / 403 (From
    /// user ≠ authenticated user) to send back.
    pub fn verify_request(&mut self, now: Instant, req: &rsip::Request) -> Result<String, rsip::Response> {
        let user = self.authenticate(now, req).map_err(|(resp, _)| resp)?;
        match header_value(req, "from").and_then(|f| user_of(&f)) {
            Some(from_user) if from_user == user => Ok(user),
            _ => Err(self.reply(req, 403, vec![])),
        }
    }

    /// The connection `source` (a WebSocket, RFC 7118 §5.3) closed: every binding
    /// registered over it ends now, since nothing can reach its contact any more
    /// (`AgentUnreachable` for agents left with none). Returns the agents whose bindings
    /// changed.
    pub fn connection_closed(&mut self, now: Instant, source: Peer) -> Vec<String> {
        let hit: Vec<String> =
            self.bindings.iter().filter(|(_, v)| v.iter().any(|b| b.source == source)).map(|(a, _)| a.clone()).collect();
        for agent in &hit {
            let had = self.has_bindings(agent);
            if let Some(v) = self.bindings.get_mut(agent) {
                v.retain(|b| b.source != source && b.expires_at > now);
                if v.is_empty() {
                    self.bindings.remove(agent);
                }
            }
            self.note_change(agent, had);
        }
        if self.bindings.is_empty() {
            self.next_expiry = None;
        }
        hit
    }

    /// Puts back a binding an earlier process accepted (saved across a restart). Kept
    /// only while `agent` is still configured and the binding has not expired, within
    /// [`MAX_BINDINGS_PER_AGENT`]; an agent's first binding makes it reachable
    /// (`AgentReachable`). Returns whether it was kept.
    pub fn restore(&mut self, now: Instant, agent: &str, uri: String, expires_at: Instant, source: Peer) -> bool {
        if expires_at <= now || !self.passwords.contains_key(agent) {
            return false;
        }
        let had = self.has_bindings(agent);
        let list = self.bindings.entry(agent.to_string()).or_default();
        if list.len() >= MAX_BINDINGS_PER_AGENT || list.iter().any(|b| same_uri(&b.uri, &uri)) {
            return false;
        }
        // No Call-ID: the softphone's next REGISTER, whatever its CSeq, replaces it.
        list.push(Binding { uri, expires_at, source, call_id: String::new(), cseq: 0, q: None });
        self.next_expiry = Some(self.next_expiry.map_or(expires_at, |n| n.min(expires_at)));
        self.note_change(agent, had);
        true
    }

    /// Live bindings of `agent` at `now`.
    pub fn contacts(&self, agent: &str, now: Instant) -> Vec<Binding> {
        self.bindings
            .get(agent)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Agents with at least one live binding at `now`.
    pub fn registered_agents(&self, now: Instant) -> Vec<String> {
        let mut v: Vec<String> =
            self.bindings.iter().filter(|(_, b)| b.iter().any(|b| b.expires_at > now)).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }

    /// Drops expired bindings (emitting `AgentUnreachable` as needed). Call
    /// at [`Registrar::poll_timeout`].
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<String> =
            self.bindings.iter().filter(|(_, v)| v.iter().any(|b| b.expires_at <= now)).map(|(a, _)| a.clone()).collect();
        for a in expired {
            self.expire_agent(&a, now);
        }
        self.next_expiry = self.bindings.values().flatten().map(|b| b.expires_at).min();
    }

    /// Drops `agent`'s expired bindings (emitting `AgentUnreachable` when none is left).
    fn expire_agent(&mut self, agent: &str, now: Instant) {
        let had = self.has_bindings(agent);
        if let Some(v) = self.bindings.get_mut(agent) {
            v.retain(|b| b.expires_at > now);
            if v.is_empty() {
                self.bindings.remove(agent);
            }
        }
        self.note_change(agent, had);
    }

    /// Same as [`Registrar::expire`], for the driver's timer loop.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When to call [`Registrar::handle_timeout`]: the next binding expiry,
    /// or earlier (a lower bound after refreshes and removals).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Reachability changes; drain after every `handle_*`.
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    fn has_bindings(&self, agent: &str) -> bool {
        self.bindings.get(agent).is_some_and(|v| !v.is_empty())
    }

    fn note_change(&mut self, agent: &str, had: bool) {
        let has = self.has_bindings(agent);
        if had && !has {
            self.events.push_back(RegistrarEvent::AgentUnreachable { agent: agent.to_string() });
        } else if !had && has {
            self.events.push_back(RegistrarEvent::AgentReachable { agent: agent.to_string() });
        }
    }

    /// Verifies the request's credentials; on failure the 401 to send and
    /// whether it was a failed guess.
    fn authenticate(&mut self, now: Instant, req: &rsip::Request) -> Result<String, (rsip::Response, AuthOutcome)> {
        let passwords = &self.passwords;
        match self.server.verify_request(now, req, |u| passwords.get(u).cloned()) {
            Ok(u) => Ok(u),
            Err(e) => {
                let stale = e.is_stale();
                tracing::debug!(error = %e, "digest verification failed");
                let outcome = match e {
                    VerifyError::WrongResponse { username } | VerifyError::UnknownUser { username } => AuthOutcome::Failed(username),
                    _ => AuthOutcome::NotTried,
                };
                let challenges = self.server.challenge_headers(now, stale, &mut self.rng);
                Err((self.reply(req, 401, challenges), outcome))
            }
        }
    }

    /// A response copying Via, From, To (with a tag added), Call-ID, CSeq
    /// (RFC 3261 §8.2.6.2), then `extra`, then Content-Length: 0.
    fn reply(&mut self, req: &rsip::Request, code: u16, extra: Vec<Header>) -> rsip::Response {
        let mut headers: Vec<Header> = Vec::new();
        for h in req.headers.iter() {
            match h {
                Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(h.clone()),
                Header::To(t) => {
                    let v = t.value();
                    if v.as_bytes().windows(5).any(|w| w.eq_ignore_ascii_case(b";tag=")) {
                        headers.push(h.clone());
                    } else {
                        let tag = random_hex(&mut self.rng, 8);
                        headers.push(rsip::headers::To::new(format!("{v};tag={tag}")).into());
                    }
                }
                _ => {}
            }
        }
        headers.extend(extra);
        headers.push(rsip::headers::Server::new(super::USER_AGENT).into());
        headers.push(rsip::headers::ContentLength::new("0").into());
        rsip::Response {
            status_code: rsip::StatusCode::from(code),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }
}

/// The value of the first header with this (lower-case) name among the ones
/// rsip types: to, from.
fn header_value(req: &rsip::Request, name: &str) -> Option<String> {
    req.headers.iter().find_map(|h| match (h, name) {
        (Header::To(v), "to") => Some(v.value().to_string()),
        (Header::From(v), "from") => Some(v.value().to_string()),
        _ => None,
    })
}

fn call_id(req: &rsip::Request) -> Option<String> {
    req.headers.iter().find_map(|h| match h {
        Header::CallId(c) => Some(c.value().trim().to_string()),
        _ => None,
    })
}

fn cseq(req: &rsip::Request) -> Option<u32> {
    req.headers.iter().find_map(|h| match h {
        Header::CSeq(c) => c.value().split_whitespace().next().and_then(|n| n.parse().ok()),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
