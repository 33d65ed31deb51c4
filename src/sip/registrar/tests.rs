//! Unit tests of [`super`] (virtual time, seeded RNGs).

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
    send_from(reg, cli, now, req, source())
}

/// [`send`] from `src`.
fn send_from(reg: &mut Registrar<SmallRng>, cli: &mut DigestClient, now: Instant, req: &rsip::Request, src: Peer) -> rsip::Response {
    let mut req = req.clone();
    let hs = cli.pre_authorize(&req, &mut rng(20));
    set_auth_headers(&mut req, hs);
    let resp = reg.handle_register(now, &req, src);
    if code(&resp) != 401 {
        return resp;
    }
    let hs = cli.respond(&resp, &req, &mut rng(21)).expect("answerable challenge");
    set_auth_headers(&mut req, hs);
    let n: u32 = header_values(&req.headers, "CSeq")[0].split(' ').next().unwrap().parse().unwrap();
    req.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    req.headers.push(rsip::headers::CSeq::new(format!("{} REGISTER", n + 1)).into());
    reg.handle_register(now, &req, src)
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
    // carol is not an agent: challenged, then refused like a wrong password.
    let r = reg.handle_register(t0, &register("carol", "c1", 1, &["<sip:carol@10.0.0.1>"], None), source());
    assert_eq!(code(&r), 401);
    let mut carol = DigestClient::new("carol", "anything");
    let r = send(&mut reg, &mut carol, t0, &register("carol", "c1", 1, &["<sip:carol@10.0.0.1>"], None));
    assert_eq!(code(&r), 401);
    // alice's right credentials for carol's address of record: 403, as for another agent's.
    let mut alice = DigestClient::new("alice", "alice-pw");
    let r = send(&mut reg, &mut alice, t0, &register("carol", "c9", 1, &["<sip:alice@10.0.0.1>"], None));
    assert_eq!(code(&r), 403);
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
fn from_config_uses_realm_algorithms_and_agents() {
    let t0 = Instant::now();
    let mut cfg = crate::config::Config::defaults();
    cfg.sip.realm = "cc".into();
    cfg.sip.digest_algorithms = vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5];
    cfg.agents = agents();
    let mut reg = Registrar::from_config(&cfg, t0, rng(3));
    let r = reg.handle_register(t0, &register("alice", "c1", 1, &["<sip:alice@10.0.0.1>"], None), source());
    let ch: Vec<_> = header_values(&r.headers, "WWW-Authenticate").iter().map(|c| parse_challenge(c).unwrap()).collect();
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].realm, "cc");
    assert_eq!(ch[0].algorithm.hash, DigestAlgorithm::Sha256);
    assert_eq!(ch[1].algorithm.hash, DigestAlgorithm::Md5);
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

/// The response as text with the To tag, the nonce and the user name masked.
fn masked(r: &rsip::Response, user: &str) -> String {
    let text = r.to_string().replace(&format!("sip:{user}@"), "sip:USER@");
    let mut out = String::new();
    for line in text.split("\r\n") {
        let line = match (line.find(";tag="), line.find("nonce=\"")) {
            (Some(i), _) if line.starts_with("To:") => format!("{};tag=TAG", &line[..i]),
            (_, Some(i)) => {
                let end = line[i + 7..].find('"').map(|e| i + 7 + e).unwrap();
                format!("{}nonce=\"NONCE{}", &line[..i], &line[end..])
            }
            _ => line.to_string(),
        };
        out += &line;
        out += "\r\n";
    }
    out
}

#[test]
fn known_and_unknown_users_get_identical_answers() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    for (known, unknown) in [("alice", "carol"), ("bob", "zed")] {
        // Challenge first.
        let a = reg.handle_register(t0, &register(known, "c1", 1, &[&format!("<sip:{known}@10.0.0.1>")], None), source());
        let b = reg.handle_register(t0, &register(unknown, "c1", 1, &[&format!("<sip:{unknown}@10.0.0.1>")], None), source());
        assert_eq!(code(&a), 401);
        assert_eq!(masked(&a, known), masked(&b, unknown));
        // The same answer after credentials: a wrong password for a known
        // user, any password for an unknown one.
        let mut wrong = DigestClient::new(known, "guess");
        let a = send(&mut reg, &mut wrong, t0, &register(known, "c2", 1, &[&format!("<sip:{known}@10.0.0.1>")], None));
        let mut nobody = DigestClient::new(unknown, "guess");
        let b = send(&mut reg, &mut nobody, t0, &register(unknown, "c2", 1, &[&format!("<sip:{unknown}@10.0.0.1>")], None));
        assert_eq!(code(&a), 401);
        assert_eq!(masked(&a, known), masked(&b, unknown));
        assert_ne!(a.to_string(), b.to_string().replace(&format!("sip:{unknown}@"), &format!("sip:{known}@")), "tags and nonces are fresh");
    }
}

/// One signed REGISTER for `user` with `password` against a fresh challenge.
fn signed(reg: &mut Registrar<SmallRng>, now: Instant, user: &str, password: &str, n: u32) -> rsip::Request {
    let req = register(user, &format!("g{n}"), 1, &[&format!("<sip:{user}@10.0.0.1>")], None);
    let ch = reg.handle_register(now, &req, source());
    let mut cli = DigestClient::new(user, password);
    let hs = cli.respond(&ch, &req, &mut rng(n.into())).unwrap();
    let mut req = req.clone();
    set_auth_headers(&mut req, hs);
    req
}

#[test]
fn guard_holds_then_blocks_a_guessing_source_but_not_others() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let cfg = crate::config::GuardConfig {
        free_failures: 1,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(2),
        block_after: 4,
        block_for: Duration::from_secs(60),
        ..Default::default()
    };
    reg.set_guard(cfg);
    let attacker = source();
    let other = Peer { addr: "127.0.0.2:40000".parse().unwrap(), transport: Transport::Udp };
    let mut now = t0;
    let mut kinds = Vec::new();
    for n in 0..5 {
        let req = signed(&mut reg, now, "alice", "guess", n);
        match reg.register(now, &req, attacker) {
            Answer::Now(r) => kinds.push(format!("now {}", code(&r))),
            Answer::Hold(r, at) => {
                kinds.push(format!("hold {} {}s", code(&r), (at - now).as_secs()));
                now = at;
            }
            Answer::Drop => kinds.push("drop".into()),
        }
    }
    assert_eq!(kinds, ["now 401", "hold 401 1s", "hold 401 2s", "drop", "drop"]);
    let events: Vec<_> = std::iter::from_fn(|| reg.poll_event()).collect();
    assert_eq!(events.iter().filter(|e| matches!(e, RegistrarEvent::AuthFailure { .. })).count(), 4);
    assert!(events.contains(&RegistrarEvent::Blocked { source: attacker.addr.ip() }));
    assert!(events.contains(&RegistrarEvent::AuthFailure { source: attacker.addr.ip(), user: "alice".into(), penalty: Penalty::Block }));
    // The right password from the blocked source: dropped too.
    let req = signed(&mut reg, now, "alice", "alice-pw", 10);
    assert!(matches!(reg.register(now, &req, attacker), Answer::Drop));
    // From another address it works at once, though the account is blocked.
    let req = signed(&mut reg, now, "alice", "alice-pw", 11);
    match reg.register(now, &req, other) {
        Answer::Now(r) => assert_eq!(code(&r), 200),
        a => panic!("{a:?}"),
    }
    // A first challenge (no credentials) is not a failure.
    let req = register("bob", "c1", 1, &["<sip:bob@10.0.0.1>"], None);
    assert!(matches!(reg.register(now, &req, other), Answer::Now(_)));
    assert_eq!(reg.guard().tracked(), (1, 1));
    // After the block, the attacker's address is served again.
    let later = now + Duration::from_secs(60);
    let req = signed(&mut reg, later, "alice", "alice-pw", 12);
    assert!(matches!(reg.register(later, &req, attacker), Answer::Now(_)));
}

#[test]
fn user_of_reads_the_user_in_place() {
    assert_eq!(user_of("<sip:alice@redial>").as_deref(), Some("alice"));
    assert_eq!(user_of("\"A <x>\" <sips:bob@10.0.0.1:5061;transport=tls>;tag=1").as_deref(), Some("bob"));
    assert_eq!(user_of("sip:carol@redial;tag=9").as_deref(), Some("carol"));
    assert_eq!(user_of("<SIP:dave:secret@redial>").as_deref(), Some("dave"));
    assert_eq!(user_of("<sip:redial>"), None);
    assert_eq!(user_of("<tel:+15550100>"), None);
    assert_eq!(user_of("<sip:alice@redial"), None);
    assert_eq!(user_of(""), None);
}

fn ws(port: u16) -> Peer {
    Peer { addr: SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port).into(), transport: Transport::Ws }
}

use std::net::SocketAddrV4;

#[test]
fn closed_connection_ends_its_bindings_at_once() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let mut cli = DigestClient::new("alice", "alice-pw");
    // A browser over WebSocket and a desk phone over UDP for alice; bob on another socket.
    let r = send_from(&mut reg, &mut cli, t0, &register("alice", "w1", 1, &["<sip:k3j2@df7jal23ls0d.invalid;transport=ws>"], Some(600)), ws(50001));
    assert_eq!(code(&r), 200);
    assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "alice".into() }));
    assert_eq!(reg.contacts("alice", t0)[0].source, ws(50001));
    let r = send(&mut reg, &mut cli, t0, &register("alice", "u1", 1, &["<sip:alice@10.0.0.1>"], Some(600)));
    assert_eq!(code(&r), 200);
    let mut bob = DigestClient::new("bob", "bob-pw");
    let r = send_from(&mut reg, &mut bob, t0, &register("bob", "w2", 1, &["<sip:q1@x.invalid;transport=ws>"], Some(600)), ws(50002));
    assert_eq!(code(&r), 200);
    assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "bob".into() }));

    // A connection nobody registered over changes nothing.
    assert!(reg.connection_closed(t0, ws(50003)).is_empty());
    assert_eq!(reg.poll_event(), None);

    // Bob's connection closes long before his binding would expire: he is gone now.
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(reg.connection_closed(t1, ws(50002)), vec!["bob".to_string()]);
    assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentUnreachable { agent: "bob".into() }));
    assert!(reg.contacts("bob", t1).is_empty());
    assert_eq!(reg.registered_agents(t1), vec!["alice".to_string()]);

    // Alice's browser goes; her UDP phone stays, so she is still reachable (no event).
    assert_eq!(reg.connection_closed(t1, ws(50001)), vec!["alice".to_string()]);
    assert_eq!(reg.poll_event(), None);
    let left = reg.contacts("alice", t1);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].source, source());
    // The same address over UDP is another peer: a close of the WebSocket does not touch it.
    assert!(reg.connection_closed(t1, Peer { addr: source().addr, transport: Transport::Ws }).is_empty());
}

#[test]
fn restored_bindings_make_agents_reachable_expire_and_yield_to_a_new_register() {
    let t0 = Instant::now();
    let mut reg = registrar(t0);
    let at = t0 + Duration::from_secs(120);
    assert!(reg.restore(t0, "alice", "sip:alice@10.0.0.1".into(), at, source()));
    assert!(!reg.restore(t0, "alice", "sip:alice@10.0.0.1".into(), at, source()), "the same contact twice");
    assert!(!reg.restore(t0, "mallory", "sip:m@10.0.0.1".into(), at, source()), "no longer an agent");
    assert!(!reg.restore(t0, "bob", "sip:bob@10.0.0.1".into(), t0, source()), "already expired");
    assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "alice".into() }));
    assert_eq!(reg.poll_event(), None);
    assert_eq!(reg.contacts("alice", t0).iter().map(|b| b.uri.as_str()).collect::<Vec<_>>(), vec!["sip:alice@10.0.0.1"]);
    assert_eq!(reg.poll_timeout(), Some(at));
    // The softphone's next REGISTER (any Call-ID and CSeq) refreshes the same contact.
    let mut cli = DigestClient::new("alice", "alice-pw");
    let r = send(&mut reg, &mut cli, t0, &register("alice", "new-call-id", 1, &["<sip:alice@10.0.0.1>"], Some(600)));
    assert_eq!(code(&r), 200);
    assert_eq!(contact_expiries(&r), vec![("sip:alice@10.0.0.1".to_string(), 600)]);
    // Unrefreshed, a restored binding expires like any other.
    let mut reg = registrar(t0);
    reg.restore(t0, "bob", "sip:bob@10.0.0.2".into(), at, source());
    reg.handle_timeout(at);
    assert!(reg.contacts("bob", at).is_empty());
    assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentReachable { agent: "bob".into() }));
    assert_eq!(reg.poll_event(), Some(RegistrarEvent::AgentUnreachable { agent: "bob".into() }));
}
