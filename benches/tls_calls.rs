//! Calls answered as UAS over TLS beside the same over UDP, against the release binary, in
//! one run: `cargo bench --bench tls_calls` (env: `REDIAL_BIN`, default
//! `target/release/redial`; `SECONDS` per phase, default 10; `CONNS` concurrent callers,
//! default 20).
//!
//! Each of `CONNS` carrier callers (its own TLS connection, or its own UDP socket, all from
//! 127.0.0.1, the carrier profile's proxy address) calls a DID in a loop: INVITE with an SDP
//! offer → 100 → 200 with redial's answer → ACK → BYE → 200. No agent is registered, so
//! every call is answered with the callback offer (media opened, prompt started) and
//! ended by the caller at once: a call costs redial one INVITE transaction, one dialog,
//! its media and one BYE. Phases alternate UDP, TLS, UDP, TLS so a change in the machine's
//! load hits both. Printed per phase: calls/s and redial's CPU (user + system, from /proc)
//! per 1,000 calls. A call not answered 200 (or whose BYE is not answered 200) within 5 s
//! counts as failed. SIPp is not used because Debian's build has no TLS.

// The register client in it is not used here, only its server start and phase loop.
#[allow(dead_code)]
#[path = "common/register.rs"]
mod common;
#[path = "common/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{status, Counts, Redial, Settings};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const DID: &str = "+15550100";

/// One caller's transport: a UDP socket or a TLS connection (with what was read past the
/// last message).
enum Conn {
    Udp(UdpSocket),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>, Vec<u8>),
}

impl Conn {
    async fn send(&mut self, msg: &str) -> Option<()> {
        match self {
            Conn::Udp(s) => s.send(msg.as_bytes()).await.ok().map(|_| ()),
            Conn::Tls(s, _) => s.write_all(msg.as_bytes()).await.ok(),
        }
    }

    /// The next message, or `None` after 5 s or when the connection ends.
    async fn recv(&mut self) -> Option<String> {
        let read = async {
            match self {
                Conn::Udp(s) => {
                    let mut buf = vec![0u8; 65536];
                    let n = s.recv(&mut buf).await.ok()?;
                    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
                }
                Conn::Tls(s, buf) => tls::read_msg(s, buf).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read).await.ok()?
    }

    /// The final response to `method` (1xx and anything else skipped).
    async fn final_response(&mut self, method: &str) -> Option<String> {
        loop {
            let m = self.recv().await?;
            let cseq = header(&m, "CSeq").unwrap_or_default();
            if m.starts_with("SIP/2.0 ") && cseq.ends_with(method) && status(&m) >= 200 {
                return Some(m);
            }
        }
    }
}

/// The value of header `name` (first occurrence).
fn header(msg: &str, name: &str) -> Option<String> {
    msg.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
}

/// The URI inside a Contact header's value.
fn contact_uri(v: &str) -> &str {
    v.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(u, _)| u).unwrap_or(v)
}

struct Call<'a> {
    transport: &'a str,
    local: SocketAddr,
    server: SocketAddr,
    call_id: String,
    tag: String,
}

impl Call<'_> {
    fn request(&self, method: &str, uri: &str, cseq: u32, branch: &str, to: &str, extra: &str, body: &str) -> String {
        let (t, l) = (self.transport, self.local);
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {l};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:+15557654321@{l}>;tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.tag,
            self.call_id,
            body.len()
        )
    }

    /// One call from INVITE to the BYE's 200; `true` when both were answered 200.
    async fn run(&self, conn: &mut Conn) -> bool {
        let (l, server) = (self.local, self.server);
        let uri = format!("sip:{DID}@{server}");
        let to = format!("<sip:{DID}@{server}>");
        let sdp = format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n", ip = l.ip());
        let transport = if self.transport == "TLS" { ";transport=tls" } else { "" };
        let contact = format!("Contact: <sip:carrier@{l}{transport}>\r\nContent-Type: application/sdp\r\n");
        let b1 = format!("{}i", self.call_id);
        if conn.send(&self.request("INVITE", &uri, 1, &b1, &to, &contact, &sdp)).await.is_none() {
            return false;
        }
        let Some(answer) = conn.final_response("INVITE").await else { return false };
        let to_tagged = header(&answer, "To").unwrap_or_default();
        if status(&answer) != 200 {
            // A non-2xx final response is acknowledged in its own transaction (RFC 3261 §17.1.1.3).
            let _ = conn.send(&self.request("ACK", &uri, 1, &b1, &to_tagged, "", "")).await;
            return false;
        }
        let target = header(&answer, "Contact").map(|c| contact_uri(&c).to_string()).unwrap_or(uri);
        let ack = self.request("ACK", &target, 1, &format!("{}a", self.call_id), &to_tagged, "", "");
        let bye = self.request("BYE", &target, 2, &format!("{}b", self.call_id), &to_tagged, "", "");
        if conn.send(&ack).await.is_none() || conn.send(&bye).await.is_none() {
            return false;
        }
        conn.final_response("BYE").await.is_some_and(|r| status(&r) == 200)
    }
}

async fn caller(phase: String, user: String, udp: SocketAddr, tls_addr: SocketAddr, connector: tokio_rustls::TlsConnector, until: Instant, c: Arc<Counts>) {
    let (mut conn, local, server) = if phase == "UDP" {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(udp).await.unwrap();
        let local = s.local_addr().unwrap();
        (Conn::Udp(s), local, udp)
    } else {
        let tcp = TcpStream::connect(tls_addr).await.unwrap();
        // As a SIP stack does: a request is not held back waiting for the last one's ACK.
        tcp.set_nodelay(true).unwrap();
        let local = tcp.local_addr().unwrap();
        let name = pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let s = connector.connect(name, tcp).await.expect("TLS handshake");
        (Conn::Tls(Box::new(s), Vec::new()), local, tls_addr)
    };
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let call = Call { transport: &phase, local, server, call_id: format!("{user}-{phase}-{n}"), tag: format!("t{user}{n}") };
        let counter = if call.run(&mut conn).await { &c.ok } else { &c.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let s = Settings::from_env();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls::test_pki(dir.path());
    std::fs::create_dir_all(dir.path().join("sip-profiles")).unwrap();
    // The carrier's address is 127.0.0.1 (any port): both callers' sources match it.
    std::fs::write(
        dir.path().join("sip-profiles/carrier.toml"),
        format!("proxy = \"sip:127.0.0.1:9\"\nregister = false\noptions_ping = \"0\"\ndids = [\"{DID}\"]\ninbound_queue = \"q\"\n"),
    )
    .unwrap();
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\nrealm = \"redial\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/r.redb\"\n\
         [profiles]\ndir = \"sip-profiles\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[queues]]\nname = \"q\"\nprofile = \"carrier\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\n",
        cert.display(),
        key.display()
    );
    let redial = Redial::start(&s.bin, dir.path(), &config, 0);
    let (udp, tls_addr) = (redial.addr("sip"), redial.addr("sip_tls"));
    let connector = tls::tls_connector(&ca);
    println!("tls_calls: {} callers, {} s per phase, {}", s.conns, s.secs, s.bin.display());
    redial.phases_of(&s, &["UDP", "TLS", "UDP", "TLS"], "calls", |phase, user, until, c| caller(phase.to_string(), user, udp, tls_addr, connector.clone(), until, c));
}
