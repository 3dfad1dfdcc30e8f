//! The gateway: answers a client's MCP request from the aggregated catalog,
//! or routes it to the backend that owns the name or URI it addresses.
//!
//! Routing is by name prefix (`backend<separator>tool`), so a call for a
//! tool the backend does not list still reaches that backend and gets the
//! backend's own error, exactly as a direct client would. The request's
//! params pass through unchanged apart from the stripped prefix; `_meta` and
//! progress tokens included. Backend events (list changes, resource updates,
//! log messages) are turned into notifications for the connected sessions.

pub mod catalog;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::{Backend, BackendEvent, CallError, ListKind, Status};
use crate::config::{Config, Role};
use crate::jsonrpc::{self, ErrorObject};
use crate::metrics::{Metrics, Outcome};
use crate::platform::Platform;
use crate::session::{Session, SessionStore};
use crate::shaping::rules::TooLarge;
use crate::shaping::{RequestKey, Shaper};
use crate::traffic::{self, Traffic};
use crate::upstream::{PROTOCOL_VERSION, ProgressSink, SUPPORTED_PROTOCOL_VERSIONS, UpstreamError};
use catalog::Catalog;

/// MCP log levels, least severe first (RFC 5424 severities).
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// A log level's rank in [`LOG_LEVELS`].
fn log_severity(level: &str) -> Option<u8> {
    LOG_LEVELS
        .iter()
        .position(|&known| known == level)
        .and_then(|rank| u8::try_from(rank).ok())
}

/// Completes a tool call's arguments by the primary's rules and checks
/// their size; `name` is the tool as the client called it.
fn shape_arguments(
    rules: &crate::shaping::rules::Rules,
    own: &str,
    name: &str,
    params: &mut Value,
) -> Result<(), ErrorObject> {
    if rules.touches_arguments() {
        let arguments = params
            .as_object_mut()
            .map(|p| p.entry("arguments").or_insert_with(|| json!({})));
        // Arguments that are not an object are the backend's to refuse.
        if let Some(Value::Object(arguments)) = arguments {
            rules.shape_arguments(own, arguments);
        }
    }
    if let Some(arguments) = params.get("arguments")
        && let Err(TooLarge { size, limit }) = rules.check_size(arguments)
    {
        return Err(ErrorObject::new(
            jsonrpc::INVALID_PARAMS,
            format!(
                "the arguments of {name} take {size} bytes, over the backend's max_argument_size of {limit} bytes"
            ),
        )
        .with_data(json!({ "size": size, "max_argument_size": limit })));
    }
    Ok(())
}

/// Routes client requests over the configured backends.
pub struct Gateway {
    backends: Vec<Arc<Backend>>,
    by_name: HashMap<String, usize>,
    separator: String,
    server_name: String,
    catalog: RwLock<Arc<Catalog>>,
    sessions: Arc<SessionStore>,
    metrics: Metrics,
    /// Each backend's filters, aliases, arguments, cache and coalescing.
    shapers: Vec<Shaper>,
    /// Canaries, mirrors and failovers of each primary.
    traffic: Traffic,
    /// Resource URI → the sessions subscribed to it (see [`Gateway::subscribe`]).
    subscribers: tokio::sync::Mutex<HashMap<String, HashSet<String>>>,
}

impl Gateway {
    /// A gateway over the config's backends (not yet connected).
    pub fn new(config: &Config, sessions: Arc<SessionStore>, platform: &Platform) -> Self {
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
        Self {
            backends,
            by_name,
            separator: config.proxy.separator.clone(),
            server_name: config.proxy.name.clone(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            sessions,
            metrics: Metrics::default(),
            shapers: config.backends.iter().map(Shaper::new).collect(),
            traffic: Traffic::new(config),
            subscribers: tokio::sync::Mutex::default(),
        }
    }

    /// The backends, in config order.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Every backend's status, in config order, with what the shaping and
    /// traffic layers counted for it (cache, coalescing, mirror copies).
    pub fn statuses(&self) -> Vec<Status> {
        self.backends
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
                }
                status
            })
            .collect()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Answer `initialize`: the negotiated version and the result to send.
    pub fn initialize(&self, params: Option<&Value>) -> (String, Value) {
        let requested = params
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str);
        let version = match requested {
            Some(version) if SUPPORTED_PROTOCOL_VERSIONS.contains(&version) => version,
            _ => PROTOCOL_VERSION,
        };
        let result = json!({
            "protocolVersion": version,
            "capabilities": self.catalog().capabilities(),
            "serverInfo": { "name": self.server_name, "version": env!("CARGO_PKG_VERSION") },
        });
        (version.to_owned(), result)
    }

    /// Answer one request of a session (anything but `initialize`).
    pub async fn handle(
        self: &Arc<Self>,
        session: &Session,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, ErrorObject> {
        match method {
            "ping" => Ok(json!({})),
            "tools/list" => Ok(self.list(ListKind::Tools)),
            "resources/list" => Ok(self.list(ListKind::Resources)),
            "resources/templates/list" => Ok(self.list(ListKind::ResourceTemplates)),
            "prompts/list" => Ok(self.list(ListKind::Prompts)),
            "tools/call" => {
                self.call_by_name(session, method, "name", "tool", params, progress)
                    .await
            }
            "prompts/get" => {
                self.call_by_name(session, method, "name", "prompt", params, progress)
                    .await
            }
            "resources/read" => self.call_by_uri(session, method, params, progress).await,
            "resources/subscribe" => self.subscribe(session, params).await,
            "resources/unsubscribe" => self.unsubscribe(session, params).await,
            "completion/complete" => self.complete(params).await,
            "logging/setLevel" => self.set_log_level(session, params).await,
            "initialize" => Err(ErrorObject::new(
                jsonrpc::INVALID_REQUEST,
                "the session is already initialized",
            )),
            _ => Err(ErrorObject::new(
                jsonrpc::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )),
        }
    }

    fn list(&self, kind: ListKind) -> Value {
        let catalog = self.catalog();
        let mut result = Map::new();
        result.insert(
            kind.field().into(),
            Value::Array(catalog.items(kind).to_vec()),
        );
        Value::Object(result)
    }

    /// Split `backend<separator>name` into the backend's index and the backend's own name.
    fn split_name<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        let (backend, rest) = name.split_once(self.separator.as_str())?;
        self.by_name.get(backend).map(|&index| (index, rest))
    }

    async fn call_by_name(
        self: &Arc<Self>,
        session: &Session,
        method: &str,
        field: &str,
        what: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, ErrorObject> {
        let Some(mut params) = params.filter(Value::is_object) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("{method} needs params with a {what} name"),
            ));
        };
        let Some(name) = params.get(field).and_then(Value::as_str).map(str::to_owned) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("{method} needs a \"{field}\" string"),
            ));
        };
        let name = name.as_str();
        let unknown =
            || ErrorObject::new(jsonrpc::INVALID_PARAMS, format!("unknown {what}: {name}"));
        let Some((backend, client_name)) = self.split_name(name) else {
            return Err(unknown());
        };
        let rules = &self.shapers[backend].rules;
        // Hidden names, and a tool's name under its alias, are unknown.
        let own = match method {
            "tools/call" => rules.called_tool(client_name),
            _ => rules
                .visible(ListKind::Prompts, client_name)
                .then(|| client_name.to_owned()),
        };
        let Some(own) = own else {
            return Err(unknown());
        };
        if method == "tools/call" {
            shape_arguments(rules, &own, name, &mut params)?;
        }
        params[field] = Value::String(own.clone());
        self.shaped(session, backend, method, &own, params, progress)
            .await
    }

    async fn call_by_uri(
        self: &Arc<Self>,
        session: &Session,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, ErrorObject> {
        let (uri, backend) = self.uri_target(method, params.as_ref())?;
        let params = params.unwrap_or_else(|| json!({ "uri": uri }));
        self.shaped(session, backend, method, &uri, params, progress)
            .await
    }

    /// A call after its names and arguments are shaped: answered from the
    /// cache, joined to an identical one in flight, or routed.
    async fn shaped(
        self: &Arc<Self>,
        session: &Session,
        primary: usize,
        method: &str,
        target: &str,
        params: Value,
        progress: Option<ProgressSink>,
    ) -> Result<Value, ErrorObject> {
        let shaper = &self.shapers[primary];
        let backend = &self.backends[primary];
        let ttl = shaper
            .cache_ttl(method)
            .filter(|_| backend.is_read_only(method, Some(&params)));
        let coalescer = shaper
            .coalescer()
            .filter(|_| progress.is_none() && backend.is_safe_to_repeat(method, Some(&params)));
        if ttl.is_none() && coalescer.is_none() {
            return self
                .route(session.id(), primary, method, Some(params), progress)
                .await;
        }
        // Under a sticky canary split, each side keeps its own answers.
        let side = self.traffic.sticky_side(primary, session.id());
        let key = RequestKey::new(
            primary,
            method,
            target,
            params.get("arguments"),
            side.as_deref(),
        );
        if ttl.is_some()
            && let Some(hit) = shaper.cache().and_then(|cache| cache.get(&key))
        {
            return Ok(hit);
        }
        let result = match coalescer {
            Some(coalescer) => {
                // The shared call belongs to every waiter, so it owns what it uses.
                let gateway = Arc::clone(self);
                let session = session.id().to_owned();
                let method = method.to_owned();
                let call = async move {
                    gateway
                        .route(&session, primary, &method, Some(params), None)
                        .await
                };
                coalescer.run(key.clone(), call).await
            }
            None => {
                self.route(session.id(), primary, method, Some(params), progress)
                    .await
            }
        };
        if let (Some(ttl), Some(cache), Ok(value)) = (ttl, shaper.cache(), &result)
            && value.get("isError") != Some(&Value::Bool(true))
        {
            cache.put(key, value.clone(), ttl);
        }
        result
    }

    /// Sends a call addressed to `primary` through its traffic route:
    /// mirror copies, the canary split, failover on a health failure.
    async fn route(
        &self,
        session: &str,
        primary: usize,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, ErrorObject> {
        let Some(route) = self.traffic.route(primary) else {
            return self.forward(primary, method, params, progress).await;
        };
        debug_assert!(traffic::ROUTED_METHODS.contains(&method));
        for mirror in &route.mirrors {
            mirror.copy(&self.backends[mirror.backend], method, params.clone());
        }
        let chosen = route.split.choose(session).unwrap_or(primary);
        let safe = self.backends[primary].is_safe_to_repeat(method, params.as_ref());
        // Progress goes to one backend only (another would count from zero
        // again): to a fallback only while every attempt before never left.
        let mut spare_progress = progress.clone();
        let mut failed = match self.call(chosen, method, params.clone(), progress).await {
            Err(error) if traffic::is_health_failure(&error) => error,
            answered => return answered.map_err(|error| error.to_error_object()),
        };
        // A failed canary falls back to its primary first, then the standbys.
        let fallbacks = (chosen != primary)
            .then_some(primary)
            .into_iter()
            .chain(route.failovers.iter().copied());
        for fallback in fallbacks {
            // A call that may have run (a timeout, a lost connection) runs
            // elsewhere only when it is safe to repeat, as for retries.
            if !traffic::never_sent(&failed) {
                if !safe {
                    break;
                }
                spare_progress = None;
            }
            match self
                .call(fallback, method, params.clone(), spare_progress.clone())
                .await
            {
                Err(error) if traffic::is_health_failure(&error) => {
                    tracing::debug!(backend = self.backends[fallback].name(), %error, "fallback failed too");
                    failed = error;
                }
                answered => {
                    tracing::debug!(
                        from = self.backends[chosen].name(),
                        to = self.backends[fallback].name(),
                        "failed over"
                    );
                    return answered.map_err(|error| error.to_error_object());
                }
            }
        }
        // The client hears about the backend it addressed, not a hidden one.
        Err(failed
            .as_backend(self.backends[primary].name())
            .to_error_object())
    }

    /// The URI a request names and the backend that serves it.
    fn uri_target(
        &self,
        method: &str,
        params: Option<&Value>,
    ) -> Result<(String, usize), ErrorObject> {
        let Some(uri) = params.and_then(|p| p.get("uri")).and_then(Value::as_str) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("{method} needs a \"uri\" string"),
            ));
        };
        let Some(backend) = self
            .catalog()
            .route_uri(uri)
            .filter(|&b| self.shapers[b].rules.visible(ListKind::Resources, uri))
        else {
            return Err(ErrorObject::new(
                jsonrpc::RESOURCE_NOT_FOUND,
                format!("resource not found: {uri}"),
            )
            .with_data(json!({ "uri": uri })));
        };
        Ok((uri.to_owned(), backend))
    }

    /// Subscriptions are shared: the backend hears `resources/subscribe` from
    /// the first session that subscribes to a URI only, and its
    /// `resources/updated` notifications go to every subscribed session.
    ///
    /// Subscription changes are serialized under one async lock held across
    /// the backend call, and a subscriber is recorded only once the backend
    /// confirmed: a later session never answers `{}` for a subscription that
    /// is still pending or failed, and a cancelled call leaves nothing behind.
    async fn subscribe(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let method = "resources/subscribe";
        let (uri, backend) = self.uri_target(method, params.as_ref())?;
        let mut subscribers = self.subscribers.lock().await;
        // The map holds only URIs with at least one subscriber.
        let result = if subscribers.contains_key(&uri) {
            json!({})
        } else {
            // Recorded before it is sent, so an endpoint that (re)connects
            // meanwhile renews it too (a duplicate renewal is harmless).
            self.backends[backend].record_subscription(&uri, true);
            match self.forward(backend, method, params, None).await {
                Ok(result) => result,
                Err(error) => {
                    self.backends[backend].record_subscription(&uri, false);
                    return Err(error);
                }
            }
        };
        subscribers
            .entry(uri.clone())
            .or_default()
            .insert(session.id().to_owned());
        session.set_subscribed(&uri, true);
        Ok(result)
    }

    /// The backend hears `resources/unsubscribe` when the last subscribed
    /// session leaves, never while another still listens.
    async fn unsubscribe(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let method = "resources/unsubscribe";
        let (uri, backend) = self.uri_target(method, params.as_ref())?;
        session.set_subscribed(&uri, false);
        let mut subscribers = self.subscribers.lock().await;
        let Some(sessions) = subscribers.get_mut(&uri) else {
            return Ok(json!({}));
        };
        sessions.remove(session.id());
        if !sessions.is_empty() {
            return Ok(json!({}));
        }
        subscribers.remove(&uri);
        self.backends[backend].record_subscription(&uri, false);
        self.forward(backend, method, params, None).await
    }

    async fn complete(&self, params: Option<Value>) -> Result<Value, ErrorObject> {
        let method = "completion/complete";
        let Some(mut params) = params.filter(Value::is_object) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                "completion/complete needs params",
            ));
        };
        let reference = &params["ref"];
        match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = reference
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some((backend, own_name)) = self
                    .split_name(name)
                    .filter(|&(b, own)| self.shapers[b].rules.visible(ListKind::Prompts, own))
                else {
                    return Err(ErrorObject::new(
                        jsonrpc::INVALID_PARAMS,
                        format!("unknown prompt: {name}"),
                    ));
                };
                params["ref"]["name"] = Value::String(own_name.to_owned());
                self.forward(backend, method, Some(params), None).await
            }
            Some("ref/resource") => {
                let uri = reference
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let catalog = self.catalog();
                let Some(backend) = catalog
                    .route_template(uri)
                    .or_else(|| catalog.route_uri(uri))
                    .filter(|&b| self.shapers[b].rules.visible(ListKind::Resources, uri))
                else {
                    return Err(ErrorObject::new(
                        jsonrpc::INVALID_PARAMS,
                        format!("unknown resource template: {uri}"),
                    ));
                };
                self.forward(backend, method, Some(params), None).await
            }
            _ => Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                "ref.type must be ref/prompt or ref/resource",
            )),
        }
    }

    /// `logging/setLevel` applies to every connected backend that offers logging.
    ///
    /// The session receives backend log messages from then on, at that
    /// level and above. Backends have one level for all clients: the last
    /// level set is the one they use.
    async fn set_log_level(
        &self,
        session: &Session,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        let level = params
            .as_ref()
            .and_then(|p| p.get("level"))
            .and_then(Value::as_str);
        let Some(severity) = level.and_then(log_severity) else {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!("logging/setLevel needs a \"level\", one of {LOG_LEVELS:?}"),
            ));
        };
        session.set_log_severity(severity);
        for (index, backend) in self.backends.iter().enumerate() {
            if backend.is_connected() && backend.listing().capabilities.contains_key("logging") {
                // One backend refusing a level must not fail the others.
                let _ = self
                    .forward(index, "logging/setLevel", params.clone(), None)
                    .await;
            }
        }
        Ok(json!({}))
    }

    /// Forward to one backend and record the outcome.
    async fn forward(
        &self,
        backend: usize,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, ErrorObject> {
        self.call(backend, method, params, progress)
            .await
            .map_err(|error| error.to_error_object())
    }

    /// Call one backend and record the outcome in the metrics.
    async fn call(
        &self,
        backend: usize,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, CallError> {
        let target = &self.backends[backend];
        let started = Instant::now();
        let result = target.call(method, params, progress).await;
        let outcome = match &result {
            Ok(value) if value.get("isError").and_then(Value::as_bool) == Some(true) => {
                Outcome::ToolError
            }
            Ok(_) => Outcome::Ok,
            Err(CallError::Unavailable { .. }) => Outcome::Unavailable,
            Err(CallError::Upstream {
                error: UpstreamError::JsonRpc(_),
                ..
            }) => Outcome::Error,
            Err(CallError::Upstream { .. }) => Outcome::Transport,
            Err(CallError::Timeout { .. }) => Outcome::Timeout,
            Err(CallError::Refused { .. }) => Outcome::Refused,
        };
        self.metrics
            .record(target.name(), method, outcome, started.elapsed());
        result
    }

    /// Record a request that ended because it was cancelled.
    pub fn record_cancelled(&self, method: &str) {
        self.metrics
            .record("-", method, Outcome::Cancelled, std::time::Duration::ZERO);
    }

    /// Consume backend events until every sender is gone: rebuild the catalog
    /// on listing changes and tell the sessions what changed.
    pub async fn run_events(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<BackendEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                BackendEvent::ListingChanged { kinds, .. } => self.rebuild(&kinds),
                BackendEvent::Notification { backend, message } => self.relay(backend, message),
            }
        }
    }

    fn rebuild(&self, kinds: &[ListKind]) {
        let rules: Vec<_> = self.shapers.iter().map(|s| &s.rules).collect();
        let fresh = Arc::new(Catalog::build(&self.backends, &rules, &self.separator));
        let previous = std::mem::replace(
            &mut *self.catalog.write().unwrap_or_else(PoisonError::into_inner),
            Arc::clone(&fresh),
        );
        let mut announced: Vec<&str> = Vec::new();
        for &kind in kinds {
            let notification = kind.list_changed();
            if previous.items(kind) != fresh.items(kind) && !announced.contains(&notification) {
                announced.push(notification);
            }
        }
        for notification in announced {
            let message = jsonrpc::notification(notification, None);
            for session in self.sessions.all() {
                session.push(&message);
            }
        }
    }

    fn relay(&self, backend: usize, message: Value) {
        let name = self.backends[backend].name();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match method {
            "notifications/resources/updated" => {
                let uri = message
                    .pointer("/params/uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for session in self.sessions.all().iter().filter(|s| s.is_subscribed(uri)) {
                    session.push(&message);
                }
            }
            "notifications/message" => {
                let mut message = message;
                if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
                    let logger = params
                        .get("logger")
                        .and_then(Value::as_str)
                        .map(|l| format!("{name}{}{l}", self.separator));
                    params.insert(
                        "logger".into(),
                        Value::String(logger.unwrap_or_else(|| name.to_owned())),
                    );
                }
                let severity = message
                    .pointer("/params/level")
                    .and_then(Value::as_str)
                    .and_then(log_severity)
                    .unwrap_or(0);
                for session in self.sessions.all().iter().filter(|s| s.wants_log(severity)) {
                    session.push(&message);
                }
            }
            _ => tracing::debug!(backend = name, method, "backend notification not relayed"),
        }
    }
}
