//! UDP and TCP transports on one address (RFC 3261 §18), and SIP over WebSocket
//! (RFC 7118) on its own address when `sip.ws_listen` is set.
//!
//! - [`framer`]: sans-IO Content-Length framing of TCP streams.
//! - `udp`: one socket, a few receive tasks sharing it.
//! - `tcp`: one listener, a task per connection (not per call), outgoing connections
//!   reused per destination, responses sent back on the connection of the request (§18.2.2).
//! - [`ws`]: browser agents' WebSocket connections; requests to them reuse the connection.
//! - [`tls`]: TLS over TCP on `sip.tls_listen` and toward carriers (§26.2), started with
//!   [`Transports::enable_tls`].
//!
//! Receive tasks decode (codec::decode) and stamp the top Via with `received`/`rport`
//! (§18.2.1, RFC 3581) before handing messages on, so the endpoint only sees messages
//! that parsed; refused requests are answered (400/483/501/513) or dropped right here.

pub mod framer;
mod shed;
mod tcp;
pub mod tls;
mod udp;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rsip::SipMessage;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::Transport;
use crate::sip::codec::{self, DecodeError};
use crate::sip::overload::Gate;
use crate::sip::Peer;

/// A decoded message and where it came from.
#[derive(Debug)]
pub struct Incoming {
    pub msg: SipMessage,
    pub from: Peer,
    /// When it was read: the endpoint measures how long messages wait for it.
    pub received: std::time::Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind {transport} on {addr}: {source}")]
    Bind { transport: Transport, addr: SocketAddr, source: std::io::Error },
    #[error("sending to {to} over {transport}: {source}")]
    Send { transport: Transport, to: SocketAddr, source: std::io::Error },
    #[error("message of {len} bytes exceeds the cap")]
    TooLarge { len: usize },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("TLS is already enabled")]
    TlsTwice,
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub received: AtomicU64,
    pub rejected: AtomicU64,
    pub sent: AtomicU64,
}

/// Handle to the transports; cheap to clone.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

struct Inner {
    local: SocketAddr,
    udp: Arc<UdpSocket>,
    /// Writers of live TCP connections by remote address (both accepted and outgoing).
    tcp: Mutex<HashMap<SocketAddr, tcp::ConnHandle>>,
    /// The same for TLS connections.
    tls_conns: Mutex<HashMap<SocketAddr, tcp::ConnHandle>>,
    /// Set once by [`Transports::enable_tls`].
    tls: OnceLock<tls::TlsState>,
    next_conn: AtomicU64,
    incoming: mpsc::Sender<Incoming>,
    tasks: Mutex<Vec<AbortHandle>>,
    stats: TransportStats,
    ws: ws::WsState,
    /// Set once by [`Transports::set_gate`]: new INVITEs over UDP refused on arrival.
    gate: OnceLock<Arc<Gate>>,
    /// What the gate decided for each recent new INVITE, for its retransmissions.
    decisions: shed::Decisions,
}

impl Inner {
    /// The open connections of a stream transport.
    fn conns(&self, transport: Transport) -> &Mutex<HashMap<SocketAddr, tcp::ConnHandle>> {
        match transport {
            Transport::Tls => &self.tls_conns,
            _ => &self.tcp,
        }
    }
}

/// How many tasks share the UDP socket: decoding runs there, so use the cores.
fn udp_receivers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4)
}

impl Transports {
    /// Binds UDP and TCP on `addr` (port 0 picks one free port for both, retried until
    /// TCP can have the port UDP got) and starts the receive tasks.
    pub async fn bind(addr: SocketAddr) -> Result<(Self, mpsc::Receiver<Incoming>), TransportError> {
        let (udp, listener) = bind_pair(addr).await?;
        let local = udp.local_addr().map_err(|source| TransportError::Bind { transport: Transport::Udp, addr, source })?;
        let (tx, rx) = mpsc::channel(8192);
        let inner = Arc::new(Inner {
            local,
            udp: Arc::new(udp),
            tcp: Mutex::new(HashMap::new()),
            tls_conns: Mutex::new(HashMap::new()),
            tls: OnceLock::new(),
            next_conn: AtomicU64::new(1),
            incoming: tx,
            tasks: Mutex::new(Vec::new()),
            stats: TransportStats::default(),
            ws: ws::WsState::default(),
            gate: OnceLock::new(),
            decisions: shed::Decisions::new(),
        });
        let mut handles = Vec::new();
        for _ in 0..udp_receivers() {
            handles.push(tokio::spawn(udp::receive(inner.clone())).abort_handle());
        }
        handles.push(tokio::spawn(tcp::accept(inner.clone(), listener)).abort_handle());
        inner.tasks.lock().expect("tasks lock").extend(handles);
        tracing::info!(%local, "SIP transports listening (udp, tcp)");
        Ok((Self { inner }, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// From now on the UDP receive tasks answer a new INVITE 503 themselves while `gate`
    /// says so, and absorb the ACKs of those answers. Set once; later calls are ignored.
    pub fn set_gate(&self, gate: Arc<Gate>) {
        let _ = self.inner.gate.set(gate);
    }

    /// Starts SIP over WebSocket on `addr` (port 0 picks one); returns the bound address.
    pub async fn listen_ws(&self, addr: SocketAddr) -> Result<SocketAddr, TransportError> {
        let (listener, local) = ws::bind(addr).await?;
        ws::set_local(&self.inner, local);
        let task = tokio::spawn(ws::accept(self.inner.clone(), listener, false)).abort_handle();
        self.inner.tasks.lock().expect("tasks lock").push(task);
        Ok(local)
    }

    /// Starts SIP over secure WebSocket (TLS with `[tls]`'s certificate, which SIGHUP
    /// reloads) on `addr`; returns the bound address. Needs [`Transports::enable_tls`]
    /// with a server certificate first.
    pub async fn listen_wss(&self, addr: SocketAddr) -> Result<SocketAddr, TransportError> {
        if self.inner.tls.get().and_then(|t| t.server()).is_none() {
            return Err(TransportError::Tls(tls::TlsError::File { key: "tls.cert", path: String::new(), message: "sip.wss_listen needs a server certificate".into() }));
        }
        let (listener, local) = ws::bind(addr).await?;
        let task = tokio::spawn(ws::accept(self.inner.clone(), listener, true)).abort_handle();
        self.inner.tasks.lock().expect("tasks lock").push(task);
        tracing::info!(%local, "SIP over secure WebSocket listening");
        Ok(local)
    }

    /// The WebSocket listener's address, when one was started.
    pub fn ws_local_addr(&self) -> Option<SocketAddr> {
        self.inner.ws.local()
    }

    /// Peers whose WebSocket connection closed, one message each (for the registrar,
    /// whose bindings over a connection end with it). Given out once.
    pub fn take_closed(&self) -> Option<mpsc::UnboundedReceiver<Peer>> {
        self.inner.ws.take_closed()
    }

    /// Whether the connection to a connection-oriented peer (TCP, WebSocket) is open.
    pub fn is_connected(&self, peer: Peer) -> bool {
        match peer.transport {
            Transport::Udp => false,
            Transport::Tcp => self.has_tcp_connection(peer.addr),
            Transport::Ws => self.inner.ws.is_open(peer.addr),
            Transport::Tls => self.inner.tls_conns.lock().expect("conns lock").contains_key(&peer.addr),
        }
    }

    /// Enables TLS: connections to carriers with `configs.client`, and a listener on
    /// `listen` when given (it needs `configs.server`). Returns the bound listener address.
    pub async fn enable_tls(&self, configs: tls::TlsConfigs, listen: Option<SocketAddr>) -> Result<Option<SocketAddr>, TransportError> {
        let listener = match listen {
            Some(addr) => {
                if configs.server.is_none() {
                    return Err(TransportError::Tls(tls::TlsError::File {
                        key: "tls.cert",
                        path: String::new(),
                        message: "sip.tls_listen needs a server certificate".into(),
                    }));
                }
                let l = TcpListener::bind(addr).await.map_err(|source| TransportError::Bind { transport: Transport::Tls, addr, source })?;
                Some(l)
            }
            None => None,
        };
        let local = match &listener {
            Some(l) => Some(l.local_addr().map_err(|source| TransportError::Bind { transport: Transport::Tls, addr: self.inner.local, source })?),
            None => None,
        };
        self.inner.tls.set(tls::TlsState::new(configs, local)).map_err(|_| TransportError::TlsTwice)?;
        if let Some(l) = listener {
            let h = tokio::spawn(tls::accept(self.inner.clone(), l)).abort_handle();
            self.inner.tasks.lock().expect("tasks lock").push(h);
            tracing::info!(local = ?local, "SIP TLS listening");
        }
        Ok(local)
    }

    /// The TLS listener's address, when listening.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.inner.tls.get().and_then(|t| t.local)
    }

    /// Verifies the certificate of the TLS peer at `addr` against `host` rather than
    /// its IP address (a carrier's proxy name).
    pub fn set_tls_name(&self, addr: SocketAddr, host: &str) {
        if let (Some(t), Ok(name)) = (self.inner.tls.get(), pki_types::ServerName::try_from(host.to_owned())) {
            t.set_name(addr, name);
        }
    }

    /// Swaps in renewed certificates (SIGHUP): new handshakes use them.
    pub fn reload_tls(&self, configs: tls::TlsConfigs) -> bool {
        match self.inner.tls.get() {
            Some(t) => {
                t.replace(configs);
                true
            }
            None => false,
        }
    }

    pub fn stats(&self) -> &TransportStats {
        &self.inner.stats
    }

    /// Sends a message. Never waits on the network: UDP sends are tried at once (queued on
    /// a task when the socket is busy); TCP bytes go to the connection's writer, opening
    /// one to `to` when there is none (§18.2.2: responses reuse the request's connection).
    pub fn send(&self, to: Peer, msg: &SipMessage) -> Result<(), TransportError> {
        let bytes = codec::encode(msg);
        self.send_bytes(to, bytes)
    }

    pub fn send_bytes(&self, to: Peer, bytes: Vec<u8>) -> Result<(), TransportError> {
        if bytes.len() > codec::MAX_MESSAGE_SIZE {
            return Err(TransportError::TooLarge { len: bytes.len() });
        }
        self.inner.stats.sent.fetch_add(1, Ordering::Relaxed);
        match to.transport {
            Transport::Udp => udp::send(&self.inner, to.addr, bytes),
            Transport::Tcp => {
                tcp::send(&self.inner, to.transport, to.addr, bytes, tcp::connect_and_send);
                Ok(())
            }
            Transport::Tls => {
                tcp::send(&self.inner, to.transport, to.addr, bytes, tls::connect_and_send);
                Ok(())
            }
            Transport::Ws => ws::send(&self.inner, to.addr, bytes),
        }
    }

    /// Whether a TCP connection to `addr` is open (accepted or outgoing).
    pub fn has_tcp_connection(&self, addr: SocketAddr) -> bool {
        self.inner.tcp.lock().expect("tcp lock").contains_key(&addr)
    }

    /// Whether a connection of `transport` (TCP or TLS) to `addr` is open.
    pub fn has_connection(&self, transport: Transport, addr: SocketAddr) -> bool {
        transport.is_stream() && self.inner.conns(transport).lock().expect("conns lock").contains_key(&addr)
    }

    /// Stops the receive tasks and drops every connection.
    pub fn close(&self) {
        for t in self.inner.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
        for conns in [&self.inner.tcp, &self.inner.tls_conns] {
            for (_, c) in conns.lock().expect("conns lock").drain() {
                c.task.abort();
            }
        }
        self.inner.ws.close_all();
    }
}

/// Socket buffer asked for the UDP socket: bursts (a carrier's registrations after an
/// outage, load tests) must not be dropped by the kernel while a receive task is busy.
const UDP_BUFFER: usize = 4 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // The kernel caps these at net.core.{r,w}mem_max; a smaller buffer is not an error.
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), TransportError> {
    let bind_err = |transport, source| TransportError::Bind { transport, addr, source };
    for _ in 0..20 {
        let udp = bind_udp(addr).map_err(|e| bind_err(Transport::Udp, e))?;
        let got = udp.local_addr().map_err(|e| bind_err(Transport::Udp, e))?;
        match TcpListener::bind(got).await {
            Ok(l) => return Ok((udp, l)),
            // With port 0 the TCP port may be taken; try another UDP port.
            Err(_) if addr.port() == 0 => continue,
            Err(e) => return Err(bind_err(Transport::Tcp, e)),
        }
    }
    Err(bind_err(Transport::Tcp, std::io::Error::new(std::io::ErrorKind::AddrInUse, "no common free port")))
}

/// Decodes one message from `from`; answers or drops refused ones. Returns what the
/// endpoint should see.
fn accept_bytes(inner: &Inner, bytes: &[u8], from: Peer, reply: impl FnOnce(Vec<u8>)) -> Option<Incoming> {
    inner.stats.received.fetch_add(1, Ordering::Relaxed);
    match codec::decode(bytes) {
        Ok(mut msg) => {
            codec::via::stamp_received(&mut msg, from.addr);
            Some(Incoming { msg, from, received: std::time::Instant::now() })
        }
        Err(DecodeError { kind, reply: answer }) => {
            inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %from.addr, transport = %from.transport, error = %kind, answered = answer.is_some(), "message refused");
            if let Some(r) = answer {
                reply(codec::encode(&SipMessage::Response(*r)));
            }
            None
        }
    }
}
