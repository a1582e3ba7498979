//! CPU seconds and resident memory of a process, read from `/proc`.

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on every Linux we run on).
const TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU seconds the process has used.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let utime: f64 = f.get(11).context("no utime")?.parse()?;
    let stime: f64 = f.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / TICKS_PER_SEC)
}

/// Resident set size in MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// [`cpu_secs`] summed over `pids`.
pub fn cpu_secs_all(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|p| cpu_secs(*p)).sum()
}

/// [`rss_mib`] summed over `pids`.
pub fn rss_mib_all(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|p| rss_mib(*p)).sum()
}
