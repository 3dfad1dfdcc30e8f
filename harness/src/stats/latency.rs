//! Latency summaries of client calls.
//!
//! Latencies go into an HDR histogram in microseconds (1 µs to 1 h, three
//! significant digits), so quantiles of long runs cost a fixed amount of
//! memory. Each latency is [`CallRecord::latency`], measured from when the
//! call was *due*, which corrects for coordinated omission in open loop.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::load::record::CallRecord;

/// The largest latency the histogram tells apart: one hour, in µs. Longer
/// latencies are recorded as one hour rather than dropped.
const HIGHEST_MICROS: u64 = 3_600_000_000;

/// Significant decimal digits kept per value (a relative error of 0.1%).
const SIGNIFICANT_DIGITS: u8 = 3;

/// How a set of client calls went: counts, error rate and latency.
#[derive(Debug, Clone)]
pub struct LatencySummary {
    /// Calls summarised.
    pub calls: u64,
    /// Calls that did not succeed (any outcome but success, hung included).
    pub errors: u64,
    /// `errors / calls`; 0 when there are no calls.
    pub error_rate: f64,
    /// Latency of every call, in microseconds.
    pub histogram: Histogram<u64>,
    /// The exact largest latency, in µs: the histogram rounds values up to
    /// the top of their bucket, and quantiles are capped by this so that a
    /// run of equal latencies reports exactly that latency.
    max_micros: u64,
}

impl LatencySummary {
    /// Summarises `records` (failed and hung calls included: a hung call's
    /// latency is how long it was waited for).
    pub fn of<'a>(records: impl IntoIterator<Item = &'a CallRecord>) -> Self {
        let mut histogram = new_histogram();
        let mut calls = 0u64;
        let mut errors = 0u64;
        let mut max_micros = 0u64;
        for record in records {
            calls += 1;
            if !record.is_success() {
                errors += 1;
            }
            let micros = u64::try_from(record.latency().as_micros())
                .unwrap_or(u64::MAX)
                .min(HIGHEST_MICROS);
            max_micros = max_micros.max(micros);
            histogram.saturating_record(micros);
        }
        let error_rate = if calls == 0 {
            0.0
        } else {
            errors as f64 / calls as f64
        };
        Self {
            calls,
            errors,
            error_rate,
            histogram,
            max_micros,
        }
    }

    /// The latency at quantile `q` (0..=1; out-of-range values are clamped).
    /// It is never below the true quantile and at most 0.1% above it (never
    /// above the largest latency). Zero when there are no calls.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.calls == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let micros = self.histogram.value_at_quantile(q).min(self.max_micros);
        Duration::from_micros(micros)
    }

    /// The largest latency (exact, up to one hour). Zero when there are no calls.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }
}

fn new_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (1 ≤ low, high ≥ 2·low,
    // digits ≤ 5): creation depends on no input and cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::record::CallOutcome;

    fn call(
        n: u64,
        intended_ms: u64,
        sent_ms: u64,
        ended_ms: u64,
        outcome: CallOutcome,
    ) -> CallRecord {
        CallRecord {
            call: n,
            client: 0,
            tool: "files/read".into(),
            intended: Duration::from_millis(intended_ms),
            sent: Duration::from_millis(sent_ms),
            ended: Duration::from_millis(ended_ms),
            outcome,
            echoed_call: None,
        }
    }

    #[test]
    fn no_calls_summarise_to_zeros() {
        let s = LatencySummary::of(&[]);
        assert_eq!((s.calls, s.errors, s.error_rate), (0, 0, 0.0));
        assert_eq!(s.quantile(0.99), Duration::ZERO);
        assert_eq!(s.max(), Duration::ZERO);
    }

    #[test]
    fn quantiles_are_within_a_tenth_of_a_percent_and_max_is_exact() {
        let records: Vec<_> = (1..=100)
            .map(|ms| call(ms, 0, 0, ms, CallOutcome::Success))
            .collect();
        let s = LatencySummary::of(&records);
        let close = |got: Duration, want_ms: u64| {
            let want = Duration::from_millis(want_ms);
            got >= want && got.as_secs_f64() <= want.as_secs_f64() * 1.001
        };
        assert!(close(s.quantile(0.5), 50), "{:?}", s.quantile(0.5));
        assert!(close(s.quantile(0.99), 99), "{:?}", s.quantile(0.99));
        assert_eq!(s.quantile(1.0), Duration::from_millis(100));
        assert_eq!(s.max(), Duration::from_millis(100));
    }

    #[test]
    fn equal_latencies_report_exactly_that_latency() {
        // 100 ms is not a bucket boundary; without the cap p99 would read 100.031 ms
        // and a `p99 ≤ 100ms` bound would fail on a fixed 100 ms latency.
        let records: Vec<_> = (0..10)
            .map(|n| call(n, 0, 0, 100, CallOutcome::Success))
            .collect();
        let s = LatencySummary::of(&records);
        assert_eq!(s.quantile(0.99), Duration::from_millis(100));
        assert_eq!(s.quantile(0.5), Duration::from_millis(100));
    }

    #[test]
    fn latency_counts_from_when_the_call_was_due() {
        // Sent 90 ms late (the generator was stalled): the user waited 100 ms, not 10.
        let s = LatencySummary::of(&[call(1, 0, 90, 100, CallOutcome::Success)]);
        assert_eq!(s.max(), Duration::from_millis(100));
    }

    #[test]
    fn every_outcome_but_success_is_an_error() {
        let records = [
            call(1, 0, 0, 1, CallOutcome::Success),
            call(2, 0, 0, 1, CallOutcome::Hung),
            call(
                3,
                0,
                0,
                1,
                CallOutcome::ToolError {
                    message: "x".into(),
                },
            ),
            call(4, 0, 0, 1, CallOutcome::HttpStatus { status: 502 }),
        ];
        let s = LatencySummary::of(&records);
        assert_eq!((s.calls, s.errors), (4, 3));
        assert!((s.error_rate - 0.75).abs() < 1e-12);
    }

    #[test]
    fn latencies_beyond_an_hour_saturate() {
        let two_hours = 2 * 3600 * 1000;
        let s = LatencySummary::of(&[call(1, 0, 0, two_hours, CallOutcome::Hung)]);
        assert_eq!(s.max(), Duration::from_secs(3600));
        assert_eq!(s.quantile(0.5), Duration::from_secs(3600));
    }
}
