//! A cgroup v1 CPU quota for the endpoint's threads, so that a flood bench can offer several
//! times the rate the endpoint sustains: without it SIPp shares the cores with the endpoint,
//! falls behind its rate and sends its ACKs late, and the figure measures the load generator.
//! Only the threads that enter the quota are limited ([`Quota::enter_thread`], called by the
//! endpoint runtime's `on_thread_start`). SIPp and the RTP phones go into a second cgroup
//! with no quota ([`Quota::load_dir`]). Both have a large `cpu.shares`, so that on a
//! machine busy with other work each side still gets the CPU it needs: the quota, not
//! the neighbours, is what limits the endpoint. Both cgroups are removed on drop (also when
//! a run panics).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup/cpu";
/// A short period spreads the quota over the second: with the default 100 ms the endpoint
/// would run 40 ms and then stall 60 ms, longer than an RTP packet's interval.
const PERIOD_US: u32 = 10_000;

/// 8× a task's default weight (1024): ahead of other programs' tasks, not of the kernel.
const SHARES: u32 = 8192;

#[derive(Debug)]
pub struct Quota {
    dir: PathBuf,
    /// The load generator's cgroup: no quota, the same shares.
    load: PathBuf,
    /// The cgroup this process started in, where threads go back before removal.
    home: PathBuf,
    pub pct: u32,
}

fn write(path: &Path, value: impl ToString) -> Result<(), String> {
    std::fs::write(path, value.to_string()).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// This thread's id, from `/proc/thread-self` (`PID/task/TID`).
pub fn tid() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The cpu controller's cgroup of this process, from `/proc/self/cgroup` (`N:cpu,cpuacct:/path`).
fn home() -> Result<PathBuf, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = text
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == "cpu").then(|| path.to_string())
        })
        .ok_or("no cgroup v1 cpu controller in /proc/self/cgroup")?;
    Ok(Path::new(ROOT).join(path.trim_start_matches('/')))
}

impl Quota {
    /// A new cgroup limited to `pct` % of one core.
    pub fn create(pct: u32) -> Result<Quota, String> {
        let home = home()?;
        // Those a killed bench left: removal fails, harmlessly, for one with tasks.
        for e in std::fs::read_dir(&home).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("redial-overload-") {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let dir = home.join(format!("redial-overload-{}", std::process::id()));
        let load = home.join(format!("redial-overload-{}-load", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let q = Quota { dir, load, home, pct };
        std::fs::create_dir(&q.load).map_err(|e| format!("creating {}: {e}", q.load.display()))?;
        write(&q.dir.join("cpu.cfs_period_us"), PERIOD_US)?;
        write(&q.dir.join("cpu.cfs_quota_us"), u64::from(PERIOD_US) * u64::from(pct) / 100)?;
        write(&q.dir.join("cpu.shares"), SHARES)?;
        write(&q.load.join("cpu.shares"), SHARES)?;
        Ok(q)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup for SIPp and the phones.
    pub fn load_dir(&self) -> &Path {
        &self.load
    }

    /// Moves the calling thread into the quota (cgroup v1 places threads one by one).
    pub fn enter_thread(dir: &Path) {
        Self::enter(dir, "tasks")
    }

    /// Moves a whole process (SIPp) into a cgroup.
    pub fn enter_process(dir: &Path, pid: u32) {
        if let Err(e) = write(&dir.join("cgroup.procs"), pid) {
            eprintln!("{e}: process {pid} runs outside {}", dir.display());
        }
    }

    fn enter(dir: &Path, file: &str) {
        let Some(tid) = tid() else { return eprintln!("no thread id: this thread runs without the quota") };
        if let Err(e) = write(&dir.join(file), tid) {
            eprintln!("{e}: this thread runs without the quota");
        }
    }

    /// Periods in which the quota was used up, and the time the threads waited for it (ms).
    pub fn throttled(&self) -> (u64, u64) {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let get = |k: &str| stat.lines().find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok()).unwrap_or(0);
        (get("nr_throttled "), get("throttled_time ") / 1_000_000)
    }

    /// The cgroup a process `pid` is in, for the cpu controller (to show SIPp's is not the quota).
    pub fn cgroup_of(pid: u32) -> String {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        text.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "cpu"))).unwrap_or("?").to_string()
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        // Threads still inside (a runtime not yet gone) go home first: a cgroup with tasks
        // cannot be removed. Exiting threads may linger for a moment, hence the retries.
        for dir in [&self.dir, &self.load] {
            let mut removed = false;
            for _ in 0..100 {
                for tid in std::fs::read_to_string(dir.join("tasks")).unwrap_or_default().lines() {
                    let _ = std::fs::write(self.home.join("tasks"), tid);
                }
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    removed = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if !removed {
                eprintln!("could not remove {}", dir.display());
            }
        }
    }
}
