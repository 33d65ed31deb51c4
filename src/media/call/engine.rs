//! The media engine: the port allocator and configuration shared by every leg.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::leg::MediaLeg;
use super::task::LegSocket;
use super::MediaCallError;
use crate::config::Config;
use super::settings::MediaConfig;
use crate::media::ports::PortAllocator;

/// Opens media legs; clone it freely (one allocator behind an `Arc`).
#[derive(Clone, Debug)]
pub struct MediaEngine {
    ports: Arc<PortAllocator>,
    config: Arc<MediaConfig>,
    /// The runtime legs run on, when not the caller's: media then keeps its
    /// own threads, so a backlog of signalling tasks (a SIP flood) does not
    /// hold up the relay's packets behind it on the same workers.
    runtime: Option<tokio::runtime::Handle>,
}

/// Pairs tried before giving up when ports of the range are held by other programs.
const BIND_ATTEMPTS: usize = 16;

static NEXT_LEG: AtomicU64 = AtomicU64::new(1);

impl MediaEngine {
    pub fn new(cfg: &Config) -> Result<Self, MediaCallError> {
        Self::with_config(MediaConfig::from_config(cfg), cfg.media.ports.clone())
    }

    /// An engine from an explicit configuration and port range (tests, benchmarks).
    pub fn with_config(config: MediaConfig, ports: std::ops::RangeInclusive<u16>) -> Result<Self, MediaCallError> {
        config.amd.validate()?;
        Ok(Self { ports: Arc::new(PortAllocator::new(ports)?), config: Arc::new(config), runtime: None })
    }

    /// Legs opened from now on bind their sockets and run their tasks on
    /// `runtime` (a socket is driven by the runtime it was made on).
    pub fn on_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// Binds an RTP/RTCP pair from media.ports and starts its task (on the
    /// engine's runtime, if it has one).
    pub async fn open(&self) -> Result<MediaLeg, MediaCallError> {
        match &self.runtime {
            None => self.open_here().await,
            Some(rt) => {
                let engine = self.clone();
                let span = tracing::Span::current();
                // The leg's task logs in the span of the call that opened it.
                rt.spawn(tracing::Instrument::instrument(async move { engine.open_here().await }, span))
                    .await
                    .map_err(|e| MediaCallError::Runtime(e.to_string()))?
            }
        }
    }

    async fn open_here(&self) -> Result<MediaLeg, MediaCallError> {
        let socket = self.bind().await?;
        let id = NEXT_LEG.fetch_add(1, Ordering::Relaxed);
        Ok(MediaLeg::start(id, socket, self.config.clone()))
    }

    /// Port pairs leased (a closed leg's pair is released once its task has ended).
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// Binds the next free even/odd pair on `media.addr`, skipping pairs
    /// another program holds. (`MediaSocket::bind` does the same, but keeps its
    /// sockets private; the leg task needs them to wait on readiness itself.)
    async fn bind(&self) -> Result<LegSocket, MediaCallError> {
        let addr = self.config.bind;
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS.min(self.ports.capacity()) {
            let lease = self.ports.allocate()?;
            match (UdpSocket::bind(SocketAddr::new(addr, lease.rtp())).await, UdpSocket::bind(SocketAddr::new(addr, lease.rtcp())).await) {
                (Ok(rtp), Ok(rtcp)) => return Ok(LegSocket { rtp, rtcp, lease }),
                (Err(e), _) | (_, Err(e)) => last = Some(e),
            }
        }
        Err(MediaCallError::Bind {
            addr,
            source: last.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no pair could be bound")),
        })
    }
}
