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

#[path = "common/register.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{nonce, register, status, udp_agent, Counts, Redial, Settings};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

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

fn main() {
    let s = Settings::from_env();
    let dir = tempfile::tempdir().unwrap();
    let config = "[sip]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\nrealm = \"redial\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/r.redb\"\n\
         [profiles]\ndir = \"sip-profiles\"\n";
    let redial = Redial::start(&s.bin, dir.path(), config, s.conns);
    let (udp, ws) = (redial.addr("sip"), redial.addr("ws"));
    println!("ws_register: {} agents, {} s per phase, {}", s.conns, s.secs, s.bin.display());
    redial.phases(&s, &["UDP", "WS", "UDP", "WS"], |phase, user, until, c| {
        let phase = phase.to_string();
        async move {
            match phase.as_str() {
                "UDP" => udp_agent(user, udp, until, c).await,
                _ => ws_agent(user, ws, until, c).await,
            }
        }
    });
}
