//! The one test harness shared by the integration tests.
//!
//! - [`Setup`] writes a `redial.toml` and `sip-profiles/` into a temporary
//!   directory and starts the real `redial serve` on port 0 for SIP and HTTP;
//!   [`api::Server`] does the same with the API tests' fixed configuration.
//!   Both start the binary through [`serve`], which passes `--ready-file` and
//!   waits for that file: the ports in it are the ones the kernel gave, so no
//!   test ever guesses a free port that another test could take first.
//! - [`Sipp`] runs SIPp scenarios from `tests/sipp/` with timeouts; a SIPp
//!   must be told its own port (`-p`), so it is started first, retried on
//!   "address in use", and waited for until its socket is bound.
//! - [`api`] talks HTTP to a running server.
//!
//! ```ignore
//! mod common;
//! let r = common::Setup::new().agent("alice", "alice-pw").start();
//! let out = common::Sipp::new("options_uac.xml").remote(r.sip).calls(1).run();
//! assert!(out.ok(), "{out}");
//! ```
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod api;
pub mod cluster;

/// How long `redial serve` may take to write its ready file. Generous: a
/// loaded CI machine may be slow, and an early exit ends the wait at once.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A port for a *peer* that must be told its own port before it starts (SIPp
/// `-p`, baresip `sip_listen`), free for both UDP and TCP a moment ago. redial
/// itself always binds port 0. The peer may still lose the port to another
/// process before it binds; [`Sipp::spawn`] retries on "address in use".
pub fn peer_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// The addresses a `redial serve` bound, read from its `--ready-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub sip: SocketAddr,
    pub http: SocketAddr,
}

/// Starts `redial serve --config <config> --ready-file <dir>/ready.json` in
/// `dir` (`customize` adds environment and output redirections, `spawned`
/// takes the child's pipes) and waits until the ready file appears, ending
/// early if the process exits. `diagnostics` is called for the panic message
/// when it never gets ready.
pub fn serve(
    dir: &Path,
    config: &Path,
    customize: impl FnOnce(&mut Command),
    spawned: impl FnOnce(&mut Child),
    diagnostics: impl Fn() -> String,
) -> (Child, Bound) {
    let ready = dir.join("ready.json");
    // redial removes a stale file itself; this only makes a failed start of
    // this test obvious rather than reading an earlier run's ports.
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redial"));
    cmd.arg("serve").arg("--config").arg(config).arg("--ready-file").arg(&ready).current_dir(dir).stdin(Stdio::null());
    customize(&mut cmd);
    let mut child = cmd.spawn().expect("spawn redial");
    spawned(&mut child);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("ready file {text:?}: {e}"));
            let addr = |k: &str| v[k].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("ready file without {k}: {text}"));
            return (child, Bound { sip: addr("sip"), http: addr("http") });
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redial exited before it was ready ({status}):\n{}", diagnostics());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redial did not become ready within {READY_TIMEOUT:?}:\n{}", diagnostics());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A configuration for an in-process endpoint on port 0 (read the bound
/// address from the started endpoint's `local_addr`), with one trunk that
/// neither registers nor pings and answers for `did`.
pub fn endpoint_config(dir: &Path, did: &str) -> redial::config::Config {
    std::fs::create_dir_all(dir.join("sip-profiles")).unwrap();
    std::fs::write(dir.join("redial.toml"), "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    std::fs::write(
        dir.join("sip-profiles/carrier1.toml"),
        format!("proxy = \"sip:127.0.0.1:9\"\ndomain = \"carrier.test\"\nregister = false\noptions_ping = \"0\"\ndids = [\"{did}\"]\n"),
    )
    .unwrap();
    redial::config::Config::load(Some(&dir.join("redial.toml"))).unwrap()
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a SIPp scenario in `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    manifest_dir().join("tests/sipp").join(name)
}

/// What to write into the temporary configuration.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    agents: Vec<(String, String)>,
    profiles: Vec<(String, String)>,
    extra: String,
    sip: String,
    env: Vec<(String, String)>,
}

impl Setup {
    pub fn new() -> Self {
        Self::default()
    }

    /// An `[[agents]]` entry.
    pub fn agent(mut self, id: &str, password: &str) -> Self {
        self.agents.push((id.into(), password.into()));
        self
    }

    /// `sip-profiles/<name>.toml` with this content.
    pub fn profile(mut self, name: &str, toml: &str) -> Self {
        self.profiles.push((name.into(), toml.into()));
        self
    }

    /// Extra keys in `redial.toml`'s `[sip]` table (e.g. `tls_listen = "127.0.0.1:0"`).
    pub fn sip_toml(mut self, toml: &str) -> Self {
        self.sip.push_str(toml);
        self.sip.push('\n');
        self
    }

    /// Extra TOML appended to `redial.toml` (e.g. `[[queues]]`).
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Extra keys of the `[sip]` table (e.g. `t1 = "50ms"`).
    pub fn sip_keys(mut self, toml: &str) -> Self {
        self.sip.push_str(toml);
        self.sip.push('\n');
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Writes the files and starts `redial serve` on port 0, waiting until it is ready.
    pub fn start(self) -> Redial {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut toml = String::from(
            "[sip]\nlisten = \"127.0.0.1:0\"\nrealm = \"redial\"\n",
        );
        toml.push_str(&self.sip);
        toml.push_str("\n[http]\nlisten = \"127.0.0.1:0\"\n\n[storage]\npath = \"data/redial.redb\"\n\n[profiles]\ndir = \"sip-profiles\"\n\n");
        for (id, pw) in &self.agents {
            toml.push_str(&format!("[[agents]]\nid = \"{id}\"\npassword = \"{pw}\"\n\n"));
        }
        toml.push_str(&self.extra);
        std::fs::create_dir_all(dir.path().join("sip-profiles")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        std::fs::write(dir.path().join("redial.toml"), toml).expect("write config");
        for (name, body) in &self.profiles {
            std::fs::write(dir.path().join("sip-profiles").join(format!("{name}.toml")), body).expect("write profile");
        }
        Redial::spawn(dir, &self.env)
    }
}

/// Log lines of a child process, shared with the reader thread.
#[derive(Clone, Default)]
pub struct Logs {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Logs {
    fn push(&self, line: String) {
        let (m, c) = &*self.inner;
        m.lock().unwrap().push(line);
        c.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Lines containing every one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines().into_iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
    }

    /// Waits until a line contains every one of `needles`.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, c) = &*self.inner;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = c.wait_timeout(g, deadline - now).unwrap().0;
        }
    }
}

/// A running `redial serve`; killed on drop.
pub struct Redial {
    pub dir: tempfile::TempDir,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub logs: Logs,
    child: Option<Child>,
}

impl Redial {
    fn spawn(dir: tempfile::TempDir, env: &[(String, String)]) -> Self {
        let logs = Logs::default();
        let l2 = logs.clone();
        let echo = std::env::var_os("REDIAL_TEST_ECHO").is_some();
        let (child, bound) = serve(
            dir.path(),
            &dir.path().join("redial.toml"),
            |cmd| {
                cmd.stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .env("RUST_LOG", std::env::var("REDIAL_TEST_LOG").unwrap_or_else(|_| "info".into()));
                for (k, v) in env {
                    cmd.env(k, v);
                }
            },
            |child| {
                let stderr = child.stderr.take().expect("stderr");
                std::thread::spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        if echo {
                            eprintln!("[redial] {line}");
                        }
                        l2.push(line);
                    }
                });
            },
            || logs.lines().join("\n"),
        );
        let r = Redial { dir, sip: bound.sip, http: bound.http, logs, child: Some(child) };
        // The ready line is logged right after the ready file is written;
        // tests that read the log expect it there.
        if r.logs.wait_for(&["redial ready"], READY_TIMEOUT).is_none() {
            panic!("redial wrote its ready file but never logged `redial ready`:\n{}", r.logs.lines().join("\n"));
        }
        r
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let ok = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("kill").success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits for the process to exit, killing it after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Redial {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The outcome of a SIPp run.
#[derive(Debug)]
pub struct SippOutput {
    /// Exit code; `None` when it was killed at the timeout.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Contents of the `-trace_err` file, if any.
    pub errors: String,
    /// Contents of the `-trace_msg` file, if requested.
    pub messages: String,
    pub elapsed: Duration,
}

impl SippOutput {
    /// SIPp exits 0 when every call succeeded.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Number of messages SIPp received whose first line starts with `start`
    /// (e.g. `"REGISTER "`, `"SIP/2.0 200"`), from the `-trace_msg` log.
    pub fn received(&self, start: &str) -> usize {
        self.messages
            .split("message received")
            .skip(1)
            .filter(|block| block.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('[')).is_some_and(|l| l.starts_with(start)))
            .count()
    }
}

impl std::fmt::Display for SippOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sipp exit {:?} after {:?}\n--- stderr\n{}\n--- errors\n{}\n--- stdout (tail)\n{}",
            self.code,
            self.elapsed,
            self.stderr,
            self.errors,
            tail(&self.stdout, 40)
        )
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A SIPp invocation on loopback: `-i 127.0.0.1 -p <port>`, bounded by `-m`, `-timeout`
/// and a hard kill.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: PathBuf,
    remote: Option<SocketAddr>,
    /// `-p`; `None`: a fresh [`peer_port`] for every start.
    port: Option<u16>,
    calls: u32,
    rate: Option<u32>,
    timeout: Duration,
    tcp: bool,
    trace_msg: bool,
    timeout_is_error: bool,
    args: Vec<String>,
    local_ip: String,
}

/// A SIPp started in the background (a UAS waiting for redial).
pub struct SippChild {
    child: Option<Child>,
    port: u16,
    /// What SIPp printed on stderr when it had already exited at start.
    early_stderr: String,
    dir: tempfile::TempDir,
    started: Instant,
    hard_timeout: Duration,
}

impl Sipp {
    /// A scenario file from `tests/sipp/`.
    pub fn new(scenario_name: &str) -> Self {
        Self {
            scenario: scenario(scenario_name),
            remote: None,
            port: None,
            calls: 1,
            rate: None,
            timeout: Duration::from_secs(15),
            tcp: false,
            trace_msg: false,
            timeout_is_error: true,
            args: vec![],
            local_ip: "127.0.0.1".into(),
        }
    }

    /// The loopback address SIPp binds (`-i`); 127.0.0.1 unless set.
    pub fn local_ip(mut self, ip: &str) -> Self {
        self.local_ip = ip.into();
        self
    }
    pub fn remote(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }
    /// A fixed `-p`, for a peer redial was configured with before SIPp
    /// starts; without it every start takes a fresh port (read it from
    /// [`SippChild::port`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n;
        self
    }
    pub fn rate(mut self, per_s: u32) -> Self {
        self.rate = Some(per_s);
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// One TCP connection (`-t t1`).
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }
    pub fn trace_msg(mut self) -> Self {
        self.trace_msg = true;
        self
    }
    /// Without `-timeout_error`: reaching the global timeout is not a failure (windowed runs).
    pub fn timeout_ok(mut self) -> Self {
        self.timeout_is_error = false;
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    /// `-s user -au user -ap password`: the `[service]` and the `[authentication]` credentials.
    pub fn args_auth(self, user: &str, password: &str) -> Self {
        self.arg("-s").arg(user).arg("-au").arg(user).arg("-ap").arg(password)
    }
    /// `-set name value` (a scenario variable).
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.args.extend(["-set".to_string(), name.to_string(), value.to_string()]);
        self
    }

    fn command(&self, dir: &Path, port: u16) -> Command {
        let mut c = Command::new("sipp");
        c.current_dir(dir)
            .arg("-sf")
            .arg(&self.scenario)
            .args(["-i", &self.local_ip, "-p"])
            .arg(port.to_string())
            .args(["-m", &self.calls.to_string()])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .args(["-trace_err", "-error_file", "errors.log", "-nostdin"]);
        if self.timeout_is_error {
            c.arg("-timeout_error");
        }
        if self.trace_msg {
            c.args(["-trace_msg", "-message_file", "messages.log"]);
        }
        if self.tcp {
            c.args(["-t", "t1"]);
        }
        if let Some(r) = self.rate {
            c.args(["-r", &r.to_string()]);
        }
        c.args(&self.args);
        if let Some(r) = self.remote {
            c.arg(r.to_string());
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Starts SIPp in the background and returns once its socket is bound
    /// (so a UAS is listening before anything is sent to it). SIPp is told
    /// its port (`-p`) and another process may take it first: on "address
    /// in use" it is started again, on a fresh port unless one was fixed.
    pub fn spawn(&self) -> SippChild {
        const TRIES: u32 = 20;
        for attempt in 1..=TRIES {
            let port = self.port.unwrap_or_else(peer_port);
            let dir = tempfile::tempdir().expect("tempdir");
            let mut child = self.command(dir.path(), port).spawn().expect("spawn sipp (is sip-tester installed?)");
            let started = Instant::now();
            let hard_timeout = self.timeout + Duration::from_secs(5);
            let exited = wait_bound(&mut child, port, started + hard_timeout) == Started::Exited;
            let mut early_stderr = String::new();
            if exited {
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut early_stderr);
                }
                if early_stderr.contains("Address already in use") && attempt < TRIES {
                    let _ = child.wait();
                    if self.port.is_some() {
                        // The fixed port is held by someone else for now;
                        // give them a moment to let go of it.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    continue;
                }
            }
            return SippChild { child: Some(child), port, early_stderr, dir, started, hard_timeout };
        }
        unreachable!("the last try returns")
    }

    /// Runs SIPp to completion (killed `timeout + 5 s` at the latest).
    pub fn run(&self) -> SippOutput {
        self.spawn().wait()
    }
}

impl SippChild {
    /// Stops SIPp now (SIGUSR1 is not portable: it is killed) and collects
    /// what it printed and traced so far.
    pub fn stop(mut self) -> SippOutput {
        self.hard_timeout = Duration::ZERO;
        self.wait()
    }

    /// The port SIPp listens on (`-p`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for SIPp to finish, or kills it at its hard timeout.
    pub fn wait(mut self) -> SippOutput {
        let mut child = self.child.take().expect("running");
        let mut stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let early = std::mem::take(&mut self.early_stderr);
        let err_t = std::thread::spawn(move || {
            let mut s = early;
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
            }
            s
        });
        let deadline = self.started + self.hard_timeout;
        let code = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        SippOutput {
            code,
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
            errors: std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default(),
            messages: std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// How a peer's start went, from [`wait_bound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Started {
    Bound,
    Exited,
    TimedOut,
}

/// Waits until `child` has a UDP or TCP socket bound on `port`, from the
/// process's socket inodes in `/proc` (peers print nothing when they start
/// listening), or until it exits, or `deadline`.
fn wait_bound(child: &mut Child, port: u16, deadline: Instant) -> Started {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Started::Exited;
        }
        if socket_bound(child.id(), port) {
            return Started::Bound;
        }
        if Instant::now() >= deadline {
            return Started::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a peer that must be told its own port (`command` builds it for a
/// port) and returns once it has bound that port; when it does not (another
/// process took the port first), it is stopped and started again on another.
pub fn start_peer(command: impl FnMut(u16) -> Command) -> (Child, u16) {
    start_peer_binding(0, command)
}

/// [`start_peer`] for baresip, which binds more than the port it is told: with or
/// without TLS settings it opens TLS on port + 1 after UDP and TCP on port, and
/// gives up when that one is taken; so it is started once port + 1 is bound.
pub fn start_baresip(command: impl FnMut(u16) -> Command) -> (Child, u16) {
    start_peer_binding(1, command)
}

/// [`start_peer`], waiting for port + `last`: the last socket the peer opens.
fn start_peer_binding(last: u16, mut command: impl FnMut(u16) -> Command) -> (Child, u16) {
    for _ in 0..10 {
        let port = peer_port();
        let mut child = command(port).spawn().expect("spawn peer");
        match wait_bound(&mut child, port.wrapping_add(last), Instant::now() + Duration::from_secs(20)) {
            Started::Bound => return (child, port),
            Started::Exited | Started::TimedOut => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("the peer never bound its port in 10 starts");
}

fn socket_bound(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    let inodes: std::collections::HashSet<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let hex = format!(":{port:04X}");
    ["udp", "udp6", "tcp", "tcp6"].iter().any(|t| {
        std::fs::read_to_string(format!("/proc/net/{t}")).unwrap_or_default().lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 9 && f[1].ends_with(&hex) && inodes.contains(f[9])
        })
    })
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends one datagram and waits up to `timeout` for one back.
pub fn udp_exchange(to: SocketAddr, msg: &[u8], timeout: Duration) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.send_to(msg, to).ok()?;
    let mut buf = vec![0u8; 65_536];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A minimal OPTIONS from `local` (use the socket's own address in Via).
pub fn options_request(local: SocketAddr, transport: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:redial@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=t{call_id}\r\n\
         To: <sip:redial@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

pub mod kamailio;
pub mod pg;
pub mod phone;

/// The admin token [`Setup::with_token`] configures.
pub const TOKEN: &str = "test-admin-secret";

impl Setup {
    /// An admin `[[tokens]]` entry with secret [`TOKEN`].
    pub fn with_token(self) -> Self {
        self.extra_toml(&format!("[[tokens]]\nname = \"test\"\nsecret = \"{TOKEN}\"\nscopes = [\"admin\"]\n"))
    }
}

impl Redial {
    /// One API request with the [`TOKEN`]; any status is returned, with the
    /// body as JSON (`null` when empty or not JSON).
    pub fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let url = format!("http://{}{path}", self.http);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(10))).build().into();
        let auth = format!("Bearer {TOKEN}");
        let resp = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(&b),
            ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            ("PATCH", Some(b)) => agent.patch(&url).header("Authorization", &auth).send_json(&b),
            ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(&b),
            (m, _) => panic!("unsupported method {m}"),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// Polls `GET path` until `done` accepts the body, or panics after `timeout`.
    pub fn wait_json(&self, path: &str, timeout: Duration, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, v) = self.api("GET", path, None);
            if s == 200 && done(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting on {path}; last: {s} {v}\nlogs:\n{}", self.logs.lines().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts `redial serve` again on the same directory; it binds new
    /// ports (port 0), which `sip` and `http` then hold.
    pub fn restart(&mut self, env: &[(String, String)]) {
        self.kill9();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let fresh = Redial::spawn(dir, env);
        *self = fresh;
    }
}

/// A block of RTP ports (`media.ports`) that no other test process on this
/// machine uses while it is held: each running redial must have its own, or
/// a port one test just released can receive another test's stray RTP.
/// Blocks are claimed with an exclusive lock on a file per block.
pub struct PortBlock {
    pub range: String,
    _lock: std::fs::File,
}

impl PortBlock {
    pub fn claim() -> PortBlock {
        const FIRST: u16 = 10_000;
        const SIZE: u16 = 200;
        const BLOCKS: u16 = 100; // 10000-29999, below Linux's ephemeral ports
        let dir = std::env::temp_dir().join("redial-test-rtp-blocks");
        std::fs::create_dir_all(&dir).expect("lock dir");
        let start = (std::process::id() as u16).wrapping_mul(7) % BLOCKS;
        for i in 0..BLOCKS {
            let b = (start + i) % BLOCKS;
            let f = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(dir.join(format!("{b}.lock"))).expect("lock file");
            if f.try_lock().is_ok() {
                let lo = FIRST + b * SIZE;
                return PortBlock { range: format!("{lo}-{}", lo + SIZE - 1), _lock: f };
            }
        }
        panic!("every RTP port block is in use");
    }
}
pub mod world;
