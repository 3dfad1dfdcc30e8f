//! The proxy's bounds, configured the way an operator writes them (YAML
//! through the proxy's loader), on a real proxy on 127.0.0.1 in front of a
//! real tower-mcp backend whose `slow` tool takes as long as asked.
//!
//! A backend that hangs holds a call only up to `proxy.default_call_timeout`
//! (`-32013`); sessions beyond `max_sessions` are refused with HTTP 503;
//! requests beyond `max_in_flight_per_session` or `max_in_flight` are
//! answered `-32014` and never reach the backend; a session whose client
//! went quiet expires after `session_idle_timeout` even with its GET stream
//! open, while a call in flight holds it until the call ends. Each is
//! counted in `/admin/metrics`.

use std::time::Duration;

use mcp_proxy::server::RunningProxy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::proxy::{self, ops_get_text};
use crate::support::{RawClient, StreamEvent, TestBackend, wait_until};

/// Proxy error: the backend did not answer within its timeout.
const BACKEND_TIMEOUT: i64 = -32013;
/// Proxy error: the proxy refused the request (here: a bound was reached).
const LIMITED: i64 = -32014;

/// A backend `alpha` (which sets no `timeout`) and a proxy over it with
/// the `proxy:` lines `bounds`.
async fn proxy_with(bounds: &str) -> (TestBackend, RunningProxy) {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start_yaml(&format!(
        "proxy:\n  listen: 127.0.0.1:0\n{bounds}backends:\n  - name: alpha\n    transport: http\n    url: {}\n",
        backend.url()
    ))
    .await;
    (backend, proxy)
}

/// `/admin/metrics` has this exact line.
async fn assert_metric(proxy: &RunningProxy, line: &str) {
    let text = metrics(proxy).await;
    assert!(
        text.lines().any(|l| l == line),
        "{line} missing from\n{text}"
    );
}

async fn metrics(proxy: &RunningProxy) -> String {
    let (status, text) = ops_get_text(proxy.local_addr(), "/admin/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text
}

/// Whether the proxy answers the client's session 404 (unknown or expired).
async fn is_forgotten(client: &RawClient) -> bool {
    let ping = json!({ "jsonrpc": "2.0", "id": "probe", "method": "ping" });
    let answer = client
        .post_raw(ping.to_string(), &client.standard_headers())
        .await;
    answer.status == StatusCode::NOT_FOUND
}

/// Once the backend has `held` slow calls in hand, a quick call through
/// `client`: its answer.
async fn call_with_held(backend: &TestBackend, held: u64, client: &RawClient) -> Value {
    wait_until("the held calls at the backend", || async {
        backend.calls("slow") == held
    })
    .await;
    call_slow(client, 1).await
}

/// `answer` is the proxy's refusal by the bound `key` at `limit`, which its
/// message names.
fn assert_refused(answer: &Value, key: &str, limit: usize) {
    assert_eq!(answer["error"]["code"], LIMITED, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("proxy.{key})")), "{answer}");
    assert_eq!(
        answer["error"]["data"],
        json!({ "reason": key, "limit": limit }),
        "{answer}"
    );
}

/// `alpha/slow` taking `ms` milliseconds, through `client`: its answer.
async fn call_slow(client: &RawClient, ms: u64) -> Value {
    client
        .call_tool("alpha/slow", json!({ "ms": ms, "steps": 1 }))
        .await
}

/// [`call_slow`] in the background.
fn slow_call(client: &RawClient, ms: u64) -> tokio::task::JoinHandle<Value> {
    let client = client.clone();
    tokio::spawn(async move { call_slow(&client, ms).await })
}

#[tokio::test]
async fn a_hung_backend_holds_a_call_only_up_to_the_default_call_timeout() {
    let (_backend, proxy) = proxy_with("  default_call_timeout: 300ms\n").await;
    let client = proxy::client(&proxy).await;
    let answer = call_slow(&client, 30_000).await;
    assert_eq!(answer["error"]["code"], BACKEND_TIMEOUT, "{answer}");
    assert_eq!(answer["error"]["data"]["backend"], "alpha", "{answer}");
    assert_metric(&proxy, r#"mcp_proxy_timeouts_total{backend="alpha"} 1"#).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_initialize_beyond_max_sessions_gets_503_naming_the_bound() {
    let (_backend, proxy) = proxy_with("  max_sessions: 2\n").await;
    let first = proxy::client(&proxy).await;
    let _second = proxy::client(&proxy).await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "third", "version": "1" },
        },
    });
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let third = RawClient::new(proxy.url());
    let refused = third.post_raw(initialize.to_string(), &headers).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("mcp-session-id"), None);
    let body = refused.json();
    assert_eq!(body["id"], 1, "{body}");
    assert_refused(&body, "max_sessions", 2);
    assert_metric(
        &proxy,
        r#"mcp_proxy_bound_refusals_total{bound="max_sessions"} 1"#,
    )
    .await;
    assert_metric(&proxy, "mcp_proxy_sessions 2").await;
    // A session that ends makes room.
    assert_eq!(first.delete_session().await, StatusCode::NO_CONTENT);
    let again = third.post_raw(initialize.to_string(), &headers).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    proxy.shutdown().await;
}

#[tokio::test]
async fn requests_beyond_the_in_flight_bounds_are_refused_and_never_sent() {
    let (backend, proxy) = proxy_with("  max_in_flight: 3\n  max_in_flight_per_session: 2\n").await;
    let a = proxy::client(&proxy).await;
    let b = proxy::client(&proxy).await;
    let held = [slow_call(&a, 2_000), slow_call(&a, 2_000)];
    let answer = call_with_held(&backend, 2, &a).await;
    assert_refused(&answer, "max_in_flight_per_session", 2);
    let b_held = slow_call(&b, 2_000);
    let answer = call_with_held(&backend, 3, &b).await;
    assert_refused(&answer, "max_in_flight", 3);
    assert_eq!(backend.calls("slow"), 3, "refused calls are never sent");
    assert_metric(&proxy, "mcp_proxy_requests_in_flight 3").await;
    for call in held.into_iter().chain([b_held]) {
        let answer = call.await.expect("call task");
        assert!(answer["result"].is_object(), "{answer}");
    }
    assert_metric(
        &proxy,
        r#"mcp_proxy_bound_refusals_total{bound="max_in_flight_per_session"} 1"#,
    )
    .await;
    assert_metric(
        &proxy,
        r#"mcp_proxy_bound_refusals_total{bound="max_in_flight"} 1"#,
    )
    .await;
    // The places are free again.
    let answer = call_slow(&a, 1).await;
    assert!(answer["result"].is_object(), "{answer}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_expires_even_with_its_get_stream_open() {
    let (_backend, proxy) = proxy_with("  session_idle_timeout: 300ms\n").await;
    let client = proxy::client(&proxy).await;
    let mut stream = client.open_get_stream().await;
    // The stream is closed when the session expires ...
    let mut closed = false;
    for _ in 0..100 {
        match stream.next(Duration::from_millis(100)).await {
            StreamEvent::Closed => {
                closed = true;
                break;
            }
            StreamEvent::Message(_) | StreamEvent::TimedOut => {}
        }
    }
    assert!(closed, "the abandoned GET stream did not end");
    // ... and the session is gone.
    assert!(is_forgotten(&client).await);
    assert_metric(&proxy, "mcp_proxy_sessions_expired_total 1").await;
    assert_metric(&proxy, "mcp_proxy_sessions 0").await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_call_in_flight_holds_its_session_until_it_ends() {
    let (_backend, proxy) = proxy_with("  session_idle_timeout: 200ms\n").await;
    let client = proxy::client(&proxy).await;
    // The call outlasts the idle timeout several times over.
    let answer = call_slow(&client, 1_500).await;
    assert!(answer["result"].is_object(), "{answer}");
    // Its answer was activity: the session is still there ...
    let listed = client.request("tools/list", Value::Null).await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    // ... until it idles (watched from outside the session: a request
    // would be activity).
    wait_until("the session expired", || async {
        metrics(&proxy)
            .await
            .lines()
            .any(|l| l == "mcp_proxy_sessions_expired_total 1")
    })
    .await;
    assert!(is_forgotten(&client).await);
    proxy.shutdown().await;
}
