//! The proxy's `/mcp` endpoint keeps the streamable-HTTP rules: sessions,
//! status codes, Origin, protocol version, body limits, malformed input,
//! cancellation — and stays up whatever a client sends.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::proxy::{self, scripted_backend, status};
use crate::support::{RawClient, wait_until};

/// Headers of an initialized client, plus or minus some.
fn headers(client: &RawClient, drop: &[&str], add: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = client
        .standard_headers()
        .into_iter()
        .filter(|(name, _)| !drop.contains(&name.as_str()))
        .collect();
    headers.extend(
        add.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    headers
}

const PING: &str = r#"{"jsonrpc":"2.0","id":41,"method":"ping"}"#;

#[tokio::test]
async fn sessions_status_codes_and_malformed_input() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let client = RawClient::new(proxy.url());
    let init = client.initialize().await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert!(
        client.session_id().is_some(),
        "initialize issues Mcp-Session-Id"
    );

    // A request with its session: answered.
    let ok = client.post_raw(PING, &client.standard_headers()).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.json(),
        json!({ "jsonrpc": "2.0", "id": 41, "result": {} })
    );

    // Missing session: 400. Unknown session: 404. Both with JSON-RPC bodies.
    let missing = client
        .post_raw(PING, &headers(&client, &["mcp-session-id"], &[]))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"]["code"], json!(-32600));
    let unknown = client
        .post_raw(
            PING,
            &headers(&client, &["mcp-session-id"], &[("mcp-session-id", "nope")]),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Notifications and responses: 202, no body.
    let accepted = client
        .notify("notifications/roots/list_changed", Value::Null)
        .await;
    assert_eq!(accepted, StatusCode::ACCEPTED);

    // Malformed JSON: 400 with a parse error and a null id.
    let garbage = client
        .post_raw("{not json", &client.standard_headers())
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.json()["error"]["code"], json!(-32700));
    assert_eq!(garbage.json()["id"], Value::Null);
    // Not JSON-RPC, and batches: invalid request.
    for body in [
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        "42",
    ] {
        let invalid = client.post_raw(body, &client.standard_headers()).await;
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(invalid.json()["error"]["code"], json!(-32600), "{body}");
    }
    // Unknown methods: -32601.
    let method = client.request("no/such/method", json!({})).await;
    assert_eq!(method["error"]["code"], json!(-32601));

    // An unsupported protocol version header: 400; a supported one: fine.
    let bad_version = client
        .post_raw(
            PING,
            &headers(
                &client,
                &["mcp-protocol-version"],
                &[("mcp-protocol-version", "1999-01-01")],
            ),
        )
        .await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    let old_version = client
        .post_raw(
            PING,
            &headers(
                &client,
                &["mcp-protocol-version"],
                &[("mcp-protocol-version", "2025-03-26")],
            ),
        )
        .await;
    assert_eq!(old_version.status, StatusCode::OK);

    // DELETE ends the session.
    assert!(client.delete_session().await.is_success());
    let gone = client.post_raw(PING, &client.standard_headers()).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // The proxy is still up for everyone else.
    let fresh = RawClient::new(proxy.url());
    fresh.initialize().await;
    let echo = fresh
        .call_tool("scripted/echo", json!({ "message": "still here" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "still here");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_unknown_protocol_version_is_answered_with_the_proxys_latest() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let client = RawClient::new(proxy.url());
    let init = client.initialize_with_version("2031-01-01").await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    let old = RawClient::new(proxy.url());
    assert_eq!(
        old.initialize_with_version("2025-03-26").await["protocolVersion"],
        "2025-03-26"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn foreign_origins_are_refused_and_local_or_allowed_ones_pass() {
    let mut config = proxy::config(vec![scripted_backend("scripted", &[])]);
    config.proxy.allowed_origins = vec!["https://app.example.com".to_owned()];
    let proxy = proxy::start_config(config).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    for (origin, expected) in [
        ("http://evil.example", StatusCode::FORBIDDEN),
        ("http://localhost.evil.example", StatusCode::FORBIDDEN),
        ("http://localhost:3000", StatusCode::OK),
        ("http://127.0.0.1:8080", StatusCode::OK),
        ("https://app.example.com", StatusCode::OK),
    ] {
        let response = client
            .post_raw(PING, &headers(&client, &[], &[("origin", origin)]))
            .await;
        assert_eq!(response.status, expected, "{origin}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_oversized_body_gets_413_and_the_proxy_stays_up() {
    let mut config = proxy::config(vec![scripted_backend("scripted", &[])]);
    config.proxy.max_body_size = 4096;
    let proxy = proxy::start_config(config).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let big = json!({
        "jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": { "name": "scripted/echo", "arguments": { "message": "x".repeat(10_000) } }
    });
    let response = client
        .post_raw(big.to_string(), &client.standard_headers())
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4096")),
        "{}",
        response.text()
    );
    let small = client
        .call_tool("scripted/echo", json!({ "message": "fits" }))
        .await;
    assert_eq!(small["result"]["content"][0]["text"], "fits");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_cancellation_stops_the_call_and_answers_it() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let body = json!({
        "jsonrpc": "2.0", "id": 777, "method": "tools/call",
        "params": { "name": "scripted/slow", "arguments": { "ms": 60000 } }
    });
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .post_raw(body.to_string(), &client.standard_headers())
                .await
        })
    };
    wait_until("the call in flight", || async {
        status(&proxy, "scripted").in_flight == 1
    })
    .await;
    let accepted = client
        .notify(
            "notifications/cancelled",
            json!({ "requestId": 777, "reason": "changed my mind" }),
        )
        .await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    let answer = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(answer.json()["id"], json!(777));
    assert_eq!(answer.json()["error"]["code"], json!(-32800));
    wait_until("nothing in flight", || async {
        status(&proxy, "scripted").in_flight == 0
    })
    .await;
    let (_, metrics) = proxy::ops_get_text(proxy.local_addr(), "/admin/metrics").await;
    assert!(
        metrics.contains(
            r#"mcp_proxy_requests_total{backend="-",method="tools/call",outcome="cancelled"} 1"#
        ),
        "the cancelled call is counted under its method:\n{metrics}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_dropped_client_connection_does_not_cancel_the_call() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let client = RawClient::with_timeout(proxy.url(), Duration::from_millis(300));
    client.initialize().await;
    // The client gives up (its HTTP request times out and the connection
    // closes) while the backend is still working: the call keeps running.
    let gave_up = client
        .try_request(
            "tools/call",
            json!({ "name": "scripted/slow", "arguments": { "ms": 3000 } }),
        )
        .await;
    assert!(gave_up.is_err(), "the client timed out: {gave_up:?}");
    assert_eq!(
        status(&proxy, "scripted").in_flight,
        1,
        "still forwarded after the client left"
    );
    wait_until("the call finished on its own", || async {
        status(&proxy, "scripted").in_flight == 0
    })
    .await;
    proxy.shutdown().await;
}
