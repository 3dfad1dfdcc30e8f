//! The per-backend limits on sending: a rate limit (a token bucket of
//! `requests` refilled evenly over `per`; a call that finds it empty is
//! refused at once) and a concurrency limit (at most `max` attempts in
//! flight; more wait for a slot).
//!
//! Both are the proxy's own decisions to protect a backend, so a refusal is
//! a local rejection: never retried, never counted against the backend's
//! health. Time comes from `tokio::time`.
//!
//! The rate limit is tower-resilience's (0.13.0, crate
//! `tower-resilience-ratelimiter`), checked against its source:
//!
//! - `burst_size(0)` selects its token bucket (`TokenBucketState` in
//!   `src/limiter.rs`): capacity `limit_for_period + burst_size`, starting
//!   full, refilled continuously at `limit_for_period` per `refresh_period`:
//!   our `requests` per `per`, exactly. Its windows (`Fixed`, `SlidingLog`,
//!   `SlidingCounter`) would not be: a fixed window lets `2 * requests`
//!   through around a boundary.
//! - `timeout_duration(ZERO)` refuses at once: `SharedRateLimiter::acquire`
//!   returns `Err` on the first empty bucket, before any `sleep`, when no
//!   timeout remains. A refusal takes no (virtual) time and consumes nothing.
//! - Every decision reads `tokio::time::Instant` (`src/limiter.rs` imports
//!   it), so it follows the paused clock; no task is spawned and nothing is
//!   random. `std::time::Instant` (`src/lib.rs`) only stamps the events it
//!   emits, to no listener here.
//! - The limiter state is reachable only through its tower `Service`
//!   (`SharedRateLimiter` is `pub(crate)`; `RateLimiterHandle` only reads),
//!   so a call passes through a `RateLimiter` around a service that admits
//!   nothing but `()`; clones share one bucket. Per call that costs a clone
//!   of that service (two `Arc`s), one mutex lock (as our own bucket took),
//!   one boxed future, a read of std's clock for the event's stamp and a
//!   clone of the limiter's name, which is empty so as not to allocate.
//!
//! A rejection is its `RateLimiterServiceError::RateLimited`, turned into
//! [`Refusal::RateLimit`] here; the inner service never fails.
//!
//! The concurrency limit stays a `tokio::sync::Semaphore` of our own. The
//! bulkhead of tower-resilience 0.13.0 (`tower-resilience-bulkhead`,
//! `src/service.rs`) is the same semaphore behind a `Service`, and does not
//! fit as designed: in its default mode it holds the permit only while its
//! inner service's call runs, and that call's future must be `Send +
//! 'static`, whereas our slot is held across the breaker pass, the per-try
//! timeout and an attempt that borrows the call's state. Only its
//! `backpressure` mode reserves a permit outside `call` (in `poll_ready`,
//! kept by that service clone), which would make a slot "a clone made ready
//! and never called": a permit in disguise, that adds nothing to the
//! semaphore (without `max_wait_duration` it waits as ours does, reading no
//! clock) but a service clone per attempt.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::util::ServiceFn;
use tower::{Layer, ServiceExt, service_fn};
use tower_resilience::ratelimiter::{RateLimiter, RateLimiterLayer};

use crate::config::RateLimit;

/// Why the proxy refused to send a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::RateLimit => "rate_limit",
            Refusal::Concurrency => "concurrency",
            Refusal::BreakerOpen => "breaker_open",
            Refusal::Ejected => "ejected",
        }
    }
}

/// The service behind the rate limiter: taking a token is all a call asks.
type Admission = ServiceFn<fn(()) -> Ready<Result<(), Infallible>>>;

/// One backend's limits.
pub(crate) struct Limits {
    slots: Option<Arc<Semaphore>>,
    rate: Option<RateLimiter<Admission>>,
}

/// A sending slot, held for one attempt (the permit frees it on drop).
pub(crate) struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Limits {
    pub(crate) fn new(max_concurrency: Option<usize>, rate_limit: Option<RateLimit>) -> Self {
        Self {
            slots: max_concurrency.map(|max| Arc::new(Semaphore::new(max))),
            rate: rate_limit.and_then(token_bucket),
        }
    }

    /// Takes a token (or refuses at once), then waits for a slot.
    pub(crate) async fn admit(&self) -> Result<Slot, Refusal> {
        if let Some(rate) = &self.rate
            && rate.clone().oneshot(()).await.is_err()
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

/// A token bucket of `requests` that starts full, refills evenly over `per`
/// and never waits. `None` for a zero `requests` or `per`, which the
/// limiter cannot express: config validation (`config/validate/`) rejects
/// both, and a config built in code that has them gets no limit, with a
/// warning, rather than a panic.
fn token_bucket(rate: RateLimit) -> Option<RateLimiter<Admission>> {
    fn admitted((): ()) -> Ready<Result<(), Infallible>> {
        ready(Ok(()))
    }
    let layer = RateLimiterLayer::builder()
        .limit_for_period(rate.requests as usize)
        .refresh_period(rate.per)
        .burst_size(0)
        .timeout_duration(Duration::ZERO)
        .name("")
        .build();
    match layer {
        Ok(layer) => Some(layer.layer(service_fn(admitted as fn(()) -> _))),
        Err(error) => {
            tracing::warn!(%error, ?rate, "rate_limit cannot be applied; calls are not limited");
            None
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
