//! Reports as one HTML page for people: per scenario run a header with its
//! verdict, the charts of [`charts`](super::charts) over one time axis, the
//! fault windows, the phase table, the checks each beside the figures it
//! judged, and the seed and replay command; or, for `--seeds`, a page of
//! the sweep.
//!
//! The page stands alone offline: inline CSS and SVG, no script, nothing
//! fetched (no fonts, images or links out). It is well-formed XHTML, so a
//! strict XML parser reads it, and every text from outside (scenario and
//! check names, backends' messages) is escaped ([`markup`](super::markup)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::RunReport;
use super::charts::{self, Chart, Mark, TimeAxis};
use super::format::{PHASE_COLUMNS, count, duration, p_value, percent, phase_cells};
use super::markup::escape_text;
use super::{fault_spans, resolution};
use crate::checks::CheckResult;
use crate::checks::figures::{Figures, Measure};
use crate::sim::sweep::Sweep;

/// The page of one or more scenario runs.
pub fn render(reports: &[RunReport]) -> String {
    let passed = reports.iter().filter(|r| r.passed()).count();
    let mut body = String::new();
    if reports.len() > 1 {
        let _ = writeln!(
            body,
            "<header class=\"summary\"><h1>{} of {} scenarios passed</h1>{}<ul>",
            passed,
            reports.len(),
            badge(passed == reports.len())
        );
        for (n, report) in reports.iter().enumerate() {
            let _ = writeln!(
                body,
                "<li><a href=\"#run-{n}\">{}</a> {}</li>",
                escape_text(&report.scenario),
                verdict_word(report.passed())
            );
        }
        body.push_str("</ul></header>\n");
    }
    for (n, report) in reports.iter().enumerate() {
        run_section(&mut body, n, report);
    }
    let title = match reports {
        [one] => format!("{}: {}", one.scenario, plain_verdict(one.passed())),
        _ => format!("{passed} of {} scenarios passed", reports.len()),
    };
    page(&title, &body)
}

/// Writes the page of `reports` to `path` (replacing it).
pub fn write(path: &Path, reports: &[RunReport]) -> std::io::Result<()> {
    std::fs::write(path, render(reports))
}

/// The page of seed sweeps: per scenario, per check, the seeds that
/// failed it, the first of them and the command that replays it.
pub fn render_sweeps(sweeps: &[Sweep]) -> String {
    let mut body = String::new();
    for sweep in sweeps {
        let judged = sweep.judged();
        let _ = writeln!(
            body,
            "<section class=\"run\"><div class=\"head\"><div><h2>{}</h2><p class=\"meta\">seeds {}..{} ({})</p></div>{}</div>",
            escape_text(&sweep.file),
            sweep.seeds.start,
            sweep.seeds.end,
            sweep.runs(),
            badge(sweep.passed())
        );
        let rows: Vec<Vec<Cell>> = sweep
            .checks
            .iter()
            .map(|check| {
                let replay = check
                    .first_failure
                    .map(|seed| Cell::code(&sweep.replay_command(seed)))
                    .unwrap_or_else(|| Cell::text(""));
                vec![
                    Cell::text(&check.name),
                    Cell::number(&format!("{} of {judged}", check.failed)),
                    Cell::number(&check.first_failure.map_or(String::new(), |s| s.to_string())),
                    replay,
                    Cell::verdict(check.failed == 0),
                ]
            })
            .collect();
        table(
            &mut body,
            &[
                "check",
                "seeds failed",
                "first failing seed",
                "replay",
                "verdict",
            ],
            &rows,
        );
        if !sweep.errors.is_empty() {
            body.push_str("<h3>Runs stopped by a harness error</h3>\n<ul>");
            for (seed, error) in &sweep.errors {
                let _ = write!(body, "<li>seed {seed}: {}</li>", escape_text(error));
            }
            body.push_str("</ul>\n");
        }
        if let Some(seed) = sweep.first_failing_seed() {
            let _ = writeln!(
                body,
                "<h3>Replay the first failing seed</h3>\n<pre><code>{}</code></pre>",
                escape_text(&sweep.replay_command(seed))
            );
        }
        body.push_str("</section>\n");
    }
    let passed = sweeps.iter().filter(|s| s.passed()).count();
    let title = format!("{passed} of {} sweeps passed on every seed", sweeps.len());
    page(&title, &body)
}

/// Writes the page of `sweeps` to `path` (replacing it).
pub fn write_sweeps(path: &Path, sweeps: &[Sweep]) -> std::io::Result<()> {
    std::fs::write(path, render_sweeps(sweeps))
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1160px; padding: 1em 1.5em; color: #222; }
h1 { font-size: 1.5em; }
h2 { font-size: 1.6em; margin: 0; word-break: break-word; }
h3 { font-size: 1.1em; margin: 1.6em 0 0.4em; }
.run { border-top: 3px solid #ccc; margin-top: 2em; padding-top: 1em; }
.head { display: flex; justify-content: space-between; align-items: center; gap: 1em; }
.meta { color: #555; margin: 0.3em 0 0; }
.badge { font-size: 2.2em; font-weight: bold; padding: 0.1em 0.6em; border-radius: 0.2em; color: #fff; }
.pass { background: #1a7f37; }
.fail { background: #c62828; }
.verdict { font-weight: bold; padding: 0 0.4em; border-radius: 0.2em; color: #fff; }
.error { border: 2px solid #c62828; padding: 0.5em 1em; }
svg { max-width: 100%; height: auto; display: block; }
.legend { list-style: none; padding: 0; margin: 0.3em 0 0 110px; display: flex; flex-wrap: wrap; gap: 0.4em 1.4em; }
.swatch { display: inline-block; width: 2em; height: 0.8em; margin-right: 0.4em; vertical-align: middle; }
.line { height: 0; border-top: 3px solid; }
.dashed { height: 0; border-top: 3px dashed; }
figcaption { margin: 0.3em 0 0 110px; color: #555; }
table { border-collapse: collapse; margin: 0.3em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.detail { color: #7a1c1c; padding-left: 2em; }
pre { background: #f3f3f3; padding: 0.6em 1em; overflow-x: auto; }
code { font-family: ui-monospace, monospace; }
.note { color: #555; font-style: italic; }
";

/// The document around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape_text(title)
    )
}

fn run_section(out: &mut String, n: usize, report: &RunReport) {
    let _ = writeln!(
        out,
        "<section class=\"run\" id=\"run-{n}\">\n<div class=\"head\"><div><h2>{}</h2><p class=\"meta\">{} · seed {} · mode {} · ran {} · {} · {}</p></div>{}</div>",
        escape_text(&report.scenario),
        escape_text(&report.file),
        report.seed,
        escape_text(&report.mode),
        duration(report.duration),
        count(report.calls, "call"),
        count(report.missed_slots, "missed slot"),
        badge(report.passed())
    );
    if let Some(error) = &report.error {
        let _ = writeln!(
            out,
            "<p class=\"error\"><strong>Harness error:</strong> {}</p>",
            escape_text(error)
        );
    }
    charts_of(out, report);
    faults_table(out, report);
    if !report.phases.is_empty() {
        out.push_str("<h3>Phases</h3>\n");
        let rows: Vec<Vec<Cell>> = report
            .phases
            .iter()
            .map(|p| {
                let [label, numbers @ ..] = phase_cells(p);
                std::iter::once(Cell::text(&label))
                    .chain(numbers.iter().map(|n| Cell::number(n)))
                    .collect()
            })
            .collect();
        table(out, &PHASE_COLUMNS, &rows);
    }
    checks_table(out, &report.checks);
    out.push_str("<h3>Replay</h3>\n");
    let _ = writeln!(out, "<p>Seed <strong>{}</strong>.</p>", report.seed);
    if report.replay.is_empty() {
        out.push_str("<p class=\"note\">No replay command was recorded.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<pre><code>{}</code></pre>",
            escape_text(&report.replay)
        );
    }
    out.push_str("</section>\n");
}

/// The charts, each with its key; a note in place of those that cannot
/// be drawn for want of data.
fn charts_of(out: &mut String, report: &RunReport) {
    if report.timeline.buckets.is_empty() && report.backends.is_empty() {
        out.push_str("<p class=\"note\">No timeline was recorded for this run.</p>\n");
        return;
    }
    let timeline = resolution::for_charts(report);
    let axis = TimeAxis::of(report, &timeline);
    let shaded = !report.faults.is_empty();
    let figure = |out: &mut String, title: &str, drawn, missing: &str| {
        chart(out, (title, missing), drawn, shaded);
    };
    figure(
        out,
        "Client calls and errors",
        charts::traffic(report, &timeline, axis).map(Some),
        "",
    );
    figure(
        out,
        "Latency",
        charts::latency(report, &timeline, axis),
        "No call was answered: there is no latency to draw.",
    );
    figure(
        out,
        "Requests each fake received (tools/call)",
        charts::fakes(report, &timeline, axis),
        "No fake received a tools/call request.",
    );
    fake_outcomes_table(out, report);
    let no_samples = if report.against_another_gateway() {
        "No /admin/backends samples: the proxy is not ours (--target)."
    } else {
        "No /admin/backends samples were recorded."
    };
    figure(
        out,
        "Backends as the proxy saw them (/admin/backends)",
        charts::backends(report, axis),
        no_samples,
    );
}

/// A chart under its title, with its key and caption; when there was
/// nothing to draw, the note `missing` says why instead.
fn chart(
    out: &mut String,
    (title, missing): (&str, &str),
    drawn: Result<Option<Chart>, Box<dyn std::error::Error>>,
    shaded: bool,
) {
    let chart = match drawn {
        Ok(Some(chart)) => chart,
        Ok(None) => {
            let _ = writeln!(
                out,
                "<h3>{title}</h3>\n<p class=\"note\">{}</p>",
                escape_text(missing)
            );
            return;
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "<h3>{title}</h3>\n<p class=\"note\">This chart could not be drawn: {}</p>",
                escape_text(&e.to_string())
            );
            return;
        }
    };
    let _ = writeln!(out, "<h3>{title}</h3>\n<figure>{}", chart.svg);
    out.push_str("<ul class=\"legend\">");
    let fault_window = shaded.then(charts::fault_window_key);
    for key in chart.legend.iter().chain(&fault_window) {
        let (class, property) = match key.mark {
            Mark::Line => ("line", "border-color"),
            Mark::Dashed => ("dashed", "border-color"),
            Mark::Area => ("area", "background"),
        };
        let _ = write!(
            out,
            "<li><span class=\"swatch {class}\" style=\"{property}: {}\"></span>{}</li>",
            key.colour,
            escape_text(&key.label)
        );
    }
    let _ = writeln!(
        out,
        "</ul><figcaption>{}</figcaption></figure>",
        escape_text(&chart.caption)
    );
}

/// Each fake's `tools/call` requests over the run, by the journal's
/// outcome label: what the dashed lines of the chart above were.
fn fake_outcomes_table(out: &mut String, report: &RunReport) {
    let mut totals: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for bucket in &report.timeline.buckets {
        for (fake, outcomes) in &bucket.fakes {
            let total = totals.entry(fake).or_default();
            for (outcome, n) in outcomes {
                let sum = total.entry(outcome).or_default();
                *sum = sum.saturating_add(*n);
            }
        }
    }
    if totals.is_empty() {
        return;
    }
    let outcomes: BTreeSet<&str> = totals.values().flat_map(|o| o.keys().copied()).collect();
    let rows: Vec<Vec<Cell>> = totals
        .iter()
        .map(|(fake, counts)| {
            let all = counts.values().fold(0u64, |sum, n| sum.saturating_add(*n));
            std::iter::once(Cell::text(fake))
                .chain(
                    outcomes
                        .iter()
                        .map(|o| Cell::number(&counts.get(o).copied().unwrap_or(0).to_string())),
                )
                .chain([Cell::number(&all.to_string())])
                .collect()
        })
        .collect();
    let headers: Vec<&str> = std::iter::once("fake")
        .chain(outcomes.iter().copied())
        .chain(["all"])
        .collect();
    table(out, &headers, &rows);
}

/// One row per fault: a repeated one (`every:`) as `flap ×800`, its
/// action with how often and how long (`outage, every 20ms for 10ms`),
/// from its first window's start to its last one's end.
fn faults_table(out: &mut String, report: &RunReport) {
    if report.faults.is_empty() {
        return;
    }
    out.push_str("<h3>Fault windows</h3>\n");
    let time = |us: u64| duration(Duration::from_micros(us));
    let rows: Vec<Vec<Cell>> = fault_spans::repeats(&report.faults)
        .iter()
        .map(|fault| {
            let first = fault.first;
            let (label, action) = if fault.count == 1 {
                (first.label.clone(), first.action.clone())
            } else {
                let length = time(first.to_us.saturating_sub(first.from_us));
                let how = match fault.every_us {
                    Some(every) => format!("every {} for {length}", time(every)),
                    None => format!("repeated, first for {length}"),
                };
                (
                    format!("{} ×{}", first.label, fault.count),
                    format!("{}, {how}", first.action),
                )
            };
            vec![
                Cell::text(&label),
                Cell::text(&first.fake),
                Cell::text(&action),
                Cell::number(&time(first.from_us)),
                Cell::number(&time(fault.until_us)),
            ]
        })
        .collect();
    table(out, &["fault", "fake", "action", "from", "to"], &rows);
}

fn checks_table(out: &mut String, checks: &[CheckResult]) {
    if checks.is_empty() {
        return;
    }
    out.push_str("<h3>Checks</h3>\n<table>\n<tr><th>check</th><th>expected</th><th>observed</th><th>figures</th><th>verdict</th></tr>\n");
    for check in checks {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_text(&check.name),
            escape_text(&check.expected),
            escape_text(&check.observed),
            escape_text(&figures_text(&check.figures)),
            verdict_word(check.passed)
        );
        if let Some(detail) = check.detail.as_ref().filter(|_| !check.passed) {
            let _ = writeln!(
                out,
                "<tr><td class=\"detail\" colspan=\"5\">{}</td></tr>",
                escape_text(detail)
            );
        }
    }
    out.push_str("</table>\n");
}

/// A check's figures as one line: the window, then each measure with its
/// bound, counts, interval and p-value.
fn figures_text(figures: &Figures) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !figures.window.is_empty() {
        let spans: Vec<String> = figures
            .window
            .iter()
            .map(|span| {
                let from = duration(Duration::from_micros(span.from_us));
                match span.to_us {
                    Some(to) => format!("{from}–{}", duration(Duration::from_micros(to))),
                    None => format!("from {from}"),
                }
            })
            .collect();
        parts.push(format!("window {}", spans.join(", ")));
    }
    parts.extend(figures.measures.iter().map(measure_text));
    parts.join("; ")
}

fn measure_text(measure: &Measure) -> String {
    let rounded = |v: f64| match measure.unit.as_str() {
        "share" => percent(v),
        "us" => duration(Duration::from_micros(v.max(0.0) as u64)),
        "count" => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    };
    // A failed measure whose value reads like its bound is shown exactly,
    // so the figure says why it failed (10.04ms over a 10ms bound).
    let reads_like_a_bound = !measure.passed
        && measure.value.is_some_and(|v| {
            [measure.min, measure.max]
                .into_iter()
                .flatten()
                .any(|bound| rounded(bound) == rounded(v))
        });
    let value = |v: f64| {
        if !reads_like_a_bound {
            rounded(v)
        } else if measure.unit == "us" {
            format!("{v}µs")
        } else {
            format!("{v}")
        }
    };
    let subject = measure
        .subject
        .as_ref()
        .map(|s| format!("[{s}]"))
        .unwrap_or_default();
    let mut text = format!(
        "{}{subject} {}",
        measure.name,
        measure.value.map_or("none".to_owned(), value)
    );
    if let Some(expected) = measure.expected {
        let _ = write!(text, " (expected {})", value(expected));
    }
    match (measure.min, measure.max) {
        (Some(min), Some(max)) => {
            let _ = write!(text, " (bound {}–{})", value(min), value(max));
        }
        (Some(min), None) => {
            let _ = write!(text, " (bound ≥ {})", value(min));
        }
        (None, Some(max)) => {
            let _ = write!(text, " (bound ≤ {})", value(max));
        }
        (None, None) => {}
    }
    if let (Some(n), Some(total)) = (measure.count, measure.total) {
        let _ = write!(text, ", {n} of {total}");
    }
    if let Some(interval) = &measure.interval {
        let confidence = measure
            .confidence
            .map(|c| format!(" at {}", percent(c)))
            .unwrap_or_default();
        let _ = write!(
            text,
            ", interval {}–{}{confidence}",
            value(interval.low),
            value(interval.high)
        );
    }
    if let Some(p) = measure.p_value {
        let _ = write!(text, ", p = {}", p_value(p));
    }
    text
}

/// A table cell's content, already escaped, and how it is aligned.
struct Cell {
    html: String,
    number: bool,
}

impl Cell {
    fn text(text: &str) -> Self {
        Self {
            html: escape_text(text),
            number: false,
        }
    }

    fn number(text: &str) -> Self {
        Self {
            html: escape_text(text),
            number: true,
        }
    }

    fn code(text: &str) -> Self {
        Self {
            html: format!("<code>{}</code>", escape_text(text)),
            number: false,
        }
    }

    fn verdict(passed: bool) -> Self {
        Self {
            html: verdict_word(passed).to_owned(),
            number: false,
        }
    }
}

fn table(out: &mut String, headers: &[&str], rows: &[Vec<Cell>]) {
    out.push_str("<table>\n<tr>");
    for header in headers {
        let _ = write!(out, "<th>{}</th>", escape_text(header));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if cell.number { " class=\"num\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", cell.html);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The big PASS or FAIL of a header.
fn badge(passed: bool) -> String {
    let class = if passed { "pass" } else { "fail" };
    format!(
        "<div class=\"badge {class}\">{}</div>",
        plain_verdict(passed)
    )
}

fn plain_verdict(passed: bool) -> &'static str {
    if passed { "PASS" } else { "FAIL" }
}

/// PASS or FAIL in a table or a list, marked by colour as well as word.
fn verdict_word(passed: bool) -> &'static str {
    if passed {
        r#"<span class="verdict pass">PASS</span>"#
    } else {
        r#"<span class="verdict fail">FAIL</span>"#
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::figures::{Interval, Span};
    use crate::report::PhaseRow;
    use crate::report::timeline::{
        BackendSample, BackendState, Bucket, EndpointState, FaultSpan, Timeline,
    };
    use crate::sim::sweep::CheckTally;

    /// The fake `files-a` (one of the two replicas of backend `files`) is
    /// down from 5 s to 9 s: calls fail until outlier detection ejects it
    /// at 5.6 s and traffic moves to `files-b`, until it returns at 11 s.
    /// The fake `search` answers `-32603` from 12 s to 15 s: its breaker
    /// opens at 12.5 s (calls refused `-32014`), half-opens at 15 s and
    /// closes at 15.5 s. 200 calls/s for 20 s, 150 to files, 50 to search.
    pub(crate) fn outage_run() -> RunReport {
        let buckets = (0..200u64).map(outage_bucket).collect();
        let backends = (0..40u64)
            .map(|n| {
                let ms = n * 500;
                let files_a_ejected = (5_600..11_000).contains(&ms);
                let breaker = match ms {
                    12_500..15_000 => "open",
                    15_000..15_500 => "half_open",
                    _ => "closed",
                };
                BackendSample {
                    at_us: ms * 1_000,
                    backends: vec![
                        BackendState {
                            name: "files".into(),
                            state: "connected".into(),
                            breaker: None,
                            in_flight: 2,
                            endpoints: vec![
                                endpoint("http://files-a/mcp", files_a_ejected),
                                endpoint("http://files-b/mcp", false),
                            ],
                        },
                        BackendState {
                            name: "search".into(),
                            state: "connected".into(),
                            breaker: Some(breaker.into()),
                            in_flight: 1,
                            endpoints: vec![endpoint("stdio:search", false)],
                        },
                    ],
                }
            })
            .collect();
        let mut report = crate::report::tests::sample();
        report.replay = "mcp-harness run --sim --seed 7 scenarios/outage.yaml".into();
        report.duration = Duration::from_millis(20_400);
        report.calls = 4_000;
        report.faults = vec![
            fault("files-down", "files-a", "outage", 5_000, 9_000),
            fault("search-errors", "search", "errors", 12_000, 15_000),
        ];
        report.timeline = Timeline {
            bucket_us: 100_000,
            buckets,
        };
        report.backends = backends;
        report.phases = [
            ("before files-down", 0, 5_000, 1_000, 0),
            ("during files-down", 5_000, 9_000, 800, 36),
            ("after files-down", 9_000, 20_000, 2_200, 150),
            ("whole run", 0, 20_000, 4_000, 186),
        ]
        .into_iter()
        .map(|(label, from, to, calls, errors)| phase(label, from, to, calls, errors))
        .collect();
        report.checks = vec![
            check(
                "few errors while files-a is down",
                true,
                "error rate ≤ 10.0%",
                "4.5% (36 of 800)",
                None,
            ),
            check(
                "search fails fast once its breaker opens",
                false,
                "p99 ≤ 50ms",
                "p99 1.2s",
                Some("12 calls waited for the per-try timeout"),
            ),
        ];
        report.checks[0].figures = Figures {
            window: vec![Span {
                from_us: 5_000_000,
                to_us: Some(9_000_000),
            }],
            measures: vec![Measure {
                name: "error_rate".into(),
                unit: "share".into(),
                value: Some(0.045),
                max: Some(0.1),
                count: Some(36),
                total: Some(800),
                interval: Some(Interval {
                    low: 0.031,
                    high: 0.062,
                }),
                confidence: Some(0.99),
                passed: true,
                ..Measure::default()
            }],
        };
        report.checks[1].figures = Figures {
            window: vec![Span {
                from_us: 12_000_000,
                to_us: None,
            }],
            measures: vec![Measure {
                name: "p99".into(),
                unit: "us".into(),
                value: Some(1_200_000.0),
                max: Some(50_000.0),
                passed: false,
                ..Measure::default()
            }],
        };
        report
    }

    fn outage_bucket(n: u64) -> Bucket {
        let ms = n * 100;
        let mut errors = BTreeMap::new();
        let mut files_a = BTreeMap::new();
        let mut files_b = BTreeMap::new();
        let mut search = BTreeMap::new();
        let (mut p50, mut p99) = (2_000, 8_000);
        match ms {
            5_000..5_600 => {
                errors.insert("-32011".to_owned(), 6);
                files_a.insert("outage".to_owned(), 8);
                files_b.insert("success".to_owned(), 7);
                p99 = 2_000_000;
            }
            5_600..11_000 => {
                files_b.insert("success".to_owned(), 15);
            }
            _ => {
                files_a.insert("success".to_owned(), 8);
                files_b.insert("success".to_owned(), 7);
            }
        }
        match ms {
            12_000..12_500 => {
                errors.insert("-32603".to_owned(), 5);
                search.insert("jsonrpc_error".to_owned(), 5);
                p99 = 30_000;
            }
            12_500..15_000 => {
                errors.insert("-32014".to_owned(), 5);
                p50 = 1_000;
            }
            15_000..15_500 => {
                errors.insert("-32014".to_owned(), 4);
                search.insert("success".to_owned(), 1);
            }
            _ => {
                search.insert("success".to_owned(), 5);
            }
        }
        let failed: u64 = errors.values().sum();
        let fakes = [
            ("files-a", files_a),
            ("files-b", files_b),
            ("search", search),
        ]
        .into_iter()
        .filter(|(_, outcomes)| !outcomes.is_empty())
        .map(|(name, outcomes)| (name.to_owned(), outcomes))
        .collect();
        Bucket {
            at_us: ms * 1_000,
            started: 20,
            answered: 20,
            succeeded: 20 - failed,
            errors,
            p50_us: Some(p50),
            p99_us: Some(p99),
            failed_p50_us: (failed > 0).then_some(p50 / 4),
            fakes,
        }
    }

    fn endpoint(url: &str, ejected: bool) -> EndpointState {
        EndpointState {
            endpoint: url.into(),
            state: "connected".into(),
            ejected,
        }
    }

    fn fault(label: &str, fake: &str, action: &str, from_ms: u64, to_ms: u64) -> FaultSpan {
        FaultSpan {
            label: label.into(),
            fake: fake.into(),
            action: action.into(),
            from_us: from_ms * 1_000,
            to_us: to_ms * 1_000,
        }
    }

    fn phase(label: &str, from_ms: u64, to_ms: u64, calls: u64, errors: u64) -> PhaseRow {
        PhaseRow {
            label: label.into(),
            from: Duration::from_millis(from_ms),
            to: Duration::from_millis(to_ms),
            calls,
            errors,
            error_rate: errors as f64 / calls as f64,
            p50: Duration::from_millis(2),
            p99: Duration::from_millis(8),
            max: Duration::from_millis(2_100),
        }
    }

    fn check(
        name: &str,
        passed: bool,
        expected: &str,
        observed: &str,
        detail: Option<&str>,
    ) -> CheckResult {
        crate::checks::Verdict {
            expected: expected.into(),
            observed: observed.into(),
            passed,
            detail: detail.map(Into::into),
            figures: crate::checks::figures::Figures::default(),
        }
        .named(name.into(), "threshold", Some(30))
    }

    #[test]
    fn a_measure_names_its_way_and_a_failure_never_reads_like_its_bound() {
        let share = Measure {
            name: "share".into(),
            unit: "share".into(),
            value: Some(0.52),
            subject: Some("a".into()),
            expected: Some(0.5),
            passed: true,
            ..Measure::default()
        };
        assert_eq!(measure_text(&share), "share[a] 52.0% (expected 50.0%)");
        let over = Measure {
            name: "p99".into(),
            unit: "us".into(),
            value: Some(10_040.0),
            max: Some(10_000.0),
            passed: false,
            ..Measure::default()
        };
        assert_eq!(measure_text(&over), "p99 10040µs (bound ≤ 10000µs)");
        let under = Measure {
            passed: true,
            value: Some(9_960.0),
            ..over
        };
        assert_eq!(measure_text(&under), "p99 10ms (bound ≤ 10ms)");
    }

    fn parse(html: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(html, options)
            .unwrap_or_else(|e| panic!("not well-formed: {e}\n{html}"))
    }

    /// All the text below `node`, as a reader sees it.
    fn text_of(node: roxmltree::Node<'_, '_>) -> String {
        node.descendants()
            .filter(roxmltree::Node::is_text)
            .filter_map(|n| n.text())
            .collect()
    }

    fn elements<'a, 'i>(
        document: &'a roxmltree::Document<'i>,
        name: &'a str,
    ) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
        document
            .descendants()
            .filter(move |n| n.tag_name().name() == name)
    }

    /// The page's table rows as the text of their cells.
    fn rows(document: &roxmltree::Document<'_>) -> Vec<Vec<String>> {
        elements(document, "tr")
            .map(|tr| {
                tr.children()
                    .filter(|c| c.is_element())
                    .map(text_of)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_page_parses_and_draws_the_timeline_charts() {
        let html = render(&[outage_run()]);
        let document = parse(&html);
        let headings: Vec<String> = elements(&document, "h3").map(text_of).collect();
        for title in [
            "Client calls and errors",
            "Latency",
            "Requests each fake received (tools/call)",
            "Backends as the proxy saw them (/admin/backends)",
            "Fault windows",
            "Phases",
            "Checks",
            "Replay",
        ] {
            assert!(headings.iter().any(|h| h == title), "{title}: {headings:?}");
        }
        assert_eq!(elements(&document, "svg").count(), 4);
        let legends: Vec<String> = elements(&document, "ul")
            .filter(|ul| ul.attribute("class") == Some("legend"))
            .map(text_of)
            .collect();
        assert!(legends[0].contains("calls sent"), "{legends:?}");
        assert!(
            legends[0].contains("failed / s, by when answered: -32011"),
            "{legends:?}"
        );
        assert!(legends[2].contains("files-b: all requests"), "{legends:?}");
        assert!(legends[3].contains("breaker open"), "{legends:?}");
        let title = elements(&document, "title").map(text_of).next();
        assert_eq!(title.as_deref(), Some("outage: FAIL"));
    }

    #[test]
    fn every_phase_fault_and_check_is_on_the_page_with_its_verdict() {
        let report = outage_run();
        let html = render(std::slice::from_ref(&report));
        let document = parse(&html);
        let rows = rows(&document);
        let row = |first: &str| {
            rows.iter()
                .find(|r| r.first().is_some_and(|c| c == first))
                .unwrap_or_else(|| panic!("no row {first:?} in {rows:?}"))
        };
        for phase in &report.phases {
            assert_eq!(row(&phase.label).len(), 9);
        }
        for fault in &report.faults {
            assert_eq!(row(&fault.label)[1], fault.fake);
        }
        assert_eq!(
            row("fake"),
            &["fake", "jsonrpc_error", "outage", "success", "all"]
        );
        assert_eq!(row("files-a"), &["files-a", "0", "48", "1120", "1168"]);
        let page = text_of(document.root());
        for fault in &report.faults {
            assert!(
                page.matches(&fault.label).count() >= 2,
                "named in the chart and the table: {}",
                fault.label
            );
        }
        for check in &report.checks {
            let cells = row(&check.name);
            let verdict = if check.passed { "PASS" } else { "FAIL" };
            assert_eq!(
                cells[1..],
                [
                    check.expected.clone(),
                    check.observed.clone(),
                    figures_text(&check.figures),
                    verdict.to_owned()
                ]
            );
        }
        assert_eq!(
            figures_text(&report.checks[0].figures),
            "window 5s–9s; error_rate 4.5% (bound ≤ 10.0%), 36 of 800, interval 3.1%–6.2% at 99.0%"
        );
        assert_eq!(
            figures_text(&report.checks[1].figures),
            "window from 12s; p99 1.2s (bound ≤ 50ms)"
        );
        assert!(
            rows.iter()
                .any(|r| r == &["12 calls waited for the per-try timeout".to_owned()]),
            "the failure's detail"
        );
        let code: Vec<String> = elements(&document, "code").map(text_of).collect();
        assert_eq!(code, std::slice::from_ref(&report.replay));
        assert!(page.contains("Seed 7."), "{page}");
    }

    #[test]
    fn hostile_names_are_escaped() {
        let mut report = outage_run();
        report.scenario = "<script>alert(1)</script>".into();
        report.checks[0].name = "a & b <img src=x>".into();
        report.checks[1].detail = Some("gateway said \u{1b}[2J\u{1}".into());
        report.faults[0].label = "</svg><script>\u{1}".into();
        report.error = Some("backend said \"<b>no</b>\"".into());
        for sample in &mut report.backends {
            sample.backends[0].name = "<b>files</b>\u{1}\u{7f}".into();
        }
        for bucket in &mut report.timeline.buckets {
            if let Some(outcomes) = bucket.fakes.remove("files-a") {
                let outcomes = outcomes
                    .into_iter()
                    .map(|(outcome, n)| (format!("<img>{outcome}\u{1b}"), n))
                    .collect();
                bucket.fakes.insert("<b>files-a</b>\u{1}".into(), outcomes);
            }
            if let Some(n) = bucket.errors.remove("-32011") {
                bucket.errors.insert("<b>-32011</b>\u{85}".into(), n);
            }
        }
        let html = render(&[report.clone(), outage_run()]);
        let document = parse(&html);
        for tag in ["script", "img", "b"] {
            assert_eq!(elements(&document, tag).count(), 0, "<{tag}> got through");
        }
        let page = text_of(document.root());
        for control in ['\u{1}', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert!(!html.contains(control), "{control:?} on the page");
        }
        for text in [
            report.scenario.as_str(),
            report.checks[0].name.as_str(),
            "</svg><script>\u{FFFD}",
            "<b>files</b>\u{FFFD}\u{FFFD}",
            "<b>files-a</b>\u{FFFD}",
            "<img>outage\u{FFFD}",
            "<b>-32011</b>\u{FFFD}",
            "gateway said \u{FFFD}[2J\u{FFFD}",
            "backend said \"<b>no</b>\"",
        ] {
            assert!(page.contains(text), "{text} shown as text");
        }
        let headers: Vec<String> = elements(&document, "th").map(text_of).collect();
        assert!(
            headers.iter().any(|h| h == "<img>outage\u{FFFD}"),
            "{headers:?}"
        );
    }

    #[test]
    fn a_fault_repeated_800_times_is_one_row_and_named_once() {
        let mut report = outage_run();
        report.faults = (0..800)
            .map(|n| fault("flap", "files-a", "outage", n * 20, n * 20 + 10))
            .chain([fault("search-errors", "search", "errors", 12_000, 15_000)])
            .collect();
        let html = render(std::slice::from_ref(&report));
        let document = parse(&html);
        let rows = rows(&document);
        let faults: Vec<&Vec<String>> = rows
            .iter()
            .filter(|r| {
                r.get(1)
                    .is_some_and(|fake| fake == "files-a" || fake == "search")
            })
            .filter(|r| r.len() == 5)
            .collect();
        assert_eq!(
            faults,
            [
                &vec![
                    "flap ×800".to_owned(),
                    "files-a".into(),
                    "outage, every 20ms for 10ms".into(),
                    "0s".into(),
                    "15.99s".into()
                ],
                &vec![
                    "search-errors".to_owned(),
                    "search".into(),
                    "errors".into(),
                    "12s".into(),
                    "15s".into()
                ]
            ]
        );
        let traffic = elements(&document, "svg").next().unwrap();
        let names: Vec<String> = traffic
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .map(text_of)
            .map(|t| t.trim().to_owned())
            .filter(|t| t == "flap" || t == "search-errors")
            .collect();
        assert_eq!(names, ["flap", "search-errors"], "each named once");
    }

    #[test]
    fn nothing_is_fetched_from_the_network() {
        let html = render(&[outage_run()]);
        let document = parse(&html);
        for tag in ["script", "link", "img", "iframe", "object", "embed"] {
            assert_eq!(elements(&document, tag).count(), 0, "<{tag}>");
        }
        for node in document.descendants() {
            for attribute in node.attributes() {
                if matches!(attribute.name(), "src" | "href") {
                    assert!(
                        attribute.value().starts_with('#'),
                        "a link out of the page: {attribute:?}"
                    );
                }
            }
        }
        assert!(!html.contains("url("), "no CSS resources");
        assert!(!html.contains("@import"));
    }

    #[test]
    fn a_chart_without_data_leaves_a_note_and_the_shade_key_matches_the_shade() {
        let mut report = outage_run();
        report.backends.clear();
        report.mode = crate::run::ProxyMode::TargetCmd(crate::run::TargetCmd {
            url: "http://127.0.0.1:1/mcp".into(),
            command: "gw".into(),
            config_template: None,
            log: None,
        })
        .describe();
        let html = render(&[report]);
        let document = parse(&html);
        let notes: Vec<String> = elements(&document, "p")
            .filter(|p| p.attribute("class") == Some("note"))
            .map(text_of)
            .collect();
        assert_eq!(
            notes,
            ["No /admin/backends samples: the proxy is not ours (--target)."]
        );
        // The key's swatch is the colour one shaded window has on white.
        let shade = elements(&document, "rect")
            .find(|r| r.attribute("opacity") == Some("0.55"))
            .unwrap();
        let fill = shade.attribute("fill").unwrap();
        let channel = |i: usize| u8::from_str_radix(&fill[1 + 2 * i..3 + 2 * i], 16).unwrap();
        let on_white: String = (0..3)
            .map(|i| {
                let c = f64::from(channel(i)) * 0.55 + 255.0 * 0.45;
                format!("{:02x}", c.round() as u8)
            })
            .collect();
        let swatch = elements(&document, "li")
            .find(|li| text_of(*li) == "fault window")
            .and_then(|li| li.first_element_child())
            .and_then(|span| span.attribute("style"))
            .unwrap();
        assert_eq!(swatch, format!("background: #{on_white}"));
    }

    #[test]
    fn a_run_without_a_timeline_or_checks_still_makes_a_page() {
        let mut report = crate::report::tests::sample();
        report.checks.clear();
        report.error = Some("fake files did not start".into());
        let html = render(&[report]);
        let document = parse(&html);
        let page = text_of(document.root());
        assert!(page.contains("No timeline was recorded for this run."));
        assert!(page.contains("No replay command was recorded."));
        assert!(page.contains("Harness error: fake files did not start"));
        assert_eq!(elements(&document, "svg").count(), 0);
    }

    #[test]
    fn several_runs_get_an_index_with_their_verdicts() {
        let mut passing = outage_run();
        passing.scenario = "canary".into();
        passing.checks.pop();
        let html = render(&[passing, outage_run()]);
        let document = parse(&html);
        let index: Vec<String> = elements(&document, "li")
            .filter(|li| li.children().any(|c| c.tag_name().name() == "a"))
            .map(text_of)
            .collect();
        assert_eq!(index, ["canary PASS", "outage FAIL"]);
        let h1: Vec<String> = elements(&document, "h1").map(text_of).collect();
        assert_eq!(h1, ["1 of 2 scenarios passed"]);
    }

    #[test]
    fn the_sweep_page_names_each_checks_failing_seeds_and_replay() {
        let sweep = Sweep {
            file: "scenarios/canary.yaml".into(),
            seeds: 1..10,
            checks: vec![
                CheckTally {
                    name: "split ≈ 10 %".into(),
                    failed: 2,
                    first_failure: Some(4),
                },
                CheckTally {
                    name: "no errors".into(),
                    failed: 0,
                    first_failure: None,
                },
            ],
            errors: BTreeMap::from([(6, "stuck <here>".into())]),
        };
        let html = render_sweeps(&[sweep]);
        let document = parse(&html);
        let rows = rows(&document);
        assert_eq!(
            rows[1],
            [
                "split ≈ 10 %",
                "2 of 8",
                "4",
                "mcp-harness run --sim --seed 4 scenarios/canary.yaml",
                "FAIL"
            ]
        );
        assert_eq!(rows[2], ["no errors", "0 of 8", "", "", "PASS"]);
        let page = text_of(document.root());
        assert!(page.contains("seed 6: stuck <here>"), "{page}");
        assert!(
            page.contains("seeds 1..10 (9 runs, 1 stopped by a harness error)"),
            "{page}"
        );
    }

    /// Not a test: writes the fixture's page for a person to look at,
    /// `HTML_FIXTURE=/tmp/outage.html cargo test -p mcp-harness --lib
    /// html -- --ignored` (to /tmp/outage.html without `HTML_FIXTURE`).
    #[test]
    #[ignore = "writes a page to look at; asserts nothing"]
    fn the_fixture_page_can_be_written_to_look_at() {
        let path = std::env::var_os("HTML_FIXTURE").unwrap_or_else(|| "/tmp/outage.html".into());
        write(Path::new(&path), &[outage_run()]).unwrap();
    }
}
