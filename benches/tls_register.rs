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
#[path = "common/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use common::{nonce, register, status, udp_agent, Counts, Redial, Settings};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tls::read_msg;

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

fn main() {
    let s = Settings::from_env();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls::test_pki(dir.path());
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\nrealm = \"redial\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/r.redb\"\n\
         [profiles]\ndir = \"sip-profiles\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let redial = Redial::start(&s.bin, dir.path(), &config, s.conns);
    let (udp, tls_addr) = (redial.addr("sip"), redial.addr("sip_tls"));
    let connector = tls::tls_connector(&ca);
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
