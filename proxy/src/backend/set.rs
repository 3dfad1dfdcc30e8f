//! Every configured backend, by config index, as the stages above reach
//! them: the bottom of the path of a call. A call to one backend goes
//! through [`BackendSet::call`], which records its outcome in the metrics
//! (one place for every call, routed or not); the traffic stage sees the
//! set through [`Backends`].

use std::future::Future;
use std::ops::Index;
use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use super::recent::RecentFailures;
use super::{Backend, CallError};
use crate::call::{Backends, Call};
use crate::jsonrpc::ErrorObject;
use crate::metrics::Metrics;

/// The backends, in config order, and the metrics of the calls to them.
pub(crate) struct BackendSet {
    backends: Vec<Arc<Backend>>,
    /// Shared with the sets before and after a reload: counts run on.
    metrics: Arc<Metrics>,
    /// The last failures (shared across reloads too).
    recent: Arc<RecentFailures>,
}

impl BackendSet {
    pub(crate) fn new(
        backends: Vec<Arc<Backend>>,
        metrics: Arc<Metrics>,
        recent: Arc<RecentFailures>,
    ) -> Self {
        Self {
            backends,
            metrics,
            recent,
        }
    }

    /// The last failures of calls.
    pub(crate) fn recent(&self) -> &Arc<RecentFailures> {
        &self.recent
    }

    /// The backends, in config order.
    pub(crate) fn all(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// The metrics registry.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Calls the backend at `backend` and records the outcome.
    pub(crate) async fn call(&self, backend: usize, call: Call) -> Result<Value, CallError> {
        let target = &self.backends[backend];
        let method = call.method_name();
        let started = Instant::now();
        let result = target.call(call).await;
        let outcome = super::failure::outcome_of(&result);
        if let Err(error) = &result {
            self.recent
                .record(target.name(), method, error.to_error_object().message);
        }
        self.metrics
            .record(target.name(), method, outcome, started.elapsed());
        result
    }

    /// A call to the one backend it addresses, past shaping and traffic,
    /// its failure told as the client's JSON-RPC error.
    pub(crate) async fn forward(&self, call: Call) -> Result<Value, ErrorObject> {
        self.call(call.backend, call)
            .await
            .map_err(|error| error.to_error_object())
    }
}

impl Index<usize> for BackendSet {
    type Output = Arc<Backend>;

    fn index(&self, backend: usize) -> &Arc<Backend> {
        &self.backends[backend]
    }
}

impl Backends for BackendSet {
    fn call(
        &self,
        backend: usize,
        call: Call,
    ) -> impl Future<Output = Result<Value, CallError>> + Send {
        BackendSet::call(self, backend, call)
    }

    fn copy(&self, backend: usize, call: Call) -> impl Future<Output = ()> + Send + 'static {
        let mirror = Arc::clone(&self.backends[backend]);
        // The mirror's answer, success or failure, is discarded, and
        // copies are not counted as calls in the metrics.
        async move { drop(mirror.call(call).await) }
    }

    fn name(&self, backend: usize) -> &str {
        self.backends[backend].name()
    }
}
