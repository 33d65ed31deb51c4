//! `[sip.guard]`: throttling of failed digest attempts against the agents'
//! registrar, and silent dropping of well-known scanners.
//!
//! Every failed attempt is counted against the source IP address and against
//! the account (user name). The first `free_failures` cost nothing; each one
//! after that holds the answer for `base_delay`, doubling per failure up to
//! `max_delay`; at `block_after` failures the source (or, for sources that
//! failed on it, the account) is blocked for `block_for`: its REGISTERs are
//! dropped unanswered. A record without a new failure for `forget_after` is
//! forgotten. At most `max_tracked` sources and as many accounts are tracked.

use std::time::Duration;

use serde::Deserialize;

use super::problem::{parse_duration, Collector};

/// User-Agent substrings of well-known SIP scanners (compared case-insensitively).
pub const DEFAULT_SCANNER_AGENTS: &[&str] =
    &["friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent", "sip-scan", "sipsak", "iWar", "sundayddr", "pplsip"];

/// The validated `[sip.guard]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// `free_failures`: failures answered without delay (default 3).
    pub free_failures: u32,
    /// `base_delay`: the hold of the first delayed answer (default 1s).
    pub base_delay: Duration,
    /// `max_delay`: the longest hold (default 16s; at most 30s, under a client's
    /// 32 s transaction timeout, RFC 3261 §17.1.2.2 Timer F).
    pub max_delay: Duration,
    /// `block_after`: failures that block (default 10).
    pub block_after: u32,
    /// `block_for`: how long a block lasts (default 15min).
    pub block_for: Duration,
    /// `forget_after`: a record with no failure for this long is dropped (default 15min).
    pub forget_after: Duration,
    /// `max_tracked`: bound of each table, sources and accounts (default 10000).
    pub max_tracked: usize,
    /// `drop_scanners`: drop every request whose User-Agent names a known scanner (default true).
    pub drop_scanners: bool,
    /// `scanner_agents`: the User-Agent substrings, lower-cased (default [`DEFAULT_SCANNER_AGENTS`]).
    pub scanner_agents: Vec<String>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
            block_after: 10,
            block_for: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
            drop_scanners: true,
            scanner_agents: DEFAULT_SCANNER_AGENTS.iter().map(|s| s.to_ascii_lowercase()).collect(),
        }
    }
}

/// The longest `max_delay` accepted.
pub const MAX_HOLD: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuard {
    free_failures: Option<u32>,
    base_delay: Option<String>,
    max_delay: Option<String>,
    block_after: Option<u32>,
    block_for: Option<String>,
    forget_after: Option<String>,
    max_tracked: Option<usize>,
    drop_scanners: Option<bool>,
    scanner_agents: Option<Vec<String>>,
}

pub(super) fn validate(raw: RawGuard, c: &mut Collector<'_>) -> GuardConfig {
    let mut g = GuardConfig::default();
    if let Some(n) = raw.free_failures {
        g.free_failures = n;
    }
    if let Some(n) = raw.block_after {
        if n == 0 {
            c.push("sip.guard.block_after", "must be at least 1");
        } else {
            g.block_after = n;
        }
    }
    for (key, v, slot) in [
        ("sip.guard.base_delay", &raw.base_delay, &mut g.base_delay),
        ("sip.guard.max_delay", &raw.max_delay, &mut g.max_delay),
        ("sip.guard.block_for", &raw.block_for, &mut g.block_for),
        ("sip.guard.forget_after", &raw.forget_after, &mut g.forget_after),
    ] {
        if let Some(d) = v.as_deref().and_then(|v| c.check(key, parse_duration(v))) {
            *slot = d;
        }
    }
    if g.max_delay > MAX_HOLD {
        c.push("sip.guard.max_delay", "must be at most 30s (clients give up on a REGISTER after 32 s)");
    }
    if g.base_delay > g.max_delay {
        c.push("sip.guard.base_delay", "must not be more than sip.guard.max_delay");
    }
    if g.forget_after.is_zero() {
        c.push("sip.guard.forget_after", "must be more than zero");
    }
    if let Some(n) = raw.max_tracked {
        if n == 0 {
            c.push("sip.guard.max_tracked", "must be at least 1");
        } else {
            g.max_tracked = n;
        }
    }
    if let Some(d) = raw.drop_scanners {
        g.drop_scanners = d;
    }
    if let Some(list) = raw.scanner_agents {
        for (i, s) in list.iter().enumerate() {
            if s.trim().is_empty() {
                c.push(format!("sip.guard.scanner_agents[{i}]"), "must not be empty");
            }
        }
        g.scanner_agents = list.into_iter().filter(|s| !s.trim().is_empty()).map(|s| s.to_ascii_lowercase()).collect();
    }
    g
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Config, GuardConfig};

    fn load(dir: &Path, text: &str) -> Result<Config, crate::config::Problems> {
        let f = dir.join("redial.toml");
        std::fs::write(&f, text).unwrap();
        Config::load(Some(&f))
    }

    #[test]
    fn keys_and_defaults() {
        assert_eq!(Config::defaults().sip.guard, GuardConfig::default());
        let d = tempfile::tempdir().unwrap();
        let c = load(
            d.path(),
            "[sip.guard]\nfree_failures = 0\nbase_delay = \"250ms\"\nmax_delay = \"2s\"\nblock_after = 4\nblock_for = \"1h\"\n\
             forget_after = \"2h\"\nmax_tracked = 50\ndrop_scanners = false\nscanner_agents = [\"EvilScan\"]\n",
        )
        .unwrap();
        let g = c.sip.guard;
        assert_eq!((g.free_failures, g.block_after, g.max_tracked, g.drop_scanners), (0, 4, 50, false));
        assert_eq!((g.base_delay, g.max_delay), (Duration::from_millis(250), Duration::from_secs(2)));
        assert_eq!((g.block_for, g.forget_after), (Duration::from_secs(3600), Duration::from_secs(7200)));
        assert_eq!(g.scanner_agents, vec!["evilscan".to_string()]);
    }

    #[test]
    fn problems_are_named_by_key() {
        let d = tempfile::tempdir().unwrap();
        for (text, key) in [
            ("[sip.guard]\nmax_delay = \"31s\"\n", "sip.guard.max_delay"),
            ("[sip.guard]\nbase_delay = \"20s\"\n", "sip.guard.base_delay"),
            ("[sip.guard]\nblock_for = \"soon\"\n", "sip.guard.block_for"),
            ("[sip.guard]\nblock_after = 0\n", "sip.guard.block_after"),
            ("[sip.guard]\nmax_tracked = 0\n", "sip.guard.max_tracked"),
            ("[sip.guard]\nforget_after = \"0s\"\n", "sip.guard.forget_after"),
            ("[sip.guard]\nscanner_agents = [\"\"]\n", "sip.guard.scanner_agents[0]"),
        ] {
            let e = load(d.path(), text).unwrap_err();
            assert_eq!(e.0.len(), 1, "{text}: {e}");
            assert_eq!(e.0[0].key, key, "{text}: {e}");
        }
    }
}
