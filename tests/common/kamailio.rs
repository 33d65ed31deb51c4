//! Kamailio running the front shipped for cluster mode
//! (`deploy/kamailio/redial-front.cfg`), from Debian's package, on a loopback
//! port; killed with the processes it forked when dropped.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{manifest_dir, peer_port};

pub struct Front {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Kills Kamailio and the worker processes it forked (its process group).
fn stop_group(child: &mut Child) {
    // SAFETY: signalling the process group this harness created for the child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// Sends `req` from `sock` and returns the first response's status line,
/// or `None` after `wait`.
pub fn exchange(sock: &UdpSocket, to: SocketAddr, req: &str, wait: Duration) -> Option<String> {
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
    /// Starts Kamailio on a free loopback port with `nodes` in set 1 and
    /// `dial_out` in set 2, and waits until it answers OPTIONS.
    pub fn start(nodes: &[SocketAddr], dial_out: &[SocketAddr]) -> Front {
        // Kamailio cannot listen on port 0: pick a free port and, should
        // another process take it first, start again on a new one.
        for _ in 0..5 {
            if let Ok(f) = Self::start_on(([127, 0, 0, 1], peer_port()).into(), nodes, dial_out) {
                return f;
            }
        }
        panic!("kamailio did not start");
    }

    /// Starts Kamailio on `addr` (chosen with [`peer_port`] by a caller that
    /// had to name it to others first); `Err` with its log if it did not start.
    pub fn start_on(addr: SocketAddr, nodes: &[SocketAddr], dial_out: &[SocketAddr]) -> Result<Front, String> {
        let cfg = manifest_dir().join("deploy/kamailio/redial-front.cfg");
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
                return Ok(Front { child, addr, dir });
            }
        }
        stop_group(&mut child);
        let log = std::fs::read_to_string(dir.path().join("kamailio.log")).unwrap_or_default();
        eprintln!("kamailio did not start on {addr}:\n{log}");
        Err(log)
    }

    /// What Kamailio logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}
