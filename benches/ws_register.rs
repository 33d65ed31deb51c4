//! Browser agents' REGISTER with digest over SIP-over-WebSocket (RFC 7118, `sip.ws_listen`)
//! beside the same over UDP, against the release binary, in one run:
//! `cargo bench --bench ws_register` (env: `REDIAL_BIN`, default `target/release/redial`;
//! `SECONDS` per phase, default 10; `CONNS` concurrent agents, default 20).
//!
//! Each of `CONNS` agents (distinct users; its own WebSocket connection with subprotocol
//! `sip`, or its own UDP socket) registers in a loop: REGISTER → 401 → REGISTER with
//! Authorization (MD5, qop=auth) → 200, so one registration is two requests. A WebSocket
//! agent sends as JsSIP does: `Via: SIP/2.0/WS <token>.invalid`, a `.invalid` Contact
//! with `transport=ws`, one text message per request. Phases alternate UDP, WS, UDP, WS so
//! a change in the machine's load hits both. Printed per phase: registrations/s and
//! redial's CPU (user + system, from /proc) per 1,000 registrations. The client runs on
//! one thread of the same machine.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn hex_md5(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn param(header: &str, name: &str) -> Option<String> {
    let i = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = &header[i..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"')?].to_string(),
        None => rest.split([',', '\r']).next()?.trim().to_string(),
    })
}

/// The MD5 challenge's nonce in a 401.
fn nonce(resp: &str) -> Option<String> {
    resp.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .find(|l| l.contains("MD5") || !l.contains("algorithm="))
        .and_then(|l| param(l, "nonce"))
}

fn status(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A REGISTER for `user`; `via`/`contact` say how it travels.
fn register(user: &str, via: &str, contact: &str, cseq: u32, auth: Option<&str>) -> String {
    let uri = "sip:127.0.0.1";
    let mut m = format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK{user}x{cseq};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@redial>;tag=t{user}\r\nTo: <sip:{user}@redial>\r\nCall-ID: {user}-bench\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: {contact}\r\nExpires: 3600\r\n"
    );
    if let Some(n) = auth {
        let ha1 = hex_md5(&format!("{user}:redial:{user}-pw"));
        let ha2 = hex_md5(&format!("REGISTER:{uri}"));
        let resp = hex_md5(&format!("{ha1}:{n}:00000001:0a4f113b:auth:{ha2}"));
        m += &format!(
            "Authorization: Digest username=\"{user}\", realm=\"redial\", nonce=\"{n}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n"
        );
    }
    m + "Content-Length: 0\r\n\r\n"
}

struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn udp_agent(user: String, server: SocketAddr, until: Instant, c: Arc<Counts>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    let local = sock.local_addr().unwrap();
    let (via, contact) = (format!("UDP {local}"), format!("<sip:{user}@{local}>"));
    let mut cseq = 1u32;
    let mut buf = vec![0u8; 65536];
    let mut ask = async |msg: String| -> Option<String> {
        sock.send(msg.as_bytes()).await.ok()?;
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await.ok()?.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    while Instant::now() < until {
        let r1 = ask(register(&user, &via, &contact, cseq, None)).await;
        cseq += 1;
        let Some(n) = r1.as_deref().and_then(nonce) else {
            c.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let r2 = ask(register(&user, &via, &contact, cseq, Some(&n))).await;
        cseq += 1;
        let counter = if r2.as_deref().map(status) == Some(200) { &c.ok } else { &c.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn ws_agent(user: String, server: SocketAddr, until: Instant, c: Arc<Counts>) {
    let tcp = TcpStream::connect(server).await.unwrap();
    let mut req = format!("ws://{server}/").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.expect("WebSocket handshake");
    let host = format!("{user}bench.invalid");
    let (via, contact) = (format!("WS {host}"), format!("<sip:{user}@{host};transport=ws>"));
    let mut cseq = 1u32;
    let mut ask = async |msg: String| -> Option<String> {
        ws.send(Message::text(msg)).await.ok()?;
        loop {
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await.ok()??.ok()? {
                Message::Text(t) => return Some(t.as_str().to_owned()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    };
    while Instant::now() < until {
        let r1 = ask(register(&user, &via, &contact, cseq, None)).await;
        cseq += 1;
        let Some(n) = r1.as_deref().and_then(nonce) else {
            c.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let r2 = ask(register(&user, &via, &contact, cseq, Some(&n))).await;
        cseq += 1;
        let counter = if r2.as_deref().map(status) == Some(200) { &c.ok } else { &c.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(") ").next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    let secs: u64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let conns: usize = std::env::var("CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::var("REDIAL_BIN").map(std::path::PathBuf::from).unwrap_or_else(|_| root.join("target/release/redial"));
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::from(
        "[sip]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\nrealm = \"redial\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/r.redb\"\n\
         [profiles]\ndir = \"sip-profiles\"\n",
    );
    for i in 0..conns {
        toml += &format!("[[agents]]\nid = \"user{i}\"\npassword = \"user{i}-pw\"\n");
    }
    std::fs::create_dir_all(dir.path().join("sip-profiles")).unwrap();
    std::fs::write(dir.path().join("redial.toml"), toml).unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(&bin)
        .args(["serve", "--config", "redial.toml", "--ready-file", "ready.json"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let started = Instant::now();
    let v: serde_json::Value = loop {
        if let Some(v) = std::fs::read_to_string(&ready).ok().and_then(|t| serde_json::from_str(&t).ok()) {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "redial did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    };
    let addr = |k: &str| -> SocketAddr { v[k].as_str().unwrap().parse().unwrap() };
    let (udp, ws) = (addr("sip"), addr("ws"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("ws_register: {conns} agents, {secs} s per phase, {}", bin.display());
    for phase in ["UDP", "WS", "UDP", "WS"] {
        let c = Arc::new(Counts { ok: AtomicU64::new(0), failed: AtomicU64::new(0) });
        let cpu0 = cpu_ticks(child.id());
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(secs);
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..conns {
                let (user, c) = (format!("user{i}"), c.clone());
                tasks.push(match phase {
                    "UDP" => tokio::spawn(udp_agent(user, udp, until, c)),
                    _ => tokio::spawn(ws_agent(user, ws, until, c)),
                });
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu_s = (cpu_ticks(child.id()) - cpu0) as f64 / 100.0;
        let ok = c.ok.load(Ordering::Relaxed);
        println!(
            "  {phase:>3}: {:>7.0} registrations/s ({ok} ok, {} failed), redial CPU {:.3} s per 1,000 registrations",
            ok as f64 / elapsed,
            c.failed.load(Ordering::Relaxed),
            cpu_s * 1000.0 / ok.max(1) as f64
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
