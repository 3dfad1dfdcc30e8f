//! Mirroring: a sampled copy of a primary's calls goes to another backend,
//! fire and forget.
//!
//! The copy runs in a task of its own; its answer is dropped, and nothing
//! about it (latency, failure) reaches the primary's caller. Copies in
//! flight are bounded by `mirror_max_in_flight`: a copy that finds no room
//! is dropped and counted, so a slow mirror cannot pile up work in the
//! proxy. Sampling draws from the seeded generator: `mirror_percent: 0`
//! mirrors nothing, `100` everything.
//!
//! Only calls safe to repeat are copied (the call's [`Safety`]: a tool the
//! server hints `readOnlyHint` or `idempotentHint`, one named in
//! `safe_to_repeat`, a read), since a copy runs the call a second time, on
//! a shadow that may share the primary's database or mail server. A call
//! that is not is skipped and counted, unless the mirror says
//! `mirror_unsafe: true`. Skipped calls draw no sample, so the share of
//! safe calls copied stays `mirror_percent`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use crate::call::Safety;

/// One mirror of a primary.
pub(crate) struct Mirror {
    pub(crate) backend: usize,
    percent: f64,
    room: Arc<Semaphore>,
    rng: Mutex<StdRng>,
    counts: Arc<MirrorCounts>,
    /// `mirror_unsafe`: copy calls that are not safe to repeat too.
    unsafe_calls: bool,
}

/// What happened to the copies, for `/admin/backends` and metrics.
#[derive(Debug, Default)]
pub(crate) struct MirrorCounts {
    /// Copies sent to the mirror.
    pub(crate) sent: AtomicU64,
    /// Copies dropped because `mirror_max_in_flight` were in flight.
    pub(crate) dropped: AtomicU64,
    /// Calls not copied because they are not safe to repeat.
    pub(crate) skipped: AtomicU64,
}

impl Mirror {
    pub(crate) fn new(backend: usize, percent: f64, max_in_flight: usize, seed: u64) -> Self {
        Self {
            backend,
            percent,
            room: Arc::new(Semaphore::new(max_in_flight)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: Arc::default(),
            unsafe_calls: false,
        }
    }

    /// Copy calls that are not safe to repeat too (`mirror_unsafe`).
    pub(crate) fn copying_unsafe(mut self, unsafe_calls: bool) -> Self {
        self.unsafe_calls = unsafe_calls;
        self
    }

    pub(crate) fn counts(&self) -> &MirrorCounts {
        &self.counts
    }

    /// Runs the copy `send` makes in a task of its own, if a call of this
    /// `safety` may be copied, is sampled, and there is room; returns at
    /// once either way.
    pub(crate) fn copy<F>(&self, safety: Safety, send: impl FnOnce() -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if !safety.repeatable && !self.unsafe_calls {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
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
