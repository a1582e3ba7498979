//! Reconnect backoff of every coordinator client that retries (the node agent, the
//! fan-out benchmark's simulated agents): 0.25 s doubling to a cap of 2 s, with "equal
//! jitter" (each delay is drawn from the upper half of its step), so after a coordinator
//! comes back every agent polls again within about 2 s, and a crowd of agents spreads its
//! retries over a second instead of arriving together.

use std::time::Duration;

use rand::Rng;

/// First step.
pub const INITIAL: Duration = Duration::from_millis(250);
/// Largest step: no delay is longer.
pub const MAX: Duration = Duration::from_secs(2);

/// Exponential backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: INITIAL }
    }
}

impl Backoff {
    /// The delay before the next attempt, in `[step/2, step]` at random; doubles the
    /// step (up to [`MAX`]) for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(MAX);
        step.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// Back to the first step after a success.
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_two_second_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= INITIAL / 2 && first <= INITIAL, "{first:?}");
        // Steps 0.5 s and 1 s, then the cap.
        assert!(b.next_delay() <= INITIAL * 2);
        assert!(b.next_delay() <= INITIAL * 4);
        let delays: Vec<Duration> = (0..1000).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= MAX && *d >= MAX / 2));
        // Jitter spreads the delays over the upper half of the step.
        let (lo, hi) = (delays.iter().min(), delays.iter().max());
        assert!(
            lo < Some(&MAX.mul_f64(0.6)) && hi > Some(&MAX.mul_f64(0.9)),
            "{lo:?} {hi:?}"
        );
        b.reset();
        assert!(b.next_delay() <= INITIAL);
    }
}
