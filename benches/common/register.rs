//! What the register benches (`tls_register`, `ws_register`) share: the digest client
//! (REGISTER → 401 → REGISTER with Authorization, MD5 with qop=auth), the UDP agent, the
//! release binary started with N agents, and the phase loop that prints registrations/s
//! and redial's CPU per 1,000 registrations. Each bench adds its own transport's agent.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

/// The bench's settings from the environment: `SECONDS` per phase (default 10), `CONNS`
/// concurrent agents (default 20), `REDIAL_BIN` (default `target/release/redial`).
pub struct Settings {
    pub secs: u64,
    pub conns: usize,
    pub bin: PathBuf,
}

impl Settings {
    pub fn from_env() -> Self {
        let secs = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
        let conns = std::env::var("CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin = std::env::var("REDIAL_BIN").map(PathBuf::from).unwrap_or_else(|_| root.join("target/release/redial"));
        Self { secs, conns, bin }
    }
}

pub fn hex_md5(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

pub fn param(header: &str, name: &str) -> Option<String> {
    let i = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = &header[i..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"')?].to_string(),
        None => rest.split([',', '\r']).next()?.trim().to_string(),
    })
}

/// The MD5 challenge's nonce in a 401.
pub fn nonce(resp: &str) -> Option<String> {
    resp.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .find(|l| l.contains("MD5") || !l.contains("algorithm="))
        .and_then(|l| param(l, "nonce"))
}

pub fn status(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A REGISTER for `user`; `via` is the Via's protocol and sent-by (`UDP 127.0.0.1:5060`),
/// `contact` the Contact header's value. The Call-ID names the transport, so each phase's
/// registrations are their own (CSeq restarts with each agent).
pub fn register(user: &str, via: &str, contact: &str, cseq: u32, auth: Option<&str>) -> String {
    let uri = "sip:127.0.0.1";
    let transport = via.split_whitespace().next().unwrap_or(via);
    let mut m = format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK{user}x{cseq};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@redial>;tag=t{user}\r\nTo: <sip:{user}@redial>\r\nCall-ID: {user}-{transport}-bench\r\nCSeq: {cseq} REGISTER\r\n\
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

/// Registrations completed (200) and failed (no 401 with a nonce, or no 200) in one phase.
#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// Registers `user` over its own UDP socket in a loop until `until`; a request unanswered
/// in 2 s counts as failed.
pub async fn udp_agent(user: String, server: SocketAddr, until: Instant, c: Arc<Counts>) {
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

/// User + system CPU ticks of a process, from /proc.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(") ").next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The release binary serving `conns` agents (user0.., password `<user>-pw`) in `dir`.
pub struct Redial {
    child: Child,
    /// The ready file's addresses (`sip`, `sip_tls`, `ws`, ...).
    ready: serde_json::Value,
}

impl Redial {
    /// Starts `bin` with `config` (the settings before the agents) plus `conns` agents, and
    /// waits for its ready file (at most 30 s).
    pub fn start(bin: &Path, dir: &Path, config: &str, conns: usize) -> Self {
        let mut toml = config.to_string();
        for i in 0..conns {
            toml += &format!("[[agents]]\nid = \"user{i}\"\npassword = \"user{i}-pw\"\n");
        }
        std::fs::create_dir_all(dir.join("sip-profiles")).unwrap();
        std::fs::write(dir.join("redial.toml"), toml).unwrap();
        let ready = dir.join("ready.json");
        let child = Command::new(bin)
            .args(["serve", "--config", "redial.toml", "--ready-file", "ready.json"])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let started = Instant::now();
        let ready = loop {
            if let Some(v) = std::fs::read_to_string(&ready).ok().and_then(|t| serde_json::from_str(&t).ok()) {
                break v;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "redial did not get ready");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, ready }
    }

    /// An address from the ready file.
    pub fn addr(&self, key: &str) -> SocketAddr {
        self.ready[key].as_str().unwrap_or_else(|| panic!("no {key} in the ready file")).parse().unwrap()
    }

    /// Runs each phase for `s.secs` with `s.conns` agents made by `agent(phase, user, until,
    /// counts)`, and prints its registrations/s and redial's CPU per 1,000 registrations.
    pub fn phases<F, A>(&self, s: &Settings, phases: &[&str], agent: A)
    where
        F: Future<Output = ()> + Send + 'static,
        A: Fn(&str, String, Instant, Arc<Counts>) -> F,
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for phase in phases {
            let c = Arc::new(Counts::default());
            let cpu0 = cpu_ticks(self.child.id());
            let t0 = Instant::now();
            let until = t0 + Duration::from_secs(s.secs);
            rt.block_on(async {
                let tasks: Vec<_> = (0..s.conns).map(|i| tokio::spawn(agent(phase, format!("user{i}"), until, c.clone()))).collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu_s = (cpu_ticks(self.child.id()) - cpu0) as f64 / 100.0;
            let ok = c.ok.load(Ordering::Relaxed);
            println!(
                "  {phase:>3}: {:>7.0} registrations/s ({ok} ok, {} failed), redial CPU {:.3} s per 1,000 registrations",
                ok as f64 / elapsed,
                c.failed.load(Ordering::Relaxed),
                cpu_s * 1000.0 / ok.max(1) as f64
            );
        }
    }
}

impl Drop for Redial {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
