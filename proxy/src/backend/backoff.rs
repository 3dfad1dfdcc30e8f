//! Capped exponential backoff between attempts to (re)connect a backend.
//!
//! Deterministic on purpose: the delays double from `initial` up to `max`
//! and reset after a connection succeeds. Reconnect storms are not a risk
//! here (one supervisor per backend), so no jitter is needed.

use std::time::Duration;

use crate::config::ReconnectPolicy;

/// The delay sequence of one backend's reconnect attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    next: Duration,
}

impl Backoff {
    /// Start at `policy.initial`.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self {
            policy,
            next: policy.initial,
        }
    }

    /// The delay before the next attempt; each call doubles the following one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.policy.max);
        delay
    }

    /// Back to `initial`, after a successful connection.
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let mut backoff = Backoff::new(policy);
        let delays: Vec<u64> = (0..5)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
