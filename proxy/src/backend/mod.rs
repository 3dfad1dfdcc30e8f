//! One configured MCP server as the rest of the proxy sees it.
//!
//! A [`Backend`] owns its replica [`pool`] (each endpoint with its upstream
//! [`Connection`], if any), the last [`Listing`] the server gave, and the
//! status the operations endpoints show. A [`supervisor`] per endpoint keeps
//! it connected: it starts the stdio child or reaches the HTTP server,
//! re-lists on `list_changed`, and when the connection dies it respawns or
//! reconnects with capped exponential backoff. Calls never wait for a
//! reconnect: they go to a connected endpoint, and while there is none they
//! fail fast with an error that names the backend.

mod failure;
pub(crate) mod listing;
mod pool;
pub(crate) mod recent;
mod resilience;
mod set;
mod supervisor;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::call::{Call, Method, Safety, ToolSafety};
use crate::config::{BackendConfig, RoleKind};

use crate::platform::Platform;
use crate::trace::AttemptSpan;
use crate::upstream::{ConnectSettings, Outbound, ProgressSink, UpstreamError};
pub(crate) use failure::CallError;
pub(crate) use listing::{ListKind, Listing, Lists};
use pool::{Endpoint, Pick, Pool};
pub use resilience::BreakerState;
pub(crate) use resilience::Refusal;
use resilience::{AttemptReport, Policies, Resilience, Verdict};
pub(crate) use set::BackendSet;

/// Something a backend tells the gateway.
#[derive(Debug)]
pub(crate) enum BackendEvent {
    /// The listed items of these kinds may have changed (after a connect, or a
    /// `list_changed` from the backend).
    ListingChanged {
        /// The kinds that were re-listed.
        kinds: Vec<ListKind>,
    },
    /// A notification from the backend that belongs to no request
    /// (`notifications/resources/updated`, `notifications/message`, ...).
    Notification {
        /// The backend that sent it (not its place in the config, which a
        /// reload can change; not its name, which a rebuilt backend and its
        /// draining predecessor share).
        backend: BackendId,
        /// The JSON-RPC message as the backend sent it.
        message: Value,
    },
}

/// One backend object, unlike any other built in this process: what tells
/// a rebuilt backend from its draining predecessor of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackendId(u64);

impl BackendId {
    fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
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
    /// `primary`, or `canary`, `mirror` or `failover` (of [`Status::serves`]).
    pub role: RoleKind,
    /// The primary whose calls it serves, when it has a role.
    pub serves: Option<String>,
    /// Connection state.
    pub state: State,
    /// Whether it has listed its tools, resources and prompts at least once
    /// (until then clients see none of its names).
    pub listed: bool,
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
    /// How many times it closed again after its half-open probes, since start.
    pub breaker_closed: u64,
    /// Endpoints ejected by `outlier_detection`, since start.
    pub ejections: u64,
    /// Answers served from the `cache`, since start.
    pub cache_hits: u64,
    /// Cacheable calls the `cache` could not answer, since start.
    pub cache_misses: u64,
    /// Calls that joined an identical one in flight (`coalesce`), since start.
    pub coalesced: u64,
    /// For a mirror (`mirror_of`): copies sent to it, since start.
    pub mirrored: u64,
    /// For a mirror: copies dropped because `mirror_max_in_flight` were in flight.
    pub mirror_dropped: u64,
    /// For a mirror: calls not copied because they are not safe to repeat
    /// (and `mirror_unsafe` is off).
    pub mirror_skipped: u64,
    /// Each endpoint of the pool (one for a backend without `endpoints`).
    pub endpoints: Vec<EndpointStatus>,
}

/// What `/admin/backends` shows of one endpoint of a backend's pool.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// The URL (without credentials or query), or `stdio:COMMAND`.
    pub endpoint: String,
    /// Connection state.
    pub state: State,
    /// The endpoint's most recent failure, if any, even after recovery.
    pub last_error: Option<String>,
    /// Respawns or reconnects after its first connection.
    pub restarts: u64,
    /// Calls on it now.
    pub in_flight: u64,
    /// The process id of its stdio child, when there is one.
    pub pid: Option<u32>,
    /// Whether `outlier_detection` has taken it out of the pool now.
    pub ejected: bool,
    /// While ejected: how long until it returns, in milliseconds.
    pub returns_in_ms: Option<u64>,
    /// While ejected: when it returns, as Unix time in milliseconds.
    pub returns_at_unix_ms: Option<u64>,
    /// How many ejections its next ejection's length is based on (with
    /// `outlier_detection`).
    pub times_ejected: Option<u32>,
    /// Failures in a row since its last healthy answer (with `outlier_detection`).
    pub consecutive_failures: Option<u32>,
}

/// A configured backend: its endpoints, listing and status.
pub(crate) struct Backend {
    id: BackendId,
    config: BackendConfig,
    settings: ConnectSettings,
    /// The replicas and their connections.
    pool: Pool,
    listing: RwLock<Arc<Listing>>,
    /// The safety of each tool of `listing`, kept beside it.
    tool_safety: RwLock<Arc<ToolSafety>>,
    /// Whether any endpoint has listed yet (the names are known).
    listed: AtomicBool,
    /// The most recent failure of any endpoint, kept after recovery.
    last_error: Mutex<Option<String>>,
    /// Resource URIs subscribed through this backend, replayed after a
    /// respawn or reconnect (a new session knows none of them).
    subscriptions: Mutex<BTreeSet<String>>,
    /// Timeouts and retries around each call.
    resilience: Resilience,
}

impl Backend {
    /// A backend that has not connected yet; `seed` (the proxy's) seeds
    /// its random choices.
    pub(crate) fn new(
        config: BackendConfig,
        client_name: &str,
        seed: u64,
        platform: Platform,
    ) -> Self {
        let resilience = Resilience::new(&config.name, Policies::of(&config), seed);
        let settings = ConnectSettings {
            platform,
            backend: config.name.clone(),
            client_name: client_name.to_owned(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            init_timeout: config.init_timeout,
        };
        // The balancer draws from its own stream, apart from retry jitter.
        let pool_seed = (seed ^ resilience::name_hash(&config.name)).rotate_left(32);
        let pool = Pool::new(&config, pool_seed);
        Self {
            id: BackendId::next(),
            config,
            settings,
            resilience,
            pool,
            listing: RwLock::new(Arc::new(Listing::default())),
            tool_safety: RwLock::default(),
            listed: AtomicBool::new(false),
            last_error: Mutex::new(None),
            subscriptions: Mutex::default(),
        }
    }

    /// This backend object's identity.
    pub(crate) fn id(&self) -> BackendId {
        self.id
    }

    /// The backend's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether `method` addressing `target` (its own tool name, or a URI)
    /// may be repeated or cached, by its listing and `safe_to_repeat`.
    pub(crate) fn safety(&self, method: Method, target: &str) -> Safety {
        let table = Arc::clone(
            &self
                .tool_safety
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        table.of(method, target, &self.config.safe_to_repeat)
    }

    /// Whether any endpoint has listed yet (its tools' safety is known).
    pub(crate) fn has_listed(&self) -> bool {
        self.listed.load(Ordering::Relaxed)
    }

    /// The capabilities its config implies, for as long as it has never
    /// listed: its `capabilities:` key, or tools alone.
    pub(crate) fn configured_capabilities(&self) -> serde_json::Map<String, serde_json::Value> {
        self.config.capabilities.clone().unwrap_or_else(|| {
            let mut tools = serde_json::Map::new();
            tools.insert("tools".into(), serde_json::json!({}));
            tools
        })
    }

    /// The primary whose calls it serves: its own name for a primary.
    pub(crate) fn primary_name(&self) -> &str {
        self.config.role.primary().unwrap_or(&self.config.name)
    }

    /// Whether its names are its own (it has no `canary_of`, `mirror_of`
    /// or `failover_for`).
    pub(crate) fn serves_own_traffic(&self) -> bool {
        self.config.role == crate::config::Role::Primary
    }

    /// Start the supervisor task that connects each endpoint and keeps it
    /// connected until `shutdown` is cancelled; then it shuts the
    /// connections down (for a stdio child: close stdin, SIGTERM, SIGKILL)
    /// and the task ends. The endpoints' supervisors run inside this one
    /// task, so aborting it drops (and kills) them all.
    pub(crate) fn spawn_supervisor(
        self: &Arc<Self>,
        events: mpsc::UnboundedSender<BackendEvent>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let pooled = self.pool.endpoints().len() > 1;
        let supervisors = (0..self.pool.endpoints().len()).map(|endpoint| {
            // Every log line of the supervisor (and of the transport it
            // drives) names the backend, and in a pool the endpoint.
            let span = if pooled {
                let label = &self.pool.endpoints()[endpoint].label;
                tracing::info_span!("backend", name = %self.config.name, endpoint = %label)
            } else {
                tracing::info_span!("backend", name = %self.config.name)
            };
            supervisor::run(Arc::clone(self), endpoint, events.clone(), shutdown.clone())
                .instrument(span)
        });
        tokio::spawn(futures_util::future::join_all(supervisors).map(drop))
    }

    /// The last listing (kept while the backend is down, so names stay stable).
    pub(crate) fn listing(&self) -> Arc<Listing> {
        Arc::clone(&self.listing.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Calls in flight on its endpoints now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.pool.endpoints().iter().map(Endpoint::in_flight).sum()
    }

    /// The longest a call to it may take (`timeout.overall`).
    pub(crate) fn longest_call(&self) -> Option<std::time::Duration> {
        self.config.timeout.overall
    }

    /// Whether any endpoint of the backend is connected now.
    pub(crate) fn is_connected(&self) -> bool {
        self.pool.endpoints().iter().any(Endpoint::is_connected)
    }

    /// Forward one call. With no endpoint connected it waits for a
    /// restart in progress (`wait_for_ready`) and fails fast otherwise.
    pub(crate) async fn call(&self, call: Call) -> Result<Value, CallError> {
        // Every replica must know a subscription: any of them may send the
        // update, and any may serve the next read.
        if self.pool.endpoints().len() > 1
            && matches!(
                call.method,
                Method::ResourcesSubscribe | Method::ResourcesUnsubscribe
            )
        {
            return self.broadcast(call).await;
        }
        let Call {
            method,
            params,
            progress,
            safety,
            credential,
            trace,
            ..
        } = call;
        let method = method.as_str();
        // `forward_auth`: the client's own credential, to this backend only
        // if it is configured to receive it.
        let credential = credential.filter(|_| self.config.forward_auth);
        // Progress is relayed by one attempt only: a retry's backend would
        // count again from the start, and MCP requires a request's progress
        // to increase. The sink goes to the first attempt that is sent and
        // comes back if it provably never left.
        let progress = Mutex::new(progress);
        let mut tried: Vec<usize> = Vec::new();
        let mut attempts = 0;
        // Before each attempt (and before its slot, breaker pass, per-try
        // timer or hedge timer), a restart in progress is waited for: up to
        // `wait_for_ready`, never past the call's own deadline.
        let wait_for_ready = self.config.wait_for_ready;
        let ready = |deadline: Option<Instant>| {
            let within = deadline.map_or(wait_for_ready, |deadline| {
                wait_for_ready.min(deadline.saturating_duration_since(Instant::now()))
            });
            self.pool.until_ready(within).map(drop)
        };
        self.resilience
            .call(ready, safety.repeatable, |kind| {
                let pick = self.pool.pick(&tried);
                let report = match pick {
                    Pick::Endpoint(endpoint) => {
                        tried.push(endpoint);
                        EndpointReport::on(self, endpoint)
                    }
                    Pick::NotConnected | Pick::AllEjected => EndpointReport::none(self),
                };
                attempts += 1;
                // Each attempt is a span of its own under the call's, so
                // its backend sees it as the parent.
                let span = trace.as_ref().map(|trace| {
                    let endpoint = match pick {
                        Pick::Endpoint(endpoint) => self.pool.endpoints()[endpoint].label.as_str(),
                        Pick::NotConnected | Pick::AllEjected => "-",
                    };
                    trace.attempt(&self.config.name, endpoint, attempts, kind)
                });
                let outbound = (credential.as_ref(), span);
                (
                    self.attempt(pick, method, params.clone(), &progress, outbound),
                    report,
                )
            })
            .await
    }

    /// One attempt of a call, in its span if it is traced: the client's
    /// credential and the attempt's trace context go with it.
    async fn attempt(
        &self,
        pick: Pick,
        method: &str,
        params: Option<Value>,
        progress: &Mutex<Option<ProgressSink>>,
        (credential, mut span): (Option<&http::HeaderValue>, Option<AttemptSpan>),
    ) -> Result<Value, CallError> {
        let outbound = Outbound {
            credential,
            trace: span.as_ref().map(AttemptSpan::context),
        };
        let in_span = span
            .as_ref()
            .map_or_else(tracing::Span::none, |span| span.span().clone());
        let result = self
            .send(pick, method, params, progress, outbound)
            .instrument(in_span)
            .await;
        if let Some(span) = &mut span {
            span.set_outcome(failure::outcome_of(&result).label());
        }
        result
    }

    /// Sends an attempt on the endpoint `pick` names: fails fast when
    /// there is none. It takes the progress sink from `progress` when it
    /// sends, and puts it back when the request never left.
    async fn send(
        &self,
        pick: Pick,
        method: &str,
        params: Option<Value>,
        progress: &Mutex<Option<ProgressSink>>,
        outbound: Outbound<'_>,
    ) -> Result<Value, CallError> {
        let endpoint = match pick {
            Pick::Endpoint(endpoint) => &self.pool.endpoints()[endpoint],
            Pick::NotConnected => return Err(self.unavailable()),
            Pick::AllEjected => {
                return Err(CallError::Refused {
                    backend: self.config.name.clone(),
                    reason: Refusal::Ejected,
                });
            }
        };
        let sink = progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let sent = endpoint
            .request(method, params, sink.clone(), outbound)
            .await;
        if matches!(sent, None | Some(Err(UpstreamError::Connect(_)))) {
            *progress.lock().unwrap_or_else(PoisonError::into_inner) = sink;
        }
        match sent {
            // Disconnected between the pick and the send.
            None => Err(self.unavailable()),
            Some(result) => result.map_err(|error| self.upstream_error(error)),
        }
    }

    /// Sends one request to every connected endpoint at once, each bounded
    /// by `init_timeout` (as renewals after a reconnect are), outside the
    /// resilience stack: a per-try timeout over the whole fan-out would
    /// turn replicas that did answer into a failure. Any success is the
    /// answer, else the first error.
    async fn broadcast(&self, call: Call) -> Result<Value, CallError> {
        let within = self.config.init_timeout;
        let (method, params) = (call.method_name(), call.params);
        let sends = self.pool.endpoints().iter().map(|endpoint| {
            let params = params.clone();
            async move {
                match tokio::time::timeout(
                    within,
                    endpoint.request(method, params, None, Outbound::default()),
                )
                .await
                {
                    Ok(sent) => sent,
                    Err(_) => Some(Err(UpstreamError::Lost(format!(
                        "{} did not answer within {within:?}",
                        endpoint.label
                    )))),
                }
            }
        });
        let results: Vec<_> = futures_util::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(value) => return Ok(value),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.map_or_else(|| self.unavailable(), |e| self.upstream_error(e)))
    }

    fn upstream_error(&self, error: UpstreamError) -> CallError {
        CallError::Upstream {
            backend: self.config.name.clone(),
            error,
        }
    }

    fn unavailable(&self) -> CallError {
        CallError::Unavailable {
            backend: self.config.name.clone(),
            reason: self.unavailable_reason(),
        }
    }

    /// Remember that clients are (or no longer are) subscribed to `uri`.
    pub(crate) fn record_subscription(&self, uri: &str, subscribed: bool) {
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

    /// Take over from `predecessor`, the backend a reload rebuilt this
    /// one from: its subscriptions (renewed when this one connects, as
    /// after a reconnect) and its last listing, shown until this one lists,
    /// so names stay listed and routable meanwhile.
    pub(crate) fn inherit(&self, predecessor: &Backend) {
        let held = predecessor
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(held);
        if !predecessor.has_listed() {
            return;
        }
        let listing = predecessor.listing();
        let safety = ToolSafety::new(&listing.lists.tools, &self.config.safe_to_repeat);
        *self
            .tool_safety
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(safety);
        *self.listing.write().unwrap_or_else(PoisonError::into_inner) = listing;
        self.listed.store(true, Ordering::Relaxed);
    }

    /// The status `/admin/backends` reports.
    pub(crate) fn status(&self) -> Status {
        let listing = self.listing();
        let counts = self.resilience.counts();
        let endpoints: Vec<EndpointStatus> = self
            .pool
            .endpoints()
            .iter()
            .enumerate()
            .map(|(i, endpoint)| self.endpoint_status(i, endpoint))
            .collect();
        Status {
            name: self.config.name.clone(),
            transport: self.config.transport_kind(),
            role: self.config.role.kind(),
            serves: self.config.role.primary().map(str::to_owned),
            state: self.pool.state(),
            listed: self.listed.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            restarts: endpoints.iter().map(|e| e.restarts).sum(),
            in_flight: endpoints.iter().map(|e| e.in_flight).sum(),
            pid: endpoints.iter().find_map(|e| e.pid),
            tools: listing.lists.tools.len(),
            resources: listing.lists.resources.len(),
            resource_templates: listing.lists.resource_templates.len(),
            prompts: listing.lists.prompts.len(),
            hedges: counts.hedges,
            retries: counts.retries,
            timeouts: counts.timeouts,
            refusals: counts.refusals,
            breaker: counts.breaker.map(|b| b.state),
            breaker_opened: counts.breaker.map_or(0, |b| b.opened),
            breaker_closed: counts.breaker.map_or(0, |b| b.closed),
            ejections: self.pool.ejections(),
            // Counted by the shaping and traffic layers; see `Gateway::statuses`.
            cache_hits: 0,
            cache_misses: 0,
            coalesced: 0,
            mirrored: 0,
            mirror_dropped: 0,
            mirror_skipped: 0,
            endpoints,
        }
    }

    fn endpoint_status(&self, index: usize, endpoint: &Endpoint) -> EndpointStatus {
        let health = endpoint.health();
        let ejection = self.pool.ejection(index);
        let returns_in = ejection.and_then(|e| e.returns_in);
        EndpointStatus {
            endpoint: endpoint.label.clone(),
            state: health.state,
            last_error: health.last_error,
            restarts: health.restarts,
            in_flight: endpoint.in_flight(),
            pid: endpoint.pid(),
            ejected: returns_in.is_some(),
            returns_in_ms: returns_in.map(|d| d.as_millis() as u64),
            // Display only: the ejection itself runs on tokio's clock.
            returns_at_unix_ms: returns_in.and_then(|d| {
                let at = std::time::SystemTime::now() + d;
                at.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|t| t.as_millis() as u64)
            }),
            times_ejected: ejection.map(|e| e.times_ejected),
            consecutive_failures: ejection.map(|e| e.consecutive_failures),
        }
    }

    fn unavailable_reason(&self) -> String {
        if self.pool.state() == State::Stopped {
            return "the proxy is shutting down".to_owned();
        }
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "not connected yet".to_owned())
    }
}

/// Tells the pool's outlier detector how an attempt on one endpoint went.
struct EndpointReport<'a> {
    backend: &'a Backend,
    /// The endpoint, and its outlier epoch when the attempt was sent.
    endpoint: Option<(usize, u64)>,
}

impl<'a> EndpointReport<'a> {
    fn on(backend: &'a Backend, endpoint: usize) -> Self {
        Self {
            backend,
            endpoint: Some((endpoint, backend.pool.epoch(endpoint))),
        }
    }

    fn none(backend: &'a Backend) -> Self {
        Self {
            backend,
            endpoint: None,
        }
    }
}

impl AttemptReport for EndpointReport<'_> {
    fn report(self, verdict: Verdict) {
        if let Some((endpoint, epoch)) = self.endpoint {
            self.backend
                .pool
                .report(&self.backend.config.name, endpoint, epoch, verdict);
        }
    }
}
