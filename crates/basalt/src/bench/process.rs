//! What a broker running as a local process spent during a bench: CPU seconds (user and
//! system, from `/proc/<pid>/stat`) and memory (resident set sampled during the bench, and the
//! kernel's high-water mark `VmHWM` from `/proc/<pid>/status`).
//!
//! Beside the broker's CPU time, a watch reads this bench process's own (every client thread it
//! runs), so a report says whether the client or the broker had the CPU to spare.
//!
//! The resident set is read every [`SAMPLE_INTERVAL`] by a thread of its own, so its peak is
//! the largest sample, a lower bound of the true peak; `VmHWM` is exact but covers the
//! process's whole life, not only the bench.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::Result;

/// How often the resident set is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// Clock ticks per second of the times in `/proc/<pid>/stat`: `USER_HZ`, which Linux fixes at
/// 100 for every architecture's user-space interface.
const TICKS_PER_S: f64 = 100.0;

/// What the broker spent while a bench ran.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BrokerUsage {
    pub(crate) pid: u32,
    /// User plus system CPU time.
    pub(crate) cpu_s: f64,
    pub(crate) user_cpu_s: f64,
    pub(crate) system_cpu_s: f64,
    /// User plus system CPU time of this bench process (the clients) over the same time.
    pub(crate) client_cpu_s: f64,
    /// Largest resident set seen while sampling.
    pub(crate) rss_peak_bytes: u64,
    /// The kernel's peak resident set over the process's life (`VmHWM`), at the end.
    pub(crate) vm_hwm_bytes: u64,
}

impl BrokerUsage {
    /// Such as `1.23 s CPU, 45.6 MiB peak RSS`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "broker pid {}: {:.2} s CPU ({:.2} user, {:.2} system), peak RSS {:.1} MiB sampled, \
             VmHWM {:.1} MiB; the bench client: {:.2} s CPU",
            self.pid,
            self.cpu_s,
            self.user_cpu_s,
            self.system_cpu_s,
            self.rss_peak_bytes as f64 / (1 << 20) as f64,
            self.vm_hwm_bytes as f64 / (1 << 20) as f64,
            self.client_cpu_s,
        )
    }
}

/// A broker process being watched; [`BrokerWatch::finish`] says what it spent since
/// [`BrokerWatch::start`].
#[derive(Debug)]
pub(crate) struct BrokerWatch {
    pid: u32,
    cpu_at_start: (f64, f64),
    client_cpu_at_start: f64,
    stop: Arc<AtomicBool>,
    rss_peak_bytes: Arc<AtomicU64>,
    sampler: Option<JoinHandle<()>>,
}

impl BrokerWatch {
    /// Starts watching `pid`; fails if the process cannot be read.
    pub(crate) fn start(pid: u32) -> Result<BrokerWatch> {
        let cpu_at_start = cpu_seconds(pid)?;
        let client_cpu_at_start = own_cpu_seconds()?;
        let rss_peak_bytes = Arc::new(AtomicU64::new(status_bytes(pid, "VmRSS:")?));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&rss_peak_bytes));
            std::thread::Builder::new()
                .name("bench-broker-rss".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(rss) = status_bytes(pid, "VmRSS:") {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                        std::thread::sleep(SAMPLE_INTERVAL);
                    }
                })?
        };
        Ok(BrokerWatch {
            pid,
            cpu_at_start,
            client_cpu_at_start,
            stop,
            rss_peak_bytes,
            sampler: Some(sampler),
        })
    }

    /// Starts watching `pid` if there is one.
    pub(crate) fn maybe_start(pid: Option<u32>) -> Result<Option<BrokerWatch>> {
        pid.map(BrokerWatch::start).transpose()
    }

    /// Stops watching and says what the broker spent.
    pub(crate) fn finish(mut self) -> Result<BrokerUsage> {
        let (user, system) = cpu_seconds(self.pid)?;
        let client = own_cpu_seconds()?;
        let rss = status_bytes(self.pid, "VmRSS:")?;
        let vm_hwm_bytes = status_bytes(self.pid, "VmHWM:")?;
        self.stop_sampler();
        let (user0, system0) = self.cpu_at_start;
        Ok(BrokerUsage {
            pid: self.pid,
            cpu_s: (user - user0) + (system - system0),
            user_cpu_s: user - user0,
            system_cpu_s: system - system0,
            client_cpu_s: (client - self.client_cpu_at_start).max(0.0),
            rss_peak_bytes: self.rss_peak_bytes.load(Ordering::Relaxed).max(rss),
            vm_hwm_bytes,
        })
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}

impl Drop for BrokerWatch {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}

/// Finishes an optional watch.
pub(crate) fn finish(watch: Option<BrokerWatch>) -> Result<Option<BrokerUsage>> {
    watch.map(BrokerWatch::finish).transpose()
}

/// User and system CPU seconds of `pid`.
fn cpu_seconds(pid: u32) -> Result<(f64, f64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_stat_times(&stat)
        .map(|(user, system)| (user as f64 / TICKS_PER_S, system as f64 / TICKS_PER_S))
        .ok_or_else(|| format!("{path} has no CPU times").into())
}

/// User plus system CPU seconds of this process, every thread counted.
pub(crate) fn own_cpu_seconds() -> Result<f64> {
    let (user, system) = cpu_seconds(std::process::id())?;
    Ok(user + system)
}

/// Every process now: (pid, parent pid, user plus system ticks).
fn all_processes() -> Result<Vec<(u32, u32, u64)>> {
    let mut stats = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(entry.path().join("stat"))
            && let (Some(ppid), Some((user, system))) =
                (parse_stat_ppid(&stat), parse_stat_times(&stat))
        {
            stats.push((pid, ppid, user + system));
        }
    }
    Ok(stats)
}

/// `root` and every process below it in `stats`, `root` first; fails if `root` is not there.
fn tree_of(root: u32, stats: &[(u32, u32, u64)]) -> Result<Vec<u32>> {
    if !stats.iter().any(|&(pid, _, _)| pid == root) {
        return Err(format!("process {root} is not running").into());
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        for &(child, parent, _) in stats {
            if parent == pid && !tree.contains(&child) {
                tree.push(child);
            }
        }
        i += 1;
    }
    Ok(tree)
}

/// User plus system CPU seconds of `root` and of every process below it now (a child that
/// already exited counts only once its parent waited for it). RabbitMQ, for one, runs as a
/// shell script whose child is the Erlang VM.
pub(crate) fn tree_cpu_seconds(root: u32) -> Result<f64> {
    let stats = all_processes()?;
    let tree = tree_of(root, &stats)?;
    let ticks: u64 = stats
        .iter()
        .filter(|(pid, _, _)| tree.contains(pid))
        .map(|&(_, _, t)| t)
        .sum();
    Ok(ticks as f64 / TICKS_PER_S)
}

/// A `kB` line of `/proc/<pid>/status` (such as `VmRSS:` or `VmHWM:`) summed over `root` and
/// every process below it, in bytes, and how many processes that is. For `VmHWM:` of several
/// processes the sum bounds their joint peak from above (their peaks need not coincide).
pub(crate) fn tree_status_bytes(root: u32, key: &str) -> Result<(u64, usize)> {
    let tree = tree_of(root, &all_processes()?)?;
    let mut bytes = status_bytes(root, key)?;
    for &pid in &tree[1..] {
        // A process that exited meanwhile holds nothing.
        bytes += status_bytes(pid, key).unwrap_or(0);
    }
    Ok((bytes, tree.len()))
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line.
fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may hold spaces and parentheses itself, so fields are counted from
/// the last `)`.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// A `kB` line of `/proc/<pid>/status`, such as `VmRSS:`, in bytes.
pub(crate) fn status_bytes(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_status_kb(&status, key)
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("{path} has no {key} line").into())
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_counted_after_the_command_name() {
        let stat = "4242 (basalt (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 9";
        assert_eq!(parse_stat_times(stat), Some((1234, 567)));
        assert_eq!(parse_stat_times("garbage"), None);
    }

    #[test]
    fn the_parent_pid_is_the_fourth_field() {
        let stat = "4242 (basalt (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 9";
        assert_eq!(parse_stat_ppid(stat), Some(1));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn a_process_tree_counts_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let own = tree_cpu_seconds(std::process::id()).unwrap();
        assert!(own >= 0.0);
        let (rss, processes) = tree_status_bytes(std::process::id(), "VmRSS:").unwrap();
        assert!(processes >= 2, "this process and its sleep");
        assert!(rss >= status_bytes(std::process::id(), "VmRSS:").unwrap() / 2);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(tree_cpu_seconds(u32::MAX).is_err());
    }

    #[test]
    fn status_lines_give_kilobytes() {
        let status = "Name:\tbasalt\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(10240));
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_can_be_watched() {
        let watch = BrokerWatch::start(std::process::id()).unwrap();
        let usage = watch.finish().unwrap();
        assert!(usage.cpu_s >= 0.0 && usage.client_cpu_s >= 0.0);
        assert!(usage.rss_peak_bytes > 0 && usage.vm_hwm_bytes >= usage.rss_peak_bytes / 2);
    }
}
