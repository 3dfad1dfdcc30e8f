//! Mirroring: a sampled copy of a primary's calls goes to another backend,
//! fire and forget.
//!
//! The copy runs in a task of its own; its answer is dropped, and nothing
//! about it (latency, failure) reaches the primary's caller. Copies in
//! flight are bounded by `mirror_max_in_flight`: a copy that finds no room
//! is dropped and counted, so a slow mirror cannot pile up work in the
//! proxy. Sampling draws from the seeded generator: `mirror_percent: 0`
//! mirrors nothing, `100` everything.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

/// One mirror of a primary.
pub(crate) struct Mirror {
    pub(crate) backend: usize,
    percent: f64,
    room: Arc<Semaphore>,
    rng: Mutex<StdRng>,
    counts: Arc<MirrorCounts>,
}

/// What happened to the copies, for `/admin/backends` and metrics.
#[derive(Debug, Default)]
pub(crate) struct MirrorCounts {
    /// Copies sent to the mirror.
    pub(crate) sent: AtomicU64,
    /// Copies dropped because `mirror_max_in_flight` were in flight.
    pub(crate) dropped: AtomicU64,
}

impl Mirror {
    pub(crate) fn new(backend: usize, percent: f64, max_in_flight: usize, seed: u64) -> Self {
        Self {
            backend,
            percent,
            room: Arc::new(Semaphore::new(max_in_flight)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: Arc::default(),
        }
    }

    pub(crate) fn counts(&self) -> &MirrorCounts {
        &self.counts
    }

    /// Runs the copy `send` makes in a task of its own, if this call is
    /// sampled and there is room; returns at once either way.
    pub(crate) fn copy<F>(&self, send: impl FnOnce() -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let sampled = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0.0..100.0)
            < self.percent;
        if !sampled {
            return;
        }
        let Ok(permit) = Arc::clone(&self.room).try_acquire_owned() else {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.counts.sent.fetch_add(1, Ordering::Relaxed);
        let copy = send();
        tokio::spawn(async move {
            let _permit = permit;
            copy.await;
        });
    }
}
