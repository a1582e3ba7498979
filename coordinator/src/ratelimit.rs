//! Per-source-address limits on failures (wrong credentials, rejected join tokens).
//!
//! A token bucket per source: `burst` failures are allowed at once, then one more every
//! `interval`. Only failures take tokens and only failures are refused: the caller asks
//! [`FailureLimiter::check`] after a credential turned out wrong, so a valid credential is
//! served however many wrong ones came from its address before (secrets are 256 random
//! bits; the limit bounds the noise and cost of failures, not the odds of a guess).
//!
//! Memory is bounded: at most `capacity` sources are tracked in an LRU, and adding one
//! past it forgets the least recently failing source in O(1), with no scan under the
//! lock. IPv6 sources are tracked by their /64, since one host holds a whole /64. Time is
//! passed in, so the limiter is pure and tested without sleeping.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// Most sources tracked at once by default.
pub const MAX_TRACKED: usize = 100_000;

/// A failure limiter keyed by source address.
#[derive(Debug)]
pub struct FailureLimiter {
    buckets: Buckets<IpAddr>,
}

/// Token buckets keyed by `K` in a bounded LRU: `burst` takes at once, then one more
/// every `interval`.
#[derive(Debug)]
pub struct Buckets<K: std::hash::Hash + Eq> {
    burst: f64,
    interval: Duration,
    buckets: LruCache<K, Bucket>,
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

/// The key of `ip`: itself for IPv4, its /64 for IPv6.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl FailureLimiter {
    /// A limiter allowing `burst` failures at once and one more every `interval`,
    /// tracking at most [`MAX_TRACKED`] sources.
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self::with_capacity(burst, interval, MAX_TRACKED)
    }

    /// Like [`FailureLimiter::new`], tracking at most `capacity` sources.
    pub fn with_capacity(burst: u32, interval: Duration, capacity: usize) -> Self {
        FailureLimiter {
            buckets: Buckets::new(burst, interval, capacity),
        }
    }

    /// `ip` just failed: counts the failure if it still has tokens (`Ok`: answer the
    /// failure as usual), or refuses it (`Err`: answer 429). Never call it for a
    /// caller whose credential was right.
    pub fn check_failure(&mut self, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        self.buckets.take(source(ip), now)
    }

    /// Sources currently tracked.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets.buckets.len()
    }
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    /// `burst` at once, then one more every `interval`; at most `capacity` keys.
    pub fn new(burst: u32, interval: Duration, capacity: usize) -> Self {
        Buckets {
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
            buckets: LruCache::new(capacity.max(1)),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let gained =
            now.saturating_duration_since(b.at).as_secs_f64() / self.interval.as_secs_f64();
        b.tokens = (b.tokens + gained).min(self.burst);
        b.at = now;
    }

    /// Takes one token of `key`, or says how long until one is back. Adding a key past
    /// the capacity forgets the least recently used one, in O(1).
    pub fn take(&mut self, key: K, now: Instant) -> Result<(), Throttled> {
        let mut b = self.buckets.get(&key).copied().unwrap_or(Bucket {
            tokens: self.burst,
            at: now,
            throttled: 0,
        });
        self.refill(&mut b, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
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
        self.buckets.insert(key, b);
        result
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
            assert!(l.check_failure(ip(1), t0).is_ok());
        }
        let t = l.check_failure(ip(1), t0).expect_err("throttled");
        assert_eq!((t.retry_after, t.refused), (Duration::from_secs(2), 1));
        assert_eq!(l.check_failure(ip(1), t0).expect_err("still").refused, 2);
        // Another address is not affected.
        assert!(l.check_failure(ip(2), t0).is_ok());
        // One token back after one interval.
        let t1 = t0 + Duration::from_secs(2);
        assert!(l.check_failure(ip(1), t1).is_ok());
        assert!(l.check_failure(ip(1), t1).is_err());
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_source_goes_first() {
        let mut l = FailureLimiter::with_capacity(1, Duration::from_secs(60), 1000);
        let t0 = Instant::now();
        assert!(l.check_failure(ip(9), t0).is_ok());
        assert!(l.check_failure(ip(9), t0).is_err());
        for i in 0..5000u32 {
            let _ = l.check_failure(
                IpAddr::from(std::net::Ipv4Addr::from((10u32 << 24) | i)),
                t0,
            );
            assert!(l.tracked() <= 1000);
        }
        // 127.0.0.9 was the least recently used: forgotten, so it starts afresh.
        assert!(l.check_failure(ip(9), t0).is_ok());
    }

    #[test]
    fn an_ipv6_host_is_one_source_per_64() {
        let mut l = FailureLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert!(l.check_failure(a, t0).is_ok());
        assert!(l.check_failure(b, t0).is_ok());
        assert!(l.check_failure(a, t0).is_err());
        assert!(l.check_failure(other, t0).is_ok());
    }
}
