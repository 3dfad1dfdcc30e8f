//! Reports as JUnit XML, the format CI systems show as test results: one
//! `<testsuite>` per scenario run, one `<testcase>` per check (a failed one
//! carries a `<failure>`), and an `<error>` test case when a harness error
//! stopped the run. Written by hand: the subset is small, and every text
//! from outside (check names, error messages from backends) is escaped
//! ([`markup`](super::markup)).

use std::path::Path;

use super::RunReport;
use super::markup::{escape, escape_text};

/// The reports as a JUnit XML document.
pub fn to_string(reports: &[RunReport]) -> String {
    let tests: usize = reports.iter().map(tests_of).sum();
    let failures: usize = reports.iter().map(RunReport::failed_checks).sum();
    let errors = reports.iter().filter(|r| r.error.is_some()).count();
    let time: f64 = reports.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"mcp-harness\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n"
    ));
    for report in reports {
        suite(&mut out, report);
    }
    out.push_str("</testsuites>\n");
    out
}

/// Writes the reports as JUnit XML to `path` (replacing it).
pub fn write(path: &Path, reports: &[RunReport]) -> std::io::Result<()> {
    std::fs::write(path, to_string(reports))
}

/// Test cases of a report: its checks, and one for a harness error.
fn tests_of(report: &RunReport) -> usize {
    report.checks.len() + usize::from(report.error.is_some())
}

fn suite(out: &mut String, report: &RunReport) {
    let name = escape(&report.scenario);
    out.push_str(&format!(
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">\n",
        tests_of(report),
        report.failed_checks(),
        usize::from(report.error.is_some()),
        report.duration.as_secs_f64()
    ));
    out.push_str("    <properties>\n");
    for (key, value) in [
        ("file", report.file.clone()),
        ("seed", report.seed.to_string()),
        ("mode", report.mode.clone()),
        ("calls", report.calls.to_string()),
        ("missed_slots", report.missed_slots.to_string()),
    ] {
        out.push_str(&format!(
            "      <property name=\"{key}\" value=\"{}\"/>\n",
            escape(&value)
        ));
    }
    out.push_str("    </properties>\n");
    for check in &report.checks {
        let case = format!(
            "    <testcase name=\"{}\" classname=\"{name}\"",
            escape(&check.name)
        );
        if check.passed {
            out.push_str(&case);
            out.push_str("/>\n");
            continue;
        }
        let message = format!("expected {}, observed {}", check.expected, check.observed);
        let body = match &check.detail {
            Some(detail) => format!("{message}\n{detail}"),
            None => message.clone(),
        };
        out.push_str(&format!(
            "{case}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
            escape(&message),
            escape_text(&body)
        ));
    }
    if let Some(error) = &report.error {
        out.push_str(&format!(
            "    <testcase name=\"harness\" classname=\"{name}\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n",
            escape(error),
            escape_text(error)
        ));
    }
    out.push_str("  </testsuite>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn one_suite_per_report_with_counts() {
        let mut stopped = sample();
        stopped.scenario = "crash-loop".into();
        stopped.checks.clear();
        stopped.error = Some("fake files did not start".into());
        let xml = to_string(&[sample(), stopped]);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"1\" time=\"25.000\">"),
            "{xml}"
        );
        assert!(xml.contains(
            "<testsuite name=\"outage\" tests=\"2\" failures=\"1\" errors=\"0\" time=\"12.500\">"
        ));
        assert!(xml.contains(
            "<testsuite name=\"crash-loop\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"12.500\">"
        ));
        assert!(xml.contains("<testcase name=\"steady before\" classname=\"outage\"/>"));
        assert!(xml.contains(
            "<testcase name=\"no errors during files-down\" classname=\"outage\">\n      <failure message=\"expected error rate ≤ 0.0%, observed 3.0% (3 of 100)\">"
        ));
        assert!(xml.contains("<error message=\"fake files did not start\">"));
        assert!(xml.contains("<property name=\"seed\" value=\"7\"/>"));
        // Balanced: every opened element is closed.
        for tag in ["testsuites", "testsuite", "properties"] {
            assert_eq!(
                xml.matches(&format!("<{tag}>")).count() + xml.matches(&format!("<{tag} ")).count(),
                xml.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
        let open_cases = xml.matches("<testcase ").count();
        let self_closed = xml.matches("\"/>\n").count() - xml.matches("<property ").count();
        assert_eq!(open_cases, self_closed + xml.matches("</testcase>").count());
        assert_eq!(
            xml.matches("<failure ").count(),
            xml.matches("</failure>").count()
        );
    }

    #[test]
    fn names_and_messages_are_escaped() {
        let mut report = sample();
        report.scenario = "a<b & \"c\"".into();
        report.checks[1].name = "p99 < 'fast' & \"cheap\"".into();
        report.checks[1].observed = "HTTP 502: <html>\u{1}\n".into();
        let xml = to_string(&[report]);
        assert!(
            xml.contains("<testsuite name=\"a&lt;b &amp; &quot;c&quot;\""),
            "{xml}"
        );
        assert!(xml.contains("classname=\"a&lt;b &amp; &quot;c&quot;\""));
        assert!(
            xml.contains("<testcase name=\"p99 &lt; &apos;fast&apos; &amp; &quot;cheap&quot;\"")
        );
        // In the message attribute the line break is a reference; in the body it stays.
        assert!(
            xml.contains("observed HTTP 502: &lt;html&gt;\u{FFFD}&#10;\">"),
            "{xml}"
        );
        assert!(
            xml.contains("observed HTTP 502: &lt;html&gt;\u{FFFD}\n\nerror rate"),
            "{xml}"
        );
        // Nothing unescaped leaked: the only raw `<` start tags or declarations.
        for piece in xml.split('<').skip(1) {
            assert!(
                piece.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '?'),
                "stray < before {piece:?}"
            );
        }
        assert!(!xml.contains('\u{1}'));
    }

    #[test]
    fn write_puts_the_document_in_the_file() {
        let path = std::env::temp_dir().join(format!("report-junit-{}.xml", std::process::id()));
        write(&path, &[sample()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("</testsuites>\n"));
        std::fs::remove_file(&path).unwrap();
    }
}
