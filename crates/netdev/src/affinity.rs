//! The calling thread's CPU affinity and scheduler statistics: what the data-path thread
//! needs to stay on its home CPU while it is light (see `segwire_datapath::Placement`).

use std::io;
use std::time::Duration;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use segwire_datapath::ThreadSample;

/// The set of CPUs a thread may run on, as a list of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMask(Vec<usize>);

impl CpuMask {
    /// The CPUs the calling thread may run on now (its cgroup's and `taskset`'s choice).
    ///
    /// # Errors
    /// The `sched_getaffinity` error.
    pub fn current() -> io::Result<Self> {
        let set = sched_getaffinity(Pid::from_raw(0)).map_err(io::Error::from)?;
        Ok(Self(
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect(),
        ))
    }

    /// The CPUs, lowest first.
    #[must_use]
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// Whether `cpu` is in the set.
    #[must_use]
    pub fn contains(&self, cpu: usize) -> bool {
        self.0.contains(&cpu)
    }

    /// How many CPUs the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Restricts the calling thread to this set.
    ///
    /// # Errors
    /// The `sched_setaffinity` error (a CPU outside the thread's cgroup, for one).
    pub fn apply(&self) -> io::Result<()> {
        let mut set = CpuSet::new();
        for &c in &self.0 {
            set.set(c).map_err(io::Error::from)?;
        }
        sched_setaffinity(Pid::from_raw(0), &set).map_err(io::Error::from)
    }

    /// Restricts the calling thread to the one CPU `cpu`.
    ///
    /// # Errors
    /// The `sched_setaffinity` error.
    pub fn pin(cpu: usize) -> io::Result<()> {
        Self(vec![cpu]).apply()
    }
}

/// The calling thread's scheduler statistics since it started
/// (`/proc/thread-self/schedstat`): time on a CPU, and time runnable but waiting for one
/// (how much a pinned thread is held back by other work on its CPU).
///
/// # Errors
/// When the file cannot be read or parsed (a kernel without schedstats).
pub fn thread_sample() -> io::Result<ThreadSample> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat")?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected schedstat"))
}

/// Parses `schedstat`'s text: nanoseconds on a CPU, nanoseconds waiting, time slices.
fn parse_schedstat(text: &str) -> Option<ThreadSample> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let on_cpu = Duration::from_nanos(fields.next()?.ok()?);
    let waiting = Duration::from_nanos(fields.next()?.ok()?);
    Some(ThreadSample { on_cpu, waiting })
}

#[cfg(test)]
mod tests;
