//! The agents' registrar against password guessing and user enumeration, over raw UDP
//! from several loopback addresses to the real binary: answers for known and unknown
//! users are byte-identical apart from tags and nonces; 200 wrong passwords from one
//! source are slowed, then blocked, while the right password from another source works;
//! scanners' requests are dropped.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Setup;
use rand::SeedableRng;
use redial::sip::auth::{set_auth_headers, DigestClient};

/// Long enough for any loaded machine; only waited out when something is wrong.
const ANSWER: Duration = Duration::from_secs(15);

struct Phone {
    sock: UdpSocket,
    server: SocketAddr,
    n: u32,
}

impl Phone {
    fn new(ip: &str, server: SocketAddr) -> Phone {
        let sock = UdpSocket::bind((ip, 0)).expect("bind loopback address");
        sock.set_read_timeout(Some(ANSWER)).unwrap();
        Phone { sock, server, n: 0 }
    }

    fn register(&mut self, user: &str, ua: &str) -> rsip::Request {
        self.n += 1;
        let local = self.sock.local_addr().unwrap();
        let text = format!(
            "REGISTER sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKg{n}x{port}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{ip}>;tag=t{n}\r\nTo: <sip:{user}@{ip}>\r\nCall-ID: guard-{n}-{port}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\nExpires: 120\r\n{ua}Content-Length: 0\r\n\r\n",
            srv = self.server,
            ip = self.server.ip(),
            n = self.n,
            port = local.port(),
        );
        rsip::Request::try_from(text.as_bytes()).unwrap()
    }

    fn send(&self, req: &rsip::Request) {
        self.sock.send_to(req.to_string().as_bytes(), self.server).unwrap();
    }

    fn recv(&self) -> rsip::Response {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = self.sock.recv_from(&mut buf).expect("an answer");
        rsip::Response::try_from(&buf[..n]).expect("a response")
    }

    /// Whatever already arrived, without waiting.
    fn pending(&self) -> usize {
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut n = 0;
        while self.sock.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        self.sock.set_nonblocking(false).unwrap();
        n
    }

    /// The challenge for `user`, then the REGISTER signed with `password` (not sent).
    fn signed(&mut self, user: &str, password: &str) -> (rsip::Response, rsip::Request) {
        let req = self.register(user, "");
        self.send(&req);
        let challenge = self.recv();
        assert_eq!(challenge.status_code.code(), 401, "{challenge}");
        let mut cli = DigestClient::new(user, password);
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(self.n));
        let hs = cli.respond(&challenge, &req, &mut rng).expect("answerable challenge");
        let mut signed = req.clone();
        set_auth_headers(&mut signed, hs);
        // A new transaction (branch) for the answer, CSeq + 1 (RFC 3261 §22.2).
        let text = signed.to_string().replace(";branch=z9hG4bKg", ";branch=z9hG4bKa").replace("CSeq: 1 REGISTER", "CSeq: 2 REGISTER");
        (challenge, rsip::Request::try_from(text.as_bytes()).unwrap())
    }
}

/// The response with the user name, the tags and the nonce masked, and the two values
/// copied from requests that must differ (the Via branch and the Call-ID).
fn masked(r: &rsip::Response, user: &str) -> String {
    r.to_string()
        .replace(&format!("sip:{user}@"), "sip:USER@")
        .split("\r\n")
        .map(|line| {
            if line.starts_with("To:") || line.starts_with("From:") || line.starts_with("Via:") {
                let key = if line.starts_with("Via:") { ";branch=" } else { ";tag=" };
                return line.split(key).next().unwrap().to_string() + key + "MASKED";
            }
            if line.starts_with("Call-ID:") {
                return "Call-ID: MASKED".to_string();
            }
            match line.find("nonce=\"") {
                Some(i) => {
                    let end = i + 7 + line[i + 7..].find('"').unwrap();
                    format!("{}NONCE{}", &line[..i + 7], &line[end..])
                }
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// `redial_sip_auth_total{event=...}` from /metrics.
fn auth_metric(r: &common::Redial, event: &str) -> u64 {
    let url = format!("http://{}/metrics", r.http);
    let text = ureq::get(&url).call().expect("metrics").body_mut().read_to_string().unwrap();
    let key = format!("redial_sip_auth_total{{event=\"{event}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn wait_metric(r: &common::Redial, event: &str, at_least: u64) {
    let deadline = Instant::now() + ANSWER;
    loop {
        let v = auth_metric(r, event);
        if v >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "{event} stayed at {v} < {at_least}\n{}", r.logs.lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

const GUARD: &str = "[sip.guard]\nfree_failures = 2\nbase_delay = \"300ms\"\nmax_delay = \"600ms\"\nblock_after = 6\nblock_for = \"10m\"\n";

#[test]
fn known_and_unknown_users_answered_alike() {
    let r = Setup::new().agent("alice", "alice-pw").extra_toml(GUARD).start();
    let mut p = Phone::new("127.0.0.3", r.sip);
    // Challenge first: the same for both.
    let (a, wrong) = p.signed("alice", "guess");
    let (m, unknown) = p.signed("mallory", "guess");
    assert_eq!(masked(&a, "alice"), masked(&m, "mallory"));
    // The same answer after: a wrong password and an unknown user.
    p.send(&wrong);
    let a = p.recv();
    p.send(&unknown);
    let m = p.recv();
    assert_eq!(a.status_code.code(), 401, "{a}");
    assert_eq!(masked(&a, "alice"), masked(&m, "mallory"));
    assert!(r.logs.wait_for(&["auth failure: source=127.0.0.3 user=mallory"], ANSWER).is_some());
    assert!(r.logs.wait_for(&["auth failure: source=127.0.0.3 user=alice"], ANSWER).is_some());
}

#[test]
fn guessing_is_slowed_then_blocked_while_other_sources_work() {
    let r = Setup::new().agent("alice", "alice-pw").extra_toml(GUARD).start();
    let mut attacker = Phone::new("127.0.0.1", r.sip);
    // free_failures = 2 answered at once; then held 300, 600, 600 ms (max_delay).
    let holds = [None, None, Some(300), Some(600), Some(600)];
    let mut last = None;
    for (i, hold) in holds.iter().enumerate() {
        let (_, guess) = attacker.signed("alice", &format!("guess{i}"));
        let t = Instant::now();
        attacker.send(&guess);
        let resp = attacker.recv();
        assert_eq!(resp.status_code.code(), 401, "{resp}");
        if let Some(ms) = hold {
            // A lower bound only: a loaded machine makes it longer, never shorter.
            assert!(t.elapsed() >= Duration::from_millis(*ms), "guess {i} answered after {:?}", t.elapsed());
        }
        last = Some(guess);
    }
    // The 6th failure starts the block: no answer to it, nor to anything after.
    let (_, guess) = attacker.signed("alice", "guess5");
    attacker.send(&guess);
    wait_metric(&r, "blocked", 1);
    let before = auth_metric(&r, "dropped");
    let mut sent = 6;
    let template = last.unwrap().to_string();
    while sent < 200 {
        // Fresh transactions (new branch and Call-ID), reusing the last credentials.
        let text = template.replace(";branch=z9hG4bKa", &format!(";branch=z9hG4bKb{sent}")).replace("Call-ID: guard-", &format!("Call-ID: b{sent}-"));
        attacker.sock.send_to(text.as_bytes(), r.sip).unwrap();
        sent += 1;
    }
    // And the right password from the blocked source.
    let ok = attacker.register("alice", "").to_string();
    attacker.sock.send_to(ok.as_bytes(), r.sip).unwrap();
    wait_metric(&r, "dropped", before + 195);
    assert_eq!(attacker.pending(), 0, "a blocked source got answers");
    assert_eq!(auth_metric(&r, "failure"), 6);
    assert!(r.logs.wait_for(&["auth blocked: source=127.0.0.1 user=alice"], ANSWER).is_some());

    // Another address with the right password gets in at once.
    let mut agent = Phone::new("127.0.0.2", r.sip);
    let (_, right) = agent.signed("alice", "alice-pw");
    agent.send(&right);
    let resp = agent.recv();
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    assert!(r.logs.wait_for(&["agent registered", "alice"], ANSWER).is_some());
}

#[test]
fn scanners_are_dropped() {
    let r = Setup::new().agent("alice", "alice-pw").start();
    let mut scanner = Phone::new("127.0.0.4", r.sip);
    let req = scanner.register("alice", "User-Agent: friendly-scanner\r\n");
    scanner.send(&req);
    wait_metric(&r, "scanner", 1);
    assert_eq!(scanner.pending(), 0);
    // The same request from a softphone is challenged.
    let req = scanner.register("alice", "User-Agent: baresip\r\n");
    scanner.send(&req);
    assert_eq!(scanner.recv().status_code.code(), 401);
}
