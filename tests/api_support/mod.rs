//! Runs the real `redial` binary on free loopback ports with a temporary
//! config and database, and talks HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN: &str = "admin-secret-0001";
pub const RW: &str = "rw-secret-0001";
pub const RO: &str = "ro-secret-0001";

/// A loopback TCP port that was free a moment ago (bound, then dropped).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port free for both UDP and TCP (SIP listens on both).
pub fn free_sip_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// The default test configuration: an always-open `support` queue, a
/// business-hours `sales` queue, two agents, three tokens.
pub fn config(http: u16, sip: u16, storage: &Path, profiles: &Path, with_tokens: bool) -> String {
    let tokens = if with_tokens {
        format!(
            r#"
[[tokens]]
name = "admin"
secret = "{ADMIN}"
scopes = ["admin"]

[[tokens]]
name = "crm"
secret = "{RW}"
scopes = ["callbacks:read", "callbacks:write"]

[[tokens]]
name = "viewer"
secret = "{RO}"
scopes = ["callbacks:read"]
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"
[sip]
listen = "127.0.0.1:{sip}"

[http]
listen = "127.0.0.1:{http}"

[storage]
path = "{storage}"

[profiles]
dir = "{profiles}"
{tokens}
[[agents]]
id = "alice"
password = "alice-pw"
queues = ["support"]

[[agents]]
id = "bob"
password = "bob-pw"
queues = ["sales"]

[[queues]]
name = "support"
timezone = "UTC"
hours = ["mon-sun 00:00-24:00"]

[[queues]]
name = "sales"
timezone = "America/New_York"
hours = ["mon-fri 09:00-17:00"]
"#,
        storage = storage.display(),
        profiles = profiles.display()
    )
}

/// A running `redial serve`.
pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub stdout_lines: Vec<String>,
    pub config: PathBuf,
    env: Vec<(String, String)>,
    /// When set, stderr is appended here with the dialler's info lines.
    pub log: Option<PathBuf>,
}

impl Server {
    /// Starts a server in a fresh temporary directory.
    pub fn start(dir: &Path, with_tokens: bool, env: &[(&str, &str)]) -> Server {
        Self::start_logged(dir, with_tokens, env, None)
    }

    /// Like [`Server::start`], appending stderr to `log`.
    pub fn start_logged(dir: &Path, with_tokens: bool, env: &[(&str, &str)], log: Option<PathBuf>) -> Server {
        let port = free_tcp_port();
        let profiles = dir.join("sip-profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let config = dir.join("redial.toml");
        std::fs::write(&config, self::config(port, free_sip_port(), &dir.join("data/redial.redb"), &profiles, with_tokens)).unwrap();
        let mut s = Server {
            dir: dir.to_path_buf(),
            port,
            child: None,
            stdout_lines: vec![],
            config,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log,
        };
        s.spawn();
        s
    }

    /// (Re)starts the process on the same config and database.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redial"));
        cmd.arg("serve").arg("--config").arg(&self.config).current_dir(&self.dir);
        cmd.env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::null());
        if let Some(log) = &self.log {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
            cmd.env("RUST_LOG", "warn,redial::dialler=info").env("NO_COLOR", "1").stderr(f);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn redial");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = try_request(self.port, "GET", "/healthz", None, None, &[]) {
                break;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("redial exited during start: {st}");
            }
            assert!(Instant::now() < deadline, "redial did not answer /healthz");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.stdout_lines = rx.try_iter().collect();
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().unwrap()
    }

    pub fn req(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        request(self.port, method, path, token, body, &[]).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn req_h(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        raw(self.port, method, path, token, body, headers).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status, JSON body (or the text as a JSON string), lower-cased headers.
pub type Answer = (u16, Value, Vec<(String, String)>);

/// A tiny HTTP/1.1 client over a TcpStream (one request per connection).
pub fn raw(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PATCH" || method == "PUT" {
        req += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    s.write_all(req.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("no header end: {text:?}")))?;
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other("no status"))?;
    let hdrs: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let chunked = hdrs.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    let v = if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::String(body)) };
    Ok((status, v, hdrs))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out += &rest[..n];
        s = &rest[n + 2..];
    }
    out
}

pub fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>, headers: &[(&str, &str)]) -> std::io::Result<(u16, Value)> {
    raw(port, method, path, token, body, headers).map(|(s, v, _)| (s, v))
}

pub fn try_request(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>, headers: &[(&str, &str)]) -> std::io::Result<(u16, Value)> {
    request(port, method, path, token, body, headers)
}

/// RFC 3339 UTC for now + `secs`.
pub fn in_secs(secs: i64) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + secs;
    chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0).unwrap().to_rfc3339()
}
