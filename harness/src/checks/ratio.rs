//! `ratio` checks: how calls split between fakes (a load balancer's weights,
//! a failover's share), judged statistically because the split is random.
//! Two ways: the expected share of the first must lie in the Wilson score
//! interval of its observed share. Three or more: Pearson's chi-square test
//! must not reject the expected shares. Both at the scenario's `confidence`.

use super::Verdict;
use super::figures::{Figures, Interval, Measure, STATISTIC};
use crate::journal::JournalEntry;
use crate::report::format::{count, p_value, percent};
use crate::scenario::RatioCheck;
use crate::stats::{binomial_score_p_value, chi_square, wilson};

/// The kind's name in reports.
pub const KIND: &str = "ratio";

/// Judges `spec` over `journal` (the `tools/call` entries of each way's fake).
pub fn check(spec: &RatioCheck, journal: &[JournalEntry]) -> Verdict {
    let counts: Vec<u64> = spec
        .ways
        .iter()
        .map(|(fake, _)| {
            journal
                .iter()
                .filter(|e| {
                    e.fake == *fake
                        && e.method == "tools/call"
                        && spec
                            .tool
                            .as_ref()
                            .is_none_or(|t| e.tool.as_ref() == Some(t))
                        && spec.window.contains(e.at)
                })
                .count() as u64
        })
        .collect();
    let total: u64 = counts.iter().sum();
    let expected = format!(
        "{} at {} confidence",
        spec.ways
            .iter()
            .map(|(fake, share)| format!("{fake} {}", percent(*share)))
            .collect::<Vec<_>>()
            .join(", "),
        percent(spec.confidence)
    );
    let counts_text = spec
        .ways
        .iter()
        .zip(&counts)
        .map(|((fake, _), n)| format!("{fake} {n}"))
        .collect::<Vec<_>>()
        .join(", ");

    let calls = Measure::count("calls", total, Some(spec.min_calls.max(1)), None);
    let figures = |measures: Vec<Measure>| {
        Figures::over(
            &spec.window,
            [calls.clone()].into_iter().chain(measures).collect(),
        )
    };

    if total < spec.min_calls || total == 0 {
        return Verdict {
            figures: figures(way_shares(spec, &counts, false)),
            expected,
            observed: format!("only {} ({counts_text})", count(total, "call")),
            passed: false,
            detail: Some(format!(
                "{} {}, {} needed to judge a ratio",
                count(total, "call"),
                spec.window.label,
                spec.min_calls
            )),
        };
    }

    if let [(first, share), (second, _)] = spec.ways.as_slice() {
        let (lo, hi) = wilson(counts[0], total, spec.confidence);
        let p = binomial_score_p_value(counts[0], total, *share);
        let observed_share = counts[0] as f64 / total as f64;
        let passed = lo <= *share && *share <= hi;
        let first_share = Measure {
            interval: Some(Interval { low: lo, high: hi }),
            p_value: Some(p),
            confidence: Some(spec.confidence),
            passed,
            ..way_share(first, counts[0], total, *share)
        };
        return Verdict {
            figures: figures(vec![first_share]),
            expected,
            observed: format!(
                "{first} {} ({} of {total}), interval {}–{}, p = {}",
                percent(observed_share),
                counts[0],
                percent(lo),
                percent(hi),
                p_value(p)
            ),
            passed,
            detail: (!passed).then(|| {
                format!(
                    "{first}'s expected share {} is outside the {} interval {}–{} ({counts_text}; {second} is the rest)",
                    percent(*share),
                    percent(spec.confidence),
                    percent(lo),
                    percent(hi)
                )
            }),
        };
    }

    let shares: Vec<f64> = spec.ways.iter().map(|(_, share)| *share).collect();
    let shares_text = spec
        .ways
        .iter()
        .zip(&counts)
        .map(|((fake, _), n)| format!("{fake} {}", percent(*n as f64 / total as f64)))
        .collect::<Vec<_>>()
        .join(", ");
    match chi_square(&counts, &shares) {
        Ok(test) => {
            let alpha = 1.0 - spec.confidence;
            let passed = test.p_value >= alpha;
            let statistic = Measure {
                name: "chi_square".into(),
                unit: STATISTIC.into(),
                value: Some(test.statistic),
                total: Some(total),
                p_value: Some(test.p_value),
                confidence: Some(spec.confidence),
                passed,
                ..Measure::default()
            };
            let mut measures = vec![statistic];
            measures.extend(way_shares(spec, &counts, passed));
            Verdict {
                figures: figures(measures),
                expected,
                observed: format!(
                    "{shares_text} of {total}, χ² = {:.2}, p = {}",
                    test.statistic,
                    p_value(test.p_value)
                ),
                passed,
                detail: (!passed).then(|| {
                    format!(
                        "chi-square with {} df rejects the expected shares: p = {} < {} ({counts_text})",
                        test.df,
                        p_value(test.p_value),
                        p_value(alpha)
                    )
                }),
            }
        }
        Err(e) => Verdict {
            figures: figures(way_shares(spec, &counts, false)),
            expected,
            observed: format!("cannot judge: {e}"),
            passed: false,
            detail: Some(counts_text),
        },
    }
}

/// Each way's observed share, judged together (`passed`).
fn way_shares(spec: &RatioCheck, counts: &[u64], passed: bool) -> Vec<Measure> {
    let total = counts.iter().sum();
    spec.ways
        .iter()
        .zip(counts)
        .map(|((fake, share), n)| Measure {
            passed,
            ..way_share(fake, *n, total, *share)
        })
        .collect()
}

/// `fake`'s share: `count` of `total` requests, `expected` asked for.
fn way_share(fake: &str, count: u64, total: u64, expected: f64) -> Measure {
    Measure {
        subject: Some(fake.to_owned()),
        expected: Some(expected),
        ..Measure::share("share", count, total, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;

    fn spec(ways: &[(&str, f64)], min_calls: u64) -> RatioCheck {
        RatioCheck {
            ways: ways.iter().map(|(f, s)| ((*f).to_owned(), *s)).collect(),
            tool: Some("read".into()),
            window: always(),
            confidence: 0.99,
            min_calls,
        }
    }

    /// `counts[i]` calls to fake `names[i]`, plus entries that must not count.
    fn journal(names: &[&str], counts: &[u64]) -> Vec<JournalEntry> {
        let mut journal = Vec::new();
        for (name, &n) in names.iter().zip(counts) {
            for i in 0..n {
                journal.push(entry(name, "tools/call", Some("read"), i));
            }
            journal.push(entry(name, "tools/call", Some("write"), 0));
            journal.push(entry(name, "tools/list", None, 0));
        }
        journal
    }

    #[test]
    fn two_ways_pass_when_the_share_is_inside_the_interval() {
        // 55 of 100 at 99%: Wilson interval ≈ 42.2%–67.2%, holds 50%.
        let v = check(
            &spec(&[("a", 0.5), ("b", 0.5)], 30),
            &journal(&["a", "b"], &[55, 45]),
        );
        assert!(v.passed, "{v:?}");
        assert_eq!(v.expected, "a 50.0%, b 50.0% at 99.0% confidence");
        assert!(
            v.observed.starts_with("a 55.0% (55 of 100), interval 42."),
            "{}",
            v.observed
        );
        // z = 0.05 / 0.05 = 1, p = 2·Φ(−1) = 0.317.
        assert!(v.observed.ends_with("p = 0.317"), "{}", v.observed);

        assert_eq!(
            measures(&v.figures),
            [
                "calls = 100 count, min 30, passed",
                "share[a] = 0.55 share, expected 0.5, count 55, of 100, passed",
            ]
        );
        let share = &v.figures.measures[1];
        assert_eq!(share.confidence, Some(0.99));
        // The numbers are the ones the text shows.
        let interval = share.interval.clone().unwrap();
        let shown = format!(
            "interval {}–{}, p = {}",
            percent(interval.low),
            percent(interval.high),
            p_value(share.p_value.unwrap())
        );
        assert!(v.observed.ends_with(&shown), "{} / {shown}", v.observed);
        assert!((interval.low - 0.4228).abs() < 1e-4, "{interval:?}");
        assert!((interval.high - 0.6710).abs() < 1e-4, "{interval:?}");
        assert!((share.p_value.unwrap() - 0.3173).abs() < 1e-3);
    }

    #[test]
    fn two_ways_fail_when_the_share_is_outside() {
        // 80 of 100: interval ≈ 68.3%–88.1%, far from 50%.
        let v = check(
            &spec(&[("a", 0.5), ("b", 0.5)], 30),
            &journal(&["a", "b"], &[80, 20]),
        );
        assert!(!v.passed);
        assert!(v.detail.unwrap().contains("outside the 99.0% interval"));
    }

    #[test]
    fn three_ways_use_chi_square() {
        let ways = [("a", 0.5), ("b", 0.25), ("c", 0.25)];
        let v = check(&spec(&ways, 30), &journal(&["a", "b", "c"], &[52, 24, 24]));
        assert!(v.passed, "{v:?}");
        assert!(
            v.observed
                .starts_with("a 52.0%, b 24.0%, c 24.0% of 100, χ² = 0.16"),
            "{}",
            v.observed
        );
        assert_eq!(
            measures(&v.figures)[1..],
            [
                "chi_square = 0.16 statistic, of 100, passed",
                "share[a] = 0.52 share, expected 0.5, count 52, of 100, passed",
                "share[b] = 0.24 share, expected 0.25, count 24, of 100, passed",
                "share[c] = 0.24 share, expected 0.25, count 24, of 100, passed",
            ]
        );
        let chi = &v.figures.measures[1];
        assert_eq!(chi.confidence, Some(0.99));
        assert!(
            v.observed
                .ends_with(&format!("p = {}", p_value(chi.p_value.unwrap()))),
            "{}",
            v.observed
        );
        // Evenly split instead of half/quarter/quarter: statistic 10.24, p = e^−5.12 ≈ 0.006 < 0.01.
        let v = check(&spec(&ways, 30), &journal(&["a", "b", "c"], &[34, 33, 33]));
        assert!(!v.passed, "{v:?}");
        assert!(v.figures.measures[1..].iter().all(|m| !m.passed));
        assert!(v.detail.unwrap().contains("rejects the expected shares"));
    }

    #[test]
    fn too_few_calls_fail() {
        let v = check(
            &spec(&[("a", 0.5), ("b", 0.5)], 30),
            &journal(&["a", "b"], &[10, 9]),
        );
        assert!(!v.passed);
        assert_eq!(v.observed, "only 19 calls (a 10, b 9)");
        let calls = &v.figures.measures[0];
        assert_eq!(
            (calls.value, calls.min, calls.passed),
            (Some(19.0), Some(30.0), false)
        );
        let v = check(
            &spec(&[("a", 0.5), ("b", 0.5)], 0),
            &journal(&["a", "b"], &[0, 0]),
        );
        assert!(!v.passed);
    }

    #[test]
    fn a_single_way_cannot_be_judged() {
        let v = check(&spec(&[("a", 1.0)], 1), &journal(&["a"], &[40]));
        assert!(!v.passed);
        assert!(v.observed.starts_with("cannot judge"), "{}", v.observed);
    }
}
