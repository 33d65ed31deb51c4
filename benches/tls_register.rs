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

#[path = "common/register.rs"]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use common::{nonce, register, status, udp_agent, Counts, Redial, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

fn openssl(args: &[&str]) {
    let ok = Command::new("openssl").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("openssl").success();
    assert!(ok, "openssl {args:?}");
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

async fn tls_agent(user: String, server: SocketAddr, tls: tokio_rustls::TlsConnector, until: Instant, c: Arc<Counts>) {
    let tcp = TcpStream::connect(server).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tls.connect(name, tcp).await.expect("TLS handshake");
    let (via, contact) = (format!("TLS {local}"), format!("<sip:{user}@{local}>"));
    let mut buf = Vec::new();
    let mut cseq = 1u32;
    while Instant::now() < until {
        s.write_all(register(&user, &via, &contact, cseq, None).as_bytes()).await.unwrap();
        cseq += 1;
        let Some(n) = read_msg(&mut s, &mut buf).await.as_deref().and_then(nonce) else {
            c.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        s.write_all(register(&user, &via, &contact, cseq, Some(&n)).as_bytes()).await.unwrap();
        cseq += 1;
        let r2 = read_msg(&mut s, &mut buf).await;
        let counter = if r2.as_deref().map(status) == Some(200) { &c.ok } else { &c.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
    let s = Settings::from_env();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench CA", "-keyout", &p("ca-key.pem"), "-out", &p("ca.pem")]);
    std::fs::write(dir.path().join("ext"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=redial", "-keyout", &p("key.pem"), "-out", &p("csr")]);
    openssl(&["x509", "-req", "-in", &p("csr"), "-CA", &p("ca.pem"), "-CAkey", &p("ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", &p("ext"), "-out", &p("cert.pem")]);
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\nrealm = \"redial\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/r.redb\"\n\
         [profiles]\ndir = \"sip-profiles\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        p("cert.pem"),
        p("key.pem")
    );
    let redial = Redial::start(&s.bin, dir.path(), &config, s.conns);
    let (udp, tls_addr) = (redial.addr("sip"), redial.addr("sip_tls"));
    let connector = tls_connector(&dir.path().join("ca.pem"));
    println!("tls_register: {} agents, {} s per phase, {}", s.conns, s.secs, s.bin.display());
    redial.phases(&s, &["UDP", "TLS", "UDP", "TLS"], |phase, user, until, c| {
        let (phase, connector) = (phase.to_string(), connector.clone());
        async move {
            match phase.as_str() {
                "UDP" => udp_agent(user, udp, until, c).await,
                _ => tls_agent(user, tls_addr, connector, until, c).await,
            }
        }
    });
}
