//! Exporting finished spans over OTLP/HTTP (protobuf), when
//! `proxy.tracing.otlp_endpoint` is set.
//!
//! The OpenTelemetry crates do the wire format and the POST's rules
//! (`opentelemetry-otlp`'s HTTP exporter, with its bounded retries); the
//! spans are built here as the SDK's `SpanData` from our own ids (the ones
//! the backends were sent), not through the SDK's tracer, which would make
//! ids of its own. Its HTTP client is the proxy's own (hyper-util over the
//! platform's dialer, `upstream/connector.rs`), so no second HTTP stack is
//! built and a simulated run exports through its simulated network.
//!
//! Spans wait in a bounded queue for a task that sends them in batches
//! ([`MAX_BATCH`], or whatever came within [`FLUSH_EVERY`] of the first);
//! a full queue drops the span and counts it, never delaying a call (the
//! audit log's rule). A failed export is logged and its batch dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use tokio::sync::mpsc;

use super::{Attribute, FinishedSpan, SpanSink};
use crate::config::TracingSettings;
use crate::platform::Platform;
use crate::upstream::connector::{self, HttpClient};

/// Spans waiting for the exporter; more are dropped (and counted).
const QUEUE: usize = 4096;
/// The most spans in one export.
const MAX_BATCH: usize = 512;
/// How long the first span of a batch waits for others.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Bound on one export (connect included), and on dialing.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest collector answer read.
const MAX_ANSWER: usize = 1024 * 1024;

/// The queue in front of the exporting task.
pub(crate) struct Export {
    spans: mpsc::Sender<FinishedSpan>,
    dropped: Arc<AtomicU64>,
}

impl SpanSink for Export {
    fn record(&self, span: FinishedSpan) {
        if self.spans.try_send(span).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Once per power of two: a collector that cannot keep up
            // should not flood the log as well.
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "spans dropped: the OTLP export queue is full");
            }
        }
    }
}

/// The OTLP/HTTP traces URL of a collector's base URL.
pub(crate) fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Starts the exporting task; spans recorded into the returned sink are
/// sent to `settings.otlp_endpoint` until the sink is dropped (then what
/// is queued is sent, and the task ends). `None` if the exporter could not
/// be built (logged).
pub(crate) fn start(settings: &TracingSettings, platform: &Platform) -> Option<Arc<Export>> {
    let client = connector::client(Arc::clone(&platform.dialer), EXPORT_TIMEOUT);
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Collector(client))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(&settings.otlp_endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build();
    let mut exporter = match built {
        Ok(exporter) => exporter,
        Err(error) => {
            tracing::error!(%error, "the OTLP exporter could not be built; spans are not exported");
            return None;
        }
    };
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .build(),
    );
    let (spans, queue) = mpsc::channel(QUEUE);
    tokio::spawn(send_batches(exporter, queue));
    Some(Arc::new(Export {
        spans,
        dropped: Arc::default(),
    }))
}

async fn send_batches(
    exporter: opentelemetry_otlp::SpanExporter,
    mut queue: mpsc::Receiver<FinishedSpan>,
) {
    let scope = InstrumentationScope::builder("mcp-proxy")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut open = true;
    while open {
        let Some(first) = queue.recv().await else {
            break;
        };
        let mut batch = vec![span_data(first, &scope)];
        let flush = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(flush);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                biased;
                span = queue.recv() => match span {
                    Some(span) => batch.push(span_data(span, &scope)),
                    None => {
                        open = false;
                        break;
                    }
                },
                () = &mut flush => break,
            }
        }
        let spans = batch.len();
        if let Err(error) = exporter.export(batch).await {
            tracing::warn!(%error, spans, "exporting spans over OTLP failed; they are dropped");
        }
    }
}

/// The SDK's form of a finished span.
fn span_data(span: FinishedSpan, scope: &InstrumentationScope) -> SpanData {
    let trace_id = opentelemetry::trace::TraceId::from_bytes(span.trace_id.get().to_be_bytes());
    let span_id = opentelemetry::trace::SpanId::from_bytes(span.span_id.get().to_be_bytes());
    let parent = span
        .parent
        .map_or(opentelemetry::trace::SpanId::INVALID, |parent| {
            opentelemetry::trace::SpanId::from_bytes(parent.get().to_be_bytes())
        });
    SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent,
        parent_span_is_remote: span.parent_is_remote,
        span_kind: if span.server {
            SpanKind::Server
        } else {
            SpanKind::Client
        },
        name: span.name.into(),
        start_time: span.start,
        end_time: span.end,
        attributes: span
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                Attribute::Text(text) => KeyValue::new(key, text),
                Attribute::Int(number) => KeyValue::new(key, number),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if span.failed {
            Status::error("")
        } else {
            Status::Unset
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The exporter's HTTP client: the proxy's pooled one.
struct Collector(HttpClient);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Collector {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (head, body) = request.into_parts();
        let request = http::Request::from_parts(head, Full::new(body));
        let exchange = async {
            let response = self.0.request(request).await?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
            Ok(http::Response::from_parts(head, body))
        };
        match tokio::time::timeout(EXPORT_TIMEOUT, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/otel/"),
            "http://c:4318/otel/v1/traces"
        );
    }
}
