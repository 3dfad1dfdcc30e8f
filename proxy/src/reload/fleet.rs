//! The running backends' supervisors: started when a backend joins (at
//! start or by a reload), stopped one by one when a reload retires a
//! backend, or all together at shutdown.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendEvent};

/// How long backends being stopped together get (stdio: close stdin,
/// SIGTERM, SIGKILL take up to about 6 s).
const BACKEND_STOP: Duration = Duration::from_secs(10);

/// One backend's supervisor task and what stops it.
struct Supervised {
    backend: Arc<Backend>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Every supervisor running, and where their events go.
pub(crate) struct Fleet {
    events: mpsc::UnboundedSender<BackendEvent>,
    running: Mutex<Vec<Supervised>>,
}

impl Fleet {
    pub(crate) fn new(events: mpsc::UnboundedSender<BackendEvent>) -> Self {
        Self {
            events,
            running: Mutex::default(),
        }
    }

    /// Start `backend`'s supervisor: it connects and keeps connected.
    pub(crate) fn start(&self, backend: &Arc<Backend>) {
        let stop = CancellationToken::new();
        let task = backend.spawn_supervisor(self.events.clone(), stop.clone());
        self.lock().push(Supervised {
            backend: Arc::clone(backend),
            stop,
            task,
        });
    }

    /// Stop the supervisors of `backends` and wait for them to end.
    pub(crate) async fn stop(&self, backends: &[Arc<Backend>]) {
        let stopping: Vec<Supervised> = {
            let mut running = self.lock();
            let (leaving, staying) = std::mem::take(&mut *running)
                .into_iter()
                .partition(|s| backends.iter().any(|b| Arc::ptr_eq(b, &s.backend)));
            *running = staying;
            leaving
        };
        end(stopping).await;
    }

    /// Stop every supervisor (shutdown).
    pub(crate) async fn stop_all(&self) {
        let stopping = std::mem::take(&mut *self.lock());
        end(stopping).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Supervised>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Each supervisor stops its backend (a stdio child gets up to a few
/// seconds to exit); one that still hangs after [`BACKEND_STOP`] is
/// aborted, which drops its connection and with it SIGKILLs a child's
/// process group.
async fn end(mut stopping: Vec<Supervised>) {
    for supervised in &stopping {
        supervised.stop.cancel();
    }
    let all = futures_util::future::join_all(stopping.iter_mut().map(|s| &mut s.task));
    if tokio::time::timeout(BACKEND_STOP, all).await.is_err() {
        tracing::warn!("backends did not stop in {BACKEND_STOP:?}; aborting them");
        for supervised in &stopping {
            supervised.task.abort();
        }
        // An aborted task drops its connection (killing a child's process
        // group) only once it is reaped: wait for that.
        for supervised in &mut stopping {
            let _ = (&mut supervised.task).await;
        }
    }
}
