//! The numbers behind a check's verdict, as fields a script can read: the
//! window judged, and each quantity measured with its bound, counts,
//! interval and p-value. The check's `expected` and `observed` texts say
//! the same for people.
//!
//! Every kind of check speaks one vocabulary of [`Measure`] names and
//! units, listed in its docs, so that a script reads `error_rate` or `p99`
//! the same way whichever check measured it.

use std::ops::Range;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::whole_micros as micros;
use crate::scenario::Window;

/// The unit of a share (0..=1).
pub const SHARE: &str = "share";
/// The unit of a duration, in microseconds.
pub const MICROS: &str = "us";
/// The unit of a number of things.
pub const COUNT: &str = "count";
/// The unit of a test statistic.
pub const STATISTIC: &str = "statistic";

/// What a check measured and against what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Figures {
    /// The stretches of the run it judged, in microseconds from scenario start.
    pub window: Vec<Span>,
    /// Each quantity it measured, with its bound.
    pub measures: Vec<Measure>,
}

impl Figures {
    /// The figures of a check over `window`, measuring `measures`.
    pub fn over(window: &Window, measures: Vec<Measure>) -> Self {
        Self {
            window: window.ranges.iter().map(Span::of).collect(),
            measures,
        }
    }

    /// The figures of a check over the whole run (accounting).
    pub fn whole_run(measures: Vec<Measure>) -> Self {
        Self {
            window: vec![Span::of(&(Duration::ZERO..Duration::MAX))],
            measures,
        }
    }
}

/// A stretch of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Span {
    /// Its start, in microseconds from scenario start.
    pub from_us: u64,
    /// Its end (exclusive); `None` for "to the end of the run".
    pub to_us: Option<u64>,
}

impl Span {
    /// A window's range as a span; an open end (`Duration::MAX`) has no `to_us`.
    pub fn of(range: &Range<Duration>) -> Self {
        Self {
            from_us: micros(range.start),
            to_us: (range.end != Duration::MAX).then(|| micros(range.end)),
        }
    }
}

/// One measured quantity.
///
/// The names, by kind of check (a name means the same wherever it shows):
///
/// - `calls` (`count`): the client calls (threshold, errors) or fake
///   requests (ratio) a check selected, with `min` the fewest it needs.
/// - `error_rate` (`share`): of those calls, the share that did not
///   succeed; `count` failed of `total`. A threshold bounds it with `max`,
///   an errors check with `min`.
/// - `p50`, `p99`, `p99.9`, `max`, ... (`us`): a latency percentile as the
///   threshold names it, bounded by `max`.
/// - `unlike_expected` (`count`): failures not of the code or message an
///   errors check asks for, of `total` failures; `max` 0.
/// - `requests` (`count`): fake requests a count check counted, within
///   `min`..=`max`.
/// - `requests_per_call` (`count`): the most requests any one client call
///   made (count with `per_call`), `total` calls seen, `max` the bound.
/// - `share` (`share`): of a ratio's requests, the share its `subject` fake
///   received, `count` of `total`, `expected` the share asked for; with two
///   ways, for the first: the Wilson `interval` that must hold `expected`,
///   the score test's `p_value`, at `confidence`.
/// - `chi_square` (`statistic`): a ratio of three or more ways, Pearson's
///   statistic over `total` requests, its `p_value` (the check fails when
///   it is below `1 − confidence`). Each way's `share` follows it.
/// - `first_after` (`us`): a timing check's delay from its reference to the
///   first awaited answer, bounded by `max`; no value if none came.
/// - Accounting: `duplicate_answers`, `mismatched_answers`, `hung_calls`,
///   `session_errors`, `proxy_exits`, `differing_runs` (`count`, `max` 0;
///   `total` the calls, answers or runs they are of) and `missed_slots`
///   (`share` of `total` open-loop slots, `count` missed, bounded by `max`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measure {
    /// What it is: `error_rate`, `p99`, `calls`, `share`, `chi_square`, ...
    pub name: String,
    /// What it is of, when the name alone does not say: a ratio's fake.
    #[serde(default)]
    pub subject: Option<String>,
    /// Its unit: `share` (0..=1), `us`, `count` or `statistic`.
    pub unit: String,
    /// The value observed; `None` when there was nothing to measure.
    pub value: Option<f64>,
    /// The least value allowed, if bounded below.
    pub min: Option<f64>,
    /// The largest value allowed, if bounded above.
    pub max: Option<f64>,
    /// The value expected, when the check compares with one (a ratio's share).
    #[serde(default)]
    pub expected: Option<f64>,
    /// The events counted (the numerator of a share).
    pub count: Option<u64>,
    /// Out of how many (the sample judged).
    pub total: Option<u64>,
    /// A confidence interval around `value`.
    pub interval: Option<Interval>,
    /// The p-value of a statistical test.
    pub p_value: Option<f64>,
    /// The confidence the check was judged at.
    pub confidence: Option<f64>,
    /// Whether this quantity met its bound; for the shares of a chi-square
    /// test, which are judged together, whether the test held. A quantity
    /// with nothing measured (`value` `None`) did not, nor does any of a
    /// check that cannot be judged against its target.
    pub passed: bool,
}

impl Measure {
    /// A number of things, within `min..=max`.
    pub fn count(name: &str, value: u64, min: Option<u64>, max: Option<u64>) -> Self {
        Self {
            name: name.to_owned(),
            unit: COUNT.to_owned(),
            value: Some(value as f64),
            min: min.map(|m| m as f64),
            max: max.map(|m| m as f64),
            passed: min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m),
            ..Self::default()
        }
    }

    /// The share `count / total` (no value without a total), within `min..=max`.
    pub fn share(name: &str, count: u64, total: u64, min: Option<f64>, max: Option<f64>) -> Self {
        let value = (total > 0).then(|| count as f64 / total as f64);
        Self {
            name: name.to_owned(),
            unit: SHARE.to_owned(),
            value,
            min,
            max,
            count: Some(count),
            total: Some(total),
            passed: value.is_some_and(|v| min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)),
            ..Self::default()
        }
    }

    /// A duration (none measured: `None`), at most `max`. Both are exact
    /// microseconds, fractions kept, so the numbers say what `passed`
    /// decided: a value equal to its max passed, one a nanosecond over it
    /// shows as over.
    pub fn duration(name: &str, value: Option<Duration>, max: Duration) -> Self {
        Self {
            name: name.to_owned(),
            unit: MICROS.to_owned(),
            value: value.map(exact_micros),
            max: Some(exact_micros(max)),
            passed: value.is_some_and(|v| v <= max),
            ..Self::default()
        }
    }
}

/// `duration` in microseconds, with its fraction.
fn exact_micros(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1_000.0
}

/// A confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;

    #[test]
    fn a_window_becomes_spans_and_an_open_end_has_no_end() {
        let figures = Figures::over(&window("x", &[(1_000, 2_000)]), Vec::new());
        assert_eq!(
            figures.window,
            [Span {
                from_us: 1_000_000,
                to_us: Some(2_000_000)
            }]
        );
        assert_eq!(
            Figures::whole_run(Vec::new()).window,
            [Span {
                from_us: 0,
                to_us: None
            }]
        );
    }

    #[test]
    fn measures_judge_their_own_bounds() {
        assert!(Measure::count("requests", 3, Some(3), Some(3)).passed);
        assert!(!Measure::count("requests", 4, None, Some(3)).passed);
        let share = Measure::share("error_rate", 1, 4, None, Some(0.25));
        assert_eq!((share.value, share.passed), (Some(0.25), true));
        // Nothing to measure never passes.
        assert!(!Measure::share("error_rate", 0, 0, None, Some(1.0)).passed);
        assert!(!Measure::duration("first_after", None, ms(10)).passed);
        let d = Measure::duration("p99", Some(ms(11)), ms(10));
        assert_eq!(
            (d.value, d.max, d.passed),
            (Some(11_000.0), Some(10_000.0), false)
        );
        // Under a microsecond over its max: the value shows it over.
        let over = Measure::duration("p99", Some(ms(10) + Duration::from_nanos(400)), ms(10));
        assert_eq!((over.value, over.passed), (Some(10_000.4), false));
        let at = Measure::duration("p99", Some(ms(10)), ms(10));
        assert_eq!((at.value, at.passed), (Some(10_000.0), true));
    }
}
