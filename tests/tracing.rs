//! A trace crosses the proxy: the client's `traceparent` (header or
//! `_meta`) reaches an HTTP backend as a header and a stdio backend in
//! `_meta`, with the same trace id and the proxy's attempt span as the
//! parent; retries and hedges of one call share the trace with parents of
//! their own; and the spans exported over OTLP join them up: client span ->
//! the proxy's call span -> its attempt span -> what the backend saw.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};

use crate::support::backend::TestBackend;
use crate::support::client::RawClient;
use mcp_proxy::server::RunningProxy;

use crate::support::proxy;
use crate::support::wait_for;

/// The client's span: trace `4bf9…4736`, span `00f0…02b7`, sampled.
const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
/// Another client span, sent at the same time in the other place.
const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A `traceparent` split into trace id and parent id, after checking it is
/// version 00, lowercase hex, sampled.
fn split(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "{traceparent}");
    assert!(
        parts[1..3].iter().all(
            |p| p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && p.bytes().any(|b| b != b'0')
        ),
        "{traceparent}"
    );
    (parts[1].to_owned(), parts[2].to_owned())
}

/// `tools/call` of `name` with `params` added, and `headers` on the POST.
async fn call_with(client: &RawClient, params: Value, headers: &[(&str, &str)]) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params });
    let mut all = client.standard_headers();
    all.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    client.post_raw(body.to_string(), &all).await.json()
}

/// A proxy over `backend` as `alpha`: `settings` and `policy` are YAML
/// lines added to the proxy section and to the backend's entry.
async fn http_proxy(backend: &TestBackend, settings: &str, policy: &str) -> RunningProxy {
    proxy::start_yaml(&format!(
        "proxy:\n  listen: 127.0.0.1:0\n{settings}backends:\n  - name: alpha\n    transport: http\n    url: {}\n{policy}",
        backend.url()
    ))
    .await
}

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: Vec<(String, String)>,
}

impl Exported {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> Vec<(String, String)> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// A loopback OTLP/HTTP collector: decodes each POST to `/v1/traces` and
/// keeps its spans. Returns its base URL.
async fn collector() -> (String, Arc<Mutex<Vec<Exported>>>) {
    let spans: Arc<Mutex<Vec<Exported>>> = Arc::default();
    let kept = Arc::clone(&spans);
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .as_ref()
                        .map(|r| attributes(&r.attributes))
                        .unwrap_or_default()
                        .into_iter()
                        .find(|(k, _)| k == "service.name")
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            kept.lock().unwrap().push(Exported {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent: hex(&span.parent_span_id),
                                attributes: attributes(&span.attributes),
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test]
async fn a_clients_trace_reaches_an_http_backend_under_the_proxys_exported_spans() {
    let (collector, spans) = collector().await;
    let backend = TestBackend::start_named("alpha").await;
    let proxy = http_proxy(
        &backend,
        &format!("  tracing:\n    otlp_endpoint: {collector}\n    service_name: gw-under-test\n"),
        "",
    )
    .await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let params = json!({ "name": "alpha/echo", "arguments": { "message": "hi" } });
    let answer = call_with(
        &client,
        params,
        &[("traceparent", CLIENT), ("tracestate", "v=1")],
    )
    .await;
    assert!(answer["result"].is_object(), "{answer}");

    // The backend saw the client's trace, under another span than the client's.
    let seen = backend.traceparents();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (trace, parent) = split(&seen[0]);
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(parent, CLIENT_SPAN);

    // That span is the proxy's attempt, under its call span, under the client's.
    let spans = wait_for("the call's two spans exported", || {
        let spans = spans.lock().unwrap().clone();
        async move { (spans.len() >= 2).then_some(spans) }
    })
    .await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let attempt = spans
        .iter()
        .find(|s| s.name == "mcp-proxy attempt")
        .unwrap();
    let call = spans.iter().find(|s| s.name == "mcp-proxy call").unwrap();
    assert_eq!(
        attempt.span_id, parent,
        "the backend's parent is the attempt span"
    );
    assert_eq!(attempt.parent, call.span_id);
    assert_eq!(call.parent, CLIENT_SPAN);
    for span in [attempt, call] {
        assert_eq!(span.trace_id, CLIENT_TRACE);
        assert_eq!(span.service, "gw-under-test");
    }
    assert_eq!(attempt.attribute("mcp_proxy.backend"), Some("alpha"));
    assert_eq!(attempt.attribute("mcp_proxy.attempt"), Some("1"));
    assert_eq!(attempt.attribute("mcp_proxy.attempt.kind"), Some("first"));
    assert_eq!(attempt.attribute("mcp_proxy.outcome"), Some("ok"));
    assert_eq!(call.attribute("rpc.method"), Some("tools/call"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_trace_in_meta_reaches_a_stdio_backend_in_meta_beside_the_clients_own_keys() {
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    // `_meta` wins over the header.
    let params = json!({
        "name": "scripted/meta",
        "arguments": {},
        "_meta": { "traceparent": CLIENT, "tracestate": "v=1", "custom": { "kept": true } },
    });
    let answer = call_with(&client, params, &[("traceparent", OTHER)]).await;
    let meta: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap())
            .unwrap_or_else(|_| panic!("{answer}"));
    let (trace, parent) = split(
        meta["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("{meta}")),
    );
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(parent, CLIENT_SPAN);
    assert_eq!(meta["tracestate"], "v=1");
    assert_eq!(meta["custom"], json!({ "kept": true }), "{meta}");
    assert_eq!(meta.as_object().unwrap().len(), 3, "{meta}");

    // From the header alone, a stdio backend still gets it in `_meta`.
    let params = json!({ "name": "scripted/meta", "arguments": {} });
    let answer = call_with(&client, params, &[("traceparent", CLIENT)]).await;
    let meta: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    let (trace, second_parent) = split(meta["traceparent"].as_str().unwrap());
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(second_parent, parent, "another call, another span");
    proxy.shutdown().await;
}

#[tokio::test]
async fn retries_of_one_call_share_the_trace_and_differ_in_parent() {
    let retry = "    timeout: { per_try: 200ms }\n    retry: { max_retries: 2, on: [timeout], backoff: { initial: 1ms, max: 1ms } }\n";
    // Each attempt times out: the call fails after three.
    let answer = slow_call_with(retry, 10_000, 3).await;
    assert_eq!(answer["error"]["code"], -32013, "{answer}");
}

#[tokio::test]
async fn hedges_of_one_call_share_the_trace_and_differ_in_parent() {
    let hedging = "    hedging: { delay: 50ms, max_hedges: 1 }\n";
    let answer = slow_call_with(hedging, 300, 2).await;
    assert!(answer["result"].is_object(), "{answer}");
}

/// One call of `alpha/slow` taking `ms`, with the client's trace, through
/// a proxy with `policy`: the backend must have seen `attempts` of it, all
/// in the client's trace under parents of their own. Returns the answer.
async fn slow_call_with(policy: &str, ms: u64, attempts: usize) -> Value {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = http_proxy(&backend, "", policy).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let params = json!({ "name": "alpha/slow", "arguments": { "ms": ms, "steps": 1 } });
    let answer = call_with(&client, params, &[("traceparent", CLIENT)]).await;
    assert_distinct_attempts(&backend.traceparents(), attempts);
    proxy.shutdown().await;
    answer
}

/// `seen` holds `attempts` traceparents of the client's trace, each with a
/// parent of its own that is not the client's span.
fn assert_distinct_attempts(seen: &[String], attempts: usize) {
    assert_eq!(seen.len(), attempts, "{seen:?}");
    let mut parents: Vec<String> = seen
        .iter()
        .map(|traceparent| {
            let (trace, parent) = split(traceparent);
            assert_eq!(trace, CLIENT_TRACE, "{seen:?}");
            assert_ne!(parent, CLIENT_SPAN, "{seen:?}");
            parent
        })
        .collect();
    parents.sort();
    parents.dedup();
    assert_eq!(
        parents.len(),
        attempts,
        "each attempt its own span: {seen:?}"
    );
}

#[tokio::test]
async fn an_invalid_traceparent_starts_a_new_trace_and_the_call_succeeds() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = http_proxy(&backend, "", "").await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let bogus = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let params = json!({ "name": "alpha/echo", "arguments": { "message": "hi" } });
    let answer = call_with(&client, params, &[("traceparent", bogus)]).await;
    assert!(answer["result"].is_object(), "{answer}");
    let seen = backend.traceparents();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let parts: Vec<&str> = seen[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{seen:?}");
    assert_ne!(parts[1], "00000000000000000000000000000000");
    assert_ne!(parts[2], "00f067aa0ba902b7");
    // Without an exporter a new trace is not sampled.
    assert_eq!(parts[3], "00", "{seen:?}");
    proxy.shutdown().await;
}
