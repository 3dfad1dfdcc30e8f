//! Outlier detection: an endpoint that fails `consecutive_failures` times
//! in a row leaves its pool for a while (Envoy's consecutive-failure
//! ejection).
//!
//! - The n-th ejection of an endpoint lasts n × `base_ejection`, capped at
//!   `max_ejection`. The multiplier wears off while the endpoint serves: it
//!   drops by one for each `base_ejection` spent back in the pool since it
//!   last returned, so an endpoint that failed once long ago starts again
//!   from the base.
//! - Never more than `max_ejection_percent` of the pool is out at once,
//!   but one endpoint always may be (a pool of one included: its calls are
//!   then refused by the proxy instead of failing at the backend).
//! - Ejection resets the failure count, so a returning endpoint needs
//!   `consecutive_failures` new failures to be ejected again; any healthy
//!   answer resets it too. Outcomes of calls that were sent before the
//!   endpoint's latest ejection are ignored, even when they end after it
//!   returned: each attempt carries the [`Detector::epoch`] it was sent in.
//!
//! What is a failure is the caller's [`Verdict`], the same one the breaker
//! reads: the proxy's own refusals never reach here.
//!
//! Written here rather than with tower-resilience: its detector reads the
//! wall clock, and with a single instance it skips ejection altogether.
//! Time comes from `tokio::time`, so the tests run on the paused clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::super::resilience::Verdict;
use super::lock;
use crate::config::OutlierPolicy;

/// One pool's detector.
pub(crate) struct Detector {
    policy: OutlierPolicy,
    inner: Mutex<Inner>,
}

struct Inner {
    endpoints: Vec<Record>,
    ejections: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    consecutive_failures: u32,
    times_ejected: u32,
    /// Ejections ever, the endpoint's epoch.
    epoch: u64,
    ejected_until: Option<Instant>,
    /// When it last came back from an ejection.
    returned_at: Option<Instant>,
}

/// What `/admin/backends` shows of one endpoint's ejection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EjectionStatus {
    pub(crate) consecutive_failures: u32,
    pub(crate) times_ejected: u32,
    /// Time left until it returns, while ejected.
    pub(crate) returns_in: Option<Duration>,
}

impl Detector {
    pub(crate) fn new(policy: OutlierPolicy, endpoints: usize) -> Self {
        Self {
            policy,
            inner: Mutex::new(Inner {
                endpoints: vec![Record::default(); endpoints],
                ejections: 0,
            }),
        }
    }

    /// Whether `endpoint` is out of the pool now. An endpoint whose
    /// ejection has run out rejoins here.
    pub(crate) fn is_ejected(&self, endpoint: usize) -> bool {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let record = &mut inner.endpoints[endpoint];
        record.rejoin_if_due(now);
        record.ejected_until.is_some()
    }

    /// The epoch of `endpoint` now: an attempt sent now reports with it.
    pub(crate) fn epoch(&self, endpoint: usize) -> u64 {
        lock(&self.inner).endpoints[endpoint].epoch
    }

    /// Takes the outcome of one attempt on `endpoint`, sent in `epoch`;
    /// returns how long it is ejected for when this outcome ejected it.
    pub(crate) fn record(&self, endpoint: usize, epoch: u64, verdict: Verdict) -> Option<Duration> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        for record in &mut inner.endpoints {
            record.rejoin_if_due(now);
        }
        let ejected_now = inner
            .endpoints
            .iter()
            .filter(|r| r.ejected_until.is_some())
            .count();
        let allowed = self.max_ejected(inner.endpoints.len());
        let record = &mut inner.endpoints[endpoint];
        // Sent before its latest ejection: about the endpoint as it was.
        if record.ejected_until.is_some() || record.epoch != epoch {
            return None;
        }
        match verdict {
            Verdict::Healthy => {
                record.consecutive_failures = 0;
                return None;
            }
            Verdict::Failed => record.consecutive_failures += 1,
        }
        if record.consecutive_failures < self.policy.consecutive_failures || ejected_now >= allowed
        {
            return None;
        }
        let served = record.returned_at.map_or(0, |at| {
            now.duration_since(at).as_nanos() / self.policy.base_ejection.as_nanos()
        });
        let worn_off = u32::try_from(served).unwrap_or(u32::MAX);
        record.times_ejected = record.times_ejected.saturating_sub(worn_off) + 1;
        let length = self
            .policy
            .base_ejection
            .saturating_mul(record.times_ejected)
            .min(self.policy.max_ejection);
        record.ejected_until = Some(now + length);
        record.consecutive_failures = 0;
        record.epoch += 1;
        inner.ejections += 1;
        Some(length)
    }

    /// The most endpoints of a pool of `size` that may be out at once.
    fn max_ejected(&self, size: usize) -> usize {
        (size * self.policy.max_ejection_percent as usize / 100).max(1)
    }

    pub(crate) fn status(&self, endpoint: usize) -> EjectionStatus {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let record = &mut inner.endpoints[endpoint];
        record.rejoin_if_due(now);
        EjectionStatus {
            consecutive_failures: record.consecutive_failures,
            times_ejected: record.times_ejected,
            returns_in: record.ejected_until.map(|until| until - now),
        }
    }

    /// Ejections since start.
    pub(crate) fn ejections(&self) -> u64 {
        lock(&self.inner).ejections
    }
}

impl Record {
    fn rejoin_if_due(&mut self, now: Instant) {
        if let Some(until) = self.ejected_until
            && until <= now
        {
            self.ejected_until = None;
            self.returned_at = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(percent: u32) -> OutlierPolicy {
        OutlierPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejection_percent: percent,
        }
    }

    /// `times` failures of attempts sent now.
    fn fail(detector: &Detector, endpoint: usize, times: u32) -> Option<Duration> {
        (0..times)
            .map(|_| detector.record(endpoint, detector.epoch(endpoint), Verdict::Failed))
            .last()
            .flatten()
    }

    fn succeed(detector: &Detector, endpoint: usize) {
        detector.record(endpoint, detector.epoch(endpoint), Verdict::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let detector = Detector::new(policy(50), 2);
        fail(&detector, 0, 2);
        succeed(&detector, 0);
        assert_eq!(fail(&detector, 0, 2), None, "the count restarted");
        assert!(!detector.is_ejected(0));
        assert_eq!(fail(&detector, 0, 1), Some(Duration::from_secs(10)));
        assert!(detector.is_ejected(0));
        assert!(!detector.is_ejected(1));
        assert_eq!(detector.ejections(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejection_ends_on_time_and_the_next_lasts_longer_up_to_the_cap() {
        let detector = Detector::new(policy(50), 2);
        assert_eq!(fail(&detector, 0, 3), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(detector.is_ejected(0));
        assert_eq!(
            detector.status(0).returns_in,
            Some(Duration::from_millis(1))
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!detector.is_ejected(0), "back after base_ejection");
        // Back for less than base_ejection: the multiplier has not worn off.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(fail(&detector, 0, 2), None, "ejection reset the count");
        assert_eq!(fail(&detector, 0, 1), Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            fail(&detector, 0, 3),
            Some(Duration::from_secs(25)),
            "3 × base, capped at max_ejection"
        );
        assert_eq!(detector.status(0).times_ejected, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_multiplier_wears_off_while_the_endpoint_serves() {
        let detector = Detector::new(policy(50), 2);
        fail(&detector, 0, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        fail(&detector, 0, 3);
        assert_eq!(detector.status(0).times_ejected, 2);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(!detector.is_ejected(0));
        // Two base periods back in the pool: the multiplier is down to 0.
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(fail(&detector, 0, 3), Some(Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_percent_but_always_one() {
        let half = Detector::new(policy(50), 4);
        assert!(fail(&half, 0, 3).is_some());
        assert!(fail(&half, 1, 3).is_some());
        assert_eq!(fail(&half, 2, 3), None, "two of four is the cap");
        assert!(!half.is_ejected(2));
        // Once one returns, the next failure of the third ejects it.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(fail(&half, 2, 1).is_some());

        let none = Detector::new(policy(0), 3);
        assert!(
            fail(&none, 0, 3).is_some(),
            "one endpoint always may be ejected"
        );
        assert_eq!(fail(&none, 1, 3), None);

        let single = Detector::new(policy(10), 1);
        assert!(
            fail(&single, 0, 3).is_some(),
            "a pool of one can be ejected"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_of_an_ejected_endpoint_are_ignored() {
        let detector = Detector::new(policy(50), 2);
        fail(&detector, 0, 3);
        fail(&detector, 0, 5);
        succeed(&detector, 0);
        assert_eq!(detector.status(0).consecutive_failures, 0);
        assert_eq!(detector.ejections(), 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!detector.is_ejected(0));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_sent_before_an_ejection_do_not_count_after_the_return() {
        let detector = Detector::new(policy(50), 2);
        let before = detector.epoch(0);
        fail(&detector, 0, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!detector.is_ejected(0));
        // Slow attempts sent before the ejection fail only now.
        for _ in 0..5 {
            detector.record(0, before, Verdict::Failed);
        }
        assert_eq!(detector.status(0).consecutive_failures, 0);
        assert!(!detector.is_ejected(0));
        assert_eq!(fail(&detector, 0, 3), Some(Duration::from_secs(20)));
    }
}
