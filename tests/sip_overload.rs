//! Overload against the real binary over raw UDP on loopback: once the
//! completed transactions kept for retransmissions hold more than
//! `[sip.overload] max_kept_bytes`, new REGISTERs and INVITEs get 503 with
//! `Retry-After` while OPTIONS is still answered; when the completed
//! transactions have expired, REGISTERs are served again. A refused INVITE sent again
//! (a retransmission) gets the same 503, To tag included.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Setup;

/// Long enough for any loaded machine; only waited out when something is wrong.
const PATIENCE: Duration = Duration::from_secs(30);

struct Peer {
    sock: UdpSocket,
    server: SocketAddr,
    n: u32,
    /// The last request sent, for [`Peer::again`].
    last: String,
}

impl Peer {
    fn new(server: SocketAddr) -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Peer { sock, server, n: 0, last: String::new() }
    }

    /// Sends a new out-of-dialog request and returns its final answer.
    fn ask(&mut self, method: &str) -> rsip::Response {
        self.n += 1;
        let local = self.sock.local_addr().unwrap();
        let (srv, n) = (self.server, self.n);
        let (body, ctype) = if method == "INVITE" {
            let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n".to_string();
            (sdp, "Content-Type: application/sdp\r\n")
        } else {
            (String::new(), "")
        };
        let text = format!(
            "{method} sip:alice@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKov{n}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@{ip}>;tag=f{n}\r\nTo: <sip:alice@{ip}>\r\nCall-ID: overload-{n}-{port}\r\nCSeq: 1 {method}\r\n\
             Contact: <sip:alice@{local}>\r\n{ctype}Content-Length: {len}\r\n\r\n{body}",
            ip = srv.ip(),
            port = local.port(),
            len = body.len(),
        );
        self.last = text;
        self.answer()
    }

    /// Sends the last request again, as a retransmission, and returns its final answer.
    fn again(&mut self) -> rsip::Response {
        self.answer()
    }

    fn answer(&mut self) -> rsip::Response {
        let n = self.n;
        self.sock.send_to(self.last.as_bytes(), self.server).unwrap();
        let mut buf = vec![0u8; 65_536];
        loop {
            let (k, _) = self.sock.recv_from(&mut buf).expect("an answer");
            let r = rsip::Response::try_from(&buf[..k]).expect("a response");
            // Provisional answers (100 Trying to an INVITE) are not the final one.
            if r.status_code.code() >= 200 && r.to_string().contains(&format!("overload-{n}-")) {
                return r;
            }
        }
    }
}

fn metric(r: &common::Redial, name: &str) -> u64 {
    let text = ureq::get(&format!("http://{}/metrics", r.http)).call().expect("metrics").body_mut().read_to_string().unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn new_work_gets_503_with_retry_after_while_options_is_answered_then_service_resumes() {
    // T1 = 50 ms: completed transactions are kept 64 × T1 = 3.2 s (Timer J).
    let r = Setup::new()
        .agent("alice", "alice-pw")
        .sip_keys("t1 = \"50ms\"\nt2 = \"400ms\"")
        // About 30 answered requests (each kept response with its bookkeeping is near 1 kB);
        // answered ones are not "at work", so `max_transactions` is never reached here.
        .extra_toml("[sip.overload]\nmax_kept_bytes = 30000\nretry_after = \"3s\"")
        .start();
    let mut p = Peer::new(r.sip);

    // REGISTERs (each challenged) until the endpoint samples its load and refuses.
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let a = p.ask("REGISTER");
        match a.status_code.code() {
            401 => {}
            503 => break a,
            other => panic!("unexpected {other}: {a}"),
        }
        assert!(Instant::now() < deadline, "never refused\n{}", r.logs.lines().join("\n"));
    };
    assert!(refused.to_string().contains("Retry-After: 3\r\n"), "{refused}");
    let invite = p.ask("INVITE");
    assert_eq!(invite.status_code.code(), 503, "a new call is refused too");
    assert!(invite.to_string().contains("Retry-After: 3\r\n"), "{invite}");
    let to = |r: &rsip::Response| r.to_string().lines().find(|l| l.starts_with("To:")).map(str::to_string);
    assert_eq!(to(&p.again()), to(&invite), "a retransmission gets the same 503, To tag included");
    assert_eq!(p.ask("OPTIONS").status_code.code(), 200, "OPTIONS is still answered");
    assert!(metric(&r, "redial_sip_overload_refused_total") >= 2);
    assert_eq!(metric(&r, "redial_sip_overloaded"), 1);

    // The kept transactions expire; the next sample admits work again.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let a = p.ask("REGISTER");
        if a.status_code.code() == 401 {
            break;
        }
        assert_eq!(a.status_code.code(), 503, "{a}");
        assert!(Instant::now() < deadline, "never resumed\n{}", r.logs.lines().join("\n"));
        // Each refused REGISTER is itself a kept transaction: ask gently
        // (the wait is for Timer J, not a guess at a duration of work).
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(&r, "redial_sip_overloaded"), 0);
    assert!(r.logs.lines().iter().any(|l| l.contains("SIP overload state changed")), "logged");
}
