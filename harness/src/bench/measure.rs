//! From one cell's call records to its figures: throughput over the
//! measured window, latency percentiles (the [`LatencySummary`] the
//! scenario checks use) and failures by kind.
//!
//! Throughput counts the successes that ended inside the window, whenever
//! they started. Latency and failures count the calls due inside the
//! window, however late they ended (a call still running at the end is
//! waited for, or recorded as hung by the load engine): dropping the calls
//! still running when the window closes would drop the slowest ones.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Load;
use crate::load::{CallOutcome, LoadResult};
use crate::stats::LatencySummary;

/// Latency percentiles of the successful calls, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p999: u64,
    /// The slowest.
    pub max: u64,
}

/// What one target did under one load.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The target's label.
    pub target: String,
    /// The load it was under.
    pub load: Load,
    /// The measured window, in seconds.
    pub seconds: f64,
    /// Successful calls that ended in the window.
    pub successes: u64,
    /// Successful calls per second.
    pub req_per_s: f64,
    /// Latency of the successful calls (open loop: from when each was due).
    pub latency_us: Latency,
    /// Calls due in the window that failed, by kind (`rpc -32010`,
    /// `tool_error`, `http 503`, `transport`, `hung`).
    pub errors: BTreeMap<String, u64>,
    /// Open loop: slots of the whole run that could not be sent on time.
    pub missed_slots: u64,
    /// Sessions that could not be opened, with the reason.
    pub session_errors: Vec<String>,
    /// CPU time (user and system) the target's process spent in the
    /// window per successful call, in microseconds; only for a process the
    /// bench started (see [`super::cpu`]).
    pub cpu_us_per_call: Option<f64>,
}

impl Measurement {
    /// The figures of `result` (a load on the target labelled `target`)
    /// over the window from `warmup` to `warmup + window`.
    pub(super) fn of(
        target: &str,
        load: Load,
        result: &LoadResult,
        warmup: Duration,
        window: Duration,
    ) -> Self {
        let end = warmup + window;
        let in_window = |at: Duration| at >= warmup && at < end;
        let successes = result
            .calls
            .iter()
            .filter(|call| call.is_success() && in_window(call.ended))
            .count() as u64;
        let due = || result.calls.iter().filter(|call| in_window(call.intended));
        let latency = LatencySummary::of(due().filter(|call| call.is_success()));
        let mut errors = BTreeMap::new();
        for call in due().filter(|call| !call.is_success()) {
            *errors.entry(kind(&call.outcome)).or_insert(0) += 1;
        }
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let at = |quantile: f64| micros(latency.quantile(quantile));
        Self {
            target: target.to_owned(),
            load,
            seconds: window.as_secs_f64(),
            successes,
            req_per_s: successes as f64 / window.as_secs_f64(),
            latency_us: Latency {
                p50: at(0.5),
                p90: at(0.9),
                p99: at(0.99),
                p999: at(0.999),
                max: micros(latency.max()),
            },
            errors,
            missed_slots: result.missed_slots,
            session_errors: result.session_errors.clone(),
            cpu_us_per_call: None,
        }
    }

    /// With the target process's CPU time over the window, spread over
    /// the window's successful calls.
    pub(super) fn with_cpu(mut self, cpu: Option<Duration>) -> Self {
        self.cpu_us_per_call = cpu
            .filter(|_| self.successes > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.successes as f64);
        self
    }

    /// Failed calls in the window.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A call's outcome by kind, as the tables count it.
pub(super) fn kind(outcome: &CallOutcome) -> String {
    match outcome {
        CallOutcome::Success => "success".into(),
        CallOutcome::ToolError { .. } => "tool_error".into(),
        CallOutcome::RpcError { code, .. } => format!("rpc {code}"),
        CallOutcome::HttpStatus { status } => format!("http {status}"),
        CallOutcome::Transport { .. } => "transport".into(),
        CallOutcome::Hung => "hung".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::CallRecord;

    fn record(sent_ms: u64, took_ms: u64, outcome: CallOutcome) -> CallRecord {
        let sent = Duration::from_millis(sent_ms);
        CallRecord {
            call: sent_ms,
            client: 0,
            tool: "echo".into(),
            intended: sent,
            sent,
            ended: sent + Duration::from_millis(took_ms),
            outcome,
            echoed_call: None,
        }
    }

    #[test]
    fn cpu_time_is_spread_over_the_successes_of_the_window() {
        let load = Load::Closed { concurrency: 1 };
        let window = Duration::from_secs(1);
        let calls = (0..4).map(|i| record(500 + i * 100, 10, CallOutcome::Success));
        let result = LoadResult {
            calls: calls.collect(),
            ..LoadResult::default()
        };
        let cell = Measurement::of("t", load, &result, Duration::ZERO, window)
            .with_cpu(Some(Duration::from_millis(2)));
        assert_eq!(cell.successes, 4);
        assert_eq!(cell.cpu_us_per_call, Some(500.0));
        let empty = Measurement::of("t", load, &LoadResult::default(), Duration::ZERO, window)
            .with_cpu(Some(Duration::from_millis(2)));
        assert_eq!(empty.cpu_us_per_call, None, "no success, no figure");
    }

    #[test]
    fn throughput_counts_what_ended_in_the_window_and_latency_what_was_due_in_it() {
        let down = CallOutcome::RpcError {
            code: -32010,
            message: "down".into(),
        };
        let result = LoadResult {
            calls: vec![
                // Due and ended during the warm-up: not counted.
                record(500, 1, CallOutcome::Success),
                // Due in the warm-up, ended in the window: throughput only.
                record(999, 2_000, CallOutcome::Success),
                // Due and ended in the window.
                record(1_000, 2, CallOutcome::Success),
                record(1_500, 4, CallOutcome::Success),
                record(2_000, 1, CallOutcome::Hung),
                record(2_100, 1, down),
                // Due in the window, ended after it: latency only, the
                // slowest of all.
                record(2_999, 9, CallOutcome::Success),
            ],
            ..LoadResult::default()
        };
        let m = Measurement::of(
            "t",
            Load::Closed { concurrency: 1 },
            &result,
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        assert_eq!(m.successes, 3);
        assert!((m.req_per_s - 1.5).abs() < 1e-9);
        assert_eq!(m.error_count(), 2);
        assert_eq!(m.errors["hung"], 1);
        assert_eq!(m.errors["rpc -32010"], 1);
        // Three significant digits: within 0.1 % of the recorded value.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(m.latency_us.p50, 4_000), "{:?}", m.latency_us);
        assert!(near(m.latency_us.max, 9_000), "{:?}", m.latency_us);
    }
}
