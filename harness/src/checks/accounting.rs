//! Accounting checks, run after every scenario whatever it expects: the
//! bookkeeping any correct gateway keeps — every call answered exactly
//! once, none left hanging, every session opened, and load actually ran.
//! A scenario cannot turn them off, so a run that measured nothing or lost
//! calls never passes.

use super::{CheckResult, Verdict, describe_call};
use crate::load::record::{CallOutcome, LoadResult};
use crate::report::format::count;

/// The kind's name in reports.
pub const KIND: &str = "accounting";

/// The accounting checks over `load`, in a fixed order.
pub fn checks(load: &LoadResult) -> Vec<CheckResult> {
    let hung: Vec<_> = load
        .calls
        .iter()
        .filter(|c| matches!(c.outcome, CallOutcome::Hung))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;

    fn verdicts(load: &LoadResult) -> Vec<(String, bool)> {
        checks(load)
            .into_iter()
            .map(|r| (r.name, r.passed))
            .collect()
    }

    fn healthy() -> LoadResult {
        LoadResult {
            calls: vec![ok(1, "files/read", 0, 5), ok(2, "files/read", 10, 5)],
            ..LoadResult::default()
        }
    }

    #[test]
    fn a_healthy_run_passes_all_four() {
        let results = checks(&healthy());
        assert_eq!(results.len(), 4);
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
        assert_eq!(
            verdicts(&load)[0],
            ("every call answered once".into(), false)
        );
        assert!(verdicts(&load)[1..].iter().all(|(_, passed)| *passed));

        let mut load = healthy();
        load.calls
            .push(call(3, "files/read", 20, 30_000, CallOutcome::Hung));
        let results = checks(&load);
        assert!(!results[1].passed);
        assert_eq!(results[1].observed, "1 hung call");
        assert!(results[1].detail.as_deref().unwrap().contains("call 3"));

        let mut load = healthy();
        load.session_errors.push("initialize: HTTP 503".into());
        let results = checks(&load);
        assert!(!results[2].passed);
        assert_eq!(
            results[2].detail.as_deref(),
            Some("first: initialize: HTTP 503")
        );

        let results = checks(&LoadResult::default());
        assert!(!results[3].passed);
        assert_eq!(results[3].observed, "0 calls");
    }
}
