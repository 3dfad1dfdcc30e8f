//! Tracing a call across the proxy: W3C trace context in, a span for the
//! call and one per attempt, trace context out to the backend.
//!
//! ```text
//! client span ──> call span (the proxy's, one per client request)
//!                   ├─> attempt 1 span ──> backend's span
//!                   ├─> attempt 2 span (retry) ──> backend's span
//!                   └─> attempt 3 span (hedge) ──> backend's span
//! ```
//!
//! - **In** ([`from_client`]): `traceparent`/`tracestate` from the POST's
//!   HTTP headers, or from the request's `params._meta` (as the MCP revision
//!   after 2025-11-25 suggests). `_meta` wins when both are valid: it is
//!   the message's own, where headers may have been set by an HTTP layer
//!   for another span; an invalid `_meta` value falls back to the headers.
//!   The two keys are taken out of `_meta` (the client's other `_meta`
//!   keys stay as they were), so they never reach a backend stale, nor
//!   make identical calls look different to the cache. An invalid or
//!   missing value starts a new trace: tracing never fails a call.
//! - **Spans**: [`Tracer::call`] opens the call span (child of the client's
//!   span when there is one); [`CallTrace::attempt`] a span per attempt
//!   (backend, endpoint, attempt number, first/retry/hedge, outcome), each
//!   with its own span id, so the retries and hedges of one call share the
//!   trace id and differ in the parent id the backend sees. Both are
//!   `tracing` spans too, at debug level (free unless asked for, e.g.
//!   `mcp_proxy=debug`; then every log line inside names them), and, with
//!   `proxy.tracing.otlp_endpoint`, exported ([`otlp`]).
//! - **Out** ([`AttemptSpan::context`]): the attempt's context goes to an
//!   HTTP backend as headers on the POST of that attempt
//!   (`upstream/http/posting.rs`), to a stdio backend in the request's
//!   `params._meta` ([`into_meta`]).
//!
//! Ids come from the platform's [`TraceIds`](crate::platform::TraceIds)
//! (random on the OS, seeded in simulation, so a simulated run journals
//! the same `traceparent`s every time). Not `tracing-opentelemetry`: it
//! makes its own span ids, and the ids the backends see must be the ones
//! exported.

mod context;
pub(crate) mod otlp;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tokio::time::Instant;

pub use context::{SpanId, TraceContext, TraceId};

use crate::platform::TraceIds;

/// The proxy's tracer: ids from the platform, spans exported when
/// `proxy.tracing` says where.
pub(crate) fn start(
    settings: Option<&crate::config::TracingSettings>,
    platform: &crate::platform::Platform,
) -> Arc<Tracer> {
    let sink = settings
        .and_then(|settings| otlp::start(settings, platform))
        .map(|export| export as Arc<dyn SpanSink>);
    Tracer::new(Arc::clone(&platform.trace_ids), sink)
}

/// The `traceparent` header and `_meta` key.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header and `_meta` key.
pub const TRACESTATE: &str = "tracestate";

/// The client's trace context of one request, if it sent a valid one:
/// `params._meta`'s over the headers' (see the module docs). The two keys
/// are removed from `_meta` whatever their values.
pub(crate) fn from_client(headers: &HeaderMap, params: Option<&mut Value>) -> Option<TraceContext> {
    let in_meta = params.and_then(take_from_meta);
    let in_meta = in_meta.and_then(|(parent, state)| {
        TraceContext::parse(parent.as_str()?, state.as_ref().and_then(Value::as_str))
    });
    in_meta.or_else(|| {
        // Several traceparent headers are no trace context at all.
        let mut parents = headers.get_all(TRACEPARENT).iter();
        let parent = parents.next().filter(|_| parents.next().is_none())?;
        let state = header_list(headers, TRACESTATE);
        TraceContext::parse(parent.to_str().ok()?.trim(), state.as_deref())
    })
}

/// `traceparent` and `tracestate` taken out of `params._meta`, when it has
/// a `traceparent`; an `_meta` left empty by it is removed.
fn take_from_meta(params: &mut Value) -> Option<(Value, Option<Value>)> {
    let object = params.as_object_mut()?;
    let meta = object.get_mut("_meta")?.as_object_mut()?;
    let state = meta.remove(TRACESTATE);
    let parent = meta.remove(TRACEPARENT);
    if meta.is_empty() && (parent.is_some() || state.is_some()) {
        object.remove("_meta");
    }
    Some((parent?, state))
}

/// Several header lines of a list-valued header, joined as one value (as
/// HTTP allows for `tracestate`).
fn header_list(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Option<Vec<&str>> = headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().ok())
        .collect();
    let values = values?;
    (!values.is_empty()).then(|| values.join(","))
}

/// `params` with `context` in its `_meta` (for a stdio backend): the
/// client's other `_meta` keys are kept as they are. Params that are not
/// an object (or absent) get an object with `_meta` alone; a non-object
/// `_meta` is left alone (the backend would reject the call as it would
/// without the proxy).
pub(crate) fn into_meta(params: Option<Value>, context: &TraceContext) -> Option<Value> {
    let mut params = match params {
        Some(Value::Object(object)) => object,
        None => Map::new(),
        Some(other) => return Some(other),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert(TRACEPARENT.into(), Value::String(context.traceparent()));
        if let Some(state) = &context.state {
            meta.insert(TRACESTATE.into(), Value::String(state.clone()));
        }
    }
    Some(Value::Object(params))
}

/// The headers of `context` (for an HTTP backend's POST).
pub(crate) fn headers(context: &TraceContext) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(2);
    if let Ok(value) = HeaderValue::from_str(&context.traceparent()) {
        headers.push((HeaderName::from_static(TRACEPARENT), value));
    }
    if let Some(value) = context
        .state
        .as_deref()
        .and_then(|state| HeaderValue::from_str(state).ok())
    {
        headers.push((HeaderName::from_static(TRACESTATE), value));
    }
    headers
}

/// A finished span, as the exporter takes it.
#[derive(Debug, Clone)]
pub(crate) struct FinishedSpan {
    /// `mcp-proxy call` or `mcp-proxy attempt`.
    pub(crate) name: &'static str,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    /// The client's span (for a call span), or the call span.
    pub(crate) parent: Option<SpanId>,
    /// Whether the parent is another process's (the client's).
    pub(crate) parent_is_remote: bool,
    /// A call span serves a client; an attempt span is a client of a backend.
    pub(crate) server: bool,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attributes: Vec<(&'static str, Attribute)>,
    /// The outcome was a failure (anything but `ok` and `tool_error`).
    pub(crate) failed: bool,
}

/// One attribute value of a span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attribute {
    Text(Cow<'static, str>),
    Int(i64),
}

/// Where finished spans go (the OTLP exporter's queue; a test's list).
pub(crate) trait SpanSink: Send + Sync + 'static {
    /// Takes one span; never waits.
    fn record(&self, span: FinishedSpan);
}

/// The proxy's tracer: where ids come from, and where sampled spans go.
pub(crate) struct Tracer {
    ids: Arc<dyn TraceIds>,
    sink: Option<Arc<dyn SpanSink>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("exports", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// A tracer drawing ids from `ids`, exporting to `sink` if any.
    pub(crate) fn new(ids: Arc<dyn TraceIds>, sink: Option<Arc<dyn SpanSink>>) -> Arc<Self> {
        Arc::new(Self { ids, sink })
    }

    fn span_id(&self) -> SpanId {
        // Zero is invalid; a generator that drew it draws again.
        loop {
            if let Some(id) = SpanId::new(self.ids.next() as u64) {
                return id;
            }
        }
    }

    fn trace_id(&self) -> TraceId {
        loop {
            if let Some(id) = TraceId::new(self.ids.next()) {
                return id;
            }
        }
    }

    /// Opens the span of one client request, under the client's span when
    /// it sent a valid context, else as the root of a new trace (sampled
    /// when spans are exported). `method` names it in logs and exports.
    pub(crate) fn call(self: &Arc<Self>, client: Option<TraceContext>, method: &str) -> CallSpan {
        let (trace_id, parent, sampled, state) = match client {
            Some(client) => (
                client.trace_id,
                Some(client.parent_id),
                client.sampled,
                client.state,
            ),
            None => (self.trace_id(), None, self.sink.is_some(), None),
        };
        let trace = CallTrace {
            tracer: Arc::clone(self),
            trace_id,
            span_id: self.span_id(),
            sampled,
            state,
        };
        let span = tracing::debug_span!(
            "call",
            %method,
            trace_id = %trace_id,
            span_id = %trace.span_id,
            parent_id = parent.map(tracing::field::display),
            outcome = tracing::field::Empty,
        );
        CallSpan {
            method: trace.exported().then(|| method.to_owned()),
            trace,
            parent,
            span,
            started: Instant::now(),
            started_at: SystemTime::now(),
            outcome: Mutex::new(None),
        }
    }
}

/// What a call carries of its trace: enough to open attempt spans under
/// its call span. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct CallTrace {
    tracer: Arc<Tracer>,
    trace_id: TraceId,
    /// The proxy's call span.
    span_id: SpanId,
    sampled: bool,
    state: Option<String>,
}

/// What kind of attempt an attempt span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptKind {
    /// The call's first attempt.
    First,
    /// An attempt after a failed one (`retry`).
    Retry,
    /// An extra attempt racing a slow one (`hedging`).
    Hedge,
}

impl AttemptKind {
    /// As spans and logs name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            AttemptKind::First => "first",
            AttemptKind::Retry => "retry",
            AttemptKind::Hedge => "hedge",
        }
    }
}

impl CallTrace {
    /// The trace.
    #[cfg(test)]
    pub(crate) fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The proxy's span of the call: the parent of its attempts.
    #[cfg(test)]
    pub(crate) fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Opens the span of one attempt: attempt `number` (from 1) of the
    /// call on `backend`'s `endpoint`.
    pub(crate) fn attempt(
        &self,
        backend: &str,
        endpoint: &str,
        number: u32,
        kind: AttemptKind,
    ) -> AttemptSpan {
        let span_id = self.tracer.span_id();
        let span = tracing::debug_span!(
            "attempt",
            %backend,
            %endpoint,
            attempt = number,
            kind = kind.label(),
            span_id = %span_id,
            outcome = tracing::field::Empty,
        );
        AttemptSpan {
            context: TraceContext {
                trace_id: self.trace_id,
                parent_id: span_id,
                sampled: self.sampled,
                state: self.state.clone(),
            },
            call: self.clone(),
            attributes: vec![
                (
                    "mcp_proxy.backend",
                    Attribute::Text(backend.to_owned().into()),
                ),
                (
                    "mcp_proxy.endpoint",
                    Attribute::Text(endpoint.to_owned().into()),
                ),
                ("mcp_proxy.attempt", Attribute::Int(number.into())),
                (
                    "mcp_proxy.attempt.kind",
                    Attribute::Text(kind.label().into()),
                ),
            ],
            span,
            started: Instant::now(),
            started_at: SystemTime::now(),
            outcome: None,
        }
    }

    /// Whether its spans go to the exporter: sampled, and exported at all.
    fn exported(&self) -> bool {
        self.sampled && self.tracer.sink.is_some()
    }

    fn export(&self, span: impl FnOnce() -> FinishedSpan) {
        if let Some(sink) = self.tracer.sink.as_ref().filter(|_| self.sampled) {
            sink.record(span());
        }
    }
}

/// The proxy's span of one client request. Ends when dropped, with the
/// outcome set by [`CallSpan::set_outcome`] (`cancelled` if none was).
pub(crate) struct CallSpan {
    trace: CallTrace,
    parent: Option<SpanId>,
    /// Kept only when the span is exported.
    method: Option<String>,
    span: tracing::Span,
    started: Instant,
    started_at: SystemTime,
    outcome: Mutex<Option<&'static str>>,
}

impl CallSpan {
    /// What the call's stages carry.
    pub(crate) fn trace(&self) -> CallTrace {
        self.trace.clone()
    }

    /// The `tracing` span to run the call in.
    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// How the call ended (`ok`, `error`, `cancelled`, ...).
    pub(crate) fn set_outcome(&self, outcome: &'static str) {
        self.span.record("outcome", outcome);
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or("cancelled");
        let method = self.method.take().unwrap_or_default();
        self.trace.export(|| FinishedSpan {
            name: "mcp-proxy call",
            trace_id: self.trace.trace_id,
            span_id: self.trace.span_id,
            parent: self.parent,
            parent_is_remote: self.parent.is_some(),
            server: true,
            start: self.started_at,
            end: self.started_at + self.started.elapsed(),
            attributes: vec![
                ("rpc.method", Attribute::Text(method.into())),
                ("mcp_proxy.outcome", Attribute::Text(outcome.into())),
            ],
            failed: failed(outcome),
        });
    }
}

/// The span of one attempt. Ends when dropped, with the outcome set by
/// [`AttemptSpan::set_outcome`] (`cancelled` if none was: a losing hedge,
/// a per-try timeout, a client's cancel).
pub(crate) struct AttemptSpan {
    context: TraceContext,
    call: CallTrace,
    attributes: Vec<(&'static str, Attribute)>,
    span: tracing::Span,
    started: Instant,
    started_at: SystemTime,
    outcome: Option<&'static str>,
}

impl AttemptSpan {
    /// The context the backend receives: this attempt as the parent.
    pub(crate) fn context(&self) -> &TraceContext {
        &self.context
    }

    /// The `tracing` span to run the attempt in.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// How the attempt ended.
    pub(crate) fn set_outcome(&mut self, outcome: &'static str) {
        self.span.record("outcome", outcome);
        self.outcome = Some(outcome);
    }
}

impl Drop for AttemptSpan {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or("cancelled");
        if self.outcome.is_none() {
            self.span.record("outcome", outcome);
        }
        let attributes = std::mem::take(&mut self.attributes);
        let end = self.started_at + self.started.elapsed();
        self.call.export(|| {
            let mut attributes = attributes;
            attributes.push(("mcp_proxy.outcome", Attribute::Text(outcome.into())));
            FinishedSpan {
                name: "mcp-proxy attempt",
                trace_id: self.context.trace_id,
                span_id: self.context.parent_id,
                parent: Some(self.call.span_id),
                parent_is_remote: false,
                server: false,
                start: self.started_at,
                end,
                attributes,
                failed: failed(outcome),
            }
        });
    }
}

/// Whether an outcome label is a failure of the span.
fn failed(outcome: &str) -> bool {
    !matches!(outcome, "ok" | "tool_error")
}

#[cfg(test)]
mod tests;
