//! The numbers behind a check's verdict, as fields a script can read: the
//! window judged, and each quantity measured with its bound, counts,
//! interval and p-value. The check's `expected` and `observed` texts say
//! the same for people.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a check measured and against what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Figures {
    /// The stretches of the run it judged, in microseconds from scenario start.
    pub window: Vec<Span>,
    /// Each quantity it measured, with its bound.
    pub measures: Vec<Measure>,
}

/// A stretch of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Span {
    /// Its start, in microseconds from scenario start.
    pub from_us: u64,
    /// Its end (exclusive); `None` for "to the end of the run".
    pub to_us: Option<u64>,
}

/// One measured quantity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measure {
    /// What it is: `error_rate`, `p99`, `calls`, `share`, `chi_square`, ...
    pub name: String,
    /// Its unit: `share` (0..=1), `us`, `count` or `statistic`.
    pub unit: String,
    /// The value observed; `None` when there was nothing to measure.
    pub value: Option<f64>,
    /// The least value allowed, if bounded below.
    pub min: Option<f64>,
    /// The largest value allowed, if bounded above.
    pub max: Option<f64>,
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
    /// Whether this quantity met its bound.
    pub passed: bool,
}

/// A confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}
