//! One configured MCP server as the rest of the proxy sees it.
//!
//! A [`Backend`] owns the current upstream [`Connection`] (if any), the last
//! [`Listing`] the server gave, and the status the operations endpoints show.
//! Its [`supervisor`] task keeps it connected: it starts the stdio child or
//! reaches the HTTP server, re-lists on `list_changed`, and when the
//! connection dies it respawns or reconnects with capped exponential backoff.
//! Calls never wait for a reconnect: while there is no connection they fail
//! fast with an error that names the backend.

mod backoff;
pub mod listing;
mod resilience;
mod supervisor;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::BackendConfig;
use crate::jsonrpc::{self, ErrorObject};
use crate::upstream::{ConnectSettings, Connection, ProgressSink, UpstreamError};
pub use listing::{ListKind, Listing, Lists};
pub use resilience::{BreakerState, Refusal};
use resilience::{Policies, Resilience};

/// Something a backend tells the gateway.
#[derive(Debug)]
pub enum BackendEvent {
    /// The listed items of these kinds may have changed (after a connect, or a
    /// `list_changed` from the backend).
    ListingChanged {
        /// Index of the backend in the config.
        backend: usize,
        /// The kinds that were re-listed.
        kinds: Vec<ListKind>,
    },
    /// A notification from the backend that belongs to no request
    /// (`notifications/resources/updated`, `notifications/message`, ...).
    Notification {
        /// Index of the backend in the config.
        backend: usize,
        /// The JSON-RPC message as the backend sent it.
        message: Value,
    },
}

/// The connection state of a backend, for logs, `/readyz` and `/admin/backends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Starting or reconnecting; not yet usable.
    Connecting,
    /// Initialized and listed; calls are forwarded.
    Connected,
    /// The last attempt failed or the connection died; retrying in the background.
    Unavailable,
    /// The proxy is shutting down.
    Stopped,
}

/// What `/admin/backends` shows of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Backend name.
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// Connection state.
    pub state: State,
    /// The most recent failure, if any, even after recovery.
    pub last_error: Option<String>,
    /// How many times the backend was respawned or reconnected after its first connection.
    pub restarts: u64,
    /// Calls currently forwarded and not yet answered.
    pub in_flight: u64,
    /// The process id of the current stdio child, when there is one.
    pub pid: Option<u32>,
    /// Tools last listed.
    pub tools: usize,
    /// Resources last listed.
    pub resources: usize,
    /// Resource templates last listed.
    pub resource_templates: usize,
    /// Prompts last listed.
    pub prompts: usize,
    /// Extra attempts started by `hedging`, since start.
    pub hedges: u64,
    /// Retries made (`retry`), since start.
    pub retries: u64,
    /// Attempts or calls that ran out of their `timeout`, since start.
    pub timeouts: u64,
    /// Calls the proxy refused to send (`rate_limit`, `concurrency`,
    /// `circuit_breaker`), since start.
    pub refusals: u64,
    /// The circuit breaker's state (`closed`, `open`, `half_open`), when configured.
    pub breaker: Option<BreakerState>,
    /// How many times the circuit breaker opened, since start.
    pub breaker_opened: u64,
}

/// Why a call through a backend failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// There is no live connection; the call was not sent.
    #[error("backend \"{backend}\" is unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: String,
        /// Why (the last connection error, or "starting").
        reason: String,
    },
    /// The backend did not answer in time (`timeout.per_try` or `overall`).
    #[error("backend \"{backend}\" did not answer within {after:?}")]
    Timeout {
        /// Backend name.
        backend: String,
        /// The limit that ran out.
        after: std::time::Duration,
    },
    /// The proxy refused to send the call, to protect the backend
    /// (`rate_limit`, `concurrency`, `circuit_breaker`): a local rejection.
    #[error("backend \"{backend}\": call refused by the proxy ({})", .reason.as_str())]
    Refused {
        /// Backend name.
        backend: String,
        /// Which limit.
        reason: Refusal,
    },
    /// The upstream request failed.
    #[error("backend \"{backend}\": {error}")]
    Upstream {
        /// Backend name.
        backend: String,
        /// What went wrong.
        error: UpstreamError,
    },
}

impl CallError {
    /// The JSON-RPC error the client receives. A backend's own JSON-RPC error
    /// passes unchanged; the proxy's errors name the backend in the message and
    /// in `data.backend`.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            CallError::Upstream {
                error: UpstreamError::JsonRpc(error),
                ..
            } => error.clone(),
            CallError::Unavailable { backend, reason } => {
                ErrorObject::new(jsonrpc::BACKEND_UNAVAILABLE, self.to_string())
                    .with_data(json!({ "backend": backend, "reason": reason }))
            }
            CallError::Refused { backend, reason } => {
                ErrorObject::new(jsonrpc::BACKEND_LIMITED, self.to_string())
                    .with_data(json!({ "backend": backend, "reason": reason.as_str() }))
            }
            CallError::Timeout { backend, after } => {
                ErrorObject::new(jsonrpc::BACKEND_TIMEOUT, self.to_string()).with_data(
                    json!({ "backend": backend, "timeout_ms": after.as_millis() as u64 }),
                )
            }
            CallError::Upstream { backend, error } => {
                let code = match error {
                    UpstreamError::Connect(_) => jsonrpc::BACKEND_UNAVAILABLE,
                    _ => jsonrpc::BACKEND_TRANSPORT,
                };
                ErrorObject::new(code, self.to_string())
                    .with_data(json!({ "backend": backend, "reason": error.to_string() }))
            }
        }
    }
}

struct Health {
    state: State,
    last_error: Option<String>,
    restarts: u64,
}

/// A configured backend: its connection, listing and status.
pub struct Backend {
    index: usize,
    config: BackendConfig,
    settings: ConnectSettings,
    connection: RwLock<Option<Connection>>,
    listing: RwLock<Arc<Listing>>,
    health: Mutex<Health>,
    in_flight: AtomicU64,
    /// Resource URIs subscribed through this backend, replayed after a
    /// respawn or reconnect (a new session knows none of them).
    subscriptions: Mutex<BTreeSet<String>>,
    /// Timeouts and retries around each call.
    resilience: Resilience,
}

impl Backend {
    /// A backend that has not connected yet. `index` is its place in the
    /// config; `seed` (the proxy's) seeds its random choices.
    pub fn new(index: usize, config: BackendConfig, client_name: &str, seed: u64) -> Self {
        let resilience = Resilience::new(&config.name, Policies::of(&config), seed);
        let settings = ConnectSettings {
            backend: config.name.clone(),
            client_name: client_name.to_owned(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            init_timeout: config.init_timeout,
        };
        Self {
            index,
            config,
            settings,
            resilience,
            connection: RwLock::new(None),
            listing: RwLock::new(Arc::new(Listing::default())),
            health: Mutex::new(Health {
                state: State::Connecting,
                last_error: None,
                restarts: 0,
            }),
            in_flight: AtomicU64::new(0),
            subscriptions: Mutex::default(),
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Start the supervisor task that connects and keeps the backend connected
    /// until `shutdown` is cancelled; then it shuts the connection down (for a
    /// stdio child: close stdin, SIGTERM, SIGKILL) and the task ends.
    pub fn spawn_supervisor(
        self: &Arc<Self>,
        events: mpsc::UnboundedSender<BackendEvent>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        // Every log line of the supervisor (and of the transport it drives)
        // carries the backend's name through this span.
        let span = tracing::info_span!("backend", name = %self.config.name);
        tokio::spawn(supervisor::run(Arc::clone(self), events, shutdown).instrument(span))
    }

    /// The last listing (kept while the backend is down, so names stay stable).
    pub fn listing(&self) -> Arc<Listing> {
        Arc::clone(&self.listing.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the backend is connected now.
    pub fn is_connected(&self) -> bool {
        self.connection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Forward one request. Fails fast when there is no connection.
    pub async fn call(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, CallError> {
        // Only a stack that may repeat the call needs to know whether it is
        // safe to: the lookup scans the tool list, so it stays off the path
        // of backends without retry or hedging.
        let safe = self.resilience.may_repeat()
            && resilience::safety::safe_to_repeat(
                method,
                params.as_ref(),
                &self.listing().lists.tools,
                &self.config.safe_to_repeat,
            );
        // Progress is relayed from the first attempt only: a retry's
        // backend would count again from the start, and MCP requires a
        // request's progress to increase.
        let mut progress = progress;
        self.resilience
            .call(safe, || {
                self.attempt(method, params.clone(), progress.take())
            })
            .await
    }

    /// One attempt of a call: fails fast when the backend is not connected.
    async fn attempt(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, CallError> {
        let connection = self
            .connection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(connection) = connection else {
            return Err(CallError::Unavailable {
                backend: self.config.name.clone(),
                reason: self.unavailable_reason(),
            });
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&self.in_flight);
        connection
            .request(method, params, progress)
            .await
            .map_err(|error| CallError::Upstream {
                backend: self.config.name.clone(),
                error,
            })
    }

    /// Remember that clients are (or no longer are) subscribed to `uri`.
    pub fn record_subscription(&self, uri: &str, subscribed: bool) {
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if subscribed {
            subscriptions.insert(uri.to_owned());
        } else {
            subscriptions.remove(uri);
        }
    }

    /// The status `/admin/backends` reports.
    pub fn status(&self) -> Status {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let listing = self.listing();
        let counts = self.resilience.counts();
        Status {
            name: self.config.name.clone(),
            transport: self.config.transport.kind(),
            state: health.state,
            last_error: health.last_error.clone(),
            restarts: health.restarts,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            pid: self
                .connection
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .and_then(Connection::pid),
            tools: listing.lists.tools.len(),
            resources: listing.lists.resources.len(),
            resource_templates: listing.lists.resource_templates.len(),
            prompts: listing.lists.prompts.len(),
            hedges: counts.hedges,
            retries: counts.retries,
            timeouts: counts.timeouts,
            refusals: counts.refusals,
            breaker: counts.breaker.map(|(state, _)| state),
            breaker_opened: counts.breaker.map_or(0, |(_, opened)| opened),
        }
    }

    fn unavailable_reason(&self) -> String {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match (&health.state, &health.last_error) {
            (State::Stopped, _) => "the proxy is shutting down".to_owned(),
            (_, Some(error)) => error.clone(),
            (_, None) => "not connected yet".to_owned(),
        }
    }
}

/// Counts a call as in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
