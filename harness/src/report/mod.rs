//! Reports: what a run found, for people and for CI.
//!
//! A [`RunReport`] gathers one scenario's verdict: its checks, a table of
//! phases (client results before, during and after each named fault) and
//! the harness error that stopped it, if one did; and, for graphs and
//! scripts, the run in time ([`timeline`]: its buckets built by
//! [`buckets`], the fault windows by [`fault_spans`], the call log by
//! [`call_log`]) and the command that replays it ([`replay`]). It renders
//! as a terminal table ([`terminal`]), JSON ([`json`]), JUnit XML
//! ([`junit`]) or an HTML page with charts ([`html`], [`charts`], drawn
//! at the [`resolution`] that suits the run);
//! [`format`](mod@format) holds the number formatting shared with the
//! checks, [`markup`] the escaping shared by JUnit and HTML, [`controls`] the
//! replacing of control characters shared by every form.

pub mod buckets;
pub mod call_log;
pub mod charts;
pub mod controls;
pub mod fault_spans;
pub mod format;
pub mod html;
pub mod json;
pub mod junit;
pub mod markup;
pub mod replay;
pub mod resolution;
pub mod terminal;
pub mod timeline;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checks::{self, CheckResult};
use crate::journal::JournalEntry;
use crate::load::record::{CallRecord, LoadResult};
use crate::scenario::{Scenario, Trigger};
use crate::stats::LatencySummary;
use timeline::{BackendSample, CallRow, FaultSpan, Timeline};

/// How a report's `mode` begins for a run against another gateway
/// (`target URL`, `target URL (started: COMMAND)`).
pub const TARGET_MODE_PREFIX: &str = "target ";

/// The version of the JSON report's shape (docs/report-schema.json); it
/// changes whenever a field is renamed, removed or changes meaning. An
/// added optional field (such as a bucket's `failed_p50_us`) keeps it:
/// unknown fields are ignored and a missing optional one reads as absent,
/// so older and newer harnesses read each other's reports.
pub const SCHEMA_VERSION: u32 = 2;

/// The outcome of one scenario run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunReport {
    /// [`SCHEMA_VERSION`] of the report's shape.
    pub schema_version: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The file it was read from.
    pub file: String,
    /// The seed it ran with.
    pub seed: u64,
    /// How the proxy was run: `in-process mcp-proxy`, `binary PATH`,
    /// `simulation`, or (another gateway) `target URL`, `target URL
    /// (started: COMMAND)`; with `--codes`, the overlay after `; `.
    pub mode: String,
    /// How long the run took.
    #[serde(rename = "duration_us", with = "crate::clock::micros")]
    #[schemars(with = "u64")]
    pub duration: Duration,
    /// The command that runs the scenario again the same way.
    pub replay: String,
    /// Every check, scenario checks first, then accounting.
    pub checks: Vec<CheckResult>,
    /// Client results per phase (see [`phase_rows`]).
    pub phases: Vec<PhaseRow>,
    /// Open loop: slots that could not be sent on time.
    pub missed_slots: u64,
    /// Client calls made.
    pub calls: u64,
    /// A harness error that stopped the run before it could be judged.
    pub error: Option<String>,
    /// The windows of the scenario's time-triggered faults.
    pub faults: Vec<FaultSpan>,
    /// Client calls and fake requests over time.
    pub timeline: Timeline,
    /// The proxy's view of its backends over time, when the harness could
    /// read its `/admin/backends`.
    pub backends: Vec<BackendSample>,
    /// Every client call and how it ended, in the order they were due.
    pub call_log: Vec<CallRow>,
}

impl RunReport {
    /// Judges a finished run: evaluates `scenario`'s checks over `load` and
    /// the fakes' `journal`, summarises the phases, and lays the run out in
    /// time (timeline and call log). The caller adds what only it knows:
    /// the seed it ran with, the replay command and backend samples.
    pub fn from_run(
        scenario: &Scenario,
        mode: &str,
        duration: Duration,
        load: &LoadResult,
        journal: &[JournalEntry],
    ) -> Self {
        Self {
            checks: checks::evaluate(scenario, load, journal),
            phases: phase_rows(scenario, load),
            missed_slots: load.missed_slots,
            calls: load.calls.len() as u64,
            timeline: buckets::timeline(&load.calls, journal),
            call_log: call_log::call_log(&load.calls, journal),
            ..Self::empty(scenario, mode, duration)
        }
    }

    /// A run that a harness error stopped (a fake that would not start, a
    /// proxy that would not listen): no checks, the error instead.
    pub fn stopped(scenario: &Scenario, mode: &str, duration: Duration, error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::empty(scenario, mode, duration)
        }
    }

    fn empty(scenario: &Scenario, mode: &str, duration: Duration) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            replay: String::new(),
            scenario: scenario.name.clone(),
            file: scenario.file.display().to_string(),
            seed: scenario.seed,
            mode: mode.to_owned(),
            duration,
            checks: Vec::new(),
            phases: Vec::new(),
            missed_slots: 0,
            calls: 0,
            error: None,
            faults: fault_spans::fault_spans(scenario),
            timeline: buckets::timeline(&[], &[]),
            backends: Vec::new(),
            call_log: Vec::new(),
        }
    }

    /// Whether the run was against a gateway that is not this workspace's
    /// proxy (`--target`, with or without `--target-cmd`): its codes are
    /// not ours to name, its admin routes not ours to read.
    pub fn against_another_gateway(&self) -> bool {
        self.mode.starts_with(TARGET_MODE_PREFIX)
    }

    /// Whether the run passed: no harness error and every check held.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }

    /// Each failed check as `name: observed`, in report order.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.observed))
            .collect()
    }

    /// How many checks failed.
    pub fn failed_checks(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }
}

/// Client results for the calls due in one stretch of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseRow {
    /// `before NAME`, `during NAME`, `after NAME` or `whole run`.
    pub label: String,
    /// Start of the stretch, from scenario start.
    #[serde(rename = "from_us", with = "crate::clock::micros")]
    #[schemars(with = "u64")]
    pub from: Duration,
    /// End of the stretch (exclusive); a stretch ending with the load also
    /// holds the calls due after it.
    #[serde(rename = "to_us", with = "crate::clock::micros")]
    #[schemars(with = "u64")]
    pub to: Duration,
    /// Calls due in the stretch.
    pub calls: u64,
    /// Of those, calls that did not succeed.
    pub errors: u64,
    /// `errors / calls` (0 without calls).
    pub error_rate: f64,
    /// Median latency.
    #[serde(rename = "p50_us", with = "crate::clock::micros")]
    #[schemars(with = "u64")]
    pub p50: Duration,
    /// 99th percentile latency.
    #[serde(rename = "p99_us", with = "crate::clock::micros")]
    #[schemars(with = "u64")]
    pub p99: Duration,
    /// Largest latency.
    #[serde(rename = "max_us", with = "crate::clock::micros")]
    #[schemars(with = "u64")]
    pub max: Duration,
}

/// The phase table of a run: for each named fault with a time trigger
/// (its first occurrence), the calls due before, during and after it, then
/// the whole run. Stretches of no time (a fault from 0s has no "before")
/// are left out. Calls are placed by when they were due.
pub fn phase_rows(scenario: &Scenario, load: &LoadResult) -> Vec<PhaseRow> {
    let end_of_load = scenario.duration;
    let mut rows = Vec::new();
    for fault in &scenario.faults {
        let (Some(name), Trigger::Time { at, length, .. }) = (&fault.name, &fault.trigger) else {
            continue;
        };
        let start = (*at).min(end_of_load);
        let end = length.map_or(end_of_load, |len| at.saturating_add(len).min(end_of_load));
        for (label, from, to) in [
            (format!("before {name}"), Duration::ZERO, start),
            (format!("during {name}"), start, end),
            (format!("after {name}"), end, end_of_load),
        ] {
            if from < to {
                rows.push(row(label, from, to, end_of_load, &load.calls));
            }
        }
    }
    rows.push(row(
        "whole run".into(),
        Duration::ZERO,
        end_of_load,
        end_of_load,
        &load.calls,
    ));
    rows
}

fn row(
    label: String,
    from: Duration,
    to: Duration,
    end_of_load: Duration,
    calls: &[CallRecord],
) -> PhaseRow {
    // Calls due after the end of load (the last slot of open loop, a
    // closed-loop call sent just at the end) belong to the last stretch.
    let upper = if to >= end_of_load { Duration::MAX } else { to };
    let summary = LatencySummary::of(
        calls
            .iter()
            .filter(|c| c.intended >= from && c.intended < upper),
    );
    PhaseRow {
        label,
        from,
        to,
        calls: summary.calls,
        errors: summary.errors,
        error_rate: summary.error_rate,
        p50: summary.quantile(0.5),
        p99: summary.quantile(0.99),
        max: summary.max(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::figures::{Figures, Measure};
    use crate::checks::test_support::*;
    use crate::load::record::CallOutcome;
    use crate::scenario::{Fault, FaultAction};

    fn check(name: &str, kind: &str, passed: bool) -> CheckResult {
        crate::checks::Verdict {
            expected: "error rate ≤ 0.0%".into(),
            observed: if passed {
                "0.0% (0 of 100)"
            } else {
                "3.0% (3 of 100)"
            }
            .into(),
            passed,
            detail: (!passed).then(|| "error rate 3.0% > 0.0%".into()),
            figures: Figures::whole_run(vec![Measure::share(
                "error_rate",
                if passed { 0 } else { 3 },
                100,
                None,
                Some(0.0),
            )]),
        }
        .named(name.into(), kind, Some(30))
    }

    /// A report of scenario `outage`: one passing and one failing check,
    /// one phase row.
    pub(crate) fn sample() -> RunReport {
        RunReport {
            seed: 7,
            checks: vec![
                check("steady before", "threshold", true),
                check("no errors during files-down", "threshold", false),
            ],
            phases: vec![PhaseRow {
                label: "whole run".into(),
                from: Duration::ZERO,
                to: Duration::from_secs(10),
                calls: 100,
                errors: 3,
                error_rate: 0.03,
                p50: Duration::from_micros(1_200),
                p99: Duration::from_micros(12_345),
                max: Duration::from_millis(40),
            }],
            calls: 100,
            ..RunReport::empty(
                &scenario(Vec::new()),
                "in-process",
                Duration::from_millis(12_500),
            )
        }
    }

    /// A call every 100 ms over 10 s; those due in 2..5 s fail after 1 ms,
    /// the others succeed after 10 ms.
    fn steady_load() -> LoadResult {
        let calls = (0..100)
            .map(|n| {
                let due = n * 100;
                if (2_000..5_000).contains(&due) {
                    call(n + 1, "files/read", due, 1, rpc_error(-32000, "down"))
                } else {
                    ok(n + 1, "files/read", due, 10)
                }
            })
            .collect();
        LoadResult {
            calls,
            ..LoadResult::default()
        }
    }

    fn fault(name: Option<&str>, trigger: Trigger) -> Fault {
        Fault {
            name: name.map(Into::into),
            fake: "files".into(),
            tool: None,
            trigger,
            action: FaultAction::Outage { exit_code: 1 },
        }
    }

    #[test]
    fn phases_split_at_each_named_time_fault() {
        let mut scenario = scenario(Vec::new());
        scenario.faults = vec![
            fault(
                Some("files-down"),
                Trigger::Time {
                    at: ms(2_000),
                    length: Some(ms(3_000)),
                    every: Some(ms(6_000)),
                },
            ),
            // Unnamed, and call-triggered faults get no rows.
            fault(
                None,
                Trigger::Time {
                    at: ms(0),
                    length: None,
                    every: None,
                },
            ),
            fault(
                Some("flaky"),
                Trigger::Calls(crate::scenario::CallTrigger::First(3)),
            ),
        ];
        let rows = phase_rows(&scenario, &steady_load());
        let summary: Vec<(&str, u64, u64, u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.label.as_str(),
                    r.from.as_millis() as u64,
                    r.to.as_millis() as u64,
                    r.calls,
                    r.errors,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("before files-down", 0, 2_000, 20, 0),
                ("during files-down", 2_000, 5_000, 30, 30),
                ("after files-down", 5_000, 10_000, 50, 0),
                ("whole run", 0, 10_000, 100, 30),
            ]
        );
        assert_eq!(rows[1].max, ms(1));
        assert_eq!(rows[2].p99, ms(10));
        assert!((rows[3].error_rate - 0.3).abs() < 1e-12);
    }

    #[test]
    fn a_fault_lasting_to_the_end_has_no_after_and_one_from_zero_no_before() {
        let mut scenario = scenario(Vec::new());
        scenario.faults = vec![
            fault(
                Some("late"),
                Trigger::Time {
                    at: ms(8_000),
                    length: None,
                    every: None,
                },
            ),
            fault(
                Some("early"),
                Trigger::Time {
                    at: ms(0),
                    length: Some(ms(1_000)),
                    every: None,
                },
            ),
        ];
        let mut load = steady_load();
        // A call due after the end of load still counts in the last stretch.
        load.calls.push(ok(101, "files/read", 10_050, 5));
        let rows = phase_rows(&scenario, &load);
        let labels: Vec<(&str, u64)> = rows.iter().map(|r| (r.label.as_str(), r.calls)).collect();
        assert_eq!(
            labels,
            [
                ("before late", 80),
                ("during late", 21),
                ("during early", 10),
                ("after early", 91),
                ("whole run", 101),
            ]
        );
    }

    #[test]
    fn a_report_passes_only_without_failed_checks_or_harness_error() {
        let mut report = sample();
        assert!(!report.passed());
        assert_eq!(report.failed_checks(), 1);
        let failed = report.checks.last().unwrap();
        assert_eq!(
            report.failures(),
            [format!("{}: {}", failed.name, failed.observed)]
        );
        report.checks.pop();
        assert!(report.failures().is_empty());
        assert!(report.passed());
        report.error = Some("fake files did not start".into());
        assert!(!report.passed());
    }

    #[test]
    fn from_run_judges_and_summarises() {
        let report = RunReport::from_run(
            &scenario(Vec::new()),
            "binary",
            ms(10_000),
            &steady_load(),
            &[],
        );
        assert_eq!(report.scenario, "outage");
        assert_eq!(report.mode, "binary");
        assert_eq!(report.calls, 100);
        assert_eq!(report.checks.len(), 5, "the accounting checks");
        assert!(report.passed());
        assert_eq!(
            report.phases.last().map(|p| p.label.as_str()),
            Some("whole run")
        );
        // The last call ends at 9.91 s: the timeline's hundredth bucket.
        assert_eq!(report.timeline.buckets.len(), 100);
        assert_eq!(report.call_log.len(), 100);
        assert_eq!(report.call_log[20].error.as_deref(), Some("-32000"));

        let stopped = RunReport::stopped(&scenario(Vec::new()), "binary", ms(3), "no port".into());
        assert!(!stopped.passed());
        assert!(stopped.checks.is_empty());
    }

    #[test]
    fn hung_calls_show_in_the_phase_table_as_errors() {
        let load = LoadResult {
            calls: vec![call(1, "files/read", 0, 30_000, CallOutcome::Hung)],
            ..LoadResult::default()
        };
        let rows = phase_rows(&scenario(Vec::new()), &load);
        assert_eq!(
            (rows[0].calls, rows[0].errors, rows[0].max),
            (1, 1, ms(30_000))
        );
    }
}
