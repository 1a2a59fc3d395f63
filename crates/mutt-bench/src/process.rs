//! Child processes of a benchmark: start, wait for health, read CPU time and RSS from /proc.

use mutt_service::process::status_value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Service {
    pub child: Child,
    pub name: String,
}

impl Service {
    pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<Self> {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        Ok(Self { child, name: name.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB (VmRSS), and the peak (VmHWM).
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = status_of(self.pid());
        (status_value(&status, "VmRSS:"), status_value(&status, "VmHWM:"))
    }

    /// The file-backed part of the resident set now, in KiB (RssFile): mostly the binary's
    /// code, shared with every process running it and given back by the kernel under pressure.
    pub fn file_backed_kib(&self) -> u64 {
        status_kib(self.pid(), "RssFile:")
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid())
    }

    pub fn terminate(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A KiB field of /proc/<pid>/status (`VmRSS:`, `VmHWM:`, `RssFile:`); 0 if unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    status_value(&status_of(pid), field)
}

fn status_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

/// CPU seconds (utime + stime) of a process from /proc/<pid>/stat.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    stat_seconds(pid, 11..13)
}

/// CPU seconds of a process and of its children that have exited (cutime + cstime): for a
/// server, whose forks (Redis's AOF rewrites, PostgreSQL's autovacuum workers and other
/// short-lived backends) do its work too.
pub fn cpu_seconds_with_children_of(pid: u32) -> f64 {
    stat_seconds(pid, 11..15)
}

/// CPU seconds of the children a process reaped (cutime + cstime): Redis's AOF rewrites.
pub fn reaped_children_cpu_seconds_of(pid: u32) -> f64 {
    stat_seconds(pid, 13..15)
}

/// The sum of the /proc/<pid>/stat fields `fields` (counted after the command name's ")";
/// utime, stime, cutime, cstime are 11 to 14), in seconds.
fn stat_seconds(pid: u32, fields: std::ops::Range<usize>) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.filter_map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok())).sum();
    ticks / 100.0
}

/// Waits until `url` answers 200.
pub async fn wait_healthy(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} did not become healthy within {timeout:?}")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child's CPU shows in its parent's figure with children once the child is reaped, and
    /// not in the parent's own: the way Redis's AOF rewrites are counted.
    #[test]
    fn a_reaped_childs_cpu_counts_with_the_children() {
        let me = std::process::id();
        let (own, with_children) = (cpu_seconds_of(me), cpu_seconds_with_children_of(me));
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let children = (cpu_seconds_with_children_of(me) - with_children) - (cpu_seconds_of(me) - own);
        assert!(children >= 0.05, "the child's busy loop is counted: {children} s");
    }
}
