//! Accounting checks, run after every scenario whatever it expects: the
//! bookkeeping any correct gateway keeps — every call answered exactly
//! once and with its own answer, none left hanging, every session opened,
//! and load actually ran — and, in open loop, the load offered was the load
//! asked for: at most `max_missed_share` of the slots missed. A scenario
//! cannot turn them off (it can only set that share), so a run that
//! measured nothing, lost calls or fell behind its schedule never passes.
//!
//! An answer's owner is told by its echo: a fake answers a successful call
//! with the call's arguments, whose `harness_call` number is unique in the
//! run. Only the number is compared, not the rest of the arguments: the
//! proxy may rightly add or replace arguments (`default_arguments`,
//! `inject_arguments`), and the number alone already says whose answer it
//! is.

use super::figures::{Figures, Measure};
use super::{CheckResult, Verdict, describe_call};
use crate::load::record::{CallOutcome, CallRecord, LoadResult};
use crate::report::format::{count, percent};
use crate::scenario::{LoadMode, Scenario};

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
    let successes = load.calls.iter().filter(|c| c.is_success()).count() as u64;
    // A number of things that must be none, of `total`.
    let none_of = |name: &str, value: usize, total: u64| {
        Figures::whole_run(vec![Measure {
            total: Some(total),
            ..Measure::count(name, value as u64, None, Some(0))
        }])
    };
    let results = [
        (
            "every call answered once",
            Verdict {
                expected: "0 duplicate answers".into(),
                observed: count(load.duplicate_answers, "duplicate answer"),
                passed: load.duplicate_answers == 0,
                detail: (load.duplicate_answers > 0)
                    .then(|| "an answer arrived for a request already answered".to_owned()),
                figures: none_of(
                    "duplicate_answers",
                    load.duplicate_answers as usize,
                    calls as u64,
                ),
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
                figures: none_of("mismatched_answers", mismatched.len(), successes),
            },
        ),
        (
            "no call hung",
            Verdict {
                expected: "0 hung calls".into(),
                observed: count(hung.len() as u64, "hung call"),
                passed: hung.is_empty(),
                detail: hung.first().map(|c| format!("first: {}", describe_call(c))),
                figures: none_of("hung_calls", hung.len(), calls as u64),
            },
        ),
        (
            "every session opened",
            Verdict {
                expected: "0 session errors".into(),
                observed: count(load.session_errors.len() as u64, "session error"),
                passed: load.session_errors.is_empty(),
                detail: load.session_errors.first().map(|e| format!("first: {e}")),
                figures: none_of(
                    "session_errors",
                    load.session_errors.len(),
                    scenario.workload.clients as u64,
                ),
            },
        ),
        (
            "calls were made",
            Verdict {
                expected: "≥ 1 call".into(),
                observed: count(calls as u64, "call"),
                passed: calls > 0,
                detail: None,
                figures: Figures::whole_run(vec![Measure::count(
                    "calls",
                    calls as u64,
                    Some(1),
                    None,
                )]),
            },
        ),
    ];
    let open_loop = match scenario.workload.mode {
        LoadMode::Open {
            max_in_flight,
            max_missed_share,
            ..
        } => Some((
            "open-loop slots sent on time",
            missed_slots(load, max_in_flight, max_missed_share),
        )),
        LoadMode::Closed { .. } => None,
    };
    results
        .into_iter()
        .chain(open_loop)
        .map(|(name, verdict)| verdict.named(name.to_owned(), KIND, None))
        .collect()
}

/// At most `max_share` of the open-loop slots missed: beyond that, the
/// latencies and error rates describe less load than the scenario offers.
fn missed_slots(load: &LoadResult, max_in_flight: usize, max_share: f64) -> Verdict {
    let (slots, missed) = (load.slots, load.missed_slots);
    let passed = missed as f64 <= max_share * slots as f64;
    let missed_share = Measure {
        // No slots: none missed, within any bound.
        value: Some(if slots == 0 {
            0.0
        } else {
            missed as f64 / slots as f64
        }),
        passed,
        ..Measure::share("missed_slots", missed, slots, None, Some(max_share))
    };
    let mut observed = format!("{missed} of {} missed", count(slots, "slot"));
    if slots > 0 {
        observed.push_str(&format!(" ({})", percent(missed as f64 / slots as f64)));
    }
    Verdict {
        figures: Figures::whole_run(vec![missed_share]),
        expected: format!("≤ {} of slots missed", percent(max_share)),
        observed,
        passed,
        detail: (!passed).then(|| {
            format!(
                "a slot is missed when it finds {max_in_flight} calls in flight (max_in_flight), \
                 or its call is sent more than a period late (the harness fell behind)"
            )
        }),
    }
}

/// Successful calls whose answer is not shown to be their own: it echoes
/// another call's number, or none at all. No echo counts only when every
/// proxy backend is a fake: with a real backend in the config, the answer
/// may be that backend's, which echoes nothing.
fn mismatched_answers<'a>(scenario: &Scenario, load: &'a LoadResult) -> Vec<&'a CallRecord> {
    // Without a proxy section the gateway's config is the target's own,
    // which a black-box scenario means to point at its fakes only.
    let only_fakes = scenario
        .proxy
        .as_ref()
        .is_none_or(|proxy| proxy.backend_fakes.iter().all(|fakes| !fakes.is_empty()));
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
        let all: Vec<String> = results.iter().flat_map(|r| measures(&r.figures)).collect();
        assert_eq!(
            all,
            [
                "duplicate_answers = 0 count, max 0, of 2, passed",
                "mismatched_answers = 0 count, max 0, of 2, passed",
                "hung_calls = 0 count, max 0, of 2, passed",
                "session_errors = 0 count, max 0, of 1, passed",
                "calls = 2 count, min 1, passed",
            ]
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
        assert_eq!(
            measures(&hung.figures),
            ["hung_calls = 1 count, max 0, of 3, failed"]
        );
        assert_eq!(hung.figures.window[0].to_us, None);
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
        assert_eq!(
            measures(&named(&results, "calls were made").figures),
            ["calls = 0 count, min 1, failed"]
        );
    }

    /// The test scenario in open loop, missing at most `max_missed_share`.
    fn open_loop(max_missed_share: f64) -> Scenario {
        let mut scenario = scenario(Vec::new());
        scenario.workload.mode = LoadMode::Open {
            rate: 100.0,
            max_in_flight: 50,
            max_missed_share,
        };
        scenario
    }

    #[test]
    fn missed_open_loop_slots_are_judged_against_their_bound() {
        let mut load = healthy();
        load.slots = 1_000;
        load.missed_slots = 10;
        let results = checks(&open_loop(0.01), &load);
        assert_eq!(results.len(), 6);
        let check = named(&results, "open-loop slots sent on time");
        assert!(check.passed, "{check:#?}");
        assert_eq!(check.expected, "≤ 1.0% of slots missed");
        assert_eq!(check.observed, "10 of 1000 slots missed (1.0%)");
        assert_eq!(
            measures(&check.figures),
            ["missed_slots = 0.01 share, max 0.01, count 10, of 1000, passed"]
        );

        load.missed_slots = 11;
        let results = checks(&open_loop(0.01), &load);
        assert_eq!(failed(&results), ["open-loop slots sent on time"]);
        let check = named(&results, "open-loop slots sent on time");
        assert_eq!(check.observed, "11 of 1000 slots missed (1.1%)");
        assert!(
            check
                .detail
                .as_deref()
                .unwrap()
                .contains("50 calls in flight")
        );

        load.missed_slots = 1;
        assert_eq!(
            failed(&checks(&open_loop(0.0), &load)),
            ["open-loop slots sent on time"]
        );
        load.missed_slots = 0;
        assert!(failed(&checks(&open_loop(0.0), &load)).is_empty());
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
        scenario.proxy.as_mut().unwrap().backend_fakes =
            vec![vec!["files".into()], vec!["a".into(), "b".into()]];
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
        scenario
            .proxy
            .as_mut()
            .unwrap()
            .backend_fakes
            .push(Vec::new());
        assert!(failed(&checks(&scenario, &load)).is_empty());
        // But never with another call's echo.
        load.calls[1].echoed_call = Some(7);
        assert_eq!(
            failed(&checks(&scenario, &load)),
            ["every answer belongs to its call"]
        );
    }
}
