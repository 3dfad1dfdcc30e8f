//! Short human text for the numbers in reports and check results: durations
//! (`850µs`, `12.3ms`, `1.5s`), percentages (`0.0%`, `99.99%`) and p-values.
//!
//! Checks write their expected and observed texts with these, and the
//! report tables use them too, so a bound and a measurement read alike;
//! the phase table's cells are written here once for the terminal and
//! the HTML page.

use std::time::Duration;

use super::PhaseRow;

/// The phase table's column titles.
pub const PHASE_COLUMNS: [&str; 9] = [
    "phase",
    "from",
    "to",
    "calls",
    "errors",
    "error rate",
    "p50",
    "p99",
    "max",
];

/// One row of the phase table, under [`PHASE_COLUMNS`].
pub fn phase_cells(phase: &PhaseRow) -> [String; 9] {
    [
        phase.label.clone(),
        duration(phase.from),
        duration(phase.to),
        phase.calls.to_string(),
        phase.errors.to_string(),
        percent(phase.error_rate),
        duration(phase.p50),
        duration(phase.p99),
        duration(phase.max),
    ]
}

/// A duration in the largest unit that keeps it readable: `0s`, `850µs`,
/// `12.3ms`, `250ms`, `1.5s`, `2m30s`, `1m30.5s` (seconds keep up to two
/// decimals, in minutes too).
pub fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        "0s".to_owned()
    } else if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        trimmed(micros as f64 / 1e3, 1) + "ms"
    } else if micros < 60_000_000 {
        trimmed(micros as f64 / 1e6, 2) + "s"
    } else {
        let minutes = micros / 60_000_000;
        let rest = (micros % 60_000_000) as f64 / 1e6;
        match trimmed(rest, 2).as_str() {
            "0" => format!("{minutes}m"),
            // 59.999s rounds up to a whole minute.
            "60" => format!("{}m", minutes + 1),
            seconds => format!("{minutes}m{seconds}s"),
        }
    }
}

/// A share (0..=1) as a percentage with one decimal, or more when the value
/// is exactly representable with up to four (`99.99%`, `6.25%`), or when
/// one decimal would show a non-zero share as `0.0%`.
pub fn percent(share: f64) -> String {
    if !share.is_finite() {
        return format!("{share}");
    }
    let pct = share * 100.0;
    for decimals in 1..=4 {
        let text = format!("{pct:.decimals$}");
        if text
            .parse::<f64>()
            .is_ok_and(|v| (v - pct).abs() <= 1e-9 * pct.abs().max(1.0))
        {
            return text + "%";
        }
    }
    if pct > 0.0 && pct < 0.05 {
        // Two significant digits for a small, non-zero share.
        let decimals = (1 - pct.log10().floor() as i64).clamp(2, 12) as usize;
        return format!("{pct:.decimals$}%");
    }
    format!("{pct:.1}%")
}

/// A p-value: three decimals, or scientific notation below 0.001.
pub fn p_value(p: f64) -> String {
    if p == 0.0 || p >= 0.001 || !p.is_finite() {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// `n` and a noun, plural unless `n` is 1: `1 call`, `3 hung calls`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `value` with at most `decimals` decimals, trailing zeros dropped.
fn trimmed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_a_fitting_unit() {
        let ms = Duration::from_millis;
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(duration(ms(250)), "250ms");
        assert_eq!(duration(ms(1500)), "1.5s");
        assert_eq!(duration(ms(2000)), "2s");
        assert_eq!(duration(ms(12_345)), "12.35s");
        assert_eq!(duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(duration(Duration::from_secs(3600)), "60m");
        assert_eq!(duration(ms(90_500)), "1m30.5s");
        assert_eq!(duration(ms(60_001)), "1m");
        assert_eq!(duration(ms(119_999)), "2m");
    }

    #[test]
    fn percentages_keep_what_matters() {
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(percent(0.01), "1.0%");
        assert_eq!(percent(0.9999), "99.99%");
        assert_eq!(percent(0.0625), "6.25%");
        assert_eq!(percent(1.0 / 3.0), "33.3%");
        assert_eq!(percent(157.0 / 300.0), "52.3%");
        assert_eq!(percent(1.0 / 30_000.0), "0.0033%");
        assert_eq!(percent(1.0), "100.0%");
    }

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(1, "call"), "1 call");
        assert_eq!(count(0, "hung call"), "0 hung calls");
        assert_eq!(count(2, "session error"), "2 session errors");
    }

    #[test]
    fn p_values_stay_readable_when_tiny() {
        assert_eq!(p_value(0.4213), "0.421");
        assert_eq!(p_value(0.00002), "2.0e-5");
        assert_eq!(p_value(0.0), "0.000");
        assert_eq!(p_value(1.0), "1.000");
    }
}
