//! The report as plain text for a terminal: a header, the phase table, the
//! checks table, the details of failed checks and a one-line verdict.
//!
//! Columns are fitted to their content; a cell longer than [`MAX_CELL`]
//! characters is cut with `…` (the details below the table keep the whole
//! text). The verdict line is the last; a run of several scenarios ends
//! with a [`tally`] verdict instead. On a terminal ([`Colour::for_stdout`])
//! PASS is green, FAIL red and headings bold, nothing else; otherwise the
//! text has no escapes, so it reads the same in a CI log. Text from
//! outside (names, a gateway's error messages) is printed with its control
//! characters replaced ([`controls`](super::controls)): only the escapes
//! written here reach the terminal.

use std::ffi::OsString;
use std::io::IsTerminal;

use super::RunReport;
use super::controls::{one_line, replaced};
use super::format::{PHASE_COLUMNS, count, duration, phase_cells};

/// Whether text is painted with ANSI escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Plain text.
    Off,
    /// PASS green, FAIL red, headings bold.
    On,
}

impl Colour {
    /// On when standard output is a terminal and `NO_COLOR` is unset or
    /// empty (no-color.org).
    pub fn for_stdout() -> Self {
        Self::decide(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR"),
        )
    }

    fn decide(terminal: bool, no_color: Option<OsString>) -> Self {
        if terminal && no_color.is_none_or(|v| v.is_empty()) {
            Self::On
        } else {
            Self::Off
        }
    }

    /// `text` in bold.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// `PASS` green or `FAIL` red; other text as it is.
    pub fn verdict(self, text: &str) -> String {
        match text {
            "PASS" => self.paint("32", text),
            "FAIL" => self.paint("31", text),
            _ => text.to_owned(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Self::Off => text.to_owned(),
            Self::On => format!("\x1b[{code}m{text}\x1b[0m"),
        }
    }
}

/// The widest a table cell may be, in characters.
pub const MAX_CELL: usize = 60;

/// Renders one report.
pub fn render(report: &RunReport, colour: Colour) -> String {
    let mut out = String::new();
    out.push_str(&colour.bold(&format!(
        "{} ({})",
        one_line(&report.scenario),
        one_line(&report.file)
    )));
    out.push('\n');
    out.push_str(&format!(
        "seed {}, mode {}, ran {}, {}, {}\n",
        report.seed,
        one_line(&report.mode),
        duration(report.duration),
        count(report.calls, "call"),
        count(report.missed_slots, "missed slot")
    ));

    if !report.phases.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = report
            .phases
            .iter()
            .map(|p| phase_cells(p).to_vec())
            .collect();
        out.push_str(&table(&PHASE_COLUMNS, &rows, colour));
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
        out.push_str(&table(
            &["check", "expected", "observed", "verdict"],
            &rows,
            colour,
        ));
    }

    let failed_with_detail: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    if !failed_with_detail.is_empty() {
        out.push('\n');
        out.push_str(&colour.bold("failed:"));
        out.push('\n');
        for c in failed_with_detail {
            let at = c.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            out.push_str(&format!(
                "  {}{at}: expected {}, observed {}\n",
                one_line(&c.name),
                one_line(&c.expected),
                one_line(&c.observed)
            ));
            if let Some(detail) = &c.detail {
                out.push_str(&format!("    {}\n", replaced(detail)));
            }
        }
    }
    if let Some(error) = &report.error {
        out.push_str(&format!("\nharness error: {}\n", replaced(error)));
    }
    out.push('\n');
    out.push_str(&verdict_line(report, colour));
    out.push('\n');
    out
}

/// The closing verdict of a run of several scenarios (`all scenarios:
/// FAIL (1 of 2 failed)`); nothing for a single one, whose verdict line
/// says it all.
pub fn tally(reports: &[RunReport], colour: Colour) -> Option<String> {
    let passed = reports.iter().filter(|r| r.passed()).count();
    summary_line(passed, reports.len(), colour)
}

/// `all scenarios: PASS (2 of 2)` or `all scenarios: FAIL (1 of 2
/// failed)`, when there are several (of `total`, `passed` passed).
pub fn summary_line(passed: usize, total: usize, colour: Colour) -> Option<String> {
    (total > 1).then(|| {
        if passed == total {
            format!(
                "all scenarios: {} ({passed} of {total})",
                colour.verdict("PASS")
            )
        } else {
            let failed = total - passed;
            format!(
                "all scenarios: {} ({failed} of {total} failed)",
                colour.verdict("FAIL")
            )
        }
    })
}

/// `outage: PASS (7 of 7 checks)`, `outage: FAIL (2 of 7 checks failed)`,
/// or `outage: FAIL (harness error)`.
pub fn verdict_line(report: &RunReport, colour: Colour) -> String {
    let total = report.checks.len();
    let (pass, fail) = (colour.verdict("PASS"), colour.verdict("FAIL"));
    let scenario = one_line(&report.scenario);
    if report.error.is_some() {
        format!("{scenario}: {fail} (harness error)")
    } else if report.passed() {
        format!("{scenario}: {pass} ({total} of {total} checks)")
    } else {
        format!(
            "{scenario}: {fail} ({} of {total} checks failed)",
            report.failed_checks()
        )
    }
}

/// A table with a header (bold) and a rule, columns two spaces apart, each
/// as wide as its widest (possibly cut) cell; a PASS or FAIL in the last
/// column is painted.
fn table(headers: &[&str], rows: &[Vec<String>], colour: Colour) -> String {
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
            .enumerate()
            .map(|(column, (cell, &width))| {
                let pad = width.saturating_sub(cell.chars().count());
                let painted = if column + 1 == widths.len() {
                    colour.verdict(cell)
                } else {
                    cell.clone()
                };
                format!("{painted}{}", " ".repeat(pad))
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let header = line(&headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    let mut out = colour.bold(&header) + "\n";
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    out.push('\n');
    for row in &cut_rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// A cell on one line, without control characters, and at most
/// [`MAX_CELL`] characters.
fn cut(cell: &str) -> String {
    let one_line = one_line(cell);
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
        let text = render(&sample(), Colour::Off);
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
        let text = render(&report, Colour::Off);
        assert_eq!(text.lines().last(), Some("outage: PASS (1 of 1 checks)"));
        assert!(!text.contains("FAIL"));
        assert!(!text.contains("failed:"));
    }

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let mut report = sample();
        report.checks[0].observed = "x".repeat(200);
        let text = render(&report, Colour::Off);
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
        let text = render(&sample(), Colour::Off);
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
        let text = render(&report, Colour::Off);
        assert!(text.contains("harness error: fake files: port 8080 in use"));
        assert_eq!(text.lines().last(), Some("outage: FAIL (harness error)"));
    }

    #[test]
    fn several_reports_end_with_a_summary_verdict() {
        let mut good = sample();
        good.checks.pop();
        assert_eq!(
            tally(&[good.clone(), sample()], Colour::Off).as_deref(),
            Some("all scenarios: FAIL (1 of 2 failed)")
        );
        assert_eq!(
            tally(&[good.clone(), good.clone()], Colour::Off).as_deref(),
            Some("all scenarios: PASS (2 of 2)")
        );
        assert_eq!(tally(&[good], Colour::Off), None);
    }

    /// `render(&sample())` as it was before colour existed.
    const SAMPLE_TEXT: &str = "\
outage (scenarios/outage.yaml)
seed 7, mode in-process, ran 12.5s, 100 calls, 0 missed slots

phase      from  to   calls  errors  error rate  p50    p99     max
---------  ----  ---  -----  ------  ----------  -----  ------  ----
whole run  0s    10s  100    3       3.0%        1.2ms  12.3ms  40ms

check                        expected           observed         verdict
---------------------------  -----------------  ---------------  -------
steady before                error rate ≤ 0.0%  0.0% (0 of 100)  PASS
no errors during files-down  error rate ≤ 0.0%  3.0% (3 of 100)  FAIL

failed:
  no errors during files-down (line 30): expected error rate ≤ 0.0%, observed 3.0% (3 of 100)
    error rate 3.0% > 0.0%

outage: FAIL (1 of 2 checks failed)
";

    #[test]
    fn without_colour_the_text_is_as_before() {
        assert_eq!(render(&sample(), Colour::Off), SAMPLE_TEXT);
    }

    #[test]
    fn with_colour_verdicts_and_headings_are_painted_and_the_verdict_is_last() {
        let text = render(&sample(), Colour::On);
        assert!(
            text.starts_with("\x1b[1moutage (scenarios/outage.yaml)\x1b[0m\n"),
            "{text}"
        );
        assert!(text.contains("\x1b[1mcheck  "), "bold table header: {text}");
        assert!(text.contains("\x1b[1mfailed:\x1b[0m\n"), "{text}");
        assert!(text.contains("(3 of 100)  \x1b[31mFAIL\x1b[0m\n"), "{text}");
        assert!(text.contains("(0 of 100)  \x1b[32mPASS\x1b[0m\n"), "{text}");
        assert_eq!(
            text.lines().last(),
            Some("outage: \x1b[31mFAIL\x1b[0m (1 of 2 checks failed)")
        );
        // Without the escapes, the same text.
        let plain = text
            .replace("\x1b[1m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        assert_eq!(plain, SAMPLE_TEXT);
    }

    #[test]
    fn a_gateways_escapes_never_reach_the_terminal() {
        let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m";
        let mut report = sample();
        report.scenario = format!("outage{hostile}");
        report.checks[1].name = format!("check{hostile}");
        report.checks[1].observed = format!("answered {hostile}");
        report.checks[1].detail = Some(format!("message: {hostile}\r"));
        report.error = Some(format!("gateway said {hostile}"));
        let text = render(&report, Colour::On);
        let escapes: Vec<&str> = text.matches('\u{1b}').collect();
        let ours = text.matches("\u{1b}[1m").count()
            + text.matches("\u{1b}[0m").count()
            + text.matches("\u{1b}[31m").count()
            + text.matches("\u{1b}[32m").count();
        assert_eq!(escapes.len(), ours, "only our own escapes: {text:?}");
        for control in ['\u{7}', '\u{9b}', '\r'] {
            assert!(!text.contains(control), "{control:?} in {text:?}");
        }
        assert!(
            text.contains("gateway said \u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}"),
            "{text}"
        );
        assert!(text.contains("observed answered \u{FFFD}[2J"), "{text}");
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert_eq!(Colour::decide(true, None), Colour::On);
        assert_eq!(Colour::decide(true, Some("".into())), Colour::On);
        assert_eq!(Colour::decide(true, Some("1".into())), Colour::Off);
        assert_eq!(Colour::decide(false, None), Colour::Off);
        assert_eq!(Colour::On.verdict("maybe"), "maybe");
    }
}
