//! The UDP socket: receive tasks and sends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::shed::{self, Screened};
use super::{accept_bytes, Inner, TransportError};
use crate::config::Transport;
use crate::sip::Peer;

/// Receives datagrams until the incoming channel closes.
pub(super) async fn receive(inner: Arc<Inner>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, src) = match inner.udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here on some systems; they are not fatal.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        if let Some(gate) = inner.gate.get() {
            match shed::screen(&buf[..n], src, std::time::Instant::now(), &inner.decisions, gate.retry_after(), gate.scanners(), || gate.refuse_invite().is_some()) {
                Screened::Pass => {}
                Screened::Answer(bytes) => {
                    inner.stats.received.fetch_add(1, Ordering::Relaxed);
                    gate.refused_invite();
                    let _ = inner.udp.try_send_to(&bytes, src);
                    continue;
                }
                Screened::Absorb => {
                    inner.stats.received.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Screened::Scanner => {
                    inner.stats.received.fetch_add(1, Ordering::Relaxed);
                    gate.dropped_scanner();
                    continue;
                }
            }
        }
        let from = Peer { addr: src, transport: Transport::Udp };
        let udp = inner.udp.clone();
        let incoming = accept_bytes(&inner, &buf[..n], from, |bytes| {
            let _ = udp.try_send_to(&bytes, src);
        });
        if let Some(msg) = incoming {
            if inner.incoming.send(msg).await.is_err() {
                return;
            }
        }
    }
}

pub(super) fn send(inner: &Arc<Inner>, to: SocketAddr, bytes: Vec<u8>) -> Result<(), TransportError> {
    match inner.udp.try_send_to(&bytes, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let udp = inner.udp.clone();
            tokio::spawn(async move {
                if let Err(e) = udp.send_to(&bytes, to).await {
                    tracing::debug!(error = %e, %to, "udp send failed");
                }
            });
            Ok(())
        }
        Err(source) => Err(TransportError::Send { transport: Transport::Udp, to, source }),
    }
}
