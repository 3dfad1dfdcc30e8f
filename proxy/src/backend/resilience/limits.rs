//! The per-backend limits on sending: a rate limit (a token bucket of
//! `requests` refilled evenly over `per`; a call that finds it empty is
//! refused at once) and a concurrency limit (at most `max` attempts in
//! flight; more wait for a slot).
//!
//! Both are the proxy's own decisions to protect a backend, so a refusal is
//! a local rejection: never retried, never counted against the backend's
//! health. Time comes from `tokio::time`.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::RateLimit;

/// Why the proxy refused to send a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `rate_limit` reached.
    RateLimit,
    /// No `concurrency` slot freed up within the call's `timeout.overall`.
    Concurrency,
    /// The circuit breaker is open.
    BreakerOpen,
    /// Every connected endpoint is ejected by `outlier_detection`.
    Ejected,
}

impl Refusal {
    /// The reason as reported in errors and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::RateLimit => "rate_limit",
            Refusal::Concurrency => "concurrency",
            Refusal::BreakerOpen => "breaker_open",
            Refusal::Ejected => "ejected",
        }
    }
}

/// One backend's limits.
pub(crate) struct Limits {
    slots: Option<Arc<Semaphore>>,
    bucket: Option<Mutex<Bucket>>,
}

/// A sending slot, held for one attempt (the permit frees it on drop).
pub(crate) struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Limits {
    pub(crate) fn new(max_concurrency: Option<usize>, rate_limit: Option<RateLimit>) -> Self {
        Self {
            slots: max_concurrency.map(|max| Arc::new(Semaphore::new(max))),
            bucket: rate_limit.map(|rate| Mutex::new(Bucket::new(rate))),
        }
    }

    /// Takes a token (or refuses at once), then waits for a slot.
    pub(crate) async fn admit(&self) -> Result<Slot, Refusal> {
        if let Some(bucket) = &self.bucket
            && !bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_take()
        {
            return Err(Refusal::RateLimit);
        }
        match &self.slots {
            // The semaphore is never closed, so acquiring only fails if it
            // were; treat that as no limit rather than refusing forever.
            Some(slots) => Ok(Slot {
                _permit: Arc::clone(slots).acquire_owned().await.ok(),
            }),
            None => Ok(Slot { _permit: None }),
        }
    }
}

/// A token bucket that starts full.
struct Bucket {
    capacity: f64,
    per_token: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: RateLimit) -> Self {
        let capacity = f64::from(rate.requests);
        Self {
            capacity,
            per_token: rate.per.as_secs_f64() / capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let refill = (now - self.last).as_secs_f64() / self.per_token;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_refuses_beyond_the_bucket_and_refills_evenly() {
        let limits = Limits::new(
            None,
            Some(RateLimit {
                requests: 3,
                per: Duration::from_secs(3),
            }),
        );
        for _ in 0..3 {
            assert!(limits.admit().await.is_ok());
        }
        assert_eq!(limits.admit().await.err(), Some(Refusal::RateLimit));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(limits.admit().await.err(), Some(Refusal::RateLimit));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(limits.admit().await.is_ok());
        assert_eq!(limits.admit().await.err(), Some(Refusal::RateLimit));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_held_until_dropped() {
        let limits = Arc::new(Limits::new(Some(1), None));
        let first = limits.admit().await.unwrap();
        let waiting = tokio::spawn({
            let limits = Arc::clone(&limits);
            async move { limits.admit().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}
