//! The Kamailio front shipped for cluster mode (`deploy/kamailio/redial-front.cfg`),
//! run from Debian's package against SIPp nodes on loopback: calls are spread over
//! the nodes, a dead node is failed over and taken out by OPTIONS probing, and a
//! second INVITE for the same `X-Redial-Attempt` is refused.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{manifest_dir, peer_port, Sipp, SippChild};

/// Kamailio running the front config; killed on drop.
struct Front {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Kills Kamailio and the worker processes it forked (its process group).
fn stop_group(child: &mut Child) {
    // SAFETY: signalling the process group this test created for the child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// Sends `req` from `sock` and returns the first response's status line
/// whose CSeq method is `method`, or `None` after `wait`.
fn exchange(sock: &UdpSocket, to: SocketAddr, req: &str, wait: Duration) -> Option<String> {
    sock.send_to(req.as_bytes(), to).unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with("SIP/2.0 ") {
                return Some(text.lines().next().unwrap_or("").to_string());
            }
        }
    }
    None
}

fn options(to: SocketAddr, from: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-probe-{n}\r\nMax-Forwards: 70\r\n\
         From: <sip:test@{from}>;tag=t{n}\r\nTo: <sip:{to}>\r\nCall-ID: probe-{n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

impl Front {
    /// Starts Kamailio on a loopback port with `nodes` in set 1 and
    /// `dial_out` in set 2, and waits until it answers OPTIONS.
    fn start(nodes: &[SocketAddr], dial_out: &[SocketAddr]) -> Front {
        let cfg = manifest_dir().join("deploy/kamailio/redial-front.cfg");
        // Kamailio cannot listen on port 0: pick a free port and, should
        // another process take it first, start again on a new one.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let list = dir.path().join("nodes.list");
            let mut text = String::new();
            for n in nodes {
                text.push_str(&format!("1 sip:{n}\n"));
            }
            for n in dial_out {
                text.push_str(&format!("2 sip:{n}\n"));
            }
            std::fs::write(&list, text).unwrap();
            let addr: SocketAddr = ([127, 0, 0, 1], peer_port()).into();
            let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
            let mut child = Command::new("kamailio")
                .arg("-f")
                .arg(&cfg)
                .arg("-l")
                .arg(format!("udp:{addr}"))
                .arg("-A")
                .arg(format!("DISPATCHER_LIST=\"{}\"", list.display()))
                .args(["-A", "PROBE_INTERVAL=1", "-DD", "-E", "-m", "64", "-M", "8", "-Y"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("kamailio (is the kamailio package installed?)");
            let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
            let me = probe.local_addr().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                n += 1;
                if exchange(&probe, addr, &options(addr, me, n), Duration::from_millis(300)).is_some_and(|l| l.contains(" 200 ")) {
                    return Front { child, addr, _dir: dir };
                }
            }
            stop_group(&mut child);
            eprintln!("kamailio did not start on {addr}:\n{}", std::fs::read_to_string(dir.path().join("kamailio.log")).unwrap_or_default());
        }
        panic!("kamailio did not start");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

fn node() -> (SocketAddr, SippChild) {
    let child = Sipp::new("front_node.xml").calls(1000).arg("-aa").timeout(Duration::from_secs(120)).timeout_ok().trace_msg().spawn();
    (([127, 0, 0, 1], child.port()).into(), child)
}

fn calls(front: SocketAddr, n: u32) -> common::SippOutput {
    Sipp::new("front_carrier.xml").remote(front).calls(n).arg("-l").arg("1").timeout(Duration::from_secs(60)).trace_msg().run()
}

fn invites(out: &common::SippOutput) -> usize {
    out.received("INVITE ")
}

#[test]
fn calls_spread_over_live_nodes_and_fail_over_when_one_dies() {
    let (a_addr, a) = node();
    let (b_addr, b) = node();
    let front = Front::start(&[a_addr, b_addr], &[]);

    let first = calls(front.addr, 4);
    assert!(first.ok(), "{first}\n{}", front.log());

    // Node A dies: what it got so far is read, then it is gone.
    let a_out = a.stop();
    let a_calls = invites(&a_out);
    assert!(a_calls >= 1, "round robin gave node A nothing: {a_out}");

    let second = calls(front.addr, 4);
    assert!(second.ok(), "calls after node A died: {second}\n{}", front.log());
    let b_out = b.stop();
    // Every call after A died landed on B (A got none of them: it was gone).
    assert_eq!(a_calls + invites(&b_out), 8, "node A: {a_out}\nnode B: {b_out}");
    assert!(a_calls <= 3, "round robin gave node B nothing before A died: {a_out}");
}

fn invite(ruri: &str, from: SocketAddr, call_id: &str, attempt: &str) -> String {
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550100@{from}>;tag={call_id}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}@test\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:redial@{from}>\r\nX-Redial-Attempt: {attempt}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_second_invite_for_the_same_attempt_is_refused() {
    // The "node" dialling out is this test's socket (set 2); the "carrier" is a
    // socket that takes the INVITE and never answers.
    let node = UdpSocket::bind("127.0.0.1:0").unwrap();
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = node.local_addr().unwrap();
    let front = Front::start(&[], &[me]);
    let ruri = format!("sip:+15551234567@{}", carrier.local_addr().unwrap());

    let first = exchange(&node, front.addr, &invite(&ruri, me, "one", "cb_7/1"), Duration::from_secs(5));
    assert!(first.as_deref().is_some_and(|l| !l.contains(" 482 ")), "first INVITE: {first:?}\n{}", front.log());
    let mut buf = [0u8; 4096];
    carrier.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = carrier.recv_from(&mut buf).expect("the first INVITE reaches the carrier");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("X-Redial-Attempt: cb_7/1"));

    let second = exchange(&node, front.addr, &invite(&ruri, me, "two", "cb_7/1"), Duration::from_secs(5));
    assert!(second.as_deref().is_some_and(|l| l.contains(" 482 ")), "second INVITE: {second:?}\n{}", front.log());
    let next = exchange(&node, front.addr, &invite(&ruri, me, "three", "cb_7/2"), Duration::from_secs(5));
    assert!(next.as_deref().is_some_and(|l| !l.contains(" 482 ")), "the next attempt goes through: {next:?}");
    // An agent's INVITEs carry the attempt too, one per registered contact:
    // only calls to customers (E.164 users) are fenced.
    let agent = format!("sip:alice@{}", carrier.local_addr().unwrap());
    for (i, call) in ["four", "five"].iter().enumerate() {
        let r = exchange(&node, front.addr, &invite(&agent, me, call, "cb_7/2"), Duration::from_secs(5));
        assert!(r.as_deref().is_some_and(|l| !l.contains(" 482 ")), "agent INVITE {i}: {r:?}");
    }
}
