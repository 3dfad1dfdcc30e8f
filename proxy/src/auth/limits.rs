//! `auth.rate_limit`: how many calls each caller (by subject) may make.
//!
//! A token bucket per subject, on tokio's clock (so simulated runs replay
//! it): it holds at most `requests` calls and refills evenly, `requests`
//! per `per`. A subject seen for the first time starts full.
//!
//! Memory stays bounded by the callers that are active: a bucket that has
//! refilled to full is the same as no bucket, so whenever the map has
//! doubled since it was last swept, the full ones are forgotten (the cost
//! of a sweep is spread over the insertions that preceded it).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

use crate::config::RateLimit;

/// Buckets kept before the first sweep.
const MIN_SWEEP_AT: usize = 1024;

/// `auth.rate_limit`: a token bucket per caller subject, on tokio time.
pub(crate) struct CallerLimits {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_subject: HashMap<String, Bucket>,
    /// Sweep when the map grows to this many.
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Calls left, fractional while refilling.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl CallerLimits {
    /// One bucket per subject, each `limit`.
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(Buckets {
                by_subject: HashMap::new(),
                sweep_at: MIN_SWEEP_AT,
            }),
        }
    }

    /// Take one call from `subject`'s bucket; false when it is empty.
    pub(crate) fn try_acquire(&self, subject: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let capacity = self.capacity();
        if let Some(bucket) = buckets.by_subject.get_mut(subject) {
            bucket.tokens = self.refilled(*bucket, now);
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return true;
            }
            return false;
        }
        if buckets.by_subject.len() >= buckets.sweep_at {
            buckets
                .by_subject
                .retain(|_, bucket| self.refilled(*bucket, now) < capacity);
            buckets.sweep_at = (buckets.by_subject.len() * 2).max(MIN_SWEEP_AT);
        }
        buckets.by_subject.insert(
            subject.to_owned(),
            Bucket {
                tokens: capacity - 1.0,
                updated: now,
            },
        );
        true
    }

    fn capacity(&self) -> f64 {
        f64::from(self.limit.requests.max(1))
    }

    /// `bucket`'s calls at `now`.
    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let per = self.limit.per.as_secs_f64();
        let capacity = self.capacity();
        if per <= 0.0 {
            return capacity;
        }
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * capacity / per).min(capacity)
    }

    /// How many subjects have a bucket (tests watch memory with it).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_subject
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(requests: u32, per: Duration) -> CallerLimits {
        CallerLimits::new(RateLimit { requests, per })
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_gives_its_calls_then_refills_evenly() {
        let limits = limits(4, Duration::from_secs(1));
        for _ in 0..4 {
            assert!(limits.try_acquire("a"));
        }
        assert!(!limits.try_acquire("a"));
        // Another subject has a bucket of its own.
        assert!(limits.try_acquire("b"));
        // One call comes back every 250 ms.
        tokio::time::advance(Duration::from_millis(240)).await;
        assert!(!limits.try_acquire("a"));
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(limits.try_acquire("a"));
        assert!(!limits.try_acquire("a"));
        // Never more than the capacity, however long it rests.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..4 {
            assert!(limits.try_acquire("a"));
        }
        assert!(!limits.try_acquire("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn refused_calls_take_nothing() {
        let limits = limits(1, Duration::from_secs(10));
        assert!(limits.try_acquire("a"));
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(50)).await;
            assert!(!limits.try_acquire("a"));
        }
        // 5 s of refusals and 5 s more: the one call is back.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(limits.try_acquire("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_forgotten_and_busy_ones_kept() {
        let limits = limits(2, Duration::from_secs(1));
        for n in 0..MIN_SWEEP_AT - 1 {
            assert!(limits.try_acquire(&format!("old-{n}")));
        }
        assert!(limits.try_acquire("busy"));
        assert!(limits.try_acquire("busy"));
        assert_eq!(limits.tracked(), MIN_SWEEP_AT);
        // The old ones refill; "busy" keeps taking.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(limits.try_acquire("busy"));
        assert!(limits.try_acquire("busy"));
        assert!(limits.try_acquire("new"));
        assert_eq!(limits.tracked(), 2, "only busy and new are kept");
        // And busy is still empty: forgetting did not refill it.
        assert!(!limits.try_acquire("busy"));
        // Many subjects at once, none ever full: all kept, swept at doubling.
        for n in 0..5000 {
            assert!(limits.try_acquire(&format!("s-{n}")));
        }
        assert_eq!(limits.tracked(), 5002);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limits.try_acquire("late"));
        assert!(limits.tracked() <= 5003);
        for n in 0..10_000 {
            limits.try_acquire(&format!("t-{n}"));
        }
        assert_eq!(
            limits.tracked(),
            10_000 + 1,
            "the s-*, busy and new were swept"
        );
    }
}
