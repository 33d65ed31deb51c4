//! TCP: the listener, one task per connection, outgoing connections reused per destination.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::framer::{Frame, FrameError, StreamFramer};
use super::{accept_bytes, Inner};
use crate::config::Transport;
use crate::sip::codec;
use crate::sip::Peer;

/// How long an outgoing connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections with no traffic for this long are closed (RFC 5626 keep-alives reset it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes queued per connection before sends are dropped (a stuck peer must not grow memory).
pub(super) const WRITE_QUEUE: usize = 1024;

pub(super) struct ConnHandle {
    pub(super) id: u64,
    pub(super) tx: mpsc::Sender<Vec<u8>>,
    pub(super) task: AbortHandle,
}

pub(super) async fn accept(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
                let task = tokio::spawn(run(inner.clone(), stream, remote, Transport::Tcp, id, rx, tx.clone()));
                register(&inner, Transport::Tcp, remote, ConnHandle { id, tx, task: task.abort_handle() });
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub(super) fn register(inner: &Inner, transport: Transport, remote: SocketAddr, handle: ConnHandle) {
    let mut map = inner.conns(transport).lock().expect("conns lock");
    // A newer connection from the same address replaces the old one for sending.
    map.insert(remote, handle);
}

/// How a stream transport opens a connection and sends its first bytes.
pub(super) type Connect = fn(&Arc<Inner>, SocketAddr, Vec<u8>);

/// Queues bytes for `to` over TCP or TLS, connecting first (with `connect`,
/// the transport's own) when no connection exists.
pub(super) fn send(inner: &Arc<Inner>, transport: Transport, to: SocketAddr, bytes: Vec<u8>, connect: Connect) {
    let mut map = inner.conns(transport).lock().expect("conns lock");
    if let Some(c) = map.get(&to) {
        match c.tx.try_send(bytes) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%to, %transport, "write queue full; message dropped");
                return;
            }
            Err(mpsc::error::TrySendError::Closed(b)) => {
                map.remove(&to);
                drop(map);
                return connect(inner, to, b);
            }
        }
    }
    drop(map);
    connect(inner, to, bytes);
}

pub(super) fn connect_and_send(inner: &Arc<Inner>, to: SocketAddr, bytes: Vec<u8>) {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let _ = tx.try_send(bytes);
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let inner2 = inner.clone();
    let tx2 = tx.clone();
    let task = tokio::spawn(async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                tracing::debug!(%to, "tcp connected");
                run(inner2, stream, to, Transport::Tcp, id, rx, tx2).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(%to, error = %e, "tcp connect failed");
                unregister(&inner2, Transport::Tcp, to, id);
            }
            Err(_) => {
                tracing::warn!(%to, "tcp connect timed out");
                unregister(&inner2, Transport::Tcp, to, id);
            }
        }
    });
    register(inner, Transport::Tcp, to, ConnHandle { id, tx, task: task.abort_handle() });
}

pub(super) fn unregister(inner: &Inner, transport: Transport, remote: SocketAddr, id: u64) {
    let mut map = inner.conns(transport).lock().expect("conns lock");
    if map.get(&remote).is_some_and(|c| c.id == id) {
        map.remove(&remote);
    }
}

/// Reads and writes one connection (TCP, or TLS over TCP) until either side closes it.
pub(super) async fn run<S: AsyncRead + AsyncWrite + Send + 'static>(
    inner: Arc<Inner>,
    stream: S,
    remote: SocketAddr,
    transport: Transport,
    id: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let from = Peer { addr: remote, transport };
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {
                    let _ = tx.try_send(b"\r\n".to_vec());
                }
                Ok(Some(Frame::Message(bytes))) => {
                    let reply_tx = tx.clone();
                    let incoming = accept_bytes(&inner, &bytes, from, |b| {
                        let _ = reply_tx.try_send(b);
                    });
                    if let Some(m) = incoming {
                        if inner.incoming.send(m).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                Err(e) => {
                    inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %remote, %transport, error = %e, "stream framing lost; closing");
                    let reply = match e {
                        FrameError::TooLarge { head, .. } => codec::decode::too_large_reply(&head),
                        // The decoder refuses the same Content-Length, with a 400 when addressable.
                        FrameError::BadContentLength { head, .. } => codec::decode(&head).err().and_then(|e| e.reply),
                        FrameError::HeadTooLarge => None,
                    };
                    if let Some(r) = reply {
                        let _ = tx.try_send(codec::encode(&rsip::SipMessage::Response(*r)));
                    }
                    break 'conn;
                }
            }
        }
    }
    unregister(&inner, transport, remote, id);
    drop(tx);
    // Let queued replies (e.g. a 513) go out before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}
