//! The WebSocket transport against a real WebSocket client (tokio-tungstenite) on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::MAX_PER_SOURCE;
use crate::config::Transport;
use crate::sip::transport::{Incoming, Transports};
use crate::sip::Peer;

type Client = WebSocketStream<TcpStream>;

/// Generous bound on waits for something that happens at once on loopback; never a
/// measure of speed.
const WAIT: Duration = Duration::from_secs(20);

async fn start() -> (Transports, tokio::sync::mpsc::Receiver<Incoming>, SocketAddr) {
    let (t, rx) = Transports::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ws = t.listen_ws("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(t.ws_local_addr(), Some(ws));
    (t, rx, ws)
}

async fn connect(ws: SocketAddr, protocol: Option<&str>) -> Result<(Client, SocketAddr), tokio_tungstenite::tungstenite::Error> {
    let tcp = TcpStream::connect(ws).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut req = format!("ws://{ws}/").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut().insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let (client, resp) = tokio_tungstenite::client_async(req, tcp).await?;
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "sip");
    Ok((client, local))
}

fn options(branch: &str) -> String {
    format!(
        "OPTIONS sip:redial@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@redial>;tag=a1\r\nTo: <sip:redial@127.0.0.1>\r\nCall-ID: {branch}@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn next_incoming(rx: &mut tokio::sync::mpsc::Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a message in time").expect("channel open")
}

/// The next data message the client gets (pings are answered by the library).
async fn next_text(c: &mut Client) -> Message {
    loop {
        let m = tokio::time::timeout(WAIT, c.next()).await.expect("a message in time").expect("open").expect("valid");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

#[tokio::test]
async fn one_sip_message_per_websocket_message_both_ways() {
    let (t, mut rx, ws) = start().await;
    let (mut c, local) = connect(ws, Some("sip")).await.unwrap();
    c.send(Message::text(options("a1"))).await.unwrap();
    c.send(Message::binary(options("a2").into_bytes())).await.unwrap();
    let from = Peer { addr: local, transport: Transport::Ws };
    for branch in ["a1", "a2"] {
        let m = next_incoming(&mut rx).await;
        assert_eq!(m.from, from);
        let text = m.msg.to_string();
        assert!(text.contains(&format!("branch=z9hG4bK{branch}")), "{text}");
        // §18.2.1: the .invalid sent-by gets the real source in `received`.
        assert!(text.contains("received=127.0.0.1"), "{text}");
    }
    // The reply goes down the same connection, as one text message.
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKa1\r\nFrom: <sip:alice@redial>;tag=a1\r\n\
                To: <sip:redial@127.0.0.1>;tag=r\r\nCall-ID: a1@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    t.send_bytes(from, resp.as_bytes().to_vec()).unwrap();
    match next_text(&mut c).await {
        Message::Text(s) => assert_eq!(s.as_str(), resp),
        other => panic!("expected text, got {other:?}"),
    }
    assert!(t.is_connected(from));
    t.close();
}

#[tokio::test]
async fn other_subprotocols_and_paths_are_refused() {
    let (t, _rx, ws) = start().await;
    for p in [None, Some("chat"), Some("SIP")] {
        match connect(ws, p).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400, "{p:?}"),
            other => panic!("{p:?}: expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
    let tcp = TcpStream::connect(ws).await.unwrap();
    let mut req = format!("ws://{ws}/other").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    match tokio_tungstenite::client_async(req, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
    assert!(t.stats().rejected.load(std::sync::atomic::Ordering::Relaxed) >= 4);
    t.close();
}

#[tokio::test]
async fn garbage_is_dropped_and_the_connection_goes_on() {
    let (t, mut rx, ws) = start().await;
    let (mut c, _) = connect(ws, Some("sip")).await.unwrap();
    c.send(Message::text("this is not SIP\r\n\r\n")).await.unwrap();
    c.send(Message::text(options("ok"))).await.unwrap();
    let m = next_incoming(&mut rx).await;
    assert!(m.msg.to_string().contains("z9hG4bKok"));
    t.close();
}

#[tokio::test]
async fn oversized_message_closes_with_1009_and_reports_the_close() {
    let (t, _rx, ws) = start().await;
    let mut closed = t.take_closed().expect("first take");
    assert!(t.take_closed().is_none(), "given out once");
    let (mut c, local) = connect(ws, Some("sip")).await.unwrap();
    let big = "x".repeat(crate::sip::codec::MAX_MESSAGE_SIZE + 1);
    // The server may close before the whole frame is written.
    let _ = c.send(Message::text(big)).await;
    let peer = tokio::time::timeout(WAIT, closed.recv()).await.expect("close reported").unwrap();
    assert_eq!(peer, Peer { addr: local, transport: Transport::Ws });
    assert!(!t.is_connected(peer));
    assert!(t.send_bytes(peer, b"x".to_vec()).is_err(), "no connection, no send");
    // What the client saw last is the 1009 close (or a reset when it was still writing).
    if let Ok(Some(Ok(Message::Close(Some(f))))) = tokio::time::timeout(WAIT, c.next()).await {
        assert_eq!(f.code, CloseCode::Size);
    }
    t.close();
}

#[tokio::test]
async fn client_close_is_reported_at_once() {
    let (t, _rx, ws) = start().await;
    let mut closed = t.take_closed().unwrap();
    let (mut c, local) = connect(ws, Some("sip")).await.unwrap();
    let peer = Peer { addr: local, transport: Transport::Ws };
    assert!(t.is_connected(peer));
    c.close(None).await.unwrap();
    let got = tokio::time::timeout(WAIT, closed.recv()).await.expect("close reported").unwrap();
    assert_eq!(got, peer);
    t.close();
}

#[tokio::test]
async fn connections_per_source_are_capped() {
    let (t, _rx, ws) = start().await;
    let mut clients = Vec::new();
    for _ in 0..MAX_PER_SOURCE {
        clients.push(connect(ws, Some("sip")).await.unwrap());
    }
    // One more from the same address is closed before any handshake.
    let tcp = TcpStream::connect(ws).await.unwrap();
    let mut req = format!("ws://{ws}/").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    assert!(tokio_tungstenite::client_async(req, tcp).await.is_err());
    // A closed connection frees its slot.
    let mut closed = t.take_closed().unwrap();
    let (mut first, _) = clients.remove(0);
    first.close(None).await.unwrap();
    tokio::time::timeout(WAIT, closed.recv()).await.expect("close reported").unwrap();
    connect(ws, Some("sip")).await.unwrap();
    t.close();
}

#[tokio::test(start_paused = true)]
async fn server_pings_and_drops_a_silent_peer() {
    let (t, _rx, ws) = start().await;
    let mut closed = t.take_closed().unwrap();
    let (c, local) = connect(ws, Some("sip")).await.unwrap();
    // A peer that never reads never answers the pings: it is dropped after IDLE_TIMEOUT
    // (virtual time; the runtime's clock jumps to the next timer when idle).
    let (_keep, mut read) = c.split();
    let got = tokio::time::timeout(super::IDLE_TIMEOUT * 2, closed.recv()).await.expect("idle close").unwrap();
    assert_eq!(got.addr, local);
    // What reached the client before the close: pings.
    let mut pings = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(1), read.next()).await {
        if matches!(m, Message::Ping(_)) {
            pings += 1;
        }
    }
    assert!(pings >= 2, "pings seen: {pings}");
    t.close();
}
