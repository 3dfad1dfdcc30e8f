//! Confidence intervals and tests for the `ratio` check.
//!
//! Calls split between fakes at random (a load balancer's choice, or the
//! harness's own seeded mix), so a ratio check must allow for chance: with
//! two ways it asks whether the expected share lies in the Wilson score
//! interval of the observed one; with more ways it runs Pearson's
//! chi-square goodness-of-fit test. The Wilson interval and the score test
//! are duals: `p0` lies inside the interval at confidence `c` exactly when
//! the score test's p-value for `p0` is at least `1 − c`.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// The two-sided standard normal quantile for `confidence`: the z with
/// P(|Z| ≤ z) = confidence. Infinite at confidence 1 and beyond, 0 at 0 and below.
fn z_for(confidence: f64) -> f64 {
    if confidence.is_nan() || confidence >= 1.0 {
        return f64::INFINITY;
    }
    if confidence <= 0.0 {
        return 0.0;
    }
    Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// The Wilson score interval `(lo, hi)` for a binomial proportion after
/// `successes` in `n` trials, at `confidence` (e.g. 0.95).
///
/// Degenerate inputs give the honest answer instead of a panic: `n = 0`
/// knows nothing and gives `(0, 1)`; `successes > n` is treated as `n`;
/// confidence ≥ 1 (or NaN) gives `(0, 1)` and ≤ 0 gives `(p̂, p̂)`.
pub fn wilson(successes: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = z_for(confidence);
    if z.is_infinite() {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    // At p̂ = 0 or 1 one bound equals p̂ in exact arithmetic; clamping
    // removes the rounding that would put it a hair outside [0, 1].
    let lo = (centre - half).clamp(0.0, p);
    let hi = (centre + half).clamp(p, 1.0);
    (lo, hi)
}

/// The two-sided p-value of the score test of H0: p = `p0`, after
/// `successes` in `n` trials (the test whose acceptance region is the
/// Wilson interval).
///
/// Degenerate inputs: `n = 0` gives 1 (no evidence); `successes > n` is
/// treated as `n`; `p0` outside [0, 1] or NaN gives 0 (impossible under any
/// data); `p0` of exactly 0 or 1 gives 1 when every trial agrees with it
/// and 0 otherwise.
pub fn binomial_score_p_value(successes: u64, n: u64, p0: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if !(0.0..=1.0).contains(&p0) {
        return 0.0;
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    if p0 == 0.0 || p0 == 1.0 {
        return if p == p0 { 1.0 } else { 0.0 };
    }
    let z = (p - p0) / (p0 * (1.0 - p0) / n_f).sqrt();
    // 2·(1 − Φ(|z|)), computed as 2·Φ(−|z|) to keep precision in the tail.
    (2.0 * Normal::standard().cdf(-z.abs())).min(1.0)
}

/// The result of a chi-square goodness-of-fit test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    /// Pearson's statistic Σ (observed − expected)² / expected.
    pub statistic: f64,
    /// Degrees of freedom: the categories with a non-zero expected share, minus one.
    pub df: u64,
    /// P(χ²(df) ≥ statistic) under H0.
    pub p_value: f64,
}

/// Why a chi-square test could not be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChiSquareError {
    /// Observed counts and expected shares differ in number.
    #[error("{observed} observed counts but {shares} expected shares")]
    LengthMismatch {
        /// Number of observed counts.
        observed: usize,
        /// Number of expected shares.
        shares: usize,
    },
    /// Fewer than two categories: nothing to compare.
    #[error("a chi-square test needs at least two categories, got {0}")]
    TooFewCategories(usize),
    /// A share is negative or not finite, or all shares are zero.
    #[error("expected shares must be finite, non-negative and not all zero")]
    InvalidShares,
}

/// Pearson's chi-square goodness-of-fit test of `observed` counts against
/// `expected_shares` (normalised by their sum, so shares rounded to sum
/// near 1 are fine).
///
/// A category with an expected share of 0 adds no degree of freedom; an
/// observation in it is impossible under H0 and gives an infinite statistic
/// and p = 0. With no observations at all there is no evidence against H0:
/// statistic 0, p = 1. When only one category has a non-zero share (df 0),
/// p is 1 if every observation is in it and 0 otherwise.
pub fn chi_square(observed: &[u64], expected_shares: &[f64]) -> Result<ChiSquare, ChiSquareError> {
    if observed.len() != expected_shares.len() {
        return Err(ChiSquareError::LengthMismatch {
            observed: observed.len(),
            shares: expected_shares.len(),
        });
    }
    if observed.len() < 2 {
        return Err(ChiSquareError::TooFewCategories(observed.len()));
    }
    if expected_shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err(ChiSquareError::InvalidShares);
    }
    let share_sum: f64 = expected_shares.iter().sum();
    if share_sum <= 0.0 || !share_sum.is_finite() {
        return Err(ChiSquareError::InvalidShares);
    }
    let positive = expected_shares.iter().filter(|s| **s > 0.0).count() as u64;
    let df = positive.saturating_sub(1);
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return Ok(ChiSquare {
            statistic: 0.0,
            df,
            p_value: 1.0,
        });
    }
    let total_f = total as f64;
    let mut statistic = 0.0;
    for (&count, &share) in observed.iter().zip(expected_shares) {
        let expected = total_f * share / share_sum;
        if expected > 0.0 {
            let diff = count as f64 - expected;
            statistic += diff * diff / expected;
        } else if count > 0 {
            statistic = f64::INFINITY;
        }
    }
    let p_value = if statistic.is_infinite() {
        0.0
    } else if df == 0 {
        // One possible category, and every observation landed in it.
        1.0
    } else {
        match ChiSquared::new(df as f64) {
            Ok(dist) => dist.sf(statistic).clamp(0.0, 1.0),
            // df ≥ 1 is always a valid parameter; should statrs refuse it,
            // claiming no evidence would be wrong, so claim the worst.
            Err(_) => 0.0,
        }
    };
    Ok(ChiSquare {
        statistic,
        df,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn near(got: (f64, f64), want: (f64, f64)) -> bool {
        (got.0 - want.0).abs() < 1e-3 && (got.1 - want.1).abs() < 1e-3
    }

    #[test]
    fn wilson_matches_known_intervals() {
        // Reference values from the closed form with z = 1.959964 (95%) and
        // z = 2.575829 (99); k = 5, n = 10 by hand: centre 0.5, half-width
        // (z / (1 + z²/10)) · √(0.025 + z²/400) = 1.41601 · 0.186021 = 0.26341.
        assert!(near(wilson(81, 263, 0.95), (0.2553, 0.3662)));
        assert!(near(wilson(0, 10, 0.95), (0.0, 0.2775)));
        assert!(near(wilson(10, 10, 0.95), (0.7225, 1.0)));
        assert!(near(wilson(5, 10, 0.95), (0.2366, 0.7634)));
        assert!(near(wilson(50, 100, 0.99), (0.3753, 0.6247)));
    }

    #[test]
    fn wilson_degenerate_inputs_do_not_panic() {
        assert_eq!(wilson(0, 0, 0.95), (0.0, 1.0));
        assert_eq!(wilson(3, 0, 0.95), (0.0, 1.0));
        assert_eq!(wilson(12, 10, 0.95), wilson(10, 10, 0.95));
        assert_eq!(wilson(3, 10, 1.0), (0.0, 1.0));
        assert_eq!(wilson(3, 10, f64::NAN), (0.0, 1.0));
        let (lo, hi) = wilson(3, 10, 0.0);
        assert!((lo - 0.3).abs() < 1e-12 && (hi - 0.3).abs() < 1e-12);
    }

    #[test]
    fn score_p_value_matches_known_values() {
        // k = 60, n = 100, p0 = 0.5: z = 0.1 / 0.05 = 2, p = 2·Φ(−2) = 0.0455.
        assert!((binomial_score_p_value(60, 100, 0.5) - 0.0455).abs() < 1e-3);
        // Observed exactly p0: no evidence at all.
        assert!((binomial_score_p_value(50, 100, 0.5) - 1.0).abs() < 1e-12);
        assert_eq!(binomial_score_p_value(0, 0, 0.5), 1.0);
        assert_eq!(binomial_score_p_value(0, 10, 0.0), 1.0);
        assert_eq!(binomial_score_p_value(1, 10, 0.0), 0.0);
        assert_eq!(binomial_score_p_value(10, 10, 1.0), 1.0);
        assert_eq!(binomial_score_p_value(3, 10, 1.5), 0.0);
        assert_eq!(binomial_score_p_value(3, 10, f64::NAN), 0.0);
    }

    #[test]
    fn chi_square_p_values_match_tables() {
        // Statistic 3.841 with df 1, and 5.991 with df 2, are the 5% critical values;
        // 6.635 with df 1 is the 1% one. Built from counts: [a, b] against [½, ½]
        // gives (a − b)² / (a + b).
        let p = |obs: &[u64], shares: &[f64]| chi_square(obs, shares).unwrap();
        // (60 − 40)² / 100 = 4.0 → p = 0.0455 (df 1).
        let r = p(&[60, 40], &[0.5, 0.5]);
        assert_eq!(r.df, 1);
        assert!((r.statistic - 4.0).abs() < 1e-12);
        assert!((r.p_value - 0.0455).abs() < 1e-3);
        // Direct statistics through the distribution the test uses.
        let sf = |x: f64, df: f64| ChiSquared::new(df).unwrap().sf(x);
        assert!((sf(3.841, 1.0) - 0.05).abs() < 1e-3);
        assert!((sf(5.991, 2.0) - 0.05).abs() < 1e-3);
        assert!((sf(6.635, 1.0) - 0.01).abs() < 1e-3);
        // df 2: sf(x) = e^(−x/2). Counts [50, 30, 20] against thirds:
        // expected 33.33 each, statistic (16.67² + 3.33² + 13.33²)/33.33 = 14.0.
        let r = p(&[50, 30, 20], &[1.0, 1.0, 1.0]);
        assert_eq!(r.df, 2);
        assert!((r.statistic - 14.0).abs() < 1e-9);
        assert!((r.p_value - (-7.0f64).exp()).abs() < 1e-9);
        // A perfect fit.
        let r = p(&[25, 25, 50], &[0.25, 0.25, 0.5]);
        assert!(r.statistic.abs() < 1e-12 && (r.p_value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn chi_square_degenerate_inputs_are_handled() {
        assert_eq!(
            chi_square(&[1, 2], &[0.5]),
            Err(ChiSquareError::LengthMismatch {
                observed: 2,
                shares: 1
            })
        );
        assert_eq!(
            chi_square(&[5], &[1.0]),
            Err(ChiSquareError::TooFewCategories(1))
        );
        assert_eq!(
            chi_square(&[1, 2], &[0.0, 0.0]),
            Err(ChiSquareError::InvalidShares)
        );
        assert_eq!(
            chi_square(&[1, 2], &[-0.5, 1.5]),
            Err(ChiSquareError::InvalidShares)
        );
        assert_eq!(
            chi_square(&[1, 2], &[f64::NAN, 0.5]),
            Err(ChiSquareError::InvalidShares)
        );
        let none = chi_square(&[0, 0, 0], &[0.2, 0.3, 0.5]).unwrap();
        assert_eq!((none.statistic, none.df, none.p_value), (0.0, 2, 1.0));
        // An observation where none may be.
        let impossible = chi_square(&[3, 1], &[1.0, 0.0]).unwrap();
        assert_eq!(impossible.p_value, 0.0);
        assert!(impossible.statistic.is_infinite());
        // Only one possible category, and everything landed there.
        let only = chi_square(&[4, 0], &[1.0, 0.0]).unwrap();
        assert_eq!((only.df, only.p_value), (0, 1.0));
    }

    proptest! {
        #[test]
        fn wilson_bounds_hold_the_estimate(n in 1u64..5000, k_frac in 0.0f64..=1.0, c in 0.5f64..0.99999) {
            let k = ((n as f64) * k_frac).round() as u64;
            let (lo, hi) = wilson(k, n, c);
            let p = k as f64 / n as f64;
            prop_assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
            prop_assert!(lo <= p && p <= hi, "{lo} ≤ {p} ≤ {hi}");
        }

        #[test]
        fn wilson_is_narrower_at_lower_confidence(n in 1u64..5000, k_frac in 0.0f64..=1.0, c in 0.5f64..0.999, step in 0.0001f64..0.5) {
            let k = ((n as f64) * k_frac).round() as u64;
            let higher = (c + step).min(0.99999);
            let (lo_a, hi_a) = wilson(k, n, c);
            let (lo_b, hi_b) = wilson(k, n, higher);
            prop_assert!(lo_b <= lo_a + 1e-12 && hi_a <= hi_b + 1e-12);
            prop_assert!(hi_a - lo_a <= hi_b - lo_b + 1e-12);
        }

        #[test]
        fn wilson_is_symmetric(n in 1u64..5000, k_frac in 0.0f64..=1.0, c in 0.5f64..0.99999) {
            let k = ((n as f64) * k_frac).round() as u64;
            let (lo, hi) = wilson(k, n, c);
            let (lo_rev, hi_rev) = wilson(n - k, n, c);
            prop_assert!((lo - (1.0 - hi_rev)).abs() < 1e-9);
            prop_assert!((hi - (1.0 - lo_rev)).abs() < 1e-9);
        }

        #[test]
        fn score_test_agrees_with_the_wilson_interval(
            n in 1u64..5000, k_frac in 0.0f64..=1.0, p0 in 0.001f64..0.999, c in 0.5f64..0.9999,
        ) {
            let k = ((n as f64) * k_frac).round() as u64;
            let (lo, hi) = wilson(k, n, c);
            // Away from the boundary, where rounding could tip either side.
            let margin = 1e-6;
            prop_assume!((p0 - lo).abs() > margin && (p0 - hi).abs() > margin);
            let inside = lo < p0 && p0 < hi;
            let p = binomial_score_p_value(k, n, p0);
            prop_assert_eq!(inside, p >= 1.0 - c, "p0 {} in [{}, {}] but p = {}", p0, lo, hi, p);
        }

        #[test]
        fn chi_square_p_value_is_a_probability(obs in proptest::collection::vec(0u64..1000, 2..6)) {
            let shares = vec![1.0; obs.len()];
            let r = chi_square(&obs, &shares).unwrap();
            prop_assert!((0.0..=1.0).contains(&r.p_value));
            prop_assert!(r.statistic >= 0.0);
            prop_assert_eq!(r.df, obs.len() as u64 - 1);
        }
    }
}
