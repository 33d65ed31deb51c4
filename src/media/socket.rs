//! The tokio driver: a bound RTP/RTCP socket pair running one [`RtpSession`].
//! It only moves datagrams and timers; all protocol logic is in the session.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};

use super::ports::{PortAllocator, PortError, PortPair};
use super::session::{Channel, RtpEvent, RtpSession, SessionError, Transmit};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("cannot bind RTP/RTCP on {addr}: {source}")]
    Bind { addr: IpAddr, source: io::Error },
}

/// A bound RTP/RTCP pair; the port lease is released when it drops.
#[derive(Debug)]
pub struct MediaSocket {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    _lease: Option<PortPair>,
}

/// Pairs tried before giving up when ports of the range are taken by other programs.
const BIND_ATTEMPTS: usize = 16;

impl MediaSocket {
    /// Binds the next free even/odd pair of `ports` on `addr` (`media.addr`).
    pub async fn bind(addr: IpAddr, ports: &PortAllocator) -> Result<Self, SocketError> {
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS.min(ports.capacity()) {
            let lease = ports.allocate()?;
            let rtp = UdpSocket::bind(SocketAddr::new(addr, lease.rtp())).await;
            let rtcp = UdpSocket::bind(SocketAddr::new(addr, lease.rtcp())).await;
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => return Ok(Self { rtp, rtcp, _lease: Some(lease) }),
                (Err(e), _) | (_, Err(e)) => last = Some(e),
            }
        }
        Err(SocketError::Bind { addr, source: last.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no pair could be bound")) })
    }

    /// Binds two OS-chosen ports (tests, and peers that signal `a=rtcp`).
    pub async fn bind_any(addr: IpAddr) -> Result<Self, SocketError> {
        let b = |e| SocketError::Bind { addr, source: e };
        let rtp = UdpSocket::bind(SocketAddr::new(addr, 0)).await.map_err(b)?;
        let rtcp = UdpSocket::bind(SocketAddr::new(addr, 0)).await.map_err(b)?;
        Ok(Self { rtp, rtcp, _lease: None })
    }

    pub fn local_rtp(&self) -> io::Result<SocketAddr> {
        self.rtp.local_addr()
    }

    pub fn local_rtcp(&self) -> io::Result<SocketAddr> {
        self.rtcp.local_addr()
    }
}

enum Input {
    Rtp(usize, SocketAddr),
    Rtcp(usize, SocketAddr),
    Timeout,
    Writable,
}

/// Runs an [`RtpSession`] on a [`MediaSocket`]. Time is tokio's clock, so
/// tests under `tokio::time::pause()` drive it virtually.
#[derive(Debug)]
pub struct RtpDriver {
    socket: MediaSocket,
    session: RtpSession,
    rng: StdRng,
    rtp_buf: Box<[u8; 2048]>,
    rtcp_buf: Box<[u8; 2048]>,
    send_errors: u64,
    pending: VecDeque<Transmit>,
}

/// Datagrams kept while the socket is not writable; beyond this the oldest are dropped.
const MAX_PENDING: usize = 256;

/// The instant tokio considers now, as the session's `Instant`.
pub fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl RtpDriver {
    pub fn new(socket: MediaSocket, session: RtpSession, rng: StdRng) -> Self {
        Self { socket, session, rng, rtp_buf: Box::new([0; 2048]), rtcp_buf: Box::new([0; 2048]), send_errors: 0, pending: VecDeque::new() }
    }

    pub fn socket(&self) -> &MediaSocket {
        &self.socket
    }

    pub fn session(&self) -> &RtpSession {
        &self.session
    }

    /// For `set_remote` and the like; call [`RtpDriver::flush`] after anything that may queue datagrams.
    pub fn session_mut(&mut self) -> &mut RtpSession {
        &mut self.session
    }

    /// Datagrams that could not be sent (the socket buffer was full).
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Sends one media packet now (see [`RtpSession::send`]).
    pub fn send(&mut self, payload_type: u8, marker: bool, position: u64, payload: &[u8]) -> Result<(), SessionError> {
        self.session.send(now(), payload_type, marker, position, payload)?;
        self.flush();
        Ok(())
    }

    /// Writes out everything the session queued without waiting, which keeps
    /// [`RtpDriver::next_event`] cancel-safe. A datagram the socket cannot
    /// take yet (tokio has not seen it writable) waits in `pending` and goes
    /// out from `next_event` once the socket is writable.
    pub fn flush(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            self.pending.push_back(t);
        }
        while let Some(t) = self.pending.front() {
            let sock = match t.channel {
                Channel::Rtp => &self.socket.rtp,
                Channel::Rtcp => &self.socket.rtcp,
            };
            match sock.try_send_to(&t.payload, t.destination) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.pending.len() > MAX_PENDING {
                        self.pending.pop_front();
                        self.send_errors += 1;
                        continue;
                    }
                    return;
                }
                Err(_) => self.send_errors += 1, // e.g. ICMP unreachable reported on a later send
            }
            self.pending.pop_front();
        }
    }

    /// Waits for the next session event, feeding datagrams and RTCP timers in
    /// the meantime. Cancel-safe: use it in `select!` next to other work.
    pub async fn next_event(&mut self) -> io::Result<RtpEvent> {
        loop {
            self.flush();
            if let Some(e) = self.session.poll_event() {
                return Ok(e);
            }
            let deadline = match self.session.poll_timeout() {
                Some(t) => Instant::from_std(t),
                None => Instant::now() + Duration::from_secs(3600),
            };
            let input = {
                let Self { socket, rtp_buf, rtcp_buf, pending, .. } = self;
                let waiting = pending.front().map(|t| t.channel);
                tokio::select! {
                    r = socket.rtp.writable(), if waiting == Some(Channel::Rtp) => { r?; Input::Writable }
                    r = socket.rtcp.writable(), if waiting == Some(Channel::Rtcp) => { r?; Input::Writable }
                    r = socket.rtp.recv_from(&mut rtp_buf[..]) => { let (n, a) = r?; Input::Rtp(n, a) }
                    r = socket.rtcp.recv_from(&mut rtcp_buf[..]) => { let (n, a) = r?; Input::Rtcp(n, a) }
                    _ = sleep_until(deadline) => Input::Timeout,
                }
            };
            let t = now();
            match input {
                Input::Rtp(n, from) => {
                    if let Err(e) = self.session.handle_rtp(t, from, &self.rtp_buf[..n]) {
                        tracing::debug!(%from, error = %e, "RTP datagram dropped");
                    }
                }
                Input::Rtcp(n, from) => {
                    if let Err(e) = self.session.handle_rtcp(t, from, &self.rtcp_buf[..n]) {
                        tracing::debug!(%from, error = %e, "RTCP datagram dropped");
                    }
                }
                Input::Timeout => self.session.handle_timeout(t, &mut self.rng),
                Input::Writable => {}
            }
        }
    }

    /// Ends the session (RTCP BYE) and releases the ports.
    pub fn close(mut self) {
        self.session.close(now());
        self.flush();
    }
}
