//! Configuration: `redial.toml` and `sip-profiles/*.toml`.
//!
//! Loading never stops at the first problem: every problem is collected and
//! named by its file and key, so `redial check` can list them all.
//! Relative paths in `redial.toml` are relative to the directory of that file;
//! with no file, to the current directory.

pub mod cluster;
pub mod guard;
mod live;
pub mod overload;
mod problem;
pub mod profile;
pub mod queue;
pub mod tls;
pub mod webhook;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::e164::is_e164;

pub use cluster::{Backend, ClusterConfig};
pub use guard::GuardConfig;
pub use live::{LiveConfig, ProxyAddrs};
pub use overload::OverloadConfig;
pub use problem::{Problem, Problems};
use problem::{parse_duration, read_toml, Collector};
pub use profile::{Profile, Transport};
pub use queue::{DialMode, OnMachine, OwnershipExpiry, Queue, WindowClose};
pub use tls::TlsConfig;
pub use webhook::{EventFilter, Webhook};

/// The digest algorithms redial can offer to agents and answer from carriers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in `algorithm=` (RFC 7616 §3.3).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

/// RFC 3261 §17 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipTimers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (default 5 s).
    pub t4: Duration,
}

impl Default for SipTimers {
    fn default() -> Self {
        Self { t1: Duration::from_millis(500), t2: Duration::from_secs(4), t4: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SipConfig {
    pub listen: SocketAddr,
    /// `sip.ws_listen`: SIP over WebSocket (RFC 7118) for browser agents; off when `None`.
    pub ws_listen: Option<SocketAddr>,
    /// `sip.wss_listen`: SIP over secure WebSocket (RFC 7118 `wss`) with `[tls]`'s
    /// certificate; off when `None`.
    pub wss_listen: Option<SocketAddr>,
    /// `sip.tls_listen`: SIP over TLS (RFC 3261 §26.2) with `[tls]`'s certificate.
    pub tls_listen: Option<SocketAddr>,
    pub realm: String,
    pub digest_algorithms: Vec<DigestAlgorithm>,
    pub public_addr: Option<IpAddr>,
    pub timers: SipTimers,
    /// `[sip.guard]`: throttling of failed digest attempts, scanner dropping.
    pub guard: GuardConfig,
    /// `[sip.overload]`: when new INVITEs and REGISTERs get 503.
    pub overload: OverloadConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    pub addr: IpAddr,
    pub ports: RangeInclusive<u16>,
    /// `media.timeout`: no RTP from the remote for this long ends the call (default 60 s).
    pub timeout: Duration,
    /// `media.prompts`: directory of the prompt WAVs (default `prompts`, relative to the file).
    pub prompts: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    CallbacksRead,
    CallbacksWrite,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "callbacks:read" => Some(Scope::CallbacksRead),
            "callbacks:write" => Some(Scope::CallbacksWrite),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A bearer token; the secret is kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub scopes: Vec<Scope>,
}

/// `[[dids]]`: a per-DID override of the inbound queue and a greeting.
#[derive(Debug, Clone, PartialEq)]
pub struct DidOverride {
    pub number: String,
    pub queue: Option<String>,
    /// A WAV played to callers of this number before anything else.
    pub greeting: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub password: String,
    pub queues: Vec<String>,
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub http: HttpConfig,
    pub storage_path: PathBuf,
    /// `storage.backend`: redb (`storage_path`) or PostgreSQL (`storage.url`).
    pub backend: Backend,
    /// `[cluster]`: this node in a cluster (with the PostgreSQL backend).
    pub cluster: Option<ClusterConfig>,
    pub profiles_dir: PathBuf,
    pub tokens: Vec<Token>,
    pub agents: Vec<Agent>,
    pub queues: Vec<Queue>,
    /// Per-DID overrides for inbound calls.
    pub dids: Vec<DidOverride>,
    /// Profiles by name (file stem).
    pub profiles: BTreeMap<String, Profile>,
    /// `[amd]`: answering-machine detection thresholds (keys = `AmdConfig` fields).
    pub amd: crate::amd::AmdConfig,
    /// `[[webhooks]]`: endpoints that receive events.
    pub webhooks: Vec<Webhook>,
    /// `[tls]`: certificates for `sip.tls_listen` and for TLS toward carriers.
    pub tls: TlsConfig,
    /// `[compliance] quiet_hours = "08:00-21:00"`: the only local hours
    /// (the customer's) in which a customer may be called or texted, above
    /// every queue's window; `None` = no limit beyond the queues'.
    pub calling_hours: Option<(crate::window::MinuteOfDay, crate::window::MinuteOfDay)>,
    /// Whether `profiles.dir` was set explicitly (then it must exist).
    profiles_dir_explicit: bool,
}

impl Config {
    /// The built-in defaults (loopback listeners, one always-open `default`
    /// queue, no agents), with profiles read from
    /// `./sip-profiles` when that directory exists.
    pub fn defaults() -> Self {
        Self {
            source: None,
            sip: SipConfig {
                listen: "127.0.0.1:5060".parse().expect("literal"),
                ws_listen: None,
                wss_listen: None,
                tls_listen: None,
                realm: "redial".into(),
                digest_algorithms: vec![DigestAlgorithm::Md5],
                public_addr: None,
                timers: SipTimers::default(),
                guard: GuardConfig::default(),
                overload: OverloadConfig::default(),
            },
            media: MediaConfig {
                addr: IpAddr::from([127, 0, 0, 1]),
                ports: 20000..=20999,
                timeout: Duration::from_secs(60),
                prompts: PathBuf::from("prompts"),
            },
            http: HttpConfig { listen: "127.0.0.1:8080".parse().expect("literal") },
            storage_path: PathBuf::from("data/redial.redb"),
            backend: Backend::Redb,
            cluster: None,
            profiles_dir: PathBuf::from("sip-profiles"),
            tokens: vec![],
            agents: vec![],
            queues: vec![Queue::default_queue()],
            dids: vec![],
            profiles: BTreeMap::new(),
            amd: crate::amd::AmdConfig::default(),
            webhooks: vec![],
            tls: TlsConfig::default(),
            calling_hours: None,
            profiles_dir_explicit: false,
        }
    }

    /// Loads `file`, or the defaults when `file` is `None`; then every profile.
    pub fn load(file: Option<&Path>) -> Result<Self, Problems> {
        let mut problems = Vec::new();
        let mut cfg = match file {
            None => Self::defaults(),
            Some(f) => match read_toml::<RawConfig>(f) {
                Ok(raw) => raw.validate(f, &mut problems),
                Err(p) => return Err(Problems(vec![p])),
            },
        };
        cfg.load_profiles(&mut problems);
        cfg.cross_check(&mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(Problems(problems))
        }
    }

    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// The agent with SIP user `id`.
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.id == id)
    }

    fn load_profiles(&mut self, problems: &mut Vec<Problem>) {
        let dir = &self.profiles_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            // A missing default directory is fine: redial runs with no trunks.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.profiles_dir_explicit => return,
            Err(e) => {
                let file = self.source.clone().unwrap_or_default();
                problems.push(Problem::new(&file, "profiles.dir", format!("cannot read {}: {e}", dir.display())));
                return;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            if let Some(p) = profile::load(&f, problems) {
                self.profiles.insert(p.name.clone(), p);
            }
        }
    }

    fn cross_check(&self, problems: &mut Vec<Problem>) {
        let file = self.source.clone().unwrap_or_else(|| PathBuf::from("(defaults)"));
        let mut c = Collector { file: &file, problems };
        for (i, q) in self.queues.iter().enumerate() {
            if let Some(p) = &q.profile {
                if !self.profiles.contains_key(p) {
                    c.push(format!("queues[{i}].profile"), format!("no profile `{p}` in {}", self.profiles_dir.display()));
                }
            }
        }
        for (i, a) in self.agents.iter().enumerate() {
            for (j, q) in a.queues.iter().enumerate() {
                if self.queue(q).is_none() {
                    c.push(format!("agents[{i}].queues[{j}]"), format!("no queue named `{q}`"));
                }
            }
        }
        for p in self.profiles.values() {
            if let Some(q) = &p.inbound_queue {
                if self.queue(q).is_none() {
                    let pf = self.profiles_dir.join(format!("{}.toml", p.name));
                    c.problems.push(Problem::new(&pf, "inbound_queue", format!("no queue named `{q}`")));
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    sip: RawSip,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    storage: RawStorage,
    cluster: Option<cluster::RawCluster>,
    #[serde(default)]
    profiles: RawProfiles,
    #[serde(default)]
    amd: crate::amd::AmdConfig,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    agents: Vec<RawAgent>,
    #[serde(default)]
    queues: Vec<queue::RawQueue>,
    #[serde(default)]
    dids: Vec<RawDid>,
    #[serde(default)]
    webhooks: Vec<webhook::RawWebhook>,
    #[serde(default)]
    tls: tls::RawTls,
    #[serde(default)]
    compliance: RawCompliance,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompliance {
    quiet_hours: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDid {
    number: String,
    queue: Option<String>,
    greeting: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    listen: Option<String>,
    ws_listen: Option<String>,
    wss_listen: Option<String>,
    tls_listen: Option<String>,
    realm: Option<String>,
    digest_algorithms: Option<Vec<String>>,
    public_addr: Option<String>,
    t1: Option<String>,
    t2: Option<String>,
    t4: Option<String>,
    #[serde(default)]
    guard: guard::RawGuard,
    #[serde(default)]
    overload: overload::RawOverload,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    addr: Option<String>,
    ports: Option<String>,
    timeout: Option<String>,
    prompts: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: Option<String>,
    backend: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    secret: Option<String>,
    sha256: Option<String>,
    scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: String,
    password: String,
    #[serde(default)]
    queues: Vec<String>,
}

impl RawConfig {
    fn validate(self, file: &Path, problems: &mut Vec<Problem>) -> Config {
        let mut cfg = Config::defaults();
        cfg.source = Some(file.to_path_buf());
        let base = file.parent().unwrap_or(Path::new(""));
        let mut c = Collector { file, problems };

        let addr = |s: &str| s.parse::<SocketAddr>().map_err(|_| format!("`{s}` is not an address like 127.0.0.1:5060"));
        if let Some(l) = &self.sip.listen {
            cfg.sip.listen = c.check("sip.listen", addr(l)).unwrap_or(cfg.sip.listen);
        }
        if let Some(l) = &self.sip.ws_listen {
            cfg.sip.ws_listen = c.check("sip.ws_listen", addr(l));
        }
        if let Some(l) = &self.sip.wss_listen {
            cfg.sip.wss_listen = c.check("sip.wss_listen", addr(l));
        }
        if let Some(l) = &self.sip.tls_listen {
            cfg.sip.tls_listen = c.check("sip.tls_listen", addr(l));
        }
        cfg.tls = tls::validate(self.tls, base, &mut c);
        if cfg.sip.tls_listen.is_some() && !cfg.tls.has_server_cert() {
            c.push("sip.tls_listen", "needs tls.cert and tls.key");
        }
        if cfg.sip.wss_listen.is_some() && !cfg.tls.has_server_cert() {
            c.push("sip.wss_listen", "needs tls.cert and tls.key");
        }
        if let Some(r) = self.sip.realm {
            if r.is_empty() || r.contains('"') {
                c.push("sip.realm", "must be non-empty and contain no quote");
            }
            cfg.sip.realm = r;
        }
        if let Some(algs) = self.sip.digest_algorithms {
            cfg.sip.digest_algorithms.clear();
            for (i, a) in algs.iter().enumerate() {
                match a.to_ascii_uppercase().as_str() {
                    "MD5" => cfg.sip.digest_algorithms.push(DigestAlgorithm::Md5),
                    "SHA-256" => cfg.sip.digest_algorithms.push(DigestAlgorithm::Sha256),
                    _ => c.push(format!("sip.digest_algorithms[{i}]"), format!("`{a}` is not supported (use \"MD5\" or \"SHA-256\")")),
                }
            }
            if algs.is_empty() {
                c.push("sip.digest_algorithms", "at least one algorithm is needed");
            }
        }
        if let Some(p) = &self.sip.public_addr {
            cfg.sip.public_addr = c.check("sip.public_addr", p.parse::<IpAddr>().map_err(|_| format!("`{p}` is not an IP address")));
        }
        for (key, v, slot) in [
            ("sip.t1", &self.sip.t1, &mut cfg.sip.timers.t1),
            ("sip.t2", &self.sip.t2, &mut cfg.sip.timers.t2),
            ("sip.t4", &self.sip.t4, &mut cfg.sip.timers.t4),
        ] {
            if let Some(v) = v {
                if let Some(d) = c.check(key, parse_duration(v)) {
                    if d.is_zero() {
                        c.push(key, "must be more than zero");
                    }
                    *slot = d;
                }
            }
        }
        cfg.sip.guard = guard::validate(self.sip.guard, &mut c);
        cfg.sip.overload = overload::validate(self.sip.overload, &mut c);
        if cfg.sip.timers.t2 < cfg.sip.timers.t1 {
            c.push("sip.t2", "must not be less than sip.t1");
        }
        if let Some(a) = &self.media.addr {
            cfg.media.addr = c.check("media.addr", a.parse::<IpAddr>().map_err(|_| format!("`{a}` is not an IP address"))).unwrap_or(cfg.media.addr);
        }
        if let Some(p) = &self.media.ports {
            if let Some(r) = c.check("media.ports", parse_port_range(p)) {
                cfg.media.ports = r;
            }
        }
        if let Some(t) = &self.media.timeout {
            if let Some(d) = c.check("media.timeout", parse_duration(t)) {
                if d < Duration::from_secs(1) {
                    c.push("media.timeout", "must be at least 1s");
                } else {
                    cfg.media.timeout = d;
                }
            }
        }
        cfg.media.prompts = base.join(self.media.prompts.as_deref().unwrap_or("prompts"));
        if let Err(e) = self.amd.validate() {
            let key = match &e {
                crate::amd::AmdConfigError::OutOfRange { field, .. } => format!("amd.{field}"),
                crate::amd::AmdConfigError::BeepBand { .. } => "amd.beep_min_hz".to_owned(),
            };
            c.push(key, e);
        }
        cfg.amd = self.amd;
        if let Some(l) = &self.http.listen {
            cfg.http.listen = c.check("http.listen", addr(l)).unwrap_or(cfg.http.listen);
        }
        // The WebSocket listener is a TCP socket of its own: it cannot share the SIP
        // (UDP+TCP) or HTTP port.
        if let Some(ws) = cfg.sip.ws_listen.filter(|ws| ws.port() != 0) {
            if ws == cfg.sip.listen || ws == cfg.http.listen {
                c.push("sip.ws_listen", format!("`{ws}` is already sip.listen or http.listen"));
            }
        }
        if let Some(wss) = cfg.sip.wss_listen.filter(|a| a.port() != 0) {
            if wss == cfg.sip.listen || wss == cfg.http.listen || Some(wss) == cfg.sip.ws_listen || Some(wss) == cfg.sip.tls_listen {
                c.push("sip.wss_listen", format!("`{wss}` is already sip.listen, sip.ws_listen, sip.tls_listen or http.listen"));
            }
        }
        (cfg.backend, cfg.cluster) = cluster::validate(self.storage.backend.as_deref(), self.storage.url.clone(), self.cluster, &mut c);
        if let Some(p) = self.storage.path {
            cfg.storage_path = base.join(p);
        } else {
            cfg.storage_path = base.join(&cfg.storage_path);
        }
        cfg.profiles_dir_explicit = self.profiles.dir.is_some();
        cfg.profiles_dir = base.join(self.profiles.dir.as_deref().unwrap_or("sip-profiles"));

        let mut names = HashSet::new();
        for (i, t) in self.tokens.into_iter().enumerate() {
            let key = |f: &str| format!("tokens[{i}].{f}");
            if !names.insert(t.name.clone()) {
                c.push(key("name"), format!("duplicate token name `{}`", t.name));
            }
            let sha256 = match (&t.secret, &t.sha256) {
                (Some(s), None) => {
                    if s.len() < 8 {
                        c.push(key("secret"), "too short (8 characters at least)");
                    }
                    use sha2::Digest;
                    sha2::Sha256::digest(s.as_bytes()).into()
                }
                (None, Some(h)) => match hex::decode(h).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                    Some(h) => h,
                    None => {
                        c.push(key("sha256"), "not 64 hex digits");
                        [0; 32]
                    }
                },
                _ => {
                    c.push(key("secret"), "give exactly one of `secret` and `sha256`");
                    [0; 32]
                }
            };
            let mut scopes = Vec::new();
            for (j, s) in t.scopes.iter().enumerate() {
                match Scope::parse(s) {
                    Some(sc) => scopes.push(sc),
                    None => c.push(format!("tokens[{i}].scopes[{j}]"), format!("`{s}` is not a scope (callbacks:read, callbacks:write, admin)")),
                }
            }
            cfg.tokens.push(Token { name: t.name, sha256, scopes });
        }

        if !self.queues.is_empty() {
            cfg.queues.clear();
        }
        if let Some(v) = &self.compliance.quiet_hours {
            cfg.calling_hours = c.check(
                "compliance.quiet_hours".to_string(),
                crate::window::WeeklyHours::parse_daily(v).map_err(|e| format!("`{v}`: {e} (the hours calls are allowed, e.g. \"08:00-21:00\")")),
            );
        }
        for (i, rq) in self.queues.into_iter().enumerate() {
            let q = queue::validate(rq, &format!("queues[{i}]"), &mut c);
            if cfg.queue(&q.name).is_some() {
                c.push(format!("queues[{i}].name"), format!("duplicate queue `{}`", q.name));
            }
            if let Some(allowed) = cfg.calling_hours {
                if q.hours.within_daily(allowed).is_none() {
                    c.push(format!("queues[{i}].hours"), format!("no hour of `{}` is inside compliance.quiet_hours", q.hours));
                }
            }
            let mut q = q;
            q.quiet = cfg.calling_hours;
            cfg.queues.push(q);
        }

        for (i, a) in self.agents.into_iter().enumerate() {
            let valid_user = !a.id.is_empty()
                && a.id.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.+".contains(ch));
            if !valid_user {
                c.push(format!("agents[{i}].id"), format!("`{}` is not a SIP user name (letters, digits, - _ . +)", a.id));
            }
            if cfg.agent(&a.id).is_some() {
                c.push(format!("agents[{i}].id"), format!("duplicate agent `{}`", a.id));
            }
            if a.password.is_empty() {
                c.push(format!("agents[{i}].password"), "must not be empty");
            }
            cfg.agents.push(Agent { id: a.id, password: a.password, queues: a.queues });
        }

        for (i, d) in self.dids.into_iter().enumerate() {
            if !is_e164(&d.number) {
                c.push(format!("dids[{i}].number"), format!("`{}` is not an E.164 number like +15550100", d.number));
            }
            if let Some(q) = d.queue.as_deref().filter(|q| cfg.queue(q).is_none()) {
                c.push(format!("dids[{i}].queue"), format!("no queue named `{q}`"));
            }
            cfg.dids.push(DidOverride { number: d.number, queue: d.queue, greeting: d.greeting });
        }
        for (i, w) in self.webhooks.into_iter().enumerate() {
            if let Some(w) = webhook::validate(i, w, &mut c) {
                cfg.webhooks.push(w);
            }
        }
        cfg
    }
}

fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("`{s}` is not a port range like 20000-20999");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b < a.saturating_add(1) {
        return Err(format!("`{s}` must hold at least one even/odd port pair (RTP and RTCP)"));
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests;
