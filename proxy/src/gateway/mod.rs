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
pub(crate) mod catalog;
mod notify;
mod resolve;
mod subscriptions;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value, json};

use crate::auth::Policy;
use crate::backend::{Backend, BackendSet, ListKind, Status};
use crate::call::{Call, Method};
use crate::config::{Config, Role};
use crate::jsonrpc::{self, ErrorObject};
use crate::metrics::{Metrics, Outcome};
use crate::platform::Platform;
use crate::session::{Session, SessionStore};
use crate::shaping::Shaper;
use crate::traffic::{self, Traffic};
use crate::upstream::{PROTOCOL_VERSION, ProgressSink, SUPPORTED_PROTOCOL_VERSIONS};
use catalog::Catalog;

/// Routes client requests over the configured backends.
pub(crate) struct Gateway {
    /// The backends (and the metrics of calls to them), at the bottom.
    backends: Arc<BackendSet>,
    by_name: HashMap<String, usize>,
    separator: String,
    server_name: String,
    catalog: RwLock<Arc<Catalog>>,
    sessions: Arc<SessionStore>,
    /// Each backend's filters, aliases, arguments, cache and coalescing.
    shapers: Vec<Shaper>,
    /// Canaries, mirrors and failovers of each primary.
    traffic: Arc<Traffic>,
    /// What follows shaping: the traffic stage over the backends.
    routing: traffic::Stage<BackendSet>,
    /// Resource URI → the sessions subscribed to it (see [`subscriptions`]).
    subscribers: subscriptions::Subscribers,
    /// `authorization:`: what each caller may see and use (see [`access`]).
    access: Option<Policy>,
}

impl Gateway {
    /// A gateway over the config's backends (not yet connected).
    pub(crate) fn new(config: &Config, sessions: Arc<SessionStore>, platform: &Platform) -> Self {
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .enumerate()
            .map(|(index, backend)| {
                Arc::new(Backend::new(
                    index,
                    backend.clone(),
                    &config.proxy.name,
                    config.proxy.seed,
                    platform.clone(),
                ))
            })
            .collect();
        // Only primaries answer to their names: a canary's, mirror's or
        // failover's own names are not callable.
        let by_name = config
            .backends
            .iter()
            .enumerate()
            .filter(|(_, backend)| backend.role == Role::Primary)
            .map(|(index, backend)| (backend.name.clone(), index))
            .collect();
        let backends = Arc::new(BackendSet::new(backends));
        let traffic = Arc::new(Traffic::new(config));
        let gateway = Self {
            routing: traffic::Stage::new(Arc::clone(&traffic), Arc::clone(&backends)),
            backends,
            by_name,
            separator: config.proxy.separator.clone(),
            server_name: config.proxy.name.clone(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            sessions,
            shapers: config
                .backends
                .iter()
                .map(|backend| Shaper::new(&backend.shaping))
                .collect(),
            traffic,
            subscribers: subscriptions::Subscribers::default(),
            access: config.authorization.as_ref().map(Policy::new),
        };
        // What backends imply before any connects (see `catalog`).
        gateway.rebuild(&[]);
        gateway
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

    /// The metrics registry.
    pub(crate) fn metrics(&self) -> &Metrics {
        self.backends.metrics()
    }

    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(PoisonError::into_inner))
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
            "capabilities": self.catalog().capabilities(),
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
                let call = self.resolve(session, method, params, progress)?;
                self.serve(call).await
            }
            Method::ResourcesSubscribe => self.subscribe(session, params).await,
            Method::ResourcesUnsubscribe => self.unsubscribe(session, params).await,
            Method::Complete => {
                let call = self.resolve_completion(session, params)?;
                self.forward(call).await
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
            Value::Array(self.visible_items(session, kind)),
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
