//! `status` checks: how many HTTP requests of the clients were answered with
//! one status (a 401 for an expired token, a 403 for a tool a role may not
//! call), counted from the statuses the load client recorded
//! ([`StatusRecord`]): every request of a session counts, `initialize` and
//! `DELETE` included, not only calls.

use mcp_proxy::glob;

use super::Verdict;
use super::figures::{Figures, Measure};
use crate::load::StatusRecord;
use crate::scenario::StatusCheck;

/// The kind's name in reports.
pub const KIND: &str = "status";

/// Judges `spec` over `statuses`: the count must lie in `min..=max`.
pub fn check(spec: &StatusCheck, statuses: &[StatusRecord]) -> Verdict {
    let count = statuses.iter().filter(|s| selects(spec, s)).count() as u64;
    let expected = super::count::bounds(spec.min, spec.max);
    let measure = Measure::count("responses", count, spec.min, spec.max);
    let passed = measure.passed;
    Verdict {
        expected: format!("{expected} × HTTP {}", spec.code),
        observed: format!("{count} × HTTP {}", spec.code),
        passed,
        detail: (!passed).then(|| {
            format!(
                "{count} {} answered HTTP {} {}",
                what(spec),
                spec.code,
                spec.window.label
            )
        }),
        figures: Figures::over(&spec.window, vec![measure]),
    }
}

/// "tools/call requests of reader": what a check counts, for details.
fn what(spec: &StatusCheck) -> String {
    let request = spec.request.as_deref().unwrap_or("requests");
    match &spec.identity {
        Some(identity) => format!("{request} of {}", identity.name),
        None => request.to_owned(),
    }
}

/// Whether a recorded status is one the check counts.
fn selects(spec: &StatusCheck, status: &StatusRecord) -> bool {
    status.status == spec.code
        && spec
            .identity
            .as_ref()
            .is_none_or(|i| i.clients.contains(&status.client))
        && spec
            .request
            .as_ref()
            .is_none_or(|pattern| glob::matches(pattern, &status.request))
        && spec.window.contains(status.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;
    use crate::scenario::IdentityRef;

    fn status(at_ms: u64, client: usize, request: &str, code: u16) -> StatusRecord {
        StatusRecord {
            at: ms(at_ms),
            client,
            request: request.into(),
            status: code,
        }
    }

    fn spec(code: u16, min: Option<u64>, max: Option<u64>) -> StatusCheck {
        StatusCheck {
            code,
            identity: None,
            request: None,
            window: window("whole run", &[(0, 10_000)]),
            min,
            max,
        }
    }

    fn recorded() -> Vec<StatusRecord> {
        vec![
            status(100, 0, "initialize", 401),
            status(2_000, 1, "tools/call", 401),
            status(3_000, 1, "tools/call", 403),
            status(4_000, 2, "tools/call", 401),
            status(12_000, 2, "tools/call", 401),
        ]
    }

    #[test]
    fn statuses_of_the_code_inside_the_window_are_counted() {
        let verdict = check(&spec(401, Some(3), Some(3)), &recorded());
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.observed, "3 × HTTP 401");
        assert_eq!(
            measures(&verdict.figures),
            ["responses = 3 count, min 3, max 3, passed"]
        );
        let verdict = check(&spec(403, None, Some(0)), &recorded());
        assert!(!verdict.passed);
        assert_eq!(
            verdict.detail.as_deref(),
            Some("1 requests answered HTTP 403 whole run")
        );
        assert_eq!(
            measures(&verdict.figures),
            ["responses = 1 count, max 0, failed"]
        );
    }

    #[test]
    fn an_identity_and_a_request_kind_narrow_the_count() {
        let mut by_identity = spec(401, Some(2), None);
        by_identity.identity = Some(IdentityRef {
            name: "late".into(),
            clients: 1..3,
        });
        let verdict = check(&by_identity, &recorded());
        assert_eq!(verdict.observed, "2 × HTTP 401");
        assert!(verdict.passed);
        let mut calls_only = spec(401, None, Some(1));
        calls_only.request = Some("tools/*".into());
        calls_only.identity = by_identity.identity.clone();
        assert!(!check(&calls_only, &recorded()).passed);
        calls_only.window = window("before 3s", &[(0, 3_000)]);
        let verdict = check(&calls_only, &recorded());
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.observed, "1 × HTTP 401");
    }

    #[test]
    fn nothing_recorded_fails_a_minimum() {
        let verdict = check(&spec(401, Some(1), None), &[]);
        assert!(!verdict.passed);
        assert_eq!(verdict.observed, "0 × HTTP 401");
    }
}
