//! A throw-away PostgreSQL cluster for tests: Debian's server binaries, run as
//! the unprivileged `postgres` user when the tests run as root, listening
//! only on a Unix socket in a temporary directory (no TCP port to collide on).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The newest installed server's `bin` directory.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server is installed (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    versions.pop().expect("a PostgreSQL server binary")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` as the `postgres` user when running as root (the server
/// refuses root). `setpriv` execs in place, so the child's pid is the
/// program's own and signals reach it.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// initdb + start; returns once it accepts connections.
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new().prefix("redial-pg").tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap().success();
            assert!(ok, "chown the cluster directory to postgres");
        }
        let out = as_owner(&bin_dir().join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "redial", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Postgres { dir, child: None };
        pg.run();
        pg
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("postgres.log")).unwrap();
        if is_root() {
            let _ = Command::new("chown").args(["postgres:postgres"]).arg(self.dir.path().join("postgres.log")).status();
        }
        let child = as_owner(&bin_dir().join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=", "-c", "max_connections=200", "-c", "shared_buffers=64MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.dir.path().join(".s.PGSQL.5432").exists() || !self.accepting() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited ({st}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "postgres did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn accepting(&self) -> bool {
        Command::new(bin_dir().join("pg_isready"))
            .arg("-h")
            .arg(self.dir.path())
            .arg("-q")
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A libpq-style connection string (Unix socket, trust authentication).
    pub fn url(&self) -> String {
        format!("host={} user=redial dbname=postgres", self.dir.path().display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server at once: SIGQUIT is PostgreSQL's immediate shutdown
    /// (every backend killed, no checkpoint; recovery runs at the next
    /// start), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGQUIT) };
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A proxy in front of a [`Postgres`] (on its own Unix socket) that loses
/// the answer to one COMMIT: the first transaction on a connection that
/// starts an attempt (`INSERT INTO redial_attempt_starts`) is committed by
/// the server, then the client's connection is closed before it reads the
/// answer — what a database crash or a network cut right after a commit
/// does. Every other message, and every connection after that, passes.
pub struct LostCommit {
    dir: tempfile::TempDir,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LostCommit {
    pub fn start(pg: &Postgres) -> LostCommit {
        use std::os::unix::net::UnixListener;
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let dir = tempfile::Builder::new().prefix("redial-pg-proxy").tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join(".s.PGSQL.5432")).unwrap();
        let upstream = pg.dir.path().join(".s.PGSQL.5432");
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = std::os::unix::net::UnixStream::connect(&upstream) else { break };
                let cut = Arc::new(AtomicBool::new(false));
                let (c2, s2, cut2, f2) = (client.try_clone().unwrap(), server.try_clone().unwrap(), cut.clone(), f.clone());
                std::thread::spawn(move || lost_commit_upstream(c2, s2, cut2, f2));
                std::thread::spawn(move || lost_commit_downstream(server, client, cut));
            }
        });
        LostCommit { dir, fired }
    }

    /// A connection string through the proxy.
    pub fn url(&self) -> String {
        format!("host={} user=redial dbname=postgres", self.dir.path().display())
    }

    /// Whether a COMMIT's answer was lost.
    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Client to server: forwards whole frontend messages (the startup message
/// has no type byte), arming `cut` just before the COMMIT to lose.
fn lost_commit_upstream(
    mut client: std::os::unix::net::UnixStream,
    mut server: std::os::unix::net::UnixStream,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let mut len = [0u8; 4];
    if client.read_exact(&mut len).is_err() {
        return;
    }
    let mut startup = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    if client.read_exact(&mut startup).is_err() || server.write_all(&len).is_err() || server.write_all(&startup).is_err() {
        return;
    }
    let mut starts_attempt = false;
    loop {
        let mut head = [0u8; 5];
        if client.read_exact(&mut head).is_err() {
            break;
        }
        let mut body = vec![0u8; (u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize).saturating_sub(4)];
        if client.read_exact(&mut body).is_err() {
            break;
        }
        let text = String::from_utf8_lossy(&body);
        starts_attempt |= head[0] == b'P' && text.contains("INSERT INTO redial_attempt_starts");
        if starts_attempt && head[0] == b'Q' && text.starts_with("COMMIT") && !fired.swap(true, Ordering::SeqCst) {
            cut.store(true, Ordering::SeqCst);
        }
        if server.write_all(&head).is_err() || server.write_all(&body).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}

/// Server to client: forwards whole backend messages until, with `cut`
/// armed, the server reports the COMMIT done; that answer is dropped and
/// both sides are closed.
fn lost_commit_downstream(mut server: std::os::unix::net::UnixStream, mut client: std::os::unix::net::UnixStream, cut: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    loop {
        let mut head = [0u8; 5];
        if server.read_exact(&mut head).is_err() {
            break;
        }
        let mut body = vec![0u8; (u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize).saturating_sub(4)];
        if server.read_exact(&mut body).is_err() {
            break;
        }
        if head[0] == b'C' && body.starts_with(b"COMMIT") && cut.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        if client.write_all(&head).is_err() || client.write_all(&body).is_err() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
}
