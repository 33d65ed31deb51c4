//! Agents' REGISTER with digest over TLS beside the same over UDP, against the release
//! binary, in one run: `cargo bench --bench tls_register` (env: `REDIAL_BIN`, default
//! `target/release/redial`; `SECONDS` per phase, default 10; `CONNS` concurrent agents,
//! default 20).
//!
//! Each of `CONNS` agents (its own TLS connection, or its own UDP socket) registers in a
//! loop: REGISTER → 401 → REGISTER with Authorization (MD5, qop=auth) → 200, so one
//! registration is two requests, as in the SIPp figures. Phases alternate UDP, TLS, UDP,
//! TLS so a change in the machine's load hits both. Printed per phase: registrations/s
//! and redial's CPU (user + system, from /proc) per 1,000 registrations. The client runs
//! on one thread of the same machine. SIPp is not used because Debian's build has no TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls;

fn openssl(args: &[&str]) {
    let ok = Command::new("openssl").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("openssl").success();
    assert!(ok, "openssl {args:?}");
}

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

fn register(user: &str, via: &str, local: SocketAddr, cseq: u32, auth: Option<&str>) -> String {
    let uri = "sip:127.0.0.1";
    let mut m = format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {local};branch=z9hG4bK{user}x{cseq};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@redial>;tag=t{user}\r\nTo: <sip:{user}@redial>\r\nCall-ID: {user}-{via}-bench\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\nExpires: 3600\r\n"
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

/// Reads one message (headers only; every answer here has no body) from a stream.
async fn read_msg<S: AsyncReadExt + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let msg = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return Some(msg);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn udp_agent(user: String, server: SocketAddr, until: Instant, c: Arc<Counts>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    let local = sock.local_addr().unwrap();
    let mut cseq = 1u32;
    let mut buf = vec![0u8; 65536];
    let mut ask = async |msg: String| -> Option<String> {
        sock.send(msg.as_bytes()).await.ok()?;
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await.ok()?.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    while Instant::now() < until {
        let r1 = ask(register(&user, "UDP", local, cseq, None)).await;
        cseq += 1;
        let Some(n) = r1.as_deref().and_then(nonce) else {
            c.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let r2 = ask(register(&user, "UDP", local, cseq, Some(&n))).await;
        cseq += 1;
        let counter = if r2.as_deref().map(status) == Some(200) { &c.ok } else { &c.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn tls_agent(user: String, server: SocketAddr, tls: tokio_rustls::TlsConnector, until: Instant, c: Arc<Counts>) {
    let tcp = TcpStream::connect(server).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tls.connect(name, tcp).await.expect("TLS handshake");
    let mut buf = Vec::new();
    let mut cseq = 1u32;
    while Instant::now() < until {
        s.write_all(register(&user, "TLS", local, cseq, None).as_bytes()).await.unwrap();
        cseq += 1;
        let Some(n) = read_msg(&mut s, &mut buf).await.as_deref().and_then(nonce) else {
            c.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        s.write_all(register(&user, "TLS", local, cseq, Some(&n)).as_bytes()).await.unwrap();
        cseq += 1;
        let r2 = read_msg(&mut s, &mut buf).await;
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

fn tls_connector(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for c in pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn main() {
    let secs: u64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let conns: usize = std::env::var("CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::var("REDIAL_BIN").map(std::path::PathBuf::from).unwrap_or_else(|_| root.join("target/release/redial"));
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench CA", "-keyout", &p("ca-key.pem"), "-out", &p("ca.pem")]);
    std::fs::write(dir.path().join("ext"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=redial", "-keyout", &p("key.pem"), "-out", &p("csr")]);
    openssl(&["x509", "-req", "-in", &p("csr"), "-CA", &p("ca.pem"), "-CAkey", &p("ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", &p("ext"), "-out", &p("cert.pem")]);
    let mut toml = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\nrealm = \"redial\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/r.redb\"\n\
         [profiles]\ndir = \"sip-profiles\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        p("cert.pem"),
        p("key.pem")
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
    let (udp, tls_addr) = (addr("sip"), addr("sip_tls"));
    let connector = tls_connector(&dir.path().join("ca.pem"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("tls_register: {conns} agents, {secs} s per phase, {}", bin.display());
    for phase in ["UDP", "TLS", "UDP", "TLS"] {
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
                    _ => tokio::spawn(tls_agent(user, tls_addr, connector.clone(), until, c)),
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
            "  {phase}: {:>7.0} registrations/s ({ok} ok, {} failed), redial CPU {:.3} s per 1,000 registrations",
            ok as f64 / elapsed,
            c.failed.load(Ordering::Relaxed),
            cpu_s * 1000.0 / ok.max(1) as f64
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
