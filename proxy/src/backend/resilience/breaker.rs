//! The circuit breaker: one per backend, over a rolling time window.
//!
//! Closed, it lets every attempt through and counts outcomes in ten buckets
//! spanning `window`. Once the window holds `min_calls` attempts and the
//! failure share (or the slow share, with `slow_call`) reaches its
//! threshold, it opens: attempts are refused without reaching the backend
//! for `open_for`. Then it is half-open: `half_open_probes` attempts go
//! through; if they all succeed it closes (with an empty window), and the
//! first failure opens it again.
//!
//! Written here rather than with tower-resilience: its breaker reads the
//! wall clock and its count-based window is not rolling. One breaker per
//! backend, not per endpoint: it asks whether the service is failing, while
//! a pool's outlier detection routes around a failing replica
//! (ARCHITECTURE.md, "Replica pools").
//!
//! What counts as a failure is the caller's decision ([`Verdict`]): the
//! backend's health (transport, timeout, not connected, internal JSON-RPC
//! errors), never the proxy's own refusals or a tool's error result.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::config::BreakerPolicy;

const BUCKETS: u32 = 10;

/// How an attempt went, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The backend answered (a result, a tool error, or a client-side JSON-RPC error).
    Healthy,
    /// The backend failed (see the module doc).
    Failed,
}

/// The breaker's state, for `/admin/backends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Letting attempts through.
    Closed,
    /// Refusing attempts.
    Open,
    /// Letting a few probes through.
    HalfOpen,
}

/// The breaker's state and transitions, for `/admin/backends` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerCounts {
    pub(crate) state: BreakerState,
    /// Times it opened (from closed, or again from half-open).
    pub(crate) opened: u64,
    /// Times it closed after its half-open probes succeeded.
    pub(crate) closed: u64,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// `(bucket number, attempts, failures, slow)`; bucket `n` holds the
    /// outcomes that ended in the `n`th tenth-of-a-window since the start.
    buckets: [Bucket; BUCKETS as usize],
    opened: u64,
    closed: u64,
}

type Bucket = (u64, u32, u32, u32);

/// A bucket that holds nothing (its number is one no time reaches).
const EMPTY: Bucket = (u64::MAX, 0, 0, 0);

impl Inner {
    /// Counts one outcome that ended in `bucket`, and returns the window's
    /// totals: attempts, failures, slow attempts.
    ///
    /// The window is the ten buckets up to the newest one counted. An
    /// outcome whose bucket is older than that (its time was taken before a
    /// later outcome was counted) counts in its own bucket while that is
    /// still in the window, and not at all once it has left it: it never
    /// displaces newer counts.
    fn count(&mut self, bucket: u64, failed: bool, slow: bool) -> (u32, u32, u32) {
        let newest = self
            .buckets
            .iter()
            .filter(|b| b.0 != EMPTY.0)
            .fold(bucket, |newest, b| newest.max(b.0));
        let in_window = |n: u64| n != EMPTY.0 && newest - n < u64::from(BUCKETS);
        if in_window(bucket) {
            // The slot holds `bucket`, or a bucket at least a window older
            // (one with the same slot that is newer than `bucket` would be
            // newer than `newest`), whose counts have expired.
            let slot = &mut self.buckets[(bucket % u64::from(BUCKETS)) as usize];
            if slot.0 != bucket {
                *slot = (bucket, 0, 0, 0);
            }
            slot.1 += 1;
            slot.2 += u32::from(failed);
            slot.3 += u32::from(slow);
        }
        self.buckets
            .iter()
            .filter(|b| in_window(b.0))
            .fold((0, 0, 0), |(c, f, s), b| (c + b.1, f + b.2, s + b.3))
    }
}

/// One backend's breaker.
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    start: Instant,
    inner: Arc<Mutex<Inner>>,
}

/// Leave to send one attempt; report how it went with [`Pass::record`].
/// Dropped unreported (the call was cancelled), a half-open probe is handed
/// back so the breaker cannot get stuck waiting for it.
pub(crate) struct Pass {
    inner: Arc<Mutex<Inner>>,
    started: Instant,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            start: Instant::now(),
            inner: Arc::new(Mutex::new(Inner {
                phase: Phase::Closed,
                buckets: [EMPTY; BUCKETS as usize],
                opened: 0,
                closed: 0,
            })),
        }
    }

    /// The current state, and how many times it opened and closed again.
    pub(crate) fn state(&self) -> BreakerCounts {
        let inner = lock(&self.inner);
        let state = match inner.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        BreakerCounts {
            state,
            opened: inner.opened,
            closed: inner.closed,
        }
    }

    /// Lets an attempt through, or refuses it (`None`) while open.
    pub(crate) fn admit(&self) -> Option<Pass> {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        if let Phase::Open { until } = inner.phase
            && now >= until
        {
            inner.phase = Phase::HalfOpen {
                admitted: 0,
                succeeded: 0,
            };
        }
        let probe = match &mut inner.phase {
            Phase::Closed => false,
            Phase::Open { .. } => return None,
            Phase::HalfOpen { admitted, .. } => {
                if *admitted >= self.policy.half_open_probes {
                    return None;
                }
                *admitted += 1;
                true
            }
        };
        Some(Pass {
            inner: Arc::clone(&self.inner),
            started: now,
            probe,
            recorded: false,
        })
    }

    /// Records `verdict` for the attempt `pass` let through.
    pub(crate) fn record(&self, mut pass: Pass, verdict: Verdict) {
        pass.recorded = true;
        let mut inner = lock(&self.inner);
        // The clock is read under the lock, so outcomes are counted in the
        // order of their times: read before it, an attempt that lost the
        // race for the lock would count into a bucket older than one another
        // attempt had already counted.
        let now = Instant::now();
        self.record_at(&mut inner, &pass, verdict, now);
    }

    /// Records `verdict` for `pass`'s attempt as having ended at `now`.
    fn record_at(&self, inner: &mut Inner, pass: &Pass, verdict: Verdict, now: Instant) {
        let slow = self
            .policy
            .slow_call
            .is_some_and(|s| now.saturating_duration_since(pass.started) >= s.threshold);
        let failed = verdict == Verdict::Failed;
        match &mut inner.phase {
            Phase::Open { .. } => {}
            Phase::HalfOpen { succeeded, .. } if pass.probe => {
                if failed || slow {
                    self.open(inner, now);
                } else {
                    *succeeded += 1;
                    if *succeeded >= self.policy.half_open_probes {
                        inner.phase = Phase::Closed;
                        inner.buckets = [EMPTY; BUCKETS as usize];
                        inner.closed += 1;
                        tracing::info!("circuit breaker closed after its probes succeeded");
                    }
                }
            }
            // An attempt admitted while closed that ends after the breaker
            // changed state says nothing about the new state.
            Phase::HalfOpen { .. } => {}
            Phase::Closed => {
                let bucket_len = self.policy.window / BUCKETS;
                let bucket = (now.saturating_duration_since(self.start).as_nanos()
                    / bucket_len.as_nanos().max(1)) as u64;
                let (calls, failures, slows) = inner.count(bucket, failed, slow);
                if calls >= self.policy.min_calls {
                    let share = |n: u32| f64::from(n) / f64::from(calls);
                    let too_slow = self
                        .policy
                        .slow_call
                        .is_some_and(|s| share(slows) >= s.rate);
                    if share(failures) >= self.policy.failure_rate || too_slow {
                        self.open(inner, now);
                    }
                }
            }
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.phase = Phase::Open {
            until: now + self.policy.open_for,
        };
        inner.opened += 1;
        tracing::warn!(open_for = ?self.policy.open_for, "circuit breaker opened");
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if self.recorded || !self.probe {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut lock(&self.inner).phase {
            *admitted = admitted.saturating_sub(1);
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SlowCall;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            window: Duration::from_secs(10),
            min_calls: 4,
            failure_rate: 0.5,
            slow_call: None,
            open_for: Duration::from_secs(5),
            half_open_probes: 2,
        }
    }

    fn counts(state: BreakerState, opened: u64, closed: u64) -> BreakerCounts {
        BreakerCounts {
            state,
            opened,
            closed,
        }
    }

    fn attempt(b: &Breaker, verdict: Verdict) -> bool {
        match b.admit() {
            Some(pass) => {
                b.record(pass, verdict);
                true
            }
            None => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_failure_rate_after_min_calls_and_refuses_while_open() {
        let b = Breaker::new(policy());
        // Three failures: below min_calls, still closed.
        for _ in 0..3 {
            assert!(attempt(&b, Verdict::Failed));
        }
        assert_eq!(b.state(), counts(BreakerState::Closed, 0, 0));
        assert!(attempt(&b, Verdict::Healthy));
        // 3 of 4 failed (≥ 50 %): open.
        assert_eq!(b.state(), counts(BreakerState::Open, 1, 0));
        assert!(b.admit().is_none());
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert!(b.admit().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_probes_close_it_on_success_and_reopen_it_on_a_failure() {
        let b = Breaker::new(policy());
        for _ in 0..4 {
            attempt(&b, Verdict::Failed);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.state().state, BreakerState::HalfOpen);
        let first = b.admit().expect("probe 1");
        let second = b.admit().expect("probe 2");
        assert!(b.admit().is_none(), "only two probes");
        b.record(first, Verdict::Healthy);
        b.record(second, Verdict::Healthy);
        assert_eq!(b.state().state, BreakerState::Closed);

        for _ in 0..4 {
            attempt(&b, Verdict::Failed);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(attempt(&b, Verdict::Failed));
        assert_eq!(b.state(), counts(BreakerState::Open, 3, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_is_handed_back() {
        let b = Breaker::new(policy());
        for _ in 0..4 {
            attempt(&b, Verdict::Failed);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let a = b.admit().unwrap();
        let c = b.admit().unwrap();
        drop(a);
        assert!(
            b.admit().is_some(),
            "the dropped probe's place is free again"
        );
        drop(c);
    }

    #[tokio::test(start_paused = true)]
    async fn old_outcomes_leave_the_rolling_window() {
        let b = Breaker::new(policy());
        for _ in 0..3 {
            attempt(&b, Verdict::Failed);
        }
        // One bucket past the window.
        tokio::time::advance(Duration::from_secs(11)).await;
        // The old failures are gone: one failure of four is below 50 %.
        attempt(&b, Verdict::Failed);
        for _ in 0..3 {
            attempt(&b, Verdict::Healthy);
        }
        assert_eq!(b.state().state, BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_open_it_too() {
        let mut p = policy();
        p.slow_call = Some(SlowCall {
            threshold: Duration::from_millis(100),
            rate: 0.75,
        });
        let b = Breaker::new(p);
        for _ in 0..4 {
            let pass = b.admit().unwrap();
            tokio::time::advance(Duration::from_millis(150)).await;
            b.record(pass, Verdict::Healthy);
        }
        assert_eq!(b.state().state, BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_timed_before_one_already_counted_counts_in_its_own_bucket() {
        let b = Breaker::new(policy());
        let early = b.admit().unwrap();
        let late = b.admit().unwrap();
        // `early` ended first, but `late` took the lock first, a bucket on.
        let early_end = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        b.record_at(&mut lock(&b.inner), &late, Verdict::Healthy, Instant::now());
        b.record_at(&mut lock(&b.inner), &early, Verdict::Failed, early_end);
        // (Measuring the window from `early`'s own bucket, as the breaker
        // once did, subtracted a larger bucket number: an overflow panic.)
        // Both count: two more failures make 3 of 4 and open it.
        attempt(&b, Verdict::Failed);
        assert_eq!(b.state().state, BreakerState::Closed);
        attempt(&b, Verdict::Failed);
        assert_eq!(b.state().state, BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_timed_before_the_window_is_not_counted() {
        let b = Breaker::new(policy());
        let stale = b.admit().unwrap();
        let stale_end = Instant::now();
        tokio::time::advance(Duration::from_secs(10)).await;
        attempt(&b, Verdict::Healthy);
        // Ten seconds before the newest outcome: outside the 10s window.
        b.record_at(&mut lock(&b.inner), &stale, Verdict::Failed, stale_end);
        // Had it counted, this would make 2 failures of 4 and open it.
        attempt(&b, Verdict::Failed);
        attempt(&b, Verdict::Healthy);
        assert_eq!(b.state().state, BreakerState::Closed);
    }
}
