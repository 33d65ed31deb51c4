//! Nodes of a cluster for the tests: `redial serve` processes on one throw-away
//! PostgreSQL, each with its own directory, log and ports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{request, ADMIN};

pub const SHARDS: u32 = 12;

pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub sip: std::net::SocketAddr,
    unlimited: bool,
}

impl Node {
    /// A node of the cluster on `url`. With `trunk` = (front, carrier) it
    /// calls customers of queue `support` through the front to the carrier;
    /// without, the queue has no trunk and a hand-over ends its attempt
    /// `failed` at once.
    pub fn start(root: &Path, name: &str, url: &str, trunk: Option<(SocketAddr, SocketAddr)>) -> Node {
        Self::start_with(root, name, url, trunk, true, "")
    }

    /// Like [`Node::start`]; `unlimited` = false dials only the configured agents
    /// (alice in queue `support`, bob in `sales`), as they register; `queue` is added
    /// to queue `support`'s table (e.g. `mode = "agent_first"`).
    pub fn start_with(root: &Path, name: &str, url: &str, trunk: Option<(SocketAddr, SocketAddr)>, unlimited: bool, queue: &str) -> Node {
        Self::start_extra(root, name, url, trunk, unlimited, queue, "")
    }

    /// Like [`Node::start_with`], with `extra` appended to the configuration
    /// (e.g. `[[webhooks]]` tables).
    pub fn start_extra(root: &Path, name: &str, url: &str, trunk: Option<(SocketAddr, SocketAddr)>, unlimited: bool, queue: &str, extra: &str) -> Node {
        let dir = root.join(name);
        let profiles = dir.join("sip-profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let mut cfg = super::api::config(&dir.join("unused.redb"), &profiles, true);
        if let Some((front, carrier)) = trunk {
            // The Request-URI names the carrier; every request goes to the front.
            std::fs::write(
                profiles.join("carrier.toml"),
                format!("proxy = \"sip:{front}\"\ndomain = \"{carrier}\"\nregister = false\ncaller_id = \"+15550100\"\ncodecs = [\"PCMU\"]\noptions_ping = \"0\"\n"),
            )
            .unwrap();
            cfg = cfg.replacen(
                "name = \"support\"\n",
                "name = \"support\"\nprofile = \"carrier\"\nmax_attempts = 2\nretry_delay = \"1s\"\n",
                1,
            );
        }
        let cfg = cfg.replacen("name = \"support\"\n", &format!("name = \"support\"\n{queue}"), 1);
        let storage = format!("[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
        let cfg = cfg.replacen("[storage]\n", &storage, 1).replacen(&format!("path = \"{}\"\n", dir.join("unused.redb").display()), "", 1);
        let cfg = format!(
            "{cfg}\n[cluster]\nnode = \"{name}\"\nshards = {SHARDS}\nlease = \"3s\"\nrenew_every = \"500ms\"\nmargin = \"1s\"\n{extra}"
        );
        let config = dir.join("redial.toml");
        std::fs::write(&config, cfg).unwrap();
        let log = dir.join("redial.log");
        let mut n = Node { name: name.into(), dir, log, child: None, port: 0, sip: ([127, 0, 0, 1], 0).into(), unlimited };
        n.spawn(&config);
        n
    }

    fn spawn(&mut self, config: &Path) {
        let unlimited = if self.unlimited { "1" } else { "" };
        let stdout = self.dir.join("stdout.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let (child, bound) = super::serve(
            &self.dir,
            config,
            |cmd| {
                cmd.env("RUST_LOG", "warn,redial::dialler=info,redial::cluster=info")
                    .env("NO_COLOR", "1")
                    .env("REDIAL_DEV_UNLIMITED_AGENTS", unlimited)
                    .env("REDIAL_API_RATE", "1000000")
                    .env("REDIAL_API_BURST", "1000000")
                    .stdout(std::fs::File::create(&stdout).unwrap())
                    .stderr(Stdio::from(log));
            },
            |_| {},
            || std::fs::read_to_string(&self.log).unwrap_or_default(),
        );
        self.child = Some(child);
        self.port = bound.http.port();
        self.sip = bound.sip;
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Every hand-over this node's dialler logged: (callback, attempt).
    pub fn hand_overs(&self) -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("callback due"))
            .filter_map(|line| {
                let field = |k: &str| line.split(&format!("{k}=")).nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string);
                Some((field("callback")?, field("attempt")?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn get(port: u16, path: &str, token: &str) -> Value {
    let (st, v) = request(port, "GET", path, Some(token), None, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every shard leased by a live node, and each of `nodes` holding some.
pub fn balanced(port: u16, nodes: &[&str]) -> bool {
    let v = get(port, "/v1/cluster", ADMIN);
    let held: HashMap<String, i64> =
        v["nodes"].as_array().unwrap().iter().filter(|n| n["live"] == true).map(|n| (n["node"].as_str().unwrap().to_string(), n["shards"].as_i64().unwrap())).collect();
    nodes.iter().all(|n| held.get(*n).copied().unwrap_or(0) > 0) && held.values().sum::<i64>() == i64::from(SHARDS)
}

