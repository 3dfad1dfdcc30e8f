//! The timeline at the resolution the charts draw it.
//!
//! The report keeps buckets of [`BUCKET_US`](super::timeline::BUCKET_US);
//! drawn as they are, a long run has more points than pixels and a sparse
//! one (a call every 300 ms) turns its rates into a comb between 0 and
//! 10/s and its latency into isolated points. [`for_charts`] merges
//! neighbouring buckets into wider ones, the narrowest of 1, 2, 5, 10,
//! 20, 50, ... buckets for which there are at most [`MAX_POINTS`] points
//! and either [`MIN_CALLS_PER_POINT`] answered calls per point on average
//! or no more than [`FEW_POINTS`] points.
//!
//! Counts add up (a chart divides them by the new width); the latencies of
//! a merged bucket are computed again from the report's call log, every
//! call's due time and latency, when it has one, and otherwise estimated
//! from the buckets: the largest p99 and the median of the p50s weighted
//! by calls.

use std::collections::BTreeMap;

use super::RunReport;
use super::timeline::{Bucket, CallRow, Timeline};

/// A [`CallRow`]'s outcome when the call succeeded.
const SUCCEEDED: &str = "success";

/// The most points a chart draws across the run.
pub const MAX_POINTS: u64 = 400;
/// The answered calls a point should have on average, so that a rate is
/// not a comb and most points have a latency.
pub const MIN_CALLS_PER_POINT: u64 = 4;
/// A run this many points wide or narrower is not merged further for want
/// of calls.
pub const FEW_POINTS: u64 = 20;

/// `report`'s timeline with buckets merged as the module explains; its
/// `bucket_us` is the width each point covers.
pub fn for_charts(report: &RunReport) -> Timeline {
    let timeline = &report.timeline;
    let Some(factor) = merge_factor(timeline) else {
        return timeline.clone();
    };
    let width = timeline.bucket_us * factor;
    let mut merged: BTreeMap<u64, (Bucket, Vec<&Bucket>)> = BTreeMap::new();
    for bucket in &timeline.buckets {
        let group = bucket.at_us / width;
        let (sum, parts) = merged.entry(group).or_insert_with(|| {
            let at_us = group * width;
            (
                Bucket {
                    at_us,
                    ..Bucket::default()
                },
                Vec::new(),
            )
        });
        add(sum, bucket);
        parts.push(bucket);
    }
    let mut buckets: Vec<Bucket> = merged
        .into_values()
        .map(|(mut sum, parts)| {
            estimate_latencies(&mut sum, &parts);
            sum
        })
        .collect();
    if !report.call_log.is_empty() {
        latencies_from_calls(&mut buckets, width, &report.call_log);
    }
    Timeline {
        bucket_us: width,
        buckets,
    }
}

/// How many buckets each point merges, or `None` to draw them as they are.
fn merge_factor(timeline: &Timeline) -> Option<u64> {
    let (first, last) = (timeline.buckets.first()?, timeline.buckets.last()?);
    let bucket_us = timeline.bucket_us;
    if bucket_us == 0 {
        return None;
    }
    let start = first.at_us.min(last.at_us) / bucket_us;
    let end = first.at_us.max(last.at_us) / bucket_us;
    let answered: u64 = timeline
        .buckets
        .iter()
        .fold(0u64, |sum, b| sum.saturating_add(b.answered));
    let factors = [1u64, 2, 5]
        .into_iter()
        .cycle()
        .scan(1u64, |decade, step| {
            let factor = decade.checked_mul(step)?;
            if step == 5 {
                *decade = decade.checked_mul(10)?;
            }
            Some(factor)
        })
        .take_while(|factor| factor.checked_mul(bucket_us).is_some());
    let mut chosen = 1;
    for factor in factors {
        chosen = factor;
        let points = (end / factor)
            .saturating_sub(start / factor)
            .saturating_add(1);
        let dense = answered / points >= MIN_CALLS_PER_POINT || points <= FEW_POINTS;
        if points <= MAX_POINTS && (dense || answered == 0) {
            break;
        }
    }
    (chosen > 1).then_some(chosen)
}

/// Adds `bucket`'s counts to `sum`'s.
fn add(sum: &mut Bucket, bucket: &Bucket) {
    sum.started = sum.started.saturating_add(bucket.started);
    sum.answered = sum.answered.saturating_add(bucket.answered);
    sum.succeeded = sum.succeeded.saturating_add(bucket.succeeded);
    for (label, n) in &bucket.errors {
        let count = sum.errors.entry(label.clone()).or_default();
        *count = count.saturating_add(*n);
    }
    for (fake, outcomes) in &bucket.fakes {
        let sums = sum.fakes.entry(fake.clone()).or_default();
        for (outcome, n) in outcomes {
            let count = sums.entry(outcome.clone()).or_default();
            *count = count.saturating_add(*n);
        }
    }
}

/// A merged bucket's latencies from its parts': the largest p99, and the
/// medians of the p50s weighted by their calls (failed calls for the
/// failed p50).
fn estimate_latencies(sum: &mut Bucket, parts: &[&Bucket]) {
    sum.p99_us = parts.iter().filter_map(|b| b.p99_us).max();
    sum.p50_us = weighted_median(parts.iter().map(|b| (b.p50_us, b.answered)));
    sum.failed_p50_us = weighted_median(
        parts
            .iter()
            .map(|b| (b.failed_p50_us, b.answered.saturating_sub(b.succeeded))),
    );
}

/// The value below which half the weight lies; `None` without a value.
fn weighted_median(values: impl Iterator<Item = (Option<u64>, u64)>) -> Option<u64> {
    let mut weighted: Vec<(u64, u64)> = values
        .filter_map(|(value, weight)| value.map(|v| (v, weight.max(1))))
        .collect();
    weighted.sort_unstable();
    let total = weighted
        .iter()
        .fold(0u64, |sum, (_, w)| sum.saturating_add(*w));
    let mut seen = 0u64;
    weighted.into_iter().find_map(|(value, weight)| {
        seen = seen.saturating_add(weight);
        (seen >= total.div_ceil(2)).then_some(value)
    })
}

/// The latencies of each bucket of `width` computed from the calls that
/// ended in it (due time plus latency): p50 and p99 of all, p50 of the
/// failed, by the nearest rank.
fn latencies_from_calls(buckets: &mut [Bucket], width: u64, calls: &[CallRow]) {
    let mut ended: BTreeMap<u64, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for call in calls {
        let end = call.due_us.saturating_add(call.latency_us);
        let (all, failed) = ended.entry(end / width * width).or_default();
        all.push(call.latency_us);
        if call.outcome != SUCCEEDED {
            failed.push(call.latency_us);
        }
    }
    for bucket in buckets {
        let (mut all, mut failed) = ended.remove(&bucket.at_us).unwrap_or_default();
        bucket.p50_us = nearest_rank(&mut all, 0.5);
        bucket.p99_us = nearest_rank(&mut all, 0.99);
        bucket.failed_p50_us = nearest_rank(&mut failed, 0.5);
    }
}

/// The value at quantile `q` of `values` by the nearest rank.
fn nearest_rank(values: &mut [u64], q: f64) -> Option<u64> {
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).max(1);
    values.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(at_ms: u64, answered: u64, p50_ms: Option<u64>) -> Bucket {
        Bucket {
            at_us: at_ms * 1_000,
            started: answered,
            answered,
            succeeded: answered,
            p50_us: p50_ms.map(|ms| ms * 1_000),
            p99_us: p50_ms.map(|ms| ms * 2_000),
            ..Bucket::default()
        }
    }

    fn report(buckets: Vec<Bucket>) -> RunReport {
        let mut report = crate::report::tests::sample();
        report.timeline = Timeline {
            bucket_us: 100_000,
            buckets,
        };
        report
    }

    /// One call every 300 ms for 20 s: every third bucket has one.
    fn sparse() -> Vec<Bucket> {
        (0..200)
            .map(|n| {
                let one = n % 3 == 0;
                bucket(n * 100, u64::from(one), one.then_some(5))
            })
            .collect()
    }

    #[test]
    fn dense_short_runs_are_drawn_as_they_are() {
        let dense = report((0..200).map(|n| bucket(n * 100, 20, Some(2))).collect());
        assert_eq!(for_charts(&dense).buckets, dense.timeline.buckets);
        assert_eq!(for_charts(&dense).bucket_us, 100_000);
    }

    #[test]
    fn a_sparse_run_is_merged_until_a_point_has_calls_and_counts_add_up() {
        let merged = for_charts(&report(sparse()));
        assert_eq!(merged.bucket_us, 1_000_000, "20 points of 1 s");
        assert_eq!(merged.buckets.len(), 20);
        assert!(merged.buckets.iter().all(|b| b.p50_us == Some(5_000)));
        let answered: u64 = merged.buckets.iter().map(|b| b.answered).sum();
        assert_eq!(answered, 67);
        assert_eq!(
            (merged.buckets[0].at_us, merged.buckets[0].answered),
            (0, 4)
        );
        assert_eq!(merged.buckets[1].answered, 3);
    }

    #[test]
    fn a_long_run_has_at_most_the_most_points() {
        let long = report((0..100_000).map(|n| bucket(n * 100, 20, Some(2))).collect());
        let merged = for_charts(&long);
        assert_eq!(merged.bucket_us, 50_000_000);
        assert!(merged.buckets.len() as u64 <= MAX_POINTS);
        assert_eq!(merged.buckets[0].answered, 20 * 500);
    }

    #[test]
    fn merged_latencies_come_from_the_call_log_when_there_is_one() {
        let mut run = report(sparse());
        // Without a log: the largest p99 and the weighted median p50.
        run.timeline.buckets[0].p50_us = Some(1_000);
        run.timeline.buckets[0].answered = 3;
        run.timeline.buckets[0].p99_us = Some(900_000);
        let estimated = &for_charts(&run).buckets[0];
        assert_eq!(
            (estimated.p50_us, estimated.p99_us),
            (Some(1_000), Some(900_000))
        );
        // With one: exact, and the failed calls apart.
        let row = |due_ms: u64, latency_ms: u64, outcome: &str| CallRow {
            call: 0,
            client: 0,
            tool: "t".into(),
            due_us: due_ms * 1_000,
            sent_us: due_ms * 1_000,
            latency_us: latency_ms * 1_000,
            outcome: outcome.into(),
            error: None,
            code: None,
            status: None,
            message: None,
            fakes: Vec::new(),
        };
        run.call_log = vec![
            row(0, 10, "success"),
            row(100, 20, "success"),
            row(200, 30, "rpc_error"),
            row(300, 40, "success"),
            row(900, 200, "hung"),
        ];
        let merged = for_charts(&run);
        let exact = &merged.buckets[0];
        assert_eq!(
            (exact.p50_us, exact.p99_us, exact.failed_p50_us),
            (Some(20_000), Some(40_000), Some(30_000))
        );
        assert_eq!(merged.buckets[1].p50_us, Some(200_000), "ended at 1.1 s");
    }

    #[test]
    fn weighted_medians_follow_the_weight() {
        let median = |v: &[(Option<u64>, u64)]| weighted_median(v.iter().copied());
        assert_eq!(median(&[(Some(1), 1), (Some(100), 5)]), Some(100));
        assert_eq!(median(&[(Some(1), 5), (None, 9), (Some(100), 1)]), Some(1));
        assert_eq!(median(&[(None, 3)]), None);
    }
}
