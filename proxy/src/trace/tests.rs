//! The trace context read from a client, passed to backends, and the
//! spans a call and its attempts make.

use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::platform::{RandomTraceIds, SeededTraceIds};

const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[test]
fn the_header_is_read_when_meta_has_none() {
    let mut params = json!({"name": "t", "_meta": {"progressToken": 1}});
    let context = from_client(
        &headers(&[
            ("traceparent", CLIENT),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]),
        Some(&mut params),
    )
    .unwrap();
    assert_eq!(context.traceparent(), CLIENT);
    // Several tracestate lines are one list.
    assert_eq!(context.state.as_deref(), Some("a=1,b=2"));
    assert_eq!(params, json!({"name": "t", "_meta": {"progressToken": 1}}));
}

#[test]
fn meta_wins_over_headers_and_leaves_meta_with_the_clients_other_keys() {
    let mut params = json!({
        "name": "t",
        "_meta": {"traceparent": OTHER, "tracestate": "m=1", "progressToken": "p", "x": {"y": 1}},
    });
    let context = from_client(
        &headers(&[("traceparent", CLIENT), ("tracestate", "h=1")]),
        Some(&mut params),
    )
    .unwrap();
    assert_eq!(context.traceparent(), OTHER);
    assert_eq!(context.state.as_deref(), Some("m=1"));
    assert_eq!(
        params,
        json!({"name": "t", "_meta": {"progressToken": "p", "x": {"y": 1}}})
    );
}

#[test]
fn an_invalid_meta_value_falls_back_to_the_header_and_is_removed_all_the_same() {
    let mut params = json!({"_meta": {"traceparent": "00-zz", "tracestate": "m=1"}});
    let context = from_client(&headers(&[("traceparent", CLIENT)]), Some(&mut params)).unwrap();
    assert_eq!(context.traceparent(), CLIENT);
    assert_eq!(
        context.state, None,
        "the header's traceparent had no tracestate"
    );
    assert_eq!(params, json!({}), "an _meta emptied by the proxy goes too");
    let mut params = json!({"_meta": {"traceparent": 7}});
    assert_eq!(from_client(&HeaderMap::new(), Some(&mut params)), None);
}

#[test]
fn invalid_or_repeated_headers_are_no_context() {
    for bad in [
        headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        )]),
        headers(&[("traceparent", CLIENT), ("traceparent", OTHER)]),
        headers(&[("tracestate", "a=1")]),
        HeaderMap::new(),
    ] {
        assert_eq!(from_client(&bad, None), None, "{bad:?}");
    }
}

#[test]
fn an_invalid_traceparent_starts_a_fresh_valid_trace() {
    let tracer = Tracer::new(Arc::new(RandomTraceIds), None);
    let client = from_client(
        &headers(&[(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )]),
        None,
    );
    assert_eq!(client, None);
    let first = tracer.call(client, "tools/call");
    let second = tracer.call(None, "tools/call");
    let attempt = first.trace().attempt("b", "-", 1, AttemptKind::First);
    // What the backend is sent reads back as a valid context of a new trace.
    let sent = TraceContext::parse(&attempt.context().traceparent(), None).unwrap();
    assert_eq!(sent.trace_id, first.trace().trace_id());
    assert_ne!(
        sent.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_ne!(first.trace().trace_id(), second.trace().trace_id());
    assert!(first.parent.is_none());
}

/// Spans exported, in the order they ended.
#[derive(Default)]
struct Collected(Mutex<Vec<FinishedSpan>>);

impl SpanSink for Collected {
    fn record(&self, span: FinishedSpan) {
        self.0.lock().unwrap().push(span);
    }
}

fn outcome(span: &FinishedSpan) -> &Attribute {
    &span
        .attributes
        .iter()
        .find(|(key, _)| *key == "mcp_proxy.outcome")
        .unwrap()
        .1
}

#[test]
fn attempts_share_the_trace_and_hang_under_the_call_span_under_the_clients() {
    let sink = Arc::new(Collected::default());
    let tracer = Tracer::new(
        Arc::new(SeededTraceIds::new(7)),
        Some(Arc::clone(&sink) as Arc<dyn SpanSink>),
    );
    let client = TraceContext::parse(CLIENT, Some("v=1")).unwrap();
    let call = tracer.call(Some(client.clone()), "tools/call");
    let trace = call.trace();
    let mut first = trace.attempt("files", "http://127.0.0.1:1/mcp", 1, AttemptKind::First);
    let retry = trace.attempt("files", "http://127.0.0.1:2/mcp", 2, AttemptKind::Retry);
    for attempt in [&first, &retry] {
        let sent = attempt.context();
        assert_eq!(sent.trace_id, client.trace_id);
        assert_ne!(sent.parent_id, client.parent_id);
        assert_ne!(sent.parent_id, trace.span_id());
        assert!(sent.sampled);
        assert_eq!(sent.state.as_deref(), Some("v=1"), "tracestate passed on");
    }
    assert_ne!(first.context().parent_id, retry.context().parent_id);
    let (first_id, retry_id) = (first.context().parent_id, retry.context().parent_id);
    first.set_outcome("transport");
    drop(first);
    drop(retry);
    call.set_outcome("ok");
    drop(call);

    let spans = sink.0.lock().unwrap();
    assert_eq!(spans.len(), 3);
    let (first, retry, call) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!((first.span_id, retry.span_id), (first_id, retry_id));
    assert_eq!(call.parent, Some(client.parent_id));
    assert!(call.parent_is_remote && call.server);
    for attempt in [first, retry] {
        assert_eq!(attempt.trace_id, client.trace_id);
        assert_eq!(attempt.parent, Some(call.span_id));
        assert!(!attempt.parent_is_remote && !attempt.server);
    }
    assert_eq!(outcome(first), &Attribute::Text("transport".into()));
    assert!(first.failed);
    // Dropped before it ended: a losing hedge, a per-try timeout.
    assert_eq!(outcome(retry), &Attribute::Text("cancelled".into()));
    assert_eq!(outcome(call), &Attribute::Text("ok".into()));
    assert!(!call.failed);
}

#[test]
fn an_unsampled_trace_is_propagated_but_not_exported() {
    let sink = Arc::new(Collected::default());
    let tracer = Tracer::new(
        Arc::new(RandomTraceIds),
        Some(Arc::clone(&sink) as Arc<dyn SpanSink>),
    );
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let call = tracer.call(TraceContext::parse(unsampled, None), "tools/call");
    let attempt = call.trace().attempt("b", "-", 1, AttemptKind::First);
    assert!(!attempt.context().sampled);
    drop(attempt);
    drop(call);
    assert!(sink.0.lock().unwrap().is_empty());
    // A new trace is sampled when spans are exported.
    drop(tracer.call(None, "tools/call"));
    assert_eq!(sink.0.lock().unwrap().len(), 1);
}

#[test]
fn seeded_ids_repeat_with_their_seed() {
    let ids = |seed| {
        let tracer = Tracer::new(Arc::new(SeededTraceIds::new(seed)), None);
        let call = tracer.call(None, "tools/call");
        let attempt = call.trace().attempt("b", "-", 1, AttemptKind::First);
        attempt.context().traceparent()
    };
    assert_eq!(ids(3), ids(3));
    assert_ne!(ids(3), ids(4));
}

#[test]
fn a_stdio_backend_gets_the_context_in_meta_beside_the_clients_keys() {
    let context = TraceContext::parse(CLIENT, Some("a=1")).unwrap();
    let params = json!({"name": "t", "arguments": {}, "_meta": {"progressToken": 5}});
    assert_eq!(
        into_meta(Some(params), &context).unwrap(),
        json!({"name": "t", "arguments": {}, "_meta": {
            "progressToken": 5, "traceparent": CLIENT, "tracestate": "a=1",
        }})
    );
    assert_eq!(
        into_meta(None, &context).unwrap(),
        json!({"_meta": {"traceparent": CLIENT, "tracestate": "a=1"}})
    );
    // Not ours to repair: the backend judges params that are not an object.
    assert_eq!(into_meta(Some(json!([1])), &context), Some(json!([1])));
}

#[test]
fn an_http_backend_gets_the_context_as_headers() {
    let context = TraceContext::parse(CLIENT, Some("a=1")).unwrap();
    let sent: Vec<(String, String)> = super::headers(&context)
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        sent,
        [
            ("traceparent".to_owned(), CLIENT.to_owned()),
            ("tracestate".to_owned(), "a=1".to_owned())
        ]
    );
}
