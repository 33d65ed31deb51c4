//! `[storage] backend`/`url` and `[cluster]`: where the book lives, and what
//! this node is in a cluster of nodes sharing a PostgreSQL book.

use std::time::Duration;

use serde::Deserialize;

use super::problem::{parse_duration, Collector};

/// Where the callback book lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// One file (`storage.path`): one node.
    #[default]
    Redb,
    /// A PostgreSQL database shared by the nodes of a cluster.
    Postgres { url: String },
}

/// `[cluster]`: this node's name and the shard leases' timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique among the nodes; shown in `GET /v1/cluster`.
    pub node: String,
    /// Shards of the book; fixed for the life of a cluster.
    pub shards: u32,
    /// How long a renewal keeps a shard (the database's clock).
    pub lease: Duration,
    /// How often leases are renewed.
    pub renew_every: Duration,
    /// How much before its lease a node stops dialling a shard it could
    /// not renew (covers the renewal's trip and local clock drift).
    pub margin: Duration,
}

impl ClusterConfig {
    pub fn new(node: impl Into<String>) -> Self {
        Self { node: node.into(), shards: 64, lease: Duration::from_secs(10), renew_every: Duration::from_secs(3), margin: Duration::from_secs(2) }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node: Option<String>,
    shards: Option<u32>,
    lease: Option<String>,
    renew_every: Option<String>,
    margin: Option<String>,
}

/// Validates `storage.backend`, `storage.url` and `[cluster]` together
/// (each needs the others).
pub(super) fn validate(backend: Option<&str>, url: Option<String>, cluster: Option<RawCluster>, c: &mut Collector<'_>) -> (Backend, Option<ClusterConfig>) {
    let backend = match backend.unwrap_or("redb") {
        "redb" => {
            if url.is_some() {
                c.push("storage.url", "is only used with backend = \"postgres\"");
            }
            if cluster.is_some() {
                c.push("cluster", "cluster mode needs storage.backend = \"postgres\"");
            }
            return (Backend::Redb, None);
        }
        "postgres" => match url {
            Some(u) if !u.trim().is_empty() => Backend::Postgres { url: u },
            _ => {
                c.push("storage.url", "is required with backend = \"postgres\" (like \"host=/run/postgresql user=redial dbname=redial\")");
                Backend::Postgres { url: String::new() }
            }
        },
        other => {
            c.push("storage.backend", format!("`{other}` is not a backend (use \"redb\" or \"postgres\")"));
            return (Backend::Redb, None);
        }
    };
    let Some(raw) = cluster else {
        c.push("cluster.node", "is required with storage.backend = \"postgres\" (a name unique among the nodes)");
        return (backend, None);
    };
    let node = raw.node.unwrap_or_default();
    if node.is_empty() {
        c.push("cluster.node", "is required with storage.backend = \"postgres\" (a name unique among the nodes)");
    } else if node.len() > 64 || !node.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        c.push("cluster.node", format!("`{node}` must be 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    let mut cfg = ClusterConfig::new(node);
    if let Some(s) = raw.shards {
        if !(1..=4096).contains(&s) {
            c.push("cluster.shards", format!("{s} is out of range (1 to 4096)"));
        } else {
            cfg.shards = s;
        }
    }
    for (key, v, slot) in [
        ("cluster.lease", &raw.lease, &mut cfg.lease),
        ("cluster.renew_every", &raw.renew_every, &mut cfg.renew_every),
        ("cluster.margin", &raw.margin, &mut cfg.margin),
    ] {
        if let Some(v) = v {
            if let Some(d) = c.check(key, parse_duration(v)) {
                if d.is_zero() {
                    c.push(key, "must be more than zero");
                } else {
                    *slot = d;
                }
            }
        }
    }
    // A node must be able to renew before it stops dialling: one renewal
    // period plus the margin fit in a lease.
    if cfg.renew_every + cfg.margin >= cfg.lease {
        c.push("cluster.lease", "must be longer than cluster.renew_every + cluster.margin");
    }
    (backend, Some(cfg))
}
