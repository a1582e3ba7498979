//! Keeps a light data-path thread on the node's home CPU and frees it when it gets busy
//! (the decision is `segwire_datapath::Placement`; this module reads the thread's
//! scheduler statistics and sets its affinity).

use std::str::FromStr;
use std::time::Duration;

use segwire_datapath::{Affinity, Placement, PlacementConfig};
use segwire_netdev::{thread_sample, CpuMask};

/// Which CPU light data paths share (`segwire-node run --idle-cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleCpu {
    /// The first CPU the agent may run on.
    #[default]
    Auto,
    /// Leave every data-path thread to the kernel's scheduler.
    Off,
    /// This CPU.
    Cpu(usize),
}

impl FromStr for IdleCpu {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            n => n
                .parse()
                .map(Self::Cpu)
                .map_err(|_| format!("{n:?} is not a CPU: give a CPU number, \"auto\" or \"off\"")),
        }
    }
}

impl std::fmt::Display for IdleCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Off => f.write_str("off"),
            Self::Cpu(n) => write!(f, "{n}"),
        }
    }
}

/// The placement of the calling data-path thread: the decision, the home CPU and the
/// CPUs it may use when free.
pub(super) struct Placer {
    placement: Placement,
    home: usize,
    all: CpuMask,
}

impl Placer {
    /// The placement of the calling thread, first sampled at `now`; `None` when `idle`
    /// is off, when the thread has one CPU only, or when the home CPU is not one the
    /// agent may use (said in the log).
    pub(super) fn new(idle: IdleCpu, now: Duration) -> Option<Self> {
        if idle == IdleCpu::Off {
            return None;
        }
        let all = match CpuMask::current() {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the CPU affinity; idle data paths are not kept on one CPU");
                return None;
            }
        };
        if all.len() < 2 {
            return None;
        }
        let home = match idle {
            IdleCpu::Cpu(n) if all.contains(n) => n,
            IdleCpu::Cpu(n) => {
                tracing::warn!(
                    cpu = n,
                    allowed = ?all.cpus(),
                    "--idle-cpu names a CPU this agent may not use; idle data paths are not kept on one CPU"
                );
                return None;
            }
            _ => *all.cpus().first()?,
        };
        Some(Self {
            placement: Placement::new(now, PlacementConfig::default()),
            home,
            all,
        })
    }

    /// When to call [`Placer::handle_timeout`] next.
    pub(super) fn poll_timeout(&self) -> Duration {
        self.placement.poll_timeout()
    }

    /// The home CPU when the thread is there now.
    pub(super) fn home_now(&self) -> Option<usize> {
        self.placement.is_home().then_some(self.home)
    }

    /// Moves home and away since the thread started.
    pub(super) fn moves(&self) -> u64 {
        self.placement.moves()
    }

    /// Samples the thread when due and moves it when the decision changes; false when
    /// the thread could not be moved (then it is left free and placement stops).
    pub(super) fn handle_timeout(&mut self, now: Duration) -> bool {
        if now < self.placement.poll_timeout() {
            return true;
        }
        let sample = match thread_sample() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the thread's scheduler statistics; idle data paths are not kept on one CPU");
                return false;
            }
        };
        let applied = match self.placement.handle_sample(now, sample) {
            None => return true,
            Some(Affinity::Home) => CpuMask::pin(self.home),
            Some(Affinity::Any) => self.all.apply(),
        };
        match applied {
            Ok(()) => {
                tracing::debug!(
                    home = ?self.home_now(),
                    left_because = ?self.placement.last_leave(),
                    "data path placement"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot set the data path's CPU affinity; leaving it to the scheduler");
                let _ = self.all.apply();
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_cpu_parses_auto_off_and_numbers() {
        assert_eq!("auto".parse(), Ok(IdleCpu::Auto));
        assert_eq!("off".parse(), Ok(IdleCpu::Off));
        assert_eq!("3".parse(), Ok(IdleCpu::Cpu(3)));
        let e = "two".parse::<IdleCpu>().expect_err("not a CPU");
        assert!(e.contains("not a CPU"), "{e}");
        assert_eq!(IdleCpu::Cpu(3).to_string(), "3");
    }

    #[test]
    fn off_and_foreign_cpus_place_nothing() {
        assert!(Placer::new(IdleCpu::Off, Duration::ZERO).is_none());
        assert!(Placer::new(IdleCpu::Cpu(100_000), Duration::ZERO).is_none());
    }
}
