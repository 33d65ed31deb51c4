//! SIP over WebSocket (RFC 7118) for browser agents, on `sip.ws_listen`.
//!
//! - [`policy`]: sans-IO rules (subprotocol `sip` and path `/` required, connections
//!   per source capped, one SIP message per WebSocket message).
//! - This file: the listener and one task per connection. A connection is known by its
//!   remote address (the browser's ephemeral port), so a registration made over it
//!   (`Peer { transport: Ws, addr }`) names it: requests to that agent go down the same
//!   connection, as the browser cannot accept connections (RFC 7118 §5.3). When a
//!   connection closes, its peer is reported on [`super::Transports::take_closed`] so the
//!   registrar ends its bindings at once.
//!
//! The WebSocket layer (handshake, framing, masking, ping answers, size caps) is
//! tokio-tungstenite's; limits: [`MAX_PER_SOURCE`] connections per source IP, messages
//! and frames up to `codec::MAX_MESSAGE_SIZE` (larger ones close the connection with
//! 1009), a ping every [`PING_INTERVAL`], and a connection silent for [`IDLE_TIMEOUT`]
//! (no message, no pong) is closed.

pub mod policy;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tracing::Instrument;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use self::policy::{Received, SourceLimit};
use super::{accept_bytes, Inner, TransportError};
use crate::config::Transport;
use crate::sip::codec;
use crate::sip::Peer;

/// Open connections allowed per source IP (a browser needs one; a NATed office a few dozen).
pub const MAX_PER_SOURCE: usize = 64;
/// How often the server pings each connection (keeps NAT bindings and proxies open).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A connection from which nothing (not even a pong) arrived for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(95);
/// Time allowed from TCP accept to the end of the WebSocket handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued per connection before sends are dropped (a stuck browser must not grow memory).
const WRITE_QUEUE: usize = 1024;

/// The WebSocket side of the transports: live connections and who is told of closes.
pub(super) struct WsState {
    conns: Mutex<HashMap<SocketAddr, ConnHandle>>,
    limit: Mutex<SourceLimit>,
    local: Mutex<Option<SocketAddr>>,
    closed_tx: mpsc::UnboundedSender<Peer>,
    closed_rx: Mutex<Option<mpsc::UnboundedReceiver<Peer>>>,
}

impl Default for WsState {
    fn default() -> Self {
        let (closed_tx, closed_rx) = mpsc::unbounded_channel();
        Self {
            conns: Mutex::new(HashMap::new()),
            limit: Mutex::new(SourceLimit::new(MAX_PER_SOURCE)),
            local: Mutex::new(None),
            closed_tx,
            closed_rx: Mutex::new(Some(closed_rx)),
        }
    }
}

impl WsState {
    pub(super) fn local(&self) -> Option<SocketAddr> {
        *self.local.lock().expect("ws local lock")
    }

    pub(super) fn take_closed(&self) -> Option<mpsc::UnboundedReceiver<Peer>> {
        self.closed_rx.lock().expect("ws closed lock").take()
    }

    pub(super) fn is_open(&self, addr: SocketAddr) -> bool {
        self.conns.lock().expect("ws conns lock").contains_key(&addr)
    }

    pub(super) fn close_all(&self) {
        for (_, c) in self.conns.lock().expect("ws conns lock").drain() {
            c.task.abort();
        }
    }
}

struct ConnHandle {
    tx: mpsc::Sender<Vec<u8>>,
    task: AbortHandle,
}

/// Binds the listener; returns it with its bound address.
pub(super) async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), TransportError> {
    let err = |source| TransportError::Bind { transport: Transport::Ws, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

pub(super) fn set_local(inner: &Inner, local: SocketAddr) {
    *inner.ws.local.lock().expect("ws local lock") = Some(local);
}

/// Accepts connections on a `ws_listen` (or, `secure`, `wss_listen`) listener.
pub(super) async fn accept(inner: Arc<Inner>, listener: TcpListener, secure: bool) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if !inner.ws.limit.lock().expect("ws limit lock").acquire(remote.ip()) {
                    inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %remote, max = MAX_PER_SOURCE, "websocket connection refused: too many from this source");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                let inner2 = inner.clone();
                // The handle is registered before the task can finish and unregister it.
                let mut conns = inner.ws.conns.lock().expect("ws conns lock");
                let span = tracing::debug_span!("sip_ws", peer = %remote);
                let task = tokio::spawn(async move {
                    if secure {
                        // TLS first (RFC 7118 §4: `wss` is WebSocket over TLS), with the
                        // certificate as last loaded (SIGHUP reloads it).
                        match inner2.tls.get().and_then(|t| t.server()) {
                            Some(server) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_rustls::TlsAcceptor::from(server).accept(stream)).await {
                                Ok(Ok(tls)) => run(&inner2, tls, remote, rx).instrument(span).await,
                                Ok(Err(e)) => tracing::info!(peer = %remote, error = %e, "secure websocket: TLS handshake failed"),
                                Err(_) => tracing::info!(peer = %remote, "secure websocket: TLS handshake timed out"),
                            },
                            None => tracing::warn!(peer = %remote, "secure websocket refused: no server certificate"),
                        }
                    } else {
                        run(&inner2, stream, remote, rx).instrument(span).await;
                    }
                    inner2.ws.conns.lock().expect("ws conns lock").remove(&remote);
                    inner2.ws.limit.lock().expect("ws limit lock").release(remote.ip());
                    let _ = inner2.ws.closed_tx.send(Peer { addr: remote, transport: Transport::Ws });
                });
                conns.insert(remote, ConnHandle { tx, task: task.abort_handle() });
            }
            Err(e) => {
                tracing::warn!(error = %e, "websocket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Queues `bytes` on the connection to `to`. There is no connecting out: a browser is
/// only reachable on the connection it opened.
pub(super) fn send(inner: &Inner, to: SocketAddr, bytes: Vec<u8>) -> Result<(), TransportError> {
    let conns = inner.ws.conns.lock().expect("ws conns lock");
    let not_connected = || TransportError::Send {
        transport: Transport::Ws,
        to,
        source: std::io::Error::new(std::io::ErrorKind::NotConnected, "websocket connection closed"),
    };
    let c = conns.get(&to).ok_or_else(not_connected)?;
    match c.tx.try_send(bytes) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(%to, "websocket write queue full; message dropped");
            Ok(())
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(not_connected()),
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(codec::MAX_MESSAGE_SIZE)).max_frame_size(Some(codec::MAX_MESSAGE_SIZE))
}

/// The handshake callback: RFC 7118 §4.1 subprotocol negotiation. The signature is
/// tungstenite's `Callback`, hence its large error type.
#[allow(clippy::result_large_err)]
fn upgrade(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let protocols = req.headers().get_all("sec-websocket-protocol").iter().filter_map(|v| v.to_str().ok());
    match policy::check_upgrade(req.uri().path(), protocols) {
        Ok(()) => {
            resp.headers_mut().insert("sec-websocket-protocol", policy::SUBPROTOCOL.parse().expect("token"));
            Ok(resp)
        }
        Err(refusal) => {
            let mut e = ErrorResponse::new(Some(refusal.to_string()));
            *e.status_mut() = tungstenite::http::StatusCode::from_u16(refusal.status()).expect("status");
            Err(e)
        }
    }
}

/// Runs one connection: handshake, then SIP messages both ways and pings, until either
/// side closes, the peer falls silent, or it breaks a limit.
async fn run<S>(inner: &Arc<Inner>, stream: S, remote: SocketAddr, mut rx: mpsc::Receiver<Vec<u8>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, upgrade, Some(ws_config()));
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(peer = %remote, error = %e, "websocket handshake refused");
            return;
        }
        Err(_) => {
            inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(peer = %remote, "websocket handshake timed out");
            return;
        }
    };
    tracing::debug!(peer = %remote, "websocket connected");
    let (mut sink, mut stream) = ws.split();
    let from = Peer { addr: remote, transport: Transport::Ws };
    // Replies the decoder makes itself (400 to a malformed request) go out on this connection.
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = tokio::time::Instant::now();
    let reason: String = loop {
        tokio::select! {
            msg = stream.next() => {
                let msg = match msg {
                    None => break "closed by peer".into(),
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        let frame = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break format!("limit: {e}");
                    }
                    Some(Err(e)) => {
                        inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        break format!("websocket error: {e}");
                    }
                    Some(Ok(m)) => m,
                };
                last_heard = tokio::time::Instant::now();
                match policy::classify(&msg) {
                    Received::Sip(bytes) => {
                        let tx = reply_tx.clone();
                        let incoming = accept_bytes(inner, bytes, from, |b| {
                            let _ = tx.send(b);
                        });
                        if let Some(m) = incoming {
                            if inner.incoming.send(m).await.is_err() {
                                break "endpoint stopped".into();
                            }
                        }
                    }
                    Received::KeepAlive => {}
                    Received::Close => break "closed by peer".into(),
                }
            }
            Some(bytes) = reply_rx.recv() => {
                if let Err(e) = sink.send(policy::outgoing(bytes)).await {
                    break format!("write failed: {e}");
                }
            }
            out = rx.recv() => {
                let Some(bytes) = out else { break "transport closed".into() };
                if let Err(e) = sink.send(policy::outgoing(bytes)).await {
                    break format!("write failed: {e}");
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= IDLE_TIMEOUT {
                    break "idle: no message or pong".into();
                }
                if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                    break format!("write failed: {e}");
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    tracing::info!(peer = %remote, reason = %reason, "websocket connection closed");
}
