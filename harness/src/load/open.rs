//! Open loop: calls start at a constant rate whatever the answers do, as
//! independent users would send them. Slot `k` is due `k / rate` seconds
//! after the sessions are open (opening them is setup, not load: slots
//! before it would only measure how long that took); slots due before the
//! end of the load period are the run's slots.
//!
//! A slot is *missed* (counted in `LoadResult::missed_slots`) when it could
//! not be sent on time:
//!
//! - it finds `max_in_flight` calls outstanding: it is not sent at all, so
//!   that a stalled proxy cannot pile up unbounded work;
//! - its call is sent more than [`lateness_allowance`] after it was due
//!   (the harness itself fell behind, or its runtime was busy): it is still
//!   sent, at once, so the proxy sees the offered load;
//! - the load period is over before the scheduler reaches it: not sent (no
//!   call starts after the period).
//!
//! The slots and the missed ones are both counted (`LoadResult::slots`),
//! so the accounting checks can fail a run that missed more than
//! `max_missed_share` of them.
//!
//! Every call's latency counts from its slot's due time (`intended`), not
//! from when it was sent: a late send is waiting the user would have seen,
//! and leaving it out is coordinated omission.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Driver;

/// How late a slot's call may be sent and still count as on time:
/// one period, but at least the timer's granularity and some scheduling
/// jitter.
fn lateness_allowance(period: Duration) -> Duration {
    period.max(Duration::from_millis(2))
}

/// The number of slots due before `duration` at `rate` per second.
fn slot_count(rate: f64, duration: Duration) -> u64 {
    if rate.is_finite() && rate > 0.0 {
        // Float to int `as` saturates, so an absurd rate cannot wrap.
        (duration.as_secs_f64() * rate).ceil() as u64
    } else {
        0
    }
}

/// Sends the slots from `start` to `end` (scenario time), waits for their
/// calls to end, and returns the number of slots and of missed slots.
pub(super) async fn drive(
    driver: &Arc<Driver>,
    rate: f64,
    max_in_flight: usize,
    start: Duration,
    end: Duration,
) -> (u64, u64) {
    let slots = slot_count(rate, end.saturating_sub(start));
    let period = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX);
    let allowance = lateness_allowance(period);
    let end = driver.clock.at(end);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut calls = JoinSet::new();
    let mut missed = 0;
    let mut sent = 0;
    for slot in 0..slots {
        let due = start + Duration::from_secs_f64(slot as f64 / rate);
        let due_at = driver.clock.at(due);
        if Instant::now() < due_at {
            tokio::time::sleep_until(due_at).await;
        } else {
            // Behind schedule: let the calls just spawned run before the next.
            tokio::task::yield_now().await;
        }
        if Instant::now() >= end {
            missed += slots - slot;
            break;
        }
        // Finished calls are reaped as we go, so memory follows what is in flight.
        while let Some(late) = calls.try_join_next() {
            missed += u64::from(late.unwrap_or(false));
        }
        if in_flight.load(Ordering::Acquire) >= max_in_flight {
            missed += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let planned = driver.plan();
        let turn = sent;
        sent += 1;
        let driver = Arc::clone(driver);
        let in_flight = Arc::clone(&in_flight);
        // Lateness is judged when the call is really sent (the spawned task
        // may start later than the scheduler reached the slot).
        calls.spawn(async move {
            let sent = driver.perform(planned, turn, Some(due)).await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
            sent.saturating_sub(due) > allowance
        });
    }
    while let Some(late) = calls.join_next().await {
        missed += u64::from(late.unwrap_or(false));
    }
    (slots, missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_due_before_the_end() {
        assert_eq!(slot_count(200.0, Duration::from_millis(500)), 100);
        assert_eq!(slot_count(3.0, Duration::from_secs(1)), 3);
        assert_eq!(slot_count(2.5, Duration::from_secs(1)), 3);
        assert_eq!(slot_count(0.0, Duration::from_secs(1)), 0);
        assert_eq!(slot_count(f64::NAN, Duration::from_secs(1)), 0);
    }

    #[test]
    fn the_allowance_is_a_period_but_at_least_two_milliseconds() {
        assert_eq!(
            lateness_allowance(Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        assert_eq!(
            lateness_allowance(Duration::from_micros(100)),
            Duration::from_millis(2)
        );
    }
}
