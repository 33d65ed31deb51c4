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
//! 404 (To user is not an agent), 401 (no/invalid/stale credentials),
//! 403 (authenticated user ≠ To user), 400 (bad Contact), 423, 500 (§10.3
//! step 7: same Call-ID with a CSeq not above the binding's), then 200.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::Header;

use super::auth::client::random_hex;
use super::auth::DigestServer;
use super::Peer;
use crate::config::{Agent, DigestAlgorithm};

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
        specs.push(parse_one(part)?);
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

fn parse_one(part: &str) -> Result<ContactSpec, ContactError> {
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
    if !has_scheme || rsip::Uri::try_from(uri).is_err() {
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

/// The user part of a To/From header value.
fn user_of(name_addr: &str) -> Option<String> {
    let spec = parse_contacts(name_addr).ok()?.into_specs().into_iter().next()?;
    let uri = rsip::Uri::try_from(spec.uri.as_str()).ok()?;
    uri.user().map(str::to_string)
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

/// Agent reachability changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// First binding after none: the agent can be made `available`.
    AgentReachable { agent: String },
    /// Last binding removed or expired.
    AgentUnreachable { agent: String },
}

/// The registrar for `sip.realm`.
#[derive(Debug)]
pub struct Registrar<R: Rng> {
    server: DigestServer,
    passwords: HashMap<String, String>,
    bindings: HashMap<String, Vec<Binding>>,
    events: VecDeque<RegistrarEvent>,
    rng: R,
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
        let mut r = Self { server, passwords: HashMap::new(), bindings: HashMap::new(), events: VecDeque::new(), rng };
        r.set_agents(agents);
        r
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
    /// final response to send in its server transaction.
    pub fn handle_register(&mut self, now: Instant, req: &rsip::Request, source: Peer) -> rsip::Response {
        self.expire(now);
        let (Some(to), Some(call_id), Some(cseq)) = (header_value(req, "to"), call_id(req), cseq(req)) else {
            return self.reply(req, 400, vec![]);
        };
        if header_value(req, "from").is_none() {
            return self.reply(req, 400, vec![]);
        }
        let Some(agent) = user_of(&to).filter(|u| self.passwords.contains_key(u)) else {
            return self.reply(req, 404, vec![]);
        };
        let user = match self.authenticate(now, req) {
            Ok(u) => u,
            Err(resp) => return resp,
        };
        if user != agent {
            return self.reply(req, 403, vec![]);
        }
        // Contacts (all headers), Expires header.
        let mut star = false;
        let mut specs = Vec::new();
        for h in req.headers.iter() {
            if let Header::Contact(c) = h {
                match parse_contacts(c.value()) {
                    Ok(ContactList::Star) => star = true,
                    Ok(ContactList::Specs(s)) => specs.extend(s),
                    Err(_) => return self.reply(req, 400, vec![]),
                }
            }
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
        let existing = self.bindings.get(&agent).cloned().unwrap_or_default();
        if star {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if !specs.is_empty() || expires_header != Some(0) {
                return self.reply(req, 400, vec![]);
            }
            if existing.iter().any(|b| b.call_id == call_id && b.cseq >= cseq) {
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
                if existing.iter().any(|b| same_uri(&b.uri, &s.uri) && b.call_id == call_id && b.cseq >= cseq) {
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
            }
        }
        self.bindings.retain(|_, v| !v.is_empty());
        self.note_change(&agent, had_any);
        let contacts = self
            .contacts(&agent, now)
            .into_iter()
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now);
                // Round up so a binding never looks expired early.
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                rsip::headers::Contact::new(format!("<{}>;expires={secs}", b.uri)).into()
            })
            .collect();
        self.reply(req, 200, contacts)
    }

    /// Authenticates an agent's request other than REGISTER (e.g. INVITE):
    /// `Ok(agent id)`, or the 401 (challenge, `stale` when due) / 403 (From
    /// user ≠ authenticated user) to send back.
    pub fn verify_request(&mut self, now: Instant, req: &rsip::Request) -> Result<String, rsip::Response> {
        let user = self.authenticate(now, req)?;
        match header_value(req, "from").and_then(|f| user_of(&f)) {
            Some(from_user) if from_user == user => Ok(user),
            _ => Err(self.reply(req, 403, vec![])),
        }
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
        let agents: Vec<String> = self.bindings.keys().cloned().collect();
        for a in agents {
            let had = self.has_bindings(&a);
            if let Some(v) = self.bindings.get_mut(&a) {
                v.retain(|b| b.expires_at > now);
                if v.is_empty() {
                    self.bindings.remove(&a);
                }
            }
            self.note_change(&a, had);
        }
    }

    /// Same as [`Registrar::expire`], for the driver's timer loop.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// The next binding expiry; call [`Registrar::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
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

    /// Verifies the request's credentials; on failure the 401 to send.
    fn authenticate(&mut self, now: Instant, req: &rsip::Request) -> Result<String, rsip::Response> {
        let passwords = &self.passwords;
        match self.server.verify_request(now, req, |u| passwords.get(u).cloned()) {
            Ok(u) => Ok(u),
            Err(e) => {
                let stale = e.is_stale();
                tracing::debug!(error = %e, "digest verification failed");
                let challenges = self.server.challenge_headers(now, stale, &mut self.rng);
                Err(self.reply(req, 401, challenges))
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
                    if v.to_ascii_lowercase().contains(";tag=") {
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
        headers.push(rsip::headers::Server::new(super::registration::USER_AGENT).into());
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
mod tests {
    use super::*;
    use crate::config::Transport;
    use crate::sip::auth::test_util::{header_values, request, rng};
    use crate::sip::auth::{parse_challenge, set_auth_headers, DigestClient, DEFAULT_NONCE_LIFETIME};
    use rand::rngs::SmallRng;

    fn agents() -> Vec<Agent> {
        vec![
            Agent { id: "alice".into(), password: "alice-pw".into(), queues: vec![] },
            Agent { id: "bob".into(), password: "bob-pw".into(), queues: vec![] },
        ]
    }

    fn registrar(t0: Instant) -> Registrar<SmallRng> {
        Registrar::new("redial", &[DigestAlgorithm::Md5], &agents(), DEFAULT_NONCE_LIFETIME, t0, rng(11))
    }

    fn source() -> Peer {
        Peer { addr: "127.0.0.1:40000".parse().unwrap(), transport: Transport::Udp }
    }

    fn register(to_user: &str, call_id: &str, cseq: u32, contacts: &[&str], expires: Option<u32>) -> rsip::Request {
        let mut t = format!(
            "REGISTER sip:redial SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK{cseq}x;rport
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKproxy
Max-Forwards: 70
From: \"Agent\" <sip:{to_user}@redial>;tag=f1
To: <sip:{to_user}@redial>
Call-ID: {call_id}
CSeq: {cseq} REGISTER
"
        );
        for c in contacts {
            t += &format!("Contact: {c}\n");
        }
        if let Some(e) = expires {
            t += &format!("Expires: {e}\n");
        }
        t += "Content-Length: 0\n";
        request(&t)
    }

    fn code(r: &rsip::Response) -> u16 {
        r.status_code.code()
    }

    /// Sends `req` (pre-authenticated when the client has a nonce); on 401
    /// answers the challenge with CSeq+1 and sends again.
    fn send(reg: &mut Registrar<SmallRng>, cli: &mut DigestClient, now: Instant, req: &rsip::Request) -> rsip::Response {
        let mut req = req.clone();
        let hs = cli.pre_authorize(&req, &mut rng(20));
        set_auth_headers(&mut req, hs);
        let resp = reg.handle_register(now, &req, source());
        if code(&resp) != 401 {
            return resp;
        }
        let hs = cli.respond(&resp, &req, &mut rng(21)).expect("answerable challenge");
        set_auth_headers(&mut req, hs);
        let n: u32 = header_values(&req.headers, "CSeq")[0].split(' ').next().unwrap().parse().unwrap();
        req.headers.retain(|h| !matches!(h, Header::CSeq(_)));
        req.headers.push(rsip::headers::CSeq::new(format!("{} REGISTER", n + 1)).into());
        reg.handle_register(now, &req, source())
    }

    fn contact_expiries(r: &rsip::Response) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = header_values(&r.headers, "Contact")
            .iter()
            .flat_map(|c| parse_contacts(c).unwrap().into_specs())
            .map(|s| (s.uri, s.expires.unwrap()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn challenges_then_binds_and_copies_headers() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let req = register("alice", "c1", 1, &["<sip:alice@192.168.1.5:5062>"], None);
        let r = reg.handle_register(t0, &req, source());
        assert_eq!(code(&r), 401);
        let ch = header_values(&r.headers, "WWW-Authenticate");
        assert_eq!(ch.len(), 1);
        let c = parse_challenge(&ch[0]).unwrap();
        assert_eq!((c.realm.as_str(), c.stale), ("redial", false));
        assert_eq!(header_values(&r.headers, "Via"), header_values(&req.headers, "Via"));
        assert_eq!(header_values(&r.headers, "From"), header_values(&req.headers, "From"));
        assert_eq!(header_values(&r.headers, "Call-ID"), vec!["c1"]);
        assert_eq!(header_values(&r.headers, "CSeq"), vec!["1 REGISTER"]);
        assert!(header_values(&r.headers, "To")[0].starts_with("<sip:alice@redial>;tag="));
        assert_eq!(header_values(&r.headers, "Content-Length"), vec!["0"]);
        assert_eq!(reg.poll_event(), None);

        let mut cli = DigestClient::new("alice", "alice-pw");
        let r = send(&mut reg, &mut cli, t0, &req);
        assert_eq!(code(&r), 200);
        assert_eq!(contact_expiries(&r), vec![("sip:alice@192.168.1.5:5062".into(), 3600)]);
        assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "alice".into() }));
        let b = reg.contacts("alice", t0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].source, source());
        assert_eq!(b[0].expires_at, t0 + Duration::from_secs(3600));
        assert_eq!(reg.registered_agents(t0), vec!["alice".to_string()]);
        assert!(reg.contacts("bob", t0).is_empty());
        // The response goes through rsip's wire format and back.
        assert!(rsip::SipMessage::try_from(r.to_string().as_str()).is_ok());
    }

    #[test]
    fn multiple_contacts_unregister_one_then_all_and_fetch() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let r = send(&mut reg, &mut cli, t0, &register("alice", "c1", 1, &["<sip:alice@10.0.0.1>;expires=600, <sip:alice@10.0.0.2>"], Some(120)));
        assert_eq!(code(&r), 200);
        assert_eq!(contact_expiries(&r), vec![("sip:alice@10.0.0.1".into(), 600), ("sip:alice@10.0.0.2".into(), 120)]);
        // Another device, separate Call-ID and Contact header.
        let t1 = t0 + Duration::from_secs(10);
        let r = send(&mut reg, &mut cli, t1, &register("alice", "c2", 1, &["sip:alice@10.0.0.3;q=0.5"], Some(300)));
        assert_eq!(contact_expiries(&r), vec![
            ("sip:alice@10.0.0.1".into(), 590),
            ("sip:alice@10.0.0.2".into(), 110),
            ("sip:alice@10.0.0.3".into(), 300),
        ]);
        assert_eq!(reg.contacts("alice", t1).iter().find(|b| b.uri.ends_with(".3")).unwrap().q.as_deref(), Some("0.5"));
        // Fetch: no Contact, nothing changes.
        let r = send(&mut reg, &mut cli, t1, &register("alice", "c9", 1, &[], None));
        assert_eq!(code(&r), 200);
        assert_eq!(contact_expiries(&r).len(), 3);
        // Remove one.
        let r = send(&mut reg, &mut cli, t1, &register("alice", "c1", 5, &["<sip:alice@10.0.0.2>;expires=0"], None));
        assert_eq!(contact_expiries(&r).len(), 2);
        assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "alice".into() }));
        assert_eq!(reg.poll_event(), None);
        // `*` needs Expires: 0.
        let r = send(&mut reg, &mut cli, t1, &register("alice", "c1", 10, &["*"], Some(30)));
        assert_eq!(code(&r), 400);
        let r = send(&mut reg, &mut cli, t1, &register("alice", "c1", 12, &["*", "<sip:alice@10.0.0.1>"], Some(0)));
        assert_eq!(code(&r), 400);
        let r = send(&mut reg, &mut cli, t1, &register("alice", "c1", 14, &["*"], Some(0)));
        assert_eq!(code(&r), 200);
        assert!(header_values(&r.headers, "Contact").is_empty());
        assert!(reg.contacts("alice", t1).is_empty());
        assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentUnreachable { agent: "alice".into() }));
        assert_eq!(reg.poll_timeout(), None);
    }

    #[test]
    fn bindings_expire() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut cli = DigestClient::new("bob", "bob-pw");
        send(&mut reg, &mut cli, t0, &register("bob", "c1", 1, &["<sip:bob@10.0.0.1>;expires=60", "<sip:bob@10.0.0.2>;expires=90"], None));
        assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "bob".into() }));
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        assert_eq!(reg.contacts("bob", t0 + Duration::from_secs(60)).len(), 1, "expired binding not returned");
        reg.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(reg.poll_event(), None);
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(90)));
        reg.handle_timeout(t0 + Duration::from_secs(90));
        assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentUnreachable { agent: "bob".into() }));
        assert_eq!(reg.poll_timeout(), None);
        assert!(reg.registered_agents(t0 + Duration::from_secs(90)).is_empty());
    }

    #[test]
    fn interval_too_brief_and_cap() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let r = send(&mut reg, &mut cli, t0, &register("alice", "c1", 1, &["<sip:alice@10.0.0.1>"], Some(30)));
        assert_eq!(code(&r), 423);
        assert_eq!(header_values(&r.headers, "Min-Expires"), vec!["60"]);
        assert!(reg.contacts("alice", t0).is_empty());
        let r = send(&mut reg, &mut cli, t0, &register("alice", "c1", 5, &["<sip:alice@10.0.0.1>;expires=86400"], Some(30)));
        assert_eq!(code(&r), 200);
        assert_eq!(contact_expiries(&r), vec![("sip:alice@10.0.0.1".into(), MAX_EXPIRES)]);
        // A malformed Expires header counts as 3600 s (§20.19).
        let mut req = register("alice", "c1", 9, &["<sip:alice@10.0.0.2>"], None);
        req.headers.push(rsip::headers::Expires::new("tomorrow").into());
        let r = send(&mut reg, &mut cli, t0, &req);
        assert_eq!(code(&r), 200);
        assert!(contact_expiries(&r).contains(&("sip:alice@10.0.0.2".into(), DEFAULT_EXPIRES)));
    }

    #[test]
    fn unknown_user_forbidden_user_and_cseq_order() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let r = reg.handle_register(t0, &register("carol", "c1", 1, &["<sip:carol@10.0.0.1>"], None), source());
        assert_eq!(code(&r), 404);
        // bob authenticates but registers alice's address of record.
        let mut bob = DigestClient::new("bob", "bob-pw");
        let r = send(&mut reg, &mut bob, t0, &register("alice", "c1", 1, &["<sip:bob@10.0.0.1>"], None));
        assert_eq!(code(&r), 403);
        // Wrong password: challenged again, never bound.
        let mut eve = DigestClient::new("alice", "guess");
        let r = send(&mut reg, &mut eve, t0, &register("alice", "c2", 1, &["<sip:alice@10.0.0.1>"], None));
        assert_eq!(code(&r), 401);
        assert!(reg.contacts("alice", t0).is_empty());
        // §10.3 step 7: same Call-ID, CSeq not above the binding's → 500.
        let mut alice = DigestClient::new("alice", "alice-pw");
        let r = send(&mut reg, &mut alice, t0, &register("alice", "c3", 10, &["<sip:alice@10.0.0.1>"], None));
        assert_eq!(code(&r), 200);
        let r = send(&mut reg, &mut alice, t0, &register("alice", "c3", 5, &["<sip:alice@10.0.0.1>;expires=0"], None));
        assert_eq!(code(&r), 500);
        assert_eq!(reg.contacts("alice", t0).len(), 1);
        // Malformed Contact → 400.
        let r = send(&mut reg, &mut alice, t0, &register("alice", "c3", 20, &["<sip:alice@10.0.0.1;expires=zz"], None));
        assert_eq!(code(&r), 400);
    }

    #[test]
    fn stale_nonce_gets_stale_challenge() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut cli = DigestClient::new("alice", "alice-pw");
        send(&mut reg, &mut cli, t0, &register("alice", "c1", 1, &["<sip:alice@10.0.0.1>"], None));
        let later = t0 + DEFAULT_NONCE_LIFETIME + Duration::from_secs(1);
        let mut req = register("alice", "c1", 3, &["<sip:alice@10.0.0.1>"], None);
        let hs = cli.pre_authorize(&req, &mut rng(1));
        set_auth_headers(&mut req, hs);
        let r = reg.handle_register(later, &req, source());
        assert_eq!(code(&r), 401);
        assert!(parse_challenge(&header_values(&r.headers, "WWW-Authenticate")[0]).unwrap().stale);
        // And the client recovers through it.
        let r = send(&mut reg, &mut cli, later, &register("alice", "c1", 5, &["<sip:alice@10.0.0.1>"], None));
        assert_eq!(code(&r), 200);
    }

    #[test]
    fn verify_request_for_invites() {
        let t0 = Instant::now();
        let mut reg = Registrar::new("redial", &[DigestAlgorithm::Sha256, DigestAlgorithm::Md5], &agents(), DEFAULT_NONCE_LIFETIME, t0, rng(2));
        let invite = |from: &str| {
            request(&format!(
                "INVITE sip:+15550100@redial SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv
Max-Forwards: 70
From: <sip:{from}@redial>;tag=f
To: <sip:+15550100@redial>
Call-ID: inv1
CSeq: 1 INVITE
Content-Length: 0"
            ))
        };
        let req = invite("alice");
        let r = reg.verify_request(t0, &req).unwrap_err();
        assert_eq!(code(&r), 401);
        assert_eq!(header_values(&r.headers, "WWW-Authenticate").len(), 2);
        let mut cli = DigestClient::new("alice", "alice-pw");
        let mut signed = req.clone();
        set_auth_headers(&mut signed, cli.respond(&r, &req, &mut rng(3)).unwrap());
        assert_eq!(reg.verify_request(t0, &signed), Ok("alice".into()));
        // alice's credentials on an INVITE claiming to be bob.
        let mut forged = invite("bob");
        let hs = cli.pre_authorize(&forged, &mut rng(4));
        set_auth_headers(&mut forged, hs);
        assert_eq!(code(&reg.verify_request(t0, &forged).unwrap_err()), 403);
    }

    #[test]
    fn removed_agent_loses_bindings() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut cli = DigestClient::new("bob", "bob-pw");
        send(&mut reg, &mut cli, t0, &register("bob", "c1", 1, &["<sip:bob@10.0.0.1>"], None));
        reg.poll_event();
        reg.set_agents(&agents()[..1]);
        assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentUnreachable { agent: "bob".into() }));
        assert!(reg.contacts("bob", t0).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn contact_parser_never_panics(s in "[<>\"\\,;=* a-z0-9:@.\u{e9}]{0,60}") {
            let _ = parse_contacts(&s);
            let _ = user_of(&s);
        }
    }

    #[test]
    fn contact_parsing() {
        assert_eq!(parse_contacts(" * "), Ok(ContactList::Star));
        assert_eq!(parse_contacts("*, <sip:a@b>"), Err(ContactError::StarInList));
        assert_eq!(parse_contacts(""), Err(ContactError::Empty));
        assert_eq!(parse_contacts("<sip:a@b"), Err(ContactError::Unterminated));
        assert!(matches!(parse_contacts("<nonsense>"), Err(ContactError::InvalidUri { .. })));
        let l = parse_contacts("\"Doe, <John>\" <sip:j@h:5062;transport=tcp>;expires=\"30\";q=0.7, sip:k@h;expires=99999999999").unwrap();
        let v = l.into_specs();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].uri, "sip:j@h:5062;transport=tcp");
        assert_eq!(v[0].expires, Some(30));
        assert_eq!(v[0].params[1], ("q".to_string(), Some("0.7".to_string())));
        assert_eq!(v[1].uri, "sip:k@h");
        assert_eq!(v[1].expires, Some(u32::MAX));
        assert!(same_uri("sip:j@h:5062;transport=tcp", "sip:j@h:5062;transport=tcp"));
        assert!(!same_uri("sip:j@h:5062", "sip:j@h:5063"));
    }

    /// The carrier REGISTER client against this registrar: challenge, 423,
    /// refresh with nonce reuse, unregister.
    #[test]
    fn registration_client_against_registrar() {
        use crate::sip::registration::{Registration, RegistrationEvent};
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = crate::sip::registration::tests::profile(30);
        p.domain = "redial".into();
        p.username = Some("alice".into());
        p.password = Some("alice-pw".into());
        let local = crate::sip::registration::tests::local();
        let mut client = Registration::new(&p, local, rng(30)).unwrap();
        let mut now = t0;
        let mut codes = Vec::new();
        for _ in 0..10 {
            let Some(req) = client.poll_transmit() else { break };
            let resp = reg.handle_register(now, &req, local);
            codes.push(code(&resp));
            client.handle_response(now, &resp);
            now += Duration::from_millis(20);
        }
        assert_eq!(codes, vec![401, 423, 200]);
        assert!(client.state().registered);
        assert_eq!(client.requested_expires(), 60);
        let b = reg.contacts("alice", now);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].uri, "sip:alice@127.0.0.1:5060;transport=udp");
        // Refresh at half-life: pre-authenticated, accepted at once.
        now = client.poll_timeout().unwrap();
        client.handle_timeout(now);
        let req = client.poll_transmit().unwrap();
        let resp = reg.handle_register(now, &req, local);
        assert_eq!(code(&resp), 200);
        client.handle_response(now, &resp);
        while client.poll_event().is_some() {}
        client.unregister();
        let req = client.poll_transmit().unwrap();
        let resp = reg.handle_register(now, &req, local);
        assert_eq!(code(&resp), 200);
        client.handle_response(now, &resp);
        assert_eq!(client.poll_event(), Some(RegistrationEvent::Unregistered { error: None }));
        assert!(reg.contacts("alice", now).is_empty());
    }

    /// Two peers in virtual time over a lossy network (seeded): 15 % of
    /// requests and 15 % of responses are lost after all retransmissions
    /// (the driver then reports Timer F after 32 s). Over
    /// two hours the client must stay registered nearly all the time, never
    /// believe it is registered when the registrar has no binding, and never
    /// send REGISTERs in a tight loop.
    #[test]
    fn registration_over_lossy_network_in_virtual_time() {
        use crate::sip::registration::Registration;
        use rand::Rng as _;
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let mut p = crate::sip::registration::tests::profile(300);
        p.domain = "redial".into();
        p.username = Some("alice".into());
        p.password = Some("alice-pw".into());
        let local = crate::sip::registration::tests::local();
        let mut client = Registration::new(&p, local, rng(40)).unwrap();
        let mut net = rng(41);
        let end = t0 + Duration::from_secs(7200);
        let mut now = t0;
        let mut timer_f: Option<Instant> = None;
        let mut sends = 0u32;
        let mut registered_for = Duration::ZERO;
        while now < end {
            while let Some(req) = client.poll_transmit() {
                sends += 1;
                if net.random_bool(0.15) {
                    timer_f = Some(now + Duration::from_secs(32));
                    continue;
                }
                let resp = reg.handle_register(now, &req, local);
                if net.random_bool(0.15) {
                    timer_f = Some(now + Duration::from_secs(32));
                    continue;
                }
                client.handle_response(now, &resp);
            }
            while client.poll_event().is_some() {}
            if client.state().registered {
                assert!(!reg.contacts("alice", now).is_empty(), "client registered, registrar empty at {:?}", now - t0);
            }
            let next = [client.poll_timeout(), timer_f, reg.poll_timeout(), Some(end)].into_iter().flatten().min().unwrap();
            assert!(next >= now, "timer in the past");
            let step = (next - now).max(Duration::from_millis(1));
            if client.state().registered {
                registered_for += step;
            }
            now += step;
            if timer_f.is_some_and(|t| t <= now) {
                timer_f = None;
                client.handle_transport_failure(now);
            }
            client.handle_timeout(now);
            reg.handle_timeout(now);
        }
        let share = registered_for.as_secs_f64() / 7200.0;
        // Seeds 41–48 give 98.9–100 %.
        assert!(share > 0.97, "registered {:.1} % of the time", share * 100.0);
        // About 48 refreshes in two hours, plus challenges and retries.
        assert!((48..300).contains(&sends), "{sends} REGISTERs");
    }
}
