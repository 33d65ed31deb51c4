//! Hostile input against the running server over UDP and TCP: every malformed message is
//! answered (400/404/416/481/483/501/505/513) when it can be addressed, or dropped — and
//! redial still answers OPTIONS on both transports afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{options_request, Setup};

const BASE: &str = "INVITE sip:alice@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKhostile;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:mallory@127.0.0.1>;tag=m1\r\n\
To: <sip:alice@127.0.0.1>\r\n\
Call-ID: hostile@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

fn with(replace: &str, by: &str) -> Vec<u8> {
    assert!(BASE.contains(replace), "{replace}");
    BASE.replacen(replace, by, 1).into_bytes()
}

fn without(line: &str) -> Vec<u8> {
    with(line, "")
}

/// Hostile messages and the status each must get (`None`: dropped, nothing checked
/// except that the server survives).
fn cases() -> Vec<(&'static str, Vec<u8>, Option<u16>)> {
    let mut v: Vec<(&'static str, Vec<u8>, Option<u16>)> = vec![
        ("garbage", vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3], None),
        ("crlf only", b"\r\n\r\n".to_vec(), None),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), None),
        ("start line only", b"INVITE sip:a@b SIP/2.0\r\n\r\n".to_vec(), None),
        ("no end of headers", BASE.trim_end().as_bytes().to_vec(), None),
        ("missing Via", without("Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKhostile;rport\r\n"), None),
        ("missing From", without("From: <sip:mallory@127.0.0.1>;tag=m1\r\n"), Some(400)),
        ("missing To", without("To: <sip:alice@127.0.0.1>\r\n"), Some(400)),
        ("missing Call-ID", without("Call-ID: hostile@127.0.0.1\r\n"), Some(400)),
        ("missing CSeq", without("CSeq: 1 INVITE\r\n"), Some(400)),
        ("Content-Length beyond body", with("Content-Length: 0\r\n\r\n", "Content-Length: 500\r\n\r\nv=0\r\n"), Some(400)),
        ("Content-Length text", with("Content-Length: 0", "Content-Length: lots"), Some(400)),
        ("Content-Length negative", with("Content-Length: 0", "Content-Length: -5"), Some(400)),
        ("Max-Forwards 0", with("Max-Forwards: 70", "Max-Forwards: 0"), Some(483)),
        ("Max-Forwards negative", with("Max-Forwards: 70", "Max-Forwards: -1"), Some(400)),
        ("Max-Forwards text", with("Max-Forwards: 70", "Max-Forwards: many"), Some(400)),
        ("empty Request-URI host", with("INVITE sip:alice@127.0.0.1", "INVITE sip:"), Some(400)),
        ("unsupported scheme", with("INVITE sip:alice@127.0.0.1", "INVITE http://x/"), Some(416)),
        ("From without URI", with("From: <sip:mallory@127.0.0.1>;tag=m1", "From: <>;tag=m1"), Some(400)),
        ("From unterminated", with("From: <sip:mallory@127.0.0.1>;tag=m1", "From: \"x <sip:mallory@127.0.0.1;tag=m1"), Some(400)),
        ("two Call-IDs", with("Call-ID: hostile@127.0.0.1\r\n", "Call-ID: a@x\r\nCall-ID: b@x\r\n"), Some(400)),
        ("two CSeqs", with("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n"), Some(400)),
        ("CSeq method mismatch", with("CSeq: 1 INVITE", "CSeq: 1 BYE"), Some(400)),
        ("CSeq number too big", with("CSeq: 1 INVITE", "CSeq: 99999999999 INVITE"), Some(400)),
        ("header without colon", with("Max-Forwards: 70\r\n", "Max-Forwards 70\r\n"), None),
        ("continuation first", with("Via:", "  folded\r\nVia:"), None),
        ("non-UTF-8 header", {
            let mut b = with("Max-Forwards: 70\r\n", "X-Bin: ??\r\n");
            let i = b.windows(2).position(|w| w == b"??").unwrap();
            b[i] = 0xff;
            b[i + 1] = 0xfe;
            b
        }, None),
        ("Via not SIP/2.0", with("Via: SIP/2.0/UDP", "Via: HTTP/1.1/UDP"), None),
        ("bad version", with("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"), Some(505)),
        ("NUL in header", with("Max-Forwards: 70", "Max-Forwards: 7\u{0}0"), Some(400)),
        ("unknown method", with("INVITE sip:", "FROB sip:").into_iter().collect::<Vec<u8>>().replace_all("1 INVITE", "1 FROB"), Some(501)),
        ("unknown user", with("INVITE sip:alice@", "INVITE sip:nobody@"), Some(404)),
        ("BYE without dialog", with("INVITE sip:", "BYE sip:").replace_all("1 INVITE", "1 BYE"), Some(481)),
        ("CANCEL matching nothing", with("INVITE sip:", "CANCEL sip:").replace_all("1 INVITE", "1 CANCEL"), Some(481)),
        ("stray ACK", with("INVITE sip:", "ACK sip:").replace_all("1 INVITE", "1 ACK"), None),
        ("stray response", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec(), None),
        ("bad status code", b"SIP/2.0 99999 Huh\r\nVia: SIP/2.0/UDP 127.0.0.1:1\r\n\r\n".to_vec(), None),
        ("thousand Vias", {
            let vias = "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKv\r\n".repeat(1000);
            with("Max-Forwards: 70\r\n", &format!("Max-Forwards: 70\r\n{vias}"))
        }, Some(403)),
        ("long URI", with("INVITE sip:alice@127.0.0.1", &format!("INVITE sip:{}@127.0.0.1", "a".repeat(8000))), Some(404)),
    ];
    // Compact-form headers are fine, not hostile: answered like the long form
    // (a well-formed call from a source that is no configured carrier: 403).
    v.push(("compact form", with("Call-ID: hostile", "i: hostile"), Some(403)));
    v
}

trait ReplaceAll {
    fn replace_all(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceAll for Vec<u8> {
    fn replace_all(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self).unwrap().replace(from, to).into_bytes()
    }
}

/// Every occurrence of `from` replaced (binary-safe).
fn replace_bytes(msg: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    let mut i = 0;
    while i < msg.len() {
        if msg[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(msg[i]);
            i += 1;
        }
    }
    out
}

fn status(resp: &str) -> Option<u16> {
    resp.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Sends over UDP, patching the Via to the socket's address so the answer comes back.
fn udp_case(server: SocketAddr, msg: &[u8], expect: Option<u16>, name: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let msg = replace_bytes(msg, b"127.0.0.1:9;", format!("{local};").as_bytes());
    let msg = msg.as_slice();
    sock.set_read_timeout(Some(Duration::from_millis(if expect.is_some() { 5000 } else { 50 }))).unwrap();
    sock.send_to(msg, server).unwrap();
    let mut buf = vec![0u8; 65_536];
    let got = sock.recv_from(&mut buf).ok().map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned());
    if let Some(code) = expect {
        let got = got.unwrap_or_else(|| panic!("udp `{name}`: no answer, expected {code}"));
        assert_eq!(status(&got), Some(code), "udp `{name}`:\n{got}");
    }
}

/// Sends over a fresh TCP connection and reads what comes back until the server closes
/// or the timeout passes.
fn tcp_case(server: SocketAddr, msg: &[u8], expect: Option<u16>, name: &str) {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(if expect.is_some() { 5000 } else { 50 }))).unwrap();
    let bytes = replace_bytes(msg, b"SIP/2.0/UDP 127.0.0.1:9;", format!("SIP/2.0/TCP {};", s.local_addr().unwrap()).as_bytes());
    let _ = s.write_all(&bytes);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    if let Some(code) = expect {
        let got = String::from_utf8_lossy(&got);
        assert_eq!(status(&got), Some(code), "tcp `{name}`:\n{got}");
    }
}

fn assert_options_ok(server: SocketAddr) {
    // Retransmitted like a UA would (Timer E): the garbage burst may have filled the
    // socket buffer, and UDP drops what does not fit.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let req = options_request(sock.local_addr().unwrap(), "UDP", "after-udp");
    let mut buf = vec![0u8; 65_536];
    let mut resp = None;
    for _ in 0..8 {
        sock.send_to(req.as_bytes(), server).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            resp = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    let resp = resp.expect("OPTIONS over UDP answered");
    assert_eq!(status(&resp), Some(200), "{resp}");

    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(options_request(s.local_addr().unwrap(), "TCP", "after-tcp").as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("OPTIONS over TCP answered");
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status(&resp), Some(200), "{resp}");
}

#[test]
fn hostile_messages_over_udp_and_tcp_then_still_serving() {
    let r = Setup::new()
        .agent("alice", "alice-pw")
        .start();
    let cases = cases();
    assert!(cases.len() >= 30);
    for (name, msg, expect) in &cases {
        udp_case(r.sip, msg, *expect, name);
    }
    for (name, msg, expect) in &cases {
        // On a stream a short body just means "wait for more" (RFC 3261 §18.3).
        let expect = if *name == "Content-Length beyond body" { None } else { *expect };
        tcp_case(r.sip, msg, expect, name);
    }
    // TCP-only abuse: bodies and heads beyond 64 KiB, framing that cannot be trusted.
    let big_body = with("Content-Length: 0\r\n\r\n", "Content-Length: 70000\r\n\r\n");
    tcp_case(r.sip, &big_body, Some(513), "body over 64 KiB");
    let big_head = with("Max-Forwards: 70\r\n", &format!("X-Pad: {}\r\n", "p".repeat(70_000)));
    tcp_case(r.sip, &big_head, None, "head over 64 KiB");
    tcp_case(r.sip, &with("Content-Length: 0", "Content-Length: 1e9"), None, "unframeable length");
    // Two messages in one write, the first hostile: the second is still answered.
    let mut two = with("Max-Forwards: 70", "Max-Forwards: 0");
    two.extend_from_slice(&with("INVITE sip:alice@", "INVITE sip:nobody@"));
    tcp_case(r.sip, &two, Some(483), "pipelined");
    // A valid OPTIONS dribbled over TCP a few bytes per write, then a second one on the
    // same connection: framing survives partial reads and reuses the connection.
    {
        let mut s = TcpStream::connect(r.sip).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = s.local_addr().unwrap();
        for chunk in options_request(local, "TCP", "dribble-1").as_bytes().chunks(7) {
            s.write_all(chunk).unwrap();
            // Time between writes is the point: each chunk arrives as its own
            // segment, so the framer sees partial reads.
            std::thread::sleep(Duration::from_millis(2));
        }
        s.write_all(options_request(local, "TCP", "dribble-2").as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.windows(11).filter(|w| w == b"SIP/2.0 200").count() < 2 {
            let n = s.read(&mut buf).expect("two answers on the same connection");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
    // A burst of garbage datagrams.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..500u32 {
        let junk: Vec<u8> = (0..(i % 200)).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect();
        let _ = sock.send_to(&junk, r.sip);
    }
    assert_options_ok(r.sip);
}
