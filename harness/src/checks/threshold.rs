//! `threshold` checks: bounds on the error rate and latency percentiles of
//! the client calls a selector picks, with a minimum number of calls so
//! that an empty window cannot pass by saying nothing.

use super::figures::{Figures, Measure};
use super::{Verdict, describe_selection, select_calls};
use crate::load::record::CallRecord;
use crate::report::format::{count, duration, percent};
use crate::scenario::ThresholdCheck;
use crate::stats::LatencySummary;

/// The kind's name in reports.
pub const KIND: &str = "threshold";

/// Judges `spec` over `calls`.
pub fn check(spec: &ThresholdCheck, calls: &[CallRecord]) -> Verdict {
    let summary = LatencySummary::of(select_calls(&spec.select, calls));

    let mut expected = Vec::new();
    if let Some(code) = &spec.select.code {
        expected.push(format!("errors {code}:"));
    }
    if let Some(max) = spec.max_error_rate {
        expected.push(format!("error rate ≤ {}", percent(max)));
    }
    for (percentile, bound) in &spec.latency {
        expected.push(format!("{} ≤ {}", percentile.label, duration(*bound)));
    }
    if spec.min_calls > 1 || spec.max_error_rate.is_none() && spec.latency.is_empty() {
        expected.push(format!("≥ {}", count(spec.min_calls, "call")));
    }
    let expected = expected.join(", ").replacen(":,", ":", 1);
    let figures = figures(spec, &summary);

    if summary.calls < spec.min_calls {
        let observed = if summary.calls == 0 {
            "no calls".to_owned()
        } else {
            format!("only {}", count(summary.calls, "call"))
        };
        return Verdict {
            expected,
            observed,
            passed: false,
            detail: Some(format!(
                "{} selected, {} needed ({})",
                count(summary.calls, "call"),
                spec.min_calls,
                describe_selection(&spec.select.tool, &spec.select.window)
            )),
            figures,
        };
    }

    let mut observed = Vec::new();
    let mut broken = Vec::new();
    if let Some(max) = spec.max_error_rate {
        observed.push(format!(
            "{} ({} of {})",
            percent(summary.error_rate),
            summary.errors,
            summary.calls
        ));
        if summary.error_rate > max {
            broken.push(format!(
                "error rate {} > {}",
                percent(summary.error_rate),
                percent(max)
            ));
        }
    }
    for (percentile, bound) in &spec.latency {
        let value = summary.quantile(percentile.quantile);
        observed.push(format!("{} = {}", percentile.label, duration(value)));
        if value > *bound {
            broken.push(format!(
                "{} {} > {}",
                percentile.label,
                duration(value),
                duration(*bound)
            ));
        }
    }
    if spec.max_error_rate.is_none() {
        // The error-rate text already carries the count; otherwise say it.
        observed.push(count(summary.calls, "call"));
    }
    Verdict {
        expected,
        observed: observed.join(", "),
        passed: broken.is_empty(),
        detail: (!broken.is_empty()).then(|| broken.join("; ")),
        figures,
    }
}

/// The selected calls against `min_calls`, the error rate and each latency
/// bound; without calls, the rate and percentiles have no value.
fn figures(spec: &ThresholdCheck, summary: &LatencySummary) -> Figures {
    let mut measures = vec![Measure::count(
        "calls",
        summary.calls,
        Some(spec.min_calls),
        None,
    )];
    if let Some(max) = spec.max_error_rate {
        measures.push(Measure::share(
            "error_rate",
            summary.errors,
            summary.calls,
            None,
            Some(max),
        ));
    }
    for (percentile, bound) in &spec.latency {
        let value = (summary.calls > 0).then(|| summary.quantile(percentile.quantile));
        measures.push(Measure::duration(percentile.label, value, *bound));
    }
    Figures::over(&spec.select.window, measures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;
    use crate::load::record::CallOutcome;
    use crate::scenario::{CallSelector, CodeSelector, Percentile};

    const P99: Percentile = Percentile {
        label: "p99",
        quantile: 0.99,
    };
    const MAX: Percentile = Percentile {
        label: "max",
        quantile: 1.0,
    };

    fn spec(
        max_error_rate: Option<f64>,
        latency: Vec<(Percentile, std::time::Duration)>,
        min_calls: u64,
    ) -> ThresholdCheck {
        ThresholdCheck {
            select: CallSelector {
                tool: "files/*".into(),
                window: window("during files-down", &[(1_000, 2_000)]),
                outcome: None,
                code: None,
                identity: None,
            },
            max_error_rate,
            latency,
            min_calls,
        }
    }

    /// 100 calls of files/read due inside the window, 1..=100 ms each, the
    /// first `failed` of them JSON-RPC errors; plus noise outside the selection.
    fn calls(failed: u64) -> Vec<CallRecord> {
        let mut calls: Vec<_> = (1..=100)
            .map(|n| {
                let outcome = if n <= failed {
                    rpc_error(-32000, "down")
                } else {
                    CallOutcome::Success
                };
                call(n, "files/read", 1_000 + n, n, outcome)
            })
            .collect();
        // Slow and failing, but outside the window or of another tool.
        calls.push(call(101, "files/read", 2_500, 9_000, CallOutcome::Hung));
        calls.push(call(102, "db/query", 1_500, 9_000, CallOutcome::Hung));
        calls
    }

    #[test]
    fn passes_within_bounds() {
        let v = check(
            &spec(Some(0.05), vec![(P99, ms(100)), (MAX, ms(100))], 50),
            &calls(3),
        );
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.expected,
            "error rate ≤ 5.0%, p99 ≤ 100ms, max ≤ 100ms, ≥ 50 calls"
        );
        assert_eq!(v.observed, "3.0% (3 of 100), p99 = 99ms, max = 100ms");
        assert_eq!(v.detail, None);
    }

    #[test]
    fn figures_carry_the_window_calls_error_rate_and_each_percentile() {
        let v = check(
            &spec(Some(0.05), vec![(P99, ms(100)), (MAX, ms(50))], 50),
            &calls(3),
        );
        let f = &v.figures;
        assert_eq!(
            f.window,
            [crate::checks::figures::Span {
                from_us: 1_000_000,
                to_us: Some(2_000_000)
            }]
        );
        assert_eq!(
            measures(f),
            [
                "calls = 100 count, min 50, passed",
                "error_rate = 0.03 share, max 0.05, count 3, of 100, passed",
                // The histogram's value, within 0.1% of 99ms (the text rounds it).
                "p99 = 99007 us, max 100000, passed",
                "max = 100000 us, max 50000, failed",
            ]
        );
        assert!(!v.passed);

        // Too few calls: the count fails, and nothing else has a value.
        let v = check(&spec(Some(0.05), vec![(P99, ms(100))], 1), &[]);
        assert_eq!(
            measures(&v.figures),
            [
                "calls = 0 count, min 1, failed",
                "error_rate = none share, max 0.05, count 0, of 0, failed",
                "p99 = none us, max 100000, failed",
            ]
        );
    }

    #[test]
    fn fails_on_the_error_rate() {
        let v = check(&spec(Some(0.0), Vec::new(), 1), &calls(1));
        assert!(!v.passed);
        assert_eq!(v.expected, "error rate ≤ 0.0%");
        assert_eq!(v.observed, "1.0% (1 of 100)");
        assert_eq!(v.detail.as_deref(), Some("error rate 1.0% > 0.0%"));
    }

    #[test]
    fn fails_on_a_latency_percentile() {
        let v = check(&spec(None, vec![(P99, ms(50))], 1), &calls(0));
        assert!(!v.passed);
        assert_eq!(v.observed, "p99 = 99ms, 100 calls");
        assert_eq!(v.detail.as_deref(), Some("p99 99ms > 50ms"));
    }

    #[test]
    fn too_few_calls_fail_and_say_so() {
        let v = check(&spec(Some(1.0), Vec::new(), 200), &calls(0));
        assert!(!v.passed);
        assert_eq!(v.observed, "only 100 calls");
        assert!(v.detail.unwrap().contains("100 calls selected, 200 needed"));

        let v = check(&spec(Some(1.0), Vec::new(), 1), &[]);
        assert!(!v.passed);
        assert_eq!(v.observed, "no calls");
    }

    #[test]
    fn a_code_selects_only_the_errors_with_that_code() {
        let mut only = spec(None, vec![(P99, ms(20))], 10);
        only.select.code = Some(CodeSelector::code(-32000));
        // The 10 failures took 1..=10 ms; the slow successes do not count.
        let v = check(&only, &calls(10));
        assert!(v.passed, "{v:?}");
        assert_eq!(v.expected, "errors -32000: p99 ≤ 20ms, ≥ 10 calls");
        assert_eq!(v.observed, "p99 = 10ms, 10 calls");

        // Another code: nothing selected, and too few calls fails.
        only.select.code = Some(CodeSelector::code(-32014));
        let v = check(&only, &calls(10));
        assert!(!v.passed);
        assert_eq!(v.observed, "no calls");
    }
}
