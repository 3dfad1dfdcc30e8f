//! The report's fault windows: when each time-triggered fault held, so a
//! reader (or the HTML timeline) can see what explains a change in the
//! numbers. Call-triggered faults hold per call, not in time, and have none.

use super::timeline::FaultSpan;
use crate::clock::whole_micros;
use crate::scenario::{FaultAction, Scenario, Trigger, occurrences};

/// Every window of every time-triggered fault of `scenario`, in file order:
/// each repeat of an `every:` that starts before the end of the load, cut
/// at the end of the load (where a fault without `for:` ends): the
/// scenario's own [`occurrences`], as its phases are.
pub fn fault_spans(scenario: &Scenario) -> Vec<FaultSpan> {
    let described = |fault: &crate::scenario::Fault| {
        let target = match &fault.tool {
            Some(tool) => format!("{}/{tool}", fault.fake),
            None => fault.fake.clone(),
        };
        format!("{} of {target}", action_word(&fault.action))
    };
    let mut spans = Vec::new();
    for (index, fault) in scenario.faults.iter().enumerate() {
        let Trigger::Time { at, length, every } = fault.trigger else {
            continue;
        };
        let action = action_word(&fault.action);
        // An unnamed fault is described; two alike also say which they
        // are, so their windows are never taken for one fault's repeats.
        let label = fault.name.clone().unwrap_or_else(|| {
            let description = described(fault);
            let alike = scenario
                .faults
                .iter()
                .filter(|f| f.name.is_none() && described(f) == description)
                .count();
            if alike > 1 {
                format!("{description} (faults[{index}])")
            } else {
                description
            }
        });
        for occurrence in occurrences(at, length, every, scenario.duration) {
            spans.push(FaultSpan {
                label: label.clone(),
                fake: fault.fake.clone(),
                action: action.to_owned(),
                from_us: whole_micros(occurrence.start),
                to_us: whole_micros(occurrence.end),
            });
        }
    }
    spans
}

/// The windows of one fault, repeated or not, as one: what the fault
/// table shows in one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Repeats<'a> {
    /// The first window.
    pub first: &'a FaultSpan,
    /// How many windows there are.
    pub count: usize,
    /// The time from one start to the next, when it is always the same.
    pub every_us: Option<u64>,
    /// The end of the last window.
    pub until_us: u64,
}

/// `spans` with the windows of each fault (the same label, fake and
/// action) gathered, in the order each first appears.
pub fn repeats(spans: &[FaultSpan]) -> Vec<Repeats<'_>> {
    let mut faults: Vec<Vec<&FaultSpan>> = Vec::new();
    for span in spans {
        let same = |windows: &&mut Vec<&FaultSpan>| {
            let first = windows[0];
            (&first.label, &first.fake, &first.action) == (&span.label, &span.fake, &span.action)
        };
        match faults.iter_mut().find(same) {
            Some(windows) => windows.push(span),
            None => faults.push(vec![span]),
        }
    }
    faults
        .into_iter()
        .map(|windows| {
            let gaps: Vec<u64> = windows
                .windows(2)
                .map(|w| w[1].from_us.saturating_sub(w[0].from_us))
                .collect();
            Repeats {
                first: windows[0],
                count: windows.len(),
                every_us: gaps
                    .first()
                    .copied()
                    .filter(|g| gaps.iter().all(|x| x == g)),
                until_us: windows
                    .iter()
                    .map(|w| w.to_us)
                    .max()
                    .unwrap_or(windows[0].to_us),
            }
        })
        .collect()
}

/// What a fault does, in a word: `outage`, `latency`, `errors` (an
/// outcome mix), `latency+errors`, `network`, `rotate_key` or `reload`.
fn action_word(action: &FaultAction) -> &'static str {
    match action {
        FaultAction::Outage { .. } => "outage",
        FaultAction::Behave {
            latency: Some(_),
            outcomes: Some(_),
        } => "latency+errors",
        FaultAction::Behave {
            latency: Some(_), ..
        } => "latency",
        FaultAction::Behave { .. } => "errors",
        FaultAction::Network { .. } => "network",
        FaultAction::RotateKey { .. } => "rotate_key",
        FaultAction::Reload { .. } => "reload",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;
    use crate::scenario::{CallTrigger, Fault};

    fn fault(name: Option<&str>, trigger: Trigger, action: FaultAction) -> Fault {
        Fault {
            name: name.map(Into::into),
            fake: "files".into(),
            tool: None,
            trigger,
            action,
        }
    }

    fn time(at: u64, length: Option<u64>, every: Option<u64>) -> Trigger {
        Trigger::Time {
            at: ms(at),
            length: length.map(ms),
            every: every.map(ms),
        }
    }

    #[test]
    fn each_repeat_is_a_span_cut_at_the_end_of_load() {
        let mut scenario = scenario(Vec::new());
        let slow = FaultAction::Behave {
            latency: Some(crate::scenario::Latency::Fixed(ms(100))),
            outcomes: None,
        };
        scenario.faults = vec![
            fault(
                Some("blips"),
                time(1_000, Some(500), Some(4_000)),
                FaultAction::Outage { exit_code: 1 },
            ),
            fault(None, time(8_000, None, None), slow),
            fault(
                Some("first calls"),
                Trigger::Calls(CallTrigger::First(3)),
                FaultAction::Outage { exit_code: 1 },
            ),
            fault(
                None,
                time(9_800, Some(1_000), None),
                FaultAction::Outage { exit_code: 1 },
            ),
        ];
        let spans = fault_spans(&scenario);
        let spans: Vec<(&str, &str, u64, u64)> = spans
            .iter()
            .map(|s| {
                (
                    s.label.as_str(),
                    s.action.as_str(),
                    s.from_us / 1_000,
                    s.to_us / 1_000,
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                ("blips", "outage", 1_000, 1_500),
                ("blips", "outage", 5_000, 5_500),
                ("blips", "outage", 9_000, 9_500),
                ("latency of files", "latency", 8_000, 10_000),
                ("outage of files", "outage", 9_800, 10_000),
            ]
        );
    }

    #[test]
    fn two_unnamed_faults_alike_are_two_rows_not_one_repeated() {
        let mut scenario = scenario(Vec::new());
        let outage = || FaultAction::Outage { exit_code: 1 };
        scenario.faults = vec![
            fault(None, time(2_000, Some(1_000), None), outage()),
            fault(None, time(8_000, Some(1_000), None), outage()),
        ];
        let spans = fault_spans(&scenario);
        let labels: Vec<&str> = spans.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            ["outage of files (faults[0])", "outage of files (faults[1])"]
        );
        assert_eq!(repeats(&spans).len(), 2);
    }
}
