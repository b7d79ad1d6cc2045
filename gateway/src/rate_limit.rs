//! Per-subject token buckets for `POST /reservation`: each buyer may place `burst`
//! reservations at once and `per_sec` more every second after, so one buyer cannot hold the
//! whole catalogue PENDING. Past that, 429 with `Retry-After`.
//!
//! One map per gateway process; with several replicas a buyer gets each replica's budget,
//! which bounds abuse all the same.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Subjects tracked before idle (full) buckets are dropped.
const MAX_TRACKED: usize = 100_000;

/// A token bucket: the pure arithmetic, no clock of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token at `now`, refilling `per_sec` per second up to `burst` first; when
    /// empty, how long until one is back.
    pub fn take(&mut self, per_sec: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
        }
    }

    fn is_full(&self, per_sec: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * per_sec >= burst
    }
}

/// The limiter shared by every request of one gateway.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_sec` tokens a second, at most `burst` at once; `per_sec <= 0` turns limiting off.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Ok, or the whole seconds `subject` should wait (at least 1).
    pub fn check(&self, subject: &str) -> Result<(), u64> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, bucket| !bucket.is_full(per_sec, burst, now));
        }
        let bucket = buckets
            .entry(subject.to_owned())
            .or_insert_with(|| Bucket::full(self.burst, now));
        bucket
            .take(self.per_sec, self.burst, now)
            .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(3.0, start);
        for _ in 0..3 {
            assert!(bucket.take(2.0, 3.0, start).is_ok());
        }
        let wait = bucket.take(2.0, 3.0, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            bucket
                .take(2.0, 3.0, start + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            bucket
                .take(2.0, 3.0, start + Duration::from_millis(500))
                .is_err()
        );
        // Idle time never banks more than the burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.take(2.0, 3.0, later).is_ok());
        }
        assert!(bucket.take(2.0, 3.0, later).is_err());
    }

    #[test]
    fn subjects_have_their_own_buckets_and_zero_rate_is_off() {
        let limiter = RateLimiter::new(0.5, 2);
        assert!(limiter.check("kim").is_ok());
        assert!(limiter.check("kim").is_ok());
        assert_eq!(limiter.check("kim"), Err(2));
        assert!(limiter.check("lee").is_ok());
        let off = RateLimiter::new(0.0, 1);
        assert!((0..100).all(|_| off.check("kim").is_ok()));
    }
}
