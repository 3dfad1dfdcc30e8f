//! Per-backend timeouts and retries, configured the way an operator writes
//! them (YAML through the proxy's loader), against a real tower-mcp backend
//! whose `slow` tool takes as long as asked.
//!
//! A call that outlives `timeout.per_try` is answered `-32013` naming the
//! backend and counted in `/admin/backends`; with `retry` on, it is repeated
//! only when the tool is safe to repeat — marked read-only by the server, or
//! named in `safe_to_repeat.tools` — since a timed-out call may have run. The
//! scripted Python stdio server's tools carry no hints. Calls beyond a
//! `rate_limit` are refused by the proxy (`-32014`) without reaching the
//! backend; per-try timeouts count against the circuit breaker, which then
//! refuses calls (`-32014`, `breaker_open`) without reaching the backend;
//! a slow read-only call is hedged.

use std::path::Path;

use mcp_proxy::server::RunningProxy;
use serde_json::json;

use crate::support::proxy::{self, admin_backend, ops_get_text};
use crate::support::{RawClient, TestBackend};

/// Proxy error: the backend did not answer within its timeout.
const BACKEND_TIMEOUT: i64 = -32013;
/// Proxy error: the proxy refused to send the call (rate limit, concurrency).
const BACKEND_LIMITED: i64 = -32014;

/// A proxy over `backend` as `alpha`, with `policy` (YAML lines of the
/// backend entry) added.
async fn proxy_with(backend: &TestBackend, policy: &str) -> RunningProxy {
    start_yaml(&format!(
        "proxy:\n  listen: 127.0.0.1:0\nbackends:\n  - name: alpha\n    transport: http\n    url: {}\n    reconnect: {{ initial: 50ms, max: 500ms }}\n{policy}",
        backend.url()
    ))
    .await
}

#[tokio::test]
async fn a_call_that_outlives_per_try_is_answered_32013_and_counted() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy_with(&backend, "    timeout: { per_try: 200ms }\n").await;
    assert_eq!(time_out_slow_call(&proxy).await, (0, 1));
    assert_eq!(backend.calls("slow"), 1);
    // A quick call on the same backend is unaffected.
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let answer = client
        .call_tool("alpha/slow", json!({ "ms": 1, "steps": 1 }))
        .await;
    assert!(answer["result"].is_object(), "{answer}");
    proxy.shutdown().await;
}

/// Retry timed-out calls twice, at once.
const RETRY_TIMEOUTS: &str = "    timeout: { per_try: 200ms }\n    retry: { max_retries: 2, on: [timeout], backoff: { initial: 1ms, max: 1ms } }\n";

/// The backend entry of the scripted stdio server, whose tools carry no
/// hints, with `policy` added.
fn scripted(policy: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scripted_server.py");
    format!(
        "proxy:\n  listen: 127.0.0.1:0\nbackends:\n  - name: alpha\n    transport: stdio\n    command: python3\n    args: [{:?}]\n{policy}",
        script.display().to_string()
    )
}

async fn start_yaml(text: &str) -> RunningProxy {
    proxy::start_yaml(text).await
}

/// Calls `alpha/slow` for 10 s through `proxy`; returns the backend's
/// `(retries, timeouts)` from `/admin/backends` afterwards.
async fn time_out_slow_call(proxy: &RunningProxy) -> (u64, u64) {
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let answer = client
        .call_tool("alpha/slow", json!({ "ms": 10_000, "steps": 1 }))
        .await;
    assert_eq!(answer["error"]["code"], BACKEND_TIMEOUT, "{answer}");
    assert_eq!(answer["error"]["data"]["backend"], "alpha", "{answer}");
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    (
        status["retries"].as_u64().unwrap(),
        status["timeouts"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_timed_out_call_is_retried_when_the_server_marks_the_tool_read_only() {
    // The tower-mcp test backend annotates its tools read-only and idempotent.
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy_with(&backend, RETRY_TIMEOUTS).await;
    assert_eq!(time_out_slow_call(&proxy).await, (2, 3));
    assert_eq!(backend.calls("slow"), 3);
    // The same counts reach Prometheus.
    let (_, metrics) = ops_get_text(proxy.local_addr(), "/admin/metrics").await;
    for line in [
        r#"mcp_proxy_retries_total{backend="alpha"} 2"#,
        r#"mcp_proxy_timeouts_total{backend="alpha"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_call_without_hints_is_not_repeated() {
    let proxy = start_yaml(&scripted(RETRY_TIMEOUTS)).await;
    // One attempt, timed out, not retried: it may have run.
    assert_eq!(time_out_slow_call(&proxy).await, (0, 1));
    proxy.shutdown().await;
}

#[tokio::test]
async fn safe_to_repeat_makes_a_tool_without_hints_repeatable() {
    let policy = format!("{RETRY_TIMEOUTS}    safe_to_repeat: {{ tools: [\"sl*\"] }}\n");
    let proxy = start_yaml(&scripted(&policy)).await;
    assert_eq!(time_out_slow_call(&proxy).await, (2, 3));
    proxy.shutdown().await;
}

#[tokio::test]
async fn calls_beyond_the_rate_limit_are_refused_by_the_proxy_and_never_sent() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy_with(&backend, "    rate_limit: { requests: 2, per: 1h }\n").await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    for _ in 0..2 {
        let answer = client
            .call_tool("alpha/slow", json!({ "ms": 1, "steps": 1 }))
            .await;
        assert!(answer["result"].is_object(), "{answer}");
    }
    let answer = client
        .call_tool("alpha/slow", json!({ "ms": 1, "steps": 1 }))
        .await;
    assert_eq!(answer["error"]["code"], BACKEND_LIMITED, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], "rate_limit", "{answer}");
    assert_eq!(backend.calls("slow"), 2);
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    assert_eq!(status["refusals"], 1, "{status}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn timeouts_below_the_breaker_open_it_and_then_nothing_reaches_the_backend() {
    let backend = TestBackend::start_named("alpha").await;
    let policy = "    timeout: { per_try: 100ms }\n    circuit_breaker: { min_calls: 3, failure_rate: 0.5, open_for: 1h }\n";
    let proxy = proxy_with(&backend, policy).await;
    for _ in 0..3 {
        time_out_slow_call(&proxy).await;
    }
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    assert_eq!(status["breaker"], "open", "{status}");
    assert_eq!(status["breaker_opened"], 1, "{status}");

    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let answer = client
        .call_tool("alpha/slow", json!({ "ms": 1, "steps": 1 }))
        .await;
    assert_eq!(answer["error"]["code"], BACKEND_LIMITED, "{answer}");
    assert_eq!(
        answer["error"]["data"]["reason"], "breaker_open",
        "{answer}"
    );
    assert_eq!(
        backend.calls("slow"),
        3,
        "no call reached the backend while open"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_slow_read_only_call_is_hedged_once_and_answered() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy_with(&backend, "    hedging: { delay: 50ms, max_hedges: 1 }\n").await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let answer = client
        .call_tool("alpha/slow", json!({ "ms": 300, "steps": 1 }))
        .await;
    assert!(answer["result"].is_object(), "{answer}");
    assert_eq!(backend.calls("slow"), 2, "the call and one hedge");
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    assert_eq!(status["hedges"], 1, "{status}");
    proxy.shutdown().await;
}
