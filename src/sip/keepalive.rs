//! OPTIONS keep-alive per trunk: up/down state, sans-IO.
//!
//! Every `options_ping` interval one OPTIONS is handed out (never two at
//! once). Any final response — even 404/405/401/407 — proves the trunk is
//! alive (RFC 3261 §11: OPTIONS probes capabilities; a carrier that refuses
//! it still answered). A transaction timeout, a transport error, or no final
//! response within [`RESPONSE_TIMEOUT`] is a failure. The trunk is down after
//! [`DOWN_AFTER`] = 3 consecutive failures and up again after one success;
//! it starts up (optimistic, so calls are tried before the first answer).

use std::time::{Duration, Instant};

use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::Header;

use super::auth::client::random_hex;
use super::registration::{new_branch, USER_AGENT};
use super::Peer;
use crate::config::Profile;

/// Consecutive failures that mark a trunk down.
pub const DOWN_AFTER: u32 = 3;
/// No final response after this long is a failure (64·T1 with T1 = 500 ms,
/// the non-INVITE transaction lifetime, RFC 3261 §17.1.2.2).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(32);

/// Up/down change, for logs and the trunks API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveEvent {
    Up,
    Down,
}

#[derive(Debug, Clone)]
struct Outstanding {
    call_id: String,
    cseq: u32,
    deadline: Instant,
}

/// OPTIONS pinger of one trunk.
#[derive(Debug)]
pub struct OptionsPinger<R: Rng> {
    interval: Duration,
    domain: String,
    from_user: String,
    local: Peer,
    from_tag: String,
    cseq: u32,
    next_ping: Instant,
    outstanding: Option<Outstanding>,
    transmit: Option<rsip::Request>,
    failures: u32,
    up: bool,
    events: Vec<KeepaliveEvent>,
    rng: R,
}

impl<R: Rng> OptionsPinger<R> {
    /// `None` when the profile disables pings (`options_ping = 0`). The first
    /// ping is due at `now`.
    pub fn new(profile: &Profile, local: Peer, now: Instant, rng: R) -> Option<Self> {
        Some(Self::with_interval(profile, profile.options_ping?, local, now, rng))
    }

    /// As [`OptionsPinger::new`] with an explicit interval.
    pub fn with_interval(profile: &Profile, interval: Duration, local: Peer, now: Instant, mut rng: R) -> Self {
        let from_tag = random_hex(&mut rng, 8);
        Self {
            interval: interval.max(Duration::from_secs(1)),
            domain: profile.domain.clone(),
            from_user: profile.username.clone().unwrap_or_else(|| "redial".into()),
            local,
            from_tag,
            cseq: 0,
            next_ping: now,
            outstanding: None,
            transmit: None,
            failures: 0,
            up: true,
            events: Vec::new(),
            rng,
        }
    }

    /// The trunk answered recently enough.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The OPTIONS to send now in a new non-INVITE client transaction to the
    /// proxy. Call after `handle_timeout`.
    pub fn poll_transmit(&mut self) -> Option<rsip::Request> {
        self.transmit.take()
    }

    /// Up/down changes; drain after each `handle_*`.
    pub fn poll_event(&mut self) -> Option<KeepaliveEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// Next ping or response deadline; call `handle_timeout` then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(match &self.outstanding {
            Some(o) => o.deadline,
            None => self.next_ping,
        })
    }

    /// Sends the ping when due; counts a missing response as a failure.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(o) = &self.outstanding {
            if now >= o.deadline {
                self.outstanding = None;
                self.failure();
            } else {
                return;
            }
        }
        if now >= self.next_ping {
            self.send(now);
            // Fixed cadence from the previous slot; skip missed slots.
            while self.next_ping <= now {
                self.next_ping += self.interval;
            }
        }
    }

    /// A response to an OPTIONS of ours (matched by Call-ID and CSeq;
    /// others are ignored, as are provisional ones).
    pub fn handle_response(&mut self, _now: Instant, response: &rsip::Response) {
        let Some(o) = &self.outstanding else { return };
        if response.status_code.code() < 200 {
            return;
        }
        let mut cid = None;
        let mut cseq = None;
        for h in response.headers.iter() {
            match h {
                Header::CallId(c) => cid = Some(c.value().trim().to_string()),
                Header::CSeq(c) => cseq = c.value().split_whitespace().next().and_then(|n| n.parse::<u32>().ok()),
                _ => {}
            }
        }
        if cid.as_deref() != Some(o.call_id.as_str()) || cseq != Some(o.cseq) {
            return;
        }
        self.outstanding = None;
        self.failures = 0;
        if !self.up {
            self.up = true;
            self.events.push(KeepaliveEvent::Up);
        }
    }

    /// The outstanding OPTIONS timed out in the transaction layer (Timer F)
    /// or could not be sent.
    pub fn handle_failure(&mut self, _now: Instant) {
        if self.outstanding.take().is_some() {
            self.failure();
        }
    }

    fn failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
        if self.up && self.failures >= DOWN_AFTER {
            self.up = false;
            self.events.push(KeepaliveEvent::Down);
        }
    }

    fn send(&mut self, now: Instant) {
        self.cseq += 1;
        let call_id = format!("{}@{}", random_hex(&mut self.rng, 12), self.local.addr.ip());
        let branch = new_branch(&mut self.rng);
        let headers: Vec<Header> = vec![
            crate::sip::dialog::via(self.local.transport, self.local.addr, &branch).into(),
            rsip::headers::MaxForwards::new("70").into(),
            rsip::headers::From::new(format!("<sip:{}@{}>;tag={}", self.from_user, self.domain, self.from_tag)).into(),
            rsip::headers::To::new(format!("<sip:{}>", self.domain)).into(),
            rsip::headers::CallId::new(call_id.clone()).into(),
            rsip::headers::CSeq::new(format!("{} OPTIONS", self.cseq)).into(),
            rsip::headers::Accept::new("application/sdp").into(),
            rsip::headers::UserAgent::new(USER_AGENT).into(),
            rsip::headers::ContentLength::new("0").into(),
        ];
        let req = rsip::Request {
            method: rsip::Method::Options,
            uri: rsip::Uri::try_from(format!("sip:{}", self.domain)).unwrap_or_default(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        self.outstanding = Some(Outstanding { call_id, cseq: self.cseq, deadline: now + RESPONSE_TIMEOUT });
        self.transmit = Some(req);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use crate::sip::auth::test_util::{header_values, reply, rng};
    use rand::rngs::SmallRng;

    fn profile(ping: Option<Duration>) -> Profile {
        Profile {
            name: "carrier1".into(),
            proxy: "sip:127.0.0.1:5080".into(),
            proxy_host: "127.0.0.1".into(),
            proxy_port: 5080,
            domain: "carrier.test".into(),
            register: false,
            username: None,
            password: None,
            expires: Duration::from_secs(300),
            transport: Transport::Tcp,
            caller_id: None,
            codecs: vec!["PCMU".into()],
            dids: vec![],
            inbound_queue: None,
            options_ping: ping,
            max_calls: 0,
            max_cps: 0.0,
            inbound_auth: false,
            srtp: Default::default(),
        }
    }

    fn pinger(t0: Instant) -> OptionsPinger<SmallRng> {
        let local = Peer { addr: "127.0.0.1:5060".parse().unwrap(), transport: Transport::Tcp };
        OptionsPinger::new(&profile(Some(Duration::from_secs(30))), local, t0, rng(4)).unwrap()
    }

    #[test]
    fn disabled_when_interval_is_none() {
        let local = Peer { addr: "127.0.0.1:5060".parse().unwrap(), transport: Transport::Udp };
        assert!(OptionsPinger::new(&profile(None), local, Instant::now(), rng(1)).is_none());
    }

    #[test]
    fn pings_every_interval_and_any_response_is_alive() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        assert!(p.is_up());
        assert_eq!(p.poll_timeout(), Some(t0));
        p.handle_timeout(t0);
        let req = p.poll_transmit().unwrap();
        assert_eq!(req.method, rsip::Method::Options);
        assert_eq!(req.uri.to_string(), "sip:carrier.test");
        assert!(header_values(&req.headers, "Via")[0].starts_with("SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK"));
        assert_eq!(header_values(&req.headers, "CSeq"), vec!["1 OPTIONS"]);
        assert_eq!(header_values(&req.headers, "Max-Forwards"), vec!["70"]);
        // While outstanding, the deadline is the timer.
        assert_eq!(p.poll_timeout(), Some(t0 + RESPONSE_TIMEOUT));
        p.handle_response(t0, &reply(&req, 405, &[]));
        assert!(p.is_up());
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        p.handle_timeout(t0 + Duration::from_secs(10));
        assert!(p.poll_transmit().is_none(), "not yet due");
        p.handle_timeout(t0 + Duration::from_secs(30));
        let req2 = p.poll_transmit().unwrap();
        assert_eq!(header_values(&req2.headers, "CSeq"), vec!["2 OPTIONS"]);
        assert_ne!(header_values(&req2.headers, "Call-ID"), header_values(&req.headers, "Call-ID"));
    }

    #[test]
    fn down_after_three_failures_up_after_one_success() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        let mut now = t0;
        // failure 1: transaction timeout; 2: no answer by the deadline; 3: send error.
        p.handle_timeout(now);
        p.poll_transmit().unwrap();
        p.handle_failure(now + Duration::from_secs(32));
        assert!(p.is_up());
        now += Duration::from_secs(30);
        p.handle_timeout(now);
        let stale = p.poll_transmit().unwrap();
        p.handle_timeout(now + RESPONSE_TIMEOUT);
        assert_eq!(p.failures(), 2);
        assert!(p.is_up());
        assert_eq!(p.poll_event(), None);
        // The deadline passed a ping slot: the next ping goes out at once.
        assert!(p.poll_transmit().is_some());
        p.handle_failure(now + RESPONSE_TIMEOUT);
        assert!(!p.is_up());
        assert_eq!(p.poll_event(), Some(KeepaliveEvent::Down));
        // A late answer to an old ping does not count.
        p.handle_response(now, &reply(&stale, 200, &[]));
        assert!(!p.is_up());
        now += Duration::from_secs(90);
        p.handle_timeout(now);
        let req = p.poll_transmit().unwrap();
        // A provisional response is not an answer.
        p.handle_response(now, &reply(&req, 100, &[]));
        assert!(!p.is_up());
        p.handle_response(now, &reply(&req, 404, &[]));
        assert!(p.is_up());
        assert_eq!(p.poll_event(), Some(KeepaliveEvent::Up));
        assert_eq!(p.failures(), 0);
    }

    #[test]
    fn auth_challenge_counts_as_alive() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        for i in 0..3 {
            p.handle_timeout(t0 + Duration::from_secs(30 * i));
            p.poll_transmit().unwrap();
            p.handle_failure(t0 + Duration::from_secs(30 * i + 1));
        }
        assert!(!p.is_up());
        p.handle_timeout(t0 + Duration::from_secs(90));
        let req = p.poll_transmit().unwrap();
        p.handle_response(t0, &reply(&req, 407, &[]));
        assert!(p.is_up());
    }
}
