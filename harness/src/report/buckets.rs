//! Cuts a run into the report's [`Timeline`]: client calls and fake
//! requests counted per bucket of [`BUCKET_US`], with each bucket's latency
//! percentiles (of all calls, and the median of the failed ones) from the
//! same histogram summary as the phase table.

use std::time::Duration;

use super::call_log::error_label;
use super::timeline::{BUCKET_US, Bucket, Timeline};
use crate::clock::whole_micros;
use crate::journal::JournalEntry;
use crate::load::record::CallRecord;
use crate::stats::LatencySummary;

/// The timeline of a run: a call counts as started in the bucket it was
/// sent in and as answered in the one it ended in; a fake's `tools/call`
/// request in the one it arrived in. Buckets run from 0 to the last call's
/// end (or the last request, if later); none without either.
pub fn timeline(calls: &[CallRecord], journal: &[JournalEntry]) -> Timeline {
    let requests: Vec<&JournalEntry> = journal
        .iter()
        .filter(|e| e.method == "tools/call")
        .collect();
    let last = calls
        .iter()
        .map(|c| c.ended.max(c.sent))
        .chain(requests.iter().map(|e| e.at))
        .max();
    let Some(last) = last else {
        return Timeline {
            bucket_us: BUCKET_US,
            buckets: Vec::new(),
        };
    };
    let count = bucket_of(last) + 1;
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            at_us: i as u64 * BUCKET_US,
            ..Bucket::default()
        })
        .collect();
    let mut ended_in: Vec<Vec<&CallRecord>> = vec![Vec::new(); count];
    for call in calls {
        buckets[bucket_of(call.sent)].started += 1;
        let ended = bucket_of(call.ended);
        let bucket = &mut buckets[ended];
        bucket.answered += 1;
        match error_label(&call.outcome) {
            None => bucket.succeeded += 1,
            Some(label) => *bucket.errors.entry(label).or_default() += 1,
        }
        ended_in[ended].push(call);
    }
    for (bucket, ended) in buckets.iter_mut().zip(ended_in) {
        if !ended.is_empty() {
            let summary = LatencySummary::of(ended.iter().copied());
            bucket.p50_us = Some(whole_micros(summary.quantile(0.5)));
            bucket.p99_us = Some(whole_micros(summary.quantile(0.99)));
            let failed = LatencySummary::of(ended.iter().copied().filter(|c| !c.is_success()));
            bucket.failed_p50_us = (failed.calls > 0).then(|| whole_micros(failed.quantile(0.5)));
        }
    }
    for entry in requests {
        let by_outcome = buckets[bucket_of(entry.at)]
            .fakes
            .entry(entry.fake.clone())
            .or_default();
        *by_outcome.entry(entry.outcome.clone()).or_default() += 1;
    }
    Timeline {
        bucket_us: BUCKET_US,
        buckets,
    }
}

/// The index of the bucket holding `t`.
fn bucket_of(t: Duration) -> usize {
    usize::try_from(whole_micros(t) / BUCKET_US).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::*;
    use crate::load::record::CallOutcome;

    #[test]
    fn calls_and_requests_land_in_their_buckets() {
        let calls = [
            ok(1, "files/read", 10, 20),
            ok(2, "files/read", 50, 100),
            call(3, "files/read", 60, 30, rpc_error(-32010, "down")),
            call(4, "files/read", 250, 10, CallOutcome::Hung),
        ];
        let mut failed = entry("files", "tools/call", Some("read"), 61);
        failed.outcome = "jsonrpc_error".into();
        let journal = [
            entry("files", "tools/call", Some("read"), 11),
            entry("files", "tools/list", None, 12),
            failed,
            entry("db", "tools/call", Some("read"), 51),
        ];
        let t = timeline(&calls, &journal);
        assert_eq!(t.bucket_us, 100_000);
        // The last call ends at 260 ms: buckets 0, 100 and 200 ms.
        let counts: Vec<_> = t
            .buckets
            .iter()
            .map(|b| (b.at_us / 1_000, b.started, b.answered, b.succeeded))
            .collect();
        assert_eq!(counts, [(0, 3, 2, 1), (100, 0, 1, 1), (200, 1, 1, 0)]);
        let b = &t.buckets[0];
        assert_eq!(b.errors.get("-32010"), Some(&1));
        // The histogram's p50, within 0.1% of 20 ms; p99 capped by the exact max.
        assert_eq!((b.p50_us, b.p99_us), (Some(20_015), Some(30_000)));
        assert_eq!(b.failed_p50_us, Some(30_000), "the one failed call");
        assert_eq!(t.buckets[1].failed_p50_us, None, "no failed call");
        assert_eq!(t.buckets[2].errors.get("hung"), Some(&1));
        assert_eq!(t.buckets[1].p99_us, Some(100_000));
        assert_eq!(b.fakes["files"]["success"], 1);
        assert_eq!(b.fakes["files"]["jsonrpc_error"], 1);
        assert_eq!(b.fakes["db"]["success"], 1);
        assert!(t.buckets[1].fakes.is_empty());
        assert_eq!(
            (t.buckets[1].p50_us, t.buckets[1].errors.len()),
            (Some(100_000), 0)
        );

        assert!(timeline(&[], &[]).buckets.is_empty());
    }
}
