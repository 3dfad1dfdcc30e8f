//! Load balancing: which of the usable endpoints takes the next attempt.
//!
//! - `round_robin`: each in turn (a counter over the candidates).
//! - `least_requests`: two candidates drawn at random, the one with fewer
//!   calls in flight wins (power of two choices: Mitzenmacher, "The Power
//!   of Two Choices in Randomized Load Balancing", 2001). It avoids the herd
//!   that "always the least busy" causes when many picks see the same counts.
//! - `random`: a uniform draw.
//!
//! Draws come from the backend's seeded generator, so a replayed scenario
//! makes the same choices.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use rand::rngs::StdRng;

use super::lock;
use crate::config::LoadBalancing;

/// One pool's balancer.
pub(crate) struct Balancer {
    policy: LoadBalancing,
    next: AtomicUsize,
    rng: Mutex<StdRng>,
}

/// An endpoint the balancer may choose: its index and calls in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) endpoint: usize,
    pub(crate) in_flight: u64,
}

impl Balancer {
    pub(crate) fn new(policy: LoadBalancing, rng: StdRng) -> Self {
        Self {
            policy,
            next: AtomicUsize::new(0),
            rng: Mutex::new(rng),
        }
    }

    /// The endpoint to use among `candidates` (not empty).
    pub(crate) fn choose(&self, candidates: &[Candidate]) -> usize {
        let n = candidates.len();
        if n == 1 {
            return candidates[0].endpoint;
        }
        let chosen = match self.policy {
            LoadBalancing::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            LoadBalancing::Random => lock(&self.rng).random_range(0..n),
            LoadBalancing::LeastRequests => {
                let (a, b) = {
                    let mut rng = lock(&self.rng);
                    let a = rng.random_range(0..n);
                    // A second draw among the others, so the two differ.
                    let b = (a + rng.random_range(1..n)) % n;
                    (a, b)
                };
                if candidates[b].in_flight < candidates[a].in_flight {
                    b
                } else {
                    a
                }
            }
        };
        candidates[chosen].endpoint
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn candidates(in_flight: &[u64]) -> Vec<Candidate> {
        in_flight
            .iter()
            .enumerate()
            .map(|(i, &in_flight)| Candidate {
                endpoint: i * 10,
                in_flight,
            })
            .collect()
    }

    fn counts(policy: LoadBalancing, in_flight: &[u64], picks: usize) -> Vec<usize> {
        let balancer = Balancer::new(policy, StdRng::seed_from_u64(7));
        let candidates = candidates(in_flight);
        let mut counts = vec![0; in_flight.len()];
        for _ in 0..picks {
            counts[balancer.choose(&candidates) / 10] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        assert_eq!(counts(LoadBalancing::RoundRobin, &[0, 0, 0], 9), [3, 3, 3]);
    }

    #[test]
    fn least_requests_never_picks_the_busiest_of_two() {
        // With two candidates both are drawn every time: the idle one wins.
        assert_eq!(counts(LoadBalancing::LeastRequests, &[5, 0], 100), [0, 100]);
        // With three, the busiest loses every draw it is in.
        let spread = counts(LoadBalancing::LeastRequests, &[0, 9, 0], 3000);
        assert_eq!(spread[1], 0);
        assert!(spread[0] > 1200 && spread[2] > 1200, "{spread:?}");
    }

    #[test]
    fn random_spreads_evenly_and_is_seeded() {
        let spread = counts(LoadBalancing::Random, &[0, 0, 0, 0], 4000);
        assert!(
            spread.iter().all(|&c| (850..=1150).contains(&c)),
            "{spread:?}"
        );
        assert_eq!(spread, counts(LoadBalancing::Random, &[0, 0, 0, 0], 4000));
    }

    #[test]
    fn one_candidate_is_chosen_whatever_the_policy() {
        for policy in [
            LoadBalancing::RoundRobin,
            LoadBalancing::LeastRequests,
            LoadBalancing::Random,
        ] {
            assert_eq!(counts(policy, &[3], 5), [5]);
        }
    }
}
