//! Replica pools, configured the way an operator writes them (YAML through
//! the proxy's loader), over real tower-mcp backends: calls spread over the
//! endpoints, a retry or a hedge goes to another endpoint than the attempt
//! before it, a replica that is down is skipped and rejoins when it is back,
//! and outlier detection ejects an endpoint whose attempts time out (never
//! more than its share of the pool), as `/admin/backends` and the metrics
//! show. A pool of one that is ejected has its calls refused by the proxy.

use mcp_proxy::server::RunningProxy;
use serde_json::{Value, json};

use crate::support::proxy::{self, admin_backend, ops_get_text};
use crate::support::{RawClient, TestBackend, wait_until};

/// Proxy error: the proxy refused to send the call.
const BACKEND_LIMITED: i64 = -32014;

/// A proxy with one backend `alpha` over `replicas`, with `policy` (YAML
/// lines of the backend entry) added.
async fn pool_of(replicas: &[&TestBackend], policy: &str) -> RunningProxy {
    let urls: Vec<String> = replicas.iter().map(|b| b.url()).collect();
    let text = format!(
        "proxy:\n  listen: 127.0.0.1:0\nbackends:\n  - name: alpha\n    transport: http\n    endpoints: [{}]\n    reconnect: {{ initial: 50ms, max: 200ms }}\n{policy}",
        urls.join(", ")
    );
    let proxy = proxy::start_yaml(&text).await;
    wait_until("every endpoint connected", || async {
        proxy::status(&proxy, "alpha")
            .endpoints
            .iter()
            .all(|e| e.state == mcp_proxy::State::Connected)
    })
    .await;
    proxy
}

/// The name of the replica that answered `alpha/whoami`.
async fn whoami(client: &RawClient) -> String {
    let answer = client.call_tool("alpha/whoami", json!({})).await;
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no answer: {answer}"))
        .to_owned()
}

async fn slow(client: &RawClient, ms: u64) -> Value {
    client
        .call_tool("alpha/slow", json!({ "ms": ms, "steps": 1 }))
        .await
}

#[tokio::test]
async fn round_robin_spreads_calls_over_every_replica() {
    let a = TestBackend::start_named("a").await;
    let b = TestBackend::start_named("b").await;
    let proxy = pool_of(&[&a, &b], "    load_balancing: round_robin\n").await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let mut answered = Vec::new();
    for _ in 0..6 {
        answered.push(whoami(&client).await);
    }
    assert_eq!(
        answered.iter().filter(|n| *n == "a").count(),
        3,
        "{answered:?}"
    );
    assert_eq!(
        answered.iter().filter(|n| *n == "b").count(),
        3,
        "{answered:?}"
    );
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    let endpoints = status["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{status}");
    assert_eq!(endpoints[0]["endpoint"], a.url(), "{status}");
    assert_eq!(endpoints[1]["state"], "connected", "{status}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_retry_and_a_hedge_go_to_the_other_replica() {
    let a = TestBackend::start_named("a").await;
    let b = TestBackend::start_named("b").await;
    // Random picks: without the rule, five calls would land their two
    // attempts on different replicas only one time in 32.
    let policy = "    load_balancing: random\n    timeout: { per_try: 100ms }\n    retry: { max_retries: 1, on: [timeout], backoff: { initial: 1ms, max: 1ms } }\n";
    let proxy = pool_of(&[&a, &b], policy).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    for n in 1..=5 {
        let answer = slow(&client, 5_000).await;
        assert!(answer["error"].is_object(), "{answer}");
        assert_eq!((a.calls("slow"), b.calls("slow")), (n, n), "call {n}");
    }
    proxy.shutdown().await;

    let policy = "    load_balancing: random\n    hedging: { delay: 50ms }\n";
    let proxy = pool_of(&[&a, &b], policy).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    for n in 6..=10 {
        let answer = slow(&client, 200).await;
        assert!(answer["result"].is_object(), "{answer}");
        assert_eq!((a.calls("slow"), b.calls("slow")), (n, n), "call {n}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_replica_that_is_down_is_skipped_and_rejoins_when_back() {
    let a = TestBackend::start_named("a").await;
    let mut b = TestBackend::start_named("b").await;
    let proxy = pool_of(&[&a, &b], "    load_balancing: round_robin\n").await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    b.stop().await;
    wait_until("b marked down", || async {
        proxy::status(&proxy, "alpha").endpoints[1].state != mcp_proxy::State::Connected
    })
    .await;
    for _ in 0..4 {
        assert_eq!(whoami(&client).await, "a");
    }
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    assert_eq!(
        status["state"], "connected",
        "one replica is enough: {status}"
    );
    b.restart().await;
    wait_until("b back", || async {
        proxy::status(&proxy, "alpha").endpoints[1].state == mcp_proxy::State::Connected
    })
    .await;
    let mut answered = Vec::new();
    for _ in 0..4 {
        answered.push(whoami(&client).await);
    }
    assert!(answered.iter().any(|n| n == "b"), "{answered:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn timeouts_eject_a_replica_but_never_more_than_its_share_of_the_pool() {
    let a = TestBackend::start_named("a").await;
    let b = TestBackend::start_named("b").await;
    let policy = "    load_balancing: round_robin\n    timeout: { per_try: 100ms }\n    outlier_detection: { consecutive_failures: 2, base_ejection: 1h, max_ejection: 2h, max_ejection_percent: 50 }\n";
    let proxy = pool_of(&[&a, &b], policy).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    // a, b, a (its second failure: ejected), b (its second: half the pool
    // is out already, so it stays).
    for _ in 0..4 {
        slow(&client, 5_000).await;
    }
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    let endpoints = &status["endpoints"];
    assert_eq!(endpoints[0]["ejected"], true, "{status}");
    assert_eq!(endpoints[0]["times_ejected"], 1, "{status}");
    let returns_in = endpoints[0]["returns_in_ms"].as_u64().unwrap();
    assert!(
        returns_in > 3_500_000 && returns_in <= 3_600_000,
        "{status}"
    );
    assert!(
        endpoints[0]["returns_at_unix_ms"].as_u64().is_some(),
        "{status}"
    );
    assert_eq!(endpoints[1]["ejected"], false, "{status}");
    assert_eq!(endpoints[1]["consecutive_failures"], 2, "{status}");
    assert_eq!(status["ejections"], 1, "{status}");

    // While a is out, every call goes to b.
    for _ in 0..4 {
        assert!(slow(&client, 1).await["result"].is_object());
    }
    assert_eq!((a.calls("slow"), b.calls("slow")), (2, 6));
    let (_, metrics) = ops_get_text(proxy.local_addr(), "/admin/metrics").await;
    let line = r#"mcp_proxy_ejections_total{backend="alpha"} 1"#;
    assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_ejected_pool_of_one_has_its_calls_refused_without_reaching_it() {
    let a = TestBackend::start_named("a").await;
    let policy = "    timeout: { per_try: 100ms }\n    outlier_detection: { consecutive_failures: 1, base_ejection: 1h, max_ejection: 1h }\n";
    let proxy = pool_of(&[&a], policy).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    slow(&client, 5_000).await;
    let answer = slow(&client, 1).await;
    assert_eq!(answer["error"]["code"], BACKEND_LIMITED, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], "ejected", "{answer}");
    assert_eq!(a.calls("slow"), 1, "the refused call never reached it");
    let status = admin_backend(proxy.local_addr(), "alpha").await;
    assert_eq!(status["refusals"], 1, "{status}");
    proxy.shutdown().await;
}
