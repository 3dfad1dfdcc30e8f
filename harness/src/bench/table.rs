//! The bench's tables: one row per cell, and in a comparison one line per
//! load with each target's throughput as a share of the first target's and
//! the p50 latency it adds.

use std::fmt::Write;

use super::Measurement;

/// The header of [`row`]'s columns.
pub fn header() -> String {
    format!(
        "{:<12} {:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "target", "load", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors", "cpu/call"
    )
}

/// One cell as a table row.
pub fn row(m: &Measurement) -> String {
    let l = &m.latency_us;
    format!(
        "{:<12} {:<14} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        m.target,
        m.load.to_string(),
        m.req_per_s,
        micros(l.p50),
        micros(l.p90),
        micros(l.p99),
        micros(l.p999),
        micros(l.max),
        m.error_count(),
        m.cpu_us_per_call
            .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}µs")),
    )
}

/// Every cell, with the header, and under it each cell's failures by kind
/// and any session that could not be opened.
pub fn render(measurements: &[Measurement]) -> String {
    let mut out = header();
    out.push('\n');
    for m in measurements {
        out.push_str(&row(m));
        out.push('\n');
    }
    for m in measurements {
        for (kind, count) in &m.errors {
            let _ = writeln!(out, "  {} at {}: {count} × {kind}", m.target, m.load);
        }
        for error in &m.session_errors {
            let _ = writeln!(
                out,
                "  {} at {}: session not opened: {error}",
                m.target, m.load
            );
        }
        if m.missed_slots > 0 {
            let _ = writeln!(
                out,
                "  {} at {}: {} slots missed, warm-up included (too many in flight, or late)",
                m.target, m.load, m.missed_slots
            );
        }
    }
    out
}

/// For each load, every other target's req/s as a share of `baseline`'s
/// and the p50 latency it adds to it.
pub fn render_ratios(measurements: &[Measurement], baseline: &str) -> String {
    ratios(measurements, baseline, |_| true)
}

/// The same for `target` alone.
pub fn render_ratio_of(measurements: &[Measurement], target: &str, baseline: &str) -> String {
    ratios(measurements, baseline, |other| other == target)
}

fn ratios(measurements: &[Measurement], baseline: &str, include: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for base in measurements.iter().filter(|m| m.target == baseline) {
        for other in measurements
            .iter()
            .filter(|m| m.load == base.load && m.target != baseline && include(&m.target))
        {
            let share = if base.req_per_s > 0.0 {
                other.req_per_s / base.req_per_s
            } else {
                0.0
            };
            let added = i128::from(other.latency_us.p50) - i128::from(base.latency_us.p50);
            let _ = writeln!(
                out,
                "{} / {} at {}: {share:.2}× req/s, p50 {added:+} µs",
                other.target, baseline, base.load
            );
        }
    }
    out
}

/// Microseconds, as µs below 10 ms and ms above.
fn micros(us: u64) -> String {
    if us < 10_000 {
        format!("{us}µs")
    } else {
        format!("{:.1}ms", us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bench::{Latency, Load};

    fn measured(target: &str, load: Load, req_per_s: f64, p50: u64) -> Measurement {
        Measurement {
            target: target.into(),
            load,
            seconds: 1.0,
            successes: req_per_s as u64,
            req_per_s,
            latency_us: Latency {
                p50,
                ..Latency::default()
            },
            errors: BTreeMap::new(),
            missed_slots: 0,
            session_errors: Vec::new(),
            cpu_us_per_call: None,
        }
    }

    #[test]
    fn ratios_compare_each_target_with_the_baseline_at_the_same_load() {
        let one = Load::Closed { concurrency: 1 };
        let eight = Load::Closed { concurrency: 8 };
        let cells = [
            measured("direct", one, 10_000.0, 100),
            measured("proxy", one, 7_500.0, 160),
            measured("direct", eight, 30_000.0, 250),
            measured("proxy", eight, 21_000.0, 370),
        ];
        assert_eq!(
            render_ratios(&cells, "direct"),
            "proxy / direct at closed 1: 0.75× req/s, p50 +60 µs\n\
             proxy / direct at closed 8: 0.70× req/s, p50 +120 µs\n"
        );
    }

    #[test]
    fn one_target_can_be_compared_with_another_than_the_first() {
        let one = Load::Closed { concurrency: 1 };
        let cells = [
            measured("direct", one, 10_000.0, 100),
            measured("proxy", one, 8_000.0, 150),
            measured("loaded", one, 7_600.0, 155),
        ];
        assert_eq!(
            render_ratio_of(&cells, "loaded", "proxy"),
            "loaded / proxy at closed 1: 0.95× req/s, p50 +5 µs\n"
        );
    }

    #[test]
    fn the_table_names_every_failure_kind() {
        let mut cell = measured("proxy", Load::Closed { concurrency: 1 }, 10.0, 100);
        cell.errors.insert("rpc -32010".into(), 3);
        let table = render(&[cell]);
        assert!(
            table.contains("proxy at closed 1: 3 × rpc -32010"),
            "{table}"
        );
        assert_eq!(table.lines().count(), 3);
    }
}
