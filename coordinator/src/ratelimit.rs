//! Per-source-address limits on failures (wrong credentials, rejected join tokens).
//!
//! A token bucket per IP address: `burst` failures are allowed at once, then one more
//! every `interval`. Only failures take tokens, so a well-behaved client is never
//! throttled however often it calls. Time is passed in, so the limiter is pure and
//! tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most addresses tracked at once; full buckets are forgotten first when it is reached.
const MAX_TRACKED: usize = 100_000;

/// A failure limiter keyed by source address.
#[derive(Debug)]
pub struct FailureLimiter {
    burst: f64,
    interval: Duration,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    throttled: u64,
}

/// The answer to [`FailureLimiter::check`] for a throttled address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// When the address may try again.
    pub retry_after: Duration,
    /// Attempts refused so far in this throttled stretch (1 for the first).
    pub refused: u64,
}

impl FailureLimiter {
    /// A limiter allowing `burst` failures at once and one more every `interval`.
    pub fn new(burst: u32, interval: Duration) -> Self {
        FailureLimiter {
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
            buckets: HashMap::new(),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let gained =
            now.saturating_duration_since(b.at).as_secs_f64() / self.interval.as_secs_f64();
        b.tokens = (b.tokens + gained).min(self.burst);
        b.at = now;
    }

    /// May `ip` try now? Call before checking its credential; counts refusals.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        let Some(mut b) = self.buckets.get(&ip).copied() else {
            return Ok(());
        };
        self.refill(&mut b, now);
        let result = if b.tokens >= 1.0 {
            b.throttled = 0;
            Ok(())
        } else {
            b.throttled += 1;
            let wait = (1.0 - b.tokens) * self.interval.as_secs_f64();
            Err(Throttled {
                retry_after: Duration::from_secs_f64(wait),
                refused: b.throttled,
            })
        };
        self.buckets.insert(ip, b);
        result
    }

    /// Records one failure of `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&ip) {
            self.forget_idle(now);
        }
        let mut b = self.buckets.get(&ip).copied().unwrap_or(Bucket {
            tokens: self.burst,
            at: now,
            throttled: 0,
        });
        self.refill(&mut b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        self.buckets.insert(ip, b);
    }

    /// Forgets addresses whose bucket has refilled (they behave like new ones).
    pub fn forget_idle(&mut self, now: Instant) {
        let full = self.interval.mul_f64(self.burst);
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < full);
    }

    /// Addresses currently tracked.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn burst_then_throttled_then_refilled() {
        let mut l = FailureLimiter::new(3, Duration::from_secs(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip(1), t0).is_ok());
            l.failed(ip(1), t0);
        }
        let t = l.check(ip(1), t0).expect_err("throttled");
        assert_eq!((t.retry_after, t.refused), (Duration::from_secs(2), 1));
        assert_eq!(l.check(ip(1), t0).expect_err("still").refused, 2);
        // Another address is not affected.
        assert!(l.check(ip(2), t0).is_ok());
        // One token back after one interval.
        let t1 = t0 + Duration::from_secs(2);
        assert!(l.check(ip(1), t1).is_ok());
        l.failed(ip(1), t1);
        assert!(l.check(ip(1), t1).is_err());
    }

    #[test]
    fn successes_cost_nothing_and_idle_addresses_are_forgotten() {
        let mut l = FailureLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(l.check(ip(3), t0).is_ok());
        }
        l.failed(ip(3), t0);
        assert_eq!(l.tracked(), 1);
        l.forget_idle(t0 + Duration::from_secs(1));
        assert_eq!(l.tracked(), 1);
        l.forget_idle(t0 + Duration::from_secs(3));
        assert_eq!(l.tracked(), 0);
    }
}
