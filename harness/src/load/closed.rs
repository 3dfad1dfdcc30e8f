//! Closed loop: `concurrency` workers, each sending its next call as soon as
//! its previous one ended, so exactly that many calls are in flight until the
//! load period is over. Workers take turns over the sessions (worker `w` uses
//! session `w mod clients`).
//!
//! A closed loop measures the proxy as a patient client sees it; it cannot
//! show queueing delay that a slow proxy imposes on arriving traffic (the
//! open loop does).

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Driver;

/// Runs the workers until `end` (no call starts after it) and until their
/// last calls ended.
pub(super) async fn drive(driver: &Arc<Driver>, concurrency: usize, end: Instant) {
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let driver = Arc::clone(driver);
        workers.spawn(async move {
            // Each call ends by the driver's give-up time, after `end`, so
            // the loop stops by itself.
            while Instant::now() < end {
                let planned = driver.plan();
                driver.perform(planned, worker, None).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
}
