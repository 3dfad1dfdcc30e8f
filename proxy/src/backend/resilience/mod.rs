//! The per-backend resilience stack around one call: an overall timeout,
//! then retries (with backoff and a budget), each attempt under a per-try
//! timeout.
//!
//! ```text
//! overall timeout -> retry (budget, backoff, safe to repeat)
//!   -> hedging (safe calls: a race of attempts, first success wins)
//!   -> limits (rate limit, concurrency slot) -> circuit breaker
//!   -> per-try timeout -> attempt
//! ```
//!
//! The breaker sits below the per-try timeout's caller, so an attempt that
//! times out counts as a failure against the backend (see [`breaker`]).
//! The same verdict goes to the attempt's [`AttemptReport`] (the endpoint's
//! outlier detector); an attempt cancelled before it answered (a losing
//! hedge, a client's cancel) is reported to neither.
//!
//! Waiting for a concurrency slot counts against `timeout.overall`; a call
//! that runs out of it while still waiting is refused by the proxy (a local
//! rejection), not timed out by the backend.
//!
//! Written here rather than with tower-resilience: its retry budget refills
//! on the wall clock and its random backoff draws from an unseeded generator,
//! while every decision here must read `tokio::time` and a generator seeded
//! from the config (`proxy.seed`), so tests on a paused clock and replayed
//! scenarios see the same choices.
//!
//! What may be repeated, and what the breaker counts, follow the error
//! model in [`super::failure`]: a call that provably never reached the
//! backend (not connected, connection refused) may always be retried; one
//! that may have reached it (lost connection, timeout, a JSON-RPC error)
//! only when it is safe to repeat ([`crate::call::Safety`]).
//! Local decisions (budget spent) never count against the backend; the
//! client then gets the attempt's own error.

mod breaker;
mod budget;
mod limits;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::time::Instant;

use super::CallError;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::backoff::Backoff;
use crate::config::{
    BackendConfig, BreakerPolicy, HedgePolicy, RateLimit, RetryPolicy, TimeoutPolicy,
};
use crate::trace::AttemptKind;
pub use breaker::BreakerState;
pub(crate) use breaker::Verdict;
use breaker::{Breaker, BreakerCounts};
use budget::Budget;
use limits::Limits;
pub(crate) use limits::Refusal;

/// Hears how an attempt went: called once it answered or timed out, never
/// for an attempt that was cancelled or refused by the proxy.
pub(crate) trait AttemptReport {
    fn report(self, verdict: Verdict);
}

impl AttemptReport for () {
    fn report(self, _: Verdict) {}
}

/// The policies of one backend's stack, as configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policies {
    pub(crate) timeout: TimeoutPolicy,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) hedging: Option<HedgePolicy>,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) breaker: Option<BreakerPolicy>,
}

impl Policies {
    /// The policies `config` names.
    pub(crate) fn of(config: &BackendConfig) -> Self {
        Self {
            timeout: config.timeout,
            retry: config.retry.clone(),
            hedging: config.hedging,
            max_concurrency: config.max_concurrency,
            rate_limit: config.rate_limit,
            breaker: config.circuit_breaker,
        }
    }
}

/// One backend's timeouts, retry, hedging, limits and breaker state.
pub(crate) struct Resilience {
    backend: String,
    timeout: TimeoutPolicy,
    retry: Option<Retry>,
    hedging: Option<HedgePolicy>,
    limits: Limits,
    breaker: Option<Breaker>,
    hedges: AtomicU64,
    retries: AtomicU64,
    timeouts: AtomicU64,
    refusals: AtomicU64,
}

struct Retry {
    policy: RetryPolicy,
    budget: Mutex<Budget>,
    rng: Mutex<StdRng>,
}

/// Counters for `/admin/backends`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResilienceCounts {
    pub(crate) hedges: u64,
    pub(crate) retries: u64,
    pub(crate) timeouts: u64,
    pub(crate) refusals: u64,
    /// The breaker's state and transitions, when there is one.
    pub(crate) breaker: Option<BreakerCounts>,
}

impl Resilience {
    /// `seed` is the proxy's; it is mixed with the backend's name so that
    /// backends draw different jitter.
    pub(crate) fn new(backend: &str, policies: Policies, seed: u64) -> Self {
        let retry = policies.retry.map(|policy| Retry {
            budget: Mutex::new(Budget::new(policy.budget)),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ name_hash(backend))),
            policy,
        });
        Self {
            backend: backend.to_owned(),
            timeout: policies.timeout,
            retry,
            hedging: policies.hedging,
            limits: Limits::new(policies.max_concurrency, policies.rate_limit),
            breaker: policies.breaker.map(Breaker::new),
            hedges: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        }
    }

    pub(crate) fn counts(&self) -> ResilienceCounts {
        ResilienceCounts {
            hedges: self.hedges.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            breaker: self.breaker.as_ref().map(Breaker::state),
        }
    }

    /// Runs `attempt` under the stack. `safe` says whether the call may be
    /// repeated after it may have reached the backend. Each call of
    /// `attempt` makes one attempt (told whether it is the first, a retry
    /// or a hedge) and the report that hears its verdict.
    /// Before each try (first or retry) `ready`, given the call's overall
    /// deadline, waits until the backend can take it (a restart in
    /// progress); the try's slot, breaker pass and timers start after.
    pub(crate) async fn call<W, WFut, F, Fut, R>(
        &self,
        ready: W,
        safe: bool,
        attempt: F,
    ) -> Result<Value, CallError>
    where
        W: Fn(Option<Instant>) -> WFut,
        WFut: Future<Output = ()>,
        F: FnMut(AttemptKind) -> (Fut, R),
        Fut: Future<Output = Result<Value, CallError>>,
        R: AttemptReport,
    {
        let deadline = self.timeout.overall.map(|limit| Instant::now() + limit);
        let waiting_for_slot = AtomicBool::new(false);
        let retried = self.retried(ready, safe, deadline, &waiting_for_slot, attempt);
        match self.timeout.overall {
            Some(limit) => match tokio::time::timeout(limit, retried).await {
                Ok(result) => result,
                Err(_) if waiting_for_slot.load(Ordering::Relaxed) => {
                    Err(self.refused(Refusal::Concurrency))
                }
                Err(_) => Err(self.timed_out(limit)),
            },
            None => retried.await,
        }
    }

    async fn retried<W, WFut, F, Fut, R>(
        &self,
        ready: W,
        safe: bool,
        deadline: Option<Instant>,
        waiting_for_slot: &AtomicBool,
        attempt: F,
    ) -> Result<Value, CallError>
    where
        W: Fn(Option<Instant>) -> WFut,
        WFut: Future<Output = ()>,
        F: FnMut(AttemptKind) -> (Fut, R),
        Fut: Future<Output = Result<Value, CallError>>,
        R: AttemptReport,
    {
        // Shared by the attempts of a hedge race; locked only to make each
        // attempt, which happens once it has its slot and breaker pass.
        let attempt = Mutex::new(attempt);
        if let Some(retry) = &self.retry {
            lock(&retry.budget).record_call();
        }
        let mut retries = 0;
        let mut pauses = self.retry.as_ref().map(Retry::pauses);
        loop {
            ready(deadline).await;
            let kind = if retries == 0 {
                AttemptKind::First
            } else {
                AttemptKind::Retry
            };
            let result = self.hedged(safe, waiting_for_slot, &attempt, kind).await;
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let (Some(retry), Some(pauses)) = (&self.retry, &mut pauses) else {
                return Err(error);
            };
            if retries >= retry.policy.max_retries || !error.is_retried(&retry.policy.on, safe) {
                return Err(error);
            }
            let pause = retry.pause(pauses);
            // A retry that could not start before the overall deadline would
            // only turn this error into a timeout: the client gets the
            // attempt's own error instead, and no retry is counted.
            if deadline.is_some_and(|d| Instant::now() + pause >= d)
                || !lock(&retry.budget).try_retry()
            {
                return Err(error);
            }
            retries += 1;
            self.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(backend = %self.backend, retry = retries, ?pause, %error, "retrying");
            tokio::time::sleep(pause).await;
        }
    }

    /// One attempt, or — for a call safe to repeat, with `hedging` — a race:
    /// another attempt starts each `delay` the running ones have not
    /// answered, up to `max_hedges`; the first *success* wins and the others
    /// are dropped (which cancels them at the backend). A failure only ends
    /// the race when nothing else is still running.
    async fn hedged<F, Fut, R>(
        &self,
        safe: bool,
        waiting_for_slot: &AtomicBool,
        attempt: &Mutex<F>,
        kind: AttemptKind,
    ) -> Result<Value, CallError>
    where
        F: FnMut(AttemptKind) -> (Fut, R),
        Fut: Future<Output = Result<Value, CallError>>,
        R: AttemptReport,
    {
        let Some(hedging) = self.hedging.filter(|_| safe) else {
            return self.once(waiting_for_slot, attempt, kind).await;
        };
        let mut running = FuturesUnordered::new();
        running.push(self.once(waiting_for_slot, attempt, kind));
        let mut hedges = 0;
        let next_hedge = tokio::time::sleep(hedging.delay);
        tokio::pin!(next_hedge);
        loop {
            tokio::select! {
                biased;
                Some(result) = running.next() => match result {
                    Ok(value) => return Ok(value),
                    Err(error) if running.is_empty() => return Err(error),
                    Err(_) => {}
                },
                () = &mut next_hedge, if hedges < hedging.max_hedges => {
                    hedges += 1;
                    self.hedges.fetch_add(1, Ordering::Relaxed);
                    running.push(self.once(waiting_for_slot, attempt, AttemptKind::Hedge));
                    next_hedge.as_mut().reset(Instant::now() + hedging.delay);
                }
            }
        }
    }

    /// One attempt through the limits, the breaker and the per-try timeout.
    async fn once<F, Fut, R>(
        &self,
        waiting_for_slot: &AtomicBool,
        attempt: &Mutex<F>,
        kind: AttemptKind,
    ) -> Result<Value, CallError>
    where
        F: FnMut(AttemptKind) -> (Fut, R),
        Fut: Future<Output = Result<Value, CallError>>,
        R: AttemptReport,
    {
        waiting_for_slot.store(true, Ordering::Relaxed);
        let admitted = self.limits.admit().await;
        waiting_for_slot.store(false, Ordering::Relaxed);
        let _slot = match admitted {
            Ok(slot) => slot,
            Err(refusal) => return Err(self.refused(refusal)),
        };
        let pass = match self.breaker.as_ref().map(Breaker::admit) {
            Some(None) => return Err(self.refused(Refusal::BreakerOpen)),
            Some(pass) => pass,
            None => None,
        };
        let (attempt, report) = (lock(attempt))(kind);
        let result = match self.timeout.per_try {
            // Dropping the attempt on timeout cancels it at the backend
            // (`notifications/cancelled`).
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => Err(self.timed_out(limit)),
            },
            None => attempt.await,
        };
        // A refusal from below (every endpoint ejected) is the proxy's own
        // decision: counted, and judged by neither the breaker nor the
        // detector (an unreported pass is handed back).
        let verdict = match &result {
            Ok(_) => Some(Verdict::Healthy),
            Err(error) => error.verdict(),
        };
        match verdict {
            Some(verdict) => {
                if let (Some(breaker), Some(pass)) = (&self.breaker, pass) {
                    breaker.record(pass, verdict);
                }
                report.report(verdict);
            }
            None => {
                self.refusals.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    fn refused(&self, reason: Refusal) -> CallError {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        CallError::Refused {
            backend: self.backend.clone(),
            reason,
        }
    }

    fn timed_out(&self, after: Duration) -> CallError {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        CallError::Timeout {
            backend: self.backend.clone(),
            after,
        }
    }
}

impl Retry {
    /// The pauses of one call's retries: doubling from `initial`, capped
    /// at `max`.
    fn pauses(&self) -> Backoff {
        Backoff::new(self.policy.backoff.initial, self.policy.backoff.max)
    }

    /// The next pause of `pauses`; with full jitter a uniform draw from 0
    /// to it, from the backend's seeded generator.
    fn pause(&self, pauses: &mut Backoff) -> Duration {
        if self.policy.backoff.full_jitter {
            pauses.next_jittered(&mut *lock(&self.rng))
        } else {
            pauses.next_delay()
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// FNV-1a of the backend's name: a stable per-backend seed offset.
pub(crate) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
