//! `count` checks: how many requests of a kind a fake received in a window
//! (a dead backend must see no calls; a retry policy must send exactly so
//! many). Counted from the fakes' journals, not from what clients saw; an
//! `identity` keeps the entries of the calls its clients sent (matched by
//! the `harness_call` number), so "nothing of reader's reached the writer's
//! backend" is a count with `max: 0`.

use mcp_proxy::glob;
use mcp_proxy::trace::{SpanId, TraceContext};

use super::Verdict;
use super::figures::{Figures, Measure};
use crate::journal::JournalEntry;
use crate::load::CallRecord;
use crate::load::trace;
use crate::scenario::{CountCheck, JournalSelector};

/// The kind's name in reports.
pub const KIND: &str = "count";

/// Judges `spec` over `journal` (and the client `calls`, which tell whose
/// call an entry is): the count must lie in `min..=max`.
pub fn check(spec: &CountCheck, journal: &[JournalEntry], calls: &[CallRecord]) -> Verdict {
    let callers: std::collections::HashMap<u64, usize> =
        calls.iter().map(|c| (c.call, c.client)).collect();
    let journal: Vec<&JournalEntry> = journal
        .iter()
        .filter(|e| {
            spec.select.identity.as_ref().is_none_or(|identity| {
                e.call
                    .and_then(|n| callers.get(&n))
                    .is_some_and(|client| identity.clients.contains(client))
            })
        })
        .collect();
    let verdict = if spec.per_call {
        check_per_call(spec, &journal)
    } else {
        check_total(spec, &journal)
    };
    if spec.traced {
        let selected: Vec<&JournalEntry> = journal
            .iter()
            .copied()
            .filter(|e| selects(&spec.select, e))
            .collect();
        return with_traces(verdict, &selected);
    }
    verdict
}

/// The selected entries counted against `min..=max`.
fn check_total(spec: &CountCheck, journal: &[&JournalEntry]) -> Verdict {
    let count = journal.iter().filter(|e| selects(&spec.select, e)).count() as u64;
    let expected = bounds(spec.min, spec.max);
    let passed = spec.min.is_none_or(|min| count >= min) && spec.max.is_none_or(|max| count <= max);
    let s = &spec.select;
    Verdict {
        expected,
        observed: count.to_string(),
        passed,
        detail: (!passed).then(|| {
            format!(
                "{count} {}{} received by {} {}",
                what(s),
                s.identity
                    .as_ref()
                    .map(|i| format!(" sent by {}", i.name))
                    .unwrap_or_default(),
                s.fake,
                s.window.label
            )
        }),
        figures: Figures::over(
            &s.window,
            vec![Measure::count("requests", count, spec.min, spec.max)],
        ),
    }
}

/// `traced`: `verdict` failed too unless every entry of a client call in
/// `selected` carries a `traceparent` in that call's trace and no two
/// entries of one call share a parent id; an entry with no `harness_call`
/// number is not judged, and a selection with no client call at all fails
/// (it would prove nothing).
fn with_traces(mut verdict: Verdict, selected: &[&JournalEntry]) -> Verdict {
    let mut parents: std::collections::BTreeMap<u64, Vec<SpanId>> = Default::default();
    let mut off_trace = 0u64;
    let mut first_problem = None;
    for entry in selected {
        let Some(call) = entry.call else { continue };
        let problem = match trace_of(entry, call) {
            Err(problem) => Some(problem),
            Ok(parent) => {
                let seen = parents.entry(call).or_default();
                if seen.contains(&parent) {
                    Some(format!(
                        "call {call}: two attempts under one parent id {parent}"
                    ))
                } else {
                    seen.push(parent);
                    None
                }
            }
        };
        if let Some(problem) = problem {
            off_trace += 1;
            first_problem.get_or_insert(problem);
        }
    }
    let calls = parents.len() as u64;
    let passed = off_trace == 0 && !(calls == 0 && first_problem.is_none());
    verdict.expected = format!("{}; each attempt in its call's trace", verdict.expected);
    verdict.observed = format!(
        "{}; {off_trace} attempts off their call's trace ({calls} calls)",
        verdict.observed
    );
    if !passed && verdict.passed {
        verdict.detail = Some(
            first_problem
                .unwrap_or_else(|| "no selected request carries a harness_call number".to_owned()),
        );
    }
    verdict.passed &= passed;
    verdict.figures.measures.push(Measure {
        passed,
        total: Some(calls),
        ..Measure::count("attempts_off_trace", off_trace, None, Some(0))
    });
    verdict
}

/// The parent id of an entry of call `call`, or why it is not in the
/// call's trace.
fn trace_of(entry: &JournalEntry, call: u64) -> Result<SpanId, String> {
    let Some(traceparent) = &entry.traceparent else {
        return Err(format!(
            "call {call}: a request at {} carried no traceparent",
            entry.endpoint
        ));
    };
    let Some(context) = TraceContext::parse(traceparent, None) else {
        return Err(format!("call {call}: invalid traceparent {traceparent:?}"));
    };
    if trace::call_of(context.trace_id) != Some(call) {
        return Err(format!(
            "call {call}: a request in trace {}, not the call's",
            context.trace_id
        ));
    }
    Ok(context.parent_id)
}

/// "exactly 3", "1 to 5", "≥ 1", "≤ 0": a count's bounds, as text.
pub(super) fn bounds(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) if min == max => format!("exactly {min}"),
        (Some(min), Some(max)) => format!("{min} to {max}"),
        (Some(min), None) => format!("≥ {min}"),
        (None, Some(max)) => format!("≤ {max}"),
        (None, None) => "any number".to_owned(),
    }
}

/// `per_call`: the most entries any one client call has must be ≤ `max`.
/// A selection that holds no client call fails: a bound on each call that
/// no call reached proves nothing (a wrong fake, tool or window would pass).
fn check_per_call(spec: &CountCheck, journal: &[&JournalEntry]) -> Verdict {
    let max = spec.max.unwrap_or(u64::MAX);
    let mut per_call: std::collections::BTreeMap<u64, u64> = Default::default();
    for entry in journal.iter().filter(|e| selects(&spec.select, e)) {
        if let Some(call) = entry.call {
            *per_call.entry(call).or_default() += 1;
        }
    }
    let worst = per_call
        .iter()
        .max_by_key(|(call, n)| (**n, std::cmp::Reverse(**call)));
    let (observed, passed) = match worst {
        None => ("nothing matched".to_owned(), false),
        Some((call, n)) => (
            format!(
                "at most {n} per call (call {call}; {} calls)",
                per_call.len()
            ),
            *n <= max,
        ),
    };
    let s = &spec.select;
    let requests_per_call = Measure {
        value: worst.map(|(_, n)| *n as f64),
        total: Some(per_call.len() as u64),
        passed,
        ..Measure::count("requests_per_call", 0, None, spec.max)
    };
    Verdict {
        figures: Figures::over(&s.window, vec![requests_per_call]),
        expected: format!("≤ {max} per call"),
        observed,
        passed,
        detail: worst.is_none().then(|| {
            format!(
                "no {} with a harness_call number received by {} {}",
                what(s),
                s.fake,
                s.window.label
            )
        }),
    }
}

/// "tools/call of `read`": the requests a selector counts, for details.
fn what(select: &JournalSelector) -> String {
    match &select.tool {
        Some(tool) => format!("{} of `{tool}`", select.method),
        None => select.method.clone(),
    }
}

/// Whether a journal entry is one the selector counts.
fn selects(select: &JournalSelector, entry: &JournalEntry) -> bool {
    entry.fake == select.fake
        && entry.method == select.method
        && select
            .tool
            .as_ref()
            .is_none_or(|t| entry.tool.as_ref() == Some(t))
        && select
            .endpoint
            .as_ref()
            .is_none_or(|pattern| glob::matches(pattern, &entry.endpoint))
        && select
            .outcomes
            .as_ref()
            .is_none_or(|labels| labels.contains(&entry.outcome))
        && select.window.contains(entry.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;
    use crate::load::record::CallOutcome;

    fn spec(tool: Option<&str>, min: Option<u64>, max: Option<u64>) -> CountCheck {
        CountCheck {
            select: JournalSelector {
                fake: "files".into(),
                tool: tool.map(Into::into),
                method: "tools/call".into(),
                endpoint: None,
                outcomes: None,
                window: window("during files-down", &[(1_000, 2_000)]),
                identity: None,
            },
            min,
            max,
            per_call: false,
            traced: false,
        }
    }

    fn journal() -> Vec<JournalEntry> {
        vec![
            entry("files", "tools/call", Some("read"), 1_000),
            entry("files", "tools/call", Some("write"), 1_500),
            entry("files", "tools/call", Some("read"), 1_999),
            // Not counted: window end is exclusive, other fake, other method.
            entry("files", "tools/call", Some("read"), 2_000),
            entry("db", "tools/call", Some("read"), 1_500),
            entry("files", "tools/list", None, 1_500),
        ]
    }

    #[test]
    fn counts_inside_inclusive_bounds() {
        let v = check(&spec(None, Some(3), Some(3)), &journal(), &[]);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            (v.expected.as_str(), v.observed.as_str()),
            ("exactly 3", "3")
        );
        assert_eq!(
            measures(&v.figures),
            ["requests = 3 count, min 3, max 3, passed"]
        );
        assert_eq!(v.figures.window[0].to_us, Some(2_000_000));
        assert!(check(&spec(Some("read"), Some(2), Some(5)), &journal(), &[]).passed);
        assert!(check(&spec(Some("write"), None, Some(1)), &journal(), &[]).passed);
    }

    #[test]
    fn fails_outside_the_bounds() {
        let v = check(&spec(None, None, Some(0)), &journal(), &[]);
        assert!(!v.passed);
        assert_eq!((v.expected.as_str(), v.observed.as_str()), ("≤ 0", "3"));
        assert_eq!(
            v.detail.as_deref(),
            Some("3 tools/call received by files during files-down")
        );
        let v = check(&spec(Some("read"), Some(3), None), &journal(), &[]);
        assert!(!v.passed);
        assert_eq!((v.expected.as_str(), v.observed.as_str()), ("≥ 3", "2"));
    }

    #[test]
    fn an_identity_counts_only_the_entries_of_its_clients_calls() {
        let mut journal = journal();
        for (i, entry) in journal.iter_mut().enumerate() {
            entry.call = Some(i as u64 + 1);
        }
        journal[2].call = None;
        // Calls 1 and 2 were client 1's, call 3 client 0's (and call 3's
        // entry carries no number, so it is nobody's).
        let calls = [
            call(1, "read", 1_000, 1, CallOutcome::Success),
            call(2, "write", 1_500, 1, CallOutcome::Success),
            call(3, "read", 1_999, 1, CallOutcome::Success),
        ]
        .map(|mut c| {
            c.client = usize::from(c.call < 3);
            c
        });
        let mut of_reader = spec(None, None, Some(0));
        of_reader.select.identity = Some(crate::scenario::IdentityRef {
            name: "reader".into(),
            clients: 1..2,
        });
        let v = check(&of_reader, &journal, &calls);
        assert!(!v.passed);
        assert_eq!(v.observed, "2");
        assert_eq!(
            v.detail.as_deref(),
            Some("2 tools/call sent by reader received by files during files-down")
        );
        of_reader.select.identity = Some(crate::scenario::IdentityRef {
            name: "writer".into(),
            clients: 0..1,
        });
        assert!(check(&of_reader, &journal, &calls).passed);
    }

    #[test]
    fn an_endpoint_pattern_counts_only_that_endpoint() {
        let mut journal = journal();
        journal[1].endpoint = "stdio:42".into();
        let mut only_stdio = spec(None, Some(1), Some(1));
        only_stdio.select.endpoint = Some("stdio:*".into());
        assert!(check(&only_stdio, &journal, &[]).passed);
        let mut only_http = spec(None, Some(2), Some(2));
        only_http.select.endpoint = Some("http://127.0.0.1:*/mcp".into());
        assert!(check(&only_http, &journal, &[]).passed);
        only_http.select.endpoint = Some("http://127.0.0.1:2/mcp".into());
        assert!(!check(&only_http, &journal, &[]).passed);
    }

    #[test]
    fn per_call_bounds_each_calls_entries_and_outcomes_filter() {
        let mut journal = journal();
        for (i, entry) in journal.iter_mut().enumerate() {
            entry.call = Some(i as u64 % 2);
        }
        // Calls 0 and 1 were each received by files twice in the window.
        let mut once = spec(None, None, Some(1));
        once.per_call = true;
        let v = check(&once, &journal, &[]);
        assert!(!v.passed, "{v:?}");
        assert_eq!(v.observed, "at most 2 per call (call 0; 2 calls)");
        assert_eq!(
            measures(&v.figures),
            ["requests_per_call = 2 count, max 1, of 2, failed"]
        );
        // Only entries that ran: call 1's second entry was refused.
        journal[1].outcome = "unknown_session".into();
        once.select.outcomes = Some(vec!["success".into()]);
        let v = check(&once, &journal, &[]);
        assert!(!v.passed);
        journal[2].outcome = "unknown_session".into();
        assert!(check(&once, &journal, &[]).passed);
    }

    #[test]
    fn per_call_fails_when_no_call_is_selected() {
        let mut journal = journal();
        for (i, entry) in journal.iter_mut().enumerate() {
            entry.call = Some(i as u64);
        }
        let mut once = spec(Some("delete"), None, Some(1));
        once.per_call = true;
        let v = check(&once, &journal, &[]);
        assert!(!v.passed, "{v:?}");
        assert_eq!(v.observed, "nothing matched");
        assert_eq!(
            measures(&v.figures),
            ["requests_per_call = none count, max 1, of 0, failed"]
        );
        assert_eq!(
            v.detail.as_deref(),
            Some(
                "no tools/call of `delete` with a harness_call number received by files during files-down"
            )
        );
        // Entries without a call number are not client calls either.
        once.select.tool = None;
        journal.iter_mut().for_each(|e| e.call = None);
        assert_eq!(check(&once, &journal, &[]).observed, "nothing matched");
    }

    /// Attempt `parent` of client call `call`, as a fake journalled it.
    fn attempt(call: u64, traceparent: Option<String>) -> JournalEntry {
        let mut entry = entry("files", "tools/call", Some("read"), 1_500);
        entry.call = Some(call);
        entry.traceparent = traceparent;
        entry
    }

    /// A traceparent in call `call`'s trace, under span `parent`.
    fn in_trace_of(call: u64, parent: u64) -> Option<String> {
        let sent = TraceContext::parse(&trace::traceparent(call), None).unwrap();
        Some(format!("00-{}-{parent:016x}-01", sent.trace_id))
    }

    fn traced(min: u64) -> CountCheck {
        CountCheck {
            traced: true,
            ..spec(Some("read"), Some(min), None)
        }
    }

    #[test]
    fn traced_passes_when_each_calls_attempts_share_its_trace_with_parents_of_their_own() {
        let journal = vec![
            attempt(1, in_trace_of(1, 0xa)),
            attempt(1, in_trace_of(1, 0xb)),
            attempt(2, in_trace_of(2, 0xa)),
            // Not a client call: not judged (but counted).
            entry("files", "tools/call", Some("read"), 1_500),
        ];
        let v = check(&traced(4), &journal, &[]);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.expected, "≥ 4; each attempt in its call's trace");
        assert_eq!(v.observed, "4; 0 attempts off their call's trace (2 calls)");
        assert_eq!(
            measures(&v.figures)[1],
            "attempts_off_trace = 0 count, max 0, of 2, passed"
        );
    }

    #[test]
    fn traced_fails_on_an_attempt_outside_its_calls_trace_or_sharing_a_parent() {
        let cases = [
            (
                attempt(1, None),
                "call 1: a request at http://127.0.0.1:1/mcp carried no traceparent",
            ),
            (
                attempt(1, Some("00-zz".into())),
                "call 1: invalid traceparent \"00-zz\"",
            ),
            (
                // Call 2's trace: a retry that started a new trace, or
                // an answer's context mixed up between calls.
                attempt(1, in_trace_of(2, 0xc)),
                "call 1: a request in trace 6861726e657373210000000000000002, not the call's",
            ),
            (
                // A retry sent under the first attempt's span.
                attempt(1, in_trace_of(1, 0xa)),
                "call 1: two attempts under one parent id 000000000000000a",
            ),
        ];
        for (bad, why) in cases {
            let journal = vec![attempt(1, in_trace_of(1, 0xa)), bad];
            let v = check(&traced(1), &journal, &[]);
            assert!(!v.passed, "{why}: {v:?}");
            assert_eq!(v.detail.as_deref(), Some(why));
            assert_eq!(v.observed, "2; 1 attempts off their call's trace (1 calls)");
        }
        // Bounds still hold on their own: a count below min fails with its detail.
        let journal = vec![attempt(1, in_trace_of(1, 0xa))];
        let v = check(&traced(2), &journal, &[]);
        assert!(!v.passed);
        assert!(v.detail.unwrap().starts_with("1 tools/call of `read`"));
    }

    #[test]
    fn traced_fails_when_no_client_call_is_selected() {
        let journal = vec![entry("files", "tools/call", Some("read"), 1_500)];
        let v = check(&traced(1), &journal, &[]);
        assert!(!v.passed, "{v:?}");
        assert_eq!(
            v.detail.as_deref(),
            Some("no selected request carries a harness_call number")
        );
    }
}
