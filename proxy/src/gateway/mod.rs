//! The gateway: dispatches a client's MCP request. Lists and `ping` are
//! answered from the aggregated [`catalog`]; a request for a backend's item
//! is resolved into one typed [`Call`] ([`resolve`]) and handed down the
//! stages: the addressed primary's shaping, its traffic route, the
//! backend.
//!
//! ```text
//! handle (parse the method once)
//!   -> resolve (name or URI -> backend, shaped params, safety)
//!   -> Shaper::serve (cache, coalesce) -> Traffic::serve (split, mirror, failover)
//!   -> BackendSet::call (metrics) -> Backend::call (resilience, pool) -> upstream
//! ```
//!
//! Routing is by name prefix (`backend<separator>tool`), so a call for a
//! tool the backend does not list still reaches that backend and gets the
//! backend's own error, exactly as a direct client would. The request's
//! params pass through as the client sent them, `_meta` and progress
//! tokens included, apart from the stripped prefix and what the backend's
//! shaping rules add (default and injected arguments). Subscriptions ([`subscriptions`]) and backend
//! events ([`notify`]: list changes, resource updates, log messages) are
//! the gateway's other two concerns; what a caller may see and use
//! ([`access`]) is judged as lists are answered and names resolved.

mod access;
mod admin_tools;
pub(crate) mod catalog;
mod notify;
mod resolve;
mod subscriptions;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value, json};

use crate::auth::Policy;
use crate::backend::recent::RecentFailures;
use crate::backend::{Backend, BackendSet, ListKind, Status};
use crate::call::{Call, Method};
use crate::config::{Config, Role};
use crate::jsonrpc::{self, ErrorObject};
use crate::metrics::{Metrics, Outcome};
use crate::platform::Platform;
use crate::session::{Session, SessionStore};
use crate::shaping::Shaper;
use crate::trace::CallTrace;
use crate::traffic::{self, Traffic};
use crate::upstream::{PROTOCOL_VERSION, ProgressSink, SUPPORTED_PROTOCOL_VERSIONS};
use catalog::Catalog;
pub(crate) use subscriptions::Subscribers;

/// Routes client requests over the backends of one config. A reload puts
/// another gateway in its place ([`crate::reload`]); a request is served to
/// its end by the gateway it started on.
pub(crate) struct Gateway {
    /// The backends (and the metrics of calls to them), at the bottom.
    backends: Arc<BackendSet>,
    by_name: HashMap<String, usize>,
    separator: String,
    server_name: String,
    catalog: RwLock<Arc<Catalog>>,
    sessions: Arc<SessionStore>,
    /// Each backend's filters, aliases, arguments, cache and coalescing.
    shapers: Vec<Arc<Shaper>>,
    /// Canaries, mirrors and failovers of each primary.
    traffic: Arc<Traffic>,
    /// What follows shaping: the traffic stage over the backends.
    routing: traffic::Stage<BackendSet>,
    /// Resource URI → the sessions subscribed to it (see [`subscriptions`]).
    subscribers: Arc<Subscribers>,
    /// `authorization:`: what each caller may see and use (see [`access`]).
    access: Option<Policy>,
    /// `proxy.admin_tools`: list and answer the `proxy/` tools.
    admin_tools: bool,
}

/// What a gateway is assembled from: each backend of the config and its
/// shaper, in config order — built anew, or kept from the gateway a reload
/// replaces (with their connections, breaker, ejection and cache state) —
/// and what lives as long as the proxy.
pub(crate) struct Parts {
    /// One per `config.backends` entry, in the same order.
    pub backends: Vec<Arc<Backend>>,
    /// One per `config.backends` entry, in the same order.
    pub shapers: Vec<Arc<Shaper>>,
    pub metrics: Arc<Metrics>,
    pub recent: Arc<RecentFailures>,
    pub subscribers: Arc<Subscribers>,
}

impl Parts {
    /// Every part new: the backends not yet connected, empty caches.
    pub(crate) fn fresh(config: &Config, platform: &Platform) -> Self {
        Self {
            backends: config
                .backends
                .iter()
                .map(|backend| new_backend(config, backend, platform))
                .collect(),
            shapers: config
                .backends
                .iter()
                .map(|backend| Arc::new(Shaper::new(&backend.shaping)))
                .collect(),
            metrics: Arc::default(),
            recent: Arc::default(),
            subscribers: Arc::default(),
        }
    }
}

/// A backend of `config`, not yet connected.
pub(crate) fn new_backend(
    config: &Config,
    backend: &crate::config::BackendConfig,
    platform: &Platform,
) -> Arc<Backend> {
    Arc::new(Backend::new(
        backend.clone(),
        &config.proxy.name,
        config.proxy.seed,
        platform.clone(),
    ))
}

impl Gateway {
    /// A gateway over the config's backends, all new (not yet connected).
    pub(crate) fn new(config: &Config, sessions: Arc<SessionStore>, platform: &Platform) -> Self {
        Self::assemble(config, sessions, Parts::fresh(config, platform))
    }

    /// A gateway over `parts`, which follow `config.backends` one to one.
    /// Its catalog is built at once from the listings the backends have.
    pub(crate) fn assemble(config: &Config, sessions: Arc<SessionStore>, parts: Parts) -> Self {
        // Only primaries answer to their names: a canary's, mirror's or
        // failover's own names are not callable.
        let by_name = config
            .backends
            .iter()
            .enumerate()
            .filter(|(_, backend)| backend.role == Role::Primary)
            .map(|(index, backend)| (backend.name.clone(), index))
            .collect();
        let backends = Arc::new(BackendSet::new(parts.backends, parts.metrics, parts.recent));
        let traffic = Arc::new(Traffic::new(config));
        let rules: Vec<_> = parts.shapers.iter().map(|s| &s.rules).collect();
        let catalog = Catalog::build(backends.all(), &rules, &config.proxy.separator);
        Self {
            routing: traffic::Stage::new(Arc::clone(&traffic), Arc::clone(&backends)),
            backends,
            by_name,
            separator: config.proxy.separator.clone(),
            server_name: config.proxy.name.clone(),
            catalog: RwLock::new(Arc::new(catalog)),
            sessions,
            shapers: parts.shapers,
            traffic,
            subscribers: parts.subscribers,
            access: config.authorization.as_ref().map(Policy::new),
            admin_tools: config.proxy.admin_tools,
        }
    }

    /// The shaper of the backend at `index` (its cache and coalescing).
    pub(crate) fn shaper(&self, index: usize) -> &Arc<Shaper> {
        &self.shapers[index]
    }

    /// The subscriptions map, to hand on to the next gateway.
    pub(crate) fn subscribers(&self) -> &Arc<Subscribers> {
        &self.subscribers
    }

    /// The backends, in config order.
    pub(crate) fn backends(&self) -> &[Arc<Backend>] {
        self.backends.all()
    }

    /// Every backend's status, in config order, with what the shaping and
    /// traffic layers counted for it (cache, coalescing, mirror copies).
    pub(crate) fn statuses(&self) -> Vec<Status> {
        self.backends()
            .iter()
            .enumerate()
            .map(|(index, backend)| {
                let mut status = backend.status();
                let (cache, coalesced) = self.shapers[index].counts();
                status.cache_hits = cache.hits;
                status.cache_misses = cache.misses;
                status.coalesced = coalesced;
                if let Some(mirror) = self.traffic.mirror(index) {
                    let counts = mirror.counts();
                    status.mirrored = counts.sent.load(Ordering::Relaxed);
                    status.mirror_dropped = counts.dropped.load(Ordering::Relaxed);
                    status.mirror_skipped = counts.skipped.load(Ordering::Relaxed);
                }
                status
            })
            .collect()
    }

    /// The last failed calls.
    pub(crate) fn recent(&self) -> &Arc<RecentFailures> {
        self.backends.recent()
    }

    /// The metrics registry.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        self.backends.metrics()
    }

    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// What the proxy offers: the backends' union, and `tools` when the
    /// admin tools are on (even if no backend has tools).
    fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = self.catalog().capabilities().clone();
        if self.admin_tools {
            capabilities
                .entry("tools")
                .or_insert_with(|| json!({ "listChanged": true }));
        }
        capabilities
    }

    /// Answer `initialize`: the result to send, with the negotiated version.
    pub(crate) fn initialize(&self, params: Option<&Value>) -> Value {
        let requested = params
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str);
        let version = match requested {
            Some(version) if SUPPORTED_PROTOCOL_VERSIONS.contains(&version) => version,
            _ => PROTOCOL_VERSION,
        };
        json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": { "name": self.server_name, "version": env!("CARGO_PKG_VERSION") },
        })
    }

    /// Answer one request of a session (anything but `initialize`).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        session: &Session,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
        trace: CallTrace,
    ) -> Result<Value, ErrorObject> {
        let Some(method) = Method::parse(method) else {
            return Err(ErrorObject::new(
                jsonrpc::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            ));
        };
        match method {
            Method::Ping => Ok(json!({})),
            Method::List(kind) => Ok(self.list(session, kind)),
            Method::ToolsCall | Method::PromptsGet | Method::ResourcesRead => {
                let tool = params
                    .as_ref()
                    .filter(|_| method == Method::ToolsCall)
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .and_then(|name| self.admin_tool(name));
                if let Some(tool) = tool {
                    return self.call_admin_tool(session, tool, params.as_ref());
                }
                let call = self.resolve(session, method, params, progress)?;
                self.serve(Call {
                    trace: Some(trace),
                    ..call
                })
                .await
            }
            Method::ResourcesSubscribe => self.subscribe(session, params).await,
            Method::ResourcesUnsubscribe => self.unsubscribe(session, params).await,
            Method::Complete => {
                let call = self.resolve_completion(session, params)?;
                self.forward(Call {
                    trace: Some(trace),
                    ..call
                })
                .await
            }
            Method::SetLogLevel => self.set_log_level(session, params).await,
            Method::Initialize => Err(ErrorObject::new(
                jsonrpc::INVALID_REQUEST,
                "the session is already initialized",
            )),
        }
    }

    fn list(&self, session: &Session, kind: ListKind) -> Value {
        let mut result = Map::new();
        result.insert(
            kind.field().into(),
            Value::Array(self.listed_items(session, kind)),
        );
        Value::Object(result)
    }

    /// A call for a primary's item, down its stages: shaping, then the
    /// traffic route over the backends.
    async fn serve(&self, call: Call) -> Result<Value, ErrorObject> {
        self.shapers[call.backend].serve(call, &self.routing).await
    }

    /// A call to the one backend it names, past shaping and traffic.
    async fn forward(&self, call: Call) -> Result<Value, ErrorObject> {
        self.backends.forward(call).await
    }

    /// Record a request that ended because it was cancelled.
    pub(crate) fn record_cancelled(&self, method: &str) {
        // Labelled by the methods the proxy knows: a client's own string
        // would add a time series per name it cares to send.
        let label = Method::parse(method).map_or("unknown", Method::as_str);
        self.backends
            .metrics()
            .record("-", label, Outcome::Cancelled, std::time::Duration::ZERO);
    }
}
