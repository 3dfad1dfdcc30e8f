//! Shutdown and the operations endpoints.
//!
//! Graceful shutdown lets a call in flight finish and answer normally when it
//! fits in `shutdown_timeout`, answers it with `-32012` when it does not (and
//! still returns), refuses requests that arrive while it drains with HTTP 503,
//! stops stdio children, and leaves nothing listening. `/livez`,
//! `/admin/backends` and `/admin/metrics` report what the proxy is doing:
//! every backend's fields, and request counts by outcome that match the calls
//! actually made.

use std::net::SocketAddr;
use std::time::Duration;

use mcp_proxy::config::Config;
use mcp_proxy::server::RunningProxy;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::proxy::{self, admin_backend, ops_get_json, ops_get_text, pid_gone};
use crate::support::{RawClient, StreamEvent, TestBackend, WAIT_TIMEOUT, wait_until};

/// Proxy error: the request was cancelled because the proxy is shutting down.
const SHUTTING_DOWN: i64 = -32012;

/// How long a whole shutdown may take in these tests before it counts as hung.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

/// The text of a `tools/call` response message's first content item.
fn text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {response}"))
}

/// A config over one HTTP backend `alpha` with the given drain time.
fn config_with_drain(backend: &TestBackend, shutdown_timeout: Duration) -> Config {
    let mut config = proxy::config(vec![proxy::http_backend("alpha", &backend.url())]);
    config.proxy.shutdown_timeout = shutdown_timeout;
    config
}

/// Start a `slow` call through the proxy in a task of its own, and wait until
/// the proxy reports it in flight to `alpha`.
async fn slow_call_in_flight(
    proxy: &RunningProxy,
    client: &RawClient,
    ms: u64,
) -> tokio::task::JoinHandle<Value> {
    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller
            .call_tool("alpha/slow", json!({ "ms": ms, "steps": 1 }))
            .await
    });
    let addr = proxy.local_addr();
    wait_until("the slow call to be in flight", || async {
        admin_backend(addr, "alpha").await["in_flight"] == 1
    })
    .await;
    call
}

/// Whether a TCP connection to `addr` is refused.
async fn refuses_connections(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn shutdown_drains_a_call_in_flight() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start_config(config_with_drain(&backend, Duration::from_secs(10))).await;
    let addr = proxy.local_addr();
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let call = slow_call_in_flight(&proxy, &client, 1500).await;

    let report = tokio::time::timeout(SHUTDOWN_BOUND, proxy.shutdown())
        .await
        .expect("shutdown returns");
    assert!(
        report.drained,
        "the slow call finished within the drain time"
    );
    let answer = call.await.expect("the calling task");
    assert_eq!(
        text(&answer),
        "done",
        "the slow call got its normal result: {answer}"
    );
    assert_eq!(backend.calls("slow"), 1);
    assert!(
        refuses_connections(addr).await,
        "nothing listens on {addr} after shutdown"
    );
}

#[tokio::test]
async fn shutdown_cancels_calls_still_running_when_the_drain_time_is_over() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start_config(config_with_drain(&backend, Duration::from_millis(300))).await;
    let addr = proxy.local_addr();
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let call = slow_call_in_flight(&proxy, &client, 20_000).await;

    let report = tokio::time::timeout(SHUTDOWN_BOUND, proxy.shutdown())
        .await
        .expect("shutdown returns although a call is still running");
    assert!(!report.drained, "the slow call outlived the drain time");
    let answer = tokio::time::timeout(SHUTDOWN_BOUND, call)
        .await
        .expect("the cancelled call is answered")
        .expect("the calling task");
    assert_eq!(answer["error"]["code"], SHUTTING_DOWN, "{answer}");
    assert!(refuses_connections(addr).await, "nothing listens on {addr}");
}

#[tokio::test]
async fn shutdown_stops_stdio_children() {
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let pid = proxy::status(&proxy, "scripted")
        .pid
        .expect("a stdio backend reports its child's pid");
    assert!(
        !pid_gone(pid),
        "the child {pid} runs while the proxy serves"
    );

    let report = tokio::time::timeout(SHUTDOWN_BOUND, proxy.shutdown())
        .await
        .expect("shutdown returns");
    assert!(report.drained);
    assert!(
        pid_gone(pid),
        "the child {pid} is gone once shutdown returns"
    );
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_backend_stuck_in_a_re_listing() {
    // The backend announces a list change, then never answers tools/list:
    // the re-listing waits on it, yet SIGTERM must still stop the proxy.
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let pid = proxy::status(&proxy, "scripted").pid.expect("a child pid");
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let stalled = client.call_tool("scripted/stall_lists", json!({})).await;
    assert_eq!(text(&stalled), "stalled");

    let report = tokio::time::timeout(SHUTDOWN_BOUND, proxy.shutdown())
        .await
        .expect("shutdown returns although a re-listing never finishes");
    assert!(report.drained);
    assert!(
        pid_gone(pid),
        "the child {pid} is gone once shutdown returns"
    );
}

/// Read from `stream` until the end of an HTTP head (`\r\n\r\n`); return it.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded: an HTTP head this test reads is far below 64 KiB.
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        let read = tokio::time::timeout(WAIT_TIMEOUT, stream.read(&mut byte))
            .await
            .expect("the server answers in time")
            .expect("read from the proxy");
        assert_eq!(
            read,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A request that arrives while the proxy drains is refused with 503.
///
/// Made deterministic with `Expect: 100-continue`: the proxy only reads a
/// request's body once its handler runs, and hyper sends `100 Continue` when
/// the body is first read, so after the `100` the request is past the
/// accept loop (which stops at shutdown) and waits in the handler. Shutdown
/// then begins; the GET stream closing proves the proxy is draining (it is
/// closed right after draining starts); only then is the body sent.
#[tokio::test]
async fn requests_arriving_while_draining_get_503() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start_config(config_with_drain(&backend, Duration::from_secs(10))).await;
    let addr = proxy.local_addr();
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let mut events = client.open_get_stream().await;
    let call = slow_call_in_flight(&proxy, &client, 3000).await;

    let body = json!({
        "jsonrpc": "2.0", "id": "late", "method": "tools/call",
        "params": { "name": "alpha/echo", "arguments": { "message": "too late" } },
    })
    .to_string();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nexpect: 100-continue\r\n",
        body.len()
    );
    for (name, value) in client.standard_headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut late = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    late.write_all(head.as_bytes())
        .await
        .expect("send the head");
    let interim = read_head(&mut late).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    let shutdown = tokio::spawn(proxy.shutdown());
    let closed = events.next(WAIT_TIMEOUT).await;
    assert_eq!(
        closed,
        StreamEvent::Closed,
        "draining closes the GET stream"
    );

    late.write_all(body.as_bytes())
        .await
        .expect("send the body");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT_TIMEOUT, late.read_to_end(&mut answer))
        .await
        .expect("the proxy answers the late request")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let (_, json_body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let refusal: Value = serde_json::from_str(json_body).expect("a JSON-RPC error body");
    assert_eq!(refusal["error"]["code"], SHUTTING_DOWN, "{refusal}");
    assert_eq!(
        backend.calls("echo"),
        0,
        "the refused call never reached alpha"
    );

    // The call already in flight still drains normally.
    let report = tokio::time::timeout(SHUTDOWN_BOUND, shutdown)
        .await
        .expect("shutdown returns")
        .expect("the shutdown task");
    assert!(report.drained);
    let answer = call.await.expect("the calling task");
    assert_eq!(text(&answer), "done", "{answer}");
}

#[tokio::test]
async fn ops_endpoints_report_liveness_backends_and_metrics() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![
        proxy::http_backend("alpha", &backend.url()),
        proxy::scripted_backend("scripted", &[]),
    ])
    .await;
    let addr = proxy.local_addr();

    let (status, live) = ops_get_json(addr, "/livez").await;
    assert_eq!(status, StatusCode::OK, "/livez: {live}");

    let (status, listing) = ops_get_json(addr, "/admin/backends").await;
    assert_eq!(status, StatusCode::OK, "/admin/backends: {listing}");
    let backends = listing["backends"].as_array().expect("a backends array");
    assert_eq!(backends.len(), 2, "{listing}");
    for entry in backends {
        for field in [
            "name",
            "transport",
            "state",
            "last_error",
            "restarts",
            "in_flight",
            "pid",
        ] {
            assert!(entry.get(field).is_some(), "{field} missing from {entry}");
        }
        assert_eq!(entry["state"], "connected", "{entry}");
        assert_eq!(entry["restarts"], 0, "{entry}");
        assert_eq!(entry["in_flight"], 0, "{entry}");
    }
    let alpha = admin_backend(addr, "alpha").await;
    assert_eq!(alpha["transport"], "http", "{alpha}");
    assert!(
        alpha["pid"].is_null(),
        "an HTTP backend has no pid: {alpha}"
    );
    let scripted = admin_backend(addr, "scripted").await;
    assert_eq!(scripted["transport"], "stdio", "{scripted}");
    assert_eq!(
        scripted["pid"].as_u64(),
        proxy::status(&proxy, "scripted").pid.map(u64::from),
        "{scripted}"
    );

    let client = RawClient::new(proxy.url());
    client.initialize().await;
    for n in 0..3 {
        let echo = client
            .call_tool("alpha/echo", json!({ "message": format!("call {n}") }))
            .await;
        assert_eq!(text(&echo), format!("call {n}"), "{echo}");
    }
    let failed = client
        .call_tool("alpha/fail", json!({ "message": "on purpose" }))
        .await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let echo = client
        .call_tool("scripted/echo", json!({ "message": "stdio" }))
        .await;
    assert_eq!(text(&echo), "stdio", "{echo}");

    let (status, metrics) = ops_get_text(addr, "/admin/metrics").await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    for line in [
        r#"mcp_proxy_requests_total{backend="alpha",method="tools/call",outcome="ok"} 3"#,
        r#"mcp_proxy_requests_total{backend="alpha",method="tools/call",outcome="tool_error"} 1"#,
        r#"mcp_proxy_requests_total{backend="scripted",method="tools/call",outcome="ok"} 1"#,
        r#"mcp_proxy_request_duration_seconds_count{backend="alpha",method="tools/call"} 4"#,
        r#"mcp_proxy_request_duration_seconds_count{backend="scripted",method="tools/call"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from\n{metrics}"
        );
    }
    proxy.shutdown().await;
}
