//! Unit tests of [`super`] (virtual time, seeded RNGs).

use super::*;
use crate::config::Transport;
use crate::sip::auth::test_util::{header_values, reply, rng};
use crate::sip::auth::{parse_authorization, DigestServer};
use rand::rngs::SmallRng;

pub(crate) fn profile(expires: u64) -> Profile {
    Profile {
        name: "carrier1".into(),
        proxy: "sip:127.0.0.1:5080".into(),
        proxy_host: "127.0.0.1".into(),
        proxy_port: 5080,
        domain: "carrier.test".into(),
        register: true,
        username: Some("trunk1".into()),
        password: Some("s3cret".into()),
        expires: Duration::from_secs(expires),
        transport: Transport::Udp,
        caller_id: None,
        codecs: vec!["PCMU".into()],
        dids: vec![],
        inbound_queue: None,
        options_ping: Some(Duration::from_secs(30)),
        max_calls: 0,
        max_cps: 0.0,
            inbound_auth: false,
            srtp: Default::default(),
    }
}

pub(crate) fn local() -> Peer {
    Peer { addr: "127.0.0.1:5060".parse().unwrap(), transport: Transport::Udp }
}

fn reg(expires: u64) -> Registration<SmallRng> {
    Registration::new(&profile(expires), local(), rng(7)).unwrap()
}

fn one(h: &rsip::Headers, name: &str) -> String {
    let v = header_values(h, name);
    assert_eq!(v.len(), 1, "{name}: {v:?}");
    v[0].clone()
}

fn sent(r: &mut Registration<SmallRng>) -> rsip::Request {
    let req = r.poll_transmit().expect("a REGISTER to send");
    assert!(r.poll_transmit().is_none());
    req
}

fn challenge(req: &rsip::Request, srv: &DigestServer, now: Instant) -> rsip::Response {
    let ch: Vec<String> = srv.challenge(now, false, &mut rng(9)).iter().map(|c| format!("WWW-Authenticate: {c}")).collect();
    reply(req, 401, &ch)
}

fn ok(req: &rsip::Request, expires: u32) -> rsip::Response {
    reply(req, 200, &[format!("Expires: {expires}")])
}

#[test]
fn register_request_is_complete_and_reparses() {
    let mut r = reg(300);
    let req = sent(&mut r);
    // Through the wire format and back with rsip.
    let req = match rsip::SipMessage::try_from(req.to_string().as_str()).unwrap() {
        rsip::SipMessage::Request(q) => q,
        _ => panic!(),
    };
    assert_eq!(req.method, rsip::Method::Register);
    assert_eq!(req.uri.to_string(), "sip:carrier.test");
    let h = &req.headers;
    let via = one(h, "Via");
    assert!(via.starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"), "{via}");
    assert!(via.ends_with(";rport"));
    assert_eq!(one(h, "Max-Forwards"), "70");
    assert!(one(h, "From").starts_with("<sip:trunk1@carrier.test>;tag="));
    assert_eq!(one(h, "To"), "<sip:trunk1@carrier.test>");
    assert_eq!(one(h, "Call-ID"), r.call_id());
    assert_eq!(one(h, "CSeq"), "1 REGISTER");
    assert_eq!(one(h, "Contact"), "<sip:trunk1@127.0.0.1:5060;transport=udp>;expires=300");
    assert_eq!(one(h, "Expires"), "300");
    assert!(one(h, "User-Agent").starts_with("redial/"));
    assert_eq!(one(h, "Content-Length"), "0");
    assert!(header_values(h, "Authorization").is_empty());
    assert_eq!(r.poll_timeout(), None, "waiting for the response, no timer of its own");
}

#[test]
fn challenge_then_short_expires_refreshes_at_half_and_stays_registered() {
    let t0 = Instant::now();
    let srv = DigestServer::new("carrier", &[crate::config::DigestAlgorithm::Md5], Duration::from_secs(300), t0, &mut rng(3));
    let mut r = reg(300);
    let first = sent(&mut r);
    r.handle_response(t0, &challenge(&first, &srv, t0));
    let authed = sent(&mut r);
    assert_eq!(one(&authed.headers, "CSeq"), "2 REGISTER");
    assert_eq!(one(&authed.headers, "Call-ID"), one(&first.headers, "Call-ID"));
    assert_ne!(one(&authed.headers, "Via"), one(&first.headers, "Via"), "new branch");
    let c = parse_authorization(&one(&authed.headers, "Authorization")).unwrap();
    assert_eq!((c.username.as_str(), c.realm.as_str(), c.nc), ("trunk1", "carrier", Some(1)));

    let t1 = t0 + Duration::from_millis(50);
    r.handle_response(t1, &ok(&authed, 10));
    assert_eq!(r.poll_event(), Some(RegistrationEvent::Registered { expires_at: t1 + Duration::from_secs(10) }));
    let st = r.state();
    assert!(st.registered);
    assert_eq!(st.expires_at, Some(t1 + Duration::from_secs(10)));
    assert_eq!(st.last_error, None);
    assert_eq!(st.expires_in(t1 + Duration::from_secs(3)), Some(7));
    assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(5)));

    // Step virtual time by 100 ms for a minute, answering each refresh.
    let mut now = t1;
    let mut refreshes = 0;
    while now < t1 + Duration::from_secs(60) {
        now += Duration::from_millis(100);
        if r.poll_timeout().is_some_and(|t| t <= now) {
            r.handle_timeout(now);
        }
        if let Some(req) = r.poll_transmit() {
            refreshes += 1;
            // Refreshes pre-authenticate with the cached nonce (nc grows).
            let c = parse_authorization(&one(&req.headers, "Authorization")).unwrap();
            assert_eq!(c.nc, Some(refreshes + 1));
            r.handle_response(now, &ok(&req, 10));
        }
        assert!(r.state().registered, "lapsed at {:?}", now - t1);
    }
    assert!((11..=12).contains(&refreshes), "{refreshes} refreshes in 60 s at 5 s each");
}

#[test]
fn granted_lifetime_prefers_our_contact_param() {
    let t0 = Instant::now();
    let mut r = reg(300);
    let req = sent(&mut r);
    let resp = reply(
        &req,
        200,
        &[
            "Contact: <sip:other@10.0.0.1>;expires=5, <sip:trunk1@127.0.0.1:5060;transport=udp>;expires=120".into(),
            "Expires: 10".into(),
        ],
    );
    r.handle_response(t0, &resp);
    assert_eq!(r.state().expires_at, Some(t0 + Duration::from_secs(120)));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(60)));

    // Neither: the requested lifetime. Long lifetime: half of it.
    let mut r = reg(300);
    let req = sent(&mut r);
    r.handle_response(t0, &reply(&req, 200, &[]));
    assert_eq!(r.state().expires_at, Some(t0 + Duration::from_secs(300)));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(150)));

    // Short lifetimes: expiry − 5 s, and never below 1 s.
    for (granted, refresh_ms) in [(8, 3000), (4, 1000), (1, 1000)] {
        let mut r = reg(300);
        let req = sent(&mut r);
        r.handle_response(t0, &ok(&req, granted));
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(refresh_ms).min(Duration::from_secs(granted.into()))));
    }
}

#[test]
fn forbidden_backs_off_exponentially_with_cap_no_tight_loop() {
    let t0 = Instant::now();
    let mut r = reg(300);
    let mut now = t0;
    let mut sends: Vec<Instant> = Vec::new();
    while now <= t0 + Duration::from_secs(600) {
        if let Some(req) = r.poll_transmit() {
            sends.push(now);
            r.handle_response(now, &reply(&req, 403, &[]));
            match r.poll_event() {
                Some(RegistrationEvent::Failed { error: RegistrationError::Status { code: 403, .. }, .. }) => {}
                other => panic!("{other:?}"),
            }
            assert!(!r.state().registered);
        }
        now += Duration::from_millis(100);
        if r.poll_timeout().is_some_and(|t| t <= now) {
            r.handle_timeout(now);
        }
    }
    // Sends at 0, 2, 6, …, 254, 510 s nominal (±20 %): 8 or 9 in 10 minutes.
    assert!((8..=9).contains(&sends.len()), "{} REGISTERs", sends.len());
    let gaps: Vec<f64> = sends.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    for (i, g) in gaps.iter().enumerate() {
        let nominal = (2.0 * 2f64.powi(i as i32)).min(300.0);
        assert!(*g >= nominal * 0.8 - 0.1 && *g <= nominal * 1.2 + 0.1, "gap {i}: {g} s vs {nominal} s");
    }
    assert_eq!(r.state().failures as usize, sends.len());
    // The cap: the next delay is at most 300 s + 20 %.
    let next = r.poll_timeout().unwrap() - now;
    assert!(next <= Duration::from_secs(360));
    for n in 9..40 {
        let d = backoff_delay(n, &mut rng(n as u64));
        assert!(d >= Duration::from_secs(240) && d <= Duration::from_secs(360), "{n}: {d:?}");
    }
}

#[test]
fn interval_too_brief_retries_at_once_with_min_expires() {
    let t0 = Instant::now();
    let mut r = reg(30);
    let req = sent(&mut r);
    r.handle_response(t0, &reply(&req, 423, &["Min-Expires: 60".into()]));
    let again = sent(&mut r);
    assert_eq!(one(&again.headers, "Expires"), "60");
    assert!(one(&again.headers, "Contact").ends_with(";expires=60"));
    assert_eq!(r.requested_expires(), 60);
    r.handle_response(t0, &reply(&again, 200, &[]));
    assert_eq!(r.state().expires_at, Some(t0 + Duration::from_secs(60)));
    // Refreshes keep asking for 60.
    r.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(one(&sent(&mut r).headers, "Expires"), "60");

    // A Min-Expires that does not raise the request is a failure, not a loop.
    let mut r = reg(300);
    let req = sent(&mut r);
    r.handle_response(t0, &reply(&req, 423, &["Min-Expires: 60".into()]));
    assert!(r.poll_transmit().is_none());
    assert!(matches!(r.state().last_error, Some(RegistrationError::IntervalTooBrief { min_expires: Some(60) })));
}

#[test]
fn timeouts_back_off_and_success_resets() {
    let t0 = Instant::now();
    let mut r = reg(300);
    sent(&mut r);
    r.handle_transport_failure(t0);
    let retry = r.poll_timeout().unwrap() - t0;
    assert!(retry >= Duration::from_millis(1600) && retry <= Duration::from_millis(2400), "{retry:?}");
    assert_eq!(r.state().last_error, Some(RegistrationError::Timeout));
    let t1 = t0 + retry;
    r.handle_timeout(t1);
    sent(&mut r);
    r.handle_transport_failure(t1);
    let retry2 = r.poll_timeout().unwrap() - t1;
    assert!(retry2 >= Duration::from_millis(3200) && retry2 <= Duration::from_millis(4800), "{retry2:?}");
    let t2 = t1 + retry2;
    r.handle_timeout(t2);
    let req = sent(&mut r);
    r.handle_response(t2, &reply(&req, 200, &[]));
    assert_eq!(r.state().failures, 0);
    assert_eq!(r.state().last_error, None);
    // A failed refresh keeps the registration until it expires.
    r.handle_timeout(t2 + Duration::from_secs(150));
    sent(&mut r);
    r.handle_transport_failure(t2 + Duration::from_secs(151));
    assert!(r.state().registered);
    assert_eq!(r.state().failures, 1, "back-off restarts at 2 s after a success");
    r.handle_timeout(t2 + Duration::from_secs(300));
    assert!(!r.state().registered);
}

#[test]
fn wrong_password_backs_off_instead_of_looping() {
    let t0 = Instant::now();
    let srv = DigestServer::new("carrier", &[crate::config::DigestAlgorithm::Md5], Duration::from_secs(300), t0, &mut rng(3));
    let mut r = reg(300);
    let req = sent(&mut r);
    r.handle_response(t0, &challenge(&req, &srv, t0));
    let authed = sent(&mut r);
    // The registrar refuses the credentials with a fresh challenge.
    let ch: Vec<String> = srv.challenge(t0 + Duration::from_secs(1), false, &mut rng(10)).iter().map(|c| format!("WWW-Authenticate: {c}")).collect();
    r.handle_response(t0, &reply(&authed, 401, &ch));
    assert!(r.poll_transmit().is_none());
    assert_eq!(r.state().last_error, Some(RegistrationError::AuthRejected { realm: "carrier".into() }));
    assert!(r.poll_timeout().unwrap() >= t0 + Duration::from_millis(1600));
}

#[test]
fn stale_and_foreign_responses_are_ignored() {
    let t0 = Instant::now();
    let mut r = reg(300);
    let req = sent(&mut r);
    let mut other = reply(&req, 200, &[]);
    other.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    other.headers.push(rsip::headers::CSeq::new("99 REGISTER").into());
    r.handle_response(t0, &other);
    assert!(!r.state().registered);
    r.handle_response(t0, &reply(&req, 100, &[]));
    assert!(!r.state().registered);
    r.handle_response(t0, &reply(&req, 200, &[]));
    assert!(r.state().registered);
    // A duplicate 200 after the fact changes nothing.
    let before = r.state();
    r.handle_response(t0 + Duration::from_secs(1), &reply(&req, 200, &[]));
    assert_eq!(r.state(), before);
}

#[test]
fn unregister_sends_expires_zero_and_reports_done() {
    let t0 = Instant::now();
    let mut r = reg(300);
    let req = sent(&mut r);
    r.handle_response(t0, &reply(&req, 200, &[]));
    r.poll_event();
    r.unregister();
    let un = sent(&mut r);
    assert_eq!(one(&un.headers, "Expires"), "0");
    assert!(one(&un.headers, "Contact").ends_with(";expires=0"));
    assert_eq!(one(&un.headers, "CSeq"), "2 REGISTER");
    r.handle_response(t0 + Duration::from_secs(1), &reply(&un, 200, &[]));
    assert_eq!(r.poll_event(), Some(RegistrationEvent::Unregistered { error: None }));
    let st = r.state();
    assert!(st.unregistered && !st.registered);
    assert_eq!(r.poll_timeout(), None);
    r.handle_timeout(t0 + Duration::from_secs(1000));
    assert!(r.poll_transmit().is_none());

    // Never registered and nothing outstanding: done at once.
    let mut r = reg(300);
    let req = sent(&mut r);
    r.handle_response(t0, &reply(&req, 503, &[]));
    r.poll_event();
    r.unregister();
    assert!(r.poll_transmit().is_none());
    assert_eq!(r.poll_event(), Some(RegistrationEvent::Unregistered { error: None }));

    // A failing un-REGISTER still finishes, with the error.
    let mut r = reg(300);
    let req = sent(&mut r);
    r.handle_response(t0, &reply(&req, 200, &[]));
    r.poll_event();
    r.unregister();
    sent(&mut r);
    r.handle_transport_failure(t0);
    assert_eq!(r.poll_event(), Some(RegistrationEvent::Unregistered { error: Some(RegistrationError::Timeout) }));
}

#[test]
fn retry_after_lengthens_back_off_up_to_cap() {
    let t0 = Instant::now();
    for (header, want) in [("Retry-After: 120 (maintenance)", 120), ("Retry-After: 7200", 300)] {
        let mut r = reg(300);
        let req = sent(&mut r);
        r.handle_response(t0, &reply(&req, 503, &[header.to_string()]));
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(want)));
        assert!(matches!(r.poll_event(), Some(RegistrationEvent::Failed { retry_at, .. }) if retry_at == t0 + Duration::from_secs(want)));
    }
}

#[test]
fn missing_credentials_is_an_error() {
    let mut p = profile(300);
    p.password = None;
    assert!(matches!(Registration::new(&p, local(), rng(1)), Err(RegistrationError::MissingCredentials { .. })));
}
