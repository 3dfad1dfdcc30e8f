//! The retry budget: retries may add at most a share of the calls made
//! recently, with a floor so that a quiet backend can still be retried.
//!
//! Unlike a token bucket that starts full, the allowance grows only with
//! live traffic: over the last [`WINDOW`] (ten one-second buckets on
//! `tokio::time`), retries ≤ max(percent × calls, min_per_second × 10 s).
//! A failing backend under load therefore sees at most `1 + percent` times
//! its normal traffic, however many retries each call would like.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetryBudget;

/// How far back calls and retries are counted.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_secs(1);

/// Counts of calls and retries over a rolling window.
#[derive(Debug)]
pub(crate) struct Budget {
    policy: RetryBudget,
    start: Instant,
    /// `(bucket number, calls, retries)` per slot; a slot whose bucket
    /// number is old holds nothing of the window.
    slots: [(u64, u64, u64); BUCKETS],
}

impl Budget {
    pub(crate) fn new(policy: RetryBudget) -> Self {
        Self {
            policy,
            start: Instant::now(),
            slots: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    /// Counts a first attempt.
    pub(crate) fn record_call(&mut self) {
        self.slot_now().1 += 1;
    }

    /// Takes one retry from the budget if there is one left.
    pub(crate) fn try_retry(&mut self) -> bool {
        let now = self.bucket_now();
        let (calls, retries) = self
            .slots
            .iter()
            .filter(|(bucket, _, _)| *bucket != u64::MAX && now - bucket < BUCKETS as u64)
            .fold((0, 0), |(c, r), (_, calls, retries)| {
                (c + calls, r + retries)
            });
        let share = self.policy.percent / 100.0 * calls as f64;
        let floor = self.policy.min_per_second * WINDOW.as_secs_f64();
        if (retries + 1) as f64 <= share.max(floor) {
            self.slot_now().2 += 1;
            true
        } else {
            false
        }
    }

    fn bucket_now(&self) -> u64 {
        (self.start.elapsed().as_nanos() / BUCKET.as_nanos()) as u64
    }

    fn slot_now(&mut self) -> &mut (u64, u64, u64) {
        let bucket = self.bucket_now();
        let slot = &mut self.slots[(bucket % BUCKETS as u64) as usize];
        if slot.0 != bucket {
            *slot = (bucket, 0, 0);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(percent: f64, min_per_second: f64) -> Budget {
        Budget::new(RetryBudget {
            percent,
            min_per_second,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_share_of_recent_calls() {
        let mut b = budget(20.0, 0.0);
        // Nothing to share yet: a budget does not start full.
        assert!(!b.try_retry());
        for _ in 0..100 {
            b.record_call();
        }
        let granted = (0..50).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_a_few_retries_on_a_quiet_backend() {
        let mut b = budget(20.0, 0.5);
        // 0.5 per second over the 10 s window: 5 retries, with no calls at all.
        let granted = (0..50).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn old_calls_and_retries_leave_the_window() {
        let mut b = budget(50.0, 0.0);
        for _ in 0..10 {
            b.record_call();
        }
        assert_eq!((0..10).filter(|_| b.try_retry()).count(), 5);
        tokio::time::advance(WINDOW + BUCKET).await;
        // The calls that earned the retries are gone, and so are the retries.
        assert!(!b.try_retry());
        for _ in 0..4 {
            b.record_call();
        }
        assert_eq!((0..10).filter(|_| b.try_retry()).count(), 2);
    }
}
