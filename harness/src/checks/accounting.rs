//! Accounting checks, run after every scenario whatever it expects: the
//! bookkeeping any correct gateway keeps — every call answered exactly
//! once and with its own answer, none left hanging, every session opened,
//! and load actually ran. A scenario cannot turn them off, so a run that
//! measured nothing or lost calls never passes.
//!
//! An answer's owner is told by its echo: a fake answers a successful call
//! with the call's arguments, whose `harness_call` number is unique in the
//! run. Only the number is compared, not the rest of the arguments: the
//! proxy may rightly add or replace arguments (`default_arguments`,
//! `inject_arguments`), and the number alone already says whose answer it
//! is.

use super::{CheckResult, Verdict, describe_call};
use crate::load::record::{CallOutcome, CallRecord, LoadResult};
use crate::report::format::count;
use crate::scenario::Scenario;

/// The kind's name in reports.
pub const KIND: &str = "accounting";

/// The accounting checks of a run of `scenario` over `load`, in a fixed order.
pub fn checks(scenario: &Scenario, load: &LoadResult) -> Vec<CheckResult> {
    let hung: Vec<_> = load
        .calls
        .iter()
        .filter(|c| matches!(c.outcome, CallOutcome::Hung))
        .collect();
    let mismatched = mismatched_answers(scenario, load);
    let calls = load.calls.len();
    let results = [
        (
            "every call answered once",
            Verdict {
                expected: "0 duplicate answers".into(),
                observed: count(load.duplicate_answers, "duplicate answer"),
                passed: load.duplicate_answers == 0,
                detail: (load.duplicate_answers > 0)
                    .then(|| "an answer arrived for a request already answered".to_owned()),
            },
        ),
        (
            "every answer belongs to its call",
            Verdict {
                expected: "0 mismatched answers".into(),
                observed: count(mismatched.len() as u64, "mismatched answer"),
                passed: mismatched.is_empty(),
                detail: mismatched.first().map(|c| {
                    let echo = match c.echoed_call {
                        Some(n) => format!("call {n}'s arguments"),
                        None => "no harness_call".to_owned(),
                    };
                    format!("first: {}, whose answer echoes {echo}", describe_call(c))
                }),
            },
        ),
        (
            "no call hung",
            Verdict {
                expected: "0 hung calls".into(),
                observed: count(hung.len() as u64, "hung call"),
                passed: hung.is_empty(),
                detail: hung.first().map(|c| format!("first: {}", describe_call(c))),
            },
        ),
        (
            "every session opened",
            Verdict {
                expected: "0 session errors".into(),
                observed: count(load.session_errors.len() as u64, "session error"),
                passed: load.session_errors.is_empty(),
                detail: load.session_errors.first().map(|e| format!("first: {e}")),
            },
        ),
        (
            "calls were made",
            Verdict {
                expected: "≥ 1 call".into(),
                observed: count(calls as u64, "call"),
                passed: calls > 0,
                detail: None,
            },
        ),
    ];
    results
        .into_iter()
        .map(|(name, verdict)| verdict.named(name.to_owned(), KIND, None))
        .collect()
}

/// Successful calls whose answer is not shown to be their own: it echoes
/// another call's number, or none at all. No echo counts only when every
/// proxy backend is a fake: with a real backend in the config, the answer
/// may be that backend's, which echoes nothing.
fn mismatched_answers<'a>(scenario: &Scenario, load: &'a LoadResult) -> Vec<&'a CallRecord> {
    let only_fakes = scenario
        .proxy
        .backend_fakes
        .iter()
        .all(|fakes| !fakes.is_empty());
    load.calls
        .iter()
        .filter(|c| {
            c.is_success()
                && match c.echoed_call {
                    Some(n) => n != c.call,
                    None => only_fakes,
                }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;

    /// The accounting checks of a run of the test scenario (only fakes).
    fn judge(load: &LoadResult) -> Vec<CheckResult> {
        checks(&scenario(Vec::new()), load)
    }

    /// The one check named `name`.
    fn named<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {results:#?}"))
    }

    /// The names of the checks that failed.
    fn failed(results: &[CheckResult]) -> Vec<&str> {
        results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.name.as_str())
            .collect()
    }

    fn healthy() -> LoadResult {
        LoadResult {
            calls: vec![ok(1, "files/read", 0, 5), ok(2, "files/read", 10, 5)],
            ..LoadResult::default()
        }
    }

    #[test]
    fn a_healthy_run_passes_them_all() {
        let results = judge(&healthy());
        assert_eq!(results.len(), 5);
        assert!(
            results
                .iter()
                .all(|r| r.passed && r.kind == "accounting" && r.line.is_none())
        );
    }

    #[test]
    fn each_broken_rule_fails_its_own_check() {
        let mut load = healthy();
        load.duplicate_answers = 1;
        assert_eq!(failed(&judge(&load)), ["every call answered once"]);

        let mut load = healthy();
        load.calls
            .push(call(3, "files/read", 20, 30_000, CallOutcome::Hung));
        let results = judge(&load);
        assert_eq!(failed(&results), ["no call hung"]);
        let hung = named(&results, "no call hung");
        assert_eq!(hung.observed, "1 hung call");
        assert!(hung.detail.as_deref().unwrap().contains("call 3"));

        let mut load = healthy();
        load.session_errors.push("initialize: HTTP 503".into());
        let results = judge(&load);
        assert_eq!(failed(&results), ["every session opened"]);
        assert_eq!(
            named(&results, "every session opened").detail.as_deref(),
            Some("first: initialize: HTTP 503")
        );

        let results = judge(&LoadResult::default());
        assert_eq!(failed(&results), ["calls were made"]);
        assert_eq!(named(&results, "calls were made").observed, "0 calls");
    }

    #[test]
    fn an_answer_echoing_another_call_fails_belonging() {
        let mut load = healthy();
        load.calls[1].echoed_call = Some(1);
        let results = judge(&load);
        assert_eq!(failed(&results), ["every answer belongs to its call"]);
        let check = named(&results, "every answer belongs to its call");
        assert_eq!(check.observed, "1 mismatched answer");
        assert_eq!(
            check.detail.as_deref(),
            Some(
                "first: call 2 (files/read, due 10ms): success, whose answer echoes call 1's arguments"
            )
        );
    }

    #[test]
    fn a_success_without_an_echo_fails_belonging_only_when_every_backend_is_a_fake() {
        let mut load = healthy();
        load.calls[0].echoed_call = None;
        // Errors echo nothing, and need not.
        load.calls
            .push(call(3, "files/read", 20, 5, rpc_error(-32000, "down")));
        let mut scenario = scenario(Vec::new());
        scenario.proxy.backend_fakes = vec![vec!["files".into()], vec!["a".into(), "b".into()]];
        let results = checks(&scenario, &load);
        assert_eq!(failed(&results), ["every answer belongs to its call"]);
        assert!(
            named(&results, "every answer belongs to its call")
                .detail
                .as_deref()
                .unwrap()
                .ends_with("whose answer echoes no harness_call")
        );
        // A real backend may have answered it.
        scenario.proxy.backend_fakes.push(Vec::new());
        assert!(failed(&checks(&scenario, &load)).is_empty());
        // But never with another call's echo.
        load.calls[1].echoed_call = Some(7);
        assert_eq!(
            failed(&checks(&scenario, &load)),
            ["every answer belongs to its call"]
        );
    }
}
