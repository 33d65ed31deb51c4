//! RFC 4475 (SIP torture test messages) against the running server, over UDP and TCP.
//!
//! `tests/rfc4475/manifest.json` lists every message of the RFC's Appendix A.1 archive
//! with the answer a UAS/registrar owes it (its `classes` and `expect_tokens` say how to
//! read `expect`). Each message is sent as the RFC has it; over UDP the top Via's sent-by
//! is pointed at the test socket (and only that), because §18.2.2 sends the answer there.
//! After every message the server must still answer OPTIONS.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{options_request, Setup};
use serde_json::Value;

/// How long an answer that must come may take (a loaded CI machine).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// After the probe's answer, how long a stray answer to a message that must be dropped is
/// still looked for. A drop check can only miss a late answer, never fail a correct server.
const DROP_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Outcome {
    /// Status codes received for the message, in order.
    statuses: Vec<u16>,
    /// The TCP connection was closed by the server.
    closed: bool,
}

impl Outcome {
    fn final_status(&self) -> Option<u16> {
        self.statuses.iter().copied().find(|s| *s >= 200)
    }
}

fn status(resp: &[u8]) -> Option<u16> {
    resp.strip_prefix(b"SIP/2.0 ")?.get(..3).and_then(|c| std::str::from_utf8(c).ok())?.parse().ok()
}

fn call_id(resp: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(resp);
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim().eq_ignore_ascii_case("call-id") || n.trim().eq_ignore_ascii_case("i")).then(|| v.trim().to_string())
    })
}

/// Whether `got` satisfies one expect token (see the manifest's `expect_tokens`).
fn matches(token: &Value, got: &Outcome) -> bool {
    let fin = got.final_status();
    match token {
        Value::Number(n) => fin == n.as_u64().map(|n| n as u16),
        Value::String(s) => match s.as_str() {
            "drop" => got.statuses.is_empty(),
            "close" => got.closed,
            "error" => fin.is_some_and(|f| f >= 400),
            "any" => true,
            "accept" => !got.statuses.is_empty() && got.statuses.iter().all(|s| ![400, 413, 500].contains(s)),
            class if class.len() == 3 && class.ends_with("xx") => {
                let c = class.as_bytes()[0].wrapping_sub(b'0') as u16;
                fin.is_some_and(|f| f / 100 == c)
            }
            other => panic!("unknown expect token {other}"),
        },
        other => panic!("bad expect token {other}"),
    }
}

/// The top Via's sent-by (`host` or `host:port`) and where its header starts in `msg`,
/// read the way a parser would: header names case-insensitive (`v` compact), folded lines.
fn top_via_sent_by(msg: &[u8]) -> Option<(usize, String)> {
    let text = String::from_utf8_lossy(msg);
    let head = &text[..text.find("\r\n\r\n").unwrap_or(text.len())];
    let mut at = 0;
    let mut lines = head.split("\r\n").peekable();
    lines.next(); // start line
    at += head.find("\r\n")? + 2;
    while let Some(line) = lines.next() {
        let start = at;
        at += line.len() + 2;
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if !(name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")) {
            continue;
        }
        let mut value = value.to_string();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(next);
            lines.next();
        }
        // `SIP / 2.0 / UDP  host[:port] ;params`: the sent-by follows the transport.
        let first = value.split([';', ',']).next()?;
        let words: Vec<&str> = first.split_whitespace().collect();
        let proto_end = words.iter().rposition(|w| w.contains('/'))?;
        return Some((start, words[proto_end + 1..].join("")));
    }
    None
}

/// `msg` with its top Via's sent-by replaced by `local` (UDP answers go there, §18.2.2).
fn aim_at(msg: &[u8], local: SocketAddr) -> Vec<u8> {
    let Some((start, sent_by)) = top_via_sent_by(msg) else { return msg.to_vec() };
    let hay = &msg[start..];
    let Some(i) = hay.windows(sent_by.len()).position(|w| w == sent_by.as_bytes()) else { return msg.to_vec() };
    let mut out = msg[..start + i].to_vec();
    out.extend_from_slice(local.to_string().as_bytes());
    out.extend_from_slice(&hay[i + sent_by.len()..]);
    out
}

fn udp_send(server: SocketAddr, msg: &[u8], call_id_of_msg: Option<&str>, wants_answer: bool, name: &str) -> Outcome {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    sock.send_to(&aim_at(msg, local), server).unwrap();
    // A probe from the same socket: its answer shows the server is alive, and an answer
    // to a message that must be dropped would (almost always) come first.
    let probe_id = format!("probe-udp-{name}");
    let probe = options_request(local, "UDP", &probe_id);
    let mut got = Outcome::default();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut probe_answered_at: Option<Instant> = None;
    let mut last_probe = Instant::now() - Duration::from_secs(1);
    loop {
        let now = Instant::now();
        let done_waiting = match probe_answered_at {
            Some(t) => now >= t + DROP_GRACE && (!wants_answer || got.final_status().is_some() || now >= deadline),
            None => false,
        };
        if done_waiting || now >= deadline + ANSWER_WAIT {
            break;
        }
        if probe_answered_at.is_none() && now >= last_probe + Duration::from_millis(500) {
            // Retransmitted like Timer E would: UDP may lose it.
            sock.send_to(probe.as_bytes(), server).unwrap();
            last_probe = now;
        }
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let Ok((n, _)) = sock.recv_from(&mut buf) else { continue };
        let resp = &buf[..n];
        let cid = call_id(resp);
        if cid.as_deref() == Some(probe_id.as_str()) {
            assert_eq!(status(resp), Some(200), "udp `{name}`: probe OPTIONS not answered 200:\n{}", String::from_utf8_lossy(resp));
            probe_answered_at.get_or_insert(Instant::now());
            continue;
        }
        if call_id_of_msg.is_some_and(|c| cid.as_deref() != Some(c)) {
            continue;
        }
        // Retransmissions of the same final answer count once.
        if let Some(s) = status(resp) {
            if !(s >= 200 && got.statuses.contains(&s)) {
                got.statuses.push(s);
            }
        }
    }
    assert!(probe_answered_at.is_some(), "udp `{name}`: server stopped answering OPTIONS");
    got
}

fn tcp_send(server: SocketAddr, msg: &[u8], wants_answer: bool) -> Outcome {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let _ = s.write_all(msg);
    let mut got = Outcome::default();
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let started = Instant::now();
    loop {
        let elapsed = started.elapsed();
        if elapsed >= ANSWER_WAIT || (!wants_answer && elapsed >= DROP_GRACE) || got.final_status().is_some() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                got.closed = true;
                break;
            }
            Ok(n) => {
                data.extend_from_slice(&buf[..n]);
                // Heads of the answers so far (responses here carry no bodies).
                while let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    if let Some(st) = status(&data) {
                        got.statuses.push(st);
                    }
                    data.drain(..end + 4);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                got.closed = true;
                break;
            }
        }
    }
    got
}

fn assert_alive_tcp(server: SocketAddr, name: &str) {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    s.write_all(options_request(s.local_addr().unwrap(), "TCP", "probe-tcp").as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(status(&buf[..n]), Some(200), "tcp `{name}`: server stopped answering OPTIONS");
}

fn message_call_id(msg: &[u8]) -> Option<String> {
    let head_end = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(msg.len());
    call_id(&msg[..head_end])
}

#[test]
fn rfc4475_torture_messages_over_udp_and_tcp() {
    let dir = common::manifest_dir().join("tests/rfc4475");
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let messages = manifest["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 49, "the RFC's archive has 49 messages besides test.dat");
    let r = Setup::new().agent("alice", "alice-pw").start();
    let mut failures = Vec::new();
    for m in messages {
        let name = m["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(m["file"].as_str().unwrap())).unwrap();
        let liberal = m["liberal_allowed"].as_bool().unwrap_or(false);
        for transport in ["udp", "tcp"] {
            let (expect, also) = if transport == "tcp" {
                (
                    m.get("tcp_expect").filter(|v| !v.is_null()).unwrap_or(&m["expect"]),
                    m.get("tcp_also_acceptable").filter(|v| !v.is_null()).unwrap_or(&m["also_acceptable"]),
                )
            } else {
                (&m["expect"], &m["also_acceptable"])
            };
            let tokens: Vec<&Value> = expect.as_array().unwrap().iter().chain(also.as_array().unwrap()).collect();
            let wants_answer = tokens.iter().any(|t| !matches!(t.as_str(), Some("drop" | "close" | "any")));
            let got = if transport == "udp" {
                // Only the answers to this message (its Call-ID), not to anything else.
                let cid = message_call_id(&bytes);
                udp_send(r.sip, &bytes, cid.as_deref(), wants_answer, name)
            } else {
                let got = tcp_send(r.sip, &bytes, wants_answer);
                assert_alive_tcp(r.sip, name);
                got
            };
            let ok = tokens.iter().any(|t| matches(t, &got)) || (liberal && matches(&Value::from("accept"), &got));
            if !ok {
                failures.push(format!("{transport} {name} ({}): expected {tokens:?}, got {got:?}", m["rfc_section"].as_str().unwrap_or("")));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} answers wrong:\n{}", failures.len(), messages.len() * 2, failures.join("\n"));
}
