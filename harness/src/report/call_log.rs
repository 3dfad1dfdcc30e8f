//! The report's call log: every client call, how it ended and which fakes
//! received it, so one odd call can be followed from the client to the
//! backends. It also names the error labels the timeline counts under.

use std::collections::BTreeMap;

use super::timeline::CallRow;
use crate::clock::whole_micros;
use crate::journal::JournalEntry;
use crate::load::record::{CallOutcome, CallRecord};

/// Every call of `calls` in the order they were due (then by number), each
/// with the fakes whose `journal` holds a `tools/call` with its number.
pub fn call_log(calls: &[CallRecord], journal: &[JournalEntry]) -> Vec<CallRow> {
    let mut received: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for entry in journal.iter().filter(|e| e.method == "tools/call") {
        if let Some(call) = entry.call {
            received.entry(call).or_default().push(entry.fake.clone());
        }
    }
    let mut due: Vec<&CallRecord> = calls.iter().collect();
    due.sort_by_key(|c| (c.intended, c.call));
    due.into_iter()
        .map(|c| {
            let (code, status) = match &c.outcome {
                CallOutcome::RpcError { code, .. } => (Some(*code), None),
                CallOutcome::HttpStatus { status } => (None, Some(*status)),
                _ => (None, None),
            };
            CallRow {
                call: c.call,
                client: c.client,
                tool: c.tool.clone(),
                due_us: whole_micros(c.intended),
                sent_us: whole_micros(c.sent),
                latency_us: whole_micros(c.latency()),
                outcome: outcome_kind(&c.outcome).to_owned(),
                error: error_label(&c.outcome),
                code,
                status,
                message: c.outcome.message().map(str::to_owned),
                fakes: received.remove(&c.call).unwrap_or_default(),
            }
        })
        .collect()
}

/// How a call ended, in a word: `success`, `tool_error`, `rpc_error`,
/// `http_status`, `transport` or `hung`.
fn outcome_kind(outcome: &CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Success => "success",
        CallOutcome::ToolError { .. } => "tool_error",
        CallOutcome::RpcError { .. } => "rpc_error",
        CallOutcome::HttpStatus { .. } => "http_status",
        CallOutcome::Transport { .. } => "transport",
        CallOutcome::Hung => "hung",
    }
}

/// The label a failure is counted under: the JSON-RPC code as text
/// (`-32010`), `http_502`, or the outcome's word; `None` for a success.
pub(super) fn error_label(outcome: &CallOutcome) -> Option<String> {
    match outcome {
        CallOutcome::Success => None,
        CallOutcome::RpcError { code, .. } => Some(code.to_string()),
        CallOutcome::HttpStatus { status } => Some(format!("http_{status}")),
        other => Some(outcome_kind(other).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;

    #[test]
    fn calls_are_logged_in_due_order_with_the_fakes_that_received_them() {
        let calls = [
            call(
                2,
                "files/read",
                20,
                5,
                CallOutcome::HttpStatus { status: 502 },
            ),
            call(1, "files/read", 10, 7, rpc_error(-32010, "down")),
            call(3, "files/read", 20, 1, CallOutcome::Hung),
            ok(4, "files/read", 30, 2),
        ];
        let mut retried = entry("a", "tools/call", Some("read"), 11);
        retried.call = Some(1);
        let mut again = entry("b", "tools/call", Some("read"), 12);
        again.call = Some(1);
        let mut listed = entry("a", "tools/list", None, 13);
        listed.call = Some(4);
        let log = call_log(&calls, &[retried, again, listed]);
        let rows: Vec<_> = log
            .iter()
            .map(|r| {
                (
                    r.call,
                    r.outcome.as_str(),
                    r.error.as_deref(),
                    r.code,
                    r.status,
                    r.message.as_deref(),
                    r.fakes.join(","),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    1,
                    "rpc_error",
                    Some("-32010"),
                    Some(-32010),
                    None,
                    Some("down"),
                    "a,b".into()
                ),
                (
                    2,
                    "http_status",
                    Some("http_502"),
                    None,
                    Some(502),
                    None,
                    String::new()
                ),
                (3, "hung", Some("hung"), None, None, None, String::new()),
                (4, "success", None, None, None, None, String::new()),
            ]
        );
        assert_eq!(
            (log[0].due_us, log[0].sent_us, log[0].latency_us),
            (10_000, 10_000, 7_000)
        );
    }
}
