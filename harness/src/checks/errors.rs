//! `errors` checks: what failed client calls looked like. During an outage
//! a gateway should fail calls in a recognisable way (a JSON-RPC error with
//! a known code and message), not with hangs, resets or bare HTTP errors.

use mcp_proxy::glob;

use super::figures::{Figures, Measure};
use super::{Verdict, describe_call, describe_selection};
use crate::load::record::{CallOutcome, CallRecord};
use crate::report::format::percent;
use crate::scenario::ErrorsCheck;

/// The kind's name in reports.
pub const KIND: &str = "errors";

/// Judges `spec` over `calls`. Every selected failure must match the code
/// and message asked for; with `min_rate`, enough of the selected calls must
/// have failed. No selected calls at all fails: the check saw nothing.
pub fn check(spec: &ErrorsCheck, calls: &[CallRecord]) -> Verdict {
    // The selector's outcome filter is ignored: this check looks at
    // failures among all the calls it selects.
    let selected: Vec<&CallRecord> = calls
        .iter()
        .filter(|c| {
            glob::matches(&spec.select.tool, &c.tool) && spec.select.window.contains(c.intended)
        })
        .collect();
    let failures: Vec<&CallRecord> = selected
        .iter()
        .copied()
        .filter(|c| !c.is_success())
        .collect();
    let unlike: Vec<&CallRecord> = failures
        .iter()
        .copied()
        .filter(|c| !matches_spec(spec, &c.outcome))
        .collect();

    let mut expected = Vec::new();
    if let Some(code) = &spec.code {
        expected.push(format!("failures are JSON-RPC {code}"));
    }
    match &spec.message_contains {
        Some(text) if spec.message_ignored => expected.push(format!(
            "message contains \"{text}\" not judged (the code overlay ignores messages)"
        )),
        Some(text) => expected.push(format!("message contains \"{text}\"")),
        None => {}
    }
    if let Some(rate) = spec.min_rate {
        expected.push(format!("≥ {} failed", percent(rate)));
    }
    if expected.is_empty() {
        expected.push("failures of any kind".to_owned());
    }
    let expected = expected.join(", ");
    let mut error_rate = Measure::share(
        "error_rate",
        failures.len() as u64,
        selected.len() as u64,
        spec.min_rate,
        None,
    );
    if spec.min_rate.is_none() {
        // Unbounded: reported, never what fails the check.
        error_rate.passed = !selected.is_empty();
    }
    let unlike_expected = Measure {
        total: Some(failures.len() as u64),
        ..Measure::count("unlike_expected", unlike.len() as u64, None, Some(0))
    };
    let figures = Figures::over(
        &spec.select.window,
        vec![
            Measure::count("calls", selected.len() as u64, Some(1), None),
            error_rate,
            unlike_expected,
        ],
    );

    if selected.is_empty() {
        return Verdict {
            expected,
            observed: "no calls".to_owned(),
            passed: false,
            detail: Some(format!(
                "no {}",
                describe_selection(&spec.select.tool, &spec.select.window)
            )),
            figures,
        };
    }

    let rate = failures.len() as f64 / selected.len() as f64;
    let mut observed = format!("{} of {} failed", failures.len(), selected.len());
    let mut problems = Vec::new();
    if let Some(min) = spec.min_rate {
        observed.push_str(&format!(" ({})", percent(rate)));
        if rate < min {
            problems.push(format!("failure rate {} < {}", percent(rate), percent(min)));
        }
    }
    if let Some(first) = unlike.first() {
        observed.push_str(&format!(
            "; {} unlike expected, first: {}",
            unlike.len(),
            first.outcome.describe()
        ));
        problems.push(format!(
            "{} of {} failures unlike expected; first: {}",
            unlike.len(),
            failures.len(),
            describe_call(first)
        ));
    }
    Verdict {
        expected,
        observed,
        passed: problems.is_empty(),
        detail: (!problems.is_empty()).then(|| problems.join("; ")),
        figures,
    }
}

/// Whether a failure is of the code and carries the message the spec asks for.
fn matches_spec(spec: &ErrorsCheck, outcome: &CallOutcome) -> bool {
    let code_ok = match &spec.code {
        None => true,
        Some(want) => matches!(outcome, CallOutcome::RpcError { code, .. } if want.matches(*code)),
    };
    let message_ok = match &spec.message_contains {
        None => true,
        Some(_) if spec.message_ignored => true,
        Some(text) => outcome.message().is_some_and(|m| m.contains(text.as_str())),
    };
    code_ok && message_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;
    use crate::scenario::{CallSelector, CodeSelector};

    fn spec(code: Option<i64>, message: Option<&str>, min_rate: Option<f64>) -> ErrorsCheck {
        ErrorsCheck {
            select: CallSelector {
                tool: "files/*".into(),
                window: window("during files-down", &[(1_000, 2_000)]),
                outcome: None,
                code: None,
                identity: None,
            },
            code: code.map(CodeSelector::code),
            message_contains: message.map(Into::into),
            message_ignored: false,
            min_rate,
        }
    }

    fn outage_calls(last: CallOutcome) -> Vec<CallRecord> {
        vec![
            ok(1, "files/read", 1_000, 5),
            call(
                2,
                "files/read",
                1_100,
                5,
                rpc_error(-32000, "backend files is down"),
            ),
            call(
                3,
                "files/read",
                1_200,
                5,
                rpc_error(-32000, "backend files is down"),
            ),
            call(4, "files/read", 1_300, 5, last),
            // Outside the selection: never judged.
            call(5, "files/read", 2_500, 5, CallOutcome::Hung),
            call(6, "db/query", 1_500, 5, CallOutcome::Hung),
        ]
    }

    #[test]
    fn passes_when_every_failure_matches() {
        let calls = outage_calls(rpc_error(-32000, "backend files is down"));
        let v = check(&spec(Some(-32000), Some("is down"), Some(0.75)), &calls);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.expected,
            "failures are JSON-RPC -32000, message contains \"is down\", ≥ 75.0% failed"
        );
        assert_eq!(v.observed, "3 of 4 failed (75.0%)");
        assert_eq!(
            measures(&v.figures),
            [
                "calls = 4 count, min 1, passed",
                "error_rate = 0.75 share, min 0.75, count 3, of 4, passed",
                "unlike_expected = 0 count, max 0, of 3, passed",
            ]
        );
        assert_eq!(v.figures.window.len(), 1);
    }

    #[test]
    fn fails_on_a_failure_of_another_kind_and_shows_it() {
        let calls = outage_calls(CallOutcome::HttpStatus { status: 502 });
        let v = check(&spec(Some(-32000), None, None), &calls);
        assert!(!v.passed);
        assert_eq!(
            v.observed,
            "3 of 4 failed; 1 unlike expected, first: HTTP 502"
        );
        // No minimum rate: the rate is shown, and is not what failed.
        assert_eq!(
            measures(&v.figures)[1..],
            [
                "error_rate = 0.75 share, count 3, of 4, passed",
                "unlike_expected = 1 count, max 0, of 3, failed",
            ]
        );
        assert!(
            v.detail
                .unwrap()
                .contains("call 4 (files/read, due 1.3s): HTTP 502")
        );
    }

    #[test]
    fn fails_on_a_wrong_code_or_message() {
        let calls = outage_calls(rpc_error(-32603, "backend files is down"));
        assert!(!check(&spec(Some(-32000), None, None), &calls).passed);
        let calls = outage_calls(rpc_error(-32000, "internal error"));
        assert!(!check(&spec(None, Some("is down"), None), &calls).passed);
        // Hung calls carry no message, so they never contain one.
        let calls = outage_calls(CallOutcome::Hung);
        assert!(!check(&spec(None, Some("is down"), None), &calls).passed);
    }

    #[test]
    fn a_kind_matches_any_of_its_codes() {
        let mut kinded = spec(None, None, None);
        kinded.code = Some(CodeSelector {
            kind: Some(crate::scenario::FailureKind::Unavailable),
            codes: vec![-32000, -32603],
            also_sent_by_fake: None,
        });
        let calls = outage_calls(rpc_error(-32603, "backend files is down"));
        let v = check(&kinded, &calls);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.expected,
            "failures are JSON-RPC unavailable (-32000 or -32603)"
        );
        let calls = outage_calls(rpc_error(-32010, "backend files is down"));
        assert!(!check(&kinded, &calls).passed);
    }

    #[test]
    fn an_ignored_message_test_is_shown_and_not_judged() {
        let mut ignored = spec(Some(-32000), Some("is down"), None);
        ignored.message_ignored = true;
        let calls = outage_calls(rpc_error(-32000, "internal error"));
        let v = check(&ignored, &calls);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.expected,
            "failures are JSON-RPC -32000, message contains \"is down\" not judged (the code overlay ignores messages)"
        );
        // The code is still judged.
        let calls = outage_calls(rpc_error(-32603, "internal error"));
        assert!(!check(&ignored, &calls).passed);
    }

    #[test]
    fn fails_below_the_minimum_failure_rate() {
        let calls = outage_calls(CallOutcome::Success);
        let v = check(&spec(None, None, Some(0.75)), &calls);
        assert!(!v.passed);
        assert_eq!(v.observed, "2 of 4 failed (50.0%)");
        assert_eq!(v.detail.as_deref(), Some("failure rate 50.0% < 75.0%"));
    }

    #[test]
    fn no_selected_calls_fails() {
        let v = check(
            &spec(Some(-32000), None, None),
            &[ok(1, "db/query", 1_500, 5)],
        );
        assert!(!v.passed);
        assert_eq!(v.observed, "no calls");
    }
}
