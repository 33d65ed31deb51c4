//! SIP over WebSocket through the whole endpoint, in-process on loopback: a WebSocket client
//! registers an agent with digest, is called down its own connection, and when it closes its
//! binding ends at once and a request still aimed at it fails as a transport error (503)
//! rather than waiting for Timer B (408).

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::SeedableRng;
use redial::config::Config;
use redial::sip::auth::{set_auth_headers, DigestClient};
use redial::sip::calls::{DialRequest, LegEvent};
use redial::sip::endpoint::{Endpoint, EndpointHandle};
use redial::sip::{Peer, Transport};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Generous bound on things that happen at once on loopback; never a measure of speed.
const WAIT: Duration = Duration::from_secs(20);

async fn start(dir: &std::path::Path) -> (EndpointHandle, watch::Sender<bool>) {
    std::fs::create_dir_all(dir.join("sip-profiles")).unwrap();
    std::fs::write(
        dir.join("redial.toml"),
        "[sip]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nqueues = []\n",
    )
    .unwrap();
    let cfg = Config::load(Some(&dir.join("redial.toml"))).unwrap();
    let (stop, rx) = watch::channel(false);
    (Endpoint::start(&cfg, rx).await.unwrap(), stop)
}

fn register(cseq: u32) -> rsip::Request {
    let text = format!(
        "REGISTER sip:redial SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKreg{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@redial>;tag=a1\r\nTo: <sip:alice@redial>\r\nCall-ID: reg1@x\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:k3j2@df7jal23ls0d.invalid;transport=ws>;expires=600\r\nContent-Length: 0\r\n\r\n"
    );
    match rsip::SipMessage::try_from(text.as_str()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

async fn next_sip(ws: &mut WebSocketStream<TcpStream>) -> rsip::SipMessage {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("valid");
        if let Message::Text(t) = m {
            return rsip::SipMessage::try_from(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_agent_registers_is_called_on_its_connection_and_leaves_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ep, _stop) = start(dir.path()).await;
    let ws_addr = ep.ws_addr.expect("ws listener on");
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut req = format!("ws://{ws_addr}/").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();

    // REGISTER, 401, REGISTER with credentials, 200.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut cli = DigestClient::new("alice", "alice-pw");
    ws.send(Message::text(register(1).to_string())).await.unwrap();
    let rsip::SipMessage::Response(challenge) = next_sip(&mut ws).await else { panic!("expected a response") };
    assert_eq!(challenge.status_code.code(), 401);
    let mut again = register(2);
    let auth = cli.respond(&challenge, &again, &mut rng).unwrap();
    set_auth_headers(&mut again, auth);
    ws.send(Message::text(again.to_string())).await.unwrap();
    let rsip::SipMessage::Response(ok) = next_sip(&mut ws).await else { panic!("expected a response") };
    assert_eq!(ok.status_code.code(), 200);
    let me = Peer { addr: local, transport: Transport::Ws };
    let binding = ep.agents.read().unwrap().get("alice").cloned().expect("alice bound");
    assert_eq!(binding[0].source, me, "the binding names the connection");

    // A call to alice comes down the same connection, with a WS Via.
    let dial = |to: Peer| DialRequest {
        request_uri: "sip:k3j2@df7jal23ls0d.invalid;transport=ws".into(),
        to: "<sip:alice@redial>".into(),
        from_user: "redial".into(),
        from_host: "redial".into(),
        destination: to,
        headers: vec![],
        sdp: Vec::new(),
        credentials: None,
    };
    let leg = ep.calls.dial(dial(me));
    let rsip::SipMessage::Request(invite) = next_sip(&mut ws).await else { panic!("expected the INVITE") };
    assert_eq!(invite.method, rsip::Method::Invite);
    assert!(invite.to_string().contains("Via: SIP/2.0/WS "), "{invite}");

    // The browser goes: the binding ends at once, and the CANCEL that the hang-up sends
    // cannot go anywhere, so the INVITE fails as a transport error.
    drop(ws);
    let mut changes = ep.agent_changes.clone();
    while ep.agents.read().unwrap().contains_key("alice") {
        tokio::time::timeout(WAIT, changes.changed()).await.expect("binding outlived its connection").unwrap();
    }
    let mut second = ep.calls.dial(dial(me));
    let ev = tokio::time::timeout(WAIT, second.events.recv()).await.expect("an event in time").expect("open");
    assert_eq!(ev, LegEvent::Failed { status: 503 }, "a transport error, not Timer B's 408");
    leg.hangup();
}
