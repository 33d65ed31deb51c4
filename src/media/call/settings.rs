//! What the live legs need from the configuration, shared by the engine
//! that opens legs and the tasks that run them.

use std::net::IpAddr;
use std::time::Duration;

use crate::amd::AmdConfig;
use crate::config::Config;

/// What the live legs need from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// `media.addr`: where RTP/RTCP sockets are bound.
    pub bind: IpAddr,
    /// `sip.public_addr` if set, else `media.addr`: the address in our SDP.
    pub advertised: IpAddr,
    /// No RTP for this long -> [`super::MediaEvent::Timeout`] (`media.timeout`, default 60 s).
    pub media_timeout: Duration,
    /// `[amd]`.
    pub amd: AmdConfig,
}

impl MediaConfig {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            bind: cfg.media.addr,
            advertised: cfg.sip.public_addr.unwrap_or(cfg.media.addr),
            media_timeout: cfg.media.timeout,
            amd: cfg.amd.clone(),
        }
    }
}
