//! Capped exponential backoff: the one delay sequence behind every "try
//! again later" of the proxy — reconnecting a backend (`reconnect`),
//! reopening an HTTP backend's event stream, pausing before a retry
//! (`retry.backoff`, with full jitter drawn from the caller's seeded
//! generator).
//!
//! The delays double from `initial` up to `max`; [`Backoff::reset`] starts
//! over, which callers do once what they retried has proved healthy (see
//! [`HEALTHY_AFTER`]).

use std::time::Duration;

use rand::Rng;

/// A connection or stream that stayed up this long proved healthy: the
/// backoff before the next attempt starts over.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// One sequence of delays.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call doubles the following
    /// one, up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Full jitter: a uniform draw from zero to [`Backoff::next_delay`].
    pub(crate) fn next_jittered(&mut self, rng: &mut impl Rng) -> Duration {
        let nanos = self.next_delay().as_nanos() as u64;
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// Back to `initial`.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn millis(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(millis(100), millis(500));
        let delays: Vec<u64> = (0..5)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), millis(100));
    }

    #[test]
    fn full_jitter_stays_under_the_doubled_delay_and_replays_for_a_seed() {
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::new(millis(100), millis(400));
            (0..4)
                .map(|_| backoff.next_jittered(&mut rng))
                .collect::<Vec<_>>()
        };
        let first = draws(7);
        for (draw, cap) in first.iter().zip([100, 200, 400, 400]) {
            assert!(*draw <= millis(cap), "{draw:?} > {cap}ms");
        }
        assert_eq!(first, draws(7));
        assert_ne!(first, draws(8));
    }
}
