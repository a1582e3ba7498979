//! [`Placement`]: when a member's data-path thread should share the node's one CPU for
//! light data paths (its *home*), and when it should be free to run on any CPU.
//!
//! An idle echo crosses two data-path threads and the workload. When the scheduler moves
//! those threads between CPUs from one packet to the next, each packet finds the thread's
//! data in another core's cache, or in none: on the 2-vCPU benchmark machine that doubled
//! the round trip (0.229 against 0.103 ms with the threads kept on one CPU, about 0.6
//! migrations per echo against none; docs/datapath.md). A light data path needs no second
//! core, so it stays home. A busy one (a fifth of a CPU or more) is released at once, so
//! the kernel spreads busy members over the cores as before; one that waits for its home
//! CPU behind other work is released too, and stays away for a while.
//!
//! Sans-IO: the shell reads the thread's scheduler statistics when
//! [`Placement::poll_timeout`] has passed, hands them to [`Placement::handle_sample`] and
//! applies the [`Affinity`] it returns.

use std::time::Duration;

/// Thresholds of the placement decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacementConfig {
    /// How often the thread's statistics are sampled.
    pub interval: Duration,
    /// Share of one CPU below which the data path counts as light.
    pub light: f64,
    /// Light samples in a row before the thread goes home (so a pause in a transfer does
    /// not pin a busy member).
    pub settle: u32,
    /// Share of the interval spent waiting for the home CPU that sends the thread away:
    /// other work holds that CPU.
    pub crowded: f64,
    /// How long a thread sent away by a crowded home stays free.
    pub backoff: Duration,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            light: 0.2,
            settle: 3,
            crowded: 0.1,
            backoff: Duration::from_secs(10),
        }
    }
}

/// The thread's scheduler statistics since it started (Linux `schedstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadSample {
    /// Time the thread ran on a CPU.
    pub on_cpu: Duration,
    /// Time the thread was runnable but waited for a CPU.
    pub waiting: Duration,
}

/// Where the data-path thread should run from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    /// On the home CPU only.
    Home,
    /// On any CPU the agent may use.
    Any,
}

/// Why the thread left home (for logs and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The data path got busy.
    Busy,
    /// Other work held the home CPU.
    Crowded,
}

/// The placement state of one data-path thread (starts free, not home).
#[derive(Debug, Clone)]
pub struct Placement {
    config: PlacementConfig,
    next: Duration,
    last: Option<(Duration, ThreadSample)>,
    light_for: u32,
    home: bool,
    hold_until: Duration,
    last_leave: Option<Leave>,
    moves: u64,
}

impl Placement {
    /// A thread that is free now and samples first at `now`.
    #[must_use]
    pub fn new(now: Duration, config: PlacementConfig) -> Self {
        Self {
            config,
            next: now,
            last: None,
            light_for: 0,
            home: false,
            hold_until: now,
            last_leave: None,
            moves: 0,
        }
    }

    /// When to sample next (on the shell's clock). Sampling later is fine: a shell may
    /// sample on the wake-ups it has anyway rather than wake an idle thread for it.
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        self.next
    }

    /// Takes the statistics read at `now` and returns the affinity to apply when it
    /// changes. A call before [`Placement::poll_timeout`] does nothing; the first sample
    /// only sets the baseline.
    pub fn handle_sample(&mut self, now: Duration, sample: ThreadSample) -> Option<Affinity> {
        if now < self.next {
            return None;
        }
        self.next = now + self.config.interval;
        let (then, before) = self.last.replace((now, sample))?;
        let wall = now
            .checked_sub(then)
            .filter(|d| !d.is_zero())?
            .as_secs_f64();
        let share =
            |after: Duration, before: Duration| after.saturating_sub(before).as_secs_f64() / wall;
        let busy = share(sample.on_cpu, before.on_cpu);
        let waited = share(sample.waiting, before.waiting);
        if self.home {
            let leave = if busy >= self.config.light {
                Leave::Busy
            } else if waited >= self.config.crowded {
                self.hold_until = now + self.config.backoff;
                Leave::Crowded
            } else {
                return None;
            };
            self.home = false;
            self.light_for = 0;
            self.last_leave = Some(leave);
            self.moves += 1;
            return Some(Affinity::Any);
        }
        self.light_for = if busy < self.config.light {
            self.light_for.saturating_add(1)
        } else {
            0
        };
        if self.light_for >= self.config.settle && now >= self.hold_until {
            self.home = true;
            self.moves += 1;
            return Some(Affinity::Home);
        }
        None
    }

    /// Whether the thread is on its home CPU.
    #[must_use]
    pub fn is_home(&self) -> bool {
        self.home
    }

    /// Why the thread last left home, if it ever did.
    #[must_use]
    pub fn last_leave(&self) -> Option<Leave> {
        self.last_leave
    }

    /// Moves home and away since start.
    #[must_use]
    pub fn moves(&self) -> u64 {
        self.moves
    }
}

#[cfg(test)]
mod tests;
