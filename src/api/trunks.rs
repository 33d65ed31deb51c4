//! What `GET /v1/trunks` shows, behind a trait so the SIP endpoint can
//! provide live registration state once the lead wires it.

use super::views::TrunkInfo;
use crate::config::Config;

/// A source of trunk states.
pub trait TrunkView: Send + Sync {
    fn trunks(&self) -> Vec<TrunkInfo>;
}

/// The configured profiles with no live state: `registered` false, `up`
/// unknown (null). Stands in until the SIP endpoint's handle is wired.
#[derive(Debug, Clone)]
pub struct ConfiguredTrunks(Vec<String>);

impl ConfiguredTrunks {
    pub fn new(cfg: &Config) -> Self {
        Self(cfg.profiles.keys().cloned().collect())
    }
}

impl TrunkView for ConfiguredTrunks {
    fn trunks(&self) -> Vec<TrunkInfo> {
        self.0
            .iter()
            .map(|name| TrunkInfo { name: name.clone(), registered: false, expires_in: None, up: None, last_error: None })
            .collect()
    }
}
