//! Statistics over a run: latency summaries of client calls and the
//! statistical tests behind the `ratio` check.
//!
//! Kept apart from the checks so that the arithmetic can be tested against
//! known values on its own, and so that reports and checks summarise
//! latency the same way.

pub mod interval;
pub mod latency;

pub use interval::{ChiSquare, ChiSquareError, binomial_score_p_value, chi_square, wilson};
pub use latency::LatencySummary;
