//! The API tests' server: the real `redial` binary with a fixed test
//! configuration (queues, agents, tokens), started through [`super::serve`]
//! on port 0, and a tiny HTTP client to talk to it.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const ADMIN: &str = "admin-secret-0001";
pub const RW: &str = "rw-secret-0001";
pub const RO: &str = "ro-secret-0001";

/// The default test configuration: SIP and HTTP on port 0, an always-open
/// `support` queue, a business-hours `sales` queue, two agents, three tokens.
/// The text is in `api-test.toml` and `api-test-tokens.toml` beside this
/// file, which the browser tests (tests/browser/harness.mjs) read too; the
/// token secrets there are [`ADMIN`], [`RW`] and [`RO`].
pub fn config(storage: &Path, profiles: &Path, with_tokens: bool) -> String {
    let tokens = if with_tokens { include_str!("api-test-tokens.toml") } else { "" };
    include_str!("api-test.toml")
        .replace("@STORAGE@", &storage.display().to_string())
        .replace("@PROFILES@", &profiles.display().to_string())
        .replace("@TOKENS@", tokens)
}

/// A running `redial serve`.
pub struct Server {
    pub dir: PathBuf,
    /// The HTTP port of the current process (a restart binds a new one).
    pub port: u16,
    pub sip: SocketAddr,
    pub child: Option<Child>,
    /// What the current process printed on stdout before it was ready.
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
        let profiles = dir.join("sip-profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let config = dir.join("redial.toml");
        std::fs::write(&config, self::config(&dir.join("data/redial.redb"), &profiles, with_tokens)).unwrap();
        let mut s = Server {
            dir: dir.to_path_buf(),
            port: 0,
            sip: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            stdout_lines: vec![],
            config,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log,
        };
        s.spawn();
        s
    }

    /// (Re)starts the process on the same config and database, waiting until
    /// it is ready; `port` and `sip` then hold its new addresses.
    pub fn spawn(&mut self) {
        // stdout goes to a file: everything printed before the ready file was
        // written is in it once the ready file is there, with no reader to race.
        let stdout_path = self.dir.join("stdout.log");
        let (child, bound) = super::serve(
            &self.dir,
            &self.config,
            |cmd| {
                cmd.env("RUST_LOG", "warn").stdout(std::fs::File::create(&stdout_path).unwrap()).stderr(Stdio::null());
                if let Some(log) = &self.log {
                    let f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
                    cmd.env("RUST_LOG", "warn,redial::dialler=info").env("NO_COLOR", "1").stderr(f);
                }
                for (k, v) in &self.env {
                    cmd.env(k, v);
                }
            },
            |_| {},
            || std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        );
        self.child = Some(child);
        self.port = bound.http.port();
        self.sip = bound.sip;
        self.stdout_lines = std::fs::read_to_string(&stdout_path).unwrap().lines().map(str::to_string).collect();
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


/// RFC 3339 UTC for now + `secs`.
pub fn in_secs(secs: i64) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + secs;
    chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0).unwrap().to_rfc3339()
}

/// Server-sent events as read by [`sse`]: (id, event, data).
pub type Sse = Vec<(u64, String, Value)>;

/// Reads server-sent events from `/v1/events` (with `Last-Event-ID: last`
/// when given) until `done` says so; panics when the stream is idle for 30 s.
pub fn sse(port: u16, token: &str, last: Option<u64>, done: impl Fn(&Sse) -> bool) -> Sse {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n");
    if let Some(l) = last {
        req += &format!("Last-Event-ID: {l}\r\n");
    }
    req += "\r\n";
    conn.write_all(req.as_bytes()).unwrap();
    let mut lines = BufReader::new(conn).lines();
    let mut out = Vec::new();
    let (mut id, mut event) = (None, String::new());
    while !done(&out) {
        let line = lines.next().expect("stream open").expect("read");
        // Chunked framing lines (sizes) are not SSE fields; fields are below.
        if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
            if let Some(i) = id.take() {
                out.push((i, std::mem::take(&mut event), serde_json::from_str(v).unwrap_or(Value::Null)));
            }
        }
    }
    out
}
