//! Checks: what a run is judged by.
//!
//! Each kind of `expect:` entry has its own module with a `check` function
//! that turns the spec and what was observed (client call records, fake
//! journals) into a [`Verdict`]; [`evaluate`] runs the scenario's checks in
//! file order, then one [`reloads`] check per reload fault, then the
//! always-on [`accounting`] checks, and dresses
//! each verdict with its name, kind and line as a [`CheckResult`]. The one
//! list of kinds is the `match` in `run_check`.
//!
//! Expected and observed values are short human text (`p99 ≤ 250ms` /
//! `p99 = 12.3ms`), written with [`crate::report::format`].

pub mod accounting;
pub mod count;
pub mod errors;
pub mod figures;
pub mod ratio;
pub mod reloads;
pub mod status;
pub mod threshold;
pub mod timing;

use mcp_proxy::glob;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::journal::JournalEntry;
use crate::load::record::{CallOutcome, CallRecord, LoadResult};
use crate::scenario::{
    CallSelector, CheckKind, CheckSpec, CodeSelector, OutcomeFilter, Scenario, Window,
};

/// The outcome of one check, as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// The check's name (from the scenario, or the accounting check's own).
    pub name: String,
    /// Its kind: `threshold`, `errors`, `count`, `ratio`, `timing`, `status`, `reload` or `accounting`.
    pub kind: String,
    /// The line of its `expect:` entry; `None` for accounting checks.
    pub line: Option<usize>,
    /// What was required, as short text.
    pub expected: String,
    /// What was found, as short text.
    pub observed: String,
    /// Whether the requirement held.
    pub passed: bool,
    /// More about a failure (which bound broke, an example call), if anything.
    pub detail: Option<String>,
    /// The same verdict as numbers.
    pub figures: figures::Figures,
}

/// What one check concluded, before it is named.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What was required.
    pub expected: String,
    /// What was found.
    pub observed: String,
    /// Whether the requirement held.
    pub passed: bool,
    /// More about a failure, if anything.
    pub detail: Option<String>,
    /// The same as numbers.
    pub figures: figures::Figures,
}

impl Verdict {
    /// A failed verdict that says why the check cannot be judged; what
    /// was measured is kept, for the reader, but no measure passes (a
    /// script reading the measures sees what the verdict says).
    fn cannot_judge(mut self, reason: String) -> Verdict {
        for measure in &mut self.figures.measures {
            measure.passed = false;
        }
        Verdict {
            passed: false,
            detail: Some(reason),
            ..self
        }
    }

    /// The verdict as a report shows it: with the check's name, kind and line.
    pub(crate) fn named(self, name: String, kind: &str, line: Option<usize>) -> CheckResult {
        CheckResult {
            name,
            kind: kind.to_owned(),
            line,
            expected: self.expected,
            observed: self.observed,
            passed: self.passed,
            detail: self.detail,
            figures: self.figures,
        }
    }
}

/// Judges a run: every `expect:` entry of `scenario` in order, then the
/// accounting checks, against the load generator's `load` and the fakes'
/// merged `journal`.
pub fn evaluate(
    scenario: &Scenario,
    load: &LoadResult,
    journal: &[JournalEntry],
) -> Vec<CheckResult> {
    let mut results: Vec<CheckResult> = scenario
        .expect
        .iter()
        .map(|spec| run_check(spec, load, journal))
        .collect();
    results.extend(reloads::checks(scenario, &load.reloads));
    results.extend(accounting::checks(scenario, load));
    results
}

fn run_check(spec: &CheckSpec, load: &LoadResult, journal: &[JournalEntry]) -> CheckResult {
    let calls = &load.calls;
    let (kind, verdict) = match &spec.kind {
        CheckKind::Threshold(c) => (threshold::KIND, threshold::check(c, calls)),
        CheckKind::Errors(c) => (errors::KIND, errors::check(c, calls)),
        CheckKind::Count(c) => (count::KIND, count::check(c, journal, calls)),
        CheckKind::Ratio(c) => (ratio::KIND, ratio::check(c, journal)),
        CheckKind::Timing(c) => (timing::KIND, timing::check(c, calls)),
        CheckKind::Status(c) => (status::KIND, status::check(c, &load.statuses)),
    };
    let verdict = match spec
        .kind
        .code_selector()
        .and_then(CodeSelector::cannot_judge)
    {
        Some(reason) => verdict.cannot_judge(reason),
        None => verdict,
    };
    verdict.named(spec.name.clone(), kind, Some(spec.line))
}

/// Whether a call ended the way `filter` asks.
fn outcome_matches(call: &CallRecord, filter: OutcomeFilter) -> bool {
    match filter {
        OutcomeFilter::Success => call.is_success(),
        OutcomeFilter::Error => !call.is_success(),
    }
}

/// The calls a selector picks: tool matches its pattern, due inside its
/// window (the intended start: a call held back by the generator still
/// belongs to the moment it was meant for), ended the way it asks.
fn select_calls<'a>(
    selector: &'a CallSelector,
    calls: &'a [CallRecord],
) -> impl Iterator<Item = &'a CallRecord> + 'a {
    calls.iter().filter(move |c| {
        glob::matches(&selector.tool, &c.tool)
            && selector.window.contains(c.intended)
            && selector
                .identity
                .as_ref()
                .is_none_or(|i| i.clients.contains(&c.client))
            && selector.outcome.is_none_or(|f| outcome_matches(c, f))
            && selector.code.as_ref().is_none_or(
                |want| matches!(c.outcome, CallOutcome::RpcError { code, .. } if want.matches(code)),
            )
    })
}

/// "calls `files/*` during files-down": what a selector picked, for details.
fn describe_selection(tool: &str, window: &Window) -> String {
    format!("calls `{tool}` due {}", window.label)
}

/// "call 17 (files/read, due 1.2s): HTTP 502", for details.
fn describe_call(call: &CallRecord) -> String {
    format!(
        "call {} ({}, due {}): {}",
        call.call,
        call.tool,
        crate::report::format::duration(call.intended),
        call.outcome.describe()
    )
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Hand-built records, journal entries and windows for the checks' tests.

    use std::path::PathBuf;
    use std::time::Duration;

    use mcp_proxy::config::document::{Node, Value};

    use super::figures::Figures;
    use crate::journal::JournalEntry;
    use crate::load::record::{CallOutcome, CallRecord};
    use crate::scenario::{CheckSpec, LoadMode, ProxySection, Scenario, Window, Workload};

    pub fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A call of `tool` due at `due_ms` that took `took_ms`; a success
    /// echoes its own number, as a fake's does.
    pub fn call(n: u64, tool: &str, due_ms: u64, took_ms: u64, outcome: CallOutcome) -> CallRecord {
        CallRecord {
            call: n,
            client: 0,
            tool: tool.into(),
            intended: ms(due_ms),
            sent: ms(due_ms),
            ended: ms(due_ms + took_ms),
            echoed_call: (outcome == CallOutcome::Success).then_some(n),
            outcome,
        }
    }

    pub fn ok(n: u64, tool: &str, due_ms: u64, took_ms: u64) -> CallRecord {
        call(n, tool, due_ms, took_ms, CallOutcome::Success)
    }

    pub fn rpc_error(code: i64, message: &str) -> CallOutcome {
        CallOutcome::RpcError {
            code,
            message: message.into(),
        }
    }

    /// One journal entry of `fake`.
    pub fn entry(fake: &str, method: &str, tool: Option<&str>, at_ms: u64) -> JournalEntry {
        JournalEntry {
            at: ms(at_ms),
            fake: fake.into(),
            endpoint: "http://127.0.0.1:1/mcp".into(),
            method: method.into(),
            tool: tool.map(Into::into),
            arguments: None,
            id: None,
            call: None,
            traceparent: None,
            outcome: "success".into(),
        }
    }

    /// A window of `(from_ms, to_ms)` ranges.
    pub fn window(label: &str, ranges: &[(u64, u64)]) -> Window {
        Window {
            label: label.into(),
            ranges: ranges.iter().map(|&(from, to)| ms(from)..ms(to)).collect(),
        }
    }

    /// A ten-second scenario `outage` (seed 7) with these checks and no faults.
    pub fn scenario(expect: Vec<CheckSpec>) -> Scenario {
        Scenario {
            file: PathBuf::from("scenarios/outage.yaml"),
            name: "outage".into(),
            description: String::new(),
            seed: 7,
            duration: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            proxy: Some(ProxySection {
                tree: Node {
                    line: 1,
                    value: Value::Null,
                },
                backend_fakes: Vec::new(),
                issuer: None,
            }),
            fakes: Vec::new(),
            issuer: None,
            faults: Vec::new(),
            workload: Workload {
                clients: 1,
                mode: LoadMode::Closed { concurrency: 1 },
                calls: Vec::new(),
                call_timeout: Duration::from_secs(30),
                identities: Vec::new(),
            },
            expect,
        }
    }

    /// Each measure of `figures` as one line of text, for assertions:
    /// `name[subject] = value unit, min, max, expected, count, of total,
    /// passed` (the parts it has).
    pub fn measures(figures: &Figures) -> Vec<String> {
        figures
            .measures
            .iter()
            .map(|m| {
                let mut text = m.name.clone();
                if let Some(subject) = &m.subject {
                    text.push_str(&format!("[{subject}]"));
                }
                match m.value {
                    Some(value) => text.push_str(&format!(" = {value} {}", m.unit)),
                    None => text.push_str(&format!(" = none {}", m.unit)),
                }
                for (key, number) in [("min", m.min), ("max", m.max), ("expected", m.expected)] {
                    if let Some(number) = number {
                        text.push_str(&format!(", {key} {number}"));
                    }
                }
                for (key, number) in [("count", m.count), ("of", m.total)] {
                    if let Some(number) = number {
                        text.push_str(&format!(", {key} {number}"));
                    }
                }
                text.push_str(if m.passed { ", passed" } else { ", failed" });
                text
            })
            .collect()
    }

    /// The whole of any test run.
    pub fn always() -> Window {
        Window {
            label: "whole run".into(),
            ranges: vec![Duration::ZERO..Duration::MAX],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::scenario::{CodeSelector, CountCheck, JournalSelector, ThresholdCheck};

    #[test]
    fn selection_uses_the_intended_start_window_and_outcome() {
        let calls = [
            ok(1, "files/read", 100, 5),
            // Due before the window, sent inside it: not selected.
            CallRecord {
                sent: ms(1_100),
                ..ok(2, "files/read", 900, 5)
            },
            call(3, "files/read", 1_200, 5, rpc_error(-32000, "down")),
            ok(4, "db/query", 1_300, 5),
            // In the second range of a repeating phase; then one just past it.
            ok(5, "files/read", 3_000, 5),
            ok(6, "files/read", 3_500, 5),
        ];
        let mut selector = CallSelector {
            tool: "files/*".into(),
            window: window("during x", &[(1_000, 2_000), (3_000, 3_500)]),
            outcome: None,
            code: None,
            identity: None,
        };
        let picked: Vec<u64> = select_calls(&selector, &calls).map(|c| c.call).collect();
        assert_eq!(picked, vec![3, 5]);
        selector.window = always();
        selector.outcome = Some(OutcomeFilter::Success);
        let picked: Vec<u64> = select_calls(&selector, &calls).map(|c| c.call).collect();
        assert_eq!(picked, vec![1, 2, 5, 6]);
        // A code selects the calls answered with that JSON-RPC error only.
        selector.outcome = None;
        selector.code = Some(CodeSelector::code(-32000));
        let picked: Vec<u64> = select_calls(&selector, &calls).map(|c| c.call).collect();
        assert_eq!(picked, vec![3]);
        selector.code = Some(CodeSelector::code(-32001));
        assert_eq!(select_calls(&selector, &calls).count(), 0);
        // An identity selects its clients' calls only (these are all client 0's).
        selector.code = None;
        let everyones = select_calls(&selector, &calls).count();
        assert!(everyones > 0);
        selector.identity = Some(crate::scenario::IdentityRef {
            name: "second".into(),
            clients: 1..2,
        });
        assert_eq!(select_calls(&selector, &calls).count(), 0);
        selector.identity = Some(crate::scenario::IdentityRef {
            name: "first".into(),
            clients: 0..1,
        });
        assert_eq!(select_calls(&selector, &calls).count(), everyones);
    }

    #[test]
    fn evaluate_runs_the_checks_in_order_then_accounting() {
        let expect = vec![
            CheckSpec {
                name: "no errors".into(),
                line: 40,
                kind: CheckKind::Threshold(ThresholdCheck {
                    select: CallSelector {
                        tool: "*".into(),
                        window: always(),
                        outcome: None,
                        code: None,
                        identity: None,
                    },
                    max_error_rate: Some(0.0),
                    latency: Vec::new(),
                    min_calls: 1,
                }),
            },
            CheckSpec {
                name: "files saw two".into(),
                line: 45,
                kind: CheckKind::Count(CountCheck {
                    select: JournalSelector {
                        fake: "files".into(),
                        tool: None,
                        method: "tools/call".into(),
                        endpoint: None,
                        outcomes: None,
                        window: always(),
                        identity: None,
                    },
                    min: Some(2),
                    max: Some(2),
                    per_call: false,
                    traced: false,
                }),
            },
        ];
        let load = LoadResult {
            calls: vec![ok(1, "files/read", 0, 3), ok(2, "files/read", 5, 3)],
            ..LoadResult::default()
        };
        let journal = [
            entry("files", "tools/call", Some("read"), 1),
            entry("files", "tools/call", Some("read"), 6),
        ];
        let results = evaluate(&scenario(expect), &load, &journal);
        let heads: Vec<(&str, &str, Option<usize>)> = results
            .iter()
            .map(|r| (r.name.as_str(), r.kind.as_str(), r.line))
            .collect();
        assert_eq!(
            &heads[..2],
            &[
                ("no errors", "threshold", Some(40)),
                ("files saw two", "count", Some(45))
            ]
        );
        assert!(
            heads[2..]
                .iter()
                .all(|(_, kind, line)| *kind == "accounting" && line.is_none())
        );
        assert_eq!(results.len(), 2 + 5);
        assert!(results.iter().all(|r| r.passed), "{results:#?}");
    }
}
