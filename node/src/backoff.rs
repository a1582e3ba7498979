//! Reconnect backoff: 0.5 s doubling to 15 s, with ±20 % jitter.

use std::time::Duration;

use rand::Rng;

/// First delay.
pub const INITIAL: Duration = Duration::from_millis(500);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(15);

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
    /// The delay before the next attempt (jittered), doubling the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        base.mul_f64(jitter)
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= INITIAL.mul_f64(0.8) && first <= INITIAL.mul_f64(1.2));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= MAX.mul_f64(1.2));
        }
        assert!(b.next_delay() >= MAX.mul_f64(0.8));
        b.reset();
        assert!(b.next_delay() <= INITIAL.mul_f64(1.2));
    }
}
