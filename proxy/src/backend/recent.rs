//! The last failures of calls to backends, newest last, in a bounded ring:
//! what the `proxy/errors` admin tool shows. One ring for the proxy's life
//! (reloads hand it on), so a failure just before a reload is still there.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tokio::time::Instant;

/// Failures kept.
const KEPT: usize = 100;

/// One failed call.
#[derive(Debug, Clone)]
struct Failure {
    at: Instant,
    backend: String,
    method: &'static str,
    error: String,
}

/// A failed call as the admin tool shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ShownFailure {
    /// How long ago, in milliseconds.
    pub ago_ms: u64,
    pub backend: String,
    pub method: &'static str,
    pub error: String,
}

/// The last [`KEPT`] failures.
#[derive(Debug, Default)]
pub(crate) struct RecentFailures {
    ring: Mutex<VecDeque<Failure>>,
}

impl RecentFailures {
    /// Keep a failure of `method` on `backend`, dropping the oldest beyond the bound.
    pub(crate) fn record(&self, backend: &str, method: &'static str, error: String) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(Failure {
            at: Instant::now(),
            backend: backend.to_owned(),
            method,
            error,
        });
    }

    /// The failures kept, newest first; only `backend`'s when given.
    pub(crate) fn shown(&self, backend: Option<&str>) -> Vec<ShownFailure> {
        let now = Instant::now();
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter()
            .rev()
            .filter(|failure| backend.is_none_or(|name| failure.backend == name))
            .map(|failure| ShownFailure {
                ago_ms: u64::try_from(now.duration_since(failure.at).as_millis())
                    .unwrap_or(u64::MAX),
                backend: failure.backend.clone(),
                method: failure.method,
                error: failure.error.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keeps_the_newest_failures_first_and_bounded() {
        let recent = RecentFailures::default();
        for n in 0..(KEPT + 5) {
            let backend = if n % 2 == 0 { "even" } else { "odd" };
            recent.record(backend, "tools/call", format!("failure {n}"));
            tokio::time::advance(std::time::Duration::from_millis(10)).await;
        }
        let all = recent.shown(None);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].error, format!("failure {}", KEPT + 4));
        assert_eq!(all[0].ago_ms, 10);
        assert_eq!(all[KEPT - 1].error, "failure 5");
        let odd = recent.shown(Some("odd"));
        assert!(odd.iter().all(|failure| failure.backend == "odd"));
        assert_eq!(odd.len(), KEPT / 2);
    }
}
