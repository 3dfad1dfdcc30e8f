//! `timing` checks: how soon after a phase boundary the first answer of a
//! kind arrived — how long a gateway took to notice a backend died (first
//! fast rejection) or came back (first success).

use std::time::Duration;

use mcp_proxy::glob;

use super::figures::{Figures, Measure, Span};
use super::{Verdict, outcome_matches};
use crate::load::record::{CallOutcome, CallRecord};
use crate::report::format::duration;
use crate::scenario::{OutcomeFilter, TimingCheck};

/// The kind's name in reports.
pub const KIND: &str = "timing";

/// Judges `spec` over `calls`: the earliest end, at or after the reference
/// instant, of a call of the awaited kind must come within the bound.
pub fn check(spec: &TimingCheck, calls: &[CallRecord]) -> Verdict {
    let first = calls
        .iter()
        .filter(|c| c.ended >= spec.after && awaited(spec, c))
        .min_by_key(|c| (c.ended, c.call));

    let mut kind = match spec.outcome {
        OutcomeFilter::Success => "success".to_owned(),
        OutcomeFilter::Error => "error".to_owned(),
    };
    if let Some(code) = &spec.code {
        kind.push_str(&format!(" {code}"));
    }
    if let Some(limit) = spec.faster_than {
        kind.push_str(&format!(" faster than {}", duration(limit)));
    }
    let expected = format!(
        "first {kind} of `{}` within {} after {}",
        spec.tool,
        duration(spec.within),
        spec.after_label
    );

    // The window: from the reference instant on.
    let figures = Figures {
        window: vec![Span::of(&(spec.after..Duration::MAX))],
        measures: vec![Measure::duration(
            "first_after",
            first.map(|call| call.ended - spec.after),
            spec.within,
        )],
    };
    match first {
        None => Verdict {
            figures,
            expected,
            observed: "none".to_owned(),
            passed: false,
            detail: Some(format!(
                "no call of `{}` ended with {kind} after {} ({})",
                spec.tool,
                spec.after_label,
                duration(spec.after)
            )),
        },
        Some(call) => {
            let delay = call.ended - spec.after;
            let passed = delay <= spec.within;
            Verdict {
                figures,
                expected,
                observed: format!("first after {}", duration(delay)),
                passed,
                detail: (!passed).then(|| {
                    format!(
                        "first was call {} ({}), ended at {}",
                        call.call,
                        call.outcome.describe(),
                        duration(call.ended)
                    )
                }),
            }
        }
    }
}

/// Whether a call is of the kind the check waits for.
fn awaited(spec: &TimingCheck, call: &CallRecord) -> bool {
    let code_ok = match (spec.outcome, &spec.code) {
        (OutcomeFilter::Error, Some(want)) => {
            matches!(call.outcome, CallOutcome::RpcError { code, .. } if want.matches(code))
        }
        _ => true,
    };
    glob::matches(&spec.tool, &call.tool)
        && outcome_matches(call, spec.outcome)
        && code_ok
        && spec.faster_than.is_none_or(|limit| call.latency() < limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;

    fn spec(
        outcome: OutcomeFilter,
        code: Option<i64>,
        faster_than: Option<u64>,
        within: u64,
    ) -> TimingCheck {
        TimingCheck {
            after: ms(1_000),
            after_label: "start of files-down".into(),
            tool: "files/*".into(),
            outcome,
            code: code.map(crate::scenario::CodeSelector::code),
            faster_than: faster_than.map(ms),
            within: ms(within),
        }
    }

    fn calls() -> Vec<CallRecord> {
        vec![
            // Ended before the boundary: never counts.
            call(1, "files/read", 900, 50, rpc_error(-32000, "down")),
            // A slow timeout-like failure, ends at 1 500.
            call(2, "files/read", 1_000, 500, rpc_error(-32001, "timeout")),
            // The first fast -32000 rejection, ends at 1 230.
            call(3, "files/read", 1_220, 10, rpc_error(-32000, "down")),
            // Another tool, ends earlier.
            call(4, "db/query", 1_000, 5, rpc_error(-32000, "down")),
            ok(5, "files/read", 2_000, 10),
        ]
    }

    #[test]
    fn finds_the_first_fast_rejection() {
        let v = check(
            &spec(OutcomeFilter::Error, Some(-32000), Some(100), 500),
            &calls(),
        );
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.expected,
            "first error -32000 faster than 100ms of `files/*` within 500ms after start of files-down"
        );
        assert_eq!(v.observed, "first after 230ms");
        assert_eq!(
            v.figures.window,
            [Span {
                from_us: 1_000_000,
                to_us: None
            }]
        );
        assert_eq!(
            measures(&v.figures),
            ["first_after = 230000 us, max 500000, passed"]
        );
    }

    #[test]
    fn fails_when_the_first_comes_too_late() {
        let v = check(
            &spec(OutcomeFilter::Error, Some(-32000), Some(100), 200),
            &calls(),
        );
        assert!(!v.passed);
        assert_eq!(v.observed, "first after 230ms");
        assert!(v.detail.unwrap().contains("first was call 3"));
    }

    #[test]
    fn any_error_counts_without_a_code() {
        // Call 3 ends at 1 230, before call 2 at 1 500.
        let v = check(&spec(OutcomeFilter::Error, None, None, 1_000), &calls());
        assert_eq!(v.observed, "first after 230ms");
        // The code picks the slow -32001 failure, which ends at 1 500.
        let v = check(
            &spec(OutcomeFilter::Error, Some(-32001), None, 1_000),
            &calls(),
        );
        assert_eq!(v.observed, "first after 500ms");
    }

    #[test]
    fn fails_when_none_came() {
        let v = check(
            &spec(OutcomeFilter::Error, Some(-32002), None, 10_000),
            &calls(),
        );
        assert!(!v.passed);
        assert_eq!(v.observed, "none");
        assert_eq!(
            measures(&v.figures),
            ["first_after = none us, max 10000000, failed"]
        );
        let v = check(&spec(OutcomeFilter::Success, None, None, 2_000), &calls());
        assert!(v.passed);
        assert_eq!(v.observed, "first after 1.01s");
    }
}
