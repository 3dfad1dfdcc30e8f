//! The resilience keys of a backend: `reconnect`, `timeout` (per try and
//! overall), `retry` (count, backoff, budget, which failures) and
//! `circuit_breaker`, with their defaults and the rules between them.

use std::time::Duration;

use super::super::raw::{RawBreaker, RawReconnect, RawRetry, RawTimeout, RetryOnItem};
use super::super::source::Seg;
use super::super::{
    BreakerPolicy, ConfigError, ReconnectPolicy, RetryBackoff, RetryBudget, RetryOn, RetryPolicy,
    SlowCall, TimeoutPolicy,
};
use super::{Validator, child};

/// Default `retry.max_retries`, and the most allowed.
const DEFAULT_MAX_RETRIES: u32 = 2;
const MAX_RETRIES: u32 = 10;
/// Default `retry.backoff`.
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(20);
const DEFAULT_RETRY_MAX: Duration = Duration::from_millis(500);
/// Default `retry.budget`.
const DEFAULT_BUDGET_PERCENT: f64 = 20.0;
const DEFAULT_BUDGET_MIN_PER_SECOND: f64 = 5.0;

impl Validator<'_> {
    pub(super) fn reconnect(
        &self,
        raw: Option<&RawReconnect>,
        path: &[Seg],
    ) -> Result<ReconnectPolicy, ConfigError> {
        let defaults = ReconnectPolicy::default();
        let initial = raw
            .and_then(|r| r.initial)
            .map_or(defaults.initial, |d| d.0);
        let max = raw.and_then(|r| r.max).map_or(defaults.max, |d| d.0);
        if initial.is_zero() {
            return Err(self.error(&child(path, "initial"), "must be greater than zero"));
        }
        if max < initial {
            let written = raw.is_some_and(|r| r.max.is_some());
            let (at, default) = if written {
                ("max", "")
            } else {
                ("initial", ", the default")
            };
            return Err(self.error(
                &child(path, at),
                format!("max ({max:?}{default}) must not be less than initial ({initial:?})"),
            ));
        }
        Ok(ReconnectPolicy { initial, max })
    }

    /// `timeout` of a backend; `overall` is `default_overall`
    /// (`proxy.default_call_timeout`) when the backend sets none.
    pub(super) fn timeout(
        &self,
        raw: Option<&RawTimeout>,
        path: &[Seg],
        default_overall: Duration,
    ) -> Result<TimeoutPolicy, ConfigError> {
        let per_try = raw.and_then(|r| r.per_try).map(|d| d.0);
        let written_overall = raw.and_then(|r| r.overall).map(|d| d.0);
        for (key, value) in [("per_try", per_try), ("overall", written_overall)] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(self.error(&child(path, key), "must be greater than zero"));
            }
        }
        let overall = written_overall.unwrap_or(default_overall);
        if let Some(per_try) = per_try
            && per_try > overall
        {
            let whose = if written_overall.is_some() {
                ""
            } else {
                ", proxy.default_call_timeout"
            };
            return Err(self.error(
                &child(path, "per_try"),
                format!(
                    "per_try ({per_try:?}) must not be longer than overall ({overall:?}{whose})"
                ),
            ));
        }
        Ok(TimeoutPolicy {
            per_try,
            overall: Some(overall),
        })
    }

    /// `retry` of the backend at `backend_path`, whose `timeout` is known.
    pub(super) fn retry(
        &self,
        raw: &RawRetry,
        timeout: &TimeoutPolicy,
        backend_path: &[Seg],
    ) -> Result<RetryPolicy, ConfigError> {
        let path = &child(backend_path, "retry");
        if let (Some(per_try), Some(overall)) = (timeout.per_try, timeout.overall)
            && per_try == overall
        {
            return Err(self.error(
                &child(&child(backend_path, "timeout"), "per_try"),
                "equals overall, which leaves no time to retry",
            ));
        }
        let max_retries = raw.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if !(1..=MAX_RETRIES).contains(&max_retries) {
            return Err(self.error(
                &child(path, "max_retries"),
                format!("must be 1 to {MAX_RETRIES}"),
            ));
        }
        let backoff_path = child(path, "backoff");
        let backoff = raw.backoff.as_ref();
        let initial = backoff
            .and_then(|b| b.initial)
            .map_or(DEFAULT_RETRY_INITIAL, |d| d.0);
        let max = backoff
            .and_then(|b| b.max)
            .map_or(DEFAULT_RETRY_MAX, |d| d.0);
        if max < initial {
            return Err(self.error(
                &child(&backoff_path, "max"),
                format!("max ({max:?}) must not be less than initial ({initial:?})"),
            ));
        }
        let full_jitter = match backoff.and_then(|b| b.jitter.as_deref()) {
            None | Some("full") => true,
            Some("none") => false,
            Some(other) => {
                return Err(self.error(
                    &child(&backoff_path, "jitter"),
                    format!("unknown jitter {other:?}; expected \"full\" or \"none\""),
                ));
            }
        };
        let budget_path = child(path, "budget");
        let budget = raw.budget.as_ref();
        let percent = budget
            .and_then(|b| b.percent)
            .unwrap_or(DEFAULT_BUDGET_PERCENT);
        if !(0.0..=100.0).contains(&percent) {
            return Err(self.error(&child(&budget_path, "percent"), "must be 0 to 100"));
        }
        let min_per_second = budget
            .and_then(|b| b.min_per_second)
            .unwrap_or(DEFAULT_BUDGET_MIN_PER_SECOND);
        if !(min_per_second.is_finite() && min_per_second >= 0.0) {
            return Err(self.error(&child(&budget_path, "min_per_second"), "must be ≥ 0"));
        }
        let mut on = RetryOn {
            transport: false,
            timeout: false,
            unavailable: false,
            codes: Vec::new(),
        };
        match &raw.on {
            None => {
                on.transport = true;
                // Only attempts with a per-try limit can time out and be retried.
                on.timeout = timeout.per_try.is_some();
                on.unavailable = true;
            }
            Some(items) => {
                if items.is_empty() {
                    return Err(self.error(&child(path, "on"), "must name at least one failure"));
                }
                for (i, item) in items.iter().enumerate() {
                    let mut p = child(path, "on");
                    p.push(Seg::Index(i));
                    match item {
                        RetryOnItem::Kind(k) if k == "transport" => on.transport = true,
                        RetryOnItem::Kind(k) if k == "timeout" => {
                            if timeout.per_try.is_none() {
                                return Err(self.error(
                                    &p,
                                    "retrying timeouts needs timeout.per_try (an overall timeout ends the call)",
                                ));
                            }
                            on.timeout = true;
                        }
                        RetryOnItem::Kind(k) if k == "unavailable" => on.unavailable = true,
                        RetryOnItem::Kind(k) => {
                            return Err(self.error(
                                &p,
                                format!("unknown failure {k:?}; expected transport, timeout, unavailable or a JSON-RPC error code"),
                            ));
                        }
                        RetryOnItem::Code(code) => on.codes.push(*code),
                    }
                }
            }
        }
        Ok(RetryPolicy {
            max_retries,
            backoff: RetryBackoff {
                initial,
                max,
                full_jitter,
            },
            budget: RetryBudget {
                percent,
                min_per_second,
            },
            on,
        })
    }

    pub(super) fn breaker(
        &self,
        raw: &RawBreaker,
        path: &[Seg],
    ) -> Result<BreakerPolicy, ConfigError> {
        let window = raw.window.map_or(Duration::from_secs(10), |d| d.0);
        let open_for = raw.open_for.map_or(Duration::from_secs(5), |d| d.0);
        for (key, value) in [("window", window), ("open_for", open_for)] {
            if value.is_zero() {
                return Err(self.error(&child(path, key), "must be greater than zero"));
            }
        }
        let failure_rate = raw.failure_rate.unwrap_or(0.5);
        if !(failure_rate > 0.0 && failure_rate <= 1.0) {
            return Err(self.error(
                &child(path, "failure_rate"),
                "must be above 0 and at most 1",
            ));
        }
        let min_calls = raw.min_calls.unwrap_or(20);
        if min_calls == 0 {
            return Err(self.error(&child(path, "min_calls"), "must be at least 1"));
        }
        let half_open_probes = raw.half_open_probes.unwrap_or(3);
        if half_open_probes == 0 {
            return Err(self.error(&child(path, "half_open_probes"), "must be at least 1"));
        }
        let slow_call = match &raw.slow_call {
            None => None,
            Some(slow) => {
                let p = child(path, "slow_call");
                if slow.threshold.0.is_zero() {
                    return Err(self.error(&child(&p, "threshold"), "must be greater than zero"));
                }
                if !(slow.rate > 0.0 && slow.rate <= 1.0) {
                    return Err(self.error(&child(&p, "rate"), "must be above 0 and at most 1"));
                }
                Some(SlowCall {
                    threshold: slow.threshold.0,
                    rate: slow.rate,
                })
            }
        };
        Ok(BreakerPolicy {
            window,
            min_calls,
            failure_rate,
            slow_call,
            open_for,
            half_open_probes,
        })
    }
}
