//! Test harness shared by the integration tests: runs the real `redial` binary in a
//! temporary directory with a generated `redial.toml` and `sip-profiles/`, on free
//! loopback ports, and runs SIPp scenarios from `tests/sipp/` with timeouts.
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

/// How long `redial serve` may take to log `redial ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// A configuration for an in-process endpoint on a free port, with one
/// trunk that neither registers nor pings and answers for `did`.
pub fn endpoint_config(dir: &Path, did: &str) -> redial::config::Config {
    let sip = free_port();
    std::fs::create_dir_all(dir.join("sip-profiles")).unwrap();
    std::fs::write(dir.join("redial.toml"), format!("[sip]\nlisten = \"127.0.0.1:{sip}\"\n[http]\nlisten = \"127.0.0.1:0\"\n")).unwrap();
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
    sip_port: Option<u16>,
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

    /// Extra TOML appended to `redial.toml` (e.g. `[[queues]]`).
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    pub fn sip_port(mut self, port: u16) -> Self {
        self.sip_port = Some(port);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Writes the files and starts `redial serve`, waiting for `redial ready`.
    pub fn start(self) -> Redial {
        let dir = tempfile::tempdir().expect("tempdir");
        let sip_port = self.sip_port.unwrap_or_else(free_port);
        let http_port = free_port();
        let mut toml = format!(
            "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\nrealm = \"redial\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
             [storage]\npath = \"data/redial.redb\"\n\n[profiles]\ndir = \"sip-profiles\"\n\n"
        );
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
        Redial::spawn(dir, sip_port, http_port, &self.env)
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
    fn spawn(dir: tempfile::TempDir, sip_port: u16, http_port: u16, env: &[(String, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redial"));
        cmd.arg("serve")
            .arg("--config")
            .arg(dir.path().join("redial.toml"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", std::env::var("REDIAL_TEST_LOG").unwrap_or_else(|_| "info".into()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn redial");
        let logs = Logs::default();
        let stderr = child.stderr.take().expect("stderr");
        let l2 = logs.clone();
        let echo = std::env::var_os("REDIAL_TEST_ECHO").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("[redial] {line}");
                }
                l2.push(line);
            }
        });
        let mut r = Redial {
            dir,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            logs,
            child: Some(child),
        };
        if r.logs.wait_for(&["redial ready"], READY_TIMEOUT).is_none() {
            let status = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!("redial did not become ready (exit: {status:?}); logs:\n{}", r.logs.lines().join("\n"));
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
    port: u16,
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
            port: free_port(),
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
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn local_port(&self) -> u16 {
        self.port
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

    fn command(&self, dir: &Path) -> Command {
        let mut c = Command::new("sipp");
        c.current_dir(dir)
            .arg("-sf")
            .arg(&self.scenario)
            .args(["-i", &self.local_ip, "-p"])
            .arg(self.port.to_string())
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

    /// Starts SIPp in the background.
    pub fn spawn(&self) -> SippChild {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = self.command(dir.path()).spawn().expect("spawn sipp (is sip-tester installed?)");
        SippChild { child: Some(child), dir, started: Instant::now(), hard_timeout: self.timeout + Duration::from_secs(5) }
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

    /// Waits for SIPp to finish, or kills it at its hard timeout.
    pub fn wait(mut self) -> SippOutput {
        let mut child = self.child.take().expect("running");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
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

    /// Starts `redial serve` again on the same directory and ports.
    pub fn restart(&mut self, env: &[(String, String)]) {
        self.kill9();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let (sip, http) = (self.sip.port(), self.http.port());
        let fresh = Redial::spawn(dir, sip, http, env);
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
