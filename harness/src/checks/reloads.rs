//! Reload checks, one per `reload` fault, run after the scenario's own: the
//! proxy must apply a reload meant to be applied and reject one meant to be
//! rejected, at its time. A reload that was never done (the run stopped
//! before it) fails too.

use super::figures::{Figures, Measure};
use super::{CheckResult, Verdict};
use crate::load::record::ReloadRecord;
use crate::scenario::{FaultAction, Scenario, Trigger, fmt_duration};

/// The kind's name in reports.
pub const KIND: &str = "reload";

/// A check per reload fault of `scenario`, judged by what `reloads` recorded.
pub fn checks(scenario: &Scenario, reloads: &[ReloadRecord]) -> Vec<CheckResult> {
    let mut done = reloads.iter();
    scenario
        .faults
        .iter()
        .filter_map(|fault| match (&fault.action, &fault.trigger) {
            (FaultAction::Reload { expect, .. }, Trigger::Time { at, .. }) => {
                Some((fault.name.clone(), *expect, *at))
            }
            _ => None,
        })
        .map(|(name, expect, at)| {
            // Records come in the faults' order, one each, until the run ended.
            let record = done.next();
            let name = name.unwrap_or_else(|| format!("reload at {}", fmt_duration(at)));
            let wanted = expect.label();
            let observed = match record {
                Some(record) => match &record.detail {
                    Some(detail) => format!("{}: {detail}", record.result),
                    None => record.result.to_owned(),
                },
                None => "not done (the run ended first)".to_owned(),
            };
            let passed = record.is_some_and(|r| r.result == wanted);
            let applied = u64::from(record.is_some_and(|r| r.result == "applied"));
            let bound = u64::from(wanted == "applied");
            Verdict {
                expected: format!("{wanted} at {}", fmt_duration(at)),
                observed,
                passed,
                detail: (!passed).then(|| format!("the proxy was to have {wanted} it")),
                figures: Figures::whole_run(vec![Measure::count(
                    "applied",
                    applied,
                    Some(bound),
                    Some(bound),
                )]),
            }
            .named(format!("reload `{name}` {wanted}"), KIND, None)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn scenario() -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/reload.yaml");
        crate::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn record(name: &str, expected: &'static str, result: &'static str) -> ReloadRecord {
        ReloadRecord {
            name: name.to_owned(),
            at: Duration::ZERO,
            expected,
            result,
            detail: None,
        }
    }

    fn verdicts(records: &[ReloadRecord]) -> Vec<(String, bool)> {
        checks(&scenario(), records)
            .into_iter()
            .map(|check| (check.name, check.passed))
            .collect()
    }

    #[test]
    fn each_reload_passes_only_as_the_scenario_expects_it() {
        let as_expected = [
            record("half", "applied", "applied"),
            record("broken-edit", "rejected", "rejected"),
            record("canary-removed", "applied", "applied"),
        ];
        assert_eq!(
            verdicts(&as_expected),
            [
                ("reload `half` applied".to_owned(), true),
                ("reload `broken-edit` rejected".to_owned(), true),
                ("reload `canary-removed` applied".to_owned(), true),
            ]
        );
        // The broken edit applied, a change kept for a restart, and the
        // last reload never done: each fails.
        let wrong = [
            record("half", "applied", "partly applied"),
            record("broken-edit", "rejected", "applied"),
        ];
        let judged = verdicts(&wrong);
        assert!(judged.iter().all(|(_, passed)| !passed), "{judged:?}");
        let missing = &checks(&scenario(), &wrong)[2];
        assert_eq!(missing.observed, "not done (the run ended first)");
    }
}
