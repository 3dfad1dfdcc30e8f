//! The canary split: which backend takes a call addressed to a primary.
//!
//! Each call draws a point in [0, 100) from the seeded generator (or, with
//! `sticky`, from a hash of the client's session id and the seed, so a
//! session keeps its choice); the canaries own consecutive stretches of
//! their `weight` from 0 up, the primary the rest. So `weight: 10` is
//! exactly a 10 % chance per call — not a counter that sends the canary 10
//! calls after 100 primary ones (mcp-proxy 0.6 delivers 10/110 = 9.1 % that
//! way, in bursts).

use std::sync::{Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One primary's canaries.
pub(crate) struct Split {
    /// `(backend index, weight in percent)`, in config order.
    canaries: Vec<(usize, f64)>,
    sticky: bool,
    seed: u64,
    rng: Mutex<StdRng>,
}

impl Split {
    /// `canaries` as `(backend index, weight, sticky)`; the split is sticky
    /// when any canary asks for it (one draw must serve them all).
    pub(crate) fn new(canaries: Vec<(usize, f64, bool)>, seed: u64) -> Self {
        let sticky = canaries.iter().any(|&(_, _, sticky)| sticky);
        Self {
            canaries: canaries.into_iter().map(|(b, w, _)| (b, w)).collect(),
            sticky,
            seed,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// The canaries' backend indices, in config order.
    pub(crate) fn canaries(&self) -> impl Iterator<Item = usize> + '_ {
        self.canaries.iter().map(|&(backend, _)| backend)
    }

    /// Whether the choice is made once per session.
    pub(crate) fn is_sticky(&self) -> bool {
        self.sticky && !self.canaries.is_empty()
    }

    /// The canary that takes this call, or `None` for the primary.
    pub(crate) fn choose(&self, session: &str) -> Option<usize> {
        if self.canaries.is_empty() {
            return None;
        }
        let point = if self.sticky {
            sticky_point(self.seed, session)
        } else {
            self.rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .random_range(0.0..100.0)
        };
        let mut upto = 0.0;
        for &(backend, weight) in &self.canaries {
            upto += weight;
            if point < upto {
                return Some(backend);
            }
        }
        None
    }
}

/// A point in [0, 100) that depends only on the seed and the session id.
fn sticky_point(seed: u64, session: &str) -> f64 {
    let hash = session.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // Mix the bits (FNV's low bits are weak for short, similar inputs).
    StdRng::seed_from_u64(hash).random_range(0.0..100.0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// How many of `calls` the canary (backend 1) took at `weight`.
    fn canary_share(weight: f64, calls: u32, seed: u64) -> u32 {
        let split = Split::new(vec![(1, weight, false)], seed);
        (0..calls).filter(|_| split.choose("s") == Some(1)).count() as u32
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any weight lands within a 99.99 % binomial interval of itself
        /// (z = 3.9) over 20 000 calls, for a fixed seed.
        #[test]
        fn any_weight_stays_within_its_interval(weight in 0.0f64..=100.0) {
            let calls = 20_000u32;
            let p = weight / 100.0;
            let expected = p * f64::from(calls);
            let spread = 3.9 * (f64::from(calls) * p * (1.0 - p)).sqrt();
            let observed = f64::from(canary_share(weight, calls, 42));
            prop_assert!(
                (observed - expected).abs() <= spread + 1.0,
                "weight {weight}: {observed} of {calls}, expected {expected} ± {spread}"
            );
        }
    }

    #[test]
    fn zero_and_hundred_are_exact() {
        assert_eq!(canary_share(0.0, 5_000, 1), 0);
        assert_eq!(canary_share(100.0, 5_000, 1), 5_000);
    }

    #[test]
    fn several_canaries_take_their_own_weights() {
        let split = Split::new(vec![(1, 10.0, false), (2, 30.0, false)], 9);
        let mut counts = [0u32; 3];
        for _ in 0..20_000 {
            counts[split.choose("s").unwrap_or(0)] += 1;
        }
        let share = |i: usize| f64::from(counts[i]) / 20_000.0;
        assert!((share(1) - 0.10).abs() < 0.01, "{counts:?}");
        assert!((share(2) - 0.30).abs() < 0.015, "{counts:?}");
        assert!((share(0) - 0.60).abs() < 0.015, "{counts:?}");
    }

    #[test]
    fn the_same_seed_makes_the_same_choices() {
        let a = Split::new(vec![(1, 50.0, false)], 3);
        let b = Split::new(vec![(1, 50.0, false)], 3);
        let draws = |s: &Split| (0..100).map(|_| s.choose("x")).collect::<Vec<_>>();
        assert_eq!(draws(&a), draws(&b));
    }

    #[test]
    fn a_sticky_split_keeps_each_session_on_one_side_at_its_weight() {
        let split = Split::new(vec![(1, 20.0, true)], 5);
        let sessions: Vec<String> = (0..5_000).map(|i| format!("session-{i}")).collect();
        let first: Vec<_> = sessions.iter().map(|s| split.choose(s)).collect();
        let again: Vec<_> = sessions.iter().map(|s| split.choose(s)).collect();
        assert_eq!(first, again, "a session keeps its choice");
        let on_canary = first.iter().filter(|c| c.is_some()).count();
        assert!(
            (850..=1150).contains(&on_canary),
            "{on_canary} of 5000 sessions"
        );
    }
}
