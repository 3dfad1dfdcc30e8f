//! The report as plain text for a terminal: a header, the phase table, the
//! checks table, the details of failed checks and a one-line verdict.
//!
//! Columns are fitted to their content; a cell longer than [`MAX_CELL`]
//! characters is cut with `…` (the details below the table keep the whole
//! text). No colours, so the output reads the same in a CI log.

use super::RunReport;
use super::format::{count, duration, percent};

/// The widest a table cell may be, in characters.
pub const MAX_CELL: usize = 60;

/// Renders one report.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("{} ({})\n", report.scenario, report.file));
    out.push_str(&format!(
        "seed {}, mode {}, ran {}, {}, {}\n",
        report.seed,
        report.mode,
        duration(report.duration),
        count(report.calls, "call"),
        count(report.missed_slots, "missed slot")
    ));

    if !report.phases.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = report
            .phases
            .iter()
            .map(|p| {
                vec![
                    p.label.clone(),
                    duration(p.from),
                    duration(p.to),
                    p.calls.to_string(),
                    p.errors.to_string(),
                    percent(p.error_rate),
                    duration(p.p50),
                    duration(p.p99),
                    duration(p.max),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "phase",
                "from",
                "to",
                "calls",
                "errors",
                "error rate",
                "p50",
                "p99",
                "max",
            ],
            &rows,
        ));
    }

    if !report.checks.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = report
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.expected.clone(),
                    c.observed.clone(),
                    if c.passed { "PASS" } else { "FAIL" }.to_owned(),
                ]
            })
            .collect();
        out.push_str(&table(&["check", "expected", "observed", "verdict"], &rows));
    }

    let failed_with_detail: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    if !failed_with_detail.is_empty() {
        out.push_str("\nfailed:\n");
        for c in failed_with_detail {
            let at = c.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            out.push_str(&format!(
                "  {}{at}: expected {}, observed {}\n",
                c.name, c.expected, c.observed
            ));
            if let Some(detail) = &c.detail {
                out.push_str(&format!("    {detail}\n"));
            }
        }
    }
    if let Some(error) = &report.error {
        out.push_str(&format!("\nharness error: {error}\n"));
    }
    out.push('\n');
    out.push_str(&verdict_line(report));
    out.push('\n');
    out
}

/// The closing tally of a run of several scenarios (`1 of 2 scenarios
/// passed`); nothing for a single one, whose verdict line says it all.
pub fn tally(reports: &[RunReport]) -> Option<String> {
    (reports.len() > 1).then(|| {
        let passed = reports.iter().filter(|r| r.passed()).count();
        format!("{passed} of {} scenarios passed", reports.len())
    })
}

/// `outage: PASS (7 of 7 checks)`, `outage: FAIL (2 of 7 checks failed)`,
/// or `outage: FAIL (harness error)`.
pub fn verdict_line(report: &RunReport) -> String {
    let total = report.checks.len();
    if report.error.is_some() {
        format!("{}: FAIL (harness error)", report.scenario)
    } else if report.passed() {
        format!("{}: PASS ({total} of {total} checks)", report.scenario)
    } else {
        format!(
            "{}: FAIL ({} of {total} checks failed)",
            report.scenario,
            report.failed_checks()
        )
    }
}

/// A table with a header and a rule, columns two spaces apart, each as wide
/// as its widest (possibly cut) cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cut_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| cut(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cut_rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| {
                let pad = width.saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for row in &cut_rows {
        out.push_str(&line(row));
    }
    out
}

/// A cell on one line and at most [`MAX_CELL`] characters.
fn cut(cell: &str) -> String {
    let one_line = cell.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= MAX_CELL {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_CELL - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    #[test]
    fn a_failing_check_shows_fail_and_the_verdict_says_so() {
        let text = render(&sample());
        assert!(text.starts_with("outage (scenarios/outage.yaml)\nseed 7, mode in-process, ran 12.5s, 100 calls, 0 missed slots\n"), "{text}");
        let passing = line_with(&text, "steady before");
        assert!(passing.ends_with("PASS"), "{passing}");
        let failing = line_with(&text, "no errors during files-down  ");
        assert!(failing.contains("error rate ≤ 0.0%"), "{failing}");
        assert!(failing.contains("3.0% (3 of 100)"), "{failing}");
        assert!(failing.ends_with("FAIL"), "{failing}");
        assert!(
            text.contains("    error rate 3.0% > 0.0%\n"),
            "the detail is shown: {text}"
        );
        assert_eq!(
            text.lines().last(),
            Some("outage: FAIL (1 of 2 checks failed)")
        );
    }

    #[test]
    fn a_passing_report_says_pass_with_the_count() {
        let mut report = sample();
        report.checks.pop();
        let text = render(&report);
        assert_eq!(text.lines().last(), Some("outage: PASS (1 of 1 checks)"));
        assert!(!text.contains("FAIL"));
        assert!(!text.contains("failed:"));
    }

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let mut report = sample();
        report.checks[0].observed = "x".repeat(200);
        let text = render(&report);
        let header = line_with(&text, "check");
        let verdict_column = header.find("verdict").unwrap();
        // Every row of the checks table puts its verdict in the same column
        // (counted in characters: the cells hold multi-byte ≤ and …).
        let column = |line: &str| line.chars().count() - 4;
        let header_column = header[..verdict_column].chars().count();
        for name in ["steady before", "no errors during files-down  "] {
            assert_eq!(column(line_with(&text, name)), header_column, "{text}");
        }
        let cut = format!("{}…", "x".repeat(MAX_CELL - 1));
        assert!(line_with(&text, "steady before").contains(&cut));
        assert!(!text.contains(&"x".repeat(MAX_CELL)));
    }

    #[test]
    fn the_phase_table_shows_each_row() {
        let text = render(&sample());
        let header = line_with(&text, "phase");
        for title in [
            "from",
            "to",
            "calls",
            "errors",
            "error rate",
            "p50",
            "p99",
            "max",
        ] {
            assert!(header.contains(title), "{header}");
        }
        let row: Vec<&str> = line_with(&text, "whole run").split_whitespace().collect();
        assert_eq!(
            row,
            [
                "whole", "run", "0s", "10s", "100", "3", "3.0%", "1.2ms", "12.3ms", "40ms"
            ]
        );
    }

    #[test]
    fn a_harness_error_is_shown_and_fails_the_run() {
        let mut report = sample();
        report.checks.clear();
        report.error = Some("fake files: port 8080 in use".into());
        let text = render(&report);
        assert!(text.contains("harness error: fake files: port 8080 in use"));
        assert_eq!(text.lines().last(), Some("outage: FAIL (harness error)"));
    }

    #[test]
    fn several_reports_end_with_a_tally() {
        let mut good = sample();
        good.checks.pop();
        assert_eq!(
            tally(&[good.clone(), sample()]).as_deref(),
            Some("1 of 2 scenarios passed")
        );
        assert_eq!(tally(&[good]), None);
    }
}
